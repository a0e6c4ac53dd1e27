"""Checked geometry of every frame of one file: the inputs of the affine.

Where each value comes from (see :mod:`dicomio.multiframe` for enhanced
objects): a frame's own functional group, else the shared group, else the
top-level element; a legacy multi-frame object (NM) places its frames along
the slice normal from one ImagePositionPatient at SpacingBetweenSlices, whose
sign gives the direction (PS3.3 C.8.4.15). Every value passes the checks of
:mod:`dicomio.plausibility`; a refused value refuses only the frames that use
it, so one bad frame of an enhanced object is left out like one bad file of a
classic series.

A value pydicom cannot convert at all (an unknown VR, a wrong byte length) is
read through :func:`~dicomio.plausibility.element_value` and refused like an
impossible one, naming the element.

PixelSpacing is an affine input only when the frame has a patient position
and orientation. Without them the geometry is nominal anyway (projection
X-ray, secondary capture), so an impossible PixelSpacing there is replaced —
by ImagerPixelSpacing or 1 mm — with a warning instead of refusing the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeAlias, TypeVar

import numpy as np

from dicomio.multiframe import FrameAttrs, first_item, per_frame_items
from dicomio.plausibility import (
    ImplausibleValue,
    Note,
    check_orientation,
    check_pixel_spacing,
    check_position,
    check_slice_step,
    element_value,
    numbers,
)

T = TypeVar("T")
#: What a value resolves to: the checked value, absent (None), or why it is refused.
Checked: TypeAlias = T | ImplausibleValue | None

#: Elements whose value the lean header reader drops when it cannot parse it;
#: such files are read again with pydicom so the refusal can name the value.
GEOMETRY_KEYWORDS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                     "ImagerPixelSpacing")


@dataclass(frozen=True)
class FrameGeometry:
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None


@dataclass
class FileGeometry:
    """Per frame: its checked geometry, or the refusal of a value it needs."""

    frames: list[FrameGeometry | ImplausibleValue]
    #: Slice thickness in mm for a one-slice volume or a nominal stack (magnitude).
    slice_step: float | None
    #: Corrections and replacements that apply whenever the file is used.
    notes: list[Note] = field(default_factory=list)
    #: Replacements of an invalid slice step; they matter only where the step is used.
    step_notes: list[Note] = field(default_factory=list)


def _check(raw: Any, element: str, check: Callable[[tuple[float, ...], str], T]) -> Checked[T]:
    try:
        values = numbers(raw, element)
        return None if values is None else check(values, element)
    except ImplausibleValue as exc:
        return exc


def _read(ds: Any, keyword: str, check: Callable[[tuple[float, ...], str], T]) -> Checked[T]:
    """A top-level element checked; one pydicom cannot convert is refused like an
    impossible value (:class:`~dicomio.plausibility.UnreadableValue`)."""
    try:
        raw = element_value(ds, keyword)
    except ImplausibleValue as exc:
        return exc
    return _check(raw, keyword, check)


def _functional_raw(ds: Any, frame: int, sequence: str, keyword: str) -> Any:
    """The raw value of a functional-group element (per-frame item wins), or None;
    UnreadableValue when pydicom cannot convert it."""
    per_frame = per_frame_items(ds)
    shared = first_item(element_value(ds, "SharedFunctionalGroupsSequence"))
    own = per_frame[frame] if per_frame and frame < len(per_frame) else None
    for group in (own, shared):
        item = first_item(element_value(group, sequence)) if group is not None else None
        value = element_value(item, keyword) if item is not None else None
        if value is not None and not (isinstance(value, str) and value == ""):
            return value
    return None


def _step(ds: Any, signed: bool) -> tuple[float | None, list[Note]]:
    """SpacingBetweenSlices, else SliceThickness; an invalid one is replaced, noted."""
    notes: list[Note] = []
    problems: list[str] = []
    for element in ("SpacingBetweenSlices", "SliceThickness"):
        # Only NM's SpacingBetweenSlices has a sign (the stacking direction).
        checked = _read(ds, element,
                        partial(check_slice_step,
                                signed=signed and element == "SpacingBetweenSlices"))
        if isinstance(checked, ImplausibleValue):
            problems.append(str(checked))
        elif checked is not None:
            if problems:
                notes.append(Note("slice step", f"{'; '.join(problems)}: {element} "
                                  f"{checked:g} mm used instead"))
            return checked, notes
    if problems:
        notes.append(Note("slice step", f"{'; '.join(problems)}: 1 mm slices are assumed"))
    return None, notes


def file_geometry(ds: Any, number_of_frames: int, enhanced: list[FrameAttrs] | None
                  ) -> FileGeometry:
    """Checked position, orientation and pixel spacing of each frame of ``ds``."""
    notes: list[Note] = []
    top_pos = _read(ds, "ImagePositionPatient", check_position)
    top_iop = _read(ds, "ImageOrientationPatient",
                    lambda v, e: _noted(check_orientation(v, e), notes))
    pixel = _read(ds, "PixelSpacing", check_pixel_spacing)
    imager = _read(ds, "ImagerPixelSpacing", check_pixel_spacing)
    top_spacing = imager if pixel is None else pixel
    legacy = enhanced is None and number_of_frames > 1
    step, step_notes = _step(ds, signed=legacy)
    legacy_placed = legacy and isinstance(top_pos, tuple) and isinstance(top_iop, tuple)
    if legacy_placed:
        if step is None and not step_notes:
            step_notes.append(Note("slice step", "the frames of this multi-frame image have no "
                                   "SpacingBetweenSlices or SliceThickness: they are placed "
                                   "1 mm apart, so distances across frames are not real"))
        notes.extend(step_notes)  # the step places the frames: it is an affine input here
        step_notes = []
    frame_step = step if step is not None else 1.0
    if step is not None:
        step = abs(step)

    frames: list[FrameGeometry | ImplausibleValue] = []
    for f in range(number_of_frames):
        attrs = enhanced[f] if enhanced is not None and f < len(enhanced) else None
        label = f" (frame {f + 1})" if number_of_frames > 1 else ""
        pos: Checked[tuple[float, float, float]] = None
        ori: Checked[tuple[float, ...]] = None
        pix: Checked[tuple[float, float]] = None
        if enhanced is not None:
            pos = _functional(ds, attrs, f, "PlanePositionSequence", "ImagePositionPatient",
                              label, check_position)
            ori = _functional(ds, attrs, f, "PlaneOrientationSequence",
                              "ImageOrientationPatient", label,
                              lambda v, e: _noted(check_orientation(v, e), notes))
            pix = _functional(ds, attrs, f, "PixelMeasuresSequence", "PixelSpacing", label,
                              check_pixel_spacing)
            if attrs is not None and attrs.slice_thickness is not None and step is None:
                thick = _check(attrs.slice_thickness, "SliceThickness" + label,
                               check_slice_step)
                if isinstance(thick, ImplausibleValue):
                    bad = Note("slice step", f"{thick}: 1 mm slices are assumed")
                    step_notes.extend([] if bad in step_notes else [bad])
                else:
                    step = thick
        if pos is None and number_of_frames == 1:
            pos = top_pos
        ori = ori if ori is not None else top_iop
        pix = pix if pix is not None else top_spacing
        if legacy_placed and isinstance(top_pos, tuple) and isinstance(top_iop, tuple):
            from dicomio.stack import normal_of

            placed = np.asarray(top_pos, dtype=np.float64) + normal_of(top_iop) * f * frame_step
            pos = _check(tuple(float(x) for x in placed), "ImagePositionPatient" + label,
                         check_position)
        # A position without an orientation (or the reverse) is no patient geometry:
        # the image is shown on a nominal grid, so its broken partner is only noted.
        if isinstance(pos, ImplausibleValue) and ori is None:
            _ignore(pos, notes)
            pos = None
        if isinstance(ori, ImplausibleValue) and pos is None:
            _ignore(ori, notes)
            ori = None
        refused = next((v for v in (pos, ori) if isinstance(v, ImplausibleValue)), None)
        if refused is not None:
            frames.append(refused)
            continue
        has_geometry = pos is not None and ori is not None
        if isinstance(pix, ImplausibleValue):
            if has_geometry:
                frames.append(pix)
                continue
            pix = _nominal_spacing(pix, imager if pixel is not None else None, notes)
        frames.append(FrameGeometry(pos, ori, pix))  # type: ignore[arg-type]
    return FileGeometry(frames, step, notes, step_notes)


def _ignore(refused: ImplausibleValue, notes: list[Note]) -> None:
    note = Note(f"{refused.element}:ignored",
                f"{refused}: ignored, as the image has no complete patient geometry")
    if note not in notes:
        notes.append(note)


def _noted(result: tuple[tuple[float, ...], list[Note]], notes: list[Note]) -> tuple[float, ...]:
    value, new = result
    notes.extend(n for n in new if n not in notes)
    return value


def _functional(ds: Any, attrs: FrameAttrs | None, frame: int, sequence: str, keyword: str,
                label: str, check: Callable[[tuple[float, ...], str], T]) -> Checked[T]:
    """A functional-group value, checked; the raw element is read only when
    :func:`~dicomio.multiframe.enhanced_frames` dropped it (wrong count or not
    a number), so that the refusal can name it."""
    known = None
    if attrs is not None:
        known = {"ImagePositionPatient": attrs.position,
                 "ImageOrientationPatient": attrs.orientation,
                 "PixelSpacing": attrs.pixel_spacing}[keyword]
    try:
        raw = known if known is not None else _functional_raw(ds, frame, sequence, keyword)
    except ImplausibleValue as exc:
        return exc
    return _check(raw, f"{keyword}{label}", check)


def _nominal_spacing(refused: ImplausibleValue, imager: Checked[tuple[float, float]],
                     notes: list[Note]) -> tuple[float, float] | None:
    if isinstance(imager, tuple):
        message = f"{refused}: ImagerPixelSpacing {imager[0]:g}\\{imager[1]:g} used instead"
        spacing: tuple[float, float] | None = imager
    else:
        message = f"{refused}: 1 mm pixels are assumed; distances are not real"
        spacing = None
    note = Note(f"{refused.element}:nominal", message)
    if note not in notes:
        notes.append(note)
    return spacing


def finite_or_none(value: float | None) -> float | None:
    """A number that is only shown (GantryDetectorTilt): NaN/inf become None."""
    return value if value is not None and math.isfinite(value) else None
