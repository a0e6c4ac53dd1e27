"""app.workers: a Job delivers every signal to slots connected after the pool's own, also
when the caller keeps no reference to it (as network_wiring's SCP flush does)."""

from __future__ import annotations

import gc
from typing import Any

from app import workers


def test_done_reaches_a_slot_of_a_job_nobody_keeps(qtbot: Any) -> None:
    heard: list[str] = []

    def start() -> None:
        job = workers.make(lambda _ctx: 42, name="unreferenced")
        job.finished.connect(lambda result: heard.append(f"finished {result}"))
        job.done.connect(lambda: heard.append("done"))
        job.start()  # the caller's reference ends here

    for _ in range(20):  # several, so a collection between emissions would show
        start()
    gc.collect()
    qtbot.waitUntil(lambda: heard.count("done") == 20, timeout=10_000)
    assert heard.count("finished 42") == 20
    qtbot.wait(50)
    assert not any(job.running for job in workers._LIVE)
