"""The scale bar drawn on screen is as long as its label says, after layout changes and zoom."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from core.volume import Volume


def drawn_bar(arr: np.ndarray) -> tuple[int, int]:
    """(x0, x1) of the longest light-grey horizontal run near the bar's row (34 px up)."""
    h = arr.shape[0]
    best = (0, -1)
    for y in range(h - 38, h - 30):
        row = arr[y, :, :].astype(int)
        grey = (np.abs(row[:, 0] - row[:, 1]) < 12) & (row[:, 0] > 150)
        xs = np.nonzero(grey)[0]
        if xs.size == 0:
            continue
        # Split into runs; keep the longest.
        breaks = np.nonzero(np.diff(xs) > 1)[0]
        starts = np.concatenate([[xs[0]], xs[breaks + 1]])
        ends = np.concatenate([xs[breaks], [xs[-1]]])
        i = int(np.argmax(ends - starts))
        if ends[i] - starts[i] > best[1] - best[0]:
            best = (int(starts[i]), int(ends[i]))
    return best


@pytest.mark.gui
@pytest.mark.parametrize("layout, zoom", [("1x3", 1.0), ("2x2", 1.0), ("2x2", 1.7), ("1x1", 0.6)])
def test_scale_bar_matches_its_label(panel: object, phantom_factory: Callable[[str], Volume],
                                     grab: Callable[[object], np.ndarray], layout: str,
                                     zoom: float) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    panel.resize(1300, 900)  # type: ignore[attr-defined]
    panel.set_layout("1x3")  # type: ignore[attr-defined]
    grab(panel.slice_views()["axial"])  # type: ignore[attr-defined]
    panel.set_layout(layout)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    view.set_zoom(zoom)
    arr = grab(view)
    scale = view.renderer.GetActiveCamera().GetParallelScale()
    px_per_mm = view.height() / (2.0 * scale)
    expected_px = view.scale_length_mm * px_per_mm
    assert view.scale_length_mm > 0
    assert view.scale_label.GetInput() == f"{view.scale_length_mm:g} mm"
    x0, x1 = drawn_bar(arr)
    assert abs((x1 - x0) - expected_px) <= 2.0, (x0, x1, expected_px)
    assert abs((x0 + x1) / 2.0 - view.width() / 2.0) <= 2.0
