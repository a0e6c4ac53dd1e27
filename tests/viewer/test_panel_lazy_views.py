"""ViewerPanel makes its slice views on first need (issue 19, start-up): none before an
image, only the cells shown when a layout for that image comes at once, and a view made
late shows the panel's state (volume, overlay and its style, tool, toggles)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.volume import Label, LabelMap, Volume

SHOTS = Path("/tmp/shots/C2")
pytestmark = pytest.mark.gui


def slice_view_count(panel: object) -> int:
    from viewer.slice_view import SliceView

    return len(panel.findChildren(SliceView))  # type: ignore[attr-defined]


def test_no_view_before_an_image_then_the_layout_with_the_first_one(
        panel: object, gui: object, phantom_factory: Callable[[str], Volume]) -> None:
    assert slice_view_count(panel) == 0
    assert panel.layout_name() == "1x3"  # type: ignore[attr-defined]
    assert panel.built_slice_views() == {}  # type: ignore[attr-defined]
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    assert slice_view_count(panel) == 0, "placed after the caller's own layout, if any"
    gui.waitUntil(lambda: slice_view_count(panel) == 3, timeout=5000)  # type: ignore[attr-defined]
    views = panel.built_slice_views()  # type: ignore[attr-defined]
    assert sorted(views) == ["axial", "coronal", "sagittal"]
    assert all(v.isVisible() and v.volume is vol for v in views.values())
    assert panel.visible_view_names() == ["axial", "coronal", "sagittal"]  # type: ignore[attr-defined]


def test_cells_for_the_first_image_build_only_what_they_show_and_late_views_catch_up(
        panel: object, gui: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray],
        save: Callable[[np.ndarray, object], None]) -> None:
    vol = phantom_factory("axial")
    # Toggles and tool chosen before any view exists.
    panel.set_identity_visible(False)  # type: ignore[attr-defined]
    panel.set_crosshair_visible(False)  # type: ignore[attr-defined]
    panel.set_tool("distance")  # type: ignore[attr-defined]
    # As the main window does for a hanging rule: the volume, then its cells at once.
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_cells([("axial", None), ("axial", "lung")])  # type: ignore[attr-defined]
    gui.wait(50)  # type: ignore[attr-defined]
    assert slice_view_count(panel) == 2
    assert sorted(panel.built_slice_views()) == ["axial"]  # type: ignore[attr-defined]
    first, second = panel.cells()  # type: ignore[attr-defined]
    assert first.plane == second.plane == "axial" and first.isVisible() and second.isVisible()
    assert not first.identity_visible and not second.crosshair_visible
    assert second.tool == "distance"
    labels = LabelMap((vol.array > 200).astype(np.uint8), vol.affine,
                      [Label(1, "bright", (255, 0, 0))])
    panel.add_label_overlay("marks", labels)  # type: ignore[attr-defined]
    panel.set_overlay_style("marks", fill=False)  # type: ignore[attr-defined]
    # A layout change makes the two other planes now, in the panel's state.
    panel.set_layout("1x3")  # type: ignore[attr-defined]
    coronal = panel.built_slice_views()["coronal"]  # type: ignore[attr-defined]
    assert coronal.volume is vol and coronal.isVisible()
    assert coronal.tool == "distance" and not coronal.identity_visible
    assert not coronal.crosshair_visible
    assert coronal.overlay_names() == ["marks"] and not coronal.overlay_style("marks").fill
    assert "DOE" not in coronal.corner_texts()["top_left"]
    arr = grab(coronal)
    SHOTS.mkdir(parents=True, exist_ok=True)
    save(arr, SHOTS / "panel_late_coronal.png")
    h, w, _ = arr.shape
    # The phantom's tissue (a 90 mm cube of 40 HU) fills the middle of the late view.
    centre = arr[h // 2 - 5: h // 2 + 5, w // 2 - 5: w // 2 + 5].astype(int)
    corner = arr[5:15, w // 2 - 5: w // 2 + 5].astype(int)
    assert centre.mean() > corner.mean() + 40, (centre.mean(), corner.mean())


def test_a_view_reached_through_the_mapping_is_made_then_and_kept(
        panel: object, gui: object, phantom_factory: Callable[[str], Volume]) -> None:
    vol = phantom_factory("axial")
    labels = LabelMap((vol.array > 200).astype(np.uint8), vol.affine,
                      [Label(1, "bright", (255, 0, 0))])
    panel.add_label_overlay("early", labels, opacity=0.3)  # type: ignore[attr-defined]
    # Styles are kept before any view exists (and refused for unknown overlays).
    assert panel.overlay_style("early").opacity == pytest.approx(0.3)  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        panel.overlay_style("nothing")  # type: ignore[attr-defined]
    # Reaching the views places the waiting layout (callers expect it shown).
    sagittal = panel.slice_views()["sagittal"]  # type: ignore[attr-defined]
    assert panel.slice_views()["sagittal"] is sagittal  # type: ignore[attr-defined]
    assert slice_view_count(panel) == 3 and sagittal.isVisible()
    assert sagittal.overlay_names() == ["early"]
    gui.wait(20)  # type: ignore[attr-defined]
    made: list[object] = []
    panel.view_made.connect(made.append)  # type: ignore[attr-defined]
    _ = panel.views()["3d"]  # type: ignore[attr-defined]
    assert len(made) == 1 and made[0] is panel.views()["3d"]  # type: ignore[attr-defined]
