"""Benchmark: pressing A on a finding → the next pending finding centred in every view.

Builds a throw-away library with the demo study, runs the demo pack in a real main
window, then times real A key presses (``app.review_timing``). Target ≤ 100 ms under
Xvfb. Prints; asserts nothing::

    xvfb-run -a .venv/bin/python bench/review_keys.py [--presses 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=3)
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory(prefix="lucida-bench-keys-") as tmp:
        library_dir = Path(tmp) / "library"
        library_dir.mkdir()
        os.environ["LUCIDA_LIBRARY"] = str(library_dir)
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtWidgets import QApplication

        from app.main_window import MainWindow
        from app.review_timing import time_accept_to_next_centred
        from app.settings import Preferences
        from app.theme import apply_dark_theme

        app = QApplication.instance() or QApplication(sys.argv)
        apply_dark_theme(app)  # type: ignore[arg-type]
        window = MainWindow(library_dir, Preferences(), open_demo=True, interactive=False)
        window.resize(1500, 950)
        window.show()

        def wait(condition: object, seconds: float) -> None:
            loop = QEventLoop()
            timer = QTimer()
            timer.timeout.connect(lambda: loop.quit() if condition() else None)  # type: ignore[operator]
            timer.start(50)
            QTimer.singleShot(int(seconds * 1000), loop.quit)
            loop.exec()
            timer.stop()
            if not condition():  # type: ignore[operator]
                raise TimeoutError("the window did not get there in time")

        wait(lambda: window.current_volume is not None, 120)
        panel = window.models_panel
        panel.select_pack("lucida-demo-lung-density")
        if panel.input_warnings():
            panel.confirm.setChecked(True)
        panel.run_selected()
        wait(lambda: window.series is not None and window.series.review is not None, 300)
        times = []
        for _ in range(args.presses):
            if len([r for r in window.findings_panel.rows() if r.status == "pending"]) < 2:
                break
            times.append(time_accept_to_next_centred(window))
        window.close()
    for n, ms in enumerate(times, start=1):
        print(f"press {n}: {ms:.1f} ms")
    if times:
        print(f"A → next finding centred in all views: median {statistics.median(times):.1f} ms "
              "(target ≤ 100 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
