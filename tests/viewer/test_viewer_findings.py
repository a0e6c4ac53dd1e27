"""Findings layer, smooth outlines, brush/eraser by real mouse events, focus_on."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.volume import Label, LabelMap, Volume

RED = (230, 40, 40)
NODULE_OFFSET = np.array([-20.0, -20.0, 0.0])      # patient right, anterior of the centre
NODULE_RADIUS = 6.0


def sphere_finding(vol: Volume, key: str, centre: np.ndarray, radius: float,
                   status: str, tag: str = "1") -> object:
    from viewer.findings import FindingShape

    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij")
    idx = np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1)
    full = (np.linalg.norm(vol.index_to_lps(idx) - centre, axis=1) <= radius).reshape(vol.shape)
    hit = np.argwhere(full)
    lo, hi = hit.min(axis=0), hit.max(axis=0) + 1
    crop = full[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return FindingShape(key, tuple(int(v) for v in lo), crop, RED, status, tag)


def pixel(arr: np.ndarray, xy: tuple[float, float]) -> np.ndarray:
    x, y = round(xy[0]), round(xy[1])
    return np.median(arr[y - 1: y + 2, x - 1: x + 2].reshape(-1, 3), axis=0)


def red_pixels(arr: np.ndarray) -> int:
    r, g, b = (arr[..., c].astype(int) for c in range(3))
    return int(np.count_nonzero((r > g + 60) & (r > b + 60)))


def around(arr: np.ndarray, xy: tuple[float, float], half: int = 60) -> np.ndarray:
    """The patch round a finding (the amber orientation letters would count as red)."""
    x, y = round(xy[0]), round(xy[1])
    return arr[y - half: y + half, x - half: x + half]


def coloured_pixels(arr: np.ndarray) -> int:
    a = arr.astype(int)
    return int(np.count_nonzero(a.max(axis=2) - a.min(axis=2) > 40))


def turning_angles_deg(points: np.ndarray) -> np.ndarray:
    d = np.diff(np.vstack([points, points[:1]]), axis=0)
    d = d[np.linalg.norm(d, axis=1) > 1e-9]
    a = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs((np.diff(np.concatenate([a, a[:1]])) + np.pi) % (2 * np.pi) - np.pi)
    return np.degrees(turn)


@pytest.fixture
def shown(panel: object, phantom_factory: Callable[[str], Volume]) -> tuple[object, Volume]:
    vol = phantom_factory("axial")                 # 2.0 × 0.9 × 0.8 mm, k → S
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    return panel, vol


@pytest.mark.gui
def test_findings_render_by_status(shown: tuple[object, Volume],
                                   grab: Callable[[object], np.ndarray],
                                   save: Callable[[np.ndarray, object], None]) -> None:
    panel, vol = shown
    c = vol.center_lps()
    centre = c + NODULE_OFFSET
    layer = panel.findings_layer  # type: ignore[attr-defined]
    layer.opacity = 0.5
    layer.set_findings([sphere_finding(vol, "f1", centre, NODULE_RADIUS, "accepted", "1")])
    panel.set_cursor_lps(centre)  # type: ignore[attr-defined]
    views = panel.slice_views()  # type: ignore[attr-defined]
    for name, view in views.items():
        shot = grab(view)
        r, g, b = pixel(shot, view.lps_to_display(centre))
        # Accepted: filled at 50 % over tissue grey (40 HU at W1000/L500 → 10).
        assert r == pytest.approx(0.5 * 230 + 0.5 * 10.2, abs=14), (name, r, g, b)
        assert r > g + 60, name
        mirror = c - NODULE_OFFSET
        mirror[planesafe(name)] = centre[planesafe(name)]
        assert np.ptp(pixel(shot, view.lps_to_display(mirror))) < 6, name
    if os.environ.get("LUCIDA_SHOTS"):
        save(grab(panel), Path(os.environ["LUCIDA_SHOTS"]) / "findings_accepted.png")
    ax = views["axial"]
    ax.set_crosshair_visible(False)
    inside = ax.lps_to_display(centre)

    def near(arr: np.ndarray) -> np.ndarray:          # the finding and its tag, no letters
        x, y = round(inside[0]), round(inside[1])
        return arr[y - 60: y + 60, x - 60: x + 60]

    filled = red_pixels(near(grab(ax)))

    # Pending: outline only (dashed), nothing filled at the centre.
    layer.update(layer.get("f1").with_status("pending"))
    shot = grab(ax)
    assert np.ptp(pixel(shot, inside)) < 6
    dashed = red_pixels(near(shot))
    assert 20 < dashed < filled / 2, (dashed, filled)
    # Selected: thicker, brighter outline (more pixels).
    layer.set_selected("f1")
    assert coloured_pixels(near(grab(ax))) > coloured_pixels(near(shot)) * 1.4
    layer.set_selected(None)
    # Rejected: gone; shown on request as a grey dotted outline (still no red).
    layer.update(layer.get("f1").with_status("rejected"))
    assert red_pixels(near(grab(ax))) == 0
    layer.show_rejected = True
    shot = grab(ax)
    assert red_pixels(near(shot)) == 0
    ring = ax.lps_to_display(centre + np.array([NODULE_RADIUS, 0.0, 0.0]))
    x0, y0 = round(ring[0]), round(ring[1])
    patch = shot[y0 - 12: y0 + 13, x0 - 6: x0 + 7].astype(int)
    assert (patch.max(axis=2) > 120).any()       # grey dots around the border
    # Style: hidden layer draws nothing; fill off keeps only the outline.
    layer.update(layer.get("f1").with_status("accepted"))
    layer.visible = False
    assert red_pixels(near(grab(ax))) == 0
    layer.visible = True
    layer.fill = False
    assert np.ptp(pixel(grab(ax), inside)) < 6
    assert red_pixels(near(grab(ax))) > 20


def planesafe(name: str) -> int:
    return {"axial": 2, "coronal": 1, "sagittal": 0}[name]


@pytest.mark.gui
def test_outline_is_smooth_and_on_the_mask_border(shown: tuple[object, Volume]) -> None:
    panel, vol = shown
    centre = vol.center_lps() + NODULE_OFFSET
    layer = panel.findings_layer  # type: ignore[attr-defined]
    shape = sphere_finding(vol, "f1", centre, NODULE_RADIUS, "accepted")
    layer.set_findings([shape])
    panel.set_cursor_lps(centre)  # type: ignore[attr-defined]
    ax = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    lines = ax.finding_outline_points("f1")
    assert len(lines) == 1
    pts = lines[0]
    assert len(pts) > 60
    # Every outline point lies between an inside and an outside voxel centre of the slice.
    g = ax.geometry_
    k = ax.slice_index()
    jj, ii = np.meshgrid(np.arange(vol.shape[1]), np.arange(vol.shape[2]), indexing="ij")
    kji = np.stack([np.full(jj.size, k), jj.ravel(), ii.ravel()], axis=1)
    xy = np.array([g.to_plane(p)[:2] for p in vol.index_to_lps(kji)])
    inside = np.zeros(len(kji), bool)
    for n, v in enumerate(kji):
        inside[n] = shape.contains_index(v)
    for p in pts:
        d = np.linalg.norm(xy - p, axis=1)
        assert d[inside].min() < 1.0 and d[~inside].min() < 1.0
    # Smooth: no staircase corners (a voxel outline turns by 90°).
    assert turning_angles_deg(pts).max() < 40.0


@pytest.mark.gui
def test_label_overlay_style_and_smooth_outline_from_a_coarse_grid(
        shown: tuple[object, Volume], grab: Callable[[object], np.ndarray]) -> None:
    panel, vol = shown
    centre = vol.center_lps() + NODULE_OFFSET
    # A 3 mm model grid (axes aligned with the volume), a 7 mm ball on it.
    aff = np.array([[0, 0, 3.0, 0], [0, 3.0, 0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    aff[:3, 3] = centre - aff[:3, :3] @ np.array([10.0, 10.0, 10.0])
    kk, jj, ii = np.meshgrid(*[np.arange(21)] * 3, indexing="ij")
    idx = np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1)
    pts = idx @ aff[:3, :3].T + aff[:3, 3]
    arr = (np.linalg.norm(pts - centre, axis=1) <= 7.0).reshape(21, 21, 21).astype(np.uint8)
    panel.add_label_overlay("coarse", LabelMap(arr, aff, [Label(1, "n", (255, 0, 0))]),  # type: ignore[attr-defined]
                            opacity=0.5)
    panel.set_cursor_lps(centre)  # type: ignore[attr-defined]
    ax = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    lines = ax.overlay_outline_points("coarse")
    assert len(lines) == 1
    assert turning_angles_deg(lines[0]).max() < 40.0
    radii = np.linalg.norm(lines[0] - ax.geometry_.to_plane(centre)[:2], axis=1)
    assert 4.5 < radii.min() and radii.max() < 9.0
    inside = ax.lps_to_display(centre)
    assert pixel(grab(ax), inside)[0] > 100
    panel.set_overlay_style("coarse", fill=False)  # type: ignore[attr-defined]
    shot = grab(ax)
    assert np.ptp(pixel(shot, inside)) < 6                  # outline only
    assert red_pixels(around(shot, inside)) > 20
    panel.set_overlay_style("coarse", visible=False)  # type: ignore[attr-defined]
    assert red_pixels(around(grab(ax), inside)) == 0
    panel.set_overlay_style("coarse", visible=True, fill=True, outline=False, opacity=1.0)  # type: ignore[attr-defined]
    r, g, _b = pixel(grab(ax), inside)
    assert r > 240 and g < 15


@pytest.mark.gui
def test_brush_and_eraser_by_mouse(shown: tuple[object, Volume], gui: object,
                                   grab: Callable[[object], np.ndarray]) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from viewer.brush import stroke_voxels
    from viewer.findings import FindingShape

    panel, vol = shown
    ax = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    strokes: list[object] = []
    panel.paint_stroke.connect(strokes.append)  # type: ignore[attr-defined]
    panel.set_tool("brush")  # type: ignore[attr-defined]
    panel.set_brush_radius_mm(3.0)  # type: ignore[attr-defined]
    c = vol.center_lps()
    c[2] = ax.slice_point_lps()[2]                      # on the shown slice
    a_lps, b_lps = c + np.array([-25.0, 10.0, 0.0]), c + np.array([-12.0, 16.0, 0.0])
    a = QPoint(*(round(v) for v in ax.lps_to_display(a_lps)))
    b = QPoint(*(round(v) for v in ax.lps_to_display(b_lps)))
    mid = QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2)
    QTest.mousePress(ax, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(ax, mid)
    QTest.mouseMove(ax, b)
    QTest.mouseRelease(ax, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert [s.finished for s in strokes] == [False, False, False, True]
    assert all(s.plane == "axial" and not s.erase and s.radius_mm == 3.0 for s in strokes)
    assert [len(s.points_lps) for s in strokes] == [1, 2, 2, 1]
    px_mm = ax.mm_per_px()
    assert np.linalg.norm(strokes[0].points_lps[0] - a_lps) < 1.5 * px_mm + 0.01
    assert np.linalg.norm(strokes[-1].points_lps[0] - b_lps) < 1.5 * px_mm + 0.01
    assert np.allclose(strokes[1].points_lps[1], strokes[2].points_lps[0])
    # The app turns the strokes into voxels: a 3 mm capsule from a to b on this slice only.
    path = np.vstack([strokes[0].points_lps] + [s.points_lps[1:] for s in strokes[1:3]])
    offset, crop = stroke_voxels(vol.affine, vol.shape, "axial", path, 3.0)
    assert crop.shape[0] == 1 and offset[0] == ax.slice_index()
    got = {tuple(v + np.array(offset)) for v in np.argwhere(crop)}
    k = ax.slice_index()
    for v in [(k, *np.round(vol.lps_to_index(p)[1:]).astype(int)) for p in (a_lps, b_lps)]:
        assert tuple(v) in got
    mid_lps = (a_lps + b_lps) / 2.0
    perp = np.array([-(b_lps - a_lps)[1], (b_lps - a_lps)[0], 0.0])
    perp /= np.linalg.norm(perp)
    far = np.round(vol.lps_to_index(mid_lps + 4.5 * perp)).astype(int)
    near = np.round(vol.lps_to_index(mid_lps + 2.0 * perp)).astype(int)
    assert (k, far[1], far[2]) not in got and (k, near[1], near[2]) in got
    layer = panel.findings_layer  # type: ignore[attr-defined]
    full = np.zeros(vol.shape, bool)
    full[offset[0]:offset[0] + crop.shape[0], offset[1]:offset[1] + crop.shape[1],
         offset[2]:offset[2] + crop.shape[2]] = crop
    layer.set_findings([FindingShape("drawn", offset, crop, RED, "added-by-reader")])
    assert pixel(grab(ax), ax.lps_to_display(mid_lps))[0] > 60
    # Eraser: the same drag emits erase=True; its voxels cleared from the finding.
    strokes.clear()
    panel.set_tool("eraser")  # type: ignore[attr-defined]
    QTest.keyClick(ax, Qt.Key.Key_BracketRight)        # radius 3 → 3.75 mm in every view
    assert panel.brush_radius_mm == pytest.approx(3.75)  # type: ignore[attr-defined]
    assert panel.slice_views()["coronal"].brush_radius_mm == pytest.approx(3.75)  # type: ignore[attr-defined]
    QTest.mousePress(ax, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, mid)
    QTest.mouseRelease(ax, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, mid)
    assert [s.erase for s in strokes] == [True, True] and strokes[-1].finished
    e_off, e_crop = stroke_voxels(vol.affine, vol.shape, "axial", strokes[0].points_lps, 3.75)
    full[e_off[0]:e_off[0] + e_crop.shape[0], e_off[1]:e_off[1] + e_crop.shape[1],
         e_off[2]:e_off[2] + e_crop.shape[2]] &= ~e_crop
    m = full[offset[0]:offset[0] + crop.shape[0], offset[1]:offset[1] + crop.shape[1],
             offset[2]:offset[2] + crop.shape[2]]
    t0 = time.perf_counter()
    layer.update(FindingShape("drawn", offset, m, RED, "edited"))
    ax.render_now()
    print(f"\none finding update + axial render: {(time.perf_counter() - t0) * 1000:.1f} ms")
    shot = grab(ax)
    assert np.ptp(pixel(shot, ax.lps_to_display(mid_lps))) < 6       # erased hole
    assert pixel(shot, ax.lps_to_display(a_lps))[0] > 60             # the rest stays
    QTest.keyClick(ax, Qt.Key.Key_BracketLeft)
    assert panel.brush_radius_mm == pytest.approx(3.0)  # type: ignore[attr-defined]


@pytest.mark.gui
def test_finding_click_emits_its_key(shown: tuple[object, Volume]) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    panel, vol = shown
    centre = vol.center_lps() + NODULE_OFFSET
    layer = panel.findings_layer  # type: ignore[attr-defined]
    layer.set_findings([sphere_finding(vol, "n7", centre, NODULE_RADIUS, "pending", "7")])
    clicked: list[str] = []
    panel.finding_clicked.connect(clicked.append)  # type: ignore[attr-defined]
    ax = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    panel.set_cursor_lps(centre)  # type: ignore[attr-defined]
    inside = QPoint(*(round(v) for v in ax.lps_to_display(centre)))
    outside = QPoint(*(round(v) for v in ax.lps_to_display(vol.center_lps())))
    QTest.mouseClick(ax, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, outside)
    assert clicked == []
    QTest.mouseClick(ax, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, inside)
    assert clicked == ["n7"]


@pytest.mark.gui
def test_focus_on_at_300_percent_centres_every_view_and_the_3d_camera(
        shown: tuple[object, Volume], gui: object) -> None:
    panel, vol = shown
    panel.set_layout("2x2")  # type: ignore[attr-defined]
    gui.wait(50)  # type: ignore[attr-defined]
    views = panel.slice_views()  # type: ignore[attr-defined]
    for view in views.values():
        view.set_zoom(3.0)
    target = vol.center_lps() + np.array([-33.0, 31.0, -28.0])   # right, posterior, inferior
    offscreen = 0
    for view in views.values():
        x, y = view.lps_to_display(target)
        offscreen += not (0 <= x < view.width() and 0 <= y < view.height())
    assert offscreen >= 2                       # the reported case: lost in two planes
    panel.focus_on(target)  # type: ignore[attr-defined]
    for name, view in views.items():
        x, y = view.lps_to_display(target)
        assert x == pytest.approx((view.width() - 1) / 2.0, abs=1.0), name
        assert y == pytest.approx((view.height() - 1) / 2.0, abs=1.0), name
        g = view.geometry_
        assert abs(g.to_plane(target)[2] - g.to_plane(view.slice_point_lps())[2]) \
            <= g.step_mm / 2 + 1e-6, name                         # scrolled to it
        assert view.zoom_factor() == pytest.approx(3.0)           # already closer: kept
    cam = panel.views()["3d"].renderer.GetActiveCamera()  # type: ignore[attr-defined]
    assert np.allclose(cam.GetFocalPoint(), target, atol=1e-6)
    # extent_mm: zooms in so 10 mm fill about a third of the shorter side.
    for view in views.values():
        view.reset_view()
    panel.focus_on(target, extent_mm=10.0)  # type: ignore[attr-defined]
    for name, view in views.items():
        short_px = min(view.width(), view.height())
        assert 10.0 / view.mm_per_px() * view.devicePixelRatioF() == \
            pytest.approx(short_px / 3.0, rel=0.05), name
        x, y = view.lps_to_display(target)
        assert x == pytest.approx((view.width() - 1) / 2.0, abs=1.0), name

    # Already close on a small finding, then a large one: it must fit, so the view zooms out.
    panel.focus_on(target, extent_mm=4.0)  # type: ignore[attr-defined]
    panel.focus_on(target, extent_mm=76.0)  # type: ignore[attr-defined]
    for name, view in views.items():
        short_px = min(view.width(), view.height())
        span = 76.0 / view.mm_per_px() * view.devicePixelRatioF()
        assert span <= 0.9 * short_px, name
        assert span >= 0.85 * short_px, name  # just fits: not shrunk to a third of the view
