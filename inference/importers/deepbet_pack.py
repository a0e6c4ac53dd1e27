"""deepbet 1.0.2 (Fisch et al.) as a two-stage Lucida pack: ``lucida models import deepbet``.

The source folder is what ``packaging/deepbet/export_onnx.py`` writes from the authors' wheel
(torch is needed for that export only): ``deepbet_bbox.onnx`` and ``deepbet_brain.onnx``
(or their ``*_fp16w.onnx`` variants, weights stored as float16) and ``EXPORT.json``. deepbet's own
pipeline (``BrainExtraction.run``) in the manifest's vocabulary:

* **Space**: ``nib.as_closest_canonical`` → ``grid: "closest"`` to ``RAS``, ``axis_order``
  ``ijk``, native spacing (the voxels are never resampled).
* **Stage 1** (``localizer``): the volume resized to 128³ (nearest-exact), normalised with
  the 0.5 / 99.5 percentiles of that small image (linear, every voxel), clamped to [0, 1],
  z-scored with the sample standard deviation and mapped by ``0.226 x + 0.449``; the bbox
  network's brain probability > 0.5, largest 26-connected region; the box is the planes
  with more than 2 % brain, scaled to the full grid, 10 % margin on each side.
* **Stage 2**: the box resized to 256³ (nearest-exact), normalised with the SAME
  percentiles (``statistics: "localizer"``) and its own mean / std, the brain network's
  softmax (taken off the graph's end and applied by the pipeline: faster, same math)
  resized back into the box; outside the box: background.
* **Post-processing**: probability ≥ 0.5, largest component, holes filled (deepbet:
  ``> 0.5``, cc3d largest, ``fill_voids.fill``); the brain is one finding with its volume.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.atomic import write_bytes, write_text
from core.errors import ModelPackError
from inference.manifest import parse_manifest

__all__ = ["PACK_ID", "PACK_VERSION", "VARIANTS", "build_pack", "manifest_for"]

PACK_ID = "deepbet"
PACK_VERSION = "1.0.2"  # deepbet's own version: the weights are the authors' unchanged
# --model NAME → (file suffix, pack id); float16 storage halves the size for bundling.
VARIANTS: dict[str, tuple[str, str]] = {
    "deepbet": ("", PACK_ID),
    "deepbet-fp16w": ("_fp16w", f"{PACK_ID}-fp16w"),
}
# Checked against arXiv 2308.07003 and the University of Münster's publication record; the
# journal version's volume and pages could not be checked here, so they are not given.
CITATION = ("Fisch L, Zumdick S, Barkhau C, Emden D, Ernsting J, Leenings R, Sarink K, "
            "Winter NR, Risse B, Dannlowski U, Hahn T. deepbet: Fast brain extraction of "
            "T1-weighted MRI using Convolutional Neural Networks. arXiv:2308.07003 (2023), "
            "peer-reviewed journal version 2024")
AUTHORS = ["L. Fisch", "S. Zumdick", "C. Barkhau", "T. Hahn",
           "Medical Machine Learning Lab, University of Münster"]
T1_HINTS = ["T1", "MPRAGE", "MP-RAGE", "MP_RAGE", "SPGR", "FSPGR", "BRAVO", "TFE", "TFL",
            "FFE", "VIBE"]
_NET_INPUT, _NET_OUTPUT, _LOGITS = "input", "probabilities", "logits"


def without_final_softmax(onnx_bytes: bytes, label: str) -> bytes:
    """The brain network with its last node, ``Softmax(axis=1)`` on the output, removed: the
    pipeline applies the same softmax in float32 slabs on all threads. onnxruntime's CPU
    Softmax over the channel axis of a [1, 2, 256³] tensor took 1.3 s of the network's
    3.1 s (it transposes the whole tensor); the slabs take ~0.2 s."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    last = graph.node[-1] if graph.node else None
    axis = next((a.i for a in last.attribute if a.name == "axis"), None) if last else None
    if (last is None or last.op_type != "Softmax" or axis != 1 or len(graph.output) != 1
            or graph.output[0].name != last.output[0]):
        raise ModelPackError(f"{label}: the network does not end in Softmax over the channels "
                             "(axis 1) feeding its only output; not deepbet's export")
    logits_in = last.input[0]
    dims = [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    graph.node.remove(last)
    for node in graph.node:  # the logits get the output's own name in the pack
        node.output[:] = [_LOGITS if o == logits_in else o for o in node.output]
        node.input[:] = [_LOGITS if i == logits_in else i for i in node.input]
    graph.output.pop()
    graph.output.append(helper.make_tensor_value_info(_LOGITS, onnx.TensorProto.FLOAT, dims))
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _deepbet_normalization(statistics: str) -> dict[str, Any]:
    """deepbet/utils.py ``normalize(x, low, high)`` as a chain."""
    return {"kind": "chain", "steps": [
        {"kind": "percentiles", "lower": 0.5, "upper": 99.5, "out_min": 0.0, "out_max": 1.0,
         "clip": True, "statistics": statistics},
        {"kind": "zscore", "ddof": 1, "statistics": "all"},
        {"kind": "affine", "scale": 0.226, "offset": 0.449},
    ]}


def manifest_for(pack_id: str, files: dict[str, str], bbox_name: str, name_suffix: str = ""
                 ) -> dict[str, Any]:
    """The manifest (pure data); ``files`` = {onnx name: sha256}, the brain network first."""
    return {
        "schema_version": 1,
        "id": pack_id,
        "name": f"deepbet brain extraction{name_suffix}",
        "version": PACK_VERSION,
        "authors": AUTHORS,
        "license": "MIT",
        "citation": CITATION,
        "intended_use": ("Research: brain extraction (skull strip) of a T1-weighted 3-D MR "
                         "series of the whole head, as a brain mask and its volume."),
        "limitations": ("Trained on T1-weighted MR of adults (and the authors' mixed cohorts); "
                        "other contrasts, children, large lesions or a partial field of view "
                        "may fail. Not a diagnostic device."),
        "research_use_notice": "Research use only; not for diagnosis. Check the mask.",
        "model_card": "MODEL_CARD.md",
        "modality": ["MR"],
        "body_part": ["HEAD", "BRAIN"],
        "min_slices": 32,
        "sequence_hints": T1_HINTS,
        "input": {
            "orientation": "RAS", "axis_order": "ijk", "spacing_mm": "native",
            "grid": "closest", "normalization": _deepbet_normalization("localizer"),
            "tensor_name": _NET_INPUT,
        },
        "tiling": {"mode": "whole"},
        "output": {
            # deepbet's forward ends in softmax; the pack's graph stops at the logits and
            # the pipeline applies it (see without_final_softmax).
            "kind": "segmentation_logits", "activation": "softmax", "channels": 2,
            "tensor_name": _LOGITS,
            "labels": [{"value": 1, "name": "brain", "color": [255, 214, 10],
                        "code": {"scheme": "SCT", "value": "12738006", "meaning": "Brain"}}],
            "heatmap_channel": 1, "heatmap_name": "brain probability", "threshold": 0.5,
            "min_finding_mm3": 1000.0,
        },
        "postprocessing": [
            {"step": "threshold"},
            {"step": "keep_largest_component"},
            {"step": "fill_holes"},
            {"step": "connected_components", "labels": [1], "max_findings": 1},
        ],
        "files": [{"path": n, "sha256": h} for n, h in files.items()],
        "localizer": {
            "file": bbox_name, "shape": [128, 128, 128], "tensor_name": _NET_OUTPUT,
            "normalization": _deepbet_normalization("all"),
            "channels": 2, "channel": 1, "threshold": 0.5, "keep_largest_component": True,
            "profile_fraction": 0.02, "margin": 0.1, "crop_shape": [256, 256, 256],
        },
    }


def _read_export(src: Path) -> dict[str, Any]:
    path = src / "EXPORT.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelPackError(f"{path}: cannot read the export record ({exc}); make it with "
                             "packaging/deepbet/export_onnx.py") from exc
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        raise ModelPackError(f"{path}: no 'files' table; not written by export_onnx.py")
    return record


def build_pack(src_dir: Path | str, out_dir: Path | str, *,
               model: str | None = None) -> list[Path]:
    """Write the deepbet pack(s) under ``out_dir`` from the exported ONNX files.

    ``model``: ``deepbet`` (float32 weights) or ``deepbet-fp16w``; None builds every variant
    whose files are present. Each file is checked against the sha256 in ``EXPORT.json``.
    """
    src = Path(src_dir)
    record = _read_export(src)
    if model is not None and model not in VARIANTS:
        raise ModelPackError(f"deepbet has no model {model!r}; choose one of "
                             f"{', '.join(VARIANTS)}")
    wanted = [model] if model else [v for v, (suffix, _) in VARIANTS.items()
                                    if (src / f"deepbet_brain{suffix}.onnx").is_file()]
    if not wanted:
        raise ModelPackError(f"{src}: no deepbet_brain.onnx or deepbet_brain_fp16w.onnx; export "
                             "them with "
                             "packaging/deepbet/export_onnx.py")
    licence_path = src / "LICENSE"
    if not licence_path.is_file():
        raise ModelPackError(f"{licence_path} is missing: the authors' MIT licence must go "
                             "with the pack (export_onnx.py copies it from the wheel)")
    licence = licence_path.read_text(encoding="utf-8")
    if "MIT License" not in licence:
        raise ModelPackError(f"{licence_path} is not deepbet's MIT licence")
    built = []
    for variant in wanted:
        suffix, pack_id = VARIANTS[variant]
        names = (f"deepbet_brain{suffix}.onnx", f"deepbet_bbox{suffix}.onnx")
        blobs: dict[str, bytes] = {}
        for name in names:
            path = src / name
            if not path.is_file():
                raise ModelPackError(f"{path} is missing")
            data = path.read_bytes()
            expected = record["files"].get(name, {}).get("sha256")
            if expected != hashlib.sha256(data).hexdigest():
                raise ModelPackError(f"{path}: sha256 differs from EXPORT.json "
                                     f"({expected}); re-run the export")
            blobs[name] = data
        blobs[names[0]] = without_final_softmax(blobs[names[0]], names[0])
        files = {n: hashlib.sha256(d).hexdigest() for n, d in blobs.items()}
        label = "" if not suffix else " (float16 weights)"
        manifest = manifest_for(pack_id, files, names[1], label)
        parse_manifest(manifest, f"{pack_id}: manifest.json")  # refuse before writing
        target = Path(out_dir) / pack_id
        target.mkdir(parents=True, exist_ok=True)
        for n, d in blobs.items():
            write_bytes(target / n, d)
        write_text(target / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        write_text(target / "MODEL_CARD.md", model_card(manifest, record, variant, licence))
        built.append(target)
    return built


def model_card(manifest: dict[str, Any], record: dict[str, Any], variant: str,
               licence: str) -> str:
    files = "\n".join(f"- `{name}` sha256 `{info.get('sha256', '?')}`"
                      for name, info in sorted(record["files"].items())
                      if name in {f["path"] for f in manifest["files"]})
    wheel = record.get("wheel", {})
    return f"""# {manifest['name']}

**What it does.** Brain extraction (skull stripping) of a T1-weighted MR series: a brain
mask, its volume (the total intracranial volume deepbet reports, in mL) as one finding, and
the brain probability as a heat map.

**How.** deepbet's two LinkNet3d networks, exported unchanged from the authors' PyPI wheel
({wheel.get('name', 'deepbet-1.0.2')}, sha256 `{wheel.get('sha256', '?')}`) to ONNX by
`packaging/deepbet/export_onnx.py`; nothing from deepbet or PyTorch runs in Lucida. A first
network finds the head's bounding box on a 128³ copy, the second segments the brain in that
box at 256³ (see the manifest's `localizer`).
{files}

**Citation.** {CITATION}. Code and weights: github.com/wwu-mmll/deepbet.

**Licence.** MIT (the wheel's LICENSE, © 2023 Medical Machine Learning Lab, University of
Münster). Lucida may ship this pack; keep the licence and this attribution with it.

**Intended use and population.** Research brain extraction for adults' T1-weighted 3-D MR
(the authors report 7837 T1-weighted images from 191 OpenNeuro datasets, adults).
Not a diagnostic device.

**Input requirements.** Modality MR, T1-weighted, 3-D (at least 32 slices), whole head in
the field of view. The series is not resampled: its axes are only reordered to RAS.

**Known limits and biases.** Other contrasts (T2, FLAIR, contrast-enhanced), children and
neonates, large lesions or resections, heavy motion and a cropped field of view are outside
what it was trained on and can give a wrong mask without warning. The bounding box comes
from a coarse 128³ copy; if it misses part of the brain, so does the mask.
{FP16_NOTE if variant.endswith('fp16w') else ''}

**Runtime and memory measured here.** {MEASURED}

## The authors' licence (from the wheel)

```
{licence.strip()}
```
"""


MEASURED = ("On the 256³ conformed T1 (NIfTI), `bench/models.py`: 4.8 s for the whole process "
            "(3.7 s in the run), 1.13 GB peak resident memory; deepbet-cli 1.0.2 (torch) took "
            "4.0 s and 1.14 GB on the same input. `lucida infer` on the 176 × 256 × 256 Siemens "
            "MPRAGE DICOM series: 8.6 s for the whole command, 0.96 GB peak. 2 threads of this "
            "project's 2-core x86-64 build machine, onnxruntime 1.32 CPU, 2026-12-05.")
FP16_NOTE = ("\n**Float16 weights.** Stored as float16 (half the size) and computed in float32. "
             "deepbet's weights are exactly representable in float16, so nothing is lost: "
             "the probabilities equal the float32 export's, and the mask on the conformed T1 "
             "is identical (0 voxels differ; packaging/deepbet/README.md).\n")
