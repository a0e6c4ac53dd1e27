"""app.runs: a recorded run's overlay reads back; a failed recording leaves nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import StoreError
from store import Library


def test_overlay_round_trip_and_gone_files(recorded_run: Any) -> None:
    from app.runs import load_run_overlay, runs_for_series
    from review import ReviewSession

    from .conftest import phantom_affine, phantom_result  # type: ignore[import-not-found]

    lm, heat = load_run_overlay(recorded_run.library, recorded_run.run_id)
    expected = phantom_result()
    assert np.array_equal(lm.array, expected.label_map.array)  # type: ignore[attr-defined]
    assert np.allclose(lm.affine, phantom_affine()) and heat is not None
    assert [lab.name for lab in lm.labels] == ["nodule", "mass"]
    ReviewSession.open(recorded_run.library, recorded_run.run_id).accept("m1")
    (summary,) = runs_for_series(recorded_run.library, recorded_run.series_id)
    assert (summary.reviewed, summary.total, summary.files_present) == (1, 3, True)
    shutil.rmtree(Path(recorded_run.folder) / "runs" / str(recorded_run.run_id))
    with pytest.raises(StoreError, match="files of model run 1 are gone"):
        load_run_overlay(recorded_run.library, recorded_run.run_id)
    (summary,) = runs_for_series(recorded_run.library, recorded_run.series_id)
    assert "gone" in summary.problem and summary.reviewed == 1


def test_failed_recording_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    import app.runs as runs

    from .conftest import add_series, phantom_result  # type: ignore[import-not-found]

    lib = Library.open(tmp_path / "lib")
    series_id = add_series(lib, tmp_path / "dicom")
    audit_before = len(lib.audit_rows())

    def broken(*_a: Any, **_k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs.ReviewStore, "create_run", broken)
    with pytest.raises(OSError):
        runs.record_run(lib, series_id, phantom_result(), actor="t")  # type: ignore[arg-type]
    assert lib.model_runs() == [] and len(lib.audit_rows()) == audit_before
    assert not any((tmp_path / "lib" / "runs").glob("*/*"))
    lib.close()
