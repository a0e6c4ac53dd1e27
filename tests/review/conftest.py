"""A library holding one series and one recorded model run on an asymmetric phantom.

Grid (k, j, i) = (12, 16, 20), spacing 2.5 × 0.8 × 0.6 mm (voxel 1.2 mm³), non-zero
origin. Findings (26-connected components, as inference extracts them):
- label 1 "nodule": a 3×4×5 box (60 voxels, score 0.9) and an L of 7+5 = 12 voxels
  (score 0.5) — not mirror-symmetric, so a flipped axis would move it;
- label 2 "mass": a 2×2×2 cube (8 voxels, score 0.7).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.volume import HeatMap, Label, LabelMap
from store import Library, NewInstance, NewStack

SHAPE = (12, 16, 20)
SERIES_UID = "1.2.826.0.1.3680043.99.77"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def phantom_affine() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.diag([2.5, 0.8, 0.6])
    affine[:3, 3] = (-40.0, 12.0, 100.0)
    return affine


def phantom_result() -> object:
    from inference.pipeline import InferenceResult
    from inference.postprocess import extract_findings

    labels = np.zeros(SHAPE, dtype=np.uint8)
    heat = np.zeros(SHAPE, dtype=np.float32)
    labels[2:5, 3:7, 4:9] = 1  # box, 60 voxels
    heat[2:5, 3:7, 4:9] = 0.9
    labels[8, 10, 2:9] = 1  # L: 7 along i ...
    labels[8, 11:16, 2] = 1  # ... + 5 along j
    heat[8, 10:16, 2:9] = 0.5
    labels[8:10, 2:4, 14:16] = 2  # cube, 8 voxels
    heat[8:10, 2:4, 14:16] = 0.7
    affine = phantom_affine()
    names = {1: "nodule", 2: "mass"}
    findings = extract_findings(labels, affine, names, heat, series_uid=SERIES_UID)
    lm = LabelMap(labels, affine, [Label(1, "nodule", (255, 0, 0)), Label(2, "mass", (0, 0, 255))],
                  series_uid=SERIES_UID)
    return InferenceResult(
        lm, HeatMap(heat, affine, series_uid=SERIES_UID), findings,
        {"request_id": "req-1", "model": {"id": "phantom-pack", "name": "Phantom",
                                          "version": "1.0", "files": {"model.onnx": "ab" * 32}},
         "provider": "CPUExecutionProvider", "parameters": {"tile_batch": 1}})


def add_series(library: Library, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    instances = []
    for n in range(SHAPE[0]):
        path = folder / f"f{n}.dcm"
        path.write_bytes(bytes([n]) * 100)
        instances.append(NewInstance(
            sop_instance_uid=f"{SERIES_UID}.{n + 1}", sop_class_uid=CT_IMAGE,
            transfer_syntax_uid="1.2.840.10008.1.2.1", path=path.absolute(), member=None,
            file_size=100, mtime=path.stat().st_mtime, instance_number=n + 1,
            position=(0.0, 0.0, 2.5 * n)))
    stack = NewStack(
        patient_id="P1", patient_name="DOE^JANE", birth_date="19700101",
        study_uid=f"{SERIES_UID}.0", study_date="20240131", study_time="101500",
        study_description="CT chest", accession_number="A1", series_uid=SERIES_UID,
        stack_key="16x20/axial", object_kind="image", modality="CT", series_number=2,
        description="Chest", body_part="CHEST", frame_of_reference_uid="1.2.3",
        rows=SHAPE[1], columns=SHAPE[2], is_localizer=False, instances=tuple(instances))
    library.index_stack(stack)
    return library.get_series(SERIES_UID).id


@dataclass
class RecordedRun:
    folder: Path
    library: Library
    series_id: int
    run_id: int


@pytest.fixture
def recorded_run(tmp_path: Path) -> object:
    from app.runs import record_run

    folder = tmp_path / "library"
    library = Library.open(folder)
    series_id = add_series(library, tmp_path / "dicom")
    run_id = record_run(library, series_id, phantom_result(), actor="tester")  # type: ignore[arg-type]
    yield RecordedRun(folder, library, series_id, run_id)
    library.close()
