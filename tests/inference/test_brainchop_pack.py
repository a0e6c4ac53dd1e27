"""brainchop packs: manifests from the fixed vocabulary, and the pack's own pipeline path
reproducing the authors' reference on the conformed T1.

CI cost (2 cores): building the eight packs ~3 s; model5_gw_ae through ``pipeline.run`` on
the 256^3 conformed T1 ~10 s, 1.2 GB peak RSS.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelPackError
from inference.importers.brainchop import CLI_QNORMALIZE, normalize_volume
from inference.importers.brainchop_pack import build_pack, model_folders
from inference.manifest import Percentiles, parse_manifest
from inference.normalize import normalize

ALL_MODELS = ["mindgrab", "model11_gw_ae", "model18cls", "model20chan3cls", "model21_104class",
              "model30chan18cls", "model30chan50cls", "model5_gw_ae"]


@pytest.fixture(scope="module")
def meshnet_dir(shared_models: Path) -> Path:
    return shared_models / "brainchop-meshnet"


def test_percentiles_with_epsilon_is_brainchops_qnormalize() -> None:
    """The manifest's percentiles (epsilon, every voxel) equal brainchop 0.2.5's qnormalize,
    including voxels above q98 that the plain map would clip at the input."""
    rng = np.random.default_rng(7)
    x = rng.gamma(2.0, 40.0, size=(40, 30, 20)).astype(np.float32)
    x[:3] = 0
    spec = Percentiles(kind="percentiles", lower=2, upper=98, epsilon=1e-3, statistics="all")
    ours = normalize(x.copy(), spec)
    theirs = normalize_volume(x, CLI_QNORMALIZE)
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    assert ours.min() == 0.0 and ours.max() == 1.0
    # epsilon 0 keeps the old behaviour (input clipped to [lo, hi]).
    plain = normalize(x.copy(), Percentiles(kind="percentiles", lower=2, upper=98))
    assert plain.max() == pytest.approx(1.0)


def test_every_model_builds_a_valid_pack(meshnet_dir: Path, tmp_path: Path) -> None:
    packs = build_pack(meshnet_dir, tmp_path)
    assert sorted(p.name for p in packs) == sorted(f"brainchop-{m.lower()}" for m in ALL_MODELS)
    for pack in packs:
        manifest = parse_manifest((pack / "manifest.json").read_bytes())
        assert manifest.input.orientation == "LIA" and manifest.input.axis_order == "ijk"
        assert manifest.input.shape == (256, 256, 256)
        assert manifest.input.spacing_mm == (1.0, 1.0, 1.0)
        norm = manifest.input.normalization
        assert isinstance(norm, Percentiles) and norm.epsilon == 1e-3
        assert (norm.lower, norm.upper, norm.statistics) == (2.0, 98.0, "all")
        assert manifest.license == "MIT" and "joss" in manifest.citation.lower()
        assert manifest.modality == ["MR"]
        onnx = pack / manifest.files[0].path
        import hashlib

        assert hashlib.sha256(onnx.read_bytes()).hexdigest() == manifest.files[0].sha256
        card = (pack / "MODEL_CARD.md").read_text()
        for heading in ("What it does", "Citation", "Licence", "Intended use",
                        "Known limits", "Input requirements", "Runtime and memory"):
            assert heading in card, (pack.name, heading)
        # labels: names and colours from the model's files, background left implicit
        assert all(lab.value >= 1 and lab.name for lab in manifest.output.labels)
        assert manifest.output.kind == "label_index" and manifest.output.channels == 1
        assert [lab.value for lab in manifest.output.labels] == list(
            range(1, len(manifest.output.labels) + 1))
    # The memory plan covers the peak RSS measured for one `lucida infer` (10.5 GB).
    from inference.memory import plan_memory

    parc = parse_manifest((tmp_path / "brainchop-model21_104class" / "manifest.json").read_bytes())
    plan = plan_memory(parc, (176, 256, 256), (256, 256, 256), limit_bytes=64 << 30)
    assert plan.total_bytes >= 10.5e9, plan.describe()
    mindgrab = parse_manifest((tmp_path / "brainchop-mindgrab" / "manifest.json").read_bytes())
    assert [s.step for s in mindgrab.postprocessing] == ["keep_largest_component"]
    sub = parse_manifest((tmp_path / "brainchop-model30chan18cls" / "manifest.json").read_bytes())
    assert len(sub.output.labels) == 17 and sub.output.labels[6].name == "Thalamus"


def test_one_named_model_and_unknown_names(meshnet_dir: Path, tmp_path: Path) -> None:
    assert [p.name for p in build_pack(meshnet_dir, tmp_path, model="model5_gw_ae")] == [
        "brainchop-model5_gw_ae"]
    assert model_folders(meshnet_dir / "mindgrab") == [meshnet_dir / "mindgrab"]
    with pytest.raises(ModelPackError, match="no brainchop model 'nope'"):
        build_pack(meshnet_dir, tmp_path / "x", model="nope")
    with pytest.raises(ModelPackError, match="no brainchop model folders"):
        build_pack(tmp_path / "brainchop-model5_gw_ae", tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_model5_pack_pipeline_matches_reference(meshnet_dir: Path, shared_models: Path,
                                                tmp_path: Path) -> None:
    """The pack's own path (conform grid, percentiles, whole-grid run, argmax, the joint
    largest-cluster filter, inverse grid) on the conformed T1 equals brainchop 0.2.5's CLI
    output (after its ``niimath -bwlabel 26`` filter) on >= 99.99 % of voxels."""
    import nibabel as nib

    from core.convert import array_from_ijk, from_ras_affine_ijk
    from core.volume import Volume
    from inference import pipeline

    (pack,) = build_pack(meshnet_dir, tmp_path, model="model5_gw_ae")
    img = nib.load(str(shared_models / "data-mr" / "brain-t1-conformed-256.nii.gz"))
    array = np.ascontiguousarray(array_from_ijk(np.asarray(img.dataobj))).astype(np.float32)
    volume = Volume(array, from_ras_affine_ijk(np.asarray(img.affine, dtype=np.float64)),
                    series_uid="", modality="MR", metadata={"source": "nifti"})
    result = pipeline.run(volume, pack, threads=2)
    labels_ijk = result.label_map.array.transpose(2, 1, 0)  # (k, j, i) -> NIfTI (i, j, k)
    ref = np.load(meshnet_dir / "reference" / "model5_gw_ae_labels_xyz.npz")
    expected = ref["labels"]  # the CLI's saved output, after its largest-cluster filter
    agreement = float(np.mean(labels_ijk == expected))
    print(f"model5_gw_ae pack vs reference: {agreement:.6%} "
          f"({int(np.sum(labels_ijk != expected))} voxels differ); "
          f"timings {result.provenance['timings_s']}")
    assert agreement >= 0.9999
    assert result.provenance["parameters"]["exact_reorientation"] is True
    assert json.loads(json.dumps(result.provenance["parameters"]["normalization"]))[
        "epsilon"] == 1e-3


def test_label_index_output_rules(meshnet_dir: Path, tmp_path: Path) -> None:
    """A label_index output (ArgMax in the graph) is whole-grid only, never argmax'd again,
    one channel."""
    (pack,) = build_pack(meshnet_dir, tmp_path, model="model5_gw_ae")
    base = json.loads((pack / "manifest.json").read_text())
    parse_manifest(base)
    bad = [
        ({"tiling": {"mode": "sliding", "patch_size": [64, 64, 64]}}, "'whole' tiling"),
        ({"postprocessing": [{"step": "argmax"}]}, "already labels"),
        ({"output": {**base["output"], "channels": 3}}, "channels 1"),
    ]
    for change, message in bad:
        with pytest.raises(ModelPackError, match=message):
            parse_manifest({**base, **change})
