"""ReviewFinding <-> the store's plain records (JSON state + mask blob)."""

from __future__ import annotations

from typing import Any

from review.model import (
    Reason,
    ReviewFinding,
    SparseMask,
    Status,
    finding_from_dict,
    pack_masks,
    unpack_masks,
)
from store.errors import DamagedRecordError
from store.review import FindingRecord


def finding_state(f: ReviewFinding) -> dict[str, Any]:
    """Everything of a finding except its masks, as JSON-ready data."""
    return {
        "key": f.key, "origin": f.origin, "label_value": f.label_value,
        "label_name": f.label_name, "color_rgb": list(f.color_rgb), "status": f.status.value,
        "reason": None if f.reason is None else f.reason.value, "reason_text": f.reason_text,
        "reviewer": f.reviewer, "decided_at": f.decided_at, "score": f.score,
        "edited": f.edited, "tracking_uid": f.tracking_uid,
        "measures": f.measures.to_dict(),
        "original": None if f.original is None else f.original.to_dict(),
    }


def finding_from_state(state: dict[str, Any], mask: SparseMask,
                       original_mask: SparseMask | None) -> ReviewFinding:
    """Raises KeyError / TypeError / ValueError on bad data (callers name the row)."""
    color = state["color_rgb"]
    reason = state.get("reason")
    score = state.get("score")
    original = state.get("original")
    return ReviewFinding(
        key=str(state["key"]), origin=str(state["origin"]),
        label_value=int(state["label_value"]), label_name=str(state["label_name"]),
        color_rgb=(int(color[0]), int(color[1]), int(color[2])),
        status=Status(state["status"]), measures=finding_from_dict(state["measures"]),
        mask=mask, tracking_uid=str(state["tracking_uid"]),
        original=None if original is None else finding_from_dict(original),
        reason=None if reason is None else Reason(reason),
        reason_text=str(state.get("reason_text", "")), reviewer=str(state.get("reviewer", "")),
        decided_at=str(state.get("decided_at", "")),
        score=None if score is None else float(score), edited=bool(state.get("edited", False)),
        original_mask=original_mask)


def to_record(f: ReviewFinding) -> FindingRecord:
    state = finding_state(f)
    original = state.pop("original")
    return FindingRecord(key=f.key, origin=f.origin, status=f.status.value,
                         tracking_uid=f.tracking_uid, state=state, original=original,
                         mask=pack_masks([f.mask, f.original_mask]))


def from_record(rec: FindingRecord, run_id: int) -> ReviewFinding:
    try:
        masks = unpack_masks(rec.mask)
        if len(masks) != 2 or masks[0] is None:
            raise ValueError("expected the current and the original mask")
        state = dict(rec.state, key=rec.key, origin=rec.origin, status=rec.status,
                     tracking_uid=rec.tracking_uid, original=rec.original)
        return finding_from_state(state, masks[0], masks[1])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DamagedRecordError(
            f"the library's review of model run {run_id} has a damaged finding {rec.key} "
            f"({exc}); restore library.sqlite from a backup to get it back",
            table="review_findings", column="state_json") from exc


__all__ = ["finding_from_state", "finding_state", "from_record", "to_record"]
