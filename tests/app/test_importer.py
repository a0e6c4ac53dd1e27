"""import_paths: idempotent, source tree untouched, moves/deletes/modifications seen."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.importer import import_paths, series_sources
from core.volume import Volume
from dicomio.source import DicomSource
from dicomio.write_image import SeriesInfo, write_series
from store import Library


def _volume(n: int = 4) -> Volume:
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, 3.0)
    affine[:3, 1] = (0.0, 0.9, 0.0)
    affine[:3, 2] = (0.9, 0.0, 0.0)
    affine[:3, 3] = (-5.0, -6.0, 7.0)
    return Volume(array=np.arange(n * 8 * 8, dtype=np.float64).reshape(n, 8, 8), affine=affine)


def _tree(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under root: (sha256, mtime_ns, mode); folders too."""
    out: dict[str, tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            out[str(path.relative_to(root))] = (digest, st.st_mtime_ns, st.st_mode)
    return out


def _source_tree(root: Path) -> Path:
    write_series(_volume(4), root / "study" / "ct", SeriesInfo(patient_name="ROE^RICHARD"))
    write_series(_volume(3), root / "study" / "mr", SeriesInfo(series_number=5), modality="MR")
    (root / "study" / "README.txt").write_text("not an image")
    return root


def test_import_is_idempotent_and_leaves_sources_untouched(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    before = _tree(src)
    with Library.open(tmp_path / "lib") as lib:
        first = import_paths(lib, [src])
        assert (first.new, first.existing, len(first.series)) == (7, 0, 2)
        assert [(s.source.path.name, s.reason.split(" (")[0]) for s in first.skipped] == [
            ("README.txt", "not a DICOM file")]
        assert first.summary().startswith("7 new, 0 already in library")
        again = import_paths(lib, [src])
        assert again.summary().startswith("0 new, 7 already in library")
        assert (again.new, again.existing) == (0, 7)
        assert lib.counts()["instances"] == 7 and lib.counts()["series"] == 2
        assert len(lib.import_reports()) == 2
        assert lib.import_reports()[0].report["existing"] == 7
    assert _tree(src) == before  # byte-identical, same mtimes, nothing new


def test_geometry_is_cached_at_import(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [src])
        ct = next(s for s in report.series if s.instances == 4)
        row = lib.get_series(ct.series_id)
        assert row.geometry is not None
        assert row.geometry["shape"] == [4, 8, 8]
        assert row.geometry["spacing_mm"] == pytest.approx([3.0, 0.9, 0.9])
        assert np.allclose(row.geometry["affine"], _volume(4).affine, atol=1e-4)


def test_moved_and_deleted_files(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    with Library.open(tmp_path / "lib") as lib:
        import_paths(lib, [src])
        moved_to = tmp_path / "elsewhere"
        shutil.move(str(src / "study"), str(moved_to))
        report = import_paths(lib, [moved_to])
        assert (report.new, len(report.moved)) == (0, 7)
        assert "moved" in report.summary()
        assert lib.check_files().ok
        assert all(s.path.is_relative_to(moved_to) for r in lib.all_series()
                   for s in lib.series_sources(r.id))
        victim = next((moved_to / "ct").iterdir())
        victim.unlink()
        check = lib.check_files()
        assert [i.path for i in check.missing] == [victim.absolute()]


def test_zip_import_gives_loadable_sources(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    archive = tmp_path / "zips" / "study.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((src / "study" / "ct").iterdir()):
            zf.write(path, f"ct/{path.name}")
    listing = sorted(archive.parent.iterdir())
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [archive])
        assert report.new == 4
        [row] = lib.all_series()
        sources = series_sources(lib, row.id)
        assert all(isinstance(s, DicomSource) and s.member for s in sources)
    assert sorted(archive.parent.iterdir()) == listing  # nothing extracted beside the zip
    from dicomio.load import read_volume

    volume = read_volume(sources)
    assert volume.shape == (4, 8, 8)
    assert np.allclose(volume.affine, _volume(4).affine, atol=1e-4)
    assert np.array_equal(np.asarray(volume.array), _volume(4).array)


def test_nothing_importable(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("x")
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [tmp_path / "src"])
    assert not report.ok and report.indexed == 0 and len(report.skipped) == 1


def test_progress_reaches_one(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    seen: list[float] = []
    with Library.open(tmp_path / "lib") as lib:
        import_paths(lib, [src], progress=lambda f, m="": seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_copies_in_one_import_are_reported_as_duplicates(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    shutil.copytree(src / "study" / "ct", src / "copy-of-ct")
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [src])
    assert (report.new, len(report.duplicates), len(report.skipped)) == (7, 4, 1)
    # every file seen is accounted for: indexed, duplicate or skipped
    assert report.files_seen == report.new + len(report.duplicates) + len(report.skipped)
    assert "4 duplicate copies ignored" in report.summary()


def test_arrivals_are_indexed_per_batch_and_planned_once_at_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ArrivalIndexer (instances from the network, in the Filer's batches): each batch is
    indexed at once and openable; the series' geometry is planned once, at ``finish``, and
    equals what one import of all the files gives."""
    import app.importer as importer

    write_series(_volume(9), tmp_path / "src", SeriesInfo(patient_name="ROE^RICHARD"))
    files = sorted((tmp_path / "src").rglob("*.dcm"))
    assert len(files) == 9
    planned: list[int] = []
    real_plan = importer.plan_summary

    def counting_plan(sources: list[DicomSource]) -> Any:
        planned.append(len(sources))
        return real_plan(sources)

    monkeypatch.setattr(importer, "plan_summary", counting_plan)
    indexer = importer.ArrivalIndexer()
    with Library.open(tmp_path / "lib") as lib:
        for batch in (files[:4], files[4:8], files[8:]):
            report = indexer.index(lib, batch)
            assert report.new == len(batch)
        [series] = lib.all_series()
        assert series.num_instances == 9 and series.geometry is None and planned == []
        indexer.finish(lib)
        assert planned == [9]
        arrived = lib.get_series(series.id).geometry
        indexer.finish(lib)  # nothing new since: nothing planned again
        assert planned == [9]
    with Library.open(tmp_path / "lib-once") as lib:
        import_paths(lib, files)
        assert lib.all_series()[0].geometry == arrived
    assert arrived is not None and arrived["shape"] == [9, 8, 8]
