"""One small helper for background work in the GUI.

``make(fn)`` returns a :class:`Job` that, once started, runs ``fn(ctx)`` on a
thread pool; the job is a QObject living in the GUI thread whose signals (``progress``, ``partial``,
``finished``, ``failed``, ``cancelled``) arrive through queued connections.
The worker never touches widgets: it only calls ``ctx.progress(...)``,
``ctx.partial(...)`` and polls ``ctx.cancel``. No ``processEvents`` loops.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from app.pyside_hooks import quiet_feature_hook
from core.errors import CancelledError
from core.progress import CancelToken

log = logging.getLogger(__name__)

# Jobs import lazily in their threads: PySide6's import hook must not read each module there.
quiet_feature_hook()

_POOL: QThreadPool | None = None
_LIVE: set[Job] = set()


def pool() -> QThreadPool:
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(4)
    return _POOL


class Job(QObject):
    """Handle of one background job; signals are delivered in the GUI thread."""

    progress = Signal(float, str)  # fraction 0..1, message
    partial = Signal(object)  # intermediate result (e.g. a partly loaded Volume)
    finished = Signal(object)  # the function's return value
    failed = Signal(object)  # the exception
    cancelled = Signal()
    done = Signal()  # always last, whatever the outcome

    def __init__(self, fn: Callable[[JobContext], Any], name: str = "job") -> None:
        super().__init__()
        self.name = name
        self.cancel_token = CancelToken()
        self.running = False
        self._fn = fn
        self.done.connect(self._on_done)

    def start(self) -> Job:
        """Queue the job; connect to its signals *before* calling this."""
        if self.running:
            return self
        self.running = True
        _LIVE.add(self)  # keep the QObject alive until the worker is done with it
        pool().start(_Runnable(self, self._fn))
        return self

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def _on_done(self) -> None:
        self.running = False
        # Let go only after the other slots of ``done`` ran: they were connected after this
        # one, and dropping the last reference here would delete the Job mid-emission (a
        # caller keeping no reference of its own would never hear ``done``).
        QTimer.singleShot(0, lambda: _LIVE.discard(self))


class JobContext:
    """What the worker function gets: progress and partial emitters, the cancel token."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self.cancel = job.cancel_token

    def progress(self, fraction: float, message: str = "") -> None:
        self._job.progress.emit(float(fraction), message)

    def partial(self, value: object) -> None:
        self._job.partial.emit(value)


class _Runnable(QRunnable):
    def __init__(self, job: Job, fn: Callable[[JobContext], Any]) -> None:
        super().__init__()
        self.job = job
        self.fn = fn

    def run(self) -> None:
        job = self.job
        try:
            result = self.fn(JobContext(job))
        except CancelledError:
            job.cancelled.emit()
        except Exception as exc:  # reported to the GUI thread, shown there
            log.debug("job %s failed:\n%s", job.name, traceback.format_exc())
            if job.cancel_token.cancelled:
                job.cancelled.emit()
            else:
                job.failed.emit(exc)
        else:
            if job.cancel_token.cancelled:
                job.cancelled.emit()
            else:
                job.finished.emit(result)
        finally:
            job.done.emit()


def make(fn: Callable[[JobContext], Any], name: str = "job") -> Job:
    """A job for ``fn(ctx)``, not started: connect its signals, then ``job.start()``.

    (Qt looks up connections at emit time; a worker could emit before a
    connection made after starting.)
    """
    return Job(fn, name)


def running_job_names() -> list[str]:
    """Names of the jobs started and not yet done, sorted (for diagnostics)."""
    return sorted(job.name for job in _LIVE if job.running)


def cancel_all_and_wait(timeout_ms: int = 10000) -> bool:
    """Cancel every running job and wait for the pool (used when the window closes)."""
    for job in list(_LIVE):
        job.cancel()
    return pool().waitForDone(timeout_ms)
