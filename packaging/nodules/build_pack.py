"""Turn a trained nodule network (train.py's model.onnx) into Lucida's nodule pack.

    .venv/bin/python packaging/nodules/build_pack.py --train DIR --data DIR \
        --out resources/models/lucida-lung-nodules [--eval JSON]

Writes the manifest (1 mm LPS grid, the training's HU window, 128³ sliding tiles, sigmoid
probabilities, findings kept inside the bundled lung mask), the ONNX file and the model
card, whose training facts come from ``train.json`` / ``dataset.json`` and whose measured
results from the evaluation JSON (``evaluate.py``). Runs in Lucida's environment: the pack
is then opened and validated by the engine before this script reports success.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PACK_ID = "lucida-lung-nodules"
VERSION = "0.1.0"
LUNG_MASK_ID = "lucida-lung-mask"
# Inference tiles (training crops are 48³; the network is fully convolutional). 128³ with
# 1/8 overlap costs 1.5× the voxels in tiles; 96³ with 1/4 overlap cost 2.4×.
PATCH = 128
MAX_MM3 = 22_450.0  # a 35 mm ball
# The operating point: a region is a finding when its highest probability reaches this.
# Chosen for at most 2 false marks per scan on the only chest CT here, LIDC-IDRI-0001 and
# RICORD, which are also the training backgrounds (the model card says so).
MIN_SCORE = 0.99


def manifest(sha256: str, data: dict[str, Any], *, candidates: bool = False
             ) -> dict[str, Any]:
    """The pack's manifest; ``candidates``: without the operating point (every region
    above the threshold is a finding), as hard negative mining needs."""
    low, high = data["hu_window"]
    return {
        "schema_version": 1,
        "id": PACK_ID,
        "name": "Lucida lung nodule detector (trained on synthetic nodules)",
        "version": VERSION,
        "authors": ["Lucida developers"],
        "license": "Apache-2.0",
        "citation": "",
        "intended_use": (
            "Research: marks candidate lung nodules (3-30 mm; solid, part-solid and ground "
            "glass) on a chest CT for a reader to accept or reject one by one, with diameter "
            "and volume. A second reader's prompt, never a diagnosis."),
        "limitations": (
            "Trained on synthetic nodules inserted into two real chest CT series plus one real "
            "nodule: no claim about any population. Misses and false marks are expected, "
            "above all on vessels seen end-on, scars, atelectasis and ground glass of "
            "infection; nodules outside the lung mask (dense consolidation, effusion) are "
            "not reported. Small nodules are missed more often than large ones (the model "
            "card's size study). Not a diagnostic device."),
        "research_use_notice": "Research use only; not for diagnostic use. Review every mark.",
        "model_card": "MODEL_CARD.md",
        "modality": ["CT"],
        "body_part": ["CHEST", "LUNG", "THORAX"],
        "min_spacing_mm": 0.3,
        "max_spacing_mm": 5.0,
        "min_slices": 16,
        "input": {
            "orientation": "LPS",
            "axis_order": "kji",
            "spacing_mm": [data["spacing_mm"]] * 3,
            "normalization": {"kind": "hu_window", "low": low, "high": high, "out_min": 0.0,
                              "out_max": 1.0, "clip": True},
            "pad_value": low,
            "interpolation": "linear",
            "tensor_name": "image",
            # Only the lungs' box goes through the network (with room for juxtapleural
            # nodules): about half a chest CT's voxels.
            "crop_to": {"model": LUNG_MASK_ID, "labels": [1], "margin_mm": 10.0},
        },
        "tiling": {"mode": "sliding", "patch_size": [PATCH] * 3, "overlap": 0.125,
                   "blending": "gaussian", "batch_size": 1, "padding": "constant"},
        "output": {
            "kind": "probabilities",
            "activation": "sigmoid",
            "channels": 1,
            "tensor_name": "logit",
            "labels": [{"value": 1, "name": "lung nodule", "color": [255, 120, 40],
                        "channel": 0,
                        "code": {"scheme": "SCT", "value": "27925004",
                                 "meaning": "Nodule"}}],
            "heatmap_channel": 0,
            "heatmap_name": "nodule probability",
            "threshold": 0.5,
            "min_finding_mm3": 10.0,
        },
        "postprocessing": [
            {"step": "threshold"},
            {"step": "mask_by", "model": LUNG_MASK_ID, "labels": [1], "dilate_mm": 3.0},
            # A region beyond a 35 mm ball is a mass or a structure, not a nodule.
            {"step": "component_size_filter", "labels": [1], "min_mm3": 10.0,
             "max_mm3": MAX_MM3},
            {"step": "connected_components", "labels": [1], "min_mm3": 10.0,
             "max_findings": 100, **({} if candidates else {"min_score": MIN_SCORE})},
        ],
        "files": [{"path": "model.onnx", "sha256": sha256}],
    }


def _froc_line(froc: dict[str, Any]) -> str:
    scans = ", ".join(sc["name"] for sc in froc["scans"])
    sens = ", ".join(f"{v:.3f} at {k}" for k, v in froc["sensitivity_at"].items())
    n = sum(len(sc.get("reference", [])) for sc in froc["scans"])
    return (f"`bench/nodule_froc.py` on {scans} ({n} reference nodule(s); a training "
            f"background, the only LIDC case here): sensitivity {sens} FP/scan, CPM "
            f"{froc['cpm']:.3f}. One seen nodule says nothing of unseen cases; run the tool "
            "on LIDC-IDRI cases it never saw to judge it (aim: CPM 0.8).")


def size_limit(evaluation: dict[str, Any] | None) -> str | None:
    """The size below which the size study found fewer than 3 in 4 nodules, as a limit."""
    study = next((r for r in (evaluation or {}).get("results", [])
                  if r["scan"] == "demo-sizes"), None)
    if study is None:
        return None
    rows = study["nodules"]
    sizes = sorted({r["diameter_mm"] for r in rows})

    def rate(sel: list[dict[str, Any]]) -> float:
        return sum(r["found"] for r in sel) / len(sel)

    # the smallest size from which every size's rate reaches 3/4
    good = [d for d in sizes if all(rate([r for r in rows if r["diameter_mm"] == e]) >= 0.75
                                    for e in sizes if e >= d)]
    if not good or good[0] == sizes[0]:
        return None
    small = [r for r in rows if r["diameter_mm"] < good[0]]
    by = {c: [r for r in small if r["context"] == c]
          for c in dict.fromkeys(r["context"] for r in small)}
    worst = min(by, key=lambda c: rate(by[c]))
    return (f"Small nodules are often missed: in the size study (measured results) "
            f"{sum(r['found'] for r in small)} of {len(small)} solid nodules under "
            f"{good[0]:g} mm were found, {worst} ones least "
            f"({sum(r['found'] for r in by[worst])} of {len(by[worst])}).")


def _card(m: dict[str, Any], train: dict[str, Any], data: dict[str, Any],
          evaluation: dict[str, Any] | None, froc: dict[str, Any] | None,
          onnx_size: int) -> str:
    made = ", ".join(f"{k} {v}" for k, v in sorted(data["made"].items()))
    lines = [
        f"# {m['name']}",
        "",
        "**Research use only; not for diagnostic use.** Lucida's own model, trained on this "
        "project's machine by `make train-nodules`.",
        "",
        "## What it does",
        "Marks candidate lung nodules on a chest CT. The network runs over the lung mask's "
        "box (the bundled `lucida-lung-mask` pack, run first); each connected region of "
        f"probability ≥ 0.5 inside the mask (dilated 3 mm), 10 mm³ to a 35 mm ball, whose "
        f"highest probability reaches {MIN_SCORE} (the operating point) is one finding, "
        "ranked by that probability, with its longest diameter in mm and volume in mm³.",
        "",
        "## How it was trained",
        f"- Network: a 3-D U-Net (4 levels, 8-16-32-32 channels, BatchNorm, LeakyReLU, "
        f"nearest upsampling), {train['parameters']:,} parameters, "
        f"ONNX {onnx_size / 1024:.0f} KB; one logit per voxel, sigmoid.",
        f"- Data: {data['patches']} patches of {data['patch']}³ voxels at "
        f"{data['spacing_mm']} mm from two real chest CT series (LIDC-IDRI-0001 and "
        "MIDRC-RICORD-1A-419639-000082, read in place from `../shared`, never shipped), "
        f"resampled as the engine resamples. Patch kinds: {made}.",
        "- Synthetic nodules (`packaging/nodules/nodule_synth.py`): solid, part-solid and "
        "ground glass; isolated, juxtapleural and juxtavascular; 3-30 mm (log-uniform); "
        "smooth, lobulated and spiculated margins; partial volume over each voxel's "
        "footprint and the series' slice thickness, scanner blur, texture noise.",
        "- Real positive: LIDC-IDRI-0001's nodule marked by all four readers (voxels two or "
        "more readers contoured). Nothing was inserted within 12 mm of any reader's mark.",
        "- Hard negatives: vessels, pleura, lung parenchyma and RICORD's COVID ground glass.",
        "- Augmentation: rotations up to 15°, flips, slice thicknesses up to 5 mm, gain, "
        "offset and noise; random 48³ crops.",
        *_optimisation(train),
        "",
        "## Measured results",
    ]
    if evaluation is None:
        lines.append("Not evaluated yet.")
    else:
        for line in evaluation.get("card_lines", []):
            lines.append(f"- {line}")
    if froc is not None:
        lines.append(f"- {_froc_line(froc)}")
    lines.append(f"- The operating point ({MIN_SCORE}) was chosen on LIDC-IDRI-0001 and "
                 "RICORD themselves, the only chest CT here, which are also the training "
                 "backgrounds: false-mark counts on other scans will be higher.")
    lines += [
        "",
        "## Limits and biases",
        "- Every training nodule but one is synthetic; real nodules have texture, "
        "attachments and shapes these do not. No population is represented: two scans "
        "(one GE, one COVID-19 patient) gave all the backgrounds.",
        "- The RICORD series is CC BY-NC 4.0 (TCIA); these weights are derived from it.",
        "- Nodules below 3 mm are not targets; calcified nodules were not modelled.",
        *([f"- {limit}"] if (limit := size_limit(evaluation)) else []),
        "- Findings outside the lung mask are dropped: a nodule in consolidation, effusion "
        "or beyond a field of view cut through the lung is not reported.",
        "",
        "## Input requirements",
        "CT of the chest, 3-D, spacing 0.3-5 mm, at least 16 slices; resampled to 1 mm.",
        "",
    ]
    return "\n".join(lines)


def _optimisation(train: dict[str, Any]) -> list[str]:
    """The training stages, first to last, from the chain train.py keeps."""
    stages = [train]
    while "previous" in stages[0]:
        stages.insert(0, stages[0]["previous"])
    common = (f"AdamW, one-cycle learning rate, {train['batch']} crops a step, weighted "
              f"BCE + soft Dice, seed {train['seed']}, torch {train['torch']} on "
              f"{train['threads']} CPU threads")
    parts = []
    for n, st in enumerate(stages, 1):
        if st.get("mined_patches"):
            parts.append(
                f"stage {n}, hard negative mining: {st['steps']} steps "
                f"({st['seconds'] / 60:.1f} min) with {st['mined_fraction']:.0%} of each "
                f"batch from {st['mined_patches']} augmented negative patches centred where "
                "the previous stage's model marked something away from every LIDC reader's "
                "mark on the training backgrounds")
        else:
            parts.append(f"stage {n}: {st['steps']} steps from scratch "
                         f"({st['seconds'] / 60:.1f} min)")
    total = sum(st["seconds"] for st in stages) / 60
    return [f"- Optimisation: {common}. " + "; ".join(parts)
            + f". Training time in all: {total:.1f} min."]


def build(train_dir: Path, data_dir: Path, out: Path, evaluation: Path | None,
          froc: Path | None = None, *, candidates: bool = False) -> Path:
    from core.atomic import write_bytes, write_text
    from inference.pack import ModelPack

    onnx = (train_dir / "model.onnx").read_bytes()
    train = json.loads((train_dir / "train.json").read_text())
    data = json.loads((data_dir / "dataset.json").read_text())
    ev = json.loads(evaluation.read_text()) if evaluation is not None else None
    m = manifest(hashlib.sha256(onnx).hexdigest(), data, candidates=candidates)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / "model.onnx", onnx)
    write_text(out / "manifest.json", json.dumps(m, indent=2) + "\n")
    fr = json.loads(froc.read_text()) if froc is not None else None
    write_text(out / "MODEL_CARD.md", _card(m, train, data, ev, fr, len(onnx)))
    ModelPack.open(out).onnx_bytes()  # the engine's validation and hash check
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--eval", type=Path, default=None)
    ap.add_argument("--froc", type=Path, default=None, help="bench/nodule_froc.py's --json")
    ap.add_argument("--candidates", action="store_true",
                    help="no operating point: every region is a finding (for mine.py)")
    args = ap.parse_args()
    out = build(args.train, args.data, args.out, args.eval, args.froc,
                candidates=args.candidates)
    print(f"pack -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
