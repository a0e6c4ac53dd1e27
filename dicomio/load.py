"""DICOM instances → one :class:`core.volume.Volume` with correct geometry.

``plan_volume`` reads headers only (sort order, affine, shape, warnings);
``read_volume`` adds the pixels, streaming slices to ``on_slice`` as they
arrive. Geometry decisions (sorting, gantry tilt, uneven spacing, missing
slices, duplicates) are documented in :mod:`dicomio.stack`; codec choice in
:mod:`dicomio.decode`; enhanced multi-frame in :mod:`dicomio.multiframe`.
Every header value that feeds the affine is checked first
(:mod:`dicomio.plausibility`, per frame in :mod:`dicomio.framegeo`).

Value decisions:

* **Rescale.** Output = stored × RescaleSlope + RescaleIntercept (per frame
  for enhanced objects); CT is in HU (``metadata["units"] == "HU"``). The
  array is ``int16`` when every slope/intercept is integral and the values
  fit; otherwise ``float32`` (exact for every 16-bit input). The int16 choice
  is optimistic: if a slice turns out not to fit, the array is widened to
  float32 once (``Volume.array`` is replaced; use the Volume passed to the
  latest ``on_slice``). Resampled (tilted / uneven) volumes are rounded to
  the nearest integer when int16.
* **PixelPaddingValue** (and PixelPaddingRangeLimit) voxels become the
  *background value*: −1024 HU (air) for CT, otherwise 0 (clipped into the
  representable range). Unfilled slices while streaming and voxels outside
  the source after de-tilting hold the same background value.
* **Signed/unsigned** follow PixelRepresentation; bits above BitsStored are
  masked or sign-extended (US/SS-ambiguous padding values are reinterpreted
  accordingly).
* **MONOCHROME1** is inverted so that higher = brighter:
  ``v' = (lo + hi) − v`` with ``[lo, hi]`` the rescaled range of BitsStored;
  the window centre is mapped the same way; ``metadata["inverted_monochrome1"]``.
* **Colour** (RGB, YBR, PALETTE COLOR) images are converted to greyscale
  luminance (ITU-R BT.601, float32) with a warning — Lucida's volumes are
  scalar; nothing is rejected for being colour.
* **Mixed orientations / sizes / pixel spacings** in one set of sources: the
  majority is used and the others are left out with a warning (a localizer in
  a CT series is the usual cause; the scanner in ``dicomio.scan`` normally
  separates these stacks before they get here).
* **No patient geometry** (projection X-ray, ultrasound, secondary capture):
  a 1-slice volume (or a frame stack) with nominal geometry — rows along
  patient P, columns along L, PixelSpacing/ImagerPixelSpacing or 1 mm — and a
  warning saying so.
* Files that cannot be read are left out with a warning when the rest of the
  series loads (an undecodable file leaves its slice blank, warned); when
  nothing loads, :class:`DicomReadError` gives the reason.
* **Hostile input.** Whatever one file does — any exception, MemoryError and
  RecursionError included — is that file's reason, never the import's end.
  pydicom converts values lazily and fails on first access in many ways, so every
  value of an untrusted data set is read through
  :func:`dicomio.plausibility.element_value` (a refusal naming the element) or,
  for what is only shown (descriptions, names, the window), ``optional_value``
  (absent instead). pydicom reads a header through
  :class:`dicomio.decode.BoundedReader` — at most :data:`HEADER_READ_MAX` bytes,
  and never a value longer than what is left of the file — after
  :func:`dicomio.fastheader.walk` has checked the element structure (its caps on
  elements and nesting; a truncated element is refused here as in the scan). A
  deflated data set is inflated within the same bound for the header and within
  the declared pixel size plus that bound for decoding. Pixel descriptions that
  would decode to more than 4 GiB per file (or a volume of more than
  :data:`VOLUME_MAX_BYTES`) are refused before anything is allocated.
* **Implausible geometry.** A header value that cannot be right (e.g.
  ``PixelSpacing 0\\0.7 is not positive``) is such a reason: the file — or,
  in an enhanced object, the frame — that carries it is left out, named in the
  warning, and a lone file is refused with it. A value that is nearly right
  (direction cosines slightly off unit length or perpendicular) is corrected
  and warned (``WarningCode.IMPLAUSIBLE_GEOMETRY``); the warnings of all files
  are summarised into one per kind. Rules and thresholds: :mod:`dicomio.plausibility`.

Speed: headers are read once (pydicom for the first file, the lean reader of
:mod:`dicomio.fastheader` for the rest); native pixel bytes are read at their
file offset; compressed frames are decoded in a thread pool (imagecodecs and
SimpleITK release the GIL). Results are consumed, rescaled and streamed to
``on_slice`` in the calling thread.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import DicomReadError, LucidaError
from core.progress import CancelToken, ProgressSink
from core.volume import Volume, VolumeWarning, WarningCode
from dicomio import fastheader
from dicomio.decode import (
    BoundedReader,
    PixelFormat,
    can_use_fast_path,
    can_use_imagecodecs,
    can_use_sitk,
    decode_dataset,
    decode_file_sitk,
    decode_frames_imagecodecs,
    frame_header_matches,
    inflated_size_exceeds,
    locate_native_pixels,
    luminance,
    read_encoded_frames,
    read_native_frame,
)
from dicomio.fastheader import read_lean_header
from dicomio.framegeo import GEOMETRY_KEYWORDS, file_geometry, finite_or_none
from dicomio.multiframe import enhanced_frames, first_item, functional_value
from dicomio.plausibility import (
    ImplausibleValue,
    Note,
    check_frame_count,
    check_matrix,
    check_pixel_format,
    check_rescale,
    element_value,
    optional_value,
    summarise,
)
from dicomio.source import DicomSource
from dicomio.stack import StackGeometry, TargetSlice, build_stack, same_orientation

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
CT_AIR_HU = -1024
#: Bytes of one header that pydicom is handed (the first file of a series, and files
#: the lean reader declines). pydicom keeps a header as Python objects, up to ~80x
#: its bytes for a crafted one of empty items; real headers stay far below this (the
#: per-frame groups of a 10,000-frame enhanced MR are ~10 MB).
HEADER_READ_MAX = 16 << 20
#: The largest volume array planned (int16 or float32 voxels): 2,000 slices of
#: 1024 x 1024 int16. The array is allocated before the first slice is decoded, so a
#: few small files claiming huge images are refused here instead.
VOLUME_MAX_BYTES = 4 << 30

__all__ = ["PlannedFrame", "VolumePlan", "plan_volume", "read_volume"]


@dataclass(frozen=True)
class PlannedFrame:
    """One 2-D frame of a source file, with what is needed to read and rescale it."""

    source: DicomSource
    frame_index: int
    fmt: PixelFormat
    slope: float
    intercept: float
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    instance_number: int


@dataclass
class VolumePlan:
    """Header-only description of the volume ``read_volume`` will return."""

    frames: list[PlannedFrame]  # sorted source frames (k order before any resampling)
    geometry: StackGeometry
    affine: FloatArray
    shape: tuple[int, int, int]
    modality: str
    series_uid: str
    frame_of_reference_uid: str
    dtype: np.dtype[Any]
    background: float
    metadata: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    warnings: list[VolumeWarning] = field(default_factory=list)

    @property
    def spacing_mm(self) -> FloatArray:
        return np.asarray(np.linalg.norm(self.affine[:3, :3], axis=0), dtype=np.float64)

    @property
    def resampled(self) -> bool:
        """True when output voxels are interpolated (de-tilt or uneven spacing)."""
        return bool(self.metadata.get("resampled", False))

    @property
    def orientation_code(self) -> str:
        from core.geometry import orientation_code

        return orientation_code(self.affine)


# --------------------------------------------------------------------------- headers


@dataclass
class _Header:
    source: DicomSource
    frames: list[PlannedFrame]
    meta: dict[str, Any]
    identity: dict[str, str]
    sop_class_uid: str
    series_uid: str
    for_uid: str
    modality: str
    gantry_tilt: float | None
    slice_step: float | None
    has_geometry: bool
    notes: list[Note]  # corrected values (dicomio.plausibility), summarised per series
    step_notes: list[Note]  # an invalid slice step replaced; shown only where the step is used


def _as_source(item: DicomSource | Path | str) -> DicomSource:
    if isinstance(item, DicomSource):
        return item
    return DicomSource(Path(item))


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value == ""):
        return None
    try:
        if isinstance(value, (list, tuple)) or (hasattr(value, "__len__")
                                                and not isinstance(value, (str, bytes))):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        return None


def _text(ds: Any, keyword: str, *, shown_only: bool = False) -> str:
    """A text value; one pydicom cannot convert refuses the file naming it, or, with
    ``shown_only`` (descriptions, names, dates), is read as empty."""
    value = (optional_value if shown_only else element_value)(ds, keyword)
    return "" if value is None else str(value).strip()


def _joined(ds: Any, keyword: str) -> str:
    """A multi-valued text (e.g. ScanningSequence GR\\IR) joined by backslashes, as stored;
    empty when absent or unreadable (only shown)."""
    value = optional_value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    if isinstance(value, str):
        return value.strip()
    try:
        return "\\".join(str(v).strip() for v in value)
    except TypeError:
        return str(value).strip()


def _number(ds: Any, keyword: str, *, shown_only: bool = False) -> float | None:
    """A number (the first of several), None when absent or not a number."""
    return _num((optional_value if shown_only else element_value)(ds, keyword))


def _whole(ds: Any, keyword: str, default: int | None = None) -> int:
    """An integer attribute of the pixel description: ``default`` when absent or empty,
    refused naming the element when it is not a finite number (or absent without a
    default)."""
    value = element_value(ds, keyword)
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        if default is None:
            raise ImplausibleValue(keyword, f"image attributes missing or invalid: {keyword} "
                                   "is missing")
        return default
    number = _num(value)
    if number is None or not math.isfinite(number):
        raise ImplausibleValue(keyword, f"image attributes missing or invalid: {keyword} "
                               f"{str(value)[:40]!r} is not a whole number")
    return int(number)


def _finite_int(value: float | None, default: int) -> int:
    return int(value) if value is not None and math.isfinite(value) else default


def _file_size(source: DicomSource) -> int | None:
    if source.member is not None:
        return None
    try:
        return source.path.stat().st_size
    except OSError:
        return None


def _read_header(source: DicomSource, full: bool = True) -> _Header:
    """Parse one file's header; raises DicomReadError with a specific reason.

    With ``full=False`` only what sorting and decoding need is extracted (the
    descriptive metadata and identity come from the first file of a series)."""
    size = _file_size(source)
    if size == 0:
        raise DicomReadError("empty file (0 bytes)")
    try:
        fp = source.open()
    except (OSError, KeyError) as exc:
        raise DicomReadError(f"cannot open the file: {exc}") from exc
    with fp:
        if size is None:  # a zip member: its spool knows its size
            size = fastheader.data_size(fp)
        return _parse_header(source, fp, size, full)


def _parse_header(source: DicomSource, fp: Any, size: int, full: bool) -> _Header:
    from dicomio.classify import classify_sop_class, sop_class_name

    raw_dataset = False
    lean = None if full else read_lean_header(fp, size)
    if lean is not None and any(k in lean[0] and lean[0].get(k) is None
                                for k in GEOMETRY_KEYWORDS):
        lean = None  # a geometry value it could not parse: pydicom's read can name it
    ds: Any
    if lean is not None:
        ds = lean[0]
    else:
        ds, raw_dataset = _read_header_pydicom(fp, size)
    meta = getattr(ds, "file_meta", None)
    ts = str(element_value(meta, "TransferSyntaxUID") or "") if meta is not None else ""
    if not ts:
        ts = _encoding_syntax(ds)
        raw_dataset = True
    sop_class = _text(ds, "SOPClassUID") or (
        _text(meta, "MediaStorageSOPClassUID") if meta is not None else "")
    pixel_state, pixel_pos, pixel_header, pixel_length = _peek_pixels(fp, ts)
    has_pixels = pixel_state != "absent"
    kind = classify_sop_class(sop_class, has_pixel_data=has_pixels)
    if not kind.is_image:
        raise DicomReadError(
            f"not an image: {sop_class_name(sop_class) or 'no SOP class'} ({kind.value}); "
            "it is indexed as a non-image object")
    if not has_pixels:
        raise DicomReadError(
            f"no pixel data ({sop_class_name(sop_class) or 'unknown SOP class'})")
    if pixel_state == "float":
        raise DicomReadError("float or double pixel data are not supported")
    rows, cols = _whole(ds, "Rows"), _whole(ds, "Columns")
    bits_alloc = _whole(ds, "BitsAllocated")
    check_matrix(rows, cols)
    # Old writers leave these 0 or empty; the defaults are what they meant.
    samples = _whole(ds, "SamplesPerPixel", 1) or 1
    bits_stored = _whole(ds, "BitsStored", bits_alloc) or bits_alloc
    representation = _whole(ds, "PixelRepresentation", 0)
    frames_count = check_frame_count(_number(ds, "NumberOfFrames"))
    check_pixel_format(samples=samples, bits_allocated=bits_alloc, bits_stored=bits_stored,
                       pixel_representation=representation, frames=frames_count,
                       rows=rows, columns=cols)
    fmt = PixelFormat(
        transfer_syntax=ts,
        rows=rows,
        columns=cols,
        samples_per_pixel=samples,
        bits_allocated=bits_alloc,
        bits_stored=bits_stored,
        pixel_representation=representation,
        photometric=_text(ds, "PhotometricInterpretation") or "MONOCHROME2",
        number_of_frames=frames_count,
    )
    if pixel_state == "native":
        _check_pixel_length(fmt, pixel_length)
    # US-or-SS values pydicom could not resolve stay raw bytes: not a number to use.
    pad_raw = element_value(ds, "PixelPaddingValue")
    pad = None if isinstance(pad_raw, (bytes, str)) else _num(pad_raw)
    limit_raw = element_value(ds, "PixelPaddingRangeLimit")
    pad_limit = None if isinstance(limit_raw, (bytes, str)) else _num(limit_raw)
    if pad is not None and math.isfinite(pad):
        fmt = _replace_fmt(fmt, padding_value=fmt.signed_value(int(pad)),
                           padding_limit=None if pad_limit is None or not math.isfinite(
                               pad_limit) else fmt.signed_value(int(pad_limit)))
    if pixel_state == "encapsulated" and not raw_dataset:
        fmt = _replace_fmt(fmt, encapsulated_offset=pixel_pos + pixel_header)
    if pixel_state == "native" and not raw_dataset and can_use_fast_path(
            _replace_fmt(fmt, pixel_offset=-1)):
        fp.seek(pixel_pos)
        offset = locate_native_pixels(fp, ts, fmt.frame_bytes * fmt.number_of_frames, size)
        if offset is not None:
            fmt = _replace_fmt(fmt, pixel_offset=offset)

    modality = _text(ds, "Modality")
    slope = _number(ds, "RescaleSlope")
    intercept = _number(ds, "RescaleIntercept")
    instance = _finite_int(_number(ds, "InstanceNumber"), 0)
    thickness = _number(ds, "SliceThickness")
    frames: list[PlannedFrame] = []
    enhanced = (enhanced_frames(ds, fmt.number_of_frames) if fmt.number_of_frames > 1
                or "PerFrameFunctionalGroupsSequence" in ds else None)
    geo = file_geometry(ds, fmt.number_of_frames, enhanced)
    window_center = _number(ds, "WindowCenter", shown_only=True) if full else None
    window_width = _number(ds, "WindowWidth", shown_only=True) if full else None
    has_geometry = True
    refused: list[ImplausibleValue] = []
    for f, frame_geo in enumerate(geo.frames):
        attrs = enhanced[f] if enhanced is not None and f < len(enhanced) else None
        if attrs is not None and attrs.window_center is not None and window_center is None:
            window_center, window_width = attrs.window_center, attrs.window_width
        if isinstance(frame_geo, ImplausibleValue):
            refused.append(frame_geo)
            continue
        fslope = attrs.slope if attrs and attrs.slope is not None else slope
        ficpt = attrs.intercept if attrs and attrs.intercept is not None else intercept
        fslope = 1.0 if fslope is None or fslope == 0 else float(fslope)
        ficpt = 0.0 if ficpt is None else float(ficpt)
        try:
            check_rescale(fslope, ficpt, fmt.stored_range(),
                          f" (frame {f + 1})" if fmt.number_of_frames > 1 else "")
        except ImplausibleValue as exc:
            refused.append(exc)
            continue
        if frame_geo.position is None or frame_geo.orientation is None:
            has_geometry = False
        frames.append(PlannedFrame(
            source=source,
            frame_index=f,
            fmt=fmt,
            slope=fslope,
            intercept=ficpt,
            position=frame_geo.position,
            orientation=frame_geo.orientation,
            pixel_spacing=frame_geo.pixel_spacing,
            instance_number=instance,
        ))
    notes = list(geo.notes)
    if refused:
        if not frames:  # every frame needs the refused value: the file is refused
            raise refused[0]
        notes.append(Note("frames left out", f"{len(refused)} of {len(geo.frames)} frames "
                          f"were left out: {refused[0]}"))
    step = geo.slice_step
    tilt = finite_or_none(_number(ds, "GantryDetectorTilt", shown_only=True))
    rescale_type = _text(ds, "RescaleType")
    if not rescale_type and enhanced is not None:
        shared = first_item(element_value(ds, "SharedFunctionalGroupsSequence"))
        value = functional_value([shared], "PixelValueTransformationSequence", "RescaleType")
        rescale_type = "" if value is None else str(value).strip()
    units = "HU" if modality == "CT" and rescale_type in ("", "HU") else rescale_type
    if not full:
        return _Header(source, frames, {"modality": modality, "units": units}, {}, sop_class,
                       "", "", modality, tilt, step, has_geometry, notes, geo.step_notes)

    def shown(keyword: str) -> str:
        return _text(ds, keyword, shown_only=True)

    meta_out: dict[str, Any] = {
        "modality": modality,
        "series_description": shown("SeriesDescription"),
        # What the MR sequence is, for model packs' sequence hints (free text, shown only).
        "protocol_name": shown("ProtocolName"),
        "sequence_name": shown("SequenceName"),
        "scanning_sequence": _joined(ds, "ScanningSequence"),
        # e.g. ORIGINAL\PRIMARY\AXIAL: hanging protocols match on it (app.hanging).
        "image_type": _joined(ds, "ImageType"),
        "mr_acquisition_type": shown("MRAcquisitionType"),
        "study_description": shown("StudyDescription"),
        "study_date": shown("StudyDate"),
        "study_instance_uid": _text(ds, "StudyInstanceUID"),
        "series_number": shown("SeriesNumber"),
        "manufacturer": shown("Manufacturer"),
        "body_part": shown("BodyPartExamined"),
        "sop_class_uid": sop_class,
        "rescale_type": rescale_type or units,
        "units": units,
        "window_center": window_center,
        "window_width": window_width,
        "photometric": fmt.photometric,
        "bits_stored": fmt.bits_stored,
        "pixel_representation": fmt.pixel_representation,
        "slice_thickness": finite_or_none(thickness),
    }
    identity = {
        "patient_name": shown("PatientName"),
        "patient_id": shown("PatientID"),
        "patient_birth_date": shown("PatientBirthDate"),
    }
    return _Header(source, frames, meta_out, identity, sop_class, _text(ds, "SeriesInstanceUID"),
                   _text(ds, "FrameOfReferenceUID"), modality, tilt, step, has_geometry, notes,
                   geo.step_notes)


def _read_header_pydicom(fp: Any, size: int) -> tuple[Any, bool]:
    """The header read by pydicom within the caps (see the module doc): (data set,
    whether it is a bare data set without file meta)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    meta = _file_meta(fp, size)
    if meta is not None and meta.transfer_syntax in fastheader.DEFLATED:
        return _read_deflated_header(fp, meta), False
    if meta is not None and meta.transfer_syntax:
        _check_structure(fp, meta.dataset_start, size, meta.transfer_syntax, meta.head)
    raw_dataset = False
    fp.seek(0)
    reader = BoundedReader(fp, HEADER_READ_MAX, size)
    try:
        try:
            ds = pydicom.dcmread(reader, stop_before_pixels=True)
        except InvalidDicomError as exc:
            fp.seek(0)
            if not _looks_like_raw_dataset(fp.read(8)):
                raise DicomReadError(
                    "not a DICOM Part 10 file (no 'DICM' marker after the 128-byte "
                    "preamble)") from exc
            # A bare dataset without preamble/meta (old files): read it as such.
            fp.seek(0)
            reader = BoundedReader(fp, HEADER_READ_MAX, size)
            ds = pydicom.dcmread(reader, stop_before_pixels=True, force=True)
            raw_dataset = True
    except DicomReadError:
        raise
    except Exception as exc:  # pydicom raises many types on corrupt headers
        raise _header_failure(exc, reader.exhausted) from exc
    if reader.exhausted:
        raise _header_failure(None, True)
    return ds, raw_dataset


def _file_meta(fp: Any, size: int) -> fastheader.FileMeta | None:
    """The Part 10 file meta as the header parser reads it; None when there is none
    or pydicom should read it (meta without explicit VRs)."""
    try:
        return fastheader.read_file_meta(fp, size)
    except fastheader.Declined:
        return None
    except fastheader.HeaderProblem as problem:
        raise DicomReadError(str(problem)) from None


def _check_structure(fp: Any, start: int, end: int | None, syntax: str, head: bytes = b"",
                     limit: int | None = None) -> None:
    """Walk the header's elements with the scan's parser before pydicom reads them: the
    caps on elements and nesting (pydicom recurses once per level of an undefined-length
    sequence) and an element that runs past the end are refusals with its reason. What
    the walker does not read (an invalid VR) is left to pydicom."""
    try:
        fastheader.walk(fp, start, end=end, limit=limit,
                        implicit=syntax == fastheader.IMPLICIT_LE,
                        little=syntax != fastheader.EXPLICIT_BE, head=head)
    except fastheader.HeaderProblem as problem:
        raise DicomReadError(str(problem)) from None
    except fastheader.Declined:
        pass


def _read_deflated_header(fp: Any, meta: fastheader.FileMeta) -> Any:
    """A deflated data set's header: its first :data:`HEADER_READ_MAX` inflated bytes,
    walked and read by pydicom up to the pixel data (pydicom's own ``dcmread`` would
    inflate the whole file at once, whatever it grows to)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset
    from pydicom.uid import UID

    try:
        data, complete = fastheader.inflate(fp, meta.dataset_start, HEADER_READ_MAX)
    except fastheader.HeaderProblem as problem:
        raise DicomReadError(str(problem)) from None
    _check_structure(io.BytesIO(data), 0, len(data) if complete else None,
                     "1.2.840.10008.1.2.1", limit=len(data))

    def at_pixels(tag: Any, vr: Any, length: int) -> bool:
        return int(tag) in fastheader.PIXEL_TAGS

    try:
        ds = read_dataset(io.BytesIO(data), False, True, stop_when=at_pixels)
    except Exception as exc:  # pydicom raises many types on corrupt headers
        raise _header_failure(exc, False) from exc
    file_meta = FileMetaDataset()
    file_meta.TransferSyntaxUID = UID(meta.transfer_syntax)
    if meta.sop_class:
        file_meta.MediaStorageSOPClassUID = UID(meta.sop_class)
    ds.file_meta = file_meta
    return ds


def _header_failure(exc: BaseException | None, too_large: bool) -> DicomReadError:
    if too_large:
        return DicomReadError(f"header too large: Lucida reads at most {HEADER_READ_MAX} "
                              "bytes of header")
    if isinstance(exc, RecursionError):
        return DicomReadError("DICOM header is nested too deeply to read (RecursionError)")
    if isinstance(exc, MemoryError):
        return DicomReadError("DICOM header cannot be read: it ran out of memory (MemoryError)")
    return DicomReadError(
        f"DICOM header is truncated or corrupt ({type(exc).__name__}: {exc})"[:300])


def _looks_like_raw_dataset(head: bytes) -> bool:
    """True when a file starts like a bare little/big-endian dataset (group 0002/0008)."""
    if len(head) < 8:
        return False
    group_le = int.from_bytes(head[:2], "little")
    group_be = int.from_bytes(head[:2], "big")
    return group_le in (0x0002, 0x0008) or group_be == 0x0008


def _encoding_syntax(ds: Any) -> str:
    """Transfer syntax UID of a dataset read without file meta, from its encoding."""
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if little is False:
        return "1.2.840.10008.1.2.2"
    return "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"


def _replace_fmt(fmt: PixelFormat, **changes: Any) -> PixelFormat:
    from dataclasses import replace

    return replace(fmt, **changes)


def _check_pixel_length(fmt: PixelFormat, length: int) -> None:
    """Native pixel data holding a whole frame more than the header describes
    means Rows, Columns or NumberOfFrames are wrong (e.g. byte-swapped): the
    image would be read as a strip of the real one. A few bytes of trailing
    padding are normal; too little data is reported when the pixels are read."""
    needed = fmt.frame_bytes * fmt.number_of_frames
    if fmt.frame_bytes > 0 and length - needed >= fmt.frame_bytes:
        raise ImplausibleValue(
            "Rows", f"Rows {fmt.rows}, Columns {fmt.columns}, NumberOfFrames "
            f"{fmt.number_of_frames} (× {fmt.samples_per_pixel} sample(s) of "
            f"{fmt.bits_allocated} bits) describe {needed} bytes of pixels, but PixelData holds "
            f"{length}: the image size in the header is wrong")


def _peek_pixels(fp: Any, ts: str) -> tuple[str, int, int, int]:
    """What follows the header: 'native', 'encapsulated', 'float', 'absent' or
    'unknown' (deflated / big endian: cannot tell without a full parse), its
    file offset, the length of its element header (where the value starts) and the
    element's value length (0 when not known)."""
    import struct

    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

    pos = fp.tell()
    if ts in (str(DeflatedExplicitVRLittleEndian), str(ExplicitVRBigEndian)):
        return "unknown", pos, 0, 0
    head = fp.read(12)
    fp.seek(pos)
    if len(head) < 8:
        return "absent", pos, 0, 0
    group, element = struct.unpack("<HH", head[:4])
    if group != 0x7FE0:
        return "absent", pos, 0, 0
    if element in (0x0008, 0x0009):
        return "float", pos, 0, 0
    if element != 0x0010:
        return "absent", pos, 0, 0
    # The one long-VR table (fastheader.LONG_VRS); an element without a VR where one
    # belongs (some writers put the pixel data in implicit VR) has a 4-byte length.
    if ts == fastheader.IMPLICIT_LE or not fastheader.is_vr(head[4:6]):
        (length,) = struct.unpack("<I", head[4:8])
        header = 8
    elif head[4:6] in fastheader.LONG_VRS:
        if len(head) < 12:
            return "absent", pos, 0, 0  # the file ends inside the element header
        (length,) = struct.unpack("<I", head[8:12])
        header = 12
    else:
        (length,) = struct.unpack("<H", head[6:8])
        header = 8
    if length == 0xFFFFFFFF:
        return "encapsulated", pos, header, 0
    return "native", pos, header, length


# --------------------------------------------------------------------------- planning


def _read_headers(sources: Sequence[DicomSource | Path], progress: ProgressSink | None = None,
                  cancel: CancelToken | None = None) -> tuple[list[_Header],
                                                              list[tuple[str, str]]]:
    headers: list[_Header] = []
    failures: list[tuple[str, str]] = []
    count = len(sources)
    for n, item in enumerate(sources):
        if n % 64 == 0:
            if cancel is not None:
                cancel.raise_if_cancelled()
            if progress is not None and n:
                progress(0.05 * n / count, f"reading headers {n}/{count}")
        src = _as_source(item)
        try:
            headers.append(_read_header(src, full=not headers))
        except LucidaError as exc:
            failures.append((str(src), str(exc)))
        except Exception as exc:  # MemoryError, RecursionError, anything: this file only
            log.warning("load: %s left out after %s", src, type(exc).__name__)
            failures.append((str(src), _unexpected_failure(exc)))
    return headers, failures


def _unexpected_failure(exc: BaseException) -> str:
    """The reason for a failure no check foresaw (the rule: it is this file's alone)."""
    if isinstance(exc, MemoryError):
        return "reading this file ran out of memory (MemoryError)"
    if isinstance(exc, RecursionError):
        return "its header is nested too deeply to read (RecursionError)"
    return f"unexpected {type(exc).__name__} while reading it: {exc}"[:300]


def plan_volume(sources: Sequence[DicomSource | Path]) -> VolumePlan:
    """Header-only plan: sorted frames, affine, shape, modality, warnings."""
    if not sources:
        raise DicomReadError("no files given")
    headers, failures = _read_headers(sources)
    return _plan_from_headers(headers, failures, len(sources))


def _majority(items: list[Any], key: Callable[[Any], Any]) -> Any:
    counts = Counter(key(x) for x in items)
    return counts.most_common(1)[0][0]


def _plan_from_headers(headers: list[_Header], failures: list[tuple[str, str]],
                       total: int) -> VolumePlan:
    warnings: list[VolumeWarning] = []
    if not headers:
        if total == 1 and failures:
            raise DicomReadError(f"{failures[0][0]}: {failures[0][1]}")
        reasons = Counter(reason for _, reason in failures)
        summary = "; ".join(f"{n}× {r}" for r, n in reasons.most_common(3))
        raise DicomReadError(f"none of the {total} files could be loaded: {summary}")
    if failures:
        reasons = Counter(reason for _, reason in failures)
        summary = "; ".join(f"{n}× {r}" for r, n in reasons.most_common(3))
        warnings.append(VolumeWarning(
            WarningCode.OTHER, f"{len(failures)} of {total} files were left out: {summary}"))

    frames = [f for h in headers for f in h.frames]
    # Same image size.
    size = _majority(frames, lambda f: (f.fmt.rows, f.fmt.columns))
    other = [f for f in frames if (f.fmt.rows, f.fmt.columns) != size]
    if other:
        frames = [f for f in frames if (f.fmt.rows, f.fmt.columns) == size]
        warnings.append(VolumeWarning(
            WarningCode.OTHER,
            f"{len(other)} image(s) of another size were left out; the volume uses the "
            f"{size[0]}×{size[1]} images"))

    geo = [f for f in frames if f.position is not None and f.orientation is not None]
    if geo and len(geo) < len(frames):
        warnings.append(VolumeWarning(
            WarningCode.OTHER,
            f"{len(frames) - len(geo)} image(s) without a patient position were left out"))
        frames = geo
    tilt = next((h.gantry_tilt for h in headers if h.gantry_tilt), None)
    if geo:
        ref = _majority(frames, lambda f: tuple(round(x, 3) for x in f.orientation or ()))
        same = [f for f in frames if same_orientation(f.orientation or (), ref)]
        if len(same) < len(frames):
            warnings.append(VolumeWarning(
                WarningCode.MIXED_ORIENTATION,
                f"{len(frames) - len(same)} of {len(frames)} images have another orientation "
                "(e.g. a localizer) and were left out; the volume uses the majority "
                "orientation"))
            frames = same
        spacing_ref = _majority(
            frames, lambda f: tuple(round(x, 4) for x in f.pixel_spacing or (1.0, 1.0)))
        keep = [f for f in frames
                if np.allclose(f.pixel_spacing or (1.0, 1.0), spacing_ref, atol=1e-3)]
        if len(keep) < len(frames):
            warnings.append(VolumeWarning(
                WarningCode.OTHER,
                f"{len(frames) - len(keep)} image(s) with another pixel spacing were left out"))
            frames = keep
        if frames[0].pixel_spacing is None:
            warnings.append(VolumeWarning(
                WarningCode.OTHER, "PixelSpacing is missing: 1 mm pixels are assumed"))
        first_header = next(h for h in headers if h.source == frames[0].source)
        geometry = build_stack(
            [f.position for f in frames],  # type: ignore[misc]
            frames[0].orientation or (),
            frames[0].pixel_spacing or (1.0, 1.0),
            size[0], size[1],
            tie_break=[f.instance_number * 100000 + f.frame_index for f in frames],
            single_slice_step_mm=first_header.slice_step or 1.0,
            gantry_tilt_deg=tilt,
        )
        step_used = geometry.shape[0] == 1  # one slice: its thickness is the k spacing
    else:
        # No patient geometry: nominal grid, frames in instance/frame order.
        frames = sorted(frames, key=lambda f: (f.instance_number, str(f.source), f.frame_index))
        first_header = next(h for h in headers if h.source == frames[0].source)
        step = first_header.slice_step or 1.0
        geometry = build_stack(
            [(0.0, 0.0, k * step) for k in range(len(frames))],
            (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
            frames[0].pixel_spacing or (1.0, 1.0),
            size[0], size[1],
            single_slice_step_mm=step,
        )
        what = "image has" if len(frames) == 1 else f"{len(frames)} frames have"
        warnings.append(VolumeWarning(
            WarningCode.OTHER,
            f"the {what} no patient position/orientation (e.g. projection X-ray, ultrasound, "
            "secondary capture): shown with nominal geometry (columns → patient left, rows → "
            "posterior"
            + ("" if len(frames) == 1 else f", frames {step:g} mm apart in frame order")
            + "); not for 3-D measurements"))
        step_used = True
    ordered = [frames[i] for i in geometry.order]
    used = {f.source for f in ordered}
    notes = [n for h in headers if h.source in used for n in h.notes]
    if step_used:
        notes.extend(first_header.step_notes)
    warnings.extend(summarise(notes))
    warnings.extend(geometry.warnings)

    colour = any(f.fmt.is_colour for f in ordered)
    first = headers[0]  # the fully parsed header: descriptive metadata and identity
    modality = first.modality
    lo, hi = _rescaled_range(ordered[0])
    if modality == "CT" and first.meta["units"] == "HU":
        background = float(CT_AIR_HU)
    else:
        background = float(min(max(0.0, lo), hi))
    integral = all(_integral(f) for f in ordered)
    # The background fills unread slices of the array as it is allocated (np.full wraps
    # a value int16 cannot hold) and a file that fails to decode (assigning it raises
    # OverflowError): an int16 volume needs a background int16 holds.
    integral = integral and -32768 <= background <= 32767
    dtype = np.dtype(np.int16) if integral and not colour else np.dtype(np.float32)
    volume_bytes = math.prod(geometry.shape) * dtype.itemsize
    if volume_bytes > VOLUME_MAX_BYTES:
        raise DicomReadError(
            f"the volume would be {geometry.shape[0]}×{geometry.shape[1]}×{geometry.shape[2]} "
            f"voxels ({volume_bytes / (1 << 30):.1f} GiB), more than the "
            f"{VOLUME_MAX_BYTES >> 30} GiB Lucida loads")
    if colour:
        warnings.append(VolumeWarning(
            WarningCode.OTHER,
            f"colour image ({ordered[0].fmt.photometric}) converted to greyscale luminance"))
    meta = dict(first.meta)
    monochrome1 = any(f.fmt.photometric == "MONOCHROME1" for f in ordered)
    if monochrome1 and meta.get("window_center") is not None:
        meta["window_center"] = (lo + hi) - float(meta["window_center"])
    meta.update({
        "transfer_syntaxes": {f.fmt.transfer_syntax for f in ordered},
        "number_of_instances": len(used),
        "number_of_frames": len(ordered),
        "inverted_monochrome1": monochrome1,
        "pixel_padding_value": ordered[0].fmt.padding_value,
        "padding_mapped_to": background if ordered[0].fmt.padding_value is not None else None,
        "background_value": background,
        "slice_positions_mm": [float(x) for x in geometry.positions_mm],
        "gantry_tilt_deg": tilt,
        "converted_from_colour": colour,
    })
    interpolated = bool(np.any(geometry.shifts != 0)) or any(
        t.lo != t.hi and 0.0 < t.weight < 1.0 for t in geometry.targets)
    meta["resampled"] = interpolated
    if interpolated:
        warnings.append(VolumeWarning(
            WarningCode.RESAMPLED,
            f"resampled from {len(ordered)} source slices to a regular "
            f"{geometry.shape[0]}×{geometry.shape[1]}×{geometry.shape[2]} grid"))
    return VolumePlan(
        frames=ordered,
        geometry=geometry,
        affine=geometry.affine,
        shape=geometry.shape,
        modality=modality,
        series_uid=first.series_uid,
        frame_of_reference_uid=first.for_uid,
        dtype=dtype,
        background=background,
        metadata=meta,
        identity=dict(first.identity),
        warnings=warnings,
    )


def _integral(frame: PlannedFrame) -> bool:
    """Whether a frame's rescale is integer arithmetic that cannot overflow the int32
    of :func:`_to_values` (stored × slope, then + intercept): a slope of 1e30 is
    integral but is rescaled in floating point."""
    if not (float(frame.slope).is_integer() and float(frame.intercept).is_integer()):
        return False
    lo_s, hi_s = frame.fmt.stored_range()
    limit = 2**31 - 1
    scaled = max(abs(lo_s), abs(hi_s)) * abs(frame.slope)
    lo, hi = _rescaled_range(frame)
    return scaled <= limit and -limit <= lo and hi <= limit


def _rescaled_range(frame: PlannedFrame) -> tuple[float, float]:
    lo_s, hi_s = frame.fmt.stored_range()
    a = lo_s * frame.slope + frame.intercept
    b = hi_s * frame.slope + frame.intercept
    return (min(a, b), max(a, b))


# --------------------------------------------------------------------------- pixels


def _decode_file(frames: list[tuple[int, PlannedFrame]]) -> list[tuple[int, npt.NDArray[Any]]]:
    """Stored values of the requested frames of one file: [(k, array), ...].

    Any failure is a DicomReadError naming the file (it runs in worker threads too,
    and one file's failure is that file's alone)."""
    source = frames[0][1].source
    fmt = frames[0][1].fmt
    out: list[tuple[int, npt.NDArray[Any]]] = []
    try:
        if can_use_fast_path(fmt):
            with source.open() as fp:
                for k, fr in frames:
                    out.append((k, read_native_frame(fp, fmt, fr.frame_index)))
            return out
        first = frames[0][1]
        gdcm_safe = False
        if fmt.encapsulated_offset is not None:
            # Every frame's own header is checked before any decoder sees the file
            # (decode.check_encoded_frame); a frame that fails refuses the file.
            with source.open() as fp:
                encoded = read_encoded_frames(fp, fmt)
            gdcm_safe = len(encoded) == 1 and frame_header_matches(encoded[0], fmt)
            if can_use_imagecodecs(fmt):
                try:
                    arrays = decode_frames_imagecodecs(
                        encoded, fmt, [fr.frame_index for _, fr in frames])
                    return [(k, a) for (k, _), a in zip(frames, arrays, strict=True)]
                except ImportError:
                    pass
                except Exception as exc:  # fall back to the other decoders below
                    log.debug("imagecodecs could not decode %s: %s", source, exc)
            del encoded
        try:
            ds = _read_whole_dataset(source, fmt)
            arr = decode_dataset(ds, fmt, str(source))
        except DicomReadError as exc:
            # GDCM (through SimpleITK) is the last resort, as ARCHITECTURE.md orders the
            # decoders: on damaged data it has allocated gigabytes (an RLE item past the
            # end, a delimiter with a length) and crashed the process (a JPEG-LS frame
            # header of width 0), so it sees only a frame whose own header matches the
            # file's exactly, and only when every other decoder refused it.
            if not (gdcm_safe and can_use_sitk(fmt, first.slope, first.intercept,
                                               source.member is None)):
                raise
            try:
                return [(frames[0][0], decode_file_sitk(str(source.path), fmt, first.intercept))]
            except Exception as sitk_exc:
                log.debug("SimpleITK could not decode %s: %s", source, sitk_exc)
                raise exc from None
    except LucidaError as exc:
        raise DicomReadError(f"{source}: {exc}") from exc
    except MemoryError as exc:
        raise DicomReadError(f"{source}: pixel data cannot be read: decoding ran out of "
                             "memory (MemoryError)") from exc
    except Exception as exc:  # pydicom/decoder errors on corrupt data
        raise DicomReadError(
            f"{source}: pixel data cannot be read ({type(exc).__name__}: {exc})"[:400]) from exc
    for k, fr in frames:
        if fr.frame_index >= arr.shape[0]:
            raise DicomReadError(f"{source}: frame {fr.frame_index + 1} is missing")
        out.append((k, arr[fr.frame_index]))
    return out


def _read_whole_dataset(source: DicomSource, fmt: PixelFormat) -> Any:
    """The whole file, pixel data included, read by pydicom for its decoders: through a
    reader that never hands out more than the file holds (a crafted length before the
    pixel data is not allocated), and a deflated data set only when it inflates to at
    most its declared pixels plus :data:`HEADER_READ_MAX` (pydicom inflates it whole)."""
    import pydicom
    from pydicom.uid import UID

    with source.open() as fp:
        size = fastheader.data_size(fp)
        meta = _file_meta(fp, size)
        if meta is not None and meta.transfer_syntax in fastheader.DEFLATED:
            cap = HEADER_READ_MAX + fmt.frame_bytes * fmt.number_of_frames
            if inflated_size_exceeds(fp, meta.dataset_start, cap):
                raise DicomReadError(f"the deflated data set inflates to more than {cap} "
                                     "bytes, more than its header describes")
        fp.seek(0)
        ds = pydicom.dcmread(BoundedReader(fp, None, size), force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID(fmt.transfer_syntax)
    return ds


def _to_values(stored: npt.NDArray[Any], frame: PlannedFrame, integral: bool,
               background: float) -> npt.NDArray[Any]:
    """Rescaled, padding-mapped, MONOCHROME1-inverted values of one frame (int32 or float)."""
    fmt = frame.fmt
    if stored.ndim == 3:  # colour
        return luminance(stored)
    pad_mask = None
    if fmt.padding_value is not None:
        if fmt.padding_limit is not None:
            lo_p, hi_p = sorted((fmt.padding_value, fmt.padding_limit))
            pad_mask = (stored >= lo_p) & (stored <= hi_p)
        else:
            pad_mask = stored == fmt.padding_value
    values: npt.NDArray[Any]
    if integral:
        values = stored.astype(np.int32)
        if frame.slope != 1:
            values *= int(frame.slope)
        if frame.intercept != 0:
            values += int(frame.intercept)
    else:
        values = (stored.astype(np.float64) * frame.slope + frame.intercept)
    if fmt.photometric == "MONOCHROME1":
        lo, hi = _rescaled_range(frame)
        values = (int(lo + hi) if integral else lo + hi) - values
    if pad_mask is not None and pad_mask.any():
        values[pad_mask] = background
    return values


def _fast_int16(stored: npt.NDArray[Any], frame: PlannedFrame, out: npt.NDArray[np.int16],
                background: float) -> bool:
    """Common case in as few passes as possible: integer stored values, integer
    rescale, result fits int16. Writes ``out`` and returns True, or returns False
    (nothing written) so that the general path runs."""
    if stored.ndim != 2 or stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
        return False
    if not (float(frame.slope).is_integer() and float(frame.intercept).is_integer()):
        return False
    slope, icpt = int(frame.slope), int(frame.intercept)
    lo_s, hi_s = int(stored.min()), int(stored.max())
    lo, hi = sorted((lo_s * slope + icpt, hi_s * slope + icpt))
    fmt = frame.fmt
    invert = fmt.photometric == "MONOCHROME1"
    if invert:
        n_lo, n_hi = _rescaled_range(frame)
        total = int(n_lo + n_hi)
        lo, hi = total - hi, total - lo
    if lo < -32768 or hi > 32767:
        return False
    if slope == 1:
        np.add(stored, np.int32(icpt), out=out, casting="unsafe")
    else:
        np.copyto(out, stored.astype(np.int32) * slope + icpt, casting="unsafe")
    if invert:
        np.subtract(np.int32(total), out, out=out, casting="unsafe")
    pad = fmt.padding_value
    if pad is not None:
        p_lo, p_hi = sorted((pad, fmt.padding_limit if fmt.padding_limit is not None else pad))
        if p_hi >= lo_s and p_lo <= hi_s:
            mask = (stored == pad) if p_lo == p_hi else (stored >= p_lo) & (stored <= p_hi)
            out[mask] = background
    return True


def read_volume(
    sources: Sequence[DicomSource | Path],
    *,
    progress: ProgressSink | None = None,
    cancel: CancelToken | None = None,
    on_slice: Callable[[int, Volume], None] | None = None,
    workers: int | None = None,
) -> Volume:
    """Load a series (or one file) as a Volume; see the module doc for decisions.

    ``on_slice(k, partial)`` is called from this thread each time output slice
    ``k`` is complete; ``partial`` already has the final affine and shape
    (unfilled slices hold the background value). ``workers`` is the number of
    decode threads for compressed data (default min(4, CPUs)); native data are
    read sequentially (memory-bound). ``cancel`` is polled between files and
    raises :class:`core.errors.CancelledError`.
    """
    if not sources:
        raise DicomReadError("no files given")
    if cancel is not None:
        cancel.raise_if_cancelled()
    headers, failures = _read_headers(sources, progress, cancel)
    plan = _plan_from_headers(headers, failures, len(sources))
    if progress is not None:
        progress(0.05, "headers read")
    try:
        return _read_pixels(plan, progress=progress, cancel=cancel, on_slice=on_slice,
                            workers=workers)
    except MemoryError as exc:
        # The volume itself (or widening it to float32) did not fit: a failure of this
        # series, said as such, not an internal error. One file's decoder running out
        # of memory is that file's reason (_decode_file).
        size = math.prod(plan.shape) * plan.dtype.itemsize / (1 << 30)
        raise DicomReadError(
            f"not enough memory for this volume ({plan.shape[0]}×{plan.shape[1]}×"
            f"{plan.shape[2]} voxels, {size:.1f} GiB as {plan.dtype}): close other "
            "series or programs and try again") from exc


def _read_pixels(plan: VolumePlan, *, progress: ProgressSink | None, cancel: CancelToken | None,
                 on_slice: Callable[[int, Volume], None] | None,
                 workers: int | None) -> Volume:
    geometry = plan.geometry
    integral = plan.dtype == np.int16
    complete = geometry.exact and all(t.lo is not None for t in geometry.targets)
    if on_slice is None and complete:
        array = np.empty(plan.shape, dtype=plan.dtype)  # every slice will be written
    else:
        array = np.full(plan.shape, plan.background, dtype=plan.dtype)
    volume = Volume(
        array=array, affine=plan.affine, series_uid=plan.series_uid,
        frame_of_reference_uid=plan.frame_of_reference_uid, modality=plan.modality,
        metadata=dict(plan.metadata), identity=dict(plan.identity),
        warnings=list(plan.warnings))

    by_file: dict[DicomSource, list[tuple[int, PlannedFrame]]] = defaultdict(list)
    for k, fr in enumerate(plan.frames):
        by_file[fr.source].append((k, fr))

    # Resampling bookkeeping: which output slices each source slice unblocks.
    staging: dict[int, npt.NDArray[np.float32]] = {}
    waiting: dict[int, list[int]] = defaultdict(list)
    if not geometry.exact:
        for m, t in enumerate(geometry.targets):
            if t.lo is not None and t.hi is not None:
                waiting[t.lo].append(m)
                if t.hi != t.lo:
                    waiting[t.hi].append(m)
    remaining_use: dict[int, int] = {k: len(v) for k, v in waiting.items()}

    def store(m: int, values: npt.NDArray[Any]) -> None:
        nonlocal array
        if array.dtype == np.int16:
            if not np.issubdtype(values.dtype, np.integer):
                values = np.rint(values)
            vmin, vmax = values.min(), values.max()
            if vmin < -32768 or vmax > 32767:
                log.info("values exceed int16; widening the volume to float32")
                array = array.astype(np.float32)
                volume.array = array
        array[m] = values

    def emit(m: int) -> None:
        if on_slice is not None:
            on_slice(m, volume)

    def handle(k: int, stored: npt.NDArray[Any]) -> None:
        if geometry.exact and array.dtype == np.int16 and _fast_int16(
                stored, plan.frames[k], array[k], plan.background):
            emit(k)
            return
        values = _to_values(stored, plan.frames[k], integral, plan.background)
        if geometry.exact:
            store(k, values)
            emit(k)
            return
        staging[k] = _shift_slice(values, geometry.shifts[k], plan.shape[1:], plan.background)
        for m in waiting.get(k, []):
            t = geometry.targets[m]
            if t.lo in staging and t.hi in staging:
                store(m, _blend(staging, t))
                emit(m)
                for used in {t.lo, t.hi}:
                    if used is None:
                        continue
                    remaining_use[used] -= 1
                    if remaining_use[used] == 0:
                        staging.pop(used, None)

    failures: list[str] = []

    def failed(job: list[tuple[int, PlannedFrame]], exc: DicomReadError) -> None:
        # One undecodable file of a multi-file series leaves blank slices and a warning;
        # a single-file volume (or every file failing) is an error.
        if len(by_file) == 1:
            raise exc
        failures.append(str(exc))
        for k, _ in job:
            if geometry.exact:
                array[k] = plan.background

    jobs = list(by_file.values())
    total = len(plan.frames)
    done = 0
    n_workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    fast = all(can_use_fast_path(fr.fmt) for fr in plan.frames)
    if n_workers <= 1 or fast or len(jobs) == 1:
        # Native data: reading is memcpy-bound, a pool only adds overhead.
        for job in jobs:
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                decoded = _decode_file(job)
            except DicomReadError as exc:
                decoded = []
                failed(job, exc)
            for k, stored in decoded:
                handle(k, stored)
                done += 1
            if progress is not None:
                progress(0.05 + 0.95 * done / total, f"{done}/{total} slices")
    else:
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="dicom-load") as pool:
            future_jobs = {pool.submit(_decode_file, job): job for job in jobs}
            pending: set[Future[list[tuple[int, npt.NDArray[Any]]]]] = set(future_jobs)
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    for fut in finished:
                        try:
                            decoded = fut.result()
                        except DicomReadError as exc:
                            decoded = []
                            failed(future_jobs[fut], exc)
                        for k, stored in decoded:
                            handle(k, stored)
                            done += 1
                    if finished and progress is not None:
                        progress(0.05 + 0.95 * done / total, f"{done}/{total} slices")
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    if failures:
        if len(failures) == len(jobs):
            raise DicomReadError(f"no file of the series could be decoded: {failures[0]}")
        volume.warnings.append(VolumeWarning(
            WarningCode.OTHER,
            f"{len(failures)} file(s) could not be decoded; their slices are blank: "
            f"{failures[0]}"))
    return volume


def _shift_slice(values: npt.NDArray[Any], shift: FloatArray, out_shape: tuple[int, ...],
                 background: float) -> npt.NDArray[np.float32]:
    """Source slice placed on the output in-plane grid: out[j, i] = src[j - dj, i - di]."""
    src = values.astype(np.float32, copy=False)
    dj, di = float(shift[0]), float(shift[1])
    if dj == 0.0 and di == 0.0 and src.shape == tuple(out_shape):
        return src
    if float(dj).is_integer() and float(di).is_integer():
        out = np.full(out_shape, background, dtype=np.float32)
        j0, i0 = int(dj), int(di)
        out[j0:j0 + src.shape[0], i0:i0 + src.shape[1]] = src[: out_shape[0] - j0,
                                                              : out_shape[1] - i0]
        return out
    from scipy import ndimage

    return np.asarray(ndimage.affine_transform(
        src, np.eye(2), offset=(-dj, -di), output_shape=tuple(out_shape), order=1,
        mode="constant", cval=background, prefilter=False), dtype=np.float32)


def _blend(staging: dict[int, npt.NDArray[np.float32]], t: TargetSlice) -> npt.NDArray[Any]:
    assert t.lo is not None and t.hi is not None
    lo = staging[t.lo]
    if t.hi == t.lo or t.weight == 0.0:
        return lo
    hi = staging[t.hi]
    if t.weight == 1.0:
        return hi
    return np.asarray((1.0 - t.weight) * lo + t.weight * hi, dtype=np.float32)
