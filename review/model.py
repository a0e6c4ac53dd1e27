"""The review's data: finding status, reject reasons, sparse masks and review findings."""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from core.mask import CropMask
from core.volume import Finding

Index3 = tuple[int, int, int]
BoolArray = npt.NDArray[np.bool_]


class Status(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EDITED = "edited"
    ADDED = "added-by-reader"
    IMPORTED = "imported"  # read from someone else's SEG / SR: shown, never decided here

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]

    @property
    def reviewed(self) -> bool:
        """Whether the reader has decided (pending is the only undecided state)."""
        return self is not Status.PENDING

    @property
    def kept(self) -> bool:
        """Kept findings are the positives that leave Lucida (export, report)."""
        return self in (Status.ACCEPTED, Status.EDITED, Status.ADDED)


_STATUS_LABELS = {
    Status.PENDING: "Pending",
    Status.ACCEPTED: "Accepted",
    Status.REJECTED: "Rejected",
    Status.EDITED: "Edited",
    Status.ADDED: "Added by reader",
    Status.IMPORTED: "Imported",
}


class Reason(StrEnum):
    FALSE_POSITIVE = "false-positive"
    ARTEFACT = "artefact"
    NOT_SIGNIFICANT = "not-clinically-significant"
    DUPLICATE = "duplicate"
    OTHER = "other"  # needs free text

    @property
    def label(self) -> str:
        return _REASON_LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Reason:
        """A reason from its value, its name or its label (case-insensitive)."""
        wanted = text.strip().lower().replace("_", "-")
        for reason in cls:
            if wanted in (reason.value, reason.name.lower().replace("_", "-"),
                          reason.label.lower()):
                return reason
        choices = ", ".join(r.value for r in cls)
        raise ValueError(f"unknown reject reason {text!r}; choose one of {choices}")


_REASON_LABELS = {
    Reason.FALSE_POSITIVE: "False positive",
    Reason.ARTEFACT: "Artefact",
    Reason.NOT_SIGNIFICANT: "Not clinically significant",
    Reason.DUPLICATE: "Duplicate",
    Reason.OTHER: "Other",
}


def new_tracking_uid() -> str:
    """A DICOM UID under the UUID root 2.25 (PS3.5 B.2), generated once per finding."""
    return f"2.25.{uuid.uuid4().int}"


_HEADER = struct.Struct("<4s6i")
_MAGIC = b"LSM1"


@dataclass(frozen=True, eq=False)
class SparseMask(CropMask):
    """A boolean mask stored as its bounding crop: ``array`` starts at ``offset`` (k, j, i)
    on the series grid. Offsets may be negative or the crop may overhang the grid (a brush
    near the edge); :meth:`clip` cuts it to a grid."""

    # -- construction ------------------------------------------------------------------

    @classmethod
    def empty_mask(cls) -> SparseMask:
        return cls((0, 0, 0), np.zeros((0, 0, 0), dtype=np.bool_))

    @classmethod
    def from_full(cls, mask: npt.ArrayLike) -> SparseMask:
        """The tight crop of a full-grid mask (an empty mask for no voxels)."""
        full = np.asarray(mask, dtype=np.bool_)
        if full.ndim != 3:
            raise ValueError(f"a SparseMask needs a 3-D array, got {full.shape}")
        if not full.any():
            return cls.empty_mask()
        lo = [int(np.flatnonzero(full.any(axis=tuple(a for a in range(3) if a != ax))).min())
              for ax in range(3)]
        hi = [int(np.flatnonzero(full.any(axis=tuple(a for a in range(3) if a != ax))).max())
              for ax in range(3)]
        crop = full[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1].copy()
        return cls((lo[0], lo[1], lo[2]), crop)

    @classmethod
    def from_points(cls, points_kji: npt.ArrayLike) -> SparseMask:
        """A mask of the given (k, j, i) voxels."""
        pts = np.asarray(points_kji, dtype=np.int64).reshape(-1, 3)
        if len(pts) == 0:
            return cls.empty_mask()
        lo = pts.min(axis=0)
        hi = pts.max(axis=0)
        arr = np.zeros(tuple(int(v) for v in hi - lo + 1), dtype=np.bool_)
        rel = pts - lo
        arr[rel[:, 0], rel[:, 1], rel[:, 2]] = True
        return cls((int(lo[0]), int(lo[1]), int(lo[2])), arr)

    # -- properties --------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return self.voxel_count == 0

    @property
    def bbox(self) -> tuple[Index3, Index3] | None:
        """(min kji, max kji) inclusive of the set voxels; None when empty."""
        tight = self.tight()
        if tight.array.size == 0:
            return None
        o = tight.offset
        s = tight.array.shape
        return o, (o[0] + s[0] - 1, o[1] + s[1] - 1, o[2] + s[2] - 1)

    def points(self) -> npt.NDArray[np.int64]:
        """The (k, j, i) of the set voxels, on the series grid."""
        return np.argwhere(self.array).astype(np.int64) + np.asarray(self.offset, dtype=np.int64)

    # -- operations --------------------------------------------------------------------

    def tight(self) -> SparseMask:
        """The same voxels in the smallest crop."""
        if self.array.size == 0 or not self.array.any():
            return SparseMask.empty_mask()
        inner = SparseMask.from_full(self.array)
        o = inner.offset
        return SparseMask((self.offset[0] + o[0], self.offset[1] + o[1], self.offset[2] + o[2]),
                          inner.array)

    def clip(self, shape: tuple[int, ...]) -> SparseMask:
        """Only the voxels inside a grid of ``shape`` (k, j, i)."""
        if self.array.size == 0:
            return SparseMask.empty_mask()
        lo = [max(0, self.offset[a]) for a in range(3)]
        hi = [min(int(shape[a]), self.offset[a] + self.array.shape[a]) for a in range(3)]
        if any(h <= low for low, h in zip(lo, hi, strict=True)):
            return SparseMask.empty_mask()
        crop = self.array[tuple(slice(lo[a] - self.offset[a], hi[a] - self.offset[a])
                                for a in range(3))]
        return SparseMask((lo[0], lo[1], lo[2]), crop).tight()

    def to_full(self, shape: tuple[int, ...]) -> BoolArray:
        """The mask on a full grid of ``shape``; voxels outside the grid are dropped."""
        return self.full(shape)

    def _on_box(self, lo: npt.NDArray[np.int64], shape: tuple[int, ...]) -> BoolArray:
        box = np.zeros(shape, dtype=np.bool_)
        if self.array.size:
            start = np.asarray(self.offset, dtype=np.int64) - lo
            box[tuple(slice(int(start[a]), int(start[a]) + self.array.shape[a])
                      for a in range(3))] = self.array
        return box

    def _combine(self, other: SparseMask, keep_other: bool) -> SparseMask:
        masks = [m for m in (self, other) if m.array.size]
        if not masks:
            return SparseMask.empty_mask()
        lo = np.min([m.offset for m in masks], axis=0).astype(np.int64)
        hi = np.max([np.asarray(m.offset) + np.asarray(m.array.shape) for m in masks], axis=0)
        shape = tuple(int(v) for v in hi - lo)
        mine = self._on_box(lo, shape)
        theirs = other._on_box(lo, shape)
        out = (mine | theirs) if keep_other else (mine & ~theirs)
        return SparseMask((int(lo[0]), int(lo[1]), int(lo[2])), out).tight()

    def union(self, other: SparseMask) -> SparseMask:
        return self._combine(other, keep_other=True)

    def minus(self, other: SparseMask) -> SparseMask:
        return self._combine(other, keep_other=False)

    def same_voxels(self, other: SparseMask) -> bool:
        a, b = self.tight(), other.tight()
        return a.offset == b.offset and a.array.shape == b.array.shape and bool(
            np.array_equal(a.array, b.array))

    # -- serialisation -----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact form: header (offset, shape) + zlib(packbits(crop))."""
        tight = self.tight()
        head = _HEADER.pack(_MAGIC, *tight.offset, *tight.array.shape)
        return head + zlib.compress(np.packbits(tight.array, axis=None).tobytes(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> SparseMask:
        if len(data) < _HEADER.size:
            raise ValueError("mask data is truncated")
        magic, k, j, i, sk, sj, si = _HEADER.unpack_from(data)
        if magic != _MAGIC or min(sk, sj, si) < 0:
            raise ValueError("mask data is not a Lucida sparse mask")
        try:
            packed = zlib.decompress(data[_HEADER.size:])
        except zlib.error as exc:
            raise ValueError(f"mask data does not decompress: {exc}") from exc
        n = sk * sj * si
        if len(packed) * 8 < n:
            raise ValueError("mask data is shorter than its shape says")
        bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n)
        return cls((k, j, i), bits.astype(np.bool_).reshape((sk, sj, si)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SparseMask) and self.same_voxels(other)

    def __hash__(self) -> int:  # pragma: no cover - masks are not dict keys
        return hash(self.to_bytes())


def finding_from_dict(data: dict[str, Any]) -> Finding:
    """The inverse of ``core.Finding.to_dict`` (raises KeyError/TypeError/ValueError)."""
    c = data["centroid_lps_mm"]
    ci = data["centroid_index_kji"]
    lo, hi = data["bbox_index_kji"]
    return Finding(
        id=int(data["id"]), label_value=int(data["label_value"]),
        label_name=str(data["label_name"]),
        centroid_lps=(float(c[0]), float(c[1]), float(c[2])),
        centroid_index=(float(ci[0]), float(ci[1]), float(ci[2])),
        bbox_index=((int(lo[0]), int(lo[1]), int(lo[2])), (int(hi[0]), int(hi[1]), int(hi[2]))),
        volume_mm3=float(data["volume_mm3"]),
        longest_diameter_mm=float(data["longest_diameter_mm"]),
        max_score=float(data["max_score"]), mean_score=float(data["mean_score"]),
        voxel_count=int(data["voxel_count"]), series_uid=str(data.get("series_uid", "")))


@dataclass
class ReviewFinding:
    """One finding under review: the model's (``m<N>``) or one the reader drew (``r<N>``)."""

    key: str
    origin: str  # "model" | "reader" | "imported"
    label_value: int
    label_name: str
    color_rgb: tuple[int, int, int]
    status: Status
    measures: Finding  # CURRENT centroid / volume / diameter, recomputed after edits
    mask: SparseMask
    tracking_uid: str = field(default_factory=new_tracking_uid)
    original: Finding | None = None  # the model's output, never changed
    reason: Reason | None = None
    reason_text: str = ""
    reviewer: str = ""
    decided_at: str = ""  # ISO 8601 UTC of the last decision or edit
    score: float | None = None
    edited: bool = False  # the mask differs from the model's
    original_mask: SparseMask | None = None  # the model's mask (None for reader-drawn)

    @property
    def reviewed(self) -> bool:
        return self.status.reviewed

    @property
    def kept(self) -> bool:
        return self.status.kept

    @property
    def slice_index(self) -> int:
        """The slice (k) through the centroid, for the panel's "slice" column."""
        return round(self.measures.centroid_index[0])

    def describe_reason(self) -> str:
        if self.reason is None:
            return ""
        if self.reason_text:
            return f"{self.reason.label}: {self.reason_text}"
        return self.reason.label


_PACK_MAGIC = b"LMP1"
_NONE_LEN = 0xFFFFFFFF


def pack_masks(masks: list[SparseMask | None]) -> bytes:
    """Several (optional) masks in one blob."""
    parts = [_PACK_MAGIC, struct.pack("<I", len(masks))]
    for mask in masks:
        if mask is None:
            parts.append(struct.pack("<I", _NONE_LEN))
        else:
            data = mask.to_bytes()
            parts += [struct.pack("<I", len(data)), data]
    return b"".join(parts)


def unpack_masks(blob: bytes) -> list[SparseMask | None]:
    """The inverse of :func:`pack_masks` (ValueError when damaged)."""
    if blob[:4] != _PACK_MAGIC or len(blob) < 8:
        raise ValueError("mask blob is not a Lucida mask pack")
    (count,) = struct.unpack_from("<I", blob, 4)
    pos = 8
    out: list[SparseMask | None] = []
    for _ in range(count):
        if pos + 4 > len(blob):
            raise ValueError("mask blob is truncated")
        (length,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        if length == _NONE_LEN:
            out.append(None)
            continue
        if pos + length > len(blob):
            raise ValueError("mask blob is truncated")
        out.append(SparseMask.from_bytes(blob[pos:pos + length]))
        pos += length
    return out
