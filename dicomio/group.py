"""Group scanned instances: patient → study → series → geometry stack.

A DICOM series may mix images that do not form one volume: a localizer
(scout), a second matrix size, a second orientation, or several enhanced
multi-frame objects. Each such set becomes its own *stack* with a stable
``stack_key``; stack 0 is the largest non-localizer stack.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from dicomio.classify import ObjectKind
from dicomio.scan import InstanceHeader

#: Two orientations closer than this (max abs difference of cosines) are the same.
ORIENTATION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SeriesGroup:
    """One loadable unit: a stack of images or a set of non-image objects of a series."""

    series_uid: str
    stack_index: int
    stack_key: str
    object_kind: ObjectKind
    instances: tuple[InstanceHeader, ...]
    is_localizer: bool = False

    @property
    def first(self) -> InstanceHeader:
        return self.instances[0]

    @property
    def patient_id(self) -> str:
        return self.first.patient_id

    @property
    def study_uid(self) -> str:
        return self.first.study_uid

    @property
    def modality(self) -> str:
        return self.first.modality

    @property
    def series_number(self) -> int | None:
        return self.first.series_number

    @property
    def series_description(self) -> str:
        return self.first.series_description

    @property
    def frame_count(self) -> int:
        return sum(instance.number_of_frames for instance in self.instances)

    @property
    def description(self) -> str:
        """Human-readable label, e.g. ``CT #3 Chest 1.25 mm [stack 2: localizer]``."""
        parts = [self.modality or "??"]
        if self.series_number is not None:
            parts.append(f"#{self.series_number}")
        parts.append(self.series_description or "(no description)")
        text = " ".join(parts)
        extras: list[str] = []
        if self.stack_index:
            extras.append(f"stack {self.stack_index}")
        if self.is_localizer:
            extras.append("localizer")
        if not self.object_kind.is_image:
            extras.append(self.object_kind.value)
        if self.first.rows and self.first.columns and self.object_kind.is_image:
            extras.append(f"{self.first.columns}×{self.first.rows}")
        return f"{text} [{', '.join(extras)}]" if extras else text

    def __repr__(self) -> str:
        return (f"SeriesGroup({self.series_uid}, stack={self.stack_index}, "
                f"kind={self.object_kind.value}, n={len(self.instances)})")


def _orientation_key(orientation: tuple[float, ...] | None) -> str:
    if orientation is None:
        return "none"
    return ",".join(f"{round(v, 3) + 0.0:.3f}" for v in orientation)


def _same_orientation(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if len(a) != len(b):
        return False
    # NaN equals NaN here: files with the same broken orientation form one stack,
    # which the loader then refuses once, naming the value (dicomio.plausibility),
    # instead of one stack per file.
    return all(abs(x - y) <= ORIENTATION_TOLERANCE or (math.isnan(x) and math.isnan(y))
               for x, y in zip(a, b, strict=True))


@dataclass
class _Stack:
    key: str
    kind: ObjectKind
    localizer: bool
    orientation: tuple[float, ...] | None
    rows: int | None
    columns: int | None
    members: list[InstanceHeader]


def _stacks_for_series(instances: list[InstanceHeader]) -> list[_Stack]:
    stacks: list[_Stack] = []
    for inst in instances:
        kind = inst.object_kind
        if not kind.is_image:
            for stack in stacks:
                if stack.kind == kind and stack.key == kind.value:
                    stack.members.append(inst)
                    break
            else:
                stacks.append(_Stack(kind.value, kind, False, None, None, None, [inst]))
            continue
        if inst.number_of_frames > 1:
            # An enhanced / multi-frame object is a volume (or cine) by itself.
            stacks.append(_Stack(f"mf:{inst.sop_instance_uid}", kind, inst.is_localizer,
                                 inst.image_orientation, inst.rows, inst.columns, [inst]))
            continue
        for stack in stacks:
            if (stack.kind == kind and not stack.key.startswith("mf:")
                    and stack.localizer == inst.is_localizer
                    and stack.rows == inst.rows and stack.columns == inst.columns
                    and _same_orientation(stack.orientation, inst.image_orientation)):
                stack.members.append(inst)
                break
        else:
            key = (f"{inst.rows}x{inst.columns}/{_orientation_key(inst.image_orientation)}"
                   + ("/localizer" if inst.is_localizer else ""))
            if kind is not ObjectKind.IMAGE:
                key = f"{kind.value}:{key}"
            stacks.append(_Stack(key, kind, inst.is_localizer, inst.image_orientation,
                                 inst.rows, inst.columns, [inst]))

    def order(stack: _Stack) -> tuple[int, int, int, str]:
        first_number = min((m.instance_number for m in stack.members
                            if m.instance_number is not None), default=0)
        return (0 if stack.kind.is_image and not stack.localizer else 1,
                -len(stack.members), first_number, stack.key)

    return sorted(stacks, key=order)


def _instance_order(inst: InstanceHeader) -> tuple[int, str]:
    return (inst.instance_number if inst.instance_number is not None else 1 << 30,
            str(inst.source))


def group_series(instances: Iterable[InstanceHeader]) -> list[SeriesGroup]:
    """Group instances by patient, study, series and geometry stack.

    Duplicate SOP Instance UIDs (the same object found twice) are kept once,
    first occurrence wins. The result is ordered patient ID → study date →
    series number → stack index.
    """
    unique: dict[str, InstanceHeader] = {}
    for inst in instances:
        unique.setdefault(inst.sop_instance_uid, inst)
    by_series: dict[tuple[str, str, str], list[InstanceHeader]] = {}
    for inst in unique.values():
        by_series.setdefault((inst.patient_id, inst.study_uid, inst.series_uid), []).append(inst)

    def series_order(item: tuple[tuple[str, str, str], list[InstanceHeader]]
                     ) -> tuple[str, str, str, int, str]:
        (patient, study, series), members = item
        first = members[0]
        number = first.series_number if first.series_number is not None else 1 << 30
        return (patient, first.study_date, study, number, series)

    groups: list[SeriesGroup] = []
    for (_, _, series_uid), members in sorted(by_series.items(), key=series_order):
        members.sort(key=_instance_order)
        for index, stack in enumerate(_stacks_for_series(members)):
            groups.append(SeriesGroup(
                series_uid=series_uid,
                stack_index=index,
                stack_key=stack.key,
                object_kind=stack.kind,
                instances=tuple(sorted(stack.members, key=_instance_order)),
                is_localizer=stack.localizer,
            ))
    return groups
