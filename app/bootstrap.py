"""Process-wide settings that must happen before heavy imports.

Called first by every entry point (CLI, GUI, inference worker): onnxruntime
reads ORT_DISABLE_TELEMETRY at import time, so it must be set before anything
imports onnxruntime.
"""

from __future__ import annotations

import os


def prepare_environment() -> None:
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
