"""``lucida export``: a real library, a recorded run on the demo study, a review made
with the review session (accept, reject, edit, a reader-drawn finding), then the CLI
signs off and writes SEG + SR + KO + report, audited with each file's SHA-256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from app.cli import main
from core.volume import HeatMap, Label, LabelMap
from store import Library

SHAPE = (40, 96, 80)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def reviewed(tmp_path: Path, library_dir: Path) -> dict[str, object]:
    from app.importer import import_paths, series_sources
    from app.runs import record_run
    from dicomio.demo import write_demo_study
    from dicomio.load import read_volume
    from inference.pipeline import InferenceResult
    from inference.postprocess import extract_findings

    demo = tmp_path / "demo"
    write_demo_study(demo, shape=SHAPE)
    library = Library.open(library_dir)
    import_paths(library, [demo], actor="tester")
    series = library.series(library.studies()[0])[0]
    volume = read_volume(series_sources(library, series.id))
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    labels[5:8, 10:14, 20:26] = 1  # m1: accepted
    labels[20:22, 60:63, 50:52] = 1  # m2: rejected
    labels[30:33, 40:45, 10:13] = 2  # m3: edited
    heat = (labels > 0).astype(np.float32) * 0.8
    names = {1: "nodule", 2: "mass"}
    findings = extract_findings(labels, volume.affine, names, heat,
                                series_uid=series.series_uid)
    lm = LabelMap(labels, volume.affine, [Label(1, "nodule", (255, 0, 0)),
                                          Label(2, "mass", (0, 0, 255))],
                  series_uid=series.series_uid)
    result = InferenceResult(lm, HeatMap(heat, volume.affine, series_uid=series.series_uid),
                             findings, {"model": {"id": "lucida-demo-lung-density",
                                                  "name": "Demo pack", "version": "0.1.0",
                                                  "files": {"model.onnx": "ef" * 32}},
                                        "provider": "CPUExecutionProvider"})
    run_id = record_run(library, series.id, result, actor="tester")  # type: ignore[arg-type]
    library.close()
    return {"series_uid": series.series_uid, "run_id": run_id, "library": library_dir,
            "findings": findings}


def _review(library_dir: Path, run_id: int, *, finish: bool) -> dict[str, str]:
    from review.model import SparseMask
    from review.session import ReviewSession

    with Library.open(library_dir) as library:
        s = ReviewSession.open(library, run_id, reviewer="Reader^Rita")
        by_first_k = {f.measures.bbox_index[0][0]: f.key for f in s.findings}
        keys = {"accepted": by_first_k[5], "rejected": by_first_k[20], "edited": by_first_k[30]}
        s.accept(keys["accepted"])
        s.reject(keys["rejected"], "false positive")
        if finish:
            s.paint(keys["edited"], SparseMask.from_points([[31, 46, 11], [32, 46, 11]]),
                    erase=False)
            pts = [[12, 70, 60], [12, 70, 61], [13, 71, 61]]
            keys["reader"] = s.add_finding("nodule", SparseMask.from_points(pts))
            keys["uids"] = json.dumps({f.key: f.tracking_uid for f in s.findings})
        return keys


def test_export_refused_while_pending_with_the_count(
        reviewed: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _review(reviewed["library"], reviewed["run_id"], finish=False)  # type: ignore[arg-type]
    out = tmp_path / "out"
    code = main(["export", str(reviewed["series_uid"]), "--run", str(reviewed["run_id"]),
                 "--out", str(out)])
    assert code == 2
    assert "1 finding(s) still pending" in capsys.readouterr().err
    assert not out.exists()


def test_export_writes_seg_sr_ko_and_report_and_audits_them(
        reviewed: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = _review(reviewed["library"], reviewed["run_id"], finish=True)  # type: ignore[arg-type]
    uids = json.loads(keys["uids"])
    out = tmp_path / "export"
    code = main(["export", str(reviewed["series_uid"]), "--run", str(reviewed["run_id"]),
                 "--out", str(out), "--reviewer", "Reader^Rita"])
    assert code == 0, capsys.readouterr().err
    run = reviewed["run_id"]
    seg_p, sr_p, ko_p = (out / f"lucida-run{run}-{n}.dcm" for n in ("seg", "sr", "ko"))
    report_p = out / f"lucida-run{run}-report.html"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (seg_p, sr_p, ko_p, report_p))

    seg = hd.seg.segread(seg_p)
    types = {seg.get_segment_description(n).tracking_uid:
             seg.get_segment_description(n).algorithm_type.value
             for n in seg.segment_numbers}
    assert types == {uids[keys["accepted"]]: "AUTOMATIC", uids[keys["edited"]]: "SEMIAUTOMATIC",
                     uids[keys["reader"]]: "MANUAL"}
    sr = hd.sr.srread(sr_p)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert {g.tracking_uid for g in groups} == set(types)
    for path in (seg_p, sr_p, ko_p, report_p):  # rejected: never a positive anywhere
        assert uids[keys["rejected"]].encode() not in path.read_bytes()
    source = pydicom.dcmread(next((tmp_path / "demo").glob("*.dcm")), stop_before_pixels=True)
    for ds in (seg, sr, pydicom.dcmread(ko_p)):
        assert (ds.PatientID, ds.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)

    with Library.open(reviewed["library"]) as library:  # type: ignore[arg-type]
        rows = library.audit_rows(run_id=run)  # type: ignore[arg-type]
        events = [r.event for r in rows]
        assert events.index("sign-off") < events.index("export") == len(events) - 1
        export = rows[-1].payload
        anchor = rows[-2].row_hash  # the head before the export event
        assert library.verify_audit().ok
    assert export["files"] == {p.name: _sha(p) for p in (seg_p, sr_p, ko_p, report_p)}
    assert export["audit_head_hash"] == anchor
    assert anchor in str(pydicom.dcmread(sr_p).ContentSequence[-1].ContentSequence[0].TextValue)

    report = report_p.read_text(encoding="utf-8")
    assert "Research use only" in report
    assert "What it is. A fixed-weight ONNX graph" in report  # the pack's model card
    assert str(source.PatientName) in report and str(source.PatientID) in report
    assert anchor in report and "Reader^Rita" in report
    assert report.count("data:image/png;base64,") == 3
    for key in (keys["accepted"], keys["edited"], keys["reader"]):
        assert f"<td>{key}</td>" in report
    assert f"<td>{keys['rejected']}</td>" not in report
    # Each finding's slice reads as in the Findings panel (the axial view's numbering).
    from app.series_session import review_rows
    from review import ReviewSession

    with Library.open(reviewed["library"]) as library:  # type: ignore[arg-type]
        panel_rows = review_rows(ReviewSession.open(library, run))  # type: ignore[arg-type]
    for row in panel_rows:
        if row.key in (keys["accepted"], keys["edited"], keys["reader"]):
            assert f"<td>{row.slice_number}/{row.n_slices}</td>" in report, row.key
