"""Display values of one frame of a ProjectionImage: VOI, inversion, shutters (PS3.3 C.11).

The viewer must not import pydicom, so the grayscale pipeline lives here, in
numpy: VOI LUT Function LINEAR / LINEAR_EXACT / SIGMOID (C.11.2.1.2-3) or a
VOI LUT table (C.11.2.1.1), then MONOCHROME1 / Presentation LUT INVERSE,
then display shutters (C.7.6.11) at their presentation value. The output is
``uint8`` 0..255 (black..white); colour frames pass through (shutters only).

Integer frames are mapped through a table built over the whole range of
their dtype (65 536 entries for 16-bit) and indexed once: a window drag on a
2500×2000 radiograph costs one gather, not a float pass over 5 M pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from core.projection import ProjectionImage, Shutter, VoiFunction, VoiLut, VoiWindow

U8 = npt.NDArray[np.uint8]
Window = tuple[float, float]          # (center, width)


# ---------------------------------------------------------------------- VOI functions
def window_fraction(values: npt.NDArray[Any], center: float, width: float,
                    function: VoiFunction = VoiFunction.LINEAR) -> npt.NDArray[np.float64]:
    """PS3.3 C.11.2.1.2 / C.11.2.1.3: modality values → 0..1 of the output range."""
    x = np.asarray(values, dtype=np.float64)
    if function is VoiFunction.SIGMOID:
        w = max(float(width), 1e-6)
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / w))
        return out
    if function is VoiFunction.LINEAR_EXACT:
        c, w = float(center), max(float(width), 1e-6)
    else:                                   # LINEAR: the c - 0.5, w - 1 of the standard
        c, w = float(center) - 0.5, max(float(width) - 1.0, 0.0)
    # Width 1 (LINEAR) is a threshold at c: nothing lies between the two limits.
    frac = (x - c) / max(w, 1e-12) + 0.5
    frac[x <= c - w / 2.0] = 0.0
    frac[x > c + w / 2.0] = 1.0
    return frac


def lut_fraction(values: npt.NDArray[Any], lut: VoiLut) -> npt.NDArray[np.float64]:
    """PS3.3 C.11.2.1.1: a VOI LUT table, first entry below its range, last above; 0..1."""
    data = np.asarray(lut.data, dtype=np.float64)
    # Integer input indexes directly; a fractional value uses the entry at or below it.
    idx = np.floor(np.asarray(values, dtype=np.float64)) - float(lut.first_mapped)
    idx = np.clip(idx, 0, data.size - 1).astype(np.intp)
    out: npt.NDArray[np.float64] = data[idx] / float(2 ** lut.bits - 1)
    return out


# ---------------------------------------------------------------------- shutters
def _polygon_inside(shape: tuple[int, int], pts: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Even-odd fill of a polygon (row, col 1-based vertices), one span list per row."""
    rows, cols = shape
    inside = np.zeros(shape, dtype=bool)
    ys, xs = pts[:, 0], pts[:, 1]
    ys2, xs2 = np.roll(ys, -1), np.roll(xs, -1)
    col_pos = np.arange(1, cols + 1, dtype=np.float64)
    for r in range(rows):
        y = r + 1.0
        crosses = (ys <= y) != (ys2 <= y)
        if not crosses.any():
            continue
        t = (y - ys[crosses]) / (ys2[crosses] - ys[crosses])
        xi = np.sort(xs[crosses] + t * (xs2[crosses] - xs[crosses]))
        for a, b in zip(xi[0::2], xi[1::2], strict=False):
            inside[r] |= (col_pos >= a) & (col_pos <= b)
    return inside


def shutter_inside(shape: tuple[int, int], shutter: Shutter) -> npt.NDArray[np.bool_]:
    """Pixels (rows, cols) a shutter leaves visible; params are 1-based as stored."""
    rows, cols = shape
    r = np.arange(1, rows + 1, dtype=np.float64)[:, None]
    c = np.arange(1, cols + 1, dtype=np.float64)[None, :]
    p = shutter.params
    if shutter.kind == "rectangular":
        left, right, upper, lower = p[:4]
        out: npt.NDArray[np.bool_] = (c >= left) & (c <= right) & (r >= upper) & (r <= lower)
        return out
    if shutter.kind == "circular":
        cr, cc, radius = p[:3]
        inside: npt.NDArray[np.bool_] = (r - cr) ** 2 + (c - cc) ** 2 <= radius ** 2
        return inside
    if shutter.kind == "polygonal":
        pts = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        return _polygon_inside(shape, pts)
    raise ValueError(f"unknown shutter kind {shutter.kind!r}")


@lru_cache(maxsize=8)
def _shutter_masks(shape: tuple[int, int],
                   shutters: tuple[Shutter, ...]) -> tuple[npt.NDArray[np.bool_], ...]:
    """Each shutter's hidden pixels (cached: the same image is redrawn on every drag)."""
    masks = []
    for s in shutters:
        m = ~shutter_inside(shape, s)
        m.setflags(write=False)
        masks.append(m)
    return tuple(masks)


def _apply_shutters(out: npt.NDArray[np.uint8], shutters: Sequence[Shutter]) -> None:
    for shutter, hidden in zip(shutters, _shutter_masks(out.shape[:2], tuple(shutters)),
                               strict=True):
        if out.ndim == 3 and shutter.rgb is not None:
            out[hidden] = np.asarray(shutter.rgb, dtype=np.uint8)
        else:
            out[hidden] = round(shutter.presentation_value / 65535.0 * 255.0)


# ---------------------------------------------------------------------- the pipeline
def default_window(image: ProjectionImage, voi_index: int = 0) -> VoiWindow:
    """The file's window ``voi_index`` if it has one, else the whole stored value range."""
    if image.voi_windows:
        return image.voi_windows[voi_index % len(image.voi_windows)]
    lo, hi = image.value_range
    return VoiWindow(center=(lo + hi + 1.0) / 2.0, width=max(hi - lo + 1.0, 1.0),
                     explanation="full range")


def _fraction(values: npt.NDArray[Any], image: ProjectionImage, window: Window | None,
              voi_index: int, use_lut: bool,
              function: VoiFunction | None) -> npt.NDArray[np.float64]:
    if use_lut and image.voi_luts:
        return lut_fraction(values, image.voi_luts[voi_index % len(image.voi_luts)])
    file_window = default_window(image, voi_index)
    if window is None:
        center, width = file_window.center, file_window.width
    else:
        center, width = window
    fn = function if function is not None else file_window.function
    return window_fraction(values, center, width, fn)


def _to_u8(frac: npt.NDArray[np.float64], invert: bool) -> npt.NDArray[np.uint8]:
    if invert:
        frac = 1.0 - frac
    return np.rint(np.clip(frac, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_display(frame: npt.NDArray[Any], image: ProjectionImage, window: Window | None = None,
               *, voi_index: int = 0, use_lut: bool = False,
               function: VoiFunction | None = None) -> U8:
    """One frame → ``uint8`` display values (greyscale 2-D, colour (rows, cols, 3)).

    ``window`` is ``(center, width)`` in modality values; ``None`` takes the
    file's window ``voi_index`` (or the full value range when it has none).
    ``use_lut`` takes the file's VOI LUT ``voi_index`` instead. ``function``
    defaults to the VOI LUT Function of the file's window. Then the image is
    inverted when ``image.invert`` (MONOCHROME1 / INVERSE), and shutters are drawn.
    """
    frame = np.asarray(frame)
    if frame.ndim == 3:
        out = np.array(frame, dtype=np.uint8, copy=True)
    else:
        out = _grey(frame, image, window, voi_index, use_lut, function)
    if image.shutters:
        _apply_shutters(out, image.shutters)
    return out


def _grey(frame: npt.NDArray[Any], image: ProjectionImage, window: Window | None,
          voi_index: int, use_lut: bool, function: VoiFunction | None) -> U8:
    dt = frame.dtype
    if dt.kind in "ui" and dt.itemsize <= 2:
        # One table over the dtype's whole range, indexed by the bits as unsigned.
        info = np.iinfo(dt)
        values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
        table = _to_u8(_fraction(values, image, window, voi_index, use_lut, function),
                       image.invert)
        if dt.kind == "i":
            # Entry u of the unsigned view is the signed value u (u < 2**(n-1)) or u - 2**n.
            table = np.roll(table, -(1 << (8 * dt.itemsize - 1)))
        unsigned = frame.view(np.dtype(f"u{dt.itemsize}"))
        result: U8 = table[unsigned]
        return result
    fast = _linear_float(frame, image, window, voi_index, use_lut, function)
    if fast is not None:
        return fast
    frac = _fraction(frame, image, window, voi_index, use_lut, function)
    return _to_u8(frac, image.invert)


def _linear_float(frame: npt.NDArray[Any], image: ProjectionImage, window: Window | None,
                  voi_index: int, use_lut: bool, function: VoiFunction | None) -> U8 | None:
    """LINEAR / LINEAR_EXACT on a float frame in place, in float32 (a window drag on a
    rescaled radiograph): clipping to 0..1 is exactly the standard's two limits."""
    if use_lut and image.voi_luts:
        return None
    file_window = default_window(image, voi_index)
    center, width = (file_window.center, file_window.width) if window is None else window
    fn = function if function is not None else file_window.function
    if fn is VoiFunction.SIGMOID:
        return None
    c, w = (center, width) if fn is VoiFunction.LINEAR_EXACT else (center - 0.5, width - 1.0)
    if w <= 0:
        return None                      # a threshold: the general path
    buf = frame.astype(np.float32)       # a copy, so the in-place steps leave the frame alone
    buf -= np.float32(c)
    buf *= np.float32(1.0 / w)
    buf += np.float32(0.5)
    np.clip(buf, 0.0, 1.0, out=buf)
    if image.invert:
        np.subtract(np.float32(1.0), buf, out=buf)
    buf *= np.float32(255.0)
    np.rint(buf, out=buf)
    return buf.astype(np.uint8)


def auto_window(frame: npt.NDArray[Any], low_pct: float = 1.0,
                high_pct: float = 99.0, max_samples: int = 400_000) -> Window:
    """(center, width) over the 1st–99th percentile of a greyscale frame (subsampled)."""
    flat = np.asarray(frame).reshape(-1)
    stride = max(1, flat.size // max_samples)
    lo, hi = (float(v) for v in np.percentile(flat[::stride].astype(np.float64),
                                               [low_pct, high_pct]))
    if hi - lo < 1.0:
        return lo + 0.5, 1.0
    return (lo + hi) / 2.0, hi - lo


def full_range_window(image: ProjectionImage) -> Window:
    """(center, width) covering the whole stored value range (LINEAR)."""
    w = default_window(ProjectionImage(frames=np.zeros((1, 1, 1), np.uint8),
                                       value_range=image.value_range))
    return w.center, w.width
