"""Time from pressing A on a finding to the next pending finding centred in every view.

Used by ``bench/review_keys.py`` (and ``bench/export.py`` may call it too): a real key
press through QTest on the Findings table of a real main window, the clock stopping
once every visible slice view shows the next finding at its centre and has rendered.
"""

from __future__ import annotations

import time
from typing import Any


def centred_everywhere(window: Any, lps: Any, tolerance_px: float = 3.0) -> bool:
    """Whether ``lps`` is at the centre of every visible slice view (within the tolerance)."""
    for view in window.viewer.slice_views().values():
        if not view.isVisible():
            continue
        x, y = view.lps_to_display(lps)
        if abs(x - view.width() / 2) > tolerance_px or abs(y - view.height() / 2) > tolerance_px:
            return False
    return True


def time_accept_to_next_centred(window: Any, *, timeout_s: float = 10.0) -> float:
    """Milliseconds from pressing A on the selected (or first pending) finding to the next
    pending one centred in all views. The window needs an open review with two or more
    pending findings; the press really accepts one (it is committed like any other)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    panel = window.findings_panel
    review = window.series.review
    first = review.next_pending(None)
    if first is None:
        raise ValueError("no pending finding to accept")
    panel.select_key(first)
    following = review.next_pending(first)
    if following is None:
        raise ValueError("the timing needs two pending findings")
    window.activateWindow()  # no window manager under Xvfb: activation takes a moment
    deadline = time.perf_counter() + timeout_s
    while not window.isActiveWindow() and time.perf_counter() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    panel.table.setFocus()
    QApplication.processEvents()
    start = time.perf_counter()
    QTest.keyClick(panel.table, Qt.Key.Key_A)
    while True:
        row = next((r for r in panel.rows() if r.key == following), None)
        if panel.selected_keys() == [following] and row is not None \
                and centred_everywhere(window, row.centroid_lps):
            for view in window.viewer.slice_views().values():
                if view.isVisible():
                    view.GetRenderWindow().Render()  # what the reader sees, not just state
            break
        if time.perf_counter() - start > timeout_s:
            where = {name: view.lps_to_display(row.centroid_lps) if row else None
                     for name, view in window.viewer.slice_views().items()}
            raise TimeoutError(f"the next finding ({following}) was not centred in time: "
                               f"selected {panel.selected_keys()}, at {where}, "
                               f"{first} is {review.get(first).status}, "
                               f"active {window.isActiveWindow()}, "
                               f"focus {QApplication.focusWidget()}")
        QApplication.processEvents()
    return (time.perf_counter() - start) * 1000.0
