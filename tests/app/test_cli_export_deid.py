"""``lucida export-deid``: a real library, real files, the copy read back, the audit row."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from app.cli import main
from store import Library


@pytest.fixture
def imported(tmp_path: Path, library_dir: Path) -> Path:
    """Three instances of one series (CT_small with new UIDs), the second flagged
    BurnedInAnnotation YES, imported into the library; returns their folder."""
    from app.importer import import_paths

    folder = tmp_path / "src"
    folder.mkdir()
    base = "1.2.826.0.1.3680043.8.498.55"
    for n in range(3):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = base, f"{base}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{base}.1.{n + 1}"
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(n)]
        if n == 1:
            ds.BurnedInAnnotation = "YES"
        ds.save_as(folder / f"i{n}.dcm", enforce_file_format=True)
    library = Library.open(library_dir)
    try:
        import_paths(library, [folder])
    finally:
        library.close()
    return folder


def test_export_deid_refuses_then_writes_and_audits(imported: Path, library_dir: Path,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lib = ["--library", str(library_dir)]
    out = tmp_path / "out"
    assert main([*lib, "export-deid", "1", "--out", str(out)]) == 2
    assert "BurnedInAnnotation" in capsys.readouterr().err and not out.exists()
    assert main([*lib, "export-deid", "1", "--out", str(imported / "x")]) == 2
    assert "never writes next to the source" in capsys.readouterr().err
    assert main([*lib, "export-deid", "1", "--out", str(out), "--allow-burned-in"]) == 0
    files = sorted((out / "deidentified-series-1").iterdir())
    assert len(files) == 3
    copies = [pydicom.dcmread(f) for f in files]
    assert all(str(c.PatientName) != "CompressedSamples^CT1" for c in copies)
    assert len({str(c.SeriesInstanceUID) for c in copies}) == 1
    library = Library.open(library_dir)
    try:
        rows = [r for r in library.audit_rows() if r.event == "export"]
    finally:
        library.close()
    assert len(rows) == 1
    assert rows[0].payload["files"] == 3 and rows[0].payload["burned_in_confirmed"] == 1
    text = json.dumps(rows[0].payload)
    assert str(tmp_path) not in text and "CompressedSamples" not in text


def test_export_deid_study_keeps_one_uid_mapping_across_its_series(
        tmp_path: Path, library_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two series of one study (sharing a frame of reference) exported with --study: the
    copy has one new study UID and one new frame of reference across both series, two new
    series UIDs, and nothing keeps an original UID; exported one series at a time, each
    copy gets its own new study (why --study exists)."""
    from app.importer import import_paths

    base = "1.2.826.0.1.3680043.8.498.77"
    folder = tmp_path / "src"
    folder.mkdir()
    originals: set[str] = set()
    for s in (1, 2):
        for n in range(2):
            ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
            ds.StudyInstanceUID, ds.SeriesInstanceUID = base, f"{base}.{s}"
            ds.FrameOfReferenceUID = f"{base}.9"
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{base}.{s}.{n + 1}"
            ds.SeriesNumber, ds.InstanceNumber = s, n + 1
            ds.ImagePositionPatient = [0.0, 0.0, float(n)]
            ds.save_as(folder / f"s{s}i{n}.dcm", enforce_file_format=True)
            originals |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                          ds.FrameOfReferenceUID}
    library = Library.open(library_dir)
    try:
        import_paths(library, [folder])
        ids = [s.id for s in library.all_series()]
    finally:
        library.close()
    assert len(ids) == 2
    lib = ["--library", str(library_dir)]
    out = tmp_path / "out"
    assert main([*lib, "export-deid", str(ids[0]), "--study", "--out", str(out)]) == 0
    copies = [pydicom.dcmread(f) for f in sorted((out / "deidentified-series-1").iterdir())]
    assert len(copies) == 4
    assert len({str(c.StudyInstanceUID) for c in copies}) == 1
    assert len({str(c.FrameOfReferenceUID) for c in copies}) == 1
    assert len({str(c.SeriesInstanceUID) for c in copies}) == 2
    kept = {str(c[k].value) for c in copies for k in
            ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")}
    assert not kept & originals
    # One series at a time: two exports, two different new studies.
    assert main([*lib, "export-deid", str(ids[0]), "--out", str(out)]) == 0
    assert main([*lib, "export-deid", str(ids[1]), "--out", str(out)]) == 0
    one = pydicom.dcmread(next((out / "deidentified-series-2").iterdir()))
    two = pydicom.dcmread(next((out / "deidentified-series-3").iterdir()))
    assert one.StudyInstanceUID != two.StudyInstanceUID
    library = Library.open(library_dir)
    try:
        whats = [r.payload["what"] for r in library.audit_rows() if r.event == "export"]
    finally:
        library.close()
    assert whats == ["deidentified-study", "deidentified-series", "deidentified-series"]
