"""``lucida models ...``, ``lucida infer`` and ``lucida --version`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.cli import main

DEMO_ID = "lucida-demo-lung-density"


def test_version_reports_onnxruntime_and_provider(capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert f"onnxruntime {onnxruntime.__version__}" in out
    assert "execution provider in use: CPU" in out


def test_models_list_show_install_remove(library_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from inference.demo_pack import write_pack

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert DEMO_ID in out and "bundled" in out
    assert main(["models", "show", DEMO_ID]) == 0
    assert "rules-based demonstration, not a trained model" in capsys.readouterr().out

    pack = write_pack(tmp_path / "copy")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["id"] = "my-copy"
    (pack / "manifest.json").write_text(json.dumps(manifest))
    archive = shutil.make_archive(str(tmp_path / "my-copy"), "zip", pack)
    assert main(["models", "install", archive]) == 0
    assert "hashes verified" in capsys.readouterr().out
    assert (library_dir / "models" / "my-copy" / "model.onnx").is_file()
    main(["models", "list", "--json"])
    listed = {p["id"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["my-copy"]["bundled"] is False and listed[DEMO_ID]["bundled"] is True
    assert main(["models", "remove", "my-copy"]) == 0
    assert not (library_dir / "models" / "my-copy").exists()
    assert main(["models", "remove", DEMO_ID]) == 2
    assert "bundled" in capsys.readouterr().err


def test_install_refuses_tampered_pack(library_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from inference.demo_pack import write_pack

    pack = write_pack(tmp_path / "bad")
    data = bytearray((pack / "model.onnx").read_bytes())
    data[-5] ^= 0xFF
    (pack / "model.onnx").write_bytes(bytes(data))
    assert main(["models", "install", str(pack)]) == 2
    err = capsys.readouterr().err
    assert "model.onnx has sha256" in err
    assert not (library_dir / "models" / DEMO_ID).exists()


def _demo_nifti(tmp_path: Path) -> tuple[Path, object]:
    import nibabel as nib

    from core.convert import array_to_ijk, to_ras_affine_ijk
    from dicomio.demo import build_demo_volume

    vol = build_demo_volume(shape=(64, 128, 128))  # 4.7 mm slices, 2.7 mm pixels
    path = tmp_path / "demo.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(array_to_ijk(vol.array)),
                             to_ras_affine_ijk(vol.affine)), str(path))
    return path, vol


def test_infer_nifti_writes_outputs_on_the_input_grid(library_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import nibabel as nib

    from inference import run

    path, vol = _demo_nifti(tmp_path)
    out = tmp_path / "out"
    rc = main(["infer", "--model", DEMO_ID, str(path), str(path), "--out", str(out), "--force",
               "--threads", "1", "--provider", "cpu"])
    assert rc == 0, capsys.readouterr().err
    for name in ("demo", "demo-2"):  # the same input twice gets two folders
        folder = out / name
        labels = nib.load(str(folder / "labels.nii.gz"))
        np.testing.assert_allclose(labels.affine, nib.load(str(path)).affine, atol=1e-6)
        assert (folder / "probability.nii.gz").is_file()
    direct = run(vol, _bundled(), threads=1)  # type: ignore[arg-type]
    got = np.asarray(nib.load(str(out / "demo" / "labels.nii.gz")).dataobj)
    np.testing.assert_array_equal(got.transpose(2, 1, 0), direct.label_map.array)
    findings = json.loads((out / "demo" / "findings.json").read_text())
    assert len(findings["findings"]) == len(direct.findings) > 0
    prov = json.loads((out / "demo" / "provenance.json").read_text())
    assert prov["model"]["id"] == DEMO_ID and prov["provider"] == "CPUExecutionProvider"


def _bundled() -> Path:
    from inference.registry import bundled_models_dir

    return bundled_models_dir() / DEMO_ID


def test_infer_dicom_folder_needs_force_for_warnings(library_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from dicomio.demo import write_demo_study

    series = tmp_path / "dicom"
    write_demo_study(series, shape=(24, 96, 96))  # 12.5 mm slices: coarser than the model's 5 mm
    before = sorted(p.name for p in series.rglob("*"))
    out = tmp_path / "out"
    assert main(["infer", "--model", DEMO_ID, str(series), "--out", str(out),
                 "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "coarser than the 5.0 mm" in err and "--force" in err
    assert main(["infer", "--model", DEMO_ID, str(series), "--out", str(out), "--force",
                 "--threads", "1"]) == 0
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert {p.name for p in folder.iterdir()} == {
        "labels.nii.gz", "probability.nii.gz", "findings.json", "provenance.json"}
    assert sorted(p.name for p in series.rglob("*")) == before  # nothing written beside sources


def test_the_demo_pack_is_refused_on_a_real_dicom_series_even_with_force(
        library_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A copy of the demo study under another SeriesInstanceUID stands for a patient's CT:
    DICOM names its series, so the demo rules never run there; --force does not help."""
    import pydicom

    from dicomio.demo import write_demo_study

    series = tmp_path / "patient"
    write_demo_study(series, shape=(24, 96, 96))
    uid = pydicom.uid.generate_uid()
    for path in sorted(p for p in series.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = uid
        ds.save_as(path)
    out = tmp_path / "out"
    assert main(["infer", "--model", DEMO_ID, str(series), "--out", str(out), "--force",
                 "--threads", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "not for this series" in err and "not a model" in err
    assert "--force does not override" in err
    assert not any(out.rglob("labels.nii.gz"))


def test_infer_unknown_series_fails_cleanly(library_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["infer", "--model", DEMO_ID, "1.2.3.does.not.exist", "--out",
               str(tmp_path / "o")])
    assert rc == 2
    assert "failed" in capsys.readouterr().err


def test_infer_library_series_by_uid(library_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from app.importer import import_paths
    from dicomio.demo import DEMO_SERIES_UID, write_demo_study
    from store.library import Library

    write_demo_study(tmp_path / "dicom", shape=(24, 96, 96))
    with Library.open(library_dir) as lib:
        import_paths(lib, [tmp_path / "dicom"])
    out = tmp_path / "out"
    rc = main(["infer", "--model", DEMO_ID, DEMO_SERIES_UID[:20], "--out", str(out), "--force",
               "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    prov = json.loads((out / DEMO_SERIES_UID / "provenance.json").read_text())
    assert prov["input"]["series_uid"] == DEMO_SERIES_UID
    assert prov["input"]["shape_kji"] == [24, 96, 96]


def test_a_worker_crash_fails_one_series_not_the_batch(library_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       worker_faults: Any) -> None:
    """The first series' worker segfaults on purpose; the second still gets its outputs."""
    path, _vol = _demo_nifti(tmp_path)
    worker_faults(crash="segfault", crash_once_marker=str(tmp_path / "crashed"))
    out = tmp_path / "out"
    rc = main(["infer", "--model", DEMO_ID, str(path), str(path), "--out", str(out), "--force",
               "--threads", "1", "--provider", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "failed" in err and "1 of 2 series failed" in err
    assert not (out / "demo" / "labels.nii.gz").exists()
    assert (out / "demo-2" / "labels.nii.gz").is_file()
