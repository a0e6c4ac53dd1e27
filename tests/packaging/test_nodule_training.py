"""packaging/nodules: training patches (make_dataset.py) and the training run (train.py).

The patch generator is checked on the demo study (its lung mask from the bundled pack, as
in training): a synthetic nodule's target ball is centred where the nodule was inserted,
in patient space, through a rotated and flipped patch frame; negatives carry no target;
the same seed gives the same bytes. The training run itself needs torch (the side
environment .venv-torch): a short run twice with one seed must give identical weights.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import make_dataset as md
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SIDE_PYTHON = REPO / ".venv-torch" / "bin" / "python"


@pytest.fixture(scope="module")
def demo_background() -> md.Background:
    from dicomio.demo import build_demo_volume

    volume = build_demo_volume()
    hu = np.ascontiguousarray(volume.array, dtype=np.float32)
    affine = np.asarray(volume.affine, dtype=np.float64)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    bg = md.Background("demo", hu, affine, (spacing[0], spacing[1], spacing[2]), spacing[0],
                       md._lung_mask(volume), np.zeros((0, 3)))
    md._negative_pools(bg)
    rng = np.random.default_rng(5)
    for context, _ in md.CONTEXTS:
        for r in (4.0, 9.0):
            bg.centres[(context, r)] = md.candidate_centres(
                bg.lung, bg.spacing, r, context, rng, volume_hu=bg.hu, count=50)
    return bg


def _synthetic(seed: int, bg: md.Background) -> tuple[np.ndarray, np.ndarray, dict]:
    return md.make_patch(bg, "synthetic", np.random.default_rng(seed))


def test_patch_values_and_target(demo_background: md.Background,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The target ball sits on the inserted nodule: the patch is brighter inside the
    ball than in the ring around it (a solid nodule in lung), for every patch frame."""
    monkeypatch.setattr(md, "RADIUS_BINS_MM", (4.0, 9.0))
    monkeypatch.setattr(md, "KINDS", (("solid", 1.0),))
    made = 0
    for seed in range(12):
        image, mask, meta = _synthetic(seed, demo_background)
        assert image.dtype == np.float16 and image.shape == (md.PATCH,) * 3
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        if meta["kind"] != "synthetic":
            continue  # no candidate for that size: a lung negative instead
        made += 1
        assert mask.any()
        d_vox = meta["diameter_mm"] / md.SPACING_MM
        assert mask.sum() == pytest.approx(np.pi / 6 * d_vox ** 3, rel=0.25)
        from scipy import ndimage

        ring = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask)
        inside = float(image[ndimage.binary_erosion(mask)].mean()) if \
            ndimage.binary_erosion(mask).any() else float(image[mask > 0].mean())
        assert inside > float(image[ring].mean()) + 0.05, meta
    assert made >= 6


def test_negatives_have_no_target_and_seed_repeats(demo_background: md.Background) -> None:
    for kind in ("lung", "vessel", "pleura"):
        _image, mask, meta = md.make_patch(demo_background, kind, np.random.default_rng(3))
        assert not mask.any() and meta["kind"] == kind
    a = md.make_patch(demo_background, "lung", np.random.default_rng(11))
    b = md.make_patch(demo_background, "lung", np.random.default_rng(11))
    c = md.make_patch(demo_background, "lung", np.random.default_rng(12))
    assert a[0].tobytes() == b[0].tobytes() and a[0].tobytes() != c[0].tobytes()


def test_patch_frame_is_a_rotation_with_flips() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        f = md._patch_frame(rng, augment=True)
        np.testing.assert_allclose(f.T @ f, np.eye(3), atol=1e-12)
        # within 15 degrees of an axis-aligned, possibly flipped frame
        assert np.all(np.abs(f).max(axis=0) > np.cos(np.radians(15.0)) - 1e-9)


@pytest.mark.skipif(not SIDE_PYTHON.is_file(),
                    reason="needs the side venv .venv-torch with torch 2.13.0 "
                           "(make train-nodules creates it)")
def test_training_is_repeatable(tmp_path: Path) -> None:
    """Two 4-step runs with one seed on the same patches give the same weights, bit for
    bit (torch's deterministic algorithms, one process, fixed thread count)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    image = rng.random((6, md.PATCH, md.PATCH, md.PATCH)).astype(np.float16)
    mask = np.zeros(image.shape, np.uint8)
    mask[:3, 28:36, 28:36, 28:36] = 1
    np.savez(data / "patches.npz", image=image, mask=mask)
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        subprocess.run([str(SIDE_PYTHON), str(REPO / "packaging" / "nodules" / "train.py"),
                        "--data", str(data), "--out", str(out), "--steps", "4",
                        "--threads", "2"], check=True, capture_output=True, timeout=600)
        digests.append(_weights(out))
        info = json.loads((out / "train.json").read_text())
        assert info["steps"] == 4 and (out / "model.onnx").stat().st_size > 0
    assert digests[0] == digests[1]


def _weights(out: Path) -> str:
    """A digest of the exported ONNX initializers (the weights, not the file's metadata)."""
    import hashlib

    import onnx

    model = onnx.load(str(out / "model.onnx"))
    h = hashlib.sha256()
    for init in sorted(model.graph.initializer, key=lambda t: t.name):
        h.update(init.name.encode())
        h.update(init.raw_data)
    return h.hexdigest()
