"""packaging/ holds build and training scripts, not a Python package (the name would shadow
PyPI's ``packaging``): its script folders go on sys.path so tests import them as top-level
modules, the way the scripts import each other."""

from __future__ import annotations

import sys
from pathlib import Path

_NODULES = Path(__file__).resolve().parents[2] / "packaging" / "nodules"
if str(_NODULES) not in sys.path:
    sys.path.insert(0, str(_NODULES))
