"""bench/froc.py's FROC maths on hand-made cases, and bench/nodule_froc.py end to end on
LIDC-IDRI-0001 with a small real detector pack (ONNX built here)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.inference.conftest import OPSET, base_manifest, write_pack

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


froc = _load("froc")
tool = _load("nodule_froc")
D, T = froc.Detection, froc.Target

# --------------------------------------------------------------------------- the maths
#
# Scan A: N1 (radius 5) hit by a 0.9 and, again, by a 0.5 (a duplicate, ignored); N2
# (radius 3) hit by a 0.88 at 2.9 mm; a 0.99 on an excluded < 3 mm mark (LUNA16's 10 mm
# stand-in diameter) is ignored; a 0.8 on nothing is a false positive.
# Scan B: N3 (radius 4) is found by no one: a 0.2 lies 4.5 mm from it (a false positive);
# a 0.95 on nothing is a false positive.
#
# By hand, thresholds from the top (sensitivity over 3 nodules, FPs over 2 scans):
#   inf: 0/3, 0 | 0.95: 0/3, 0.5 | 0.9: 1/3, 0.5 | 0.88: 2/3, 0.5 | 0.8: 2/3, 1.0 |
#   0.2: 2/3, 1.5
# Per FP rate the highest sensitivity: (0, 0), (0.5, 2/3), (1, 2/3), (1.5, 2/3); LUNA16
# interpolates linearly between them: 1/8 FP/scan -> 1/6, 1/4 -> 1/3, 1/2 .. 8 -> 2/3.
# CPM = (1/6 + 1/3 + 5 x 2/3) / 7 = 23/42.
SCAN_A = ([D((1.0, 1.0, 0.0), 0.9), D((2.0, 0.0, 0.0), 0.5), D((0.0, 52.0, 0.0), 0.99),
           D((100.0, 0.0, 0.0), 0.8), D((50.0, 2.9, 0.0), 0.88)],
          [T((0.0, 0.0, 0.0), 10.0), T((50.0, 0.0, 0.0), 6.0)],
          [T((0.0, 50.0, 0.0), -1.0)])
SCAN_B = ([D((-80.0, 0.0, 0.0), 0.95), D((0.0, 0.0, 4.5), 0.2)],
          [T((0.0, 0.0, 0.0), 8.0)], [])


def test_match_sorts_hits_duplicates_excluded_and_false_positives() -> None:
    a = froc.match(*SCAN_A)
    assert a.outcomes == ("tp", "duplicate", "excluded", "fp", "tp")
    assert a.nodule_scores == (0.9, 0.88) and a.fp_scores == (0.8,) and a.hits == 2
    b = froc.match(*SCAN_B)
    assert b.outcomes == ("fp", "fp") and b.nodule_scores == (None,) and b.hits == 0
    # Without the excluded mark, the 0.99 is a false positive.
    assert froc.match(SCAN_A[0], SCAN_A[1]).outcomes[2] == "fp"


def test_froc_curve_sensitivities_and_cpm_by_hand() -> None:
    curve = froc.froc([froc.match(*SCAN_A), froc.match(*SCAN_B)])
    assert (curve.n_nodules, curve.n_scans) == (3, 2)
    assert curve.thresholds == (math.inf, 0.95, 0.9, 0.88, 0.8, 0.2)
    assert curve.fp_per_scan == (0.0, 0.5, 0.5, 0.5, 1.0, 1.5)
    assert curve.sensitivity == (0.0, 0.0, 1 / 3, 2 / 3, 2 / 3, 2 / 3)
    sens = [froc.sensitivity_at(curve, r) for r in froc.LUNA16_FP_RATES]
    assert sens == pytest.approx([1 / 6, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert froc.cpm(curve) == pytest.approx(23 / 42)


def test_froc_edge_cases() -> None:
    # All found with no false positive: 1 everywhere.
    perfect = froc.froc([froc.match([D((0.0, 0.0, 0.0), 0.5)], [T((0.0, 0.0, 0.0), 5.0)])])
    assert froc.cpm(perfect) == 1.0
    # Ties: a hit and a false positive of the same score enter together, so the curve
    # goes straight from (0, 0) to (1, 1): half way at 0.5 FP/scan.
    tie = froc.froc([froc.match([D((0.0, 0.0, 0.0), 0.5), D((9.0, 9.0, 9.0), 0.5)],
                                [T((0.0, 0.0, 0.0), 5.0)])])
    assert froc.sensitivity_at(tie, 0.5) == 0.5 and froc.sensitivity_at(tie, 1.0) == 1.0
    # No reference nodule at all: sensitivity is undefined, not 0 or 1.
    empty = froc.froc([froc.match([D((0.0, 0.0, 0.0), 0.5)], [])])
    assert math.isnan(froc.cpm(empty))
    with pytest.raises(ValueError):
        froc.froc([])


# --------------------------------------------------------------------------- end to end


def _constant_boxes(boxes: list[list[float]]) -> bytes:
    """A real ONNX detector that always returns ``boxes`` ([N, 7]: tensor corners, score)."""
    value = numpy_helper.from_array(np.asarray(boxes, dtype=np.float32), "boxes")
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["y"], value=value)], "constant_boxes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "a", "b", "c"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(boxes), 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def lidc_0001(shared_data: Path) -> Path:
    folder = shared_data / "ct" / "LIDC-IDRI-0001"
    if not (folder / "069.xml").is_file():
        pytest.skip(f"{folder}/069.xml is absent")
    return folder


@pytest.mark.parametrize("lung_mask", [False, True], ids=["plain", "mask_by-lung"])
def test_the_tool_on_lidc_0001_with_a_real_pack(lidc_0001: Path, tmp_path: Path,
                                                lung_mask: bool) -> None:
    # Boxes in the model's tensor (LPS, k j i, native spacing: the series' own grid,
    # k = 0 at z = -340 since the loader sorts slices along +S): one on the four-reader
    # nodule (pixel column 316, row 367, z -115 mm -> k 90), scored 0.6; one far from
    # every mark, scored 0.9. Expected: FPs per scan 0 (inf), 1 (0.9), 1 (0.6 = the hit):
    # sensitivity 0 at 1/8..1/2, 1 at 1..8; CPM 4/7. With ``mask_by`` the bundled lung
    # mask pack runs first and the far box, outside the body, is dropped: sensitivity 1
    # at every rate.
    hit, far = (90, 367, 316), (20, 60, 60)
    if lung_mask and not (BENCH.parent / "resources/models/lucida-lung-mask").is_dir():
        pytest.skip("the bundled lucida-lung-mask pack is absent")
    boxes = [[p - 2 for p in at] + [p + 3 for p in at] + [score]
             for at, score in ((hit, 0.6), (far, 0.9))]
    pack = write_pack(tmp_path / "pack", base_manifest(
        id="test-nodule-boxes", name="Constant boxes", body_part=["CHEST"],
        tiling={"mode": "whole", "patch_size": None, "divisible_by": 1},
        output={"kind": "detections", "activation": "none", "channels": 7,
                "labels": [{"value": 1, "name": "nodule"}], "min_finding_mm3": 0.0},
        postprocessing=[{"step": "mask_by", "model": "lucida-lung-mask", "labels": [1],
                         "dilate_mm": 5.0}] if lung_mask else []),
        {"model.onnx": _constant_boxes(boxes)})
    out = tmp_path / "froc.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "nodule_froc.py"), str(lidc_0001), "--pack", str(pack),
         "--threads", "2", "--json", str(out), "--library", str(tmp_path / "library")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "LIDC-IDRI-0001" in text  # the scan's row
    for rate in ("0.125", "0.25", "0.5", "1 FP", "2 FP", "4 FP", "8 FP", "CPM"):
        assert rate in text, text
    assert ("1.000" if lung_mask else "0.696") in text  # the CPM (4.875 / 7)

    data = json.loads(out.read_text())
    (scan,) = data["scans"]
    assert scan["error"] is None and scan["slices"] == 133
    assert scan["load_s"] > 0 and scan["inference_s"] > 0
    (ref,) = scan["reference"]
    assert ref["readers"] == 4
    if lung_mask:
        assert [d["outcome"] for d in scan["detections"]] == ["tp"]
        assert (scan["hits"], scan["false_positives"]) == (1, 0)
        assert set(data["sensitivity_at"].values()) == {1.0} and data["cpm"] == 1.0
        return
    assert [d["outcome"] for d in sorted(scan["detections"], key=lambda d: d["score"])] == [
        "tp", "fp"]
    assert (scan["hits"], scan["false_positives"]) == (1, 1)
    # (0, 0) then (1 FP, 1 hit): linear in between, as LUNA16 interpolates
    assert data["sensitivity_at"] == {"0.125": 0.125, "0.25": 0.25, "0.5": 0.5, "1": 1.0,
                                      "2": 1.0, "4": 1.0, "8": 1.0}
    assert data["cpm"] == pytest.approx(4.875 / 7)
    assert data["froc"]["fp_per_scan"] == [0.0, 1.0, 1.0]
    assert data["pack"]["id"] == "test-nodule-boxes"


def test_the_default_pack_is_a_chest_ct_detector_or_a_message(tmp_path: Path) -> None:
    from inference.pack import ModelPack
    from inference.registry import Registry, bundled_models_dir

    detector = write_pack(tmp_path / "det", base_manifest(
        id="chest-det", body_part=["CHEST"], tiling={"mode": "whole", "patch_size": None},
        output={"kind": "detections", "activation": "none", "channels": 7,
                "labels": [{"value": 1, "name": "nodule"}]}, postprocessing=[]),
        {"model.onnx": _constant_boxes([[0, 0, 0, 1, 1, 1, 0.5]])})
    brain = write_pack(tmp_path / "brain", base_manifest(
        id="brain-det", body_part=["BRAIN"], tiling={"mode": "whole", "patch_size": None},
        output={"kind": "detections", "activation": "none", "channels": 7,
                "labels": [{"value": 1, "name": "bleed"}]}, postprocessing=[]),
        {"model.onnx": _constant_boxes([[0, 0, 0, 1, 1, 1, 0.5]])})
    bundled = Registry(tmp_path / "none").list()  # the demo pack (demo-only), deepbet (MR)
    assert tool.default_pack([p for p in bundled if p.id == "lucida-demo-lung-density"]) is None
    packs = [ModelPack.open(brain), ModelPack.open(detector)]
    assert tool.default_pack(packs).id == "chest-det"
    # The tool itself: the bundled chest CT detector when one ships, else a message
    # naming what to pass (an empty library: no user packs).
    shipped = tool.default_pack(Registry(tmp_path / "none", bundled_models_dir()).list())
    proc = subprocess.run(
        [sys.executable, str(BENCH / "nodule_froc.py"), str(tmp_path / "nothing"),
         "--library", str(tmp_path / "library")],
        capture_output=True, text=True, timeout=60)
    if shipped is None:
        assert proc.returncode == 1
        assert "--pack PACK" in proc.stderr and "nodule detector" in proc.stderr
    else:  # the pack is used; the folder is not a case
        assert proc.returncode == 2 and "not a folder" in proc.stdout


def test_folders_without_a_usable_reader_xml_fail_their_rows(tmp_path: Path) -> None:
    from core.errors import DicomReadError

    with pytest.raises(DicomReadError, match="no LIDC reader XML"):
        tool.find_cases(tmp_path)
    (tmp_path / "a.xml").write_text('<LidcReadMessage xmlns="http://www.nih.gov">'
                                    "<ResponseHeader><SeriesInstanceUid>1.2.3"
                                    "</SeriesInstanceUid></ResponseHeader></LidcReadMessage>")
    with pytest.raises(DicomReadError, match=r"names \(1\.2\.3\) is not among the image"):
        tool.find_cases(tmp_path)
    (tmp_path / "b.xml").write_text("<LidcReadMessage><ResponseHeader>")  # broken
    cases, failed = tool.find_cases(tmp_path)
    assert cases == [] and len(failed) == 1
    assert failed[0].name == f"{tmp_path.name}/b.xml"
    assert "b.xml: not well-formed XML" in (failed[0].error or "")
