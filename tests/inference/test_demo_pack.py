"""The bundled demo pack: reproducible from its script, valid, and it runs on the demo CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference import check_input, run
from inference.demo_pack import MARK, PACK_ID, write_pack
from inference.pack import ModelPack
from inference.registry import Registry, bundled_models_dir

BUNDLED = bundled_models_dir() / PACK_ID


def test_bundled_files_are_reproduced_byte_for_byte(tmp_path: Path) -> None:
    fresh = write_pack(tmp_path / PACK_ID)
    for name in ("model.onnx", "manifest.json", "MODEL_CARD.md"):
        assert (fresh / name).read_bytes() == (BUNDLED / name).read_bytes(), name


def test_bundled_pack_is_listed_valid_and_honest(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    pack = reg.get(PACK_ID)
    assert pack.bundled
    pack.verify()
    card = pack.model_card()
    assert "not a trained model" in card and "Not for diagnostic use" in card
    assert pack.manifest.demo_only and "demo_only" in card


def test_demo_pack_finds_the_isolated_demo_nodule() -> None:
    from dicomio.demo import DEMO_NODULES, build_demo_volume

    vol = build_demo_volume()
    pack = ModelPack.open(BUNDLED)
    assert check_input(vol, pack.manifest) == []
    res = run(vol, pack, threads=2)
    n1 = next(n for n in DEMO_NODULES if n.name == "N1")  # 9 mm, surrounded by lung
    nearest = min(res.findings,
                  key=lambda f: float(np.linalg.norm(np.subtract(f.centroid_lps, n1.centre_lps))))
    assert np.linalg.norm(np.subtract(nearest.centroid_lps, n1.centre_lps)) < 2.0
    assert 0.5 * n1.diameter_mm < nearest.longest_diameter_mm < 1.5 * n1.diameter_mm
    assert nearest.max_score > 0.9
    # The CT table (a large dense plate in air) is not reported as a focus.
    assert all(f.volume_mm3 <= 15000 for f in res.findings)
    assert res.heatmap is not None and res.heatmap.array.shape == vol.shape
    # Whoever reads a result (list, export, provenance) sees it is a rule, not a model.
    assert all(f.label_name.startswith(MARK) for f in res.findings)
    assert res.heatmap.name.startswith(MARK)
    assert res.provenance["model"]["name"].startswith(MARK)


def test_demo_pack_rejects_mr_with_a_warning() -> None:
    from dicomio.demo import build_demo_volume

    vol = build_demo_volume(shape=(40, 64, 64))
    vol.modality = "MR"
    warnings = check_input(vol, ModelPack.open(BUNDLED).manifest)
    assert any("MR" in w and "CT" in w for w in warnings)
    assert any("coarser" in w for w in warnings)
