"""packaging/ holds build and training scripts, not a Python package (the name would shadow
PyPI's ``packaging``): its script folders go on sys.path so tests import them as top-level
modules, the way the scripts import each other."""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
for _folder in (_PACKAGING / "nodules", _PACKAGING / "bundle"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
