"""brainchop MeshNet model folders -> Lucida model packs (manifest.json, ONNX, MODEL_CARD.md).

Everything the brainchop runtimes do around the network is expressed in the manifest's fixed
vocabulary, so a pack carries no code:

* conform: the model grid is 256^3, 1 mm, LIA, centred on the source volume, tensor order
  ``ijk`` (input[0, 0, i, j, k] = conformed voxel (i, j, k), as both brainchop runtimes feed
  it); intensities are resampled linearly, outside the source field of view = 0 as after
  ``niimath -conform``. The uint8 intensity rescale of ``-conform`` is not reproduced: the
  quantile normalisation below is invariant to it up to the uint8 rounding.
* normalisation: brainchop 0.2.5's qnormalize (numpy linear q02/q98 over every voxel,
  ``(x - q02) / (q98 - q02 + 1e-3)``, clipped to [0, 1]), the one the references prove.
* output: the graph ends in ArgMax (output kind ``label_index``); then, as brainchop's CLI
  (``niimath -bwlabel 26``) and web app do, only the largest 26-connected cluster of all
  non-zero labels together is kept (``keep_largest_component`` with ``joint``). Labels come
  back onto the source series' grid by nearest neighbour (the pipeline's inverse of the
  model grid).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.atomic import write_bytes, write_text
from core.errors import ModelPackError
from inference.importers.brainchop import MeshNetModel, MeshNetNormalization, convert_meshnet
from inference.manifest import parse_manifest

__all__ = ["PACK_VERSION", "build_pack", "manifest_for", "model_folders", "pack_id",
           "with_argmax"]

PACK_VERSION = "1.0.0"
CITATION = ("Masoud M, Hu F, Plis S. Brainchop: In-browser MRI volumetric segmentation and "
            "rendering. Journal of Open Source Software. 2023;8(83):5098. "
            "doi:10.21105/joss.05098")
AUTHORS = ["Mohamed Masoud", "Farfalla Hu", "Sergey Plis (neuroneural/brainchop)"]
RESEARCH_NOTICE = ("Research use only. Not a medical device; results must not be used for "
                   "diagnosis or treatment decisions.")


@dataclass(frozen=True)
class _Describe:
    title: str
    task: str


_DESCRIPTIONS: dict[str, _Describe] = {
    "mindgrab": _Describe("skull strip (brain mask)",
                          "a binary brain mask (skull stripping)"),
    "model5_gw_ae": _Describe("tissue: grey/white matter (light)",
                              "grey and white matter segmentation"),
    "model11_gw_ae": _Describe("tissue: grey/white matter", "grey and white matter segmentation"),
    "model20chan3cls": _Describe("tissue: grey/white matter (high accuracy)",
                                 "grey and white matter segmentation"),
    "model18cls": _Describe("subcortical + GWM (faster)",
                            "17 FreeSurfer aseg structures (subcortical, grey/white matter)"),
    "model30chan18cls": _Describe("subcortical + GWM",
                                  "17 FreeSurfer aseg structures (subcortical, grey/white "
                                  "matter)"),
    "model30chan50cls": _Describe("aparc+aseg 50", "a 49-region aparc+aseg parcellation"),
    "model21_104class": _Describe("aparc+aseg 104 (cortical parcellation)",
                                  "a 103-region Desikan-Killiany aparc+aseg parcellation"),
}

# Measured on this project's build machine with `lucida infer --threads 2` (2 CPU cores shared
# with other work, 23 GB, onnxruntime CPU): wall seconds of the whole command and its peak RSS
# (GB), on the input named. The network always runs on the whole 256^3 grid, so the input's
# own size hardly matters.
MEASURED: dict[str, tuple[float, float, str]] = {
    "model5_gw_ae": (10.4, 1.3, "a 176x256x256 MPRAGE DICOM series"),
    "model11_gw_ae": (21.8, 2.2, "a 176x256x256 MPRAGE DICOM series"),
    "model20chan3cls": (61.5, 3.5, "a 176x256x256 MPRAGE DICOM series"),
    "model18cls": (66.1, 3.3, "a 176x256x256 MPRAGE DICOM series"),
    "model30chan50cls": (117.6, 8.0, "a 176x256x256 MPRAGE DICOM series"),
    "mindgrab": (124.6, 3.4, "a 176x256x256 MPRAGE DICOM series"),
    "model21_104class": (117.3, 10.5, "a 176x256x256 MPRAGE DICOM series"),
    "model30chan18cls": (127.4, 4.4, "a 176x256x256 MPRAGE DICOM series"),
}
MEASURED_ON = "2026-12-05, 2 CPU cores (x86-64), onnxruntime CPU, 2 threads"


def pack_id(model_name: str) -> str:
    return f"brainchop-{model_name.lower()}"


def model_folders(src_dir: Path | str, model: str | None = None) -> list[Path]:
    """The MeshNet model folders under ``src_dir`` (those with a model.json), or the named one.

    ``src_dir`` may itself be one model folder.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise ModelPackError(f"{src} is not a folder of brainchop models")
    if (src / "model.json").is_file():
        folders = [src]
    else:
        folders = sorted(p for p in src.iterdir() if (p / "model.json").is_file())
    if model is not None:
        folders = [p for p in folders if p.name == model]
        if not folders:
            raise ModelPackError(f"{src} holds no brainchop model {model!r} (a folder with a "
                                 "model.json)")
    if not folders:
        raise ModelPackError(f"{src} holds no brainchop model folders (none has a model.json)")
    return folders


def _normalization(norm: MeshNetNormalization) -> dict[str, Any]:
    if norm.kind != "quantile" or norm.method != "linear":
        raise ModelPackError(f"normalisation {norm.source!r} has no manifest equivalent")
    return {"kind": "percentiles", "lower": norm.lower * 100.0, "upper": norm.upper * 100.0,
            "out_min": 0.0, "out_max": 1.0, "clip": norm.clip, "epsilon": norm.epsilon,
            "statistics": "all"}


def bytes_per_voxel(model: MeshNetModel) -> float:
    """Peak onnxruntime memory per grid voxel: a hidden layer's input and output maps and the
    logits before the ArgMax (float32), plus 64 B for the arena and the pipeline's arrays.
    Checked against the measured peaks (MEASURED): 192 vs 200 B for mindgrab, 648 vs 626 B
    for model21_104class (whose 104 logit channels dominate), 376 vs 265 B for
    model30chan18cls."""
    import onnx

    graph = onnx.load_from_string(model.onnx_bytes).graph
    widths = [int(t.dims[0]) for t in graph.initializer if len(t.dims) == 5]
    hidden = max((w for w in widths if w != model.n_classes), default=model.n_classes)
    return 4.0 * (2 * hidden + model.n_classes) + 64.0


def manifest_for(model: MeshNetModel, onnx_name: str, sha256: str) -> dict[str, Any]:
    """The pack manifest (pure data) of a converted MeshNet model."""
    desc = _DESCRIPTIONS.get(model.model_name,
                             _Describe(model.model_name, "a brainchop MeshNet segmentation"))
    labels = [{"value": lab.value, "name": lab.name, "color": list(lab.rgb)}
              for lab in model.labels if lab.value != 0]
    post: list[dict[str, Any]] = [{"step": "keep_largest_component", "joint": True}]
    return {
        "schema_version": 1,
        "id": pack_id(model.model_name),
        "name": f"brainchop MeshNet {desc.title} ({model.model_name})",
        "version": PACK_VERSION,
        "authors": AUTHORS,
        "license": "MIT",
        "citation": CITATION,
        "intended_use": (f"Research: {desc.task} of an adult brain from a T1-weighted 3-D MR "
                         "series with a whole-head field of view."),
        "limitations": ("Trained on adult T1-weighted MR; other contrasts, children, lesions, "
                        "surgery or motion may fail silently. Conformed to 256 mm at 1 mm: "
                        "anything beyond a 256 mm cube around the volume centre is not seen."),
        "research_use_notice": RESEARCH_NOTICE,
        "model_card": "MODEL_CARD.md",
        "modality": ["MR"],
        "min_slices": 32,
        # T1-weighted 3-D sequences by their usual names (Siemens MPRAGE / tfl, GE SPGR /
        # BRAVO, Philips TFE); a series naming none of them is offered with a warning.
        "sequence_hints": ["T1", "MPRAGE", "MP-RAGE", "MP2RAGE", "SPGR", "FSPGR", "BRAVO", "TFE",
                           "TFL"],
        "input": {
            "orientation": "LIA", "axis_order": "ijk", "spacing_mm": [1.0, 1.0, 1.0],
            "shape": [256, 256, 256], "normalization": _normalization(model.normalization),
            "pad_value": 0.0, "interpolation": "linear",
        },
        "tiling": {"mode": "whole"},
        # labels[].value is the class index, so no "channel" is needed.
        "output": {"kind": "label_index", "tensor_name": LABEL_OUTPUT, "activation": "none",
                   "channels": 1, "labels": labels, "heatmap_channel": "none"},
        "postprocessing": post,
        "files": [{"path": onnx_name, "sha256": sha256}],
        "memory": {"bytes_per_patch_voxel": bytes_per_voxel(model)},
    }


LABEL_OUTPUT = "class_index"


def with_argmax(onnx_bytes: bytes) -> bytes:
    """The MeshNet graph with ArgMax over the classes (first maximum wins, as numpy's) and a
    cast to float appended: output ``class_index`` [1, 1, i, j, k]. The pack then never holds
    the [classes, 256^3] logits (7 GB for model21_104class)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    (logits,) = graph.output
    graph.node.extend([
        helper.make_node("ArgMax", [logits.name], ["class_index_i64"], name="argmax", axis=1,
                         keepdims=1, select_last_index=0),
        helper.make_node("Cast", ["class_index_i64"], [LABEL_OUTPUT], name="to_float",
                         to=TensorProto.FLOAT),
    ])
    dims = [d.dim_param or d.dim_value for d in logits.type.tensor_type.shape.dim]
    graph.output.pop()
    graph.output.append(helper.make_tensor_value_info(
        LABEL_OUTPUT, TensorProto.FLOAT, [dims[0], 1, *dims[2:]]))
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


# Checked (2026-12-05) against the authors' repositories and PubMed Central.
ECOSYSTEM_CITATION = ("Plis SM, Masoud M, Hu F, Hanayik T, Ghosh SS, Drake C, Newman-Norlund R, "
                      "Rorden C. Brainchop: Providing an Edge Ecosystem for Deployment of "
                      "Neuroimaging Artificial Intelligence Models. Aperture Neuro. 2024;4. "
                      "doi:10.52294/001c.123059")
MINDGRAB_CITATION = ("Fani A, Doan M, Le I, Fedorov A, Hoffmann M, Rorden C, Plis S. MindGrab "
                     "for BrainChop: Fast and Accurate Skull Stripping for Command Line and "
                     "Browser. arXiv:2506.11860 (2025)")


def _extra_citation(name: str) -> str:
    extra = [ECOSYSTEM_CITATION] + ([MINDGRAB_CITATION] if name == "mindgrab" else [])
    return "".join(f" Also: {c}." for c in extra)


def _measured(name: str) -> str:
    if name not in MEASURED:
        return ("Not measured for this model. The network always runs on the whole 256^3 "
                "grid, so cost grows with its channel count: about 5 s for model5_gw_ae and "
                "75 s / 5.6 GB for model30chan18cls on 2 CPU threads.")
    secs, gb, what = MEASURED[name]
    return (f"{secs:.0f} s wall and {gb:.1f} GB peak resident memory for one run of `lucida "
            f"infer` on {what} ({MEASURED_ON}).")


def model_card(model: MeshNetModel, manifest: dict[str, Any]) -> str:
    desc = _DESCRIPTIONS.get(model.model_name,
                             _Describe(model.model_name, "a brainchop MeshNet segmentation"))
    notes = "".join(f"- {n}\n" for n in model.notes)
    labels = ", ".join(f"{lab['value']} {lab['name']}" for lab in manifest["output"]["labels"])
    return f"""# {manifest['name']}

**What it does.** {desc.task[0].upper()}{desc.task[1:]} from a T1-weighted brain MR series:
brainchop's MeshNet `{model.model_name}` (a fully convolutional network of dilated 3x3x3
convolutions, {model.n_classes} output classes), converted by Lucida from the authors' TF.js
model (model.json + weights) to ONNX. Labels ({model.labels_source}): {labels}.

**Citation.** {CITATION}{_extra_citation(model.model_name)}

**Licence.** MIT (Copyright (c) 2021 neuroneural/brainchop). Authors: {', '.join(AUTHORS)}.

**Intended use and population.** Research use on adults' T1-weighted 3-D MR of the head
(MPRAGE / SPGR-like), as in the brainchop web app and CLI. {RESEARCH_NOTICE}

**Input requirements.** MR, T1-weighted, 3-D acquisition with a whole-head field of view
(the network was trained on FreeSurfer-conformed whole-head volumes). Lucida conforms the
series to 256^3, 1 mm, LIA centred on the volume (linear resampling), normalises as
brainchop 0.2.5 does ({model.normalization.source}), runs the network on the whole grid and
brings the labels back onto the series' own grid (nearest neighbour).

**Known limits and biases.**
- Training data are adult research T1 scans (FreeSurfer-derived labels); performance on
  children, older or diseased brains, lesions, post-surgical anatomy, other contrasts, other
  field strengths or strong bias fields is unknown and may fail silently.
- brainchop's own post-processing is applied: only the largest 26-connected cluster of all
  non-zero labels together is kept, so a label island detached from the brain is dropped
  (as in the authors' CLI and web app).
- The uint8 intensity conform of `niimath -conform` is not reproduced (the quantile
  normalisation makes it matter only through rounding); the web app's own normalisation and
  cropping differ from the CLI's, which this pack follows.
{notes}
**Runtime and memory measured here.** {_measured(model.model_name)}
"""


def build_pack(src_dir: Path | str, out_dir: Path | str, *,
               model: str | None = None) -> list[Path]:
    """Write one pack folder per MeshNet model (or the named one) under ``out_dir``.

    Returns the pack folders (``out_dir/<pack id>``); each holds manifest.json, the ONNX file
    (its sha256 in the manifest) and MODEL_CARD.md.
    """
    out = Path(out_dir)
    packs: list[Path] = []
    for folder in model_folders(src_dir, model):
        converted = convert_meshnet(folder)
        onnx_name = f"{converted.model_name}.onnx"
        onnx_bytes = with_argmax(converted.onnx_bytes)
        sha = hashlib.sha256(onnx_bytes).hexdigest()
        manifest = manifest_for(converted, onnx_name, sha)
        parse_manifest(manifest, f"{folder.name}: manifest.json")  # refuse before writing
        target = out / manifest["id"]
        target.mkdir(parents=True, exist_ok=True)
        write_bytes(target / onnx_name, onnx_bytes)
        write_text(target / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        write_text(target / "MODEL_CARD.md", model_card(converted, manifest))
        packs.append(target)
    return packs
