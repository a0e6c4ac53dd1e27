"""3-D rendering is progressive and never blocks the GUI thread for a whole full-quality frame:
a QTimer heartbeat measures the longest stall while the view refines, against the blocking
full-quality frame the view used to draw; scrolling the slices interrupts refinement."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from core.volume import Volume


class Heartbeat:
    """Ticks every 5 ms from the event loop; ``longest`` is the largest gap between ticks."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.longest = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.longest = max(self.longest, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last, self.longest = 0.0, 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.longest


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.002)


@pytest.fixture
def big_3d(gui: Any) -> Iterator[Any]:
    from dicomio.demo import build_demo_volume
    from viewer.volume_view import VolumeView3D

    v = VolumeView3D()
    v.resize(700, 700)
    v.show()
    gui.waitExposed(v)
    v.set_volume(build_demo_volume((60, 128, 128)))
    v.apply_preset("ct-bone")
    spin(0.3)
    yield v
    v.close_view()
    v.close()
    v.deleteLater()


@pytest.mark.gui
def test_refinement_never_blocks_as_long_as_a_full_frame(big_3d: Any, gui: Any) -> None:
    from viewer.volume_view import REFINE_STEPS
    from viewer.vtkutil import render_window_rgb

    view = big_3d
    # Before: the view drew one full-quality frame on the GUI thread (render_now still does,
    # for pictures); that frame's duration is how long the whole app froze.
    t0 = time.perf_counter()
    view.render_now()
    full_s = time.perf_counter() - t0
    reference = render_window_rgb(view.GetRenderWindow()).astype(int)
    # Now: a request draws progressively while a heartbeat measures the stalls.
    beat = Heartbeat()
    beat.start()
    spin(0.03)                                   # ticking before the first frame
    with gui.waitSignal(view.refined, timeout=120_000) as done:
        view.request_render()
    spin(0.05)
    longest = beat.stop()
    step = done.args[0]
    print(f"\n3-D 700x700 demo CT: full frame {full_s:.3f} s (blocking, before); "
          f"progressive: longest GUI stall {longest:.3f} s, finished at step {step} "
          f"of {len(REFINE_STEPS) - 1}, last GUI-thread frame {view.last_frame_s:.3f} s")
    assert longest >= view.last_frame_s * 0.9       # the heartbeat saw the frames
    assert longest < 0.6 * full_s, (longest, full_s)
    # Full quality was reached all the same (steps within the budget, the rest from the
    # worker thread), and it is the same picture the blocking frame drew.
    assert step == len(REFINE_STEPS) - 1
    shown = render_window_rgb(view.GetRenderWindow()).astype(int)
    assert np.abs(shown - reference).mean() < 2.0
    assert (reference.max(axis=2) > 40).sum() > 5000          # a picture, not black


@pytest.mark.gui
def test_a_stale_background_frame_is_never_shown(big_3d: Any, gui: Any) -> None:
    from viewer.vtkutil import render_window_rgb

    view = big_3d
    view.refine_budget_s = 0.0                 # everything finer than coarse: the worker
    view.request_render()
    gui.waitUntil(lambda: view._worker is not None, timeout=20_000)
    first = view._generation
    # The camera moves while the worker renders the first frame.
    view.renderer.GetActiveCamera().Azimuth(40)
    with gui.waitSignal(view.refined, timeout=120_000):
        view.request_render()
    assert view._generation > first
    picture = render_window_rgb(view.GetRenderWindow()).astype(int)
    view.render_now()                                         # the new camera, blocking
    reference = render_window_rgb(view.GetRenderWindow()).astype(int)
    assert np.abs(picture - reference).mean() < 2.0


@pytest.mark.gui
def test_a_generous_budget_reaches_full_quality_in_steps(big_3d: Any, gui: Any) -> None:
    from viewer.volume_view import REFINE_STEPS

    view = big_3d
    view.refine_budget_s = 1e3
    steps: list[int] = []
    view.mapper.AddObserver("StartEvent", lambda *_: steps.append(view.refine_step))
    frames = view.full_quality_frames
    with gui.waitSignal(view.refined, timeout=120_000) as done:
        view.request_render()
    assert done.args[0] == len(REFINE_STEPS) - 1
    assert view.full_quality_frames == frames + 1
    assert steps[0] == -1 and steps == sorted(steps) and len(steps) >= 2   # coarse, then finer
    assert view.mapper.GetImageSampleDistance() == 1.0
    assert view.mapper.GetSampleDistance() == pytest.approx(view.full_sample_mm)


@pytest.mark.gui
def test_scrolling_the_slices_interrupts_refinement(
        gui: Any, phantom_factory: Callable[[str], Volume]) -> None:
    from viewer.panel import ViewerPanel

    panel = ViewerPanel()
    try:
        panel.resize(900, 700)
        panel.show()
        gui.waitExposed(panel)
        panel.set_layout("2x2")
        panel.set_volume(phantom_factory("axial"))
        view3d = panel.views()["3d"]
        view3d.refine_budget_s = 1e3           # refinement would run to full quality
        spin(0.3)
        steps: list[int] = []
        view3d.mapper.AddObserver("StartEvent", lambda *_: steps.append(view3d.refine_step))
        axial = panel.slice_views()["axial"]
        view3d.request_render()
        # Wait for the coarse frame, then scroll every 40 ms for 0.8 s, as a wheel would.
        gui.waitUntil(lambda: steps != [], timeout=20_000)
        start = len(steps)
        beat = Heartbeat()
        beat.start()
        end = time.perf_counter() + 0.8
        while time.perf_counter() < end:
            axial.scroll_slices(1)
            spin(0.04)
        during = steps[start:]
        longest = beat.stop()
        # At most the one step already under way when the scrolling began; none after it.
        assert len(during) <= 1, during
        assert longest < 1.0, longest
        # Scrolling stopped: refinement resumes and finishes.
        with gui.waitSignal(view3d.refined, timeout=60_000):
            pass
        assert len(steps) > start + len(during)
    finally:
        panel.shutdown()
        panel.close()
        panel.deleteLater()


@pytest.mark.gui
def test_a_large_volume_is_previewed_at_half_resolution_and_finished_at_full(
        big_3d: Any, gui: Any) -> None:
    """Above ``preview_min_voxels`` the GUI thread uploads and draws a half-resolution copy
    (LIDC-IDRI-0001's first 3-D frame blocked the app 4-7 s on software GL), while the
    picture it ends on is the worker's full-resolution frame, equal to the blocking one.
    Screenshots (render_now) use the full volume on this thread; label surfaces go to the
    worker with the volume, depth-mixed in its frame; an expose of an unchanged scene
    neither redraws nor restarts the refinement."""
    from viewer.vtkutil import render_window_rgb

    view = big_3d
    full_dims = view._image.GetDimensions()
    view.preview_min_voxels = 1                  # the demo volume counts as large
    view.set_volume(view.volume)
    spin(0.3)
    preview = view.mapper.GetInput()
    assert view.on_preview and preview is not view._image
    assert preview.GetDimensions() == tuple((n + 1) // 2 for n in full_dims)
    assert np.allclose(np.array(preview.GetSpacing()),
                       2.0 * np.array(view._image.GetSpacing()))
    view.render_now()                            # a picture: the full volume, blocking
    assert view.mapper.GetInput() is view._image and not view.on_preview
    reference = render_window_rgb(view.GetRenderWindow()).astype(int)
    generation = view._generation
    with gui.waitSignal(view.refined, timeout=120_000) as done:
        view.request_render()
        spin(0.05)
        assert view.on_preview                   # back on the copy for the quick frames
        steps = view.full_quality_frames
        view.repaint()                           # an expose: same scene, same size
        assert view._generation == generation + 1 and view.full_quality_frames == steps
    assert done.args[0] == 2 and view._bg_texture is not None
    shown = render_window_rgb(view.GetRenderWindow()).astype(int)
    assert np.abs(shown - reference).mean() < 2.0
    # A label surface (a block sticking out of the body) is in the worker's frame too,
    # hidden or shown by the volume in front of it as in the blocking frame.
    from core.volume import Label, LabelMap

    labels = np.zeros(view.volume.shape, np.uint8)
    labels[20:40, 10:40, 40:90] = 1
    view.add_overlay("block", LabelMap(labels, view.volume.affine,
                                       [Label(1, "block", (0, 255, 0))]))
    view.render_now()
    with_surface = render_window_rgb(view.GetRenderWindow()).astype(int)
    assert np.abs(with_surface - reference).mean() > 0.5       # the block is drawn
    with gui.waitSignal(view.refined, timeout=120_000) as done:
        view.request_render()
    assert done.args[0] == 2 and view.on_preview
    shown = render_window_rgb(view.GetRenderWindow()).astype(int)
    assert np.abs(shown - with_surface).mean() < 2.0
