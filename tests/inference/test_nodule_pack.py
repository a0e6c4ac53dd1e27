"""The bundled lung nodule detector (resources/models/lucida-lung-nodules), trained by
`make train-nodules` (packaging/nodules/): the engine accepts it, it runs with the lung mask
it depends on, finds the demo study's synthetic nodules (a phantom it never saw), and on
LIDC-IDRI-0001 ranks the four-reader nodule first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.manifest import MaskByStep
from inference.pack import ModelPack
from inference.pipeline import run
from inference.registry import Registry, bundled_models_dir, mask_packs

PACK_ID = "lucida-lung-nodules"
PACK = bundled_models_dir() / PACK_ID


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry(tmp_path_factory.mktemp("user-packs"))


def _hit(finding: Any, centre: Any, radius_mm: float) -> bool:
    return bool(np.linalg.norm(np.asarray(finding.centroid_lps) - np.asarray(centre))
                <= radius_mm)


def test_pack_is_valid_small_and_needs_the_lung_mask(registry: Registry) -> None:
    pack = ModelPack.open(PACK)
    pack.onnx_bytes()  # every file against its sha256
    size = sum(p.stat().st_size for p in PACK.iterdir())
    assert size <= 10 * 2**20, f"{size / 2**20:.1f} MB"
    m = pack.manifest
    assert m.modality == ["CT"] and "CHEST" in m.body_part
    assert [s.model for s in m.postprocessing if isinstance(s, MaskByStep)] == [
        "lucida-lung-mask"]
    assert mask_packs(m, registry.list()) == {
        "lucida-lung-mask": str(bundled_models_dir() / "lucida-lung-mask")}
    card = (PACK / "MODEL_CARD.md").read_text()
    for heading in ("How it was trained", "Measured results", "Limits and biases"):
        assert f"## {heading}" in card
    assert "synthetic" in card.lower()
    # sensitivity by size is measured and its limit stated (issue 17: state the limits)
    assert "Solid smooth nodules drawn into the demo phantom" in card
    assert "- Small nodules are often missed: in the size study" in card


def test_finds_the_demo_study_nodules(registry: Registry) -> None:
    from dicomio.demo import DEMO_NODULES, build_demo_volume

    volume = build_demo_volume()
    result = run(volume, PACK, threads=2, mask_packs=mask_packs(
        ModelPack.open(PACK).manifest, registry.list()))
    assert result.provenance["masks_from"]["lucida-lung-mask"]["id"] == "lucida-lung-mask"
    ranked = sorted(result.findings, key=lambda f: -f.max_score)
    # N4, 4 mm against a vessel, is missed (the model card says so); the others are found.
    for n in [n for n in DEMO_NODULES if n.name != "N4"]:
        hits = [f for f in ranked if _hit(f, n.centre_lps, max(n.radius_mm, 4.0))]
        assert hits, f"missed {n.description}"
        # the finding measures the nodule: diameter within 3 mm, 1 mm grid and blur
        assert abs(hits[0].longest_diameter_mm - n.diameter_mm) <= 3.0 + 0.25 * n.diameter_mm
        assert hits[0].volume_mm3 > 0.2 * n.volume_mm3
    # the operating point: every finding's peak probability reaches the pack's min_score
    assert ranked and all(f.max_score >= 0.99 for f in ranked)


@pytest.mark.shared
def test_lidc_0001_four_reader_nodule_ranks_first(shared_data: Path,
                                                  registry: Registry) -> None:
    from dicomio.group import group_series
    from dicomio.lidc_xml import SliceGeometry, lidc_reference, read_lidc_xml
    from dicomio.load import read_volume
    from dicomio.scan import scan_paths

    folder = shared_data / "ct" / "LIDC-IDRI-0001"
    [group] = [g for g in group_series(scan_paths([folder]).instances)
               if g.object_kind.is_image and not g.is_localizer]
    volume = read_volume([inst.source for inst in group.instances])
    ref = lidc_reference(read_lidc_xml(folder / "069.xml"),
                         SliceGeometry.from_volume(volume, list(group.instances)))
    [nodule] = ref.nodules  # the one marked by all four readers
    result = run(volume, PACK, threads=2,
                 mask_packs=mask_packs(ModelPack.open(PACK).manifest, registry.list()))
    ranked = sorted(result.findings, key=lambda f: -f.max_score)
    assert ranked, "no findings at all"
    top = ranked[0]
    assert _hit(top, nodule.centre_lps, nodule.hit_radius_mm), (
        f"top finding at {top.centroid_lps}, nodule at {nodule.centre_lps}")
    # InstanceNumber 39-47 (z -125 ... -105 mm): the finding's centre lies on those slices
    assert -125.0 - 1.25 <= top.centroid_lps[2] <= -105.0 + 1.25
