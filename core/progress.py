"""Progress and cancellation protocols shared by long operations.

Logic takes a ``progress`` callable and a ``cancel`` token; the CLI feeds a
terminal bar, the GUI a Qt signal, the tests a list.
"""

from __future__ import annotations

import threading
from typing import Protocol


class ProgressSink(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None: ...


def no_progress(fraction: float, message: str = "") -> None:
    """A progress sink that ignores everything."""


class CancelToken:
    """Thread-safe flag a worker polls between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        from core.errors import CancelledError

        if self._event.is_set():
            raise CancelledError("cancelled by the user")
