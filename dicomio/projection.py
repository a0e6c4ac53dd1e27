"""DICOM instances → one :class:`core.projection.ProjectionImage` (a 2-D image, shown as acquired).

:func:`is_projection` decides from headers whether a series is shown as a 2-D
image or loaded as a :class:`core.volume.Volume` (:mod:`dicomio.load`); the app
calls it first. :func:`read_projection` reads it.

Reading reuses the Volume loader's header and decode path (its caps on header
size, nesting and pixel size, guarded value access, codec chain; the hostile
input rules of :mod:`dicomio.load` hold here too): a file that fails is left out
with a warning naming it, and when none is left :class:`DicomReadError` gives
the reason. What differs from the Volume path:

* frames keep their order (instances by Instance Number, then frames in file
  order) and their pixel grid: no nominal patient geometry, no flip;
* values are modality values (Rescale Slope / Intercept, or a Modality LUT
  Sequence through pydicom's ``apply_modality_lut``), MONOCHROME1 NOT inverted
  (``invert`` says so, with Presentation LUT Shape); Pixel Padding Value is not
  replaced: ``metadata["pixel_padding"]`` gives its (low, high) modality values;
* colour stays colour: RGB ``uint8`` (YBR converted by pydicom's decoders,
  palette colour by pydicom's ``apply_color_lut``, both in :func:`decode_dataset`);
* the display rules of the header (VOI windows and LUTs, shutters, orientation,
  frame time: :mod:`dicomio.projection_display`) and the pixel spacing rules of
  :mod:`dicomio.projection_spacing` come from the first instance.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.pixels.processing import apply_modality_lut

from core.errors import DicomReadError, LucidaError
from core.progress import CancelToken, ProgressSink
from core.projection import ProjectionImage
from core.volume import VolumeWarning, WarningCode
from dicomio import fastheader
from dicomio import projection_display as display
from dicomio.decode import PixelFormat
from dicomio.load import (
    VOLUME_MAX_BYTES,
    PlannedFrame,
    _as_source,
    _decode_file,
    _file_size,
    _Header,
    _read_header_pydicom,
    _read_headers,
)
from dicomio.multiframe import first_item
from dicomio.plausibility import optional_value
from dicomio.projection_spacing import pixel_spacing
from dicomio.source import DicomSource

__all__ = ["PROJECTION_MODALITIES", "VOLUME_MODALITIES", "is_projection", "read_projection"]

#: Modalities whose images are 2-D by nature: projection X-ray, ultrasound, endoscopy,
#: photography, microscopy, ophthalmic photography.
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "XA", "RF", "US", "IO", "PX", "ES", "XC",
                                   "GM", "SM", "OP"})
#: Captures: 2-D unless they carry patient geometry (a derived stack saved as SC/OT
#: loads as a Volume today and keeps doing so).
CAPTURE_MODALITIES = frozenset({"SC", "OT"})
VOLUME_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})
#: Headers of further files read when the first has no geometry (a volume's first file
#: may be a localizer-like image without position): enough to find a stack, cheap.
_GEOMETRY_PROBE = 16


def _header_dataset(source: DicomSource) -> Any:
    """The header read by pydicom within the loader's caps (stops before the pixels)."""
    size = _file_size(source)
    if size == 0:
        raise DicomReadError("empty file (0 bytes)")
    try:
        fp = source.open()
    except (OSError, KeyError) as exc:
        raise DicomReadError(f"cannot open the file: {exc}") from exc
    with fp:
        if size is None:
            size = fastheader.data_size(fp)
        ds, _ = _read_header_pydicom(fp, size)
    return ds


def _has_geometry(ds: Any) -> bool:
    return (optional_value(ds, "ImagePositionPatient") not in (None, "")
            and optional_value(ds, "ImageOrientationPatient") not in (None, ""))


def _has_plane_positions(ds: Any) -> bool:
    """An enhanced multi-frame object placing its frames in patient space."""
    groups = [first_item(optional_value(ds, "SharedFunctionalGroupsSequence"))]
    per_frame = optional_value(ds, "PerFrameFunctionalGroupsSequence")
    if per_frame and not isinstance(per_frame, (str, bytes)):
        groups.append(first_item(per_frame))
    for group in groups:
        if group is not None and first_item(
                optional_value(group, "PlanePositionSequence")) is not None:
            return True
    return False


def _lean_has_geometry(source: DicomSource) -> bool:
    """Whether a further file has ImagePositionPatient and ImageOrientationPatient
    (the lean header reader; pydicom within the caps when it declines)."""
    try:
        with source.open() as fp:
            lean = fastheader.read_lean_header(fp, _file_size(source))
        if lean is not None:
            return _has_geometry(lean[0])
        return _has_geometry(_header_dataset(source))
    except Exception:  # an unreadable file says nothing about the series
        return False


def is_projection(sources: Sequence[DicomSource | Path]) -> bool:
    """Whether a series is shown as a 2-D image (True) rather than a Volume.

    From headers only: the first file's (pydicom within the caps), and, when it has
    no patient geometry, up to :data:`_GEOMETRY_PROBE` more (lean reader).

    * an enhanced multi-frame object with Plane Position functional groups is a
      Volume, whatever its modality (3-D ultrasound, tomosynthesis);
    * a 2-D modality (:data:`PROJECTION_MODALITIES`) is 2-D;
    * otherwise a series with patient geometry (Image Position and Orientation
      Patient in any of the probed files) is a Volume, one without is 2-D.

    A first file that cannot be read leaves the decision to the Volume loader
    (False), which reports why.
    """
    if not sources:
        return False
    items = [_as_source(s) for s in sources]
    try:
        ds = _header_dataset(items[0])
    except Exception:  # the Volume loader reads it again and gives the reason
        return False
    if optional_value(ds, "Rows") in (None, "") or _has_plane_positions(ds):
        return False  # not an image (the Volume loader says why), or placed in 3-D
    modality = str(optional_value(ds, "Modality") or "").strip().upper()
    if modality in PROJECTION_MODALITIES:
        return True
    if _has_geometry(ds):
        return False
    return not any(_lean_has_geometry(s) for s in items[1:1 + _GEOMETRY_PROBE])


# --------------------------------------------------------------------------- reading


def _group_key(frame: PlannedFrame) -> tuple[int, int, bool]:
    return frame.fmt.rows, frame.fmt.columns, frame.fmt.is_colour


def _select_frames(headers: list[_Header], warnings: list[VolumeWarning]
                   ) -> list[PlannedFrame]:
    """Frames in display order, of one size and kind (the first instance's)."""
    frames = sorted((f for h in headers for f in h.frames),
                    key=lambda f: (f.instance_number, str(f.source), f.frame_index))
    if not frames:
        raise DicomReadError("no frame could be read")
    key = _group_key(frames[0])
    other = [f for f in frames if _group_key(f) != key]
    if other:
        warnings.append(VolumeWarning(
            WarningCode.OTHER,
            f"{len(other)} frame(s) of another size or colour were left out; the image uses "
            f"the {key[0]}×{key[1]} {'colour' if key[2] else 'greyscale'} frames"))
    return [f for f in frames if _group_key(f) == key]


def _value_dtype(frames: list[PlannedFrame]) -> tuple[np.dtype[Any], float, float]:
    """The array type of greyscale modality values, and their range over BitsStored."""
    lo, hi = math.inf, -math.inf
    integral = True
    for f in frames:
        s_lo, s_hi = f.fmt.stored_range()
        a, b = s_lo * f.slope + f.intercept, s_hi * f.slope + f.intercept
        lo, hi = min(lo, a, b), max(hi, a, b)
        integral = integral and float(f.slope).is_integer() and float(f.intercept).is_integer()
    if integral and -32768 <= lo and hi <= 32767:
        return np.dtype(np.int16), lo, hi
    if integral and -(2**31) <= lo and hi < 2**31:
        return np.dtype(np.int32), lo, hi
    return np.dtype(np.float32), lo, hi


def _to_rgb8(stored: npt.NDArray[Any], fmt: PixelFormat, palette: bool) -> npt.NDArray[np.uint8]:
    """Decoded colour samples as 8-bit RGB: 16-bit palette entries and samples of more
    than 8 stored bits keep their top 8 bits."""
    rgb = stored[..., :3]
    if rgb.dtype == np.uint8:
        return np.asarray(rgb)
    bits = 16 if palette else max(fmt.bits_stored, 8)
    shifted = np.right_shift(rgb.astype(np.uint32), max(bits - 8, 0))
    return np.asarray(np.clip(shifted, 0, 255).astype(np.uint8))


def _padding(frame: PlannedFrame) -> tuple[float, float] | None:
    """Pixel Padding Value (and Range Limit) as modality values, low first."""
    fmt = frame.fmt
    if fmt.padding_value is None:
        return None
    ends = [v * frame.slope + frame.intercept for v in (
        fmt.padding_value, fmt.padding_limit if fmt.padding_limit is not None
        else fmt.padding_value)]
    return min(ends), max(ends)


def _modality_lut_bits(ds: Any, warnings: list[VolumeWarning]) -> int | None:
    """Bits of the Modality LUT Sequence's output when the image has a usable one
    (pydicom's ``apply_modality_lut`` applies it), else None (Rescale Slope/Intercept)."""
    item = first_item(optional_value(ds, "ModalityLUTSequence"))
    if item is None:
        return None
    try:
        desc = [int(v) for v in item.LUTDescriptor]
        if len(desc) != 3 or not 8 <= desc[2] <= 16 or len(item.LUTData) < 1:
            raise ValueError(f"LUT Descriptor {desc}")
    except Exception as exc:  # a damaged table: the rescale, which is usually absent
        warnings.append(VolumeWarning(
            WarningCode.OTHER, f"the Modality LUT cannot be read ({type(exc).__name__}: "
            f"{str(exc)[:60]}): values are stored values with Rescale Slope / Intercept"))
        return None
    return desc[2]


def _metadata(header: _Header, ds: Any) -> dict[str, Any]:
    meta = {k: v for k, v in header.meta.items() if k not in ("window_center", "window_width")}
    for key, keyword in (("view_position", "ViewPosition"), ("laterality", "Laterality"),
                         ("image_laterality", "ImageLaterality"),
                         ("series_instance_uid", "SeriesInstanceUID")):
        value = optional_value(ds, keyword)
        meta[key] = "" if value is None else str(value).strip()
    return meta


def read_projection(sources: Sequence[DicomSource | Path], *,
                    progress: ProgressSink | None = None,
                    cancel: CancelToken | None = None) -> ProjectionImage:
    """Every frame of a 2-D series with the display rules of its header.

    Raises :class:`DicomReadError` when no file can be read (one file: its reason)."""
    if not sources:
        raise DicomReadError("no files given")
    warnings: list[VolumeWarning] = []
    headers, failures = _read_headers(sources, progress, cancel)
    if not headers:
        if len(sources) == 1 and failures:
            raise DicomReadError(f"{failures[0][0]}: {failures[0][1]}")
        raise DicomReadError(f"none of the {len(sources)} files could be loaded: "
                             + "; ".join(sorted({r for _, r in failures})[:3]))
    frames = _select_frames(headers, warnings)
    first = next(h for h in headers if h.source == frames[0].source)
    full = headers[0]  # the fully parsed header: descriptive metadata and identity
    # The header notes of the Volume path that spacing replaces here are not repeated.
    for note in (n for h in headers for n in h.notes if not n.key.endswith(":nominal")):
        warnings.append(VolumeWarning(WarningCode.IMPLAUSIBLE_GEOMETRY, note.message))
    ds = _header_dataset(first.source)
    fmt = frames[0].fmt
    colour = fmt.is_colour

    by_file: dict[DicomSource, list[tuple[int, PlannedFrame]]] = defaultdict(list)
    for k, f in enumerate(frames):
        by_file[f.source].append((k, f))
    dtype, lo, hi = _value_dtype(frames)
    lut_bits = None if colour else _modality_lut_bits(ds, warnings)
    if lut_bits is not None:  # the table's outputs replace the rescale (C.11.1)
        dtype, lo, hi = np.dtype(np.int32), 0.0, float((1 << lut_bits) - 1)
    shape = (len(frames), fmt.rows, fmt.columns) + ((3,) if colour else ())
    size = math.prod(shape) * (1 if colour else dtype.itemsize)
    if size > VOLUME_MAX_BYTES:  # allocated before anything is decoded: refuse first
        raise DicomReadError(f"the image would be {len(frames)} frames of {fmt.rows}×"
                             f"{fmt.columns} ({size / (1 << 30):.1f} GiB), more than the "
                             f"{VOLUME_MAX_BYTES >> 30} GiB Lucida loads")
    out = np.zeros(shape, dtype=np.uint8 if colour else dtype)
    filled = np.zeros(len(frames), dtype=bool)
    for n, (source, jobs) in enumerate(by_file.items()):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(0.05 + 0.9 * n / len(by_file), f"reading images {n + 1}/{len(by_file)}")
        try:
            decoded = _decode_file(jobs)
        except LucidaError as exc:
            failures.append((str(source), str(exc)))
            continue
        for k, stored in decoded:
            f = frames[k]
            if colour:
                out[k] = _to_rgb8(stored, f.fmt, f.fmt.photometric.startswith("PALETTE"))
            elif lut_bits is not None:
                out[k] = apply_modality_lut(stored, ds)
            elif dtype.kind == "f":
                out[k] = stored.astype(np.float64) * f.slope + f.intercept
            else:
                out[k] = stored.astype(np.int64) * int(f.slope) + int(f.intercept)
            filled[k] = True
    if not filled.any():
        raise DicomReadError("no image could be decoded: "
                             + "; ".join(sorted({r for _, r in failures})[:3]))
    if not filled.all():
        out = out[filled]
    if failures:
        counts = Counter(r for _, r in failures)
        summary = "; ".join(f"{c}× {r}" for r, c in counts.most_common(3))
        warnings.append(VolumeWarning(
            WarningCode.OTHER, f"{len(failures)} of {len(sources)} files were left out: "
            f"{summary}"))
    photometric = fmt.photometric
    spacing, kind = pixel_spacing(ds, full.modality.strip().upper(), warnings)
    used = [f for k, f in enumerate(frames) if filled[k]]
    uids = _instance_uids(list(dict.fromkeys(f.source for f in used)), first.source, ds)
    image = ProjectionImage(
        frames=out,
        series_uid=full.series_uid,
        modality=full.modality,
        photometric=photometric,
        invert=False if colour else display.inverted(ds, photometric, warnings),
        value_range=(0.0, 255.0) if colour else (float(lo), float(hi)),
        voi_windows=[] if colour else display.voi_windows(ds, warnings),
        voi_luts=[] if colour else display.voi_luts(ds, fmt.pixel_representation, warnings),
        pixel_spacing_mm=spacing,
        spacing_kind=kind,
        patient_orientation=display.patient_orientation(ds, warnings),
        frame_time_ms=display.frame_time_ms(ds, out.shape[0], warnings),
        shutters=display.shutters(ds, warnings),
        metadata=_metadata(full, ds),
        identity=dict(full.identity),
        warnings=warnings,
        frame_instance_uids=[uids[f.source] for f in used],
    )
    image.metadata["number_of_frames"] = image.frame_count
    image.metadata["pixel_padding"] = None if colour or lut_bits is not None else _padding(
        frames[0])
    image.metadata["number_of_instances"] = len({f.source for f in used})
    if progress is not None:
        progress(1.0, "image read")
    return image



def _instance_uids(sources: list[DicomSource], first: DicomSource, ds: Any
                   ) -> dict[DicomSource, str]:
    """SOP Instance UID of each source (the first file's parsed header, others read again:
    the loader's headers do not keep it). Only an identifier: a failure gives ""."""
    out: dict[DicomSource, str] = {}
    for source in sources:
        try:
            header = ds if source == first else _header_dataset(source)
            out[source] = str(optional_value(header, "SOPInstanceUID") or "")
        except Exception:  # never worth the image
            out[source] = ""
    return out
