"""Build the bundled lung mask pack ``lucida-lung-mask``: classical rules, not trained.

The ONNX graph is a fixed-weight rule written by hand (reproducible byte for byte): on
a coarse isotropic grid, the locally averaged HU below ``AIR_HU`` is "air-like". That
marks the lungs, but also the air around the body, the trachea and bowel gas; the
manifest's post-processing steps (``inference/postprocess.py``) keep the lungs:

1. ``clear_border`` (lateral faces): air around the body reaches the volume's sides,
   the lungs only its top and bottom slices;
2. ``keep_large_components``: both lungs stay, the stomach and bowel gas go;
3. ``fill_holes_2d`` (axial): vessels and nodules inside the lung become lung;
4. ``closing``: a juxtapleural nodule's indent in the mask is filled.

Build and check::

    .venv/bin/python -m inference.lung_pack resources/models/lucida-lung-mask

Needs the ``onnx`` package (a development dependency), only to build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inference.fixed_pack import main, serialize, write_fixed_pack

PACK_ID = "lucida-lung-mask"
VERSION = "0.1.0"
SPACING_MM = 2.0  # the mask is a coarse region: a 512²×300 CT becomes ~4 M voxels
HU_LOW, HU_HIGH = -1000.0, 200.0  # clipped, so -2048 padding outside the FOV is just air
AIR_HU = -400.0  # lung parenchyma is about -850, soft tissue > -100
SLOPE = 0.05  # logit per HU: ±100 HU from AIR_HU is a probability of 1e-4 / 0.9999
SMOOTH = 3  # AveragePool width in voxels (6 mm): noise and the finest septa vanish
BORDER_FRACTION = 0.1  # of the largest component's volume
CLOSING_MM = 10.0  # fills a juxtapleural nodule up to ~18 mm across
CLOSING_GRID_MM = 2.0
LABEL_COLOR = (90, 150, 230)  # a calm blue
MIN_LUNG_MM3 = 50_000.0  # a component smaller than 50 mL is no lung


def build_onnx() -> bytes:
    """The graph: clipped HU → 3³ average → logits ``[bg, fg]`` with fg = (AIR_HU - s) k."""
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: float) -> Any:
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)

    half = SMOOTH // 2
    nodes = [
        # count_include_pad=0: at the volume's edge, the mean of the voxels that exist.
        helper.make_node("AveragePool", ["x"], ["s"], kernel_shape=[SMOOTH] * 3,
                         strides=[1, 1, 1], pads=[half] * 6, count_include_pad=0),
        helper.make_node("Sub", ["air_hu", "s"], ["d"]),
        helper.make_node("Mul", ["d", "slope"], ["fg"]),
        helper.make_node("Neg", ["fg"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["y"], axis=1),
    ]
    dims_in: list[Any] = ["N", 1, "D", "H", "W"]
    dims_out: list[Any] = ["N", 2, "D", "H", "W"]
    graph = helper.make_graph(
        nodes, "lucida_lung_mask",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims_out)],
        initializer=[const("air_hu", AIR_HU), const("slope", SLOPE)])
    return serialize(graph, "lucida.inference.lung_pack", VERSION)


def manifest(sha256: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "id": PACK_ID,
        "name": "Lung mask (classical rules)",
        "version": VERSION,
        "authors": ["Lucida developers"],
        "license": "Apache-2.0",
        "citation": "",
        "intended_use": (
            "A coarse mask of both lungs on a chest CT (about 2 mm precision), shown as an "
            "overlay with its volume, and used by other packs (mask_by) to keep their "
            "findings inside the lungs. Classical rules, not a trained model."),
        "limitations": (
            "Dense lung is left out of the mask: consolidation, effusion, large masses and "
            "atelectasis, which is exactly where the reader must look. Severe emphysema or "
            "bullae next to the body's edge, a field of view that cuts through the lungs at "
            "the sides, and air in the bowel as large as a lung can fool it. The trachea and "
            "main bronchi are included; parts of the mediastinum narrower than 20 mm between "
            "the lungs can be."),
        "research_use_notice": "Research use only. Not for diagnostic use.",
        "model_card": "MODEL_CARD.md",
        "modality": ["CT"],
        "body_part": ["CHEST", "LUNG", "THORAX"],
        "min_spacing_mm": 0.3,
        "max_spacing_mm": 6.0,
        "min_slices": 16,
        "input": {
            "orientation": "LPS",
            "axis_order": "kji",
            "spacing_mm": [SPACING_MM] * 3,
            "normalization": {"kind": "hu_window", "low": HU_LOW, "high": HU_HIGH,
                              "out_min": HU_LOW, "out_max": HU_HIGH, "clip": True},
            "pad_value": HU_LOW,
            "interpolation": "linear",
        },
        "tiling": {"mode": "whole", "batch_size": 1, "padding": "edge"},
        "output": {
            "kind": "segmentation_logits", "activation": "softmax", "channels": 2,
            "labels": [{"value": 1, "name": "lung", "color": list(LABEL_COLOR), "channel": 1,
                        "code": {"scheme": "SCT", "value": "39607008",
                                 "meaning": "Lung structure"}}],
            "heatmap_channel": "none",
            "min_finding_mm3": MIN_LUNG_MM3,
        },
        "postprocessing": [
            {"step": "argmax"},
            {"step": "clear_border", "labels": [1], "faces": "lateral"},
            {"step": "keep_large_components", "labels": [1], "min_fraction": BORDER_FRACTION},
            {"step": "fill_holes_2d", "labels": [1], "plane": "axial"},
            {"step": "closing", "labels": [1], "radius_mm": CLOSING_MM,
             "grid_mm": CLOSING_GRID_MM},
            {"step": "connected_components", "labels": [1], "max_findings": 2},
        ],
        "files": [{"path": "model.onnx", "sha256": sha256}],
    }


MODEL_CARD = f"""# Lung mask (classical rules) — not a trained model

**What it is.** A lung segmentation for chest CT made of fixed rules: a hand-written
ONNX graph (`inference/lung_pack.py`, reproducible byte for byte) and post-processing
steps from Lucida's fixed vocabulary. Nothing was learned from data; there are no
third-party weights. It draws the lungs as an overlay, reports their volume (one finding
per connected lung region, at most two), and is the mask other packs (a nodule detector)
use through `mask_by` to keep their findings inside the lungs.

**What it computes.**
1. The CT is resampled to {SPACING_MM:g} mm voxels (LPS), clipped to {HU_LOW:.0f}…{HU_HIGH:.0f}
   HU and averaged over {SMOOTH}³ voxels ({SMOOTH * SPACING_MM:g} mm). A voxel whose mean is
   below {AIR_HU:.0f} HU is air-like (softmax of a two-channel logit, then argmax): lungs,
   but also the air around the body, the trachea and gas in the stomach and bowel.
2. `clear_border` (lateral faces): air-like regions touching the volume's faces whose normal
   is not mostly superior/inferior are removed: that is the air around the body. The top and
   bottom slices, which cut through the lungs, do not count.
3. `keep_large_components`: regions smaller than {BORDER_FRACTION:.0%} of the largest go
   (stomach and bowel gas); both lungs stay.
4. `fill_holes_2d` (axial): vessels, airway walls and nodules enclosed by lung in a slice
   become lung.
5. `closing` by a {CLOSING_MM:g} mm ball (on a ~{CLOSING_GRID_MM:g} mm grid): a nodule
   touching the pleura, up to about {2 * CLOSING_MM - 2:g} mm across, is inside the mask;
   so are narrow strips of mediastinum between the lungs.

**Where it fails (look there yourself).**
- Consolidation, pleural effusion, large masses and atelectasis are dense, so they are
  *outside* the mask: exactly where the reader must look. A detector masked by it will not
  report findings there.
- A juxtapleural nodule or mass wider than about {2 * CLOSING_MM:g} mm is cut out of the mask.
- Severe emphysema and bullae are inside, but a bulla that reaches the body's edge, or a
  field of view that cuts through the lungs at the sides (not the top or bottom), joins the
  lung to the outside air and removes it: that lung, and the other too when the trachea
  joins them into one region.
- Bowel or stomach gas as large as a tenth of the lungs, air in the CT table, a
  pneumothorax and subcutaneous emphysema may be included.
- The trachea and main bronchi are part of the mask.
- Precision is about {SPACING_MM:g} mm: a coarse region, not a measurement of lung volume for
  clinical use.

**Checked on** (`tests/inference/test_lung_pack.py`; no population study):
- Lucida's synthetic demo chest CT: Dice 0.97 against the phantom's own lung masks, each
  lung over 95 % covered, every demo nodule centre inside (the one touching the pleura
  only thanks to the closing);
- LIDC-IDRI-0001 (133 × 512 × 512): 3.9 L (right 2.1 L, left 1.8 L), the four-reader
  nodule inside;
- MIDRC-RICORD-1A (COVID-19 ground glass, 255 × 512 × 512): 4.5 L (right 2.4 L, left
  2.1 L), a plausible mask; ground glass denser than {AIR_HU:.0f} HU after smoothing is
  in it only where lung encloses it in its slice or the closing reaches it (not checked
  region by region).

**Runtime** on 2 CPU cores: about 2.5 s for LIDC-IDRI-0001 and 5.5 s for the RICORD
series (up to twice that while another job shares the cores); the network takes 0.1 s,
the rest is post-processing on the source grid.

**Intended use.** Research use only. **Not for diagnostic use.**

**Licence.** Apache-2.0, like Lucida.
"""


def write_pack(folder: Path) -> Path:
    return write_fixed_pack(folder, build_onnx(), manifest, MODEL_CARD)


if __name__ == "__main__":
    main(PACK_ID, write_pack)
