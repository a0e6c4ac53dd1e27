"""Lucida dicomio package: DICOM in and out, the one room that talks to pydicom."""

from __future__ import annotations

import sys


def _import_pydicom_without_requests() -> None:
    """Load pydicom while ``requests`` is hidden.

    ``pydicom.data.download`` imports ``requests`` (with urllib3, idna, charset_normalizer:
    0.1-0.2 s of start-up) at import time, only to fetch pydicom's test files from the
    internet, which Lucida never does. With ``requests`` hidden it falls back to urllib for
    that. ``requests`` itself stays importable afterwards (DICOMweb, net/web.py). Runs when
    this package is first imported, before any of its modules imports pydicom.
    """
    if "pydicom" in sys.modules or "requests" in sys.modules:
        return
    sys.modules["requests"] = None  # type: ignore[assignment]  # importing it raises ImportError
    try:
        import pydicom.data  # noqa: F401  (pydicom.pixels imports it; so does the loader)
    finally:
        del sys.modules["requests"]


_import_pydicom_without_requests()
