"""The BLAST-CT ensemble pack: built from the authors' folder into a temporary folder,
opened and verified by Lucida's own pack loader, run through ``inference.pipeline.run``
(what ``lucida infer``'s worker runs) and compared with the authors' conventions computed
here independently in numpy: their HU window, their tiling (30³ outputs on a 30-voxel grid,
110³ inputs starting at 30 i - 40, edge padding) and their ensemble rule (mean of the
members' softmax, argmax).

Measured cost (2 CPU threads): about 55 s in all uncontended:
phantom 8 s (pipeline 3.6 s + numpy reference 4.7 s), gantry-tilt block ~40 s.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from core.errors import ModelPackError
from core.volume import Volume
from inference import pipeline
from inference.importers.blast_ct_pack import LABELS, MEMBERS, PACK_ID, build_pack
from inference.importers.torch_legacy import LegacyTorchError
from inference.pack import ModelPack
from inference.registry import Registry
from tests.conftest import REQUIRE_SHARED, skip_or_fail
from tests.inference.conftest import cpu_session

TILT = "ct/HeadCT_GE_gantry_tilt"
LOW, HIGH = -15.0, 100.0  # config.json IntensityWindowNormalization


@pytest.fixture(scope="module")
def pack_dir(blast: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    t0 = time.perf_counter()
    packs = build_pack(blast, tmp_path_factory.mktemp("packs"))
    print(f"\nblast-ct pack built in {time.perf_counter() - t0:.2f} s")
    assert [p.name for p in packs] == [PACK_ID]
    return packs[0]


@pytest.fixture(scope="module")
def pack(pack_dir: Path) -> ModelPack:
    return ModelPack.open(pack_dir)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


# --- the pack as Lucida's loader sees it --------------------------------------------------

def test_pack_validates_with_lucidas_loader(pack: ModelPack, pack_dir: Path,
                                            library_dir: Path) -> None:
    pack.verify()  # every ONNX file against its sha256
    m = pack.manifest
    assert m.id == PACK_ID and m.license == "Apache-2.0" and m.modality == ["CT"]
    assert [f.path for f in m.files] == [f"member_{n}.onnx" for n in MEMBERS]
    assert m.ensemble is not None and m.ensemble.combine == "mean" and m.ensemble.weights is None
    norm = m.input.normalization
    assert norm.kind == "hu_window"
    assert (norm.low, norm.high, norm.out_min, norm.out_max, norm.clip) == (
        LOW, HIGH, -1.0, 1.0, True)
    assert (m.input.orientation, m.input.axis_order, m.input.spacing_mm) == (
        "LPS", "kji", (1.0, 1.0, 1.0))
    t = m.tiling
    assert (t.mode, t.patch_size, t.output_margin, t.overlap, t.padding, t.blending,
            t.last_tile) == ("valid", (110, 110, 110), (40, 40, 40), 0.0, "edge", "constant",
                             "on_grid")
    out = m.output
    assert (out.kind, out.activation, out.channels) == ("segmentation_logits", "softmax", 5)
    assert [(lab.value, lab.name) for lab in out.labels] == [
        (1, "Intraparenchymal haemorrhage"), (2, "Extra-axial haemorrhage"),
        (3, "Perilesional oedema"), (4, "Intraventricular haemorrhage")]
    assert len({lab.color for lab in out.labels}) == 4
    assert [s.step for s in m.postprocessing] == ["argmax", "connected_components"]
    card = pack.model_card()
    for needed in ("Lancet Digit Health", "Apache License 2.0", "V1", "members 1-6",
                   "non-contrast", "Runtime and memory measured here"):
        assert needed in card, needed
    # The library installs it like any other pack and finds it by id.
    registry = Registry.for_library(library_dir)
    installed = registry.install(pack_dir)
    assert registry.get(PACK_ID).manifest == m
    installed.verify()


def test_build_refuses_weights_that_differ_from_sha256sums(blast: Path, tmp_path: Path) -> None:
    src = tmp_path / "blast-ct"
    shutil.copytree(blast, src, ignore=shutil.ignore_patterns("reference"))
    weights = src / "weights_v1"
    weights.chmod(0o755)
    victim = weights / "model_4.pt"
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-100] ^= 1  # one bit inside the last tensor's bytes
    victim.write_bytes(bytes(data))
    with pytest.raises(LegacyTorchError, match=r"model_4\.pt: sha256"):
        build_pack(src, tmp_path / "out")
    assert not (tmp_path / "out" / PACK_ID).exists()  # nothing half-written
    with pytest.raises(ModelPackError, match="one pack"):
        build_pack(blast, tmp_path / "out", model="blast-ct-v2")
    with pytest.raises(ModelPackError, match=r"only .* are measured"):
        build_pack(blast, tmp_path / "out", patch=111)


def test_pack_members_give_the_authors_mean_on_their_patch(pack: ModelPack,
                                                           blast: Path) -> None:
    """The ensemble's members, read from the pack (sha256 checked), on the authors' patch."""
    patch = np.load(blast / "reference" / "input_patch_110.npy")
    probs = [_softmax(cpu_session(data).run(None, {"image": patch})[0])
             for data in pack.onnx_bytes()]
    ref = [np.load(blast / "reference" / f"probs_model_{n}.npy") for n in MEMBERS]
    ours, theirs = np.mean(probs, axis=0), np.mean(ref, axis=0)
    diff = float(np.abs(ours - theirs).max())
    print(f"\nensemble mean vs the authors' member mean on their patch: max |dp| = {diff:.3g}")
    assert diff <= 1e-4
    # The members really differ: the mean is not any one member.
    assert min(float(np.abs(r - theirs).max()) for r in ref) > 10 * max(diff, 1e-6)


# --- through the pipeline, against the authors' tiling -------------------------------------

def _phantom() -> np.ndarray:
    """Head-CT-like HU on a (k, j, i) = (30, 60, 30) 1 mm grid, asymmetric on every axis:
    skull on the j = 0 side, brain, a hyperdense blob (acute blood), CSF, air."""
    k, j, i = np.meshgrid(np.arange(30), np.arange(60), np.arange(30), indexing="ij")
    hu = np.full((30, 60, 30), -1000.0, dtype=np.float32)
    hu[:, 4:] = 35.0  # brain
    hu[:, 4:10] = 1200.0  # skull band
    hu[:, 0:4] = 20.0  # scalp
    blob = (k - 12) ** 2 + (j - 22) ** 2 / 2.0 + (i - 9) ** 2 < 30
    hu[blob] = 70.0
    csf = (k - 20) ** 2 + (j - 45) ** 2 + (i - 21) ** 2 / 3.0 < 20
    hu[csf] = 8.0
    hu[:, :, 27:] = -1000.0  # air on one side
    rng = np.random.default_rng(16)
    hu += rng.normal(0.0, 4.0, hu.shape).astype(np.float32)
    return hu


def _authors_tiled_mean(model_hu: np.ndarray, members: list[bytes]) -> np.ndarray:
    """blast-ct's inference on a 1 mm LPS-ordered (z, y, x) array: window, 30³ blocks on the
    grid from 0, 110³ input from 30 i - 40, np.pad 'edge', mean of member softmax."""
    x = np.clip(model_hu.astype(np.float64), LOW, HIGH)
    x = ((2.0 * x - LOW - HIGH) / (HIGH - LOW)).astype(np.float32)
    shape = x.shape
    blocks = [-(-s // 30) for s in shape]
    pad = [(40, 40 + 30 * b - s) for b, s in zip(blocks, shape, strict=True)]
    xp = np.pad(x, pad, mode="edge")
    out = np.zeros((5, *(30 * b for b in blocks)), dtype=np.float64)
    sessions = [cpu_session(m) for m in members]
    for a in np.ndindex(*blocks):
        o = [30 * v for v in a]
        tile = xp[o[0]:o[0] + 110, o[1]:o[1] + 110, o[2]:o[2] + 110][None, None]
        p = np.mean([_softmax(s.run(None, {"image": tile})[0])[0] for s in sessions], axis=0)
        out[:, o[0]:o[0] + 30, o[1]:o[1] + 30, o[2]:o[2] + 30] = p
    return out[:, :shape[0], :shape[1], :shape[2]]


def test_pipeline_gives_the_authors_ensemble_on_a_phantom(pack: ModelPack) -> None:
    hu = _phantom()  # model (LPS) order: k -> S, j -> P, i -> L
    # The series is stored the other way round on k and j (k -> I, j -> A), as many are.
    affine = np.eye(4)
    affine[:3, :3] = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])
    affine[:3, 3] = (-20.0, 35.0, 12.0)
    source = np.ascontiguousarray(hu[::-1, ::-1, :])
    vol = Volume(source, affine, series_uid="2.25.16004", modality="CT")

    t0 = time.perf_counter()
    result = pipeline.run(vol, pack, threads=2, providers="cpu")
    t_pipe = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_model = _authors_tiled_mean(hu, pack.onnx_bytes())
    t_ref = time.perf_counter() - t0
    ref = ref_model[:, ::-1, ::-1, :]  # back to the series' own order
    print(f"\nphantom {source.shape}: pipeline {t_pipe:.1f} s, numpy reference {t_ref:.1f} s")

    prov = result.provenance
    assert prov["parameters"]["exact_reorientation"] is True
    assert prov["parameters"]["model_grid_shape"] == [30, 60, 30]
    assert result.heatmap is not None
    heat = result.heatmap.array
    assert heat.shape == source.shape == result.label_map.array.shape
    diff = float(np.abs(heat - (1.0 - ref[0])).max())
    print(f"heat map (1 - p_background) vs the authors' ensemble: max diff {diff:.3g}; "
          f"max lesion probability {float((1.0 - ref[0]).max()):.3f}")
    assert diff <= 1e-5
    expected = np.argmax(ref, axis=0)
    top2 = np.sort(ref, axis=0)[-2:]
    decided = (top2[1] - top2[0]) > 1e-5  # ties within float32 rounding may go either way
    assert np.array_equal(result.label_map.array[decided], expected[decided])
    # Findings: the 26-connected regions of each lesion class (>= 10 mm³) of the authors' labels.
    want = []
    for value in range(1, 5):
        comp, _ = ndimage.label(expected == value, structure=np.ones((3, 3, 3)))
        want += [(value, int(c)) for c in np.bincount(comp.ravel())[1:] if c >= 10]
    got = [(f.label_value, f.voxel_count) for f in result.findings]
    print(f"findings {got}")
    assert sorted(got) == sorted(want)
    for f in result.findings:
        assert f.volume_mm3 == pytest.approx(f.voxel_count * 1.0)  # 1 mm voxels


# --- the gantry-tilted head CT ----------------------------------------------------------------

def _crop(vol: Volume, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Volume:
    """A sub-block of ``vol`` on its own grid (the affine moved to the block's first voxel)."""
    affine = vol.affine.copy()
    affine[:3, 3] = vol.index_to_lps(lo)
    array = np.ascontiguousarray(vol.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    return Volume(array, affine, series_uid=vol.series_uid, modality=vol.modality,
                  metadata=dict(vol.metadata))


def test_gantry_tilt_head_ct_findings_on_its_own_grid(pack: ModelPack,
                                                      shared_data: Path) -> None:
    from dicomio.load import read_volume

    folder = shared_data / TILT
    files = sorted(folder.glob("*.dcm"))
    if not files:
        skip_or_fail(f"{folder} has no .dcm files", REQUIRE_SHARED)
    full = read_volume(files)
    assert any(w.code.name == "GANTRY_TILT" for w in full.warnings)
    # A 14-slice block, 150 x 150 pixels (56 x 73 x 73 mm), around the largest region the
    # six members find in the whole series (perilesional oedema, 0.43 mL at slices 9-12;
    # the whole series, 792 tiles per member, took 19 min 48 s here with 16 findings).
    # Smaller blocks lose the network's 81 mm context and find nothing, which would leave
    # the findings' checks below with nothing to check.
    assert full.shape == (37, 610, 512)
    lo = (4, 280, 270)
    vol = _crop(full, lo, (18, 430, 420))
    t0 = time.perf_counter()
    result = pipeline.run(vol, pack, threads=2, providers="cpu")
    took = time.perf_counter() - t0
    prov = result.provenance
    print(f"\ngantry-tilt block {vol.shape} (model grid {prov['parameters']['model_grid_shape']})"
          f": {took:.1f} s, {len(result.findings)} findings")

    assert result.findings, "no findings: the checks of their grid would be vacuous"
    assert prov["parameters"]["exact_reorientation"] is False  # resampled to 1 mm and back
    assert prov["parameters"]["model_spacing_mm"] == pytest.approx([1.0, 1.0, 1.0])
    labels = result.label_map.array
    assert labels.shape == vol.shape
    np.testing.assert_allclose(result.label_map.affine, vol.affine)
    assert result.heatmap is not None and result.heatmap.array.shape == vol.shape
    values = {v for v, *_ in LABELS}
    assert set(np.unique(labels).tolist()) <= {0} | values
    voxel_mm3 = float(np.prod(vol.spacing_mm))
    names = {lab.value: lab.name for lab in result.label_map.labels}
    for f in result.findings:
        print(f"  finding {f.id}: {f.label_name}, {f.volume_mm3 / 1000:.3f} mL "
              f"({f.voxel_count} voxels), max p {f.max_score:.2f}")
        assert f.label_name == names[f.label_value]
        assert f.series_uid == vol.series_uid
        assert f.volume_mm3 == pytest.approx(f.voxel_count * voxel_mm3, rel=1e-9)
        assert f.volume_mm3 / 1000.0 >= 0.01  # at least min_finding_mm3, in mL
        (k0, j0, i0), (k1, j1, i1) = f.bbox_index
        assert 0 <= k0 <= k1 < vol.shape[0] and 0 <= j0 <= j1 < vol.shape[1]
        assert 0 <= i0 <= i1 < vol.shape[2]
        box = labels[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1]
        assert int((box == f.label_value).sum()) >= f.voxel_count
    # Every lesion region of at least 10 mm³ on the source grid is a finding.
    count = 0
    for value in values:
        comp, _ = ndimage.label(labels == value, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(comp.ravel())[1:] * voxel_mm3
        count += int((sizes >= 10.0).sum())
    assert len(result.findings) == count
    # No lesion in air outside the head.
    air = vol.array < -500
    assert int((labels[air] != 0).sum()) <= 0.001 * int(air.sum()) + 5
