"""3-D presets: "ct-lung" shows aerated lung, not bone (demo chest CT); an MR's MIP takes its
window from the MR's own intensities and is not a saturated blob (real MR series)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from core.volume import Volume
from viewer.presets import VOLUME_PRESETS

SHOTS = Path("/tmp/shots18/h5")


def opacity_at(name: str, hu: float) -> float:
    pts = VOLUME_PRESETS[name].opacity_points
    return float(np.interp(hu, [p[0] for p in pts], [p[1] for p in pts]))


def test_ct_lung_transfer_function_at_known_hu() -> None:
    from dicomio.demo import HU_AIR, HU_CORTICAL, HU_LUNG, HU_MARROW, HU_SOFT

    parenchyma = opacity_at("ct-lung", HU_LUNG)               # −875 HU
    walls = opacity_at("ct-lung", -500.0)                      # partial-volume borders
    assert opacity_at("ct-lung", HU_AIR) == 0.0                # air around the body is clear
    assert opacity_at("ct-lung", -1024.0) == 0.0
    assert parenchyma > 0.0                                    # aerated lung shows …
    # … semi-transparent: 10 cm of parenchyma (1 mm steps) lets a third of the light through.
    assert (1.0 - parenchyma) ** 100 > 0.3
    assert walls > parenchyma
    assert opacity_at("ct-lung", HU_SOFT) == 0.0               # chest wall, heart, vessels clear
    for bone in (HU_MARROW, HU_CORTICAL, 1200.0):
        assert opacity_at("ct-lung", bone) < parenchyma * 1.5  # bone a ghost, not dominant
        assert opacity_at("ct-lung", bone) < 0.2 * walls


@pytest.fixture
def view3d(gui: object) -> Iterator[object]:
    from viewer.volume_view import VolumeView3D

    v = VolumeView3D()
    v.resize(420, 420)
    v.show()
    gui.waitExposed(v)  # type: ignore[attr-defined]
    yield v
    v.close_view()
    v.close()
    v.deleteLater()


def _lit(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr.max(axis=2) > 40)


@pytest.mark.gui
def test_ct_lung_render_of_the_demo_chest_shows_lung_not_bone(
        view3d: object, grab: Callable[[object], np.ndarray],
        save: Callable[..., None]) -> None:
    from dicomio.demo import build_demo_volume

    vol = build_demo_volume((60, 128, 128))
    view3d.set_volume(vol)  # type: ignore[attr-defined]
    view3d.apply_preset("ct-lung")  # type: ignore[attr-defined]
    lung = grab(view3d)
    SHOTS.mkdir(parents=True, exist_ok=True)
    save(lung, SHOTS / "ct_lung_demo.png")
    view3d.apply_preset("ct-bone")  # type: ignore[attr-defined]
    bone = grab(view3d)
    save(bone, SHOTS / "ct_bone_demo.png")
    h, w, _ = lung.shape
    lit = _lit(lung)
    assert lit.sum() > 0.10 * h * w, "ct-lung shows almost nothing"
    # Lung colour (warm pink, red well above blue), not bone white, is what is seen.
    r, g, b = (lung[..., c].astype(int) for c in range(3))
    pink = lit & (r > b + 25)
    white = lit & (np.minimum(np.minimum(r, g), b) > 170)
    assert pink.sum() > 0.6 * lit.sum(), (pink.sum(), lit.sum())
    assert white.sum() < 0.02 * lit.sum(), white.sum()
    # The lungs sit left and right of the midline (mediastinum and spine between them are
    # clear): the centre column is darker than either lung.
    grey = lung.max(axis=2).astype(float)
    rows = slice(int(h * 0.35), int(h * 0.6))
    centre = grey[rows, int(w * 0.48): int(w * 0.52)].mean()
    sides = min(grey[rows, int(w * 0.3): int(w * 0.4)].mean(),
                grey[rows, int(w * 0.6): int(w * 0.7)].mean())
    assert sides > 100 and centre < 0.8 * sides, (centre, sides)
    # ct-bone on the same data is a different picture (bone white where lung was pink).
    assert _lit(bone).sum() > 0 and not np.array_equal(_lit(bone), lit)


def _saturation(arr: np.ndarray) -> tuple[float, int]:
    """Fraction of lit pixels at (near) full white, and the lit count."""
    grey = arr.max(axis=2).astype(int)
    lit = grey > 20
    return float((grey[lit] >= 250).mean()) if lit.any() else 0.0, int(lit.sum())


@pytest.mark.gui
def test_mr_mip_is_windowed_from_the_mr_not_saturated(
        view3d: object, shared_data: Path, grab: Callable[[object], np.ndarray],
        save: Callable[..., None]) -> None:
    from dicomio.load import read_volume
    from viewer.presets import auto_window
    from viewer.volume_view import mip_percentile_window

    files = sorted((shared_data / "mr" / "Siemens_Trio_T1_MPRAGE").glob("*.dcm"))
    assert files
    vol = read_volume(files)
    assert vol.modality == "MR"
    # The MR opens with its slice window (percentiles), as the panel gives it.
    width, level = auto_window(vol.array)
    view3d.window_level.set(width, level)  # type: ignore[attr-defined]
    view3d.set_volume(vol)  # type: ignore[attr-defined]
    view3d.apply_preset("mip")  # type: ignore[attr-defined]
    lo, hi = view3d.mip_window()  # type: ignore[attr-defined]
    assert (lo, hi) == mip_percentile_window(vol)
    assert hi > level + width / 2.0                   # above the slice window's top
    assert hi <= float(vol.array.max())
    arr = grab(view3d)
    SHOTS.mkdir(parents=True, exist_ok=True)
    save(arr, SHOTS / "mr_mip.png")
    saturated, lit = _saturation(arr)
    assert lit > 0.15 * arr.shape[0] * arr.shape[1]
    assert saturated < 0.05, saturated
    # Grey levels spread (a picture, not a blob): many distinct values among lit pixels.
    grey = arr.max(axis=2)
    assert np.unique(grey[grey > 20]).size > 100
    # The old behaviour (the slice window as MIP window) saturates: the test can tell.
    view3d._mip_auto = (level - width / 2.0, level + width / 2.0)  # type: ignore[attr-defined]
    view3d.apply_preset("mip")  # type: ignore[attr-defined]
    old = grab(view3d)
    save(old, SHOTS / "mr_mip_slice_window.png")
    assert _saturation(old)[0] > 2 * saturated


@pytest.mark.gui
def test_synthetic_mr_mip_window_ignores_ct_numbers(
        view3d: object, phantom_factory: Callable[[str], Volume]) -> None:
    from viewer.volume_view import CT_MIP_WINDOW

    ct = phantom_factory("axial")
    mr = Volume(ct.array.astype(np.float32) * 3.0 + 100.0, ct.affine, series_uid="9.9",
                modality="MR")
    view3d.window_level.set(1500, -600)  # type: ignore[attr-defined]   # a CT lung window
    view3d.set_volume(mr)  # type: ignore[attr-defined]
    view3d.apply_preset("mip")  # type: ignore[attr-defined]
    lo, hi = view3d.mip_window()  # type: ignore[attr-defined]
    assert (lo, hi) != CT_MIP_WINDOW
    assert 100.0 <= lo < hi <= 3100.0                 # within the MR's own values
    view3d.window_level.set(300, 50)  # type: ignore[attr-defined]   # slice window: no effect
    assert view3d.mip_window() == (lo, hi)  # type: ignore[attr-defined]
