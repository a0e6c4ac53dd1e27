"""Lucida application: main window, command line, wiring of the rooms."""

# Importing inference (a light package) switches onnxruntime telemetry off before anything
# can import onnxruntime (see app/bootstrap.py).
import inference as _inference  # noqa: F401

__version__ = "0.1.0"
