"""`lucida infer` refuses a pack the series does not suit (another modality, a 2-D image)
even with --force, before any worker starts; warnings keep needing --force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

DEMO_ID = "lucida-demo-lung-density"


def _nifti(tmp_path: Path, shape: tuple[int, int, int], name: str) -> Path:
    import nibabel as nib

    from core.convert import array_to_ijk, to_ras_affine_ijk
    from dicomio.demo import build_demo_volume

    vol = build_demo_volume(shape=tuple(max(8, n) for n in shape))  # type: ignore[arg-type]
    array = vol.array[: shape[0], : shape[1], : shape[2]]  # e.g. one slice of it
    path = tmp_path / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(array_to_ijk(array)),
                             to_ras_affine_ijk(vol.affine)), str(path))
    return path


def _install_mr_pack(library_dir: Path) -> None:
    from inference.demo_pack import write_pack

    pack = write_pack(library_dir / "models" / "mr-copy")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest.update(id="mr-copy", name="Brain MR copy", demo_only=False, modality=["MR"],
                    body_part=[], sequence_hints=["T1"])
    (pack / "manifest.json").write_text(json.dumps(manifest))


def test_another_modality_is_refused_even_with_force(library_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from dicomio.demo import write_demo_study

    _install_mr_pack(library_dir)
    series = tmp_path / "dicom"
    write_demo_study(series, shape=(24, 96, 96))  # a real CT series in DICOM
    out = tmp_path / "out"
    rc = main(["infer", "--model", "mr-copy", str(series), "--out", str(out), "--force",
               "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Brain MR copy expects MR; this series is CT" in " ".join(err.split())
    assert "--force does not override this" in " ".join(err.split())
    assert not [p for p in out.iterdir() if p.is_dir()]  # nothing ran, nothing written
    assert not (library_dir / "cache" / "inference").exists()  # no worker was started


def test_a_nifti_declared_as_another_modality_is_refused(library_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    path = _nifti(tmp_path, (40, 64, 64), "head")
    rc = main(["infer", "--model", DEMO_ID, str(path), "--out", str(tmp_path / "out"),
               "--force", "--modality", "MR", "--threads", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "expects CT; this series is MR" in err


def test_a_single_slice_is_refused_even_with_force(library_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _nifti(tmp_path, (1, 96, 96), "slice")
    rc = main(["infer", "--model", DEMO_ID, str(path), "--out", str(tmp_path / "out"),
               "--force", "--threads", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "this series is a single 2-D slice" in err
    assert not (library_dir / "cache" / "inference").exists()
