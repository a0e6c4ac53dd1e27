"""core.voi against pydicom's own VOI / Presentation LUT code on datasets built here."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_presentation_lut, apply_voi_lut, apply_windowing
from pydicom.sequence import Sequence

from core.projection import ProjectionImage, Shutter, VoiFunction, VoiLut, VoiWindow
from core.voi import auto_window, shutter_inside, to_display


def _ds(bits: int = 12, signed: bool = False) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = bits
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 1 if signed else 0
    return ds


def _scaled(out: np.ndarray, y_min: float, y_max: float) -> np.ndarray:
    """pydicom's output range scaled to 0..255 as Lucida shows it."""
    return np.rint((out - y_min) / (y_max - y_min) * 255.0).astype(np.int64)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("center,width", [(2048.0, 4096.0), (1000.0, 301.0), (15.5, 1.0)])
def test_windowing_equals_pydicom(function: str, center: float, width: float) -> None:
    if function != "LINEAR" and width == 1.0:
        width = 0.5                         # LINEAR needs >= 1, the others > 0
    ds = _ds(12)
    ds.WindowCenter = center
    ds.WindowWidth = width
    ds.VOILUTFunction = function
    arr = np.arange(0, 4096, dtype=np.uint16).reshape(64, 64)
    ref = _scaled(apply_windowing(arr, ds), 0, 4095)
    image = ProjectionImage(frames=arr[None], value_range=(0, 4095),
                            voi_windows=[VoiWindow(center, width, VoiFunction(function))])
    mine = to_display(arr, image).astype(np.int64)
    # The table path (uint16) and the float path (float32 frame) agree with pydicom.
    mine_float = to_display(arr.astype(np.float32), image).astype(np.int64)
    assert np.abs(mine - ref).max() <= 1
    assert np.abs(mine_float - ref).max() <= 1
    assert np.count_nonzero(mine != ref) <= arr.size // 200   # rounding ties only


def test_signed_window_with_second_preset_equals_pydicom() -> None:
    ds = _ds(16, signed=True)
    ds.WindowCenter = [40.0, -600.0]
    ds.WindowWidth = [400.0, 1500.0]
    arr = np.linspace(-2000, 3000, 128 * 128).astype(np.int16).reshape(128, 128)
    ref = _scaled(apply_windowing(arr, ds, index=1), -32768, 32767)
    image = ProjectionImage(frames=arr[None], value_range=(-2000, 3000),
                            voi_windows=[VoiWindow(40, 400), VoiWindow(-600, 1500)])
    mine = to_display(arr, image, voi_index=1).astype(np.int64)
    assert np.abs(mine - ref).max() <= 1
    # An explicit window is the same as the file's window of those values.
    assert np.array_equal(to_display(arr, image, (-600.0, 1500.0)), mine)


@pytest.mark.parametrize("first_mapped", [0, 100, -50])
def test_voi_lut_table_equals_pydicom(first_mapped: int) -> None:
    rng = np.random.default_rng(1)
    data = np.sort(rng.integers(0, 65536, 1024)).astype(np.uint16)
    ds = _ds(12)
    item = Dataset()
    item.LUTDescriptor = [1024, first_mapped, 16]
    item.LUTData = data.tolist()
    ds.VOILUTSequence = Sequence([item])
    arr = np.arange(0, 1400, dtype=np.int16).reshape(28, 50) - 60
    ds.PixelRepresentation = 1
    ref = _scaled(apply_voi_lut(arr, ds).astype(np.float64), 0, 65535)
    image = ProjectionImage(frames=arr[None], value_range=(-60, 1339),
                            voi_luts=[VoiLut(first_mapped, 16, data, "curve")])
    mine = to_display(arr, image, use_lut=True).astype(np.int64)
    assert np.abs(mine - ref).max() <= 1


def test_inverse_presentation_lut_equals_pydicom() -> None:
    ds = _ds(12)
    ds.WindowCenter, ds.WindowWidth = 2000.0, 3000.0
    arr = np.arange(0, 4096, dtype=np.uint16).reshape(64, 64)
    windowed = _scaled(apply_windowing(arr, ds), 0, 4095)
    ps = Dataset()
    ps.PresentationLUTShape = "INVERSE"
    ref = apply_presentation_lut(windowed, ps)
    assert windowed.max() == 255                     # so pydicom's max - arr is 255 - arr
    image = ProjectionImage(frames=arr[None], value_range=(0, 4095), invert=True,
                            voi_windows=[VoiWindow(2000.0, 3000.0)])
    mine = to_display(arr, image).astype(np.int64)
    assert np.abs(mine - ref).max() <= 1
    assert mine[0, 0] == 255 and mine[-1, -1] == 0   # MONOCHROME1: low values white


def test_no_window_uses_full_range() -> None:
    arr = np.array([[0, 1023]], dtype=np.uint16)
    image = ProjectionImage(frames=arr[None], value_range=(0, 1023))
    assert to_display(arr, image).tolist() == [[0, 255]]


def test_shutters_rectangular_circular_polygonal() -> None:
    arr = np.full((20, 30), 1000, dtype=np.uint16)
    rect = Shutter("rectangular", (5, 25, 3, 18), presentation_value=65535)
    image = ProjectionImage(frames=arr[None], value_range=(0, 1000), shutters=[rect])
    out = to_display(arr, image)
    assert out[0, 0] == 255 and out[2, 10] == 255    # outside: white presentation value
    assert out[2 + 1, 4] == 255                      # column 5 (1-based) is index 4: inside
    assert out[3, 4] == 255 or out[3, 4] == to_display(arr, ProjectionImage(
        frames=arr[None], value_range=(0, 1000)))[3, 4]
    circ = shutter_inside((21, 21), Shutter("circular", (11, 11, 5)))
    assert circ[10, 10] and circ[10, 15] and not circ[10, 16] and not circ[0, 0]
    tri = shutter_inside((10, 10), Shutter("polygonal", (1, 1, 1, 10, 10, 1)))
    assert tri[1, 1] and not tri[8, 8]
    colour = np.zeros((1, 20, 30, 3), np.uint8)
    cimg = ProjectionImage(frames=colour, photometric="RGB",
                           shutters=[Shutter("rectangular", (5, 25, 3, 18), rgb=(0, 255, 0))])
    cout = to_display(colour[0], cimg)
    assert cout[0, 0].tolist() == [0, 255, 0] and cout[10, 10].tolist() == [0, 0, 0]


def test_colour_passes_through() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (1, 8, 9, 3)).astype(np.uint8)
    image = ProjectionImage(frames=rgb, photometric="RGB")
    assert np.array_equal(to_display(rgb[0], image), rgb[0])


def test_window_drag_is_fast_on_a_large_radiograph() -> None:
    arr = np.random.default_rng(0).integers(0, 4096, (2500, 2000)).astype(np.uint16)
    image = ProjectionImage(frames=arr[None], value_range=(0, 4095),
                            voi_windows=[VoiWindow(2000, 3000)])
    to_display(arr, image, (1500.0, 2000.0))
    t0 = time.perf_counter()
    for i in range(5):
        to_display(arr, image, (1500.0 + i, 2000.0))
    per_frame = (time.perf_counter() - t0) / 5
    assert per_frame < 0.15, per_frame      # measured 0.009 s here
    # A rescaled (float) radiograph: float32 in place, 0.015 s here (float64 masks: 0.5 s).
    as_float = arr.astype(np.float32)
    t0 = time.perf_counter()
    shown = to_display(as_float, image, (1500.0, 2000.0))
    assert time.perf_counter() - t0 < 0.2
    reference = to_display(arr, image, (1500.0, 2000.0)).astype(int)
    assert np.abs(shown.astype(int) - reference).max() <= 1


def test_auto_window_percentiles() -> None:
    arr = np.arange(0, 10001, dtype=np.float32)
    c, w = auto_window(arr)
    assert c == pytest.approx(5000, abs=1) and w == pytest.approx(9800, abs=2)
