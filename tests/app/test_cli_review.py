"""``lucida infer`` records its run on a library series; ``lucida review`` decides on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main

DEMO_ID = "lucida-demo-lung-density"


@pytest.fixture
def demo_run(library_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
             ) -> tuple[int, int, list[str]]:
    """The demo study imported and the demo pack run on it: (series id, run id, keys)."""
    from app.importer import import_paths
    from dicomio.demo import DEMO_SERIES_UID, write_demo_study
    from review import ReviewSession
    from store.library import Library

    write_demo_study(tmp_path / "dicom", shape=(24, 96, 96))
    with Library.open(library_dir) as lib:
        import_paths(lib, [tmp_path / "dicom"])
        series_id = lib.get_series(DEMO_SERIES_UID).id
    rc = main(["infer", "--model", DEMO_ID, str(series_id), "--out", str(tmp_path / "out"),
               "--force", "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    found = re.search(r"recorded as model run (\d+)", err)
    assert found, err
    run_id = int(found.group(1))
    with Library.open(library_dir) as lib:
        run = lib.get_model_run(run_id)
        assert run.model_id == DEMO_ID and run.provenance["model"]["files"]
        keys = [f.key for f in ReviewSession.open(lib, run_id, reviewer="t").findings]
        rows = lib.audit_rows(run_id=run_id)
        assert rows[0].event == "model-run" and rows[0].payload["pack_id"] == DEMO_ID
        assert rows[0].payload["sha256"] and rows[0].payload["provider"]
    assert len(keys) >= 2, "the demo pack should find at least two regions on the demo study"
    return series_id, run_id, keys


def test_review_accept_reject_sign_off_and_list(demo_run: tuple[int, int, list[str]],
                                                library_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from review import Reason, ReviewSession, Status
    from store.library import Library

    series_id, run_id, keys = demo_run
    first, rest = keys[0], keys[1:]
    rejects = [f"{k}:other:seen on prior CT" for k in rest]
    assert main(["review", str(series_id), "--run", str(run_id), "--accept", first,
                 "--reject", *rejects, "--reviewer", "Dr Script"]) == 0
    out = capsys.readouterr().out
    assert f"{len(keys)} of {len(keys)} reviewed" in out and "accepted" in out
    with Library.open(library_dir) as lib:
        s = ReviewSession.open(lib, run_id, reviewer="x")
        assert s.get(first).status is Status.ACCEPTED and s.get(first).reviewer == "Dr Script"
        for k in rest:
            assert s.get(k).reason is Reason.OTHER
            assert s.get(k).reason_text == "seen on prior CT"
        decisions = [r for r in lib.audit_rows(run_id=run_id) if r.event == "decision"]
        assert len(decisions) == 2 and decisions[0].actor == "Dr Script"
        assert lib.verify_audit().ok
    assert main(["review", str(series_id), "--run", str(run_id), "--sign-off"]) == 0
    assert "signed off" in capsys.readouterr().out
    assert main(["review", str(series_id), "--run", str(run_id), "--accept", rest[0]]) == 2
    assert "signed off" in capsys.readouterr().err
    assert main(["review", str(series_id), "--list"]) == 0  # latest run by default
    assert "rejected" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--accept", "m999"], "no finding 'm999'"),
    (["--reject", "m1:boring"], "unknown reject reason 'boring'"),
    (["--reject", "m1"], "expected ID:REASON"),
    (["--reject", "m1:other"], "needs text"),
])
def test_bad_id_or_reason_is_one_line_exit_2_and_changes_nothing(
        demo_run: tuple[int, int, list[str]], library_dir: Path,
        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    from store.library import Library

    series_id, run_id, keys = demo_run
    with Library.open(library_dir) as lib:
        before = len(lib.audit_rows(run_id=run_id))
    rc = main(["review", str(series_id), "--run", str(run_id), "--accept", keys[0], *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    with Library.open(library_dir) as lib:
        events = [r.event for r in lib.audit_rows(run_id=run_id)[before:]]
    assert "decision" not in events


def test_review_of_a_run_of_another_series_is_refused(demo_run: tuple[int, int, list[str]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    series_id, run_id, _keys = demo_run
    assert main(["review", str(series_id), "--run", str(run_id + 5), "--list"]) == 2
    assert "is not a run of series" in capsys.readouterr().err
