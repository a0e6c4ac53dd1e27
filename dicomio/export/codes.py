"""Coded concepts used by the export, kept as plain (value, scheme, meaning) tuples."""

from __future__ import annotations

Coded = tuple[str, str, str]

#: Private coding scheme for what DICOM has no code for (the reader's decision).
LUCIDA_SCHEME = "99LUCIDA"

DECISION_NAME: Coded = ("decision", LUCIDA_SCHEME, "Reader decision")
DECISION_VALUES: dict[str, Coded] = {
    "accepted": ("accepted", LUCIDA_SCHEME, "Accepted by reader"),
    "edited": ("edited", LUCIDA_SCHEME, "Edited by reader"),
    "added-by-reader": ("added-by-reader", LUCIDA_SCHEME, "Added by reader"),
}


def finding_category() -> Coded:
    """SCT Morphologically abnormal structure (CID 7150): a lesion-like finding."""
    return ("49755003", "SCT", "Morphologically Altered Structure")


def finding_type() -> Coded:
    """SCT Nodule: the default finding type of a model's region."""
    return ("27925004", "SCT", "Nodule")
