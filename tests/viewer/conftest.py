"""Fixtures for viewer tests: asymmetric phantoms, a shown panel, window screenshots.

The phantoms are defined in LPS world space (markers at known LPS points) and
sampled onto a grid through its affine, so a grid with permuted or flipped
axes holds the same anatomy. Markers, relative to the volume centre C:

- bright sphere (1000) at C + 30 mm L (patient left),
- medium sphere (500) at C + 30 mm A (anterior, i.e. −P),
- dim sphere (250) at C + 30 mm S (superior),

inside a 90 mm cube of 40 ("soft tissue"); air (0) elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from core.volume import Volume

LEFT_OFFSET = np.array([30.0, 0.0, 0.0])
ANTERIOR_OFFSET = np.array([0.0, -30.0, 0.0])
SUPERIOR_OFFSET = np.array([0.0, 0.0, 30.0])
MARKERS = {"left": (LEFT_OFFSET, 1000), "anterior": (ANTERIOR_OFFSET, 500),
           "superior": (SUPERIOR_OFFSET, 250)}
SPHERE_RADIUS_MM = 8.0
TISSUE = 40
CENTRE_LPS = np.array([12.0, -20.0, -110.0])


def make_phantom(affine_dirs: np.ndarray, spacing_kji: tuple[float, float, float],
                 shape: tuple[int, int, int]) -> Volume:
    """Phantom on a grid whose voxel axes k, j, i point along ``affine_dirs`` columns."""
    affine = np.eye(4)
    for c in range(3):
        affine[:3, c] = affine_dirs[:, c] * spacing_kji[c]
    centre_idx = (np.array(shape) - 1) / 2.0
    affine[:3, 3] = CENTRE_LPS - affine[:3, :3] @ centre_idx
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    idx = np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1).astype(np.float64)
    d = idx @ affine[:3, :3].T + affine[:3, 3] - CENTRE_LPS
    arr = np.where(np.all(np.abs(d) < 45.0, axis=1), TISSUE, 0)
    for offset, value in MARKERS.values():
        arr = np.where(np.linalg.norm(d - offset, axis=1) < SPHERE_RADIUS_MM, value, arr)
    return Volume(arr.reshape(shape).astype(np.int16), affine, series_uid="1.2.3.4",
                  modality="CT",
                  metadata={"study_date": "20260101", "series_description": "Phantom"},
                  identity={"patient_name": "DOE^JANE", "patient_id": "PHANTOM-7",
                            "patient_birth_date": "19700101"})


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    r = np.eye(3)
    p, q = [x for x in range(3) if x != axis]
    r[p, p], r[p, q], r[q, p], r[q, q] = c, -s, s, c
    return r


def _cols(k: tuple[float, ...], j: tuple[float, ...], i: tuple[float, ...]) -> np.ndarray:
    """3×3 whose columns are the LPS directions of voxel axes k, j, i."""
    return np.column_stack([k, j, i]).astype(np.float64)


# kind: (directions, spacing (k, j, i) mm, shape (k, j, i))
PHANTOM_KINDS = {
    # Head-first axial stack (k → S, j → P, i → L), non-identity spacing and origin.
    "axial": (_cols((0, 0, 1), (0, 1, 0), (1, 0, 0)), (2.0, 0.9, 0.8), (56, 120, 128)),
    # Feet-first with flipped rows and columns: k → I, j → A, i → R.
    "flipped": (_cols((0, 0, -1), (0, -1, 0), (-1, 0, 0)), (2.5, 0.8, 0.9), (44, 128, 120)),
    # Sagittal acquisition like the MR series: k → L, j → I, i → P.
    "sagittal": (_cols((1, 0, 0), (0, 0, -1), (0, 1, 0)), (1.2, 1.0, 1.0), (90, 100, 100)),
}


def phantom(kind: str) -> Volume:
    if kind == "oblique":
        dirs = _rotation(2, 25.0) @ _rotation(0, 10.0) @ PHANTOM_KINDS["axial"][0]
        return make_phantom(dirs, (2.0, 0.9, 0.9), (64, 140, 140))
    dirs, spacing, shape = PHANTOM_KINDS[kind]
    return make_phantom(dirs, spacing, shape)


@pytest.fixture
def phantom_factory() -> Callable[[str], Volume]:
    return phantom


@pytest.fixture
def gui(request: pytest.FixtureRequest) -> object:
    """qtbot, or a skip (with the reason) when there is no X display.

    Checked before the QApplication exists: without a display Qt's xcb plugin
    aborts the process, and VTK cannot render with QT_QPA_PLATFORM=offscreen.
    """
    request.getfixturevalue("display")
    return request.getfixturevalue("qtbot")


@pytest.fixture
def panel(gui: object) -> Iterator[object]:
    """A shown ViewerPanel (1×3, 1200×440) that is shut down after the test."""
    from viewer.panel import ViewerPanel

    p = ViewerPanel()
    p.resize(1200, 440)
    p.show()
    gui.waitExposed(p)  # type: ignore[attr-defined]
    yield p
    p.shutdown()
    p.close()
    p.deleteLater()


def grab_view(view: object) -> np.ndarray:
    """Screenshot (h, w, 3) uint8 of one view, taken from the screen with QScreen.grabWindow."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication
    from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

    window = view.window()  # type: ignore[attr-defined]
    QApplication.processEvents()           # pending paints first, then final frames
    views = [view] if isinstance(view, QVTKRenderWindowInteractor) else []
    for v in [*views, *window.findChildren(QVTKRenderWindowInteractor)]:
        if v.isVisible():
            v.render_now()  # type: ignore[attr-defined]
    screen = window.screen()
    image = screen.grabWindow(window.winId()).toImage().convertToFormat(
        QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    arr = np.frombuffer(image.constBits(), dtype=np.uint8,
                        count=image.bytesPerLine() * h).reshape(h, image.bytesPerLine())
    arr = arr[:, : w * 3].reshape(h, w, 3).copy()
    top_left = view.mapTo(window, QPoint(0, 0))  # type: ignore[attr-defined]
    x0, y0 = top_left.x(), top_left.y()
    return arr[y0: y0 + view.height(), x0: x0 + view.width()]  # type: ignore[attr-defined]


@pytest.fixture
def grab() -> Callable[[object], np.ndarray]:
    return grab_view


def save_png(arr: np.ndarray, path: object) -> None:
    from PySide6.QtGui import QImage

    h, w, _ = arr.shape
    data = np.ascontiguousarray(arr)
    QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).save(str(path))


@pytest.fixture
def save() -> Callable[[np.ndarray, object], None]:
    return save_png


def blob_centroid(arr: np.ndarray, lo: int, hi: int) -> tuple[float, float, int]:
    """(x, y, count) of grey pixels with lo ≤ value ≤ hi (grey = R = G = B)."""
    r, g, b = (arr[..., c].astype(int) for c in range(3))
    grey = (np.abs(r - g) < 6) & (np.abs(g - b) < 6)
    mask = grey & (r >= lo) & (r <= hi)
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return float("nan"), float("nan"), 0
    return float(xs.mean()), float(ys.mean()), int(xs.size)


@pytest.fixture
def centroid() -> Callable[[np.ndarray, int, int], tuple[float, float, int]]:
    return blob_centroid
