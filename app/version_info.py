"""``lucida --version``: Lucida's version and build id (first line), Python, onnxruntime and
the provider a model would really use."""

from __future__ import annotations

import platform


def version_report() -> str:
    """What ``lucida --version`` prints: the build (first line: version and build id), then
    the runtime."""
    from app.build_info import build_info

    info = build_info()
    lines = [f"{info.headline()} — research use only, not for diagnostic use"]
    if info.commit or info.built_at:
        lines.append(f"commit {info.commit or 'unknown'}"
                     + (f", built {info.built_at}" if info.built_at else ""))
    return "\n".join([*lines, runtime_report()])


def runtime_report() -> str:
    """Python, onnxruntime and the execution provider (the About box shows the build apart)."""
    lines = [f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"]
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
