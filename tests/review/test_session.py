"""ReviewSession logic without a window, on the asymmetric phantom (see conftest)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from review import Reason, ReviewError, ReviewSession, SparseMask, Status


def _open(run: Any, **kw: Any) -> ReviewSession:
    return ReviewSession.open(run.library, run.run_id, reviewer=kw.get("reviewer", "dr-a"))


def test_findings_sorted_by_score_with_model_measures(recorded_run: Any) -> None:
    s = _open(recorded_run)
    assert [f.key for f in s.findings] == ["m1", "m3", "m2"]  # 0.9, 0.7, 0.5
    m1 = s.get("m1")
    assert m1.status is Status.PENDING and m1.origin == "model" and not m1.edited
    assert m1.measures.voxel_count == 60 and m1.measures.volume_mm3 == pytest.approx(72.0)
    assert m1.mask.offset == (2, 3, 4) and m1.mask.array.shape == (3, 4, 5)
    assert m1.tracking_uid.startswith("2.25.") and m1.original == m1.measures
    assert s.get("m2").measures.voxel_count == 12
    assert s.shape == (12, 16, 20) and s.affine[0, 0] == 2.5
    assert s.progress() == (0, 3)
    with pytest.raises(ReviewError, match="no finding 'm9'"):
        s.get("m9")


def test_accept_reject_reset_undo_redo_and_audit(recorded_run: Any) -> None:
    s = _open(recorded_run)
    seen: list[list[str]] = []
    s.add_listener(seen.append)
    s.accept(["m1"])
    s.reject(["m2"], Reason.FALSE_POSITIVE)
    assert s.get("m1").status is Status.ACCEPTED and s.get("m1").reviewer == "dr-a"
    assert s.get("m2").reason is Reason.FALSE_POSITIVE and s.get("m2").decided_at
    assert s.progress() == (2, 3) and [f.key for f in s.kept()] == ["m1"]
    assert seen == [["m1"], ["m2"]]
    with pytest.raises(ReviewError, match="explanation"):
        s.reject(["m3"], Reason.OTHER)
    assert s.undo_text == "Reject m2"
    assert s.undo() == "Reject m2"
    assert s.get("m2").status is Status.PENDING and s.get("m2").reason is None
    assert s.can_redo and s.redo() == "Reject m2"
    assert s.get("m2").status is Status.REJECTED
    s.reset(["m1"])
    assert s.get("m1").status is Status.PENDING and s.get("m1").reviewer == ""
    events = [r.event for r in recorded_run.library.audit_rows(run_id=recorded_run.run_id)]
    assert events == ["model-run", "review-opened", "decision", "decision", "undo", "redo",
                      "decision"]
    row = recorded_run.library.audit_rows(run_id=recorded_run.run_id)[3]
    assert row.payload["findings"][0]["new_status"] == "rejected"
    assert row.payload["findings"][0]["reason"] == "false-positive"
    assert row.actor == "dr-a"
    assert recorded_run.library.verify_audit().ok


def test_bulk_decision_is_one_command_one_audit_row(recorded_run: Any) -> None:
    s = _open(recorded_run)
    before = len(recorded_run.library.audit_rows())
    s.reject(["m1", "m2", "m3"], "artefact")
    assert len(recorded_run.library.audit_rows()) == before + 1
    assert {f.status for f in s.findings} == {Status.REJECTED}
    assert s.undo() == "Reject m1, m2, m3"
    assert {f.status for f in s.findings} == {Status.PENDING}
    assert not s.can_undo


def test_paint_erase_edit_measures_and_undo(recorded_run: Any) -> None:
    s = _open(recorded_run)
    # Add one slice of 4x5 at k=5 under the box: 60 -> 80 voxels, centroid moves to +k.
    stroke = SparseMask((5, 3, 4), np.ones((1, 4, 5), dtype=bool))
    s.paint("m1", stroke, erase=False)
    m1 = s.get("m1")
    assert m1.status is Status.EDITED and m1.edited
    assert m1.measures.voxel_count == 80 and m1.measures.volume_mm3 == pytest.approx(96.0)
    assert m1.measures.centroid_index[0] == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert m1.measures.centroid_lps[0] == pytest.approx(-40.0 + 2.5 * 3.5)
    assert m1.original is not None and m1.original.voxel_count == 60  # kept as the model's
    assert m1.measures.longest_diameter_mm > m1.original.longest_diameter_mm
    # Erase a stroke that overhangs the grid: clipped, only existing voxels go.
    s.paint("m1", SparseMask((-3, 3, 4), np.ones((9, 1, 1), dtype=bool)), erase=True)
    assert s.get("m1").measures.voxel_count == 76  # k = 2..5 at (j 3, i 4)
    s.undo()
    s.undo()
    m1 = s.get("m1")
    assert m1.status is Status.PENDING and not m1.edited and m1.measures.voxel_count == 60
    # A stroke that changes nothing is no command (the redo history stays).
    s.paint("m1", SparseMask((2, 3, 4), np.ones((1, 1, 1), dtype=bool)), erase=False)
    assert s.can_redo and not s.can_undo
    # Erasing a voxel and painting it back: the mask equals the model's again.
    s.paint("m1", SparseMask((2, 3, 4), np.ones((1, 1, 1), dtype=bool)), erase=True)
    assert s.get("m1").edited and not s.can_redo
    s.paint("m1", SparseMask((2, 3, 4), np.ones((1, 1, 1), dtype=bool)), erase=False)
    assert not s.get("m1").edited and s.get("m1").measures.voxel_count == 60


def test_accepting_an_edited_finding_keeps_it_edited(recorded_run: Any) -> None:
    s = _open(recorded_run)
    s.paint("m3", SparseMask((9, 2, 14), np.ones((1, 2, 2), dtype=bool)), erase=True)
    assert s.get("m3").measures.voxel_count == 4
    s.accept("m3")
    assert s.get("m3").status is Status.EDITED and s.get("m3").kept


def test_add_finding_reader_drawn_last_and_label_map(recorded_run: Any) -> None:
    s = _open(recorded_run)
    mask = SparseMask((0, 0, 0), np.ones((2, 2, 3), dtype=bool))
    key = s.add_finding("nodule", mask, label_value=1)
    assert key == "r1"
    r1 = s.get("r1")
    assert r1.status is Status.ADDED and r1.origin == "reader" and r1.original is None
    assert r1.measures.voxel_count == 12 and r1.score is None and r1.color_rgb == (255, 0, 0)
    assert s.findings[-1].key == "r1"
    s.reject("m2", Reason.DUPLICATE)
    lm = s.label_map()
    assert int((lm.array == 1).sum()) == 60 + 12  # m1 + r1; rejected m2 left out
    assert int((lm.array == 2).sum()) == 8
    assert lm.array[0, 1, 2] == 1 and lm.array[8, 10, 5] == 0
    assert {lab.name for lab in lm.labels} == {"nodule", "mass"}
    assert s.undo() == "Reject m2"
    assert s.undo() == "Add r1"
    assert s.find("r1") is None
    assert s.redo() == "Add r1" and s.get("r1").measures.voxel_count == 12
    with pytest.raises(ReviewError, match="no voxels"):
        s.add_finding("nodule", SparseMask((50, 0, 0), np.ones((1, 1, 1), dtype=bool)))


def test_interpolate_between_edited_slices(recorded_run: Any) -> None:
    s = _open(recorded_run)
    key = s.add_finding("nodule", SparseMask((0, 4, 4), np.ones((1, 5, 5), dtype=bool)))
    with pytest.raises(ReviewError, match="two slices"):
        s.interpolate(key)
    s.paint(key, SparseMask((4, 4, 4), np.ones((1, 5, 5), dtype=bool)), erase=False)
    assert s.get(key).measures.voxel_count == 50
    s.interpolate(key)
    full = s.get(key).mask.to_full(s.shape)
    assert [int(full[k].sum()) for k in range(6)] == [25, 25, 25, 25, 25, 0]
    assert s.undo() == f"Interpolate {key}"
    assert s.get(key).measures.voxel_count == 50


def test_navigation_and_sign_off(recorded_run: Any) -> None:
    s = _open(recorded_run)
    assert s.next_pending() == "m1"
    assert s.next_pending("m1") == "m3"
    assert s.previous_pending("m1") == "m2"  # wraps
    s.accept("m3")
    assert s.next_pending("m1") == "m2"
    with pytest.raises(ReviewError, match="2 finding"):
        s.sign_off()
    s.accept(["m1"])
    s.reject(["m2"], Reason.OTHER, "calcified granuloma")
    s.sign_off()
    assert s.signed_off and not s.can_undo
    with pytest.raises(ReviewError, match="signed off"):
        s.accept("m2")
    again = _open(recorded_run)
    assert again.signed_off
    again.reopen()
    again.reject("m1", Reason.NOT_SIGNIFICANT)
    events = [r.event for r in recorded_run.library.audit_rows(run_id=recorded_run.run_id)]
    assert events.count("sign-off") == 1 and events.count("review-reopened") == 1
    assert events[-1] == "decision"


def test_set_reviewer_is_audited(recorded_run: Any) -> None:
    s = ReviewSession.open(recorded_run.library, recorded_run.run_id)
    assert s.reviewer  # the OS user
    s.set_reviewer("Dr Who")
    s.accept("m1")
    rows = recorded_run.library.audit_rows(run_id=recorded_run.run_id)
    assert rows[-2].event == "reviewer-changed" and rows[-2].payload["new"] == "Dr Who"
    assert rows[-1].actor == "Dr Who" and s.get("m1").reviewer == "Dr Who"
