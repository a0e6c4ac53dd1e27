"""The review session of one model run: decisions, edits (undo / redo), sign-off.

Every action is committed to the library at once, in ONE transaction with its history
entry and its audit row; the in-memory state changes only after the commit, so a failed
write leaves the session as it was. Kill the process at any moment: :meth:`open` gives
back the decisions, masks and the undo / redo history up to the last commit.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.volume import Finding, Label, LabelMap
from review.codec import from_record, to_record
from review.commands import (
    AddFinding,
    Command,
    Decide,
    Interpolate,
    Paint,
    ReviewError,
)
from review.measures import measure
from review.model import Reason, ReviewFinding, SparseMask, Status
from store.errors import DamagedRecordError
from store.review import ReviewStore

if TYPE_CHECKING:
    from store.library import Library

Listener = Callable[[list[str]], None]

_DEFAULT_COLOR = (255, 200, 0)


def default_reviewer() -> str:
    """The OS user (the reader at this keyboard), or "unknown" when the OS won't say."""
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


def _sort_key(f: ReviewFinding) -> tuple[int, float, int]:
    number = int(f.key[1:]) if f.key[1:].isdigit() else 0
    if f.origin == "reader":
        return (1, 0.0, number)
    return (0, -(f.score if f.score is not None else 0.0), number)


class ReviewSession:
    """Open with :meth:`open`; one per model run (several may be open on one library)."""

    def __init__(self, library: Library, run_id: int, reviewer: str) -> None:
        self.library = library
        self.store = ReviewStore(library)
        self.run_id = int(run_id)
        grid = self.store.grid(self.run_id)
        self.series_uid = grid.series_uid
        self.affine: npt.NDArray[np.float64] = np.asarray(grid.affine, dtype=np.float64)
        self.shape: tuple[int, int, int] = grid.shape
        self.labels = grid.labels
        self.reviewer = reviewer
        self.signed_off = self.store.signed_off(self.run_id)
        self._findings: dict[str, ReviewFinding] = {}
        for rec in self.store.findings(self.run_id):
            self._findings[rec.key] = from_record(rec, self.run_id)
        self._done: list[tuple[int, Command]] = []
        self._redo: list[tuple[int, Command]] = []  # last element = next to redo
        for c in self.store.commands(self.run_id):
            try:
                cmd = Command.from_json(c.kind, c.payload, c.blob)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise DamagedRecordError(
                    f"the library's review history of model run {self.run_id} has a damaged "
                    f"entry {c.seq} ({exc}); restore library.sqlite from a backup to get it "
                    "back", table="review_commands", row_id=c.seq,
                    column="payload_json") from exc
            (self._redo if c.undone else self._done).append((c.seq, cmd))
        self._redo.reverse()
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, library: Library, run_id: int, *, reviewer: str | None = None
             ) -> ReviewSession:
        """Open the review of a recorded run (audited as "review-opened")."""
        session = cls(library, run_id, reviewer or default_reviewer())
        with session.store.transaction():
            session._audit("review-opened", {"findings": len(session._findings),
                                             "signed_off": session.signed_off})
        return session

    def _audit(self, event: str, payload: dict[str, Any]) -> None:
        self.library.audit(event, payload, actor=self.reviewer, series_uid=self.series_uid,
                           run_id=self.run_id)

    # ------------------------------------------------------------------ reading

    @property
    def findings(self) -> list[ReviewFinding]:
        """Sorted by score (descending), reader-drawn last."""
        return sorted(self._findings.values(), key=_sort_key)

    def get(self, key: str) -> ReviewFinding:
        try:
            return self._findings[key]
        except KeyError:
            known = ", ".join(f.key for f in self.findings) or "none"
            raise ReviewError(f"no finding {key!r} in run {self.run_id} (findings: "
                              f"{known})") from None

    def find(self, key: str) -> ReviewFinding | None:
        return self._findings.get(key)

    def progress(self) -> tuple[int, int]:
        """(reviewed, total) over the findings a reader decides (imported ones excluded)."""
        own = [f for f in self._findings.values() if f.status is not Status.IMPORTED]
        return sum(1 for f in own if f.reviewed), len(own)

    def pending(self) -> list[ReviewFinding]:
        return [f for f in self.findings if f.status is Status.PENDING]

    def _cycle(self, start: str | None, step: int) -> str | None:
        order = self.findings
        keys = [f.key for f in order]
        if not keys:
            return None
        if start in keys:
            base = keys.index(start)
        else:
            base = -1 if step > 0 else 0
        for n in range(1, len(keys) + 1):
            f = order[(base + step * n) % len(keys)]
            if f.status is Status.PENDING and f.key != start:
                return f.key
        return None

    def next_pending(self, after_key: str | None = None) -> str | None:
        """The next pending finding in panel order after ``after_key`` (wrapping)."""
        return self._cycle(after_key, 1)

    def previous_pending(self, before_key: str | None) -> str | None:
        return self._cycle(before_key, -1)

    def kept(self) -> list[ReviewFinding]:
        """Accepted, edited and reader-added findings (never rejected or pending)."""
        return [f for f in self.findings if f.kept]

    def label_map(self, keys: Iterable[str] | None = None, *,
                  include_rejected: bool = False) -> LabelMap:
        """The current masks as a label map on the series grid (rejected ones left out
        unless asked for; later findings in panel order paint over earlier ones)."""
        wanted = None if keys is None else set(keys)
        array = np.zeros(self.shape, dtype=np.uint16)
        labels: dict[int, Label] = {}
        for f in reversed(self.findings):
            if wanted is not None and f.key not in wanted:
                continue
            if f.status is Status.REJECTED and not include_rejected:
                continue
            if f.mask.empty:
                continue
            clipped = f.mask.clip(self.shape)
            o, s = clipped.offset, clipped.array.shape
            region = array[o[0]:o[0] + s[0], o[1]:o[1] + s[1], o[2]:o[2] + s[2]]
            region[clipped.array] = f.label_value
            labels.setdefault(f.label_value, Label(f.label_value, f.label_name, f.color_rgb))
        return LabelMap(array, self.affine.copy(), sorted(labels.values(),
                                                          key=lambda lab: lab.value),
                        series_uid=self.series_uid)

    # -- for commands (review.commands.Target) ---------------------------------------

    def remeasure(self, f: ReviewFinding, mask: SparseMask) -> Finding:
        base = f.original or f.measures
        return measure(mask, self.affine, finding_id=base.id, label_value=f.label_value,
                       label_name=f.label_name, max_score=base.max_score,
                       mean_score=base.mean_score, series_uid=self.series_uid,
                       fallback=f.measures)

    def place(self, key: str, finding: ReviewFinding | None) -> None:
        if finding is None:
            self._findings.pop(key, None)
        else:
            self._findings[key] = finding

    def next_reader_key(self) -> str:
        used = [int(k[1:]) for k in self._findings if k.startswith("r") and k[1:].isdigit()]
        # Keys of undone additions stay reserved so redo never collides.
        for _seq, cmd in self._redo:
            used += [int(k[1:]) for k in cmd.keys if k.startswith("r") and k[1:].isdigit()]
        return f"r{max(used, default=0) + 1}"

    def label_color(self, value: int) -> tuple[int, int, int]:
        for lab in self.labels:
            if int(lab.get("value", -1)) == value:
                c = lab.get("color_rgb") or _DEFAULT_COLOR
                return (int(c[0]), int(c[1]), int(c[2]))
        return _DEFAULT_COLOR

    # ------------------------------------------------------------------ listeners

    def add_listener(self, callback: Listener) -> None:
        """``callback(changed_keys)`` after every change (no Qt: the GUI redraws)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, keys: list[str]) -> None:
        for callback in list(self._listeners):
            callback(list(keys))

    # ------------------------------------------------------------------ actions

    def _writable(self) -> None:
        if self.signed_off:
            raise ReviewError(f"the review of run {self.run_id} is signed off; reopen it to "
                              "change anything")

    def _records(self, keys: list[str]) -> None:
        """Write the current in-memory state of ``keys`` (inside the transaction)."""
        present = [self._findings[k] for k in keys if k in self._findings]
        gone = [k for k in keys if k not in self._findings]
        self.store.save_findings(self.run_id, [to_record(f) for f in present])
        if gone:
            self.store.delete_findings(self.run_id, gone)

    def _audit_payload(self, cmd: Command, direction: str) -> dict[str, Any]:
        items = []
        for c in cmd.changes:
            old, new = (c.before, c.after) if direction != "undo" else (c.after, c.before)
            entry: dict[str, Any] = {"key": c.key,
                                     "old_status": old["status"] if old else None,
                                     "new_status": new["status"] if new else None}
            if new is not None:
                entry.update(reason=new.get("reason"), text=new.get("reason_text", ""),
                             tracking_uid=new.get("tracking_uid"))
                m = new.get("measures", {})
                entry.update(voxel_count=m.get("voxel_count"), volume_mm3=m.get("volume_mm3"),
                             longest_diameter_mm=m.get("longest_diameter_mm"),
                             centroid_lps_mm=m.get("centroid_lps_mm"))
            if old is not None and c.before_mask is not None:
                entry["old_voxel_count"] = old.get("measures", {}).get("voxel_count")
            items.append(entry)
        return {"command": cmd.kind, "text": cmd.describe(), "findings": items}

    def _run(self, cmd: Command) -> list[str]:
        """Prepare, commit (history + findings + audit in one transaction), then apply."""
        self._writable()
        cmd.prepare(self)
        if not cmd.changes:
            return []
        payload, blob = cmd.to_json()
        snapshot = dict(self._findings)
        cmd.do(self)
        try:
            with self.store.transaction():
                seq = self.store.push_command(self.run_id, cmd.kind, cmd.describe(), payload,
                                              blob)
                self._records(cmd.keys)
                self._audit(cmd.event, self._audit_payload(cmd, "do"))
        except BaseException:
            self._findings = snapshot
            raise
        self._done.append((seq, cmd))
        self._redo.clear()
        self._notify(cmd.keys)
        return cmd.keys

    def accept(self, keys: Iterable[str] | str) -> None:
        self._run(Decide(_key_list(keys), Status.ACCEPTED))

    def reject(self, keys: Iterable[str] | str, reason: Reason | str, text: str = "") -> None:
        try:
            why = reason if isinstance(reason, Reason) else Reason.parse(reason)
        except ValueError as exc:
            raise ReviewError(str(exc)) from None
        self._run(Decide(_key_list(keys), Status.REJECTED, why, text))

    def reset(self, keys: Iterable[str] | str) -> None:
        """Back to pending (reader-drawn findings go back to added-by-reader)."""
        self._run(Decide(_key_list(keys), Status.PENDING))

    def paint(self, key: str, voxels: SparseMask, *, erase: bool) -> None:
        """One brush stroke: add (or erase) ``voxels`` on the finding's mask."""
        self._run(Paint(key, voxels, erase))

    def add_finding(self, label_name: str, mask: SparseMask, label_value: int = 1) -> str:
        cmd = AddFinding(label_name, mask, label_value)
        self._run(cmd)
        return cmd.key

    def interpolate(self, key: str) -> None:
        self._run(Interpolate(key))

    # ------------------------------------------------------------------ undo / redo

    @property
    def can_undo(self) -> bool:
        return bool(self._done) and not self.signed_off

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and not self.signed_off

    @property
    def undo_text(self) -> str | None:
        return self._done[-1][1].describe() if self._done else None

    @property
    def redo_text(self) -> str | None:
        return self._redo[-1][1].describe() if self._redo else None

    def _step(self, forward: bool) -> str | None:
        self._writable()
        source, target = (self._redo, self._done) if forward else (self._done, self._redo)
        if not source:
            return None
        seq, cmd = source[-1]
        snapshot = dict(self._findings)
        if forward:
            cmd.do(self)
        else:
            cmd.undo(self)
        event = "redo" if forward else "undo"
        try:
            with self.store.transaction():
                self.store.set_undone(self.run_id, seq, not forward)
                self._records(cmd.keys)
                self._audit(event, dict(self._audit_payload(cmd, event), seq=seq))
        except BaseException:
            self._findings = snapshot
            raise
        source.pop()
        target.append((seq, cmd))
        self._notify(cmd.keys)
        return cmd.describe()

    def undo(self) -> str | None:
        """Undo the last command; returns what was undone (None when nothing)."""
        return self._step(False)

    def redo(self) -> str | None:
        return self._step(True)

    # ------------------------------------------------------------------ reviewer, sign-off

    def set_reviewer(self, name: str) -> None:
        name = name.strip()
        if not name:
            raise ReviewError("the reviewer needs a name")
        if name == self.reviewer:
            return
        old = self.reviewer
        with self.store.transaction():
            self.library.audit("reviewer-changed", {"old": old, "new": name}, actor=name,
                               series_uid=self.series_uid, run_id=self.run_id)
        self.reviewer = name

    def summary(self) -> dict[str, Any]:
        reviewed, total = self.progress()
        return {"reviewed": reviewed, "total": total,
                "kept": [f.key for f in self.kept()],
                "rejected": [f.key for f in self.findings if f.status is Status.REJECTED]}

    def sign_off(self) -> None:
        """Refused while findings are pending; afterwards the session is read-only."""
        self._writable()
        pending = [f.key for f in self.pending()]
        if pending:
            shown = ", ".join(pending[:10]) + (" …" if len(pending) > 10 else "")
            raise ReviewError(f"cannot sign off: {len(pending)} finding(s) still pending "
                              f"({shown}); accept or reject each first")
        summary = self.summary()
        with self.store.transaction():
            self.store.add_signoff(self.run_id, "sign-off", self.reviewer, summary)
            self._audit("sign-off", dict(summary, action="sign-off"))
        self.signed_off = True
        self._notify([])

    def reopen(self) -> None:
        """Make a signed-off review editable again (audited as "review-reopened")."""
        if not self.signed_off:
            return
        summary = self.summary()
        with self.store.transaction():
            self.store.add_signoff(self.run_id, "reopen", self.reviewer, summary)
            self._audit("review-reopened", dict(summary, action="reopen"))
        self.signed_off = False
        self._notify([])


def _key_list(keys: Iterable[str] | str) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


__all__ = ["Listener", "ReviewError", "ReviewSession", "default_reviewer"]
