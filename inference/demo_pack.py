"""Build the bundled demonstration pack ``lucida-demo-lung-density``.

This is **not a trained model**. It is a fixed-weight ONNX graph written by
hand so that the app has something real to run on the demo study: it marks
voxels that are dense (soft-tissue HU) at a small scale while their
surroundings are lung-like (air-filled). Every weight is a box filter; the
graph is reproducible byte for byte from this script::

    .venv/bin/python -m inference.demo_pack resources/models/lucida-demo-lung-density

Needs the ``onnx`` package (a development dependency), only to build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inference.fixed_pack import main, serialize, write_fixed_pack

PACK_ID = "lucida-demo-lung-density"
VERSION = "0.1.0"
# On every finding, the heat map and the model name: whoever sees a result sees this.
MARK = "DEMO RULES - NOT A MODEL"
SPACING_MM = 1.5
INNER, SHELL_IN, SHELL_OUT = 3, 11, 17  # box widths in voxels (4.5, 16.5, 25.5 mm)
MARGIN = SHELL_OUT // 2
PATCH = 80
HU_LOW, HU_HIGH = -1000.0, 400.0
DENSE_HU, AIRY_HU, BODY_HU = -300.0, -600.0, -960.0
SLOPE = 20.0
MAX_MM3 = 15000.0  # larger regions are structures (table, hilum), not foci


def _hu01(hu: float) -> float:
    return (hu - HU_LOW) / (HU_HIGH - HU_LOW)


def build_onnx() -> bytes:
    """The graph: separable box means, a shell mean, and two soft thresholds."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def box(src: str, width: int, tag: str) -> str:
        cur = src
        for axis in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = width
            w = const(f"w{tag}{axis}", np.full(shape, 1.0 / width))
            out = f"{tag}_{axis}"
            nodes.append(helper.make_node("Conv", [cur, w], [out], pads=[0] * 6))
            cur = out
        return cur

    def crop(src: str, by: int, tag: str) -> str:
        if by == 0:
            return src
        starts = const(f"s{tag}", [by] * 3, np.int64)
        ends = const(f"e{tag}", [-by] * 3, np.int64)
        axes = const(f"a{tag}", [2, 3, 4], np.int64)
        out = f"crop{tag}"
        nodes.append(helper.make_node("Slice", [src, starts, ends, axes], [out]))
        return out

    outer = box("x", SHELL_OUT, "o")  # mean over 17^3
    inner_big = crop(box("x", SHELL_IN, "m"), (SHELL_OUT - SHELL_IN) // 2, "m")
    core = crop(box("x", INNER, "c"), (SHELL_OUT - INNER) // 2, "c")
    n_out, n_in = float(SHELL_OUT**3), float(SHELL_IN**3)
    nodes += [
        helper.make_node("Mul", [outer, const("k_out", n_out / (n_out - n_in))], ["o_s"]),
        helper.make_node("Mul", [inner_big, const("k_in", n_in / (n_out - n_in))], ["m_s"]),
        helper.make_node("Sub", ["o_s", "m_s"], ["shell"]),
        # dense = sigmoid(slope * (core - t_dense)); airy = sigmoid(slope * (t_airy - shell))
        helper.make_node("Sub", [core, const("t_dense", _hu01(DENSE_HU))], ["d0"]),
        helper.make_node("Mul", ["d0", const("slope_d", SLOPE)], ["d1"]),
        helper.make_node("Sigmoid", ["d1"], ["dense"]),
        helper.make_node("Sub", [const("t_airy", _hu01(AIRY_HU)), "shell"], ["a0"]),
        helper.make_node("Mul", ["a0", const("slope_a", SLOPE)], ["a1"]),
        helper.make_node("Sigmoid", ["a1"], ["airy"]),
        # inside = sigmoid(slope * (shell - t_body)): lung, not the air around the body
        helper.make_node("Sub", ["shell", const("t_body", _hu01(BODY_HU))], ["b0"]),
        helper.make_node("Mul", ["b0", const("slope_b", 4 * SLOPE)], ["b1"]),
        helper.make_node("Sigmoid", ["b1"], ["inside"]),
        helper.make_node("Mul", ["dense", "airy"], ["da"]),
        helper.make_node("Mul", ["da", "inside"], ["y"]),
    ]
    dims_in: list[Any] = ["N", 1, "D", "H", "W"]
    dims_out: list[Any] = ["N", 1, "D_out", "H_out", "W_out"]
    graph = helper.make_graph(
        nodes, "lucida_demo_lung_density",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims_out)],
        initializer=inits)
    return serialize(graph, "lucida.inference.demo_pack", VERSION)


def manifest(sha256: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "id": PACK_ID,
        "name": f"{MARK}: dense foci in lung (synthetic demo study only)",
        "version": VERSION,
        "authors": ["Lucida developers"],
        "license": "Apache-2.0",
        "citation": "",
        "intended_use": (
            "Demonstrating Lucida's model-pack workflow (run, progress, overlay, findings) on "
            "the synthetic demo chest CT, and only there: Lucida refuses it on any other "
            "series. It is a fixed rule, not a trained detector."),
        "limitations": (
            "Marks any soft-tissue-dense spot surrounded by air-filled lung, including vessels, "
            "airway walls, atelectasis and scars; misses nodules touching the chest wall or "
            "mediastinum and ground-glass lesions. Never use it on patients."),
        "research_use_notice": "Research and demonstration use only. Not for diagnostic use.",
        "demo_only": True,
        "model_card": "MODEL_CARD.md",
        "modality": ["CT"],
        "body_part": ["CHEST", "LUNG", "THORAX"],
        "min_spacing_mm": 0.3,
        "max_spacing_mm": 5.0,
        "min_slices": 16,
        "input": {
            "orientation": "LPS",
            "axis_order": "kji",
            "spacing_mm": [SPACING_MM] * 3,
            "normalization": {"kind": "hu_window", "low": HU_LOW, "high": HU_HIGH,
                              "out_min": 0.0, "out_max": 1.0, "clip": True},
            "pad_value": HU_LOW,
            "interpolation": "linear",
        },
        "tiling": {"mode": "valid", "patch_size": [PATCH] * 3, "overlap": 0.0,
                   "blending": "constant", "output_margin": [MARGIN] * 3, "batch_size": 1,
                   "padding": "edge"},
        "output": {
            "kind": "anomaly_map", "activation": "none", "channels": 1,
            "labels": [{"value": 1, "name": f"{MARK}: dense focus in lung",
                        "color": [255, 170, 0], "channel": 0}],
            "heatmap_channel": 0, "heatmap_name": f"{MARK}: density score",
            "threshold": 0.5, "min_finding_mm3": 20.0,
        },
        "postprocessing": [{"step": "threshold"},
                           {"step": "component_size_filter", "min_mm3": 20.0,
                            "max_mm3": MAX_MM3},
                           {"step": "connected_components", "max_findings": 50}],
        "files": [{"path": "model.onnx", "sha256": sha256}],
        "memory": {"bytes_per_patch_voxel": 48.0},
    }


MODEL_CARD = f"""# Demo: dense foci in lung — a rules-based demonstration, not a trained model

**What it is.** A fixed-weight ONNX graph written by hand
(`inference/demo_pack.py`, reproducible byte for byte). Nothing was learned from
data. It exists so that Lucida's AI workflow — choose a model, check the input,
run with progress and cancel, see an overlay and a findings list — can be tried
on the bundled *synthetic* demo chest CT without any third-party weights.

**What it computes.** The CT is resampled to {SPACING_MM} mm voxels (LPS) and
windowed to {HU_LOW:.0f}…{HU_HIGH:.0f} HU → 0…1. With box filters it computes
the mean density in a {INNER * SPACING_MM:.1f} mm cube around each voxel
("core") and in a shell between {SHELL_IN * SPACING_MM:.1f} mm and
{SHELL_OUT * SPACING_MM:.1f} mm cubes ("surroundings"). The score is the
product of three soft thresholds (sigmoids, in window units): core denser than
{DENSE_HU:.0f} HU, surroundings lighter than {AIRY_HU:.0f} HU, and surroundings
denser than {BODY_HU:.0f} HU (lung rather than the air around the body). It is
high where something dense sits in air-filled lung. Voxels scoring ≥ 0.5 form
the label; connected regions between 20 mm³ and {MAX_MM3:.0f} mm³ are kept
and become findings (larger ones are structures such as the CT table or the lung hilum).

**What it is not.** Not a nodule detector, not validated, not a medical device.
It flags vessels seen end-on, airway walls, scars and atelectasis as readily as
nodules, and it misses anything touching the chest wall or mediastinum and all
ground-glass lesions.

**Intended use.** Demonstration and software testing on synthetic data only.
Research use only. **Not for diagnostic use.** The manifest says `demo_only`:
Lucida offers and runs this pack only on its synthetic demo study and refuses it
on any other series; every finding, the heat map and the result carry the mark
"{MARK}".

**Licence.** Apache-2.0, like Lucida. No training data; no third-party weights.
"""


def write_pack(folder: Path) -> Path:
    return write_fixed_pack(folder, build_onnx(), manifest, MODEL_CARD)


if __name__ == "__main__":
    main(PACK_ID, write_pack)
