"""PySide6's import hook, told the answer Lucida already knows.

Once PySide6 is imported, shiboken wraps ``__import__``: for every module imported after
that, in whichever thread imports it, ``shibokensupport.feature.feature_imported`` reads
the module's whole source with ``inspect.getsource`` to learn whether it mentions
"PySide6", so that the module could opt in to ``from __feature__ import snake_case``.
Lucida never uses ``__feature__``, so every answer is "no feature" whatever the source.

Why answer it without reading:

* threads: workers import lazily (``requests`` for DICOMweb, the loaders), so the hook runs
  off the GUI thread. In one local run of the window tests the main thread segfaulted
  while a worker was inside this hook, importing urllib3; another PySide6 application
  traced its main-thread crashes to worker imports through the same hook. It did not
  recur in dozens of runs, so this is a precaution, not a proven fix;
* cost: importing numpy, pydicom, VTK, SciPy, SimpleITK, onnxruntime and QtWidgets after
  QtCore took 0.61-0.70 s without the reading, 0.73-0.85 s with it. Lucida's first frame
  did not change measurably (bench/startup.py, interleaved: 1.19 and 1.20 s warm with
  this, 1.11 and 1.16 s without).
"""

from __future__ import annotations

import sys
from types import ModuleType


def _never_uses_features(_module: ModuleType) -> bool:
    return False


def quiet_feature_hook() -> bool:
    """Make PySide6's per-import check answer "no feature" without reading the module's
    source; True when the hook was found (PySide6 imported, the same internal API)."""
    feature = sys.modules.get("shibokensupport.feature")
    if feature is None or not callable(getattr(feature, "_mod_uses_pyside", None)):
        return False
    feature._mod_uses_pyside = _never_uses_features  # type: ignore[attr-defined]
    return True
