"""app.pyside_hooks: once Lucida's Qt side is imported, PySide6's import hook no longer
reads the source of every module imported after it (in any thread), and still records
each module as one that selects no ``__feature__`` (Lucida uses none)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import inspect, sys, threading
import {first}
read = []
real = inspect.getsource
inspect.getsource = lambda obj: (read.append(obj.__name__), real(obj))[1]
def load():  # the hook sees the module __import__ returns: app.theme itself here
    from app.theme import apply_dark_theme  # its source says PySide6: 0 when read
threading.Thread(target=load).start()
[t.join() for t in threading.enumerate() if t is not threading.current_thread()]
feature = sys.modules["shibokensupport.feature"]
print("app.theme" in read, len(read), feature.pyside_feature_dict.get("app.theme"))
"""


def _probe(first: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_hook_reads_sources_until_lucida_quiets_it() -> None:
    # PySide6 alone: the hook reads the module a worker thread imports (the check is real).
    read_it, _, answer = _probe("PySide6.QtCore").split()
    assert (read_it, answer) == ("True", "0")
    # Lucida's job runner imported: nothing is read, the module is left out of switching.
    assert _probe("app.workers") == "False 0 -1"
