"""What start-up leaves for later still happens, and behaves the same, when it is needed:
the comparison pane made on its first use, scipy imported by what uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.volume import Volume

WAIT_MS = 60_000
FOR_UID = "1.2.826.0.1.3680043.8.498.4242424242"


def cube_phantom(shift: int = 0) -> Volume:
    """A small CT: air with a bright cube, 1.5 mm voxels."""
    array = np.full((24, 64, 64), -1000.0)
    array[8:16, 20 + shift:44 + shift, 20:44] = 400.0
    affine = np.diag([2.0, 1.5, 1.5, 1.0])
    affine[:3, 3] = (-40.0, -48.0, -48.0)
    return Volume(np.rint(array).astype(np.int16), affine, modality="CT")


def write_and_import(library_dir: Path, tmp_path: Path) -> dict[str, int]:
    from app.importer import import_paths
    from dicomio.write_image import SeriesInfo, write_series
    from store import Library

    for name, shift, date in (("Current", 0, "20250601"), ("Prior", 3, "20240601")):
        write_series(cube_phantom(shift), tmp_path / name, SeriesInfo(
            patient_id="PID-LAZY", patient_name="LAZY^PATIENT", study_date=date,
            series_description=name, frame_of_reference_uid=FOR_UID),
            rescale_intercept=-1024.0)
    library = Library.open(library_dir)
    try:
        import_paths(library, [tmp_path / "Current", tmp_path / "Prior"])
        return {s.series_description: s.id for s in library.all_series()}
    finally:
        library.close()


@pytest.mark.gui
def test_comparison_pane_made_on_first_use_follows_earlier_toggles(
        tmp_path: Path, library_dir: Path, make_window: Any, qt: Any) -> None:
    from viewer.slice_view import SliceView

    ids = write_and_import(library_dir, tmp_path)
    window = make_window(library_dir)
    compare = window.compare
    # Start-up made no slice view: the primary panel makes its views with the first image.
    assert compare._panel is None and compare._link is None
    assert len(window.findChildren(SliceView)) == 0
    # Identity and crosshair hidden before any comparison exists...
    window.set_identity_visible(False)
    window.act_crosshair.setChecked(False)
    assert compare._panel is None
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(ids["Current"])
    with qt.waitSignal(compare.loaded, timeout=WAIT_MS):
        compare.open_series(ids["Prior"])
    # ...hold in the pane made now, which shows the prior and is linked.
    panel = compare.panel
    assert panel.parent() is compare.pane and compare.pane.isVisible()
    assert len(window.findChildren(SliceView)) >= 6
    assert not panel.crosshair_visible()
    axial = panel.slice_views()["axial"]
    assert axial.volume is not None and axial.isVisible()
    assert "LAZY" not in axial.corner_texts()["top_left"]  # neither name nor ID
    assert compare.link.linked
    # Later toggles reach it as before.
    window.act_crosshair.setChecked(True)
    assert panel.crosshair_visible()
    window.set_identity_visible(True)
    assert "LAZY" in axial.corner_texts()["top_left"]
    compare.close()
    assert compare.panel is panel and not compare.link.linked


HEAVY = ("scipy", "onnxruntime", "onnx", "SimpleITK", "highdicom", "dicognito")


def test_window_and_series_opening_modules_leave_heavy_imports_for_later() -> None:
    """The window, the reader and the review, runs and measures a series opens with leave
    scipy (~0.3 s), onnxruntime, SimpleITK, highdicom ... to the functions that use them;
    those still work."""
    code = (
        "import json, sys\n"
        "import app.gui, app.main_window, app.series_session, app.runs, review.session\n"
        "import core.measure, core.resample, dicomio.load, dicomio.projection, app.importer\n"
        f"before = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "import numpy as np\n"
        "from core.measure import mask_diameter_mm\n"
        "m = np.zeros((5, 5, 5), bool); m[1:4, 1:4, 1:4] = True\n"
        "d = mask_diameter_mm(m, (0, 0, 0), np.eye(4))\n"
        "print(json.dumps({'before': before, 'after': 'scipy' in sys.modules, 'd': d}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["before"] == []
    assert result["after"] is True
    assert result["d"] == pytest.approx(np.sqrt(12.0))
