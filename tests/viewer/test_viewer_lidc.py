"""LIDC-IDRI-0001 in the viewer: three planes and 3-D render; screenshots saved as artifacts.

The series is read with dicomio.load.read_volume (the viewer itself never
imports dicomio); the pictures go to artifacts/screenshots/ under the
repository (git-ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.volume import Label, LabelMap, Volume
from dicomio.load import read_volume

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"


def read_lidc(shared_data: Path) -> Volume:
    files = sorted((shared_data / "ct" / "LIDC-IDRI-0001").glob("*.dcm"))
    assert len(files) >= 133
    return read_volume(files)


def nodule_lps(vol: Volume) -> np.ndarray:
    """Centre of the 4-reader nodule: column 316, row 367, z −115.9 mm (SOURCE.md)."""
    zs = vol.index_to_lps(np.stack([np.arange(vol.shape[0]), np.zeros(vol.shape[0]),
                                    np.zeros(vol.shape[0])], axis=1))[:, 2]
    k = int(np.argmin(np.abs(zs + 115.9)))
    return vol.index_to_lps((k, 367, 316))


@pytest.mark.gui
@pytest.mark.shared
def test_lidc_renders_three_planes_and_3d(panel: object, shared_data: Path,
                                          grab: Callable[[object], np.ndarray],
                                          save: Callable[..., None], gui: object) -> None:
    vol = read_lidc(shared_data)
    assert vol.modality == "CT"
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel.resize(1200, 1000)  # type: ignore[attr-defined]
    panel.set_layout("2x2")  # type: ignore[attr-defined]
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_preset("lung")  # type: ignore[attr-defined]
    panel.set_3d_preset("ct-bone")  # type: ignore[attr-defined]
    target = nodule_lps(vol)
    panel.set_cursor_lps(target)  # type: ignore[attr-defined]
    gui.wait(100)  # type: ignore[attr-defined]
    views = panel.views()  # type: ignore[attr-defined]
    for name in ("axial", "coronal", "sagittal"):
        view = views[name]
        arr = grab(view)
        save(arr, SHOTS / f"lidc_{name}.png")
        grey = arr[..., 0].astype(float)
        assert grey.std() > 20, f"{name}: the picture is flat"
        # The nodule (soft tissue, ≈ 0 HU) is bright in the lung window next to the cursor,
        # surrounded by dark lung.
        x, y = (round(c) for c in view.lps_to_display(target))
        patch = arr[y - 4: y + 5, x - 4: x + 5, 0].astype(float)
        assert np.median(patch) > 150, f"{name}: no nodule at the crosshair"
        assert view.orientation_letters()["right"] in ("L", "P")
    v3 = views["3d"]
    arr3 = grab(v3)
    save(arr3, SHOTS / "lidc_3d.png")
    assert (arr3.max(axis=2) > 40).sum() > 5000, "3-D view rendered nothing"
    # A detector-like result: the nodule's soft tissue within 15 mm of its centre,
    # shown in every view; in 3-D as a surface seen between the ribs (bone preset).
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij", sparse=True)
    c, sp = vol.lps_to_index(target), vol.spacing_mm
    ball = (((kk - c[0]) * sp[0]) ** 2 + ((jj - c[1]) * sp[1]) ** 2
            + ((ii - c[2]) * sp[2]) ** 2) < 15.0 ** 2
    labels = LabelMap((ball & (vol.array > -400)).astype(np.uint8), vol.affine,
                      [Label(1, "nodule", (40, 255, 40))], vol.series_uid)
    panel.add_label_overlay("nodule", labels)  # type: ignore[attr-defined]
    panel.set_3d_preset("ct-bone")  # type: ignore[attr-defined]
    # The nodule sits against the posterior chest wall: look from behind.
    v3.renderer.GetActiveCamera().Azimuth(180.0)
    v3.renderer.ResetCameraClippingRange()
    shot = grab(panel)
    save(shot, SHOTS / "lidc_panel_2x2_nodule.png")
    arr3 = grab(v3).astype(int)
    save(arr3.astype(np.uint8), SHOTS / "lidc_3d_nodule_posterior.png")
    r, g, b = arr3[..., 0], arr3[..., 1], arr3[..., 2]
    green = (g > 100) & (g > r + 40) & (g > b + 40)   # no preset colour is this green
    assert green.sum() > 20, "the nodule surface is not visible in 3-D"
    ax = grab(views["axial"]).astype(int)
    x, y = (round(c) for c in views["axial"].lps_to_display(target))
    patch = ax[y - 6: y + 7, x - 6: x + 7]
    assert (patch[..., 1] > patch[..., 0] + 40).any(), "no overlay colour on the nodule"
    # The whole window, for the README and for people.
    save(grab(panel), SHOTS / "lidc_panel_2x2.png")
