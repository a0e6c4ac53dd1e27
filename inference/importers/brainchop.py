"""brainchop MeshNet (TF.js layers model) -> ONNX, labels and normalisation, as data.

Axis order: the ONNX graph takes ``input[0, 0, i, j, k]`` = voxel ``(i, j, k)`` of the
conformed NIfTI (256^3, 1 mm, LIA), i.e. the order of ``nibabel.load(f).dataobj`` ("ijk",
called xyz here). Both brainchop runtimes feed the network that order (README: web app
transposes its [k,j,i] slice stack, brainchop-cli permutes (2,1,0)). A numpy/SimpleITK array
in (k, j, i) ("zyx") order must be transposed first; ``run_onnx(..., order="zyx")`` does it.
The spatial dims of the graph are dynamic, so any crop runs (MeshNet has no pooling).

Usage::

    model = convert_meshnet(Path(".../model30chan18cls"))
    x = normalize_volume(nib.load(conformed).get_fdata(), model.normalization)
    labels_ijk = run_onnx(model, x)  # uint8, same order as x
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from inference.importers.brainchop_labels import Label, read_labels
from inference.importers.brainchop_onnx import INPUT_NAME, OUTPUT_NAME, build_onnx
from inference.importers.brainchop_topology import (
    ActivationSpec,
    MeshNetImportError,
    Topology,
    parse_topology,
)
from inference.importers.brainchop_weights import conv_weights, read_weights

__all__ = [
    "CLI_QNORMALIZE",
    "WEB_APP_NORM",
    "Label",
    "MeshNetImportError",
    "MeshNetModel",
    "MeshNetNormalization",
    "convert_meshnet",
    "normalize_volume",
    "predict_logits",
    "run_onnx",
]


@dataclass(frozen=True)
class MeshNetNormalization:
    """Intensity scaling applied to the conformed uint8 volume before the network.

    ``quantile``: ``x = (x - q(lower)) / (q(upper) - q(lower) + epsilon)``, then clipped to
    [0, 1] if ``clip``; ``minmax``: ``(x - min) / (max - min)``. Quantiles are fractions.
    ``method``: ``linear`` = numpy.quantile's default; ``sorted-index`` = the web app's
    calculateQuantiles: ``sorted[floor(n * lower)]`` and ``sorted[ceil(n * upper) - 1]``.
    """

    kind: Literal["quantile", "minmax"]
    lower: float = 0.0
    upper: float = 1.0
    epsilon: float = 0.0
    clip: bool = False
    method: Literal["linear", "sorted-index"] = "linear"
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lower": self.lower, "upper": self.upper,
                "epsilon": self.epsilon, "clip": self.clip, "method": self.method,
                "source": self.source}


# brainchop 0.2.5 (the authors' Python CLI) uses this for EVERY MeshNet model; the staged
# reference labels were made with it, so it is the normalisation the conversion is proven on.
CLI_QNORMALIZE = MeshNetNormalization(
    "quantile", 0.02, 0.98, 1e-3, True, "linear",
    "brainchop 0.2.5 qnormalize: numpy.quantile (linear) q02/q98, +1e-3, clip [0,1]")
_WEB_MINMAX = MeshNetNormalization("minmax", source="brainchop web app: min-max over the volume")
_WEB_QUANTILE = MeshNetNormalization(
    "quantile", 0.05, 0.95, 0.0, False, "sorted-index",
    "brainchop web app quantileNormalizeVolumeData(0.05, 0.95): sorted-array quantiles, "
    "no clip")
# The web app's (brainchop-parameters.js) choice for each model's main entry; model11_gw_ae
# uses min-max for "Extract the Brain" (entry 11) but quantile for "Brain Mask" (entry 13).
WEB_APP_NORM: dict[str, MeshNetNormalization] = {
    "model5_gw_ae": _WEB_MINMAX, "model11_gw_ae": _WEB_MINMAX,
    "model20chan3cls": _WEB_QUANTILE, "model18cls": _WEB_MINMAX,
    "model30chan18cls": _WEB_MINMAX, "model30chan50cls": _WEB_QUANTILE,
    "model21_104class": _WEB_MINMAX, "mindgrab": _WEB_MINMAX,
}


@dataclass(frozen=True)
class MeshNetModel:
    model_name: str
    onnx_bytes: bytes
    labels: tuple[Label, ...]
    labels_source: str  # which file the labels came from
    normalization: MeshNetNormalization  # proven against the authors' reference (CLI)
    web_app_normalization: MeshNetNormalization | None  # what brainchop's web app uses
    input_shape: tuple[int, int, int]  # spatial shape it was trained on (graph is dynamic)
    n_classes: int
    receptive_radius: int  # voxels: sum of dilation * (k - 1) / 2 over the convs
    activation: str
    notes: tuple[str, ...] = field(default=())

    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise MeshNetImportError(f"{path.parent.name}: model.json is missing ({path})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise MeshNetImportError(f"{path}: not valid JSON ({exc})") from exc


def _notes(topology: Topology) -> tuple[str, ...]:
    notes = []
    if any(c.instance_norm for c in topology.convs):
        notes.append("layers named *_gn get per-channel instance normalisation (eps 1e-5, no "
                      "affine) as brainchop's web app applies; its statistics depend on the "
                      "field of view, so cropping changes results more than zero padding does")
    if any(isinstance(a, ActivationSpec) and a.activation == "gelu" for a in topology.layers):
        notes.append("gelu is the exact erf form (TF.js/Keras); brainchop 0.2.5 (tinygrad) "
                     "uses the tanh approximation")
    return tuple(notes)


def convert_meshnet(model_dir: Path | str) -> MeshNetModel:
    """Convert one brainchop model folder (model.json + weight shards + colormap)."""
    folder = Path(model_dir)
    doc = _read_json(folder / "model.json")
    topology = parse_topology(doc, folder.name)
    weights = conv_weights(topology, read_weights(doc, folder))
    labels, source = read_labels(folder, topology.n_classes)
    activations = sorted({a.activation for a in topology.layers
                          if isinstance(a, ActivationSpec) and a.activation != "linear"})
    return MeshNetModel(
        model_name=folder.name,
        onnx_bytes=build_onnx(topology, weights),
        labels=tuple(labels),
        labels_source=source,
        normalization=CLI_QNORMALIZE,
        web_app_normalization=WEB_APP_NORM.get(folder.name),
        input_shape=topology.input_shape,
        n_classes=topology.n_classes,
        receptive_radius=sum(c.dilation * (c.kernel - 1) // 2 for c in topology.convs),
        activation="+".join(activations) or "linear",
        notes=_notes(topology),
    )


def normalize_volume(volume: npt.ArrayLike, norm: MeshNetNormalization
                     ) -> npt.NDArray[np.float32]:
    """A new float32 array scaled as ``norm`` says (statistics over the whole array)."""
    x = np.asarray(volume, dtype=np.float64)
    if norm.kind == "minmax":
        lo, hi = float(x.min()), float(x.max())
    elif norm.method == "linear":
        lo, hi = (float(q) for q in np.quantile(x, [norm.lower, norm.upper]))
    else:
        n = x.size
        k_lo, k_hi = math.floor(n * norm.lower), max(0, math.ceil(n * norm.upper) - 1)
        lo, hi = (float(q) for q in np.partition(x.reshape(-1), [k_lo, k_hi])[[k_lo, k_hi]])
    span = hi - lo + norm.epsilon
    out = (x - lo) / span if span > 0 else np.zeros_like(x)
    if norm.clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32)


def predict_logits(model: MeshNetModel, volume: npt.ArrayLike, *,
                   order: Literal["xyz", "zyx"] = "xyz", threads: int = 2
                   ) -> npt.NDArray[np.float32]:
    """Logits ``[n_classes, *volume.shape]`` of an already normalised volume (CPU).

    ``xyz``: the array is in NIfTI voxel order (i, j, k), as ``nibabel`` returns it and as
    the graph takes it. ``zyx``: (k, j, i) order (SimpleITK/DICOM stacks); transposed in
    and back out.
    """
    from inference.runtime import create_session, run_session

    x = np.asarray(volume, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {x.shape}")
    if order == "zyx":
        x = x.transpose(2, 1, 0)
    session, _ = create_session(model.onnx_bytes, ["CPUExecutionProvider"], threads,
                                label=model.model_name)
    logits: npt.NDArray[np.float32] = run_session(
        session, model.input_name, model.output_name, np.ascontiguousarray(x)[None, None])[0]
    return logits.transpose(0, 3, 2, 1) if order == "zyx" else logits


def run_onnx(model: MeshNetModel, volume: npt.ArrayLike, *,
             order: Literal["xyz", "zyx"] = "xyz", threads: int = 2) -> npt.NDArray[np.uint8]:
    """Argmax labels (uint8) of an already normalised volume, in the volume's own order
    (see ``predict_logits``); brainchop's cluster filter is not applied."""
    logits = predict_logits(model, volume, order=order, threads=threads)
    labels: npt.NDArray[np.uint8] = np.argmax(logits, axis=0).astype(np.uint8)
    return np.ascontiguousarray(labels)
