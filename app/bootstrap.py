"""Process-wide settings that must happen before heavy imports.

Called first by every entry point (CLI, GUI, inference worker): onnxruntime
reads its telemetry opt-out at import time, so it must be set before anything
imports onnxruntime.
"""

from __future__ import annotations

from inference import disable_onnxruntime_telemetry


def prepare_environment() -> None:
    disable_onnxruntime_telemetry()
