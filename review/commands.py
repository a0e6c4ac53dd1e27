"""Review actions as command objects with do / undo, serialisable for the history.

A command is prepared against the session (``Target``): it computes, for every finding it
touches, the state before and after (masks only when they change). Doing applies the
"after" states, undoing the "before" ones, so undo is exact however the edit was made.
The whole command serialises to JSON + one mask blob (``to_json`` / ``from_json``), which
is how the undo / redo history survives a restart.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import numpy as np

from core.errors import LucidaError
from core.volume import Finding
from review.codec import finding_from_state, finding_state
from review.model import (
    Reason,
    ReviewFinding,
    SparseMask,
    Status,
    new_tracking_uid,
    pack_masks,
    unpack_masks,
)


class ReviewError(LucidaError):
    """A review action that is refused; the message says why and what to do (the CLI
    prints it and exits 2, the GUI shows it)."""


class Target(Protocol):
    """What commands need of the session."""

    reviewer: str
    shape: tuple[int, int, int]

    def get(self, key: str) -> ReviewFinding: ...

    def find(self, key: str) -> ReviewFinding | None: ...

    def remeasure(self, f: ReviewFinding, mask: SparseMask) -> Finding: ...

    def place(self, key: str, finding: ReviewFinding | None) -> None: ...

    def next_reader_key(self) -> str: ...

    def label_color(self, value: int) -> tuple[int, int, int]: ...


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Change:
    key: str
    before: dict[str, Any] | None  # finding_state, None = the finding did not exist
    after: dict[str, Any] | None
    before_mask: SparseMask | None = None  # None = mask unchanged by this command
    after_mask: SparseMask | None = None


def _change(before: ReviewFinding | None, after: ReviewFinding | None,
            masks: bool) -> Change:
    which = after if after is not None else before
    key = which.key if which is not None else ""
    return Change(key, None if before is None else finding_state(before),
                  None if after is None else finding_state(after),
                  before.mask if (masks and before is not None) else None,
                  after.mask if (masks and after is not None) else None)


class Command:
    """Base: subclasses set ``kind`` and implement ``prepare`` and ``describe``."""

    kind: ClassVar[str] = ""
    event: ClassVar[str] = "edit"  # the audit event of doing it

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def prepare(self, target: Target) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def args(self) -> dict[str, Any]:
        return {}

    def arg_masks(self) -> list[SparseMask | None]:
        return []

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.changes]

    def _apply(self, target: Target, forward: bool) -> None:
        for c in self.changes:
            state, mask = (c.after, c.after_mask) if forward else (c.before, c.before_mask)
            current = target.find(c.key)
            if state is None:
                target.place(c.key, None)
                continue
            if mask is None:
                if current is None:
                    raise ReviewError(f"history is inconsistent: {c.key} has no mask")
                mask = current.mask
            target.place(c.key, finding_from_state(
                state, mask, current.original_mask if current is not None else None))

    def do(self, target: Target) -> None:
        self._apply(target, True)

    def undo(self, target: Target) -> None:
        self._apply(target, False)

    # -- serialisation -----------------------------------------------------------------

    def to_json(self) -> tuple[dict[str, Any], bytes]:
        masks: list[SparseMask | None] = list(self.arg_masks())
        changes = []
        for c in self.changes:
            entry: dict[str, Any] = {"key": c.key, "before": c.before, "after": c.after,
                                     "before_mask": None, "after_mask": None}
            for name, m in (("before_mask", c.before_mask), ("after_mask", c.after_mask)):
                if m is not None:
                    entry[name] = len(masks)
                    masks.append(m)
            changes.append(entry)
        return ({"args": self.args(), "n_arg_masks": len(self.arg_masks()),
                 "changes": changes}, pack_masks(masks))

    @staticmethod
    def from_json(kind: str, payload: dict[str, Any], blob: bytes | None) -> Command:
        """Raises KeyError / TypeError / ValueError on damaged data."""
        masks = unpack_masks(blob) if blob else []
        cls = COMMANDS[kind]
        cmd = cls.from_args(payload.get("args", {}),
                            masks[:int(payload.get("n_arg_masks", 0))])
        for e in payload["changes"]:
            bm, am = e.get("before_mask"), e.get("after_mask")
            cmd.changes.append(Change(str(e["key"]), e["before"], e["after"],
                                      None if bm is None else masks[int(bm)],
                                      None if am is None else masks[int(am)]))
        return cmd

    @classmethod
    def from_args(cls, args: dict[str, Any], masks: list[SparseMask | None]) -> Command:
        raise NotImplementedError


def _keys_text(keys: list[str]) -> str:
    return ", ".join(keys) if len(keys) <= 4 else f"{len(keys)} findings"


class Decide(Command):
    """Accept, reject (with a reason) or reset several findings: one command."""

    kind = "decide"
    event = "decision"

    def __init__(self, keys: list[str], status: Status, reason: Reason | None = None,
                 text: str = "") -> None:
        super().__init__()
        self.decide_keys = list(dict.fromkeys(keys))
        self.status = status
        self.reason = reason
        self.text = text.strip()

    def args(self) -> dict[str, Any]:
        return {"keys": self.decide_keys, "status": self.status.value,
                "reason": None if self.reason is None else self.reason.value, "text": self.text}

    @classmethod
    def from_args(cls, args: dict[str, Any], masks: list[SparseMask | None]) -> Command:
        reason = args.get("reason")
        return cls([str(k) for k in args["keys"]], Status(args["status"]),
                   None if reason is None else Reason(reason), str(args.get("text", "")))

    def describe(self) -> str:
        verb = {Status.ACCEPTED: "Accept", Status.REJECTED: "Reject",
                Status.PENDING: "Reset"}.get(self.status, "Decide")
        return f"{verb} {_keys_text(self.decide_keys)}"

    def prepare(self, target: Target) -> None:
        if not self.decide_keys:
            raise ReviewError("no finding selected")
        if self.status is Status.REJECTED:
            if self.reason is None:
                raise ReviewError("a rejection needs a reason")
            if self.reason is Reason.OTHER and not self.text:
                raise ReviewError("reason 'other' needs a few words of explanation")
        elif self.reason is not None:
            raise ReviewError("only a rejection takes a reason")
        stamp = now_utc()
        for key in self.decide_keys:
            f = target.get(key)
            if f.status is Status.IMPORTED:
                raise ReviewError(f"{key} was imported from another system and is read-only")
            if self.status is Status.ACCEPTED:
                new_status = (Status.ADDED if f.origin == "reader"
                              else Status.EDITED if f.edited else Status.ACCEPTED)
            elif self.status is Status.PENDING:
                new_status = Status.ADDED if f.origin == "reader" else Status.PENDING
            else:
                new_status = self.status
            reason = self.reason if new_status is Status.REJECTED else None
            new = dataclasses.replace(
                f, status=new_status, reason=reason,
                reason_text=self.text if reason is not None else "",
                reviewer=target.reviewer if new_status is not Status.PENDING else "",
                decided_at=stamp if new_status is not Status.PENDING else "")
            self.changes.append(_change(f, new, masks=False))


def _edited_status(f: ReviewFinding) -> Status:
    return Status.ADDED if f.origin == "reader" else Status.EDITED


def _with_mask(target: Target, f: ReviewFinding, mask: SparseMask) -> ReviewFinding:
    edited = f.original_mask is not None and not mask.same_voxels(f.original_mask)
    return dataclasses.replace(
        f, mask=mask, measures=target.remeasure(f, mask), edited=edited,
        status=_edited_status(f), reason=None, reason_text="", reviewer=target.reviewer,
        decided_at=now_utc())


class Paint(Command):
    """One brush (or eraser) stroke on one finding's mask."""

    kind = "paint"

    def __init__(self, key: str, delta: SparseMask, erase: bool) -> None:
        super().__init__()
        self.key = key
        self.delta = delta
        self.erase = erase

    def args(self) -> dict[str, Any]:
        return {"key": self.key, "erase": self.erase}

    def arg_masks(self) -> list[SparseMask | None]:
        return [self.delta]

    @classmethod
    def from_args(cls, args: dict[str, Any], masks: list[SparseMask | None]) -> Command:
        return cls(str(args["key"]), masks[0] or SparseMask.empty_mask(), bool(args["erase"]))

    def describe(self) -> str:
        return f"{'Erase' if self.erase else 'Paint'} on {self.key}"

    def prepare(self, target: Target) -> None:
        f = target.get(self.key)
        if f.status is Status.IMPORTED:
            raise ReviewError(f"{self.key} was imported from another system and is read-only")
        stroke = self.delta.clip(target.shape)
        mask = f.mask.minus(stroke) if self.erase else f.mask.union(stroke)
        if mask.same_voxels(f.mask):
            return  # nothing changed: no command
        self.changes.append(_change(f, _with_mask(target, f, mask), masks=True))


class AddFinding(Command):
    """A finding the reader draws."""

    kind = "add-finding"
    event = "add-finding"

    def __init__(self, label_name: str, mask: SparseMask, label_value: int = 1,
                 key: str = "") -> None:
        super().__init__()
        self.label_name = label_name
        self.mask = mask
        self.label_value = int(label_value)
        self.key = key

    def args(self) -> dict[str, Any]:
        return {"key": self.key, "label_name": self.label_name,
                "label_value": self.label_value}

    @classmethod
    def from_args(cls, args: dict[str, Any], masks: list[SparseMask | None]) -> Command:
        return cls(str(args["label_name"]), SparseMask.empty_mask(),
                   int(args["label_value"]), str(args.get("key", "")))

    def describe(self) -> str:
        return f"Add {self.key or 'finding'}"

    def prepare(self, target: Target) -> None:
        mask = self.mask.clip(target.shape)
        if mask.empty:
            raise ReviewError("the new finding has no voxels inside the series")
        if self.label_value <= 0:
            raise ReviewError("a finding's label value must be positive")
        self.key = target.next_reader_key()
        blank = Finding(id=int(self.key[1:]), label_value=self.label_value,
                        label_name=self.label_name, centroid_lps=(0.0, 0.0, 0.0),
                        centroid_index=(0.0, 0.0, 0.0), bbox_index=((0, 0, 0), (0, 0, 0)),
                        volume_mm3=0.0, longest_diameter_mm=0.0, max_score=0.0,
                        mean_score=0.0, voxel_count=0)
        f = ReviewFinding(key=self.key, origin="reader", label_value=self.label_value,
                          label_name=self.label_name,
                          color_rgb=target.label_color(self.label_value), status=Status.ADDED,
                          measures=blank, mask=mask, tracking_uid=new_tracking_uid(),
                          reviewer=target.reviewer, decided_at=now_utc())
        f.measures = target.remeasure(f, mask)
        self.changes.append(_change(None, f, masks=True))


def interpolate_mask(mask: SparseMask, reference: SparseMask | None,
                     shape: tuple[int, int, int]) -> SparseMask:
    """Fill the slices between the reader's edited slices (along k) by shape-based
    interpolation of signed distance maps. Edited slices: where ``mask`` differs from
    ``reference`` (the model's mask), or every slice with voxels when there is none."""
    full = mask.to_full(shape)
    ref = reference.to_full(shape) if reference is not None else np.zeros(shape, np.bool_)
    if reference is None:
        edited = [int(k) for k in np.flatnonzero(full.any(axis=(1, 2)))]
    else:
        edited = [int(k) for k in np.flatnonzero((full != ref).any(axis=(1, 2)))]
    if len(edited) < 2:
        raise ReviewError("edit at least two slices of the finding, then interpolate between "
                          "them")
    out = full.copy()
    far = float(sum(shape))

    from scipy import ndimage  # here, not at import: opening a series imports this module

    def signed(sl: np.ndarray) -> np.ndarray:
        if not sl.any():
            return np.full(sl.shape, far)
        inside = np.asarray(ndimage.distance_transform_edt(sl), dtype=np.float64)
        outside = np.asarray(ndimage.distance_transform_edt(~sl), dtype=np.float64)
        return outside - inside  # < 0 inside

    for ka, kb in itertools.pairwise(edited):
        if kb - ka < 2:
            continue
        da, db = signed(full[ka]), signed(full[kb])
        for k in range(ka + 1, kb):
            t = (k - ka) / (kb - ka)
            out[k] = ((1 - t) * da + t * db) < 0
    return SparseMask.from_full(out)


class Interpolate(Command):
    """Fill between the edited slices of one finding."""

    kind = "interpolate"

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def args(self) -> dict[str, Any]:
        return {"key": self.key}

    @classmethod
    def from_args(cls, args: dict[str, Any], masks: list[SparseMask | None]) -> Command:
        return cls(str(args["key"]))

    def describe(self) -> str:
        return f"Interpolate {self.key}"

    def prepare(self, target: Target) -> None:
        f = target.get(self.key)
        if f.status is Status.IMPORTED:
            raise ReviewError(f"{self.key} was imported from another system and is read-only")
        mask = interpolate_mask(f.mask, f.original_mask, target.shape)
        if mask.same_voxels(f.mask):
            return
        self.changes.append(_change(f, _with_mask(target, f, mask), masks=True))


COMMANDS: dict[str, type[Command]] = {
    c.kind: c for c in (Decide, Paint, AddFinding, Interpolate)}
