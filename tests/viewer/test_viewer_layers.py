"""Label overlays, thick slabs and layouts of the panel."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from core.volume import Label, LabelMap, Volume


def screen_point(view: object, centre_lps: np.ndarray, right_mm: float,
                 up_mm: float) -> tuple[int, int]:
    cx, cy = view.lps_to_display(centre_lps)  # type: ignore[attr-defined]
    scale = view.renderer.GetActiveCamera().GetParallelScale()  # type: ignore[attr-defined]
    ppm = view.height() / (2.0 * scale)  # type: ignore[attr-defined]
    return round(cx + right_mm * ppm), round(cy - up_mm * ppm)


def pixel(arr: np.ndarray, xy: tuple[int, int]) -> np.ndarray:
    x, y = xy
    return np.median(arr[y - 1: y + 2, x - 1: x + 2].reshape(-1, 3), axis=0)


@pytest.mark.gui
def test_label_overlay_is_a_coloured_translucent_layer(
        panel: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray]) -> None:
    vol = phantom_factory("flipped")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    c = vol.center_lps()
    # Label 1 in a 12 mm cube at 20 mm right (patient right = −L) and 20 mm anterior of centre.
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij")
    idx = np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1)
    d = vol.index_to_lps(idx) - (c + np.array([-20.0, -20.0, 0.0]))
    arr = np.all(np.abs(d) < 6.0, axis=1).reshape(vol.shape).astype(np.uint8)
    labels = LabelMap(arr, vol.affine, [Label(1, "nodule", (255, 0, 0))], vol.series_uid)
    panel.add_label_overlay("ai", labels, opacity=0.5)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    inside = screen_point(view, c, -20.0, 20.0)      # patient right → screen left; A → up
    mirror = screen_point(view, c, 20.0, -20.0)
    shot = grab(view)
    r, g, b = pixel(shot, inside)
    assert r > 100 and r > g + 60 and r > b + 60, (r, g, b)
    # 50 % red over tissue grey 10: r ≈ 0.5·255 + 0.5·10.
    assert r == pytest.approx(0.5 * 255 + 0.5 * 10.2, abs=12)
    assert np.ptp(pixel(shot, mirror)) < 6            # grey: no overlay on the other side
    # Coronal view shows it too (same LPS place).
    cor = panel.slice_views()["coronal"]  # type: ignore[attr-defined]
    panel.set_cursor_lps(c + np.array([-20.0, -20.0, 0.0]))  # type: ignore[attr-defined]
    r2, g2, _ = pixel(grab(cor), screen_point(cor, c, -20.0, 0.0))
    assert r2 > g2 + 60
    assert view.overlay_names() == ["ai"]
    panel.remove_overlay("ai")  # type: ignore[attr-defined]
    panel.set_cursor_lps(c)  # type: ignore[attr-defined]
    assert np.ptp(pixel(grab(view), inside)) < 6
    assert view.overlay_names() == []


@pytest.mark.gui
def test_thick_slab_modes(panel: object, phantom_factory: Callable[[str], Volume],
                          grab: Callable[[object], np.ndarray]) -> None:
    vol = phantom_factory("axial")                 # axial spacing 2 mm
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    c = vol.center_lps()
    # 12 mm superior of the bright sphere's centre: outside its 8 mm radius.
    view.scroll_slices(-6)
    assert view.slice_point_lps()[2] - c[2] == pytest.approx(11.0)   # centre lies half a slice off
    probe = screen_point(view, c, 30.0, 0.0)
    assert pixel(grab(view), probe)[0] == pytest.approx(10.2, abs=4)     # tissue
    panel.set_slab("mip", 30.0)  # type: ignore[attr-defined]
    assert pixel(grab(view), probe)[0] >= 250                               # sphere inside slab
    assert "MIP 30.0 mm" in view.corner_texts()["bottom_left"]
    panel.set_slab("mean", 30.0)  # type: ignore[attr-defined]
    mean_grey = pixel(grab(view), probe)[0]
    assert 15 < mean_grey < 250
    panel.set_slab("minip", 30.0)  # type: ignore[attr-defined]
    assert pixel(grab(view), probe)[0] == pytest.approx(10.2, abs=4)
    panel.set_slab("none", 0.0)  # type: ignore[attr-defined]
    assert pixel(grab(view), probe)[0] == pytest.approx(10.2, abs=4)
    assert "MIP" not in view.corner_texts()["bottom_left"]


@pytest.mark.gui
def test_layouts(panel: object, phantom_factory: Callable[[str], Volume], gui: object) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    assert panel.visible_view_names() == ["axial", "coronal", "sagittal"]  # type: ignore[attr-defined]
    panel.set_layout("1x1")  # type: ignore[attr-defined]
    assert panel.visible_view_names() == ["axial"]  # type: ignore[attr-defined]
    panel.set_layout("2x2")  # type: ignore[attr-defined]
    gui.wait(50)  # type: ignore[attr-defined]
    assert panel.visible_view_names() == ["axial", "coronal", "sagittal", "3d"]  # type: ignore[attr-defined]
    views = panel.views()  # type: ignore[attr-defined]
    assert views["3d"].volume is vol
    with pytest.raises(ValueError, match="layout"):
        panel.set_layout("3x3")  # type: ignore[attr-defined]
    panel.set_preset("lung")  # type: ignore[attr-defined]
    assert panel.window_level_values() == (1500.0, -600.0)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown preset"):
        panel.set_preset("nope")  # type: ignore[attr-defined]
    panel.clear()  # type: ignore[attr-defined]
    assert all(v.volume is None for v in panel.views().values())  # type: ignore[attr-defined]


@pytest.mark.gui
def test_progressive_loading_shows_slices_as_they_arrive(
        panel: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray]) -> None:
    full = phantom_factory("axial")
    loading = Volume(np.zeros_like(full.array), full.affine, modality="MR")
    panel.set_volume(loading)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    probe = screen_point(view, full.center_lps(), 30.0, 0.0)
    assert pixel(grab(view), probe)[0] < 5
    k = view.slice_index()
    loading.array[: k + 1] = full.array[: k + 1]       # the reader fills slices in place
    panel.refresh_slices()  # type: ignore[attr-defined]
    panel.loading_finished()  # type: ignore[attr-defined]
    width, level = panel.window_level_values()  # type: ignore[attr-defined]
    expected = np.clip((1000 - (level - width / 2)) / width, 0, 1) * 255
    assert pixel(grab(view), probe)[0] == pytest.approx(expected, abs=4)
    assert expected > 100


@pytest.mark.gui
def test_overlay_on_its_own_grid_lands_at_the_same_lps_place(
        panel: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray]) -> None:
    """A label map with a different affine (sagittal, coarser) is resliced by its own geometry."""
    vol = phantom_factory("axial")
    other = phantom_factory("sagittal")           # k → L, j → I, i → P; 1.2 × 1 × 1 mm
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    # Label the bright (left) sphere on the other grid: where its voxels are 1000.
    labels = LabelMap((other.array == 1000).astype(np.uint8), other.affine,
                      [Label(1, "marker", (0, 255, 0))])
    panel.add_label_overlay("other-grid", labels, opacity=0.5)  # type: ignore[attr-defined]
    for name, right in (("axial", 30.0), ("coronal", 30.0)):
        view = panel.slice_views()[name]  # type: ignore[attr-defined]
        shot = grab(view)
        r, g, b = pixel(shot, screen_point(view, vol.center_lps(), right, 0.0))
        # 50 % green over the white sphere: g ≈ 255, r and b ≈ 128.
        assert g > 240 and r == pytest.approx(127.5, abs=12) and b == pytest.approx(127.5, abs=12)
        r, g, b = pixel(shot, screen_point(view, vol.center_lps(), -right, 0.0))
        assert abs(int(g) - int(r)) < 6                # no overlay on the mirror side


@pytest.mark.gui
def test_overlay_edits_and_empty_slices(panel: object, phantom_factory: Callable[[str], Volume],
                                        grab: Callable[[object], np.ndarray]) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    arr = np.zeros(vol.shape, np.uint8)
    labels = LabelMap(arr, vol.affine, [Label(1, "x", (0, 0, 255))])
    panel.add_label_overlay("edit", labels, opacity=1.0)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    probe = screen_point(view, vol.center_lps(), -20.0, -20.0)
    assert np.ptp(pixel(grab(view), probe)) < 6          # empty label map: nothing drawn
    # Label a block on the shown slice only, in place, then refresh.
    k = view.slice_index()
    idx = np.round(vol.lps_to_index(vol.center_lps() + np.array([-20.0, 20.0, 0.0]))).astype(int)
    arr[k, idx[1] - 4: idx[1] + 5, idx[2] - 4: idx[2] + 5] = 1
    panel.refresh_overlay("edit")  # type: ignore[attr-defined]
    r, g, b = pixel(grab(view), probe)
    assert b > 240 and r < 15 and g < 15
    view.scroll_slices(3)                                 # a slice without labels
    assert np.ptp(pixel(grab(view), probe)) < 6
    view.scroll_slices(-3)
    assert pixel(grab(view), probe)[2] > 240


@pytest.mark.gui
def test_odd_volumes_single_slice_float_and_strided(
        panel: object, grab: Callable[[object], np.ndarray]) -> None:
    """A one-slice image (projection X-ray), float voxels and a non-contiguous array all show."""
    ramp = np.tile(np.linspace(0.0, 100.0, 80, dtype=np.float32), (1, 64, 1))   # along i
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([(0, 0, 1.0), (0, 0.5, 0), (0.5, 0, 0)])  # k→S, j→P, i→L
    xray = Volume(ramp, affine, modality="DX")
    panel.set_layout("1x3")  # type: ignore[attr-defined]
    panel.set_volume(xray)  # type: ignore[attr-defined]
    views = panel.slice_views()  # type: ignore[attr-defined]
    shot = grab(views["axial"])
    # The ramp rises along i (+L, screen right): darker left, brighter right.
    left = pixel(shot, tuple(round(c) for c in views["axial"].lps_to_display(
        xray.index_to_lps((0, 32, 8)))))[0]
    right = pixel(shot, tuple(round(c) for c in views["axial"].lps_to_display(
        xray.index_to_lps((0, 32, 72)))))[0]
    assert right > left + 100, (left, right)
    assert views["axial"].corner_texts()["bottom_left"].startswith("Axial  1/1")
    views["axial"].scroll_slices(1)                     # nowhere to go, no error
    grab(views["coronal"])                              # a single row: renders without error
    # A transposed (non-contiguous) int16 array is shown from a copy.
    base = np.arange(20 * 30 * 40, dtype=np.int16).reshape(40, 30, 20)
    strided = Volume(base.transpose(2, 1, 0), affine, modality="CT")
    assert not strided.array.flags.c_contiguous
    panel.set_volume(strided)  # type: ignore[attr-defined]
    panel.set_window_level(24000, 12000)  # type: ignore[attr-defined]
    assert grab(views["axial"])[..., 0].std() > 10
