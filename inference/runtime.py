"""onnxruntime sessions and execution providers.

This is the only module of Lucida that imports onnxruntime. Telemetry is
switched off *before* the import (onnxruntime >= 1.29 otherwise writes a
device id under ``~/.cache/Microsoft/DeveloperTools``), in whichever process
imports this module — the GUI, the CLI and the inference worker alike.

``get_available_providers()`` lists what the installed package was compiled
with, not what works on this machine; so a session asks for the wanted
provider plus CPU and then reports ``session.get_providers()[0]``, the
provider really in use.
"""

from __future__ import annotations

# Telemetry is already off: inference/__init__.py runs before this module and
# sets the opt-out variables before anything can import onnxruntime.
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from core.errors import InferenceError, ModelPackError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
# Short names accepted on the command line and in settings.
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# Tried in this order by "auto". TensorRT is left to an explicit choice: it
# builds an engine per input shape, which takes minutes on first use.
AUTO_ORDER: tuple[str, ...] = (
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
)


def onnxruntime_version() -> str:
    return str(ort.__version__)


def available_providers() -> list[str]:
    """What the installed onnxruntime package was compiled with (not what works)."""
    return list(ort.get_available_providers())


def normalize_provider(name: str) -> str:
    key = name.strip()
    if key.lower() in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[key.lower()]
    if key.lower() == "auto":
        return "auto"
    if key.endswith("ExecutionProvider"):
        return key
    raise InferenceError(
        f"unknown execution provider {name!r}; use auto, "
        + ", ".join(sorted(set(PROVIDER_ALIASES)))
    )


def wanted_providers(choice: str | Sequence[str] | None) -> list[str]:
    """The provider list to ask onnxruntime for (CPU always last)."""
    if choice is None or (isinstance(choice, str) and choice.strip().lower() == "auto"):
        compiled = set(available_providers())
        wanted = [p for p in AUTO_ORDER if p in compiled]
    else:
        names = [choice] if isinstance(choice, str) else list(choice)
        wanted = [normalize_provider(n) for n in names]
        wanted = [p for p in wanted if p not in ("auto", CPU)]
    return [*wanted, CPU]


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def tile_lanes(threads: int | None, requested: Sequence[str]) -> tuple[int, int | None]:
    """(tile batches in flight, intra-op threads per session) for a run.

    On CPU, two tiles at once with half the threads each beat one tile with all
    of them: instance norm, activations and ConvTranspose's col2im run on one
    thread in onnxruntime, and the second tile fills the idle cores (measured on
    2 cores, MONAI U-Net, 96³ tiles: 153 → 119 ms per tile). GPU providers run
    one tile at a time.
    """
    if list(requested) != [CPU]:
        return 1, threads
    total = threads if threads is not None else cpu_count()
    if total < 2:
        return 1, threads
    return 2, total // 2


@dataclass
class SessionInfo:
    """What was asked for and what onnxruntime really uses."""

    requested: list[str]
    active: str
    notices: list[str] = field(default_factory=list)
    threads: int | None = None


def _options(threads: int | None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # The CPU memory arena stays on even for networks run once on a whole grid: turning it
    # off lowered brainchop model5_gw_ae's peak by 224 MB for 19 % more time, but mindgrab's
    # by only 95 MB for 69 % more time (115 → 194 s), measured 2026-12-05.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if threads is not None:
        if threads < 1:
            raise InferenceError(f"thread count must be >= 1, got {threads}")
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def create_session(
    model: bytes,
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    *,
    label: str = "model",
) -> tuple[ort.InferenceSession, SessionInfo]:
    """A session for ``model`` on the best working provider; CPU fallback with a notice."""
    requested = wanted_providers(providers)
    notices: list[str] = []
    try:
        with warnings.catch_warnings():
            # "Specified provider ... is not in available provider names": reported below.
            warnings.simplefilter("ignore", UserWarning)
            session = ort.InferenceSession(model, sess_options=_options(threads),
                                           providers=requested)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        text = str(exc)
        if _is_model_error(text):
            raise ModelPackError(
                f"{label} could not be loaded by onnxruntime {ort.__version__}: "
                f"{_short(text)}; the ONNX file is corrupt or uses an unsupported operator"
            ) from exc
        if requested == [CPU]:
            raise InferenceError(f"onnxruntime could not start {label}: {_short(text)}") from exc
        notices.append(
            f"{_pretty(requested[0])} failed to start ({_short(text)}); running on CPU instead"
        )
        try:
            session = ort.InferenceSession(model, sess_options=_options(threads),
                                           providers=[CPU])
        except Exception as exc2:
            raise ModelPackError(
                f"{label} could not be loaded by onnxruntime: {_short(str(exc2))}"
            ) from exc2
        requested = [CPU]
    active = session.get_providers()[0]
    if active != requested[0]:
        notices.append(
            f"{_pretty(requested[0])} is not usable on this machine; running on {_pretty(active)}"
        )
    for notice in notices:
        log.warning("%s", notice)
    return session, SessionInfo(requested=requested, active=active, notices=notices,
                                threads=threads)


def _is_model_error(text: str) -> bool:
    low = text.lower()
    return any(s in low for s in ("protobuf", "invalid_graph", "invalid_protobuf", "parse",
                                  "model_path", "no_suchfile", "load model", "not_implemented",
                                  "invalid model", "could not find an implementation"))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _pretty(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider")


def check_io(session: ort.InferenceSession, label: str, out_channels: int,
             input_name: str | None, output_name: str | None, *,
             boxes: bool = False) -> tuple[str, str]:
    """Input/output names, after checking the input is 5-D ``[N, C, a0, a1, a2]`` and the
    output too, or with ``boxes`` ``[N, K]`` / ``[1, N, K]`` with K = ``out_channels``."""
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    inp = _pick(inputs, input_name, label, "input")
    out = _pick(outputs, output_name, label, "output")
    if len(inp.shape) != 5:
        raise ModelPackError(
            f"{label}: input {inp.name!r} has rank {len(inp.shape)} (shape {inp.shape}); "
            "Lucida feeds 5-D tensors [batch, channel, a0, a1, a2]"
        )
    if boxes:
        cols = out.shape[-1] if out.shape else None
        if len(out.shape) not in (2, 3) or (isinstance(cols, int) and cols != out_channels):
            raise ModelPackError(
                f"{label}: output {out.name!r} has shape {out.shape}; a detector returns "
                f"boxes [N, {out_channels}] or [1, N, {out_channels}] (output.channels "
                "columns)"
            )
        return str(inp.name), str(out.name)
    if len(out.shape) != 5:
        raise ModelPackError(
            f"{label}: output {out.name!r} has rank {len(out.shape)} (shape {out.shape}); "
            "Lucida expects 5-D tensors [batch, channel, a0, a1, a2]"
        )
    ch = out.shape[1]
    if isinstance(ch, int) and ch != out_channels:
        raise ModelPackError(
            f"{label}: output has {ch} channels but manifest output.channels says {out_channels}"
        )
    return str(inp.name), str(out.name)


def _pick(items: Sequence[Any], name: str | None, label: str, what: str) -> Any:
    if name is None:
        return items[0]
    for item in items:
        if item.name == name:
            return item
    names = ", ".join(i.name for i in items)
    raise ModelPackError(f"{label}: no {what} tensor named {name!r} (it has {names})")


def input_is_static(session: ort.InferenceSession) -> tuple[int | None, tuple[int, ...] | None]:
    """(static batch size or None, static spatial shape or None) of the first input."""
    shape = session.get_inputs()[0].shape
    batch = shape[0] if isinstance(shape[0], int) else None
    spatial = tuple(shape[2:])
    static = spatial if all(isinstance(s, int) for s in spatial) else None
    return batch, static


def run_session(session: ort.InferenceSession, input_name: str, output_name: str,
                batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out = session.run([output_name], {input_name: batch})[0]
    return np.asarray(out, dtype=np.float32)


def probe_provider(providers: str | Sequence[str] | None = None) -> SessionInfo:
    """Which provider a session would really use, found by starting a tiny model."""
    return create_session(_tiny_model(), providers, 1, label="probe model")[1]


def _tiny_model() -> bytes:
    """A 1-node Identity graph built from raw protobuf bytes (no onnx package needed)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def fld(num: int, wire: int, payload: bytes | int) -> bytes:
        key = varint((num << 3) | wire)
        if wire == 0:
            assert isinstance(payload, int)
            return key + varint(payload)
        assert isinstance(payload, bytes)
        return key + varint(len(payload)) + payload

    dim = fld(1, 0, 1)  # dim_value 1
    shape = fld(1, 2, dim)
    tensor_type = fld(1, 0, 1) + fld(2, 2, shape)  # elem_type FLOAT, shape
    type_proto = fld(1, 2, tensor_type)
    value_x = fld(1, 2, b"x") + fld(2, 2, type_proto)
    value_y = fld(1, 2, b"y") + fld(2, 2, type_proto)
    node = fld(1, 2, b"x") + fld(2, 2, b"y") + fld(4, 2, b"Identity")
    graph = fld(1, 2, node) + fld(2, 2, b"probe") + fld(11, 2, value_x) + fld(12, 2, value_y)
    opset = fld(2, 0, 13)
    return fld(1, 0, 8) + fld(7, 2, graph) + fld(8, 2, opset)
