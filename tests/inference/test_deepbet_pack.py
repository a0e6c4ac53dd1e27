"""deepbet as a two-stage pack: the bundled pack (resources/models/deepbet-fp16w) is what the
builder makes, it reproduces deepbet 1.0.2's own mask on the conformed T1, and the builder
refuses incomplete or altered exports.

CI cost (2 cores): the pack on the 256³ conformed T1 ~10-12 s, ~1.2 GB peak RSS.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelPackError
from inference.importers.deepbet_pack import build_pack, manifest_for
from inference.pack import ModelPack
from inference.registry import bundled_models_dir as bundled_dir

BUNDLED = "deepbet-fp16w"


@pytest.fixture(scope="module")
def bundled() -> ModelPack:
    pack = ModelPack.open(bundled_dir() / BUNDLED)
    pack.verify()
    return pack


def test_bundled_pack_is_the_builders(bundled: ModelPack) -> None:
    """The committed manifest equals what ``manifest_for`` makes from its files, so the
    bundled pack and the importer cannot drift apart; the licence travels in the card."""
    raw = json.loads((bundled_dir() / BUNDLED / "manifest.json").read_text())
    files = {f["path"]: f["sha256"] for f in raw["files"]}
    assert raw == manifest_for(BUNDLED, files, "deepbet_bbox_fp16w.onnx", " (float16 weights)")
    card = bundled.model_card()
    assert "MIT License" in card and "University of Münster" in card
    assert "Runtime and memory measured here" in card
    m = bundled.manifest
    assert m.localizer is not None and m.localizer.file == "deepbet_bbox_fp16w.onnx"
    assert [f.path for f in m.member_files] == ["deepbet_brain_fp16w.onnx"]


def test_bundled_pack_reproduces_deepbets_mask(bundled: ModelPack,
                                               shared_models: Path) -> None:
    """deepbet-cli's mask on the conformed T1 (../shared reference) vs the pack through
    ``pipeline.run``: Dice >= 0.99 (the issue's bar; measured: identical)."""
    import nibabel as nib

    from core.convert import array_from_ijk, from_ras_affine_ijk
    from core.volume import Volume
    from inference import pipeline

    img = nib.load(str(shared_models / "data-mr" / "brain-t1-conformed-256.nii.gz"))
    array = np.ascontiguousarray(array_from_ijk(np.asarray(img.dataobj))).astype(np.float32)
    volume = Volume(array, from_ras_affine_ijk(np.asarray(img.affine, dtype=np.float64)),
                    series_uid="", modality="MR", metadata={"source": "nifti"})
    result = pipeline.run(volume, bundled, threads=2)
    ours = result.label_map.array.transpose(2, 1, 0) == 1  # (k, j, i) -> NIfTI (i, j, k)
    ref = np.load(shared_models / "deepbet" / "reference" / "deepbet_mask.npz")["mask"] == 1
    dice = 2 * float((ours & ref).sum()) / float(ours.sum() + ref.sum())
    print(f"deepbet pack vs deepbet-cli: Dice {dice:.6f}, {int((ours != ref).sum())} voxels "
          f"differ; box {result.provenance['parameters']['localizer_box']}; "
          f"timings {result.provenance['timings_s']}")
    assert dice >= 0.99
    assert result.provenance["parameters"]["exact_reorientation"] is True
    (finding,) = result.findings
    assert finding.label_name == "brain"
    assert finding.voxel_count == int(ours.sum())


def _net(shape: tuple[int, int, int], softmax: bool = True) -> bytes:
    """A tiny stand-in exported like deepbet's: input ``input`` [1,1,*shape], two channels
    (x, -x), then Softmax over the channels as output ``probabilities``."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, *shape])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 2, *shape])
    nodes = [helper.make_node("Neg", ["input"], ["neg"]),
             helper.make_node("Concat", ["input", "neg"], ["two"], axis=1)]
    nodes.append(helper.make_node("Softmax", ["two"], ["probabilities"], axis=1) if softmax
                 else helper.make_node("Identity", ["two"], ["probabilities"]))
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _export_dir(tmp_path: Path, brain: bytes | None = None) -> Path:
    """A folder shaped like export_onnx.py's output (tiny stand-in networks)."""
    src = tmp_path / "export"
    src.mkdir(parents=True)
    files = {}
    blobs = {"deepbet_brain_fp16w.onnx": brain or _net((4, 4, 4)),
             "deepbet_bbox_fp16w.onnx": _net((2, 2, 2))}
    for name, data in blobs.items():
        (src / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest()}
    (src / "EXPORT.json").write_text(json.dumps({"files": files, "wheel": {
        "name": "deepbet-1.0.2-py3-none-any.whl", "sha256": "test"}}))
    (src / "LICENSE").write_text("MIT License\n\nCopyright (c) 2023 test\n")
    return src


def test_builder_takes_the_softmax_off_the_brain_network(tmp_path: Path) -> None:
    """The pack's brain network ends at the logits (the pipeline applies the softmax), the
    bbox network keeps its probabilities, and the manifest is ``manifest_for``'s."""
    import onnx
    import onnxruntime as ort

    (pack,) = build_pack(_export_dir(tmp_path), tmp_path / "out")
    assert pack.name == BUNDLED
    ModelPack.open(pack).verify()
    raw = json.loads((pack / "manifest.json").read_text())
    files = {f["path"]: f["sha256"] for f in raw["files"]}
    assert raw == manifest_for(BUNDLED, files, "deepbet_bbox_fp16w.onnx", " (float16 weights)")
    brain = onnx.load(str(pack / "deepbet_brain_fp16w.onnx"))
    assert [o.name for o in brain.graph.output] == ["logits"]
    assert "Softmax" not in {n.op_type for n in brain.graph.node}
    x = np.linspace(-2, 2, 64, dtype=np.float32).reshape(1, 1, 4, 4, 4)
    (logits,) = ort.InferenceSession(str(pack / "deepbet_brain_fp16w.onnx"),
                                     providers=["CPUExecutionProvider"]).run(None, {"input": x})
    np.testing.assert_array_equal(logits, np.concatenate([x, -x], axis=1))
    bbox = onnx.load(str(pack / "deepbet_bbox_fp16w.onnx"))
    assert [o.name for o in bbox.graph.output] == ["probabilities"]


def test_builder_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    src = _export_dir(tmp_path)
    with pytest.raises(ModelPackError, match="no model 'deepbet-fp8'"):
        build_pack(src, tmp_path / "out", model="deepbet-fp8")
    with pytest.raises(ModelPackError, match=r"deepbet_brain\.onnx is missing"):
        build_pack(src, tmp_path / "out", model="deepbet")
    (src / "deepbet_bbox_fp16w.onnx").write_bytes(b"altered")
    with pytest.raises(ModelPackError, match=r"deepbet_bbox_fp16w\.onnx: sha256 differs"):
        build_pack(src, tmp_path / "out")
    (src / "LICENSE").unlink()
    with pytest.raises(ModelPackError, match="LICENSE is missing"):
        build_pack(src, tmp_path / "out")
    (src / "EXPORT.json").unlink()
    with pytest.raises(ModelPackError, match=r"EXPORT\.json: cannot read"):
        build_pack(src, tmp_path / "out")
    # A brain network that does not end in the channel softmax is not deepbet's export.
    other = _export_dir(tmp_path / "other", brain=_net((4, 4, 4), softmax=False))
    with pytest.raises(ModelPackError, match="does not end in Softmax"):
        build_pack(other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
