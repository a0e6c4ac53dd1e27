"""``lucida models ...`` never reaches outside the library; the demo pack stays on the demo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

DEMO_ID = "lucida-demo-lung-density"
SECRET = "top secret, outside the library"


def _copy_pack(folder: Path, pack_id: str = "my-copy", **changes: object) -> Path:
    from inference.demo_pack import write_pack

    pack = write_pack(folder)
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest.update(id=pack_id, **changes)
    (pack / "manifest.json").write_text(json.dumps(manifest))
    return pack


def _victim(folder: Path) -> Path:
    """A folder outside the models folder that looks like a pack."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "keep.txt").write_text("keep")
    return folder


@pytest.mark.parametrize("ref", ["absolute", "../victim", "..", "a/../../victim", "a/b"])
def test_remove_refuses_paths_and_deletes_nothing(library_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  ref: str) -> None:
    outside = _victim(tmp_path / "outside")
    inside_library = _victim(library_dir / "victim")
    (library_dir / "manifest.json").write_text("{}")  # so that '..' looks like a pack too
    _victim(library_dir / "models" / "a" / "b")
    arg = str(outside) if ref == "absolute" else ref
    assert main(["models", "remove", arg]) == 2
    err = capsys.readouterr().err
    assert "is not a model pack id" in err and "lucida models list" in err
    for folder in (outside, inside_library, library_dir / "models" / "a" / "b"):
        assert (folder / "keep.txt").read_text() == "keep"
    assert (library_dir / "manifest.json").is_file()


def test_install_refuses_an_id_that_is_not_a_folder_name(library_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    for n, bad in enumerate(["../escape", "escape\n"]):
        pack = _copy_pack(tmp_path / f"p{n}", bad)
        assert main(["models", "install", str(pack)]) == 2
        assert "manifest.json: id: " in capsys.readouterr().err
    assert sorted(os.listdir(library_dir)) == []  # no models folder, nothing beside it


def test_install_never_copies_a_linked_file_and_leaves_nothing(
        library_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    pack = _copy_pack(tmp_path / "p")
    (pack / "MODEL_CARD.md").unlink()
    (pack / "MODEL_CARD.md").symlink_to(secret)
    assert main(["models", "install", str(pack)]) == 2
    err = capsys.readouterr().err
    assert "MODEL_CARD.md is a symbolic link" in err and "plain files" in err
    models = library_dir / "models"
    assert not models.exists() or list(models.iterdir()) == []  # no .install-* either


def test_show_never_prints_a_file_outside_the_pack(library_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    pack = _copy_pack(library_dir / "models" / "my-copy")  # placed by hand, not installed
    (pack / "MODEL_CARD.md").unlink()
    (pack / "MODEL_CARD.md").symlink_to(secret)
    assert main(["models", "show", "my-copy"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and "MODEL_CARD.md is a symbolic link" in out


def test_replace_never_goes_through_a_link(library_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    outside = _copy_pack(tmp_path / "outside-pack")
    (library_dir / "models").mkdir()
    (library_dir / "models" / "my-copy").symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in outside.iterdir())
    assert main(["models", "install", str(_copy_pack(tmp_path / "new")), "--replace"]) == 2
    assert "is a symbolic link, not an installed pack" in capsys.readouterr().err
    assert main(["models", "remove", "my-copy"]) == 2
    assert "not an installed model pack" in capsys.readouterr().err
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (library_dir / "models" / "my-copy").is_symlink()


def test_show_says_the_demo_pack_is_demo_only(library_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "show", DEMO_ID]) == 0
    out = capsys.readouterr().out
    assert "demo only:" in out and "synthetic demo study" in out


def _real_nifti(tmp_path: Path) -> Path:
    """A CT that is not Lucida's demo study (a NIfTI has no demo series UID)."""
    import nibabel as nib

    from core.convert import array_to_ijk, to_ras_affine_ijk
    from dicomio.demo import build_demo_volume

    vol = build_demo_volume(shape=(64, 128, 128))  # matches the pack: no other warning
    path = tmp_path / "patient.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(array_to_ijk(vol.array)),
                             to_ras_affine_ijk(vol.affine)), str(path))
    return path


def test_infer_refuses_the_demo_pack_on_a_series_that_is_not_the_demo(
        library_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main(["infer", "--model", DEMO_ID, str(_real_nifti(tmp_path)), "--out", str(out),
               "--threads", "1", "--provider", "cpu"])
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at 80 columns
    assert rc == 2, err
    assert "not a model" in err and "demo study" in err and "--force" in err
    assert not list(out.glob("*/findings.json"))
