"""The demo study goes into a real library (SQLite on disk) through the normal importer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from app.demo import demo_folder, ensure_demo_study, find_demo_series
from app.importer import series_sources
from dicomio import demo
from dicomio.load import read_volume
from store import Library


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.dcm"))}


def test_first_run_writes_and_imports_the_demo(library_dir: Path) -> None:
    with Library.open(library_dir) as library:
        messages: list[tuple[float, str]] = []
        series_id = ensure_demo_study(library, library_dir,
                                      progress=lambda f, m="": messages.append((f, m)))
        assert series_id is not None
        row = library.get_series(series_id)
        assert row.series_uid == demo.DEMO_SERIES_UID
        assert row.patient_name == "LUCIDA^DEMO"
        assert row.patient_id == "LUCIDA-DEMO-0001"
        assert row.series_description == "SYNTHETIC demo — not patient data"
        assert row.study_description == "Lucida demo chest CT (SYNTHETIC)"
        assert row.modality == "CT"
        assert row.num_instances == demo.DEFAULT_SHAPE[0]
        assert messages and messages[-1][0] == 1.0
        # The files are inside the library folder, and loading the series gives the phantom.
        sources = series_sources(library, series_id)
        assert all(Path(s.path).parent == demo_folder(library_dir) for s in sources)
        volume = read_volume(sources)
    expected = demo.build_demo_volume()
    np.testing.assert_array_equal(volume.array, expected.array)
    np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-6)


def test_second_call_imports_nothing_new(library_dir: Path) -> None:
    with Library.open(library_dir) as library:
        first = ensure_demo_study(library, library_dir)
        counts = library.counts()
        reports = len(library.import_reports(limit=1000))
    before = _mtimes(demo_folder(library_dir))
    assert len(before) == demo.DEFAULT_SHAPE[0]
    # A new connection, as a second launch of the app would open.
    with Library.open(library_dir) as library:
        second = ensure_demo_study(library, library_dir)
        assert second == first
        assert library.counts() == counts
        assert len(library.import_reports(limit=1000)) == reports  # no import ran
        assert len(library.all_series()) == 1
    assert _mtimes(demo_folder(library_dir)) == before  # nothing rewritten


def test_missing_or_damaged_demo_files_are_rewritten(library_dir: Path) -> None:
    with Library.open(library_dir) as library:
        series_id = ensure_demo_study(library, library_dir)
        files = sorted(demo_folder(library_dir).glob("*.dcm"))
        original = files[10].read_bytes()

        files[3].unlink()
        assert find_demo_series(library) is None
        assert ensure_demo_study(library, library_dir) == series_id
        assert files[3].is_file()

        files[10].write_bytes(b"not DICOM any more")
        assert find_demo_series(library) is None
        assert ensure_demo_study(library, library_dir) == series_id
        assert files[10].read_bytes() == original
        assert find_demo_series(library) == series_id
        assert library.get_series(series_id).num_instances == demo.DEFAULT_SHAPE[0]
        assert len(library.all_series()) == 1
    # No staging folders left behind in the library.
    leftovers = [p.name for p in library_dir.iterdir() if "partial" in p.name]
    assert leftovers == []


def test_demo_files_are_in_the_library_folder_not_elsewhere(library_dir: Path,
                                                           tmp_path: Path) -> None:
    outside_before = sorted(os.listdir(tmp_path))
    with Library.open(library_dir) as library:
        ensure_demo_study(library, library_dir)
    assert sorted(os.listdir(tmp_path)) == outside_before  # only the library folder itself
    names = sorted(p.name for p in demo_folder(library_dir).iterdir())
    assert len(names) == demo.DEFAULT_SHAPE[0]
    assert all(n.endswith(".dcm") for n in names)
