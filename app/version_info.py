"""``lucida --version``: Lucida, Python, onnxruntime and the provider a model would really use."""

from __future__ import annotations

import platform


def version_report() -> str:
    from app import __version__

    lines = [f"Lucida {__version__} (research use only, not for diagnostic use)",
             f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"]
    try:
        from inference import runtime  # sets ORT_DISABLE_TELEMETRY before importing onnxruntime

        info = runtime.probe_provider("auto")
        lines.append(f"onnxruntime {runtime.onnxruntime_version()}; compiled providers: "
                     + ", ".join(p.removesuffix("ExecutionProvider")
                                 for p in runtime.available_providers()))
        lines.append(f"execution provider in use: {info.active.removesuffix('ExecutionProvider')}")
        lines.extend(f"  note: {n}" for n in info.notices)
    except ImportError as exc:
        lines.append(f"onnxruntime: not installed ({exc})")
    except Exception as exc:  # --version must always print something useful
        lines.append(f"onnxruntime: could not start ({type(exc).__name__}: {exc})")
    return "\n".join(lines)
