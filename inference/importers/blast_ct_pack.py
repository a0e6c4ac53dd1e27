"""BLAST-CT (Monteiro et al. 2020) as one Lucida ensemble pack: ``lucida models import blast-ct``.

From the authors' folder (``config.json``, ``weights_v1/model_N.pt`` + ``SHA256SUMS``) this
writes the pack ``blast-ct``: members 1-6 rebuilt as ONNX by
:mod:`inference.importers.deepmedic` (softmax left to the pipeline, which averages member
probabilities after activation: the authors' ensemble mean), and a manifest that states the
authors' inference conventions in Lucida's vocabulary:

* **Space**: blast-ct reorients to a diagonal-positive direction in ITK/LPS world and resamples
  to ``config['data']['resolution']`` (1 mm) with linear interpolation, background = image
  minimum: ``orientation "LPS"``, ``axis_order "kji"`` (sitk's ``(z, y, x)`` array),
  ``spacing_mm`` from the config, ``pad_value "min"``.
* **Intensities**: ``IntensityWindowNormalization`` [-15, 100] HU → [-1, 1], clipped
  (``hu_window``), outside the graph.
* **Tiling**: the authors' 110³ test patch, output 30³ (``output_margin`` 40), outputs on a
  30-voxel grid from the first voxel (``overlap`` 0, ``last_tile "on_grid"``: the last tile
  of an axis reaches past the volume, whose input is ``edge`` padded, as ``np.pad`` does in
  blast-ct), constant blending. So every tile sees the 3x and 5x pathways in the authors'
  phase. DeepMedic is fully convolutional: a patch of 80 + 30 n gives 30 n outputs in the
  same phase as n³ of the authors' tiles (``LARGE_PATCH``, proven in the tests); measured
  here it is not worth it on CPU (see ``MEASURED``), so 110 stays the default.
* **Output**: 5 channels (0 = background), argmax of the mean probabilities; each connected
  region of a lesion class is a finding (26-connectivity, at least ``MIN_FINDING_MM3``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.atomic import write_bytes, write_text
from core.errors import ModelPackError
from inference.importers.deepmedic import build_deepmedic_onnx
from inference.importers.torch_legacy import SHA256SUMS, load_state_dict, read_sha256sums
from inference.manifest import parse_manifest

__all__ = ["LABELS", "MEMBERS", "PACK_ID", "PACK_VERSION", "build_pack", "manifest_for"]

PACK_ID = "blast-ct"
PACK_VERSION = "1.0.0"
MEMBERS = (1, 2, 3, 4, 5, 6)  # the staged V1 members (of 12)
PATCH = 110  # config['test']['input_patch_size']; output 30
MARGIN = 40  # (110 - 30) / 2: the same for every valid patch 80 + 30 n
# onnxruntime's arena per input voxel, measured (peak RSS of one session on 1 or 2 threads,
# minus the process before it): 110³ 210 MB, 140³ 1654 MB. It grows faster than the patch
# because onnxruntime's CPU Conv expands each 3x3x3 convolution's whole output (im2col).
PATCH_BYTES_PER_VOXEL = {110: 160.0, 140: 640.0}
LARGE_PATCH = 140  # 60³ outputs = 2³ of the authors' 30³ blocks
MIN_FINDING_MM3 = 10.0  # ten 1-mm voxels: hides single-voxel speckle, not lesions
# The authors' class_names (config.json: "foreground" at 0 is their name for background).
_CLASS_NAMES = ("foreground", "IPH", "EAH", "oedema", "IVH")
LABELS: tuple[tuple[int, str, str, tuple[int, int, int]], ...] = (
    (1, "IPH", "Intraparenchymal haemorrhage", (230, 25, 45)),
    (2, "EAH", "Extra-axial haemorrhage", (255, 160, 0)),
    (3, "oedema", "Perilesional oedema", (60, 180, 75)),
    (4, "IVH", "Intraventricular haemorrhage", (0, 130, 200)),
)
CITATION = ("Monteiro M, Newcombe VFJ, Mathieu F, et al. Multiclass semantic segmentation and "
            "quantification of traumatic brain injury lesions on head CT using deep learning: "
            "an algorithm development and multicentre validation study. Lancet Digit Health "
            "2020;2(6):e314-e322. doi:10.1016/S2589-7500(20)30085-6")

# Measured here (see MODEL_CARD.md); None = not measured on this build.
MEASURED: dict[str, str] = {
    "tile_cpu": "One member, one 110³ tile (30³ outputs): 0.51 s on 1 CPU thread, 0.59 s on 2, "
                "onnxruntime arena 210 MB (this development machine: 2 cores shared with other "
                "work, onnxruntime 1.32, CPU only). The authors' PyTorch DeepMedic (blast-ct "
                "2.1.0, torch 2.13 CPU, their test batch of 32 patches): 1.07 s per 110³ patch "
                "on 2 threads, peak RSS 4.9 GB. Larger patches on the authors' 30-voxel grid "
                "give identical probabilities but, in onnxruntime, cost memory faster than "
                "they save work: 140³ (60³ outputs) 3.1 s on 1 thread (1.3x less per output "
                "voxel), arena 1.65 GB; 170³ 22 s, 5.7 GB; 200³ 38 s, 14 GB. Through Lucida's "
                "pipeline: a 30 x 60 x 30 mm phantom (2 tiles x 6 members) 10-11 s, a 4-slice "
                "59 x 59 mm block of the gantry-tilt head CT (4 tiles x 6 members) 16 s, on 2 "
                "threads",
    "full_volume": "Whole gantry-tilt head CT (37 x 610 x 512 voxels, 4 x 0.49 x 0.49 mm; a 231 x "
                   "328 x 250 grid at 1 mm = 792 tiles per member): member 1 alone took 198 s "
                   "through Lucida's pipeline on 2 threads (2 tiles in flight, 1 thread each; "
                   "599 s while other work loaded the machine), peak RSS 1.6 GB; the authors' "
                   "network alone would need about 792 x 1.07 s = 850 s at 4.9 GB. With 140³ "
                   "patches (120 tiles, the last ones past the volume): 186 s, peak RSS 3.9 GB "
                   "(0.79x the authors' memory), so the pack keeps 110³. The 6-member pack runs "
                   "the members one after another: about 20 minutes on 2 threads here; use a "
                   "machine with more cores for whole series",
}


def _read_config(src: Path) -> dict[str, Any]:
    path = src / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelPackError(f"{path}: cannot read the authors' config ({exc})") from exc
    if not isinstance(config, dict):
        raise ModelPackError(f"{path}: not a JSON object")
    data = config.get("data", {})
    if list(data.get("class_names", [])) != list(_CLASS_NAMES):
        raise ModelPackError(f"{path}: class_names {data.get('class_names')} are not BLAST-CT's "
                             f"{list(_CLASS_NAMES)}; this importer does not know those labels")
    return config


def _window(config: dict[str, Any]) -> tuple[float, float]:
    norm = config["data"].get("transformation", {}).get("IntensityWindowNormalization")
    if not isinstance(norm, dict):
        raise ModelPackError("config.json: no IntensityWindowNormalization; not BLAST-CT's input")
    return float(norm["lower_bound"]), float(norm["upper_bound"])


def _spacing(config: dict[str, Any]) -> tuple[float, float, float]:
    res = [float(r) for r in config["data"].get("resolution", [])]
    if len(res) != 3 or any(r <= 0 for r in res):
        raise ModelPackError(f"config.json: resolution {res} is not three positive spacings")
    # blast-ct hands sitk's resolution (x, y, z) to the resampler; the manifest wants (i, j, k).
    return (res[0], res[1], res[2])


def manifest_for(config: dict[str, Any], files: list[tuple[str, str]], *,
                 patch: int = PATCH) -> dict[str, Any]:
    """The pack's manifest.json (a dict); ``files`` = [(onnx name, sha256)] in member order."""
    if patch not in PATCH_BYTES_PER_VOXEL:
        raise ModelPackError(f"patch {patch}: only {sorted(PATCH_BYTES_PER_VOXEL)} are measured")
    low, high = _window(config)
    return {
        "schema_version": 1,
        "id": PACK_ID,
        "name": "BLAST-CT head CT lesions (V1 ensemble, 6 members)",
        "version": PACK_VERSION,
        "authors": ["Miguel Monteiro", "Virginia F. J. Newcombe", "Ben Glocker",
                    "BioMedIA, Imperial College London"],
        "license": "Apache-2.0",
        "citation": CITATION,
        "intended_use": (
            "Research: segmentation of traumatic brain injury lesions (intraparenchymal and "
            "extra-axial haemorrhage, perilesional oedema, intraventricular haemorrhage) on "
            "adult non-contrast head CT, as findings for a radiologist to review."),
        "limitations": (
            "V1 weights, 6 of the authors' 12 members (not the current 15-member V2 "
            "ensemble). Trained on TBI patients' CT; other pathologies (tumour, stroke, "
            "post-surgical change), contrast CT, children and heavy artefacts are outside "
            "its training. Not a diagnostic device."),
        "research_use_notice": "Research use only; not for diagnosis. Every finding needs "
                               "review by a qualified reader.",
        "model_card": "MODEL_CARD.md",
        "modality": ["CT"],
        "body_part": ["HEAD", "BRAIN", "SKULL"],
        "max_spacing_mm": 6.0,
        "min_slices": 10,
        "input": {
            "orientation": "LPS",
            "axis_order": "kji",
            "spacing_mm": list(_spacing(config)),
            "normalization": {"kind": "hu_window", "low": low, "high": high,
                              "out_min": -1.0, "out_max": 1.0, "clip": True},
            "pad_value": "min",
            "interpolation": "linear",
        },
        "tiling": {
            "mode": "valid",
            "patch_size": [patch] * 3,
            "overlap": 0.0,
            "blending": "constant",
            "output_margin": [MARGIN] * 3,
            "batch_size": 1,
            "padding": "edge",
            "last_tile": "on_grid",
        },
        "output": {
            "kind": "segmentation_logits",
            "activation": "softmax",
            "channels": len(_CLASS_NAMES),
            "labels": [{"value": v, "name": name, "color": list(color)}
                       for v, _short, name, color in LABELS],
            "heatmap_channel": "foreground",
            "heatmap_name": "lesion probability",
            "min_finding_mm3": MIN_FINDING_MM3,
        },
        "postprocessing": [
            {"step": "argmax"},
            {"step": "connected_components", "labels": [v for v, *_ in LABELS],
             "connectivity": 26},
        ],
        "files": [{"path": name, "sha256": sha} for name, sha in files],
        "ensemble": {"combine": "mean"},
        "memory": {"bytes_per_patch_voxel": PATCH_BYTES_PER_VOXEL[patch]},
    }


def _checked_sums(weights: Path) -> dict[str, str]:
    sums_path = weights / SHA256SUMS
    if not sums_path.is_file():
        raise ModelPackError(f"{sums_path} is missing: the weights cannot be checked")
    sums = read_sha256sums(sums_path)
    missing = [f"model_{n}.pt" for n in MEMBERS if f"model_{n}.pt" not in sums]
    if missing:
        raise ModelPackError(f"{sums_path} lists no sha256 for {', '.join(missing)}")
    return sums


def build_pack(src_dir: Path | str, out_dir: Path | str, *,
               model: str | None = None, patch: int = PATCH) -> list[Path]:
    """Write the ``blast-ct`` pack folder under ``out_dir``; returns ``[out_dir/blast-ct]``.

    Each ``weights_v1/model_N.pt`` is checked against ``SHA256SUMS`` before it is read.
    ``patch``: the members' input size per axis (110, or ``LARGE_PATCH``).
    """
    if model not in (None, PACK_ID):
        raise ModelPackError(f"BLAST-CT has one pack, {PACK_ID!r}; no model {model!r}")
    if patch not in PATCH_BYTES_PER_VOXEL:
        raise ModelPackError(f"patch {patch}: only {sorted(PATCH_BYTES_PER_VOXEL)} are measured")
    src = Path(src_dir)
    config = _read_config(src)
    weights = src / "weights_v1"
    sums = _checked_sums(weights)
    members: list[tuple[str, bytes]] = []
    for n in MEMBERS:
        name = f"model_{n}.pt"
        state = load_state_dict(weights / name, sums[name])
        onnx_bytes = build_deepmedic_onnx(state, config, input_size=(patch,) * 3,
                                          softmax=False)
        members.append((f"member_{n}.onnx", onnx_bytes))
    files = [(name, hashlib.sha256(data).hexdigest()) for name, data in members]
    manifest = manifest_for(config, files, patch=patch)
    parse_manifest(manifest, f"{PACK_ID}: manifest.json")  # refuse before writing
    target = Path(out_dir) / PACK_ID
    target.mkdir(parents=True, exist_ok=True)
    for name, data in members:
        write_bytes(target / name, data)
    write_text(target / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    write_text(target / "MODEL_CARD.md", model_card(manifest, sums))
    return [target]


def model_card(manifest: dict[str, Any], sums: dict[str, str]) -> str:
    labels = "\n".join(f"| {v} | {short} | {name} | rgb{tuple(color)} |"
                       for v, short, name, color in LABELS)
    weights = "\n".join(f"- `model_{n}.pt` sha256 `{sums[f'model_{n}.pt']}` → "
                        f"`member_{n}.onnx`" for n in MEMBERS)
    return f"""# {manifest['name']}

**What it does.** Segments four lesion types of traumatic brain injury on a non-contrast
head CT and turns each connected region of one type into a finding with its volume (mL),
for a radiologist to accept, reject or edit:

| value | authors' name | meaning | colour |
|---|---|---|---|
{labels}

The network is the authors' DeepMedic (three pathways at 1x, 3x and 5x subsampling, 8
pre-activation blocks each, 1x1x1 head), rebuilt by Lucida from each checkpoint's
state_dict and config.json; nothing from blast-ct or PyTorch runs. Each member matches the
authors' PyTorch probabilities on their reference patch to <= 1e-4.

**Citation.** {CITATION}.
Code and weights: github.com/biomedia-mira/blast-ct.

**Licence.** Apache License 2.0 (the authors' LICENSE.txt). This pack is derived from their
weights; keep the licence and this attribution with it.

**Which weights.** These are the authors' *V1* weights (blast-ct before October 2022,
commit 361e8c7: an ensemble of 12 models trained on 184 annotated scans), members 1-6 only.
The current blast-ct release (2.1.0) uses a *V2* ensemble of 15 models trained on 680 scans,
which could not be obtained here. So this pack is a 6-member subset of an older ensemble:
its mean is noisier than the 12-member V1 mean and its accuracy is not the one the paper or
the current release reports. Architecture and preprocessing are the same in V1 and V2.

{chr(10).join(f'{line}' for line in weights.splitlines())}

**Intended use and population.** Research use on adult patients with (suspected) traumatic
brain injury: non-contrast head CT, whole brain in the field of view. The authors trained on
the CENTER-TBI study (multicentre, European) and validated on CENTER-TBI and CQ500
(India) scans. Not a diagnostic device; every finding must be reviewed.

**Input requirements.** Modality CT, non-contrast, head, 3-D (at least 10 slices, slices at
most 6 mm; thin axial reconstructions work best), Hounsfield units. Lucida resamples the
series to 1 mm isotropic on an LPS-aligned grid (linear), clips to [-15, 100] HU and maps
that window to [-1, 1], then tiles {manifest['tiling']['patch_size'][0]}³ patches (outputs on
the authors' 30-voxel grid from the first voxel, edge padding past the volume).
Gantry-tilted series are de-tilted by Lucida's reader first; results come back on the
series' own grid.

**Output.** Mean of the members' softmax probabilities; label = argmax (the authors' rule).
Findings: 26-connected regions of each lesion class of at least {MIN_FINDING_MM3:g} mm³
(0.01 mL); smaller specks are left in the label map but not listed. The heat map is 1 -
P(background).

**Known limits and biases.**
- Trained on TBI: haemorrhage from other causes is segmented by similarity only; calcification,
  beam-hardening next to the skull base, streak artefacts from metal or motion can be called
  haemorrhage; small subdural/extra-axial collections along the vault are the hardest class.
- Reported per-class performance (paper) is best for large IPH/EAH volumes and weakest for
  small lesions and IVH; the population was mostly adult European TBI patients.
- V1 subset (6 of 12 members): expect more variability than the published ensemble.
- On Lucida's gantry-tilted test head CT, member 1 alone listed 26 regions of at least
  0.01 mL: 20 small extra-axial calls (0.01-0.65 mL, many high in the head) and 6 oedema
  regions (one of 3.4 mL). Nobody has reviewed them; expect false-positive specks next to
  bone, and read every finding against the images.
- Tiling is the authors' everywhere: 30³ output blocks on the grid from the first voxel,
  the last block of an axis reaching past the volume (edge padding, as blast-ct's np.pad),
  so the 3x and 5x pathways sample the same voxels as in blast-ct (checked on a real head
  CT block: identical probabilities; the earlier Lucida tiling, which moved the last tile
  back to the volume's edge, differed there by up to 0.02).

**Runtime and memory measured here.**
- {MEASURED['tile_cpu']}.
- {MEASURED['full_volume']}.
"""
