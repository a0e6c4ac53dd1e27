"""``lucida models import brainchop DIR``, and the packs end to end from a real DICOM series.

The DICOM run: /work/shared/data/mr/Siemens_Trio_T1_MPRAGE (adult brain MPRAGE, oblique
sagittal, 176 x 256 x 256 at 1 mm) imported into a temporary library, then `lucida infer`
with brainchop-mindgrab, brainchop-model30chan18cls and brainchop-model21_104class. Each runs
its network on the whole conformed 256^3 grid: on 2 CPU threads mindgrab ~65-120 s,
model30chan18cls ~75 s and model21_104class ~35 s (measured; they dominate this file's cost).
Then the bundled deepbet pack (two stages, the series' own voxels; ~20 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from app.cli import main

MODELS = ["model30chan18cls", "mindgrab", "model21_104class"]
# The first DICOM test also pays for the module fixture: three whole-grid networks in a row.
E2E_TIMEOUT = pytest.mark.timeout(900)
SUBCORTICAL = ["Thalamus", "Caudate", "Putamen", "Pallidum", "Hippocampus", "Amygdala"]


def _import(src: Path, *models: str, replace: bool = False) -> int:
    argv = ["models", "import", "brainchop", str(src)]
    for m in models:
        argv += ["--model", m]
    return main(argv + (["--replace"] if replace else []))


def test_import_installs_and_lists(library_dir: Path, shared_models: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = shared_models / "brainchop-meshnet"
    assert _import(src, *MODELS) == 0
    out = capsys.readouterr().out
    assert out.count("hashes verified") == 3
    assert main(["models", "list", "--json"]) == 0
    listed = {p["id"]: p for p in json.loads(capsys.readouterr().out)}
    for m in MODELS:
        pack = listed[f"brainchop-{m}"]
        assert pack["bundled"] is False and pack["modality"] == ["MR"]
        folder = library_dir / "models" / f"brainchop-{m}"
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["manifest.json", "MODEL_CARD.md", f"{m}.onnx"])
    assert main(["models", "show", "brainchop-mindgrab"]) == 0
    shown = capsys.readouterr().out
    assert "Journal of Open Source Software" in shown and "licence:    MIT" in shown
    # A second import refuses to overwrite; --replace replaces.
    assert _import(src, "mindgrab") == 2
    assert "already installed" in capsys.readouterr().err
    assert _import(src, "mindgrab", replace=True) == 0


def test_import_errors_install_nothing(library_dir: Path, shared_models: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = shared_models / "brainchop-meshnet"
    assert _import(src, "mindgrab", "no-such-model") == 2
    assert "no brainchop model 'no-such-model'" in capsys.readouterr().err
    assert main(["models", "import", "nope", str(src)]) == 2
    assert "no importer for model family 'nope'" in capsys.readouterr().err
    from inference.importers import registry

    monkeypatch.setitem(registry.BUILDERS, "absent", "inference.importers.absent_pack:build")
    assert main(["models", "import", "absent", str(src)]) == 2
    assert "importer (inference.importers.absent_pack) is not part" in capsys.readouterr().err
    models = library_dir / "models"
    assert not models.exists() or not [p for p in models.iterdir() if p.name[0] != "."]


# --- end to end from DICOM ------------------------------------------------------------


def _labels(out: Path) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64], dict[str, Any]]:
    import nibabel as nib

    (series,) = [p for p in out.iterdir() if p.is_dir()]
    img = nib.load(str(series / "labels.nii.gz"))
    prov = json.loads((series / "provenance.json").read_text())
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64), prov


def _lps_x(affine_ras: npt.NDArray[np.float64], ijk: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Patient-left coordinate (LPS x = -RAS x) of voxel indices ``ijk`` [N, 3]."""
    return -(ijk @ affine_ras[0, :3] + affine_ras[0, 3])


@pytest.fixture(scope="module")
def dicom_runs(shared_data: Path, shared_models: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, tuple[Any, ...]]:
    series = shared_data / "mr" / "Siemens_Trio_T1_MPRAGE"
    if not series.is_dir():
        pytest.fail(f"{series} is missing from ../shared")
    root = tmp_path_factory.mktemp("brainchop-e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("LUCIDA_LIBRARY", str(root / "library"))
    try:
        (root / "library").mkdir()
        assert main(["import", str(series)]) == 0
        assert _import(shared_models / "brainchop-meshnet", *MODELS) == 0
        runs = {}
        for m in MODELS:
            out = root / m
            assert main(["infer", "--model", f"brainchop-{m}", "1", "--out", str(out),
                         "--threads", "2"]) == 0
            manifest = json.loads(
                (root / "library" / "models" / f"brainchop-{m}" / "manifest.json").read_text())
            names = {lab["value"]: lab["name"] for lab in manifest["output"]["labels"]}
            runs[m] = (*_labels(out), names)
        # deepbet ships with Lucida (resources/models): no import step.
        out = root / "deepbet"
        assert main(["infer", "--model", "deepbet-fp16w", "1", "--out", str(out),
                     "--threads", "2"]) == 0
        runs["deepbet"] = (*_labels(out), {1: "brain"})
        return runs
    finally:
        mp.undo()


@E2E_TIMEOUT
def test_brain_mask_from_dicom_is_plausible(dicom_runs: dict[str, Any]) -> None:
    """mindgrab's mask on the MPRAGE's own grid: one component of 0.9-1.9 L.

    Adult brain volume (grey + white matter + cerebellum + brainstem, plus the CSF a skull
    strip keeps) is about 1.0-1.6 L; 0.9-1.9 L allows head size and mask-boundary
    differences while refusing an empty mask, a half brain or a mask that takes the skull
    or the whole head (> 3 L)."""
    from scipy import ndimage

    labels, affine, prov, _ = dicom_runs["mindgrab"]
    assert labels.shape == (256, 256, 176)  # the series' own grid (NIfTI i, j, k)
    assert prov["input"]["shape_kji"] == [176, 256, 256]
    assert prov["parameters"]["model_grid_shape"] == [256, 256, 256]
    assert prov["parameters"]["exact_reorientation"] is False  # oblique: resampled
    assert set(np.unique(labels).tolist()) == {0, 1}
    litres = float((labels == 1).sum()) * abs(np.linalg.det(affine[:3, :3])) / 1e6
    print(f"mindgrab brain mask {litres:.3f} L; timings {prov['timings_s']}")
    assert 0.9 <= litres <= 1.9
    assert ndimage.label(labels == 1, structure=np.ones((3, 3, 3)))[1] == 1


@E2E_TIMEOUT
def test_subcortical_labels_lie_inside_the_brain_mask(dicom_runs: dict[str, Any]) -> None:
    mask = dicom_runs["mindgrab"][0] == 1
    labels, _, prov, names = dicom_runs["model30chan18cls"]
    print(f"model30chan18cls timings {prov['timings_s']}")
    assert labels.shape == mask.shape
    nonzero = labels > 0
    inside_all = float((nonzero & mask).sum() / nonzero.sum())
    print(f"labelled voxels inside the brain mask: {inside_all:.4%}")
    assert inside_all >= 0.97
    for value, name in names.items():
        if name not in SUBCORTICAL and not name.startswith(tuple(SUBCORTICAL)):
            continue
        structure = labels == value
        count = int(structure.sum())
        assert count > 500, f"{name}: only {count} voxels"
        inside = float((structure & mask).sum() / count)
        assert inside >= 0.99, f"{name}: {inside:.2%} inside the mask"


@E2E_TIMEOUT
def test_parcellation_from_dicom_keeps_laterality(dicom_runs: dict[str, Any]) -> None:
    """Left-hemisphere labels (ctx-lh-*, Left-*) lie on the patient's left (LPS x greater):
    conform + inverse keep laterality on an oblique sagittal series.

    Every left/right pair: the left label's centroid has the greater LPS x, i.e. it is left
    of the midline at that structure's own level (a rotated head moves a single global
    midline plane by millimetres, enough to misplace medial labels such as medial orbitofrontal
    cortex). Each hemisphere as a whole: >= 95 % of its voxels on its side of the brain mask's
    mean x; lateral labels (centroid > 10 mm from it): >= 90 % of voxels on their side.
    A left-right flip anywhere in the chain fails all three."""
    mask = dicom_runs["mindgrab"][0] == 1
    labels, affine, prov, names = dicom_runs["model21_104class"]
    print(f"model21_104class timings {prov['timings_s']}")
    midline = float(_lps_x(affine, np.argwhere(mask)).mean())
    by_name = {name: value for value, name in names.items()}
    centre: dict[str, float] = {}
    side_of: dict[str, npt.NDArray[Any]] = {"left": np.zeros(0), "right": np.zeros(0)}
    for value, name in names.items():
        side = ("left" if name.startswith(("ctx-lh", "Left-")) else
                "right" if name.startswith(("ctx-rh", "Right-")) else None)
        if side is None:
            continue
        x = _lps_x(affine, np.argwhere(labels == value))
        if x.size < 50:
            continue
        centre[name] = float(x.mean())
        side_of[side] = np.concatenate([side_of[side], x])
        if abs(centre[name] - midline) > 10:
            on_side = float(np.mean((x > midline) == (side == "left")))
            assert on_side >= 0.9, f"{name}: {on_side:.1%} of voxels on the {side}"
    pairs = 0
    for name, x_left in centre.items():
        twin = (name.replace("ctx-lh", "ctx-rh", 1) if name.startswith("ctx-lh")
                else name.replace("Left-", "Right-", 1) if name.startswith("Left-") else None)
        if twin is None or twin not in centre:
            continue
        assert x_left > centre[twin], (f"{name} (LPS x {x_left:.1f}) is not left of {twin} "
                                       f"({centre[twin]:.1f})")
        pairs += 1
    assert np.mean(side_of["left"] > midline) >= 0.95
    assert np.mean(side_of["right"] < midline) >= 0.95
    print(f"laterality: {pairs} left/right pairs, {len(centre)} labels; midline {midline:.1f}")
    assert pairs >= 40 and by_name


@E2E_TIMEOUT
def test_deepbet_from_dicom_agrees_with_mindgrab(dicom_runs: dict[str, Any]) -> None:
    """The bundled deepbet pack on the oblique MPRAGE: its voxels are only reordered (no
    resampling), one brain component of 0.9-1.9 L (same bounds and reasons as mindgrab's),
    and two skull strips made by different authors, networks and grids (deepbet on the
    series' voxels, mindgrab on the conformed grid) agree: Dice >= 0.9."""
    from scipy import ndimage

    labels, affine, prov, _ = dicom_runs["deepbet"]
    assert labels.shape == (256, 256, 176)
    assert prov["parameters"]["exact_reorientation"] is True  # grid "closest"
    box = prov["parameters"]["localizer_box"]
    assert len(box) == 3 and all(0 <= a < b for a, b in box)
    brain = labels == 1
    litres = float(brain.sum()) * abs(np.linalg.det(affine[:3, :3])) / 1e6
    mind = dicom_runs["mindgrab"][0] == 1
    dice = 2 * float((brain & mind).sum()) / float(brain.sum() + mind.sum())
    print(f"deepbet brain mask {litres:.3f} L, Dice with mindgrab {dice:.4f}; "
          f"timings {prov['timings_s']}")
    assert 0.9 <= litres <= 1.9
    assert ndimage.label(brain, structure=np.ones((3, 3, 3)))[1] == 1
    assert dice >= 0.9
