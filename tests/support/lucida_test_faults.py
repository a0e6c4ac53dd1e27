"""Faults injected into the inference worker by tests, never by the product.

The worker process is spawned, so a fault must travel as the process target:
``Faults`` is a picklable callable that tests put in place of
``inference.worker._worker_main`` (see the ``worker_faults`` fixture in
tests/conftest.py). In the child it crashes or slows down, then runs the real
entry point. This module lives outside the product so that its switches are not
part of the worker's API; the spawned child finds it because it inherits the
parent's ``sys.path``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SIGNALS = {"segfault": signal.SIGSEGV, "kill": signal.SIGKILL}


@dataclass(frozen=True)
class Faults:
    crash: str | None = None  # "segfault" | "kill": the worker dies on purpose
    # With a crash: only the first worker that creates this file crashes, later ones run.
    crash_once_marker: str | None = None
    delay_per_progress_s: float = 0.0  # slow each progress report, to cancel mid-run

    def _should_crash(self) -> bool:
        if self.crash is None:
            return False
        if self.crash_once_marker is None:
            return True
        try:
            os.close(os.open(self.crash_once_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def __call__(self, job_dir: str, pack_ref: str, options: dict[str, Any], out_q: Any,
                 cancel_event: Any) -> None:
        from inference import worker

        # The job folder is written before the process starts; crash once it is there,
        # where the real worker would be loading its input.
        assert (Path(job_dir) / "volume.npy").is_file()
        if self._should_crash():
            os.kill(os.getpid(), _SIGNALS[self.crash or ""])
        if self.delay_per_progress_s:
            import inference.pipeline as pipeline

            real_run = pipeline.run
            delay = self.delay_per_progress_s

            def slow_run(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
                def slow_progress(fraction: float, message: str = "") -> None:
                    if progress is not None:
                        progress(fraction, message)
                    time.sleep(delay)

                return real_run(*args, progress=slow_progress, **kwargs)

            pipeline.run = slow_run  # the worker imports run from the module when it starts
        worker._worker_main(job_dir, pack_ref, options, out_q, cancel_event)
