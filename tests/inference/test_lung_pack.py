"""The bundled lung mask pack: reproducible, valid, offered for CT, and a plausible mask of
both lungs on the synthetic demo CT (against the phantom's own lungs), on LIDC-IDRI-0001
and on a COVID-19 ground-glass CT (RICORD)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from core.measure import voxel_volume_mm3
from core.volume import Volume
from inference import run
from inference.checks import availability
from inference.lung_pack import PACK_ID, write_pack
from inference.pack import ModelPack
from inference.pipeline import InferenceResult
from inference.registry import Registry, bundled_models_dir

BUNDLED = bundled_models_dir() / PACK_ID
LIDC = "ct/LIDC-IDRI-0001"
RICORD = "ct/MIDRC-RICORD-1A-419639-000082"


def _run(volume: Volume, name: str) -> InferenceResult:
    t0 = time.perf_counter()
    result = run(volume, ModelPack.open(BUNDLED), threads=2)
    print(f"\nlung mask on {name} {volume.shape}: {time.perf_counter() - t0:.2f} s "
          f"({result.provenance['timings_s']})")
    return result


def _mask(result: InferenceResult) -> np.ndarray:
    return np.asarray(result.label_map.array == 1)


def _index(volume: Volume, lps: tuple[float, float, float]) -> tuple[int, int, int]:
    k, j, i = np.rint(np.linalg.solve(volume.affine, [*lps, 1.0])[:3]).astype(int)
    return int(k), int(j), int(i)


def _side_litres(volume: Volume, mask: np.ndarray, x_mm: float) -> tuple[float, float]:
    """Mask volume (L) right (x < x_mm, LPS: the patient's right) and left of a plane."""
    k, j, i = np.nonzero(mask)
    x = volume.affine[0, :3] @ np.array([k, j, i], dtype=np.float64) + volume.affine[0, 3]
    litre = voxel_volume_mm3(volume.affine) / 1e6
    return float((x < x_mm).sum()) * litre, float((x >= x_mm).sum()) * litre


def _load(shared_data: Path, folder: str) -> Volume:
    from dicomio.load import read_volume

    files = sorted((shared_data / folder).glob("*.dcm"))
    if not files:
        pytest.fail(f"{shared_data / folder} holds no DICOM files")
    return read_volume(files)


# --- the pack ------------------------------------------------------------------------------


def test_bundled_files_are_reproduced_byte_for_byte(tmp_path: Path) -> None:
    fresh = write_pack(tmp_path / PACK_ID)
    for name in ("model.onnx", "manifest.json", "MODEL_CARD.md"):
        assert (fresh / name).read_bytes() == (BUNDLED / name).read_bytes(), name


def test_pack_is_valid_listed_and_offered_for_ct_only(tmp_path: Path) -> None:
    from dicomio.demo import build_demo_volume

    pack = Registry(tmp_path / "models").get(PACK_ID)
    assert pack.bundled and not pack.manifest.demo_only
    pack.verify()
    card = pack.model_card()
    assert "not a trained model" in card and "Not for diagnostic use" in card
    assert "effusion" in card and "emphysema" in card
    (label,) = pack.manifest.output.labels
    assert label.code is not None and label.code.value == "39607008"
    vol = build_demo_volume(shape=(60, 128, 128))
    ok = availability(vol, pack.manifest)
    assert ok.available and ok.reasons == [] and ok.warnings == []
    vol.modality = "MR"
    assert not availability(vol, pack.manifest).available


# --- the synthetic demo CT -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> tuple[Volume, InferenceResult]:
    from dicomio.demo import build_demo_volume

    vol = build_demo_volume()
    return vol, _run(vol, "the demo CT")


def _phantom_lungs(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cavity, right lung, left lung) exactly as the phantom draws them."""
    from dicomio import demo as d

    grid = d._Grid(shape)
    cavity, right, left = d._lung_masks(grid, d._heart_q(grid))
    return (np.broadcast_to(cavity, shape), np.broadcast_to(right, shape),
            np.broadcast_to(left, shape))


def test_demo_mask_matches_the_phantoms_lungs(demo: tuple[Volume, InferenceResult]) -> None:
    vol, result = demo
    mask = _mask(result)
    cavity, right, left = _phantom_lungs(vol.shape)
    truth = right | left
    dice = 2.0 * float((mask & truth).sum()) / float(mask.sum() + truth.sum())
    print(f"demo Dice {dice:.3f}")
    assert dice > 0.95
    for side in (right, left):  # both lungs, each almost wholly
        assert float((mask & side).sum()) / float(side.sum()) > 0.95
    # Neither the air around the body nor the body (chest wall, table) is in it: what lies
    # outside the thoracic cavity is a thin rim from the 2 mm grid.
    assert not mask[0, 0, 0] and not mask[:, :, 0].any() and not mask[:, 0, :].any()
    assert float((mask & ~cavity).sum()) / float(mask.sum()) < 0.02
    assert result.label_map.labels[0].name == "lung"
    assert 0 < len(result.findings) <= 2
    assert sum(f.volume_mm3 for f in result.findings) == pytest.approx(
        float(mask.sum()) * voxel_volume_mm3(vol.affine), rel=1e-6)


def test_demo_mask_holds_every_nodule_centre(demo: tuple[Volume, InferenceResult]) -> None:
    from dicomio.demo import DEMO_NODULES

    vol, result = demo
    mask = _mask(result)
    inside = {n.name: bool(mask[_index(vol, n.centre_lps)]) for n in DEMO_NODULES}
    assert inside == {n.name: True for n in DEMO_NODULES}  # N3 touches the pleura
    assert any(n.contact == "pleura" for n in DEMO_NODULES)


# --- real chest CT -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lidc(shared_data: Path) -> tuple[Volume, InferenceResult]:
    vol = _load(shared_data, LIDC)
    return vol, _run(vol, "LIDC-IDRI-0001")


def _check_two_lungs(vol: Volume, mask: np.ndarray) -> tuple[float, float]:
    """Adult lungs at inspiration hold about 3-7 L together; a series may stop short of the
    apices or bases, so the total is checked against 2.5-8 L and each lung (either side of
    the field of view's centre, where the scanner puts the patient's midline) against
    1-4.5 L: a lung left out, or outside air or the body let in, breaks these."""
    corners = vol.affine @ np.array([[0, 0, 0, 1], [0, 0, vol.shape[2] - 1, 1]],
                                    dtype=np.float64).T
    right, left = _side_litres(vol, mask, float(corners[0].mean()))
    print(f"lungs: right {right:.2f} L, left {left:.2f} L")
    assert 2.5 < right + left < 8.0
    assert 1.0 < right < 4.5 and 1.0 < left < 4.5
    return right, left


@pytest.mark.shared
def test_lidc_two_lungs_the_nodule_inside_the_air_outside(
        lidc: tuple[Volume, InferenceResult]) -> None:
    vol, result = lidc
    mask = _mask(result)
    _check_two_lungs(vol, mask)
    # The four-reader nodule: pixel column 316, row 367 on the slice at z = -115.9 mm.
    p = vol.affine @ np.array([0, 367, 316, 1.0])
    k, j, i = _index(vol, (float(p[0]), float(p[1]), -115.9))
    assert (j, i) == (367, 316)
    assert mask[k, j, i]
    for corner in ((0, 0, 0), (vol.shape[0] - 1, 0, vol.shape[2] - 1),
                   (vol.shape[0] // 2, vol.shape[1] - 1, 0)):
        assert not mask[corner]  # outside the body
    assert not mask[:, :, 0].any() and not mask[:, :, -1].any()


@pytest.mark.shared
def test_ricord_covid_ground_glass_still_gives_two_plausible_lungs(
        shared_data: Path) -> None:
    vol = _load(shared_data, RICORD)
    mask = _mask(_run(vol, "MIDRC-RICORD-1A"))
    _check_two_lungs(vol, mask)
    assert not mask[0, 0, 0] and not mask[:, 0, :].any() and not mask[:, -1, :].any()


# --- the command line ----------------------------------------------------------------------


def test_lucida_infer_runs_the_lung_mask(library_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from dicomio.demo import write_demo_study

    series = tmp_path / "dicom"
    write_demo_study(series, shape=(60, 128, 128))  # 5 mm slices, 2.7 mm pixels
    out = tmp_path / "out"
    assert main(["infer", "--model", PACK_ID, str(series), "--out", str(out),
                 "--threads", "2"]) == 0, capsys.readouterr().err
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert {"labels.nii.gz", "findings.json", "provenance.json"} <= {
        p.name for p in folder.iterdir()}
    found = json.loads((folder / "findings.json").read_text())
    rows = found if isinstance(found, list) else found.get("findings", [])
    assert rows and all("lung" in json.dumps(r) for r in rows)
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["model"]["id"] == PACK_ID
