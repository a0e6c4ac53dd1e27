"""3-D view: orientation of the default (anterior) view, presets, interactive level of detail."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from core.volume import Volume


@pytest.fixture
def view3d(gui: object) -> Iterator[object]:
    from viewer.volume_view import VolumeView3D

    v = VolumeView3D()
    v.resize(400, 400)
    v.show()
    gui.waitExposed(v)  # type: ignore[attr-defined]
    yield v
    v.close_view()
    v.close()
    v.deleteLater()


@pytest.mark.gui
@pytest.mark.parametrize("kind", ["axial", "sagittal"])
def test_mip_from_the_front_shows_left_on_the_right_and_superior_up(
        view3d: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray],
        centroid: Callable[..., tuple[float, float, int]], save: Callable[..., None],
        kind: str) -> None:
    vol = phantom_factory(kind)
    view3d.window_level.set(1000, 500)  # type: ignore[attr-defined]
    view3d.set_volume(vol)  # type: ignore[attr-defined]
    view3d.apply_preset("mip")  # type: ignore[attr-defined]
    arr = grab(view3d)
    save(arr, f"/tmp/lucida_3d_{kind}.png")
    h, w, _ = arr.shape
    # Screen centre ≈ volume centre; MIP along A→P: left sphere 1000, superior 250.
    bx, by, bn = centroid(arr, 235, 255)
    sx, sy, sn = centroid(arr, 50, 78)
    assert bn > 30 and sn > 30
    assert bx > w / 2 + 20 and abs(by - h / 2) < 20, (bx, by)     # patient left → screen right
    assert sy < h / 2 - 20 and abs(sx - w / 2) < 20, (sx, sy)      # superior → up


@pytest.mark.gui
def test_presets_render_and_lod_during_interaction(
        view3d: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray], gui: object) -> None:
    vol = phantom_factory("axial")
    view3d.set_volume(vol)  # type: ignore[attr-defined]
    # ct-lung shows aerated lung only, which the phantom has none of (test_3d_presets.py
    # renders it on the demo chest): here it must render without error.
    for name in ("ct-bone", "ct-soft", "ct-lung", "mip"):
        view3d.apply_preset(name)  # type: ignore[attr-defined]
        arr = grab(view3d)
        if name != "ct-lung":
            assert (arr.max(axis=2) > 30).sum() > 200, f"{name} rendered nothing"
    with pytest.raises(ValueError, match="unknown 3-D preset"):
        view3d.apply_preset("nope")  # type: ignore[attr-defined]
    full = view3d.mapper.GetSampleDistance()  # type: ignore[attr-defined]
    # Refinement up to full quality whatever it costs here (the budget is
    # test_volume_progressive.py's subject).
    view3d.refine_budget_s = 1e3  # type: ignore[attr-defined]
    cam = view3d.renderer.GetActiveCamera()  # type: ignore[attr-defined]
    before = np.array(cam.GetPosition())
    # Rotate with a real left drag: coarse sampling while dragging, full after release.
    seen: list[bool] = []
    view3d.mapper.AddObserver(  # type: ignore[attr-defined]
        "StartEvent", lambda *_: seen.append(view3d.interactive))  # type: ignore[attr-defined]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind: QEvent.Type, x: float, y: float, b: Qt.MouseButton,
             bs: Qt.MouseButton) -> None:
        p = QPointF(x, y)
        QApplication.sendEvent(view3d, QMouseEvent(kind, p, view3d.mapToGlobal(p), b, bs,
                                                   Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, 200, 200, left, left)
    for x in (220, 240, 260):
        send(QEvent.Type.MouseMove, x, 200, none, left)
    assert view3d.interactive  # type: ignore[attr-defined]
    assert view3d.mapper.GetImageSampleDistance() > 1.0  # type: ignore[attr-defined]
    frames = view3d.full_quality_frames  # type: ignore[attr-defined]
    send(QEvent.Type.MouseButtonRelease, 260, 200, left, none)
    assert not view3d.interactive  # type: ignore[attr-defined]
    gui.waitUntil(lambda: view3d.full_quality_frames > frames,  # type: ignore[attr-defined]
                  timeout=20000)
    assert view3d.mapper.GetSampleDistance() == pytest.approx(full)  # type: ignore[attr-defined]
    assert view3d.mapper.GetImageSampleDistance() == 1.0  # type: ignore[attr-defined]
    assert True in seen, "no frame was rendered at interactive quality"
    assert not np.allclose(np.array(cam.GetPosition()), before), "the camera did not rotate"
    view3d.reset_view()  # type: ignore[attr-defined]
    assert np.allclose(cam.GetViewUp(), (0, 0, 1))


@pytest.mark.gui
def test_label_overlay_surfaces_in_3d(view3d: object, phantom_factory: Callable[[str], Volume],
                                      grab: Callable[[object], np.ndarray]) -> None:
    from core.volume import Label, LabelMap

    vol = phantom_factory("flipped")
    view3d.window_level.set(1000, 500)  # type: ignore[attr-defined]
    view3d.set_volume(vol)  # type: ignore[attr-defined]
    view3d.apply_preset("mip")  # type: ignore[attr-defined]
    # Label the superior (dim) sphere: a green blob must appear above the centre.
    labels = LabelMap((vol.array == 250).astype(np.uint8), vol.affine,
                      [Label(1, "marker", (0, 255, 0))])
    view3d.add_overlay("ai", labels)  # type: ignore[attr-defined]
    arr = grab(view3d).astype(int)
    h, w, _ = arr.shape
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    green = (g > 120) & (g > r + 60) & (g > b + 60)
    ys, xs = np.nonzero(green)
    assert xs.size > 30
    assert ys.mean() < h / 2 - 20 and abs(xs.mean() - w / 2) < 20
    view3d.remove_overlay("ai")  # type: ignore[attr-defined]
    arr = grab(view3d).astype(int)
    assert not ((arr[..., 1] > arr[..., 0] + 60) & (arr[..., 1] > 120)).any()


@pytest.mark.gui
def test_ct_mip_with_a_lung_window_shows_bone_and_vessels_not_a_white_body(
        view3d: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray]) -> None:
    from viewer.volume_view import CT_MIP_WINDOW

    vol = phantom_factory("axial")                     # CT: tissue 40, spheres 250–1000
    view3d.window_level.set(1500, -600)  # type: ignore[attr-defined]   # lung window
    view3d.set_volume(vol)  # type: ignore[attr-defined]
    view3d.apply_preset("mip")  # type: ignore[attr-defined]
    assert view3d.mip_window() == CT_MIP_WINDOW  # type: ignore[attr-defined]
    arr = grab(view3d).astype(float)
    h, w, _ = arr.shape
    lo, hi = CT_MIP_WINDOW
    tissue = arr[h // 2 + 25, w // 2 - 25, 0]          # away from every sphere
    expected = (40 - lo) / (hi - lo) * 255              # ≈ 66, not ≈ 237 (lung window)
    assert abs(tissue - expected) < 25, tissue
    # A window reaching above 300 HU is used as it is.
    view3d.window_level.set(1000, 500)  # type: ignore[attr-defined]
    assert view3d.mip_window() == (0.0, 1000.0)  # type: ignore[attr-defined]
