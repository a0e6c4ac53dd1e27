"""``lucida import / list / info / export-volume / check`` end to end through app.cli.main."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from core.volume import Volume
from dicomio.write_image import SeriesInfo, write_series


def _oblique_volume() -> Volume:
    """A small asymmetric volume with an oblique, feet-first-like affine."""
    theta = np.deg2rad(20.0)
    i_dir = np.array([np.cos(theta), np.sin(theta), 0.0])
    j_dir = np.array([-np.sin(theta), np.cos(theta), 0.0])
    k_dir = np.array([0.0, 0.0, -1.0])  # slices go towards the feet
    affine = np.eye(4)
    affine[:3, 0] = k_dir * 2.0
    affine[:3, 1] = j_dir * 0.75
    affine[:3, 2] = i_dir * 0.5
    affine[:3, 3] = (12.0, -30.0, 80.0)
    array = np.zeros((5, 7, 9))
    array[1, 2, 3] = 1000.0  # a marker at a known voxel
    array[4, 6, 8] = -500.0
    return Volume(array=array, affine=affine)


@pytest.fixture
def series_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "obl"
    write_series(_oblique_volume(), folder,
                 SeriesInfo(series_uid="1.2.826.0.1.3680043.10.777.1", patient_name="TEST^CLI",
                            patient_id="CLI-1", series_description="Oblique phantom"),
                 file_order_seed=3)
    return folder


def test_import_list_info_export(series_dir: Path, library_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(series_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "5 new, 0 already in library" in out and "Oblique phantom" in out

    assert main(["import", str(series_dir.parent)]) == 0  # already there: still success
    assert "0 new, 5 already in library" in capsys.readouterr().out

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "TEST^CLI" in out and "Oblique phantom" in out and "image" in out
    series_id = re.search(r"│ (\d+)\s+│ TEST\^CLI", out)
    assert series_id is not None

    assert main(["info", "1.2.826.0.1.3680043.10.777"]) == 0
    out = capsys.readouterr().out
    assert "shape (k, j, i):   (5, 7, 9)" in out
    assert "(2.0000, 0.7500, 0.5000)" in out
    # The loader orders slices along the slice normal (row × column), so this
    # feet-first stack comes back reversed in k: the first slice is at z = 72.
    assert "origin (LPS mm):   (12.0000, -30.0000, 72.0000)" in out
    assert "1.2.840.10008.1.2.1" in out  # transfer syntax listed

    out_path = tmp_path / "out" / "vol.nii.gz"
    out_path.parent.mkdir()
    assert main(["export-volume", series_id.group(1), str(out_path)]) == 0
    capsys.readouterr()

    import nibabel as nib

    from app.importer import series_sources
    from core.convert import array_from_ijk, from_ras_affine_ijk
    from dicomio.load import read_volume
    from store import Library

    image = nib.load(str(out_path))
    data = np.asarray(image.dataobj)
    truth = _oblique_volume()
    # Each marker's LPS point, turned into RAS, lands on the marker's NIfTI voxel.
    for index_kji, value in (((1, 2, 3), 1000), ((4, 6, 8), -500)):
        lps = truth.affine @ np.array([*index_kji, 1.0])
        ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
        ijk = np.linalg.solve(image.affine, ras)[:3]
        assert np.allclose(ijk, np.rint(ijk), atol=1e-3)
        assert data[tuple(int(v) for v in np.rint(ijk))] == value
    # Round trip through nibabel gives back the loaded Volume's LPS affine and array.
    with Library.open(library_dir) as lib:
        loaded = read_volume(series_sources(lib, int(series_id.group(1))))
    assert np.allclose(from_ras_affine_ijk(image.affine), loaded.affine, atol=1e-4)
    assert np.array_equal(array_from_ijk(data), np.asarray(loaded.array))
    assert int(image.header["qform_code"]) == 1 and int(image.header["sform_code"]) == 1

    assert main(["check"]) == 0
    assert "0 missing, 0 modified" in capsys.readouterr().out
    next(series_dir.iterdir()).unlink()
    assert main(["check"]) == 1
    assert "1 missing" in capsys.readouterr().out


def test_library_option_overrides_environment(series_dir: Path, library_dir: Path,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other-lib"
    assert main(["--library", str(other), "import", str(series_dir)]) == 0
    assert (other / "library.sqlite").is_file()
    assert not (library_dir / "library.sqlite").exists()
    capsys.readouterr()
    assert main(["list"]) == 0
    assert "library is empty" in capsys.readouterr().out


def test_import_nothing_importable_exits_1(tmp_path: Path, library_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.dcm").write_bytes(b"")
    assert main(["import", str(tmp_path / "junk")]) == 1
    out = capsys.readouterr().out
    assert "empty file (0 bytes)" in out and "Nothing importable" in out


def test_unknown_series_is_an_error_message(library_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "1.2.3.4.5"]) == 2
    assert "no series matches" in capsys.readouterr().err
    assert main(["export-volume", "1", "/tmp/x.txt"]) == 2
    assert "must end in .nii" in capsys.readouterr().err


def test_import_every_shared_folder(shared_data: Path, library_dir: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`lucida import` on every folder of ../shared/data gives an honest report."""
    expected_new = {
        "ct/LIDC-IDRI-0001": 133,
        "ct/MIDRC-RICORD-1A-419639-000082": 255,
        "ct/HeadCT_GE_gantry_tilt": 28,
        "mr/GE_T1_IR-SPGR_3D_refaced": 196,
        "mr/Siemens_Trio_T1_MPRAGE": 176,
        "masks": 10,
    }
    for folder, new in expected_new.items():
        code = main(["import", str(shared_data / folder)])
        out = capsys.readouterr().out
        print(out)
        assert code == 0
        assert f"{new} new, 0 already in library" in out
        assert "SOURCE.md" in out and "not a DICOM file" in out  # skipped, with a reason
    assert main(["import", str(shared_data / "zoo")]) == 1  # only a README there
    assert main(["import", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert f"0 new, {sum(expected_new.values())} already in library" in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("seg", "sr", "rtstruct", "other_nonimage", "image"):
        assert kind in out


def test_a_radiograph_imports_and_reports_as_a_2d_image(
        library_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RG1 (a chest radiograph with an invalid PixelSpacing 0\\0) is a 2-D image: the import
    does not warn about the volume loader's invented 1 mm pixels, and `info` says what it is
    instead of failing on missing volume geometry."""
    import shutil

    from pydicom.data import get_testdata_file

    src = tmp_path / "cr"
    src.mkdir()
    shutil.copy(str(get_testdata_file("RG1_J2KR.dcm")), src / "rg1.dcm")
    assert main(["import", str(src)]) == 0
    out = capsys.readouterr().out
    assert "1 new" in out
    assert "1 mm pixels" not in out and "luminance" not in out
    assert main(["info", "1"]) == 0
    out = capsys.readouterr().out
    assert "2-D image without patient geometry" in out and "unavailable" not in out
