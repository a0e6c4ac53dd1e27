"""The review of one model run: findings, decisions, edits (undo / redo), sign-off.

GUI-free; ``app`` drives it and listens for changes. Every change is committed to the
library at once, in one transaction with its audit row.
"""

from review.model import Reason, ReviewFinding, SparseMask, Status, new_tracking_uid
from review.session import ReviewError, ReviewSession

__all__ = ["Reason", "ReviewError", "ReviewFinding", "ReviewSession", "SparseMask", "Status",
           "new_tracking_uid"]
