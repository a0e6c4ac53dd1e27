"""Lucida application: main window, command line, wiring of the rooms."""

import os as _os

# Before anything can import onnxruntime (see app/bootstrap.py).
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
