"""Every input the fuzzer found a problem with, replayed through the same target.

``regressions/<target>/<name>`` is one input of that fuzz target (``file``,
``zip``, ``series``, ``dicomdir``); ``regressions/folder/<name>/`` is a small
series written with pydicom (what the structure-aware ``synth`` target makes).
Each runs in a fresh interpreter under the fuzzer's address-space cap, so a
header that makes the loader allocate gigabytes, or a decoder that aborts the
process, fails one test instead of the session. ``regressions/README.md`` says
what each file is and where the problem escaped. No atheris is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import target

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions"
TARGET_DIRS = ("file", "zip", "series", "dicomdir", "folder")

#: Findings whose fix is not in this tree yet: replayed, expected to fail
#: (non-strict, so the fix landing shows as XPASS: then delete the line).
OPEN: dict[str, str] = {}  # e.g. "file/x.dcm": "TypeError from load.py:_read_header"
#: Open findings whose replay itself is costly (peak RSS in GB): replayed only when
#: LUCIDA_FUZZ_HEAVY=1, until the fix lands (then delete the line and it always runs).
HEAVY: set[str] = set()  # e.g. a GDCM case that peaked at 3.9 GB before 3d2688c


def _cases() -> list[Path]:
    cases: list[Path] = []
    for kind in TARGET_DIRS:
        folder = REGRESSIONS / kind
        if folder.is_dir():
            cases.extend(sorted(p for p in folder.iterdir() if not p.name.startswith(".")))
    return cases


def _case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _replay(kind: str, path: Path) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(target.REPO_ROOT), RUST_BACKTRACE="0")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.target", kind, str(path)],
        cwd=target.REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        # A process-level crash (abort, segfault, OOM kill) is a finding too.
        return {"clean": False, "signature": f"process exit {proc.returncode}",
                "detail": proc.stderr[-4000:]}
    result: dict[str, object] = json.loads(lines[-1])
    return result


@pytest.mark.parametrize(
    "case",
    [pytest.param(p, id=_case_id(p),
                  marks=[pytest.mark.xfail(reason=OPEN[_case_id(p)], strict=False)]
                  if _case_id(p) in OPEN else [])
     for p in _cases()])
def test_regression_input_is_handled_cleanly(case: Path) -> None:
    if _case_id(case) in HEAVY and os.environ.get("LUCIDA_FUZZ_HEAVY") != "1":
        pytest.skip("allocates gigabytes while its bug is open; LUCIDA_FUZZ_HEAVY=1 runs it")
    kind = case.parent.name
    result = _replay("folder" if kind == "folder" else kind, case)
    assert result["clean"], f"{result['signature']}\n{result.get('detail', '')}"


def test_every_regression_is_documented() -> None:
    readme = (REGRESSIONS / "README.md").read_text() if (REGRESSIONS / "README.md").exists() \
        else ""
    missing = [_case_id(p) for p in _cases() if _case_id(p) not in readme]
    assert not missing, f"describe these in tests/fuzz/regressions/README.md: {missing}"


def test_open_entries_name_existing_files() -> None:
    known = {_case_id(p) for p in _cases()}
    assert set(OPEN) <= known, sorted(set(OPEN) - known)


# --------------------------------------------------------------------------- the harness itself


def _small_ct() -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).read_bytes()


@pytest.mark.parametrize("kind", ["file", "zip", "series"])
def test_a_valid_file_passes_every_target(kind: str) -> None:
    data = _small_ct()
    if kind == "series":
        data = target.join_series([data, data])
    target.check(kind, data)


def test_a_structured_input_writes_a_series(tmp_path: Path) -> None:
    from tests.fuzz.synth import write_series

    files = write_series(bytes(range(64)), tmp_path)
    assert files and all(f.stat().st_size > 128 for f in files)


def test_the_harness_reports_what_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-Lucida exception from the loader is a finding; a LucidaError is not."""
    from core.errors import DicomReadError

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("planted")

    monkeypatch.setattr(target, "read_volume", broken)
    with pytest.raises(target.Finding) as caught:
        target.check("file", _small_ct())
    assert caught.value.stage == "load"
    assert caught.value.signature.startswith("load|KeyError|")

    def refused(*_args: object, **_kwargs: object) -> None:
        raise DicomReadError("refused on purpose")

    monkeypatch.setattr(target, "read_volume", refused)
    target.check("file", _small_ct())


def test_a_hang_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def spin(*_args: object, **_kwargs: object) -> None:
        while True:
            pass

    monkeypatch.setattr(target, "plan_volume", spin)
    with pytest.raises(target.Finding) as caught:
        target.check("file", _small_ct(), cpu_seconds=0.5)
    assert "InputTimeout" in caught.value.signature
