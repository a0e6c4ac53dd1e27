"""The open series' logic without a window: runs belong to their series, rows carry the
slice the axial view shows and the patient side, imported objects become read-only rows
or a problem line, measurements go through the same session.

Real SQLite library, real recorded runs (app.runs), real ReviewSession. The phantom is
asymmetric: slices run feet → head (the axial view counts from the head) and i runs
towards the patient's right, so a flipped axis changes the expected numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.volume import HeatMap, Label, LabelMap, Volume

SHAPE = (12, 16, 20)
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def affine() -> np.ndarray:
    a = np.eye(4)
    # k → +z (towards the head) 2.5 mm, j → +y 0.8 mm, i → −x (patient right) 1.0 mm.
    a[:3, :3] = np.column_stack([(0.0, 0.0, 2.5), (0.0, 0.8, 0.0), (-1.0, 0.0, 0.0)])
    a[:3, 3] = (10.0, -5.0, -60.0)
    return a


def add_series(library: Any, folder: Path, uid: str) -> int:
    from store import NewInstance, NewStack

    folder.mkdir(parents=True, exist_ok=True)
    instances = []
    for n in range(SHAPE[0]):
        path = folder / f"f{n}.dcm"
        path.write_bytes(bytes([n]) * 64)
        instances.append(NewInstance(
            sop_instance_uid=f"{uid}.{n + 1}", sop_class_uid=CT_IMAGE,
            transfer_syntax_uid="1.2.840.10008.1.2.1", path=path.absolute(), member=None,
            file_size=64, mtime=path.stat().st_mtime, instance_number=n + 1,
            position=(10.0, -5.0, -60.0 + 2.5 * n)))
    library.index_stack(NewStack(
        patient_id="P1", patient_name="DOE^JANE", birth_date="19700101",
        study_uid="1.2.826.0.1.3680043.99.1", study_date="20240131", study_time="101500",
        study_description="CT chest", accession_number="A1", series_uid=uid,
        stack_key="16x20/axial", object_kind="image", modality="CT", series_number=2,
        description="Chest", body_part="CHEST", frame_of_reference_uid="1.2.3",
        rows=SHAPE[1], columns=SHAPE[2], is_localizer=False, instances=tuple(instances)))
    return int(library.get_series(uid).id)


def result_for(uid: str) -> Any:
    """Two findings: a 60-voxel box on the left (score 0.9), an 8-voxel cube on the right
    (score 0.7)."""
    from inference.pipeline import InferenceResult
    from inference.postprocess import extract_findings

    labels = np.zeros(SHAPE, dtype=np.uint8)
    heat = np.zeros(SHAPE, dtype=np.float32)
    labels[2:5, 3:7, 2:7] = 1  # i 2..6 → x 8..4: left
    heat[2:5, 3:7, 2:7] = 0.9
    labels[8:10, 2:4, 16:18] = 1  # i 16..17 → x −6..−7: right
    heat[8:10, 2:4, 16:18] = 0.7
    names = {1: "PACK MARK: nodule"}
    findings = extract_findings(labels, affine(), names, heat, series_uid=uid)
    lm = LabelMap(labels, affine(), [Label(1, names[1], (255, 0, 0))], series_uid=uid)
    return InferenceResult(lm, HeatMap(heat, affine(), series_uid=uid), findings,
                           {"request_id": "r", "model": {"id": "p", "name": "Pack",
                                                         "version": "1"},
                            "provider": "CPUExecutionProvider", "parameters": {}})


@pytest.fixture
def two_series(library_dir: Path, tmp_path: Path) -> Any:
    from store import Library

    library = Library.open(library_dir)
    a = add_series(library, tmp_path / "a", "1.2.826.0.1.3680043.99.10")
    b = add_series(library, tmp_path / "b", "1.2.826.0.1.3680043.99.20")
    yield library, a, b
    library.close()


def test_runs_belong_to_their_series(two_series: Any) -> None:
    from app.series_session import SeriesSession

    library, a, b = two_series
    volume = Volume(np.zeros(SHAPE, dtype=np.int16), affine())
    session_a = SeriesSession(library, a, volume, reviewer="Dr One")
    changed: list[list[str]] = []
    session_a.add_listener(changed.append)
    run_id = session_a.record_result(result_for("1.2.826.0.1.3680043.99.10"))
    assert session_a.run_id == run_id and changed  # the review opened at once
    assert [int(getattr(r, "run", r).id) for r in session_a.runs()] == [run_id]

    session_b = SeriesSession(library, b, volume)
    assert session_b.runs() == [] and session_b.rows() == []
    assert session_b.open_last_run() is None
    with pytest.raises(ValueError, match="does not belong"):
        session_b.open_run(run_id)

    # Reopening series A (a new session, as after closing the window) gives the run back.
    session_a.review.accept([session_a.rows()[0].key])
    again = SeriesSession(library, a, volume)
    again.open_last_run()
    assert again.run_id == run_id
    assert [r.status for r in again.rows()] == ["accepted", "pending"]
    assert again.progress() == (1, 2)


def test_rows_are_sorted_by_score_with_short_labels_slices_and_sides(two_series: Any) -> None:
    from app.series_session import SeriesSession

    library, a, _b = two_series
    session = SeriesSession(library, a, Volume(np.zeros(SHAPE, dtype=np.int16), affine()))
    session.record_result(result_for("1.2.826.0.1.3680043.99.10"))
    box, cube = session.rows()
    assert (box.score, cube.score) == pytest.approx((0.9, 0.7))
    assert box.label == cube.label == "nodule" and box.full_label == "PACK MARK: nodule"
    # k runs feet → head, the axial view counts from the head: number = 12 − k.
    assert (box.slice_number, box.n_slices) == (12 - 3, 12)
    assert cube.slice_number == 12 - 9  # centroid k 8.5 rounds half up, as the view does
    assert (box.side, cube.side) == ("L", "R")
    assert box.volume_mm3 == pytest.approx(60 * 2.5 * 0.8 * 1.0)
    assert box.centroid_lps == pytest.approx((10.0 - 4.0, -5.0 + 0.8 * 4.5, -60.0 + 2.5 * 3))
    assert box.position_text.startswith("L 6, ")
    assert box.extent_mm >= 40.0


def test_imported_objects_become_read_only_rows_or_a_problem(two_series: Any) -> None:
    from app.series_session import imported_group
    from dicomio.derived.model import DerivedObject, ImportedFinding, ImportedMeasurement, MaskCrop

    crop = np.zeros((2, 3, 4), dtype=bool)
    crop[0, 0:2, 0:3] = True  # 6 voxels
    seg = DerivedObject(kind="SEG", sop_instance_uid="1.2", series_uid="1.3",
                        description="Liver", findings=[ImportedFinding(
                            number=1, label_name="Liver", color_rgb=(0, 200, 0),
                            source_kind="SEG", source_sop_instance_uid="1.2",
                            mask=MaskCrop((5, 6, 7), crop))])
    sr = DerivedObject(kind="SR", sop_instance_uid="1.4", series_uid="1.5",
                       description="Report", findings=[ImportedFinding(
                           number=1, label_name="Tumor", color_rgb=(200, 0, 0),
                           source_kind="SR", source_sop_instance_uid="1.4",
                           centroid_lps=(-3.0, 0.0, -50.0),
                           measurements=(ImportedMeasurement("Volume", "1.5", "ml"),
                                         ImportedMeasurement("Long axis diameter", "2.5",
                                                             "cm")))])
    broken = DerivedObject(kind="SEG", sop_instance_uid="1.6", series_uid="1.7",
                           description="Nodule", problem="its frames lie outside the series")
    group = imported_group([seg, sr, broken], affine(), SHAPE)
    assert [r.key for r in group.rows] == ["i1", "i2"]
    liver, tumour = group.rows
    assert liver.status == tumour.status == "imported" and liver.imported
    assert liver.label == "Liver (SEG)"
    assert liver.volume_mm3 == pytest.approx(6 * 2.5 * 0.8)  # measured from the mask
    assert liver.slice_number == 12 - 5
    offset, mask, color = group.masks["i1"]
    assert offset == (5, 6, 7) and int(mask.sum()) == 6 and color == (0, 200, 0)
    assert (tumour.volume_mm3, tumour.diameter_mm) == pytest.approx((1500.0, 25.0))
    assert tumour.side == "R" and "i2" not in group.masks
    assert group.problems == ["SEG Nodule: its frames lie outside the series"]


def test_measurements_go_through_the_session(two_series: Any) -> None:
    from app.series_session import SeriesSession

    library, a, b = two_series
    volume = Volume(np.zeros(SHAPE, dtype=np.int16), affine())
    record = {"kind": "distance", "view": "axial", "label": "12.0 mm",
              "points_lps_mm": [[0.0, 0.0, -50.0], [12.0, 0.0, -50.0]],
              "stats": {"length_mm": 12.0}}
    SeriesSession(library, a, volume).save_measurements([record])
    records, problems = SeriesSession(library, a, volume).read_measurements()
    assert problems == [] and [r["stats"]["length_mm"] for r in records] == [12.0]
    assert SeriesSession(library, b, volume).read_measurements() == ([], [])
