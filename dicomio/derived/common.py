"""Small pydicom helpers shared by the SEG, SR and RTSTRUCT readers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from dicomio.source import DicomSource


def read_dataset(source: DicomSource, *, headers_only: bool = False) -> Dataset:
    """The whole object (or everything before the pixel data) of one source."""
    with source.open() as fp:
        return pydicom.dcmread(fp, stop_before_pixels=headers_only, force=False)


def items(ds: Any, keyword: str) -> list[Any]:
    """The items of a sequence, or [] when it is absent or empty."""
    value = getattr(ds, keyword, None) if ds is not None else None
    return list(value) if value else []


def first(ds: Any, keyword: str) -> Any:
    seq = items(ds, keyword)
    return seq[0] if seq else None


def text(ds: Any, keyword: str) -> str:
    value = getattr(ds, keyword, None) if ds is not None else None
    return "" if value is None else str(value)


def code_meaning(ds: Any, keyword: str = "ConceptNameCodeSequence") -> str:
    item = first(ds, keyword)
    return text(item, "CodeMeaning") or text(item, "CodeValue")


def floats(value: Any, count: int, what: str) -> np.ndarray:
    """``count`` finite floats from a multi-valued element, or ValueError naming it."""
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {value!r} is not {count} numbers") from exc
    if out.shape != (count,) or not np.all(np.isfinite(out)):
        raise ValueError(f"{what} {list(value)!r} is not {count} finite numbers")
    return out


def referenced_series(ds: Dataset) -> list[str]:
    """Series UIDs of ReferencedSeriesSequence (SEG) in file order, without repeats."""
    out: list[str] = []
    for item in items(ds, "ReferencedSeriesSequence"):
        uid = text(item, "SeriesInstanceUID")
        if uid and uid not in out:
            out.append(uid)
    return out


def walk_items(seq: Any) -> Iterator[Any]:
    """Every item of a nested sequence tree, depth first, without recursion."""
    stack = list(reversed(list(seq or [])))
    while stack:
        item = stack.pop()
        yield item
        for elem in item:
            if elem.VR == "SQ":
                stack.extend(reversed(list(elem.value)))


def lab_to_rgb(lab: Any) -> tuple[int, int, int] | None:
    """DICOM scaled CIELab (0..65535 each) to sRGB 0..255 (highdicom's conversion), or None
    when absent or odd."""
    try:
        from highdicom.color import CIELabColor

        values = [int(v) for v in lab]
        if len(values) != 3:
            return None
        r, g, b = CIELabColor.from_dicom_value(values).to_rgb()
        return int(r), int(g), int(b)
    except Exception:
        return None
