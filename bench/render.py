"""Slice-view rendering benchmark on LIDC-IDRI-0001 (run under xvfb-run).

1. Scrolling: frame time of Lucida's axial SliceView (ViewerPanel 1×1, 512×512,
   crosshair and a label overlay shown) stepping through every slice, against a
   bare VTK pipeline (vtkImageReslice + vtkImageActor in a 512×512
   vtkRenderWindow) doing the same steps in the same run; ratio printed
   (target ≤ 1.25).
2. Opening: time from "open series" (the real reader, dicomio.load.read_volume,
   streaming slices from a worker thread as the app does) to the first image
   on screen, to the first image with the shown axial slice loaded, and to
   fully loaded (target first image ≤ 1 s).

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python bench/render.py

Skips with a message when ../shared (or $LUCIDA_SHARED) is absent.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZE = 512


def shared_series() -> Path | None:
    env = os.environ.get("LUCIDA_SHARED")
    root = Path(env) if env else REPO.parent / "shared"
    series = root / "data" / "ct" / "LIDC-IDRI-0001"
    return series if series.is_dir() else None


def read(files: list[Path]) -> Any:
    from dicomio.load import read_volume

    return read_volume(files)


def nodule_overlay(volume: Any) -> Any:
    """A label map like a detector's output: a 12 mm ball around the LIDC nodule."""
    from core.volume import Label, LabelMap

    zs = volume.index_to_lps(np.stack([np.arange(volume.shape[0]), np.zeros(volume.shape[0]),
                                       np.zeros(volume.shape[0])], axis=1))[:, 2]
    k = int(np.argmin(np.abs(zs + 115.9)))
    centre = volume.index_to_lps((k, 367, 316))
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij", sparse=True)
    sp = volume.spacing_mm
    c = volume.lps_to_index(centre)
    d2 = (((kk - c[0]) * sp[0]) ** 2 + ((jj - c[1]) * sp[1]) ** 2 + ((ii - c[2]) * sp[2]) ** 2)
    labels = (d2 < 12.0 ** 2).astype(np.uint8)
    return LabelMap(labels, volume.affine, [Label(1, "nodule", (255, 80, 40))],
                    volume.series_uid)


def time_lucida_scroll(app: Any, volume: Any) -> list[float]:
    from viewer.panel import ViewerPanel

    panel = ViewerPanel()
    panel.set_layout("1x1")
    panel.resize(SIZE, SIZE)
    panel.show()
    app.processEvents()
    panel.set_volume(volume)
    panel.set_preset("lung")
    panel.add_label_overlay("detector", nodule_overlay(volume))
    view = panel.slice_views()["axial"]
    assert view.width() == SIZE and view.height() == SIZE, (view.width(), view.height())
    view.scroll_slices(-1000)                     # to one end
    app.processEvents()
    view.render_now()
    times: list[float] = []
    n = volume.shape[0]
    for step in [1] * (n - 1) + [-1] * (n - 1):
        t0 = time.perf_counter()
        view.scroll_slices(step)
        app.processEvents()                # the view's coalesced render runs here
        times.append(time.perf_counter() - t0)
    panel.shutdown()
    panel.close()
    return times


def time_bare_scroll(volume: Any, multisamples: int | None = None) -> list[float]:
    """Bare pipeline; ``multisamples`` None keeps VTK's default (8× MSAA)."""
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (OpenGL backend)
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkCommonMath import vtkMatrix4x4
    from vtkmodules.vtkImagingCore import vtkImageReslice
    from vtkmodules.vtkRenderingCore import vtkImageActor, vtkRenderer, vtkRenderWindow

    arr = np.ascontiguousarray(volume.array)
    k, j, i = arr.shape
    sp = volume.spacing_mm
    image = vtkImageData()
    image.SetDimensions(i, j, k)
    image.SetSpacing(float(sp[2]), float(sp[1]), float(sp[0]))
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(arr.reshape(-1), deep=False))
    axes = vtkMatrix4x4()
    reslice = vtkImageReslice()
    reslice.SetInputData(image)
    reslice.SetOutputDimensionality(2)
    reslice.SetResliceAxes(axes)
    reslice.SetInterpolationModeToLinear()
    actor = vtkImageActor()
    actor.GetMapper().SetInputConnection(reslice.GetOutputPort())
    actor.GetProperty().SetColorWindow(1500)
    actor.GetProperty().SetColorLevel(-600)
    renderer = vtkRenderer()
    renderer.AddActor(actor)
    window = vtkRenderWindow()
    window.SetSize(SIZE, SIZE)
    if multisamples is not None:
        window.SetMultiSamples(multisamples)
    window.AddRenderer(renderer)
    axes.SetElement(2, 3, 0.0)
    reslice.Modified()
    window.Render()
    renderer.ResetCamera()
    camera = renderer.GetActiveCamera()
    camera.ParallelProjectionOn()
    renderer.ResetCamera()
    # Fit the slice to the window as Lucida's views do (ResetCamera alone leaves a
    # margin, and software GL cost grows with the pixels covered).
    camera.SetParallelScale(j * float(sp[1]) / 2.0 * 1.02)
    window.Render()
    times: list[float] = []
    z = 0
    for step in [1] * (k - 1) + [-1] * (k - 1):
        t0 = time.perf_counter()
        z += step
        axes.SetElement(2, 3, z * float(sp[0]))
        reslice.Modified()
        window.Render()
        times.append(time.perf_counter() - t0)
    window.Finalize()
    return times


def time_open(app: Any, files: list[Path]) -> dict[str, float]:
    """Open the series the way the app does: a reader thread streams slices to the GUI."""
    from PySide6.QtCore import QObject, Signal

    from dicomio.load import read_volume
    from viewer.panel import ViewerPanel

    class Bridge(QObject):
        partial = Signal(object)
        finished = Signal(object)

    panel = ViewerPanel()
    panel.set_layout("1x3")
    panel.resize(3 * SIZE, SIZE)
    panel.show()
    app.processEvents()
    bridge = Bridge()
    marks: dict[str, float] = {}
    state: dict[str, Any] = {"volume": None, "done": False}
    axial = panel.slice_views()["axial"]

    def shown_slice_loaded(volume: Any) -> bool:
        k = axial.slice_index()
        return bool(np.any(volume.array[k] != volume.array[k].flat[0]))

    def on_partial(volume: Any) -> None:
        if state["volume"] is None or volume.array is not state["volume"].array:
            state["volume"] = volume
            panel.set_volume(volume)
        else:
            panel.refresh_slices()
        for v in panel.slice_views().values():
            v.render_now()
        marks.setdefault("first image", time.perf_counter() - t0)
        if "shown slice loaded" not in marks and shown_slice_loaded(volume):
            marks["shown slice loaded"] = time.perf_counter() - t0

    def on_finished(volume: Any) -> None:
        on_partial(volume)
        panel.loading_finished()
        for v in panel.slice_views().values():
            v.render_now()
        marks["fully loaded"] = time.perf_counter() - t0
        state["done"] = True

    bridge.partial.connect(on_partial)
    bridge.finished.connect(on_finished)
    last = [0.0]

    def on_slice(_k: int, volume: Any) -> None:
        now = time.perf_counter()
        if last[0] == 0.0 or now - last[0] >= 0.15:
            last[0] = now
            bridge.partial.emit(volume)

    def worker() -> None:
        bridge.finished.emit(read_volume(files, on_slice=on_slice))

    t0 = time.perf_counter()
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    while not state["done"]:
        app.processEvents()
        time.sleep(0.002)
    thread.join()
    panel.shutdown()
    panel.close()
    return marks


def main() -> int:
    series = shared_series()
    if series is None:
        print("SKIP: ../shared/data/ct/LIDC-IDRI-0001 is absent (set LUCIDA_SHARED)")
        return 0
    if not os.environ.get("DISPLAY"):
        print("SKIP: no DISPLAY; run under xvfb-run -a -s '-screen 0 1920x1080x24'")
        return 0
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    files = sorted(series.glob("*.dcm"))
    t = time.perf_counter()
    volume = read(files)
    print(f"LIDC-IDRI-0001: {volume.shape} {volume.array.dtype}, read in "
          f"{time.perf_counter() - t:.2f} s")

    # Alternate the pipelines twice so all see the same machine load.
    lucida: list[float] = []
    bare: list[float] = []
    bare_no_msaa: list[float] = []
    for _ in range(2):
        bare += time_bare_scroll(volume)
        bare_no_msaa += time_bare_scroll(volume, multisamples=0)
        lucida += time_lucida_scroll(app, volume)
    lm, bm, b0 = (statistics.median(x) for x in (lucida, bare, bare_no_msaa))
    print(f"scroll, {SIZE}x{SIZE}, {len(lucida)} frames each:")
    print(f"  Lucida SliceView (crosshair + overlay, text): median {lm * 1000:.1f} ms, "
          f"mean {statistics.mean(lucida) * 1000:.1f} ms")
    print(f"  bare vtkImageReslice + vtkImageActor (VTK defaults, 8x MSAA): median "
          f"{bm * 1000:.1f} ms, mean {statistics.mean(bare) * 1000:.1f} ms")
    print(f"  bare, multisampling off (as Lucida's slice views): median {b0 * 1000:.1f} ms, "
          f"mean {statistics.mean(bare_no_msaa) * 1000:.1f} ms")
    print(f"  ratio (median) Lucida / bare VTK default = {lm / bm:.2f}  (target <= 1.25)")
    print(f"  ratio (median) Lucida / bare VTK, MSAA off = {lm / b0:.2f}")

    marks = time_open(app, files)
    print("open series (reader thread -> ViewerPanel 1x3):")
    for key in ("first image", "shown slice loaded", "fully loaded"):
        if key in marks:
            print(f"  {key:20s} {marks[key]:.2f} s")
    print("  target: first image <= 1 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
