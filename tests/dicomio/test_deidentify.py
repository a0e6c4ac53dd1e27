"""De-identified export (dicomio.deidentify) checked against PS3.15 Table E.1-1 itself.

BASIC_PROFILE below is typed from PS3.15 (2024e) Table E.1-1, "Basic Prof." column, for
the attributes that occur in CT / MR / CR headers — not taken from dicognito or from
Lucida's own lists, so it can catch what either leaves behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from core.errors import DicomReadError
from dicomio.deidentify import (
    BurnedInAnnotationError,
    DeidTargetError,
    export_deidentified,
)

# (group, element) -> Basic Profile action, from PS3.15 Table E.1-1.
BASIC_PROFILE: dict[int, str] = {
    0x00080012: "X/D",  # Instance Creation Date
    0x00080013: "X/Z/D",  # Instance Creation Time
    0x00080014: "U",  # Instance Creator UID
    0x00080018: "U",  # SOP Instance UID
    0x00080020: "Z",  # Study Date
    0x00080021: "X/D",  # Series Date
    0x00080022: "X/Z",  # Acquisition Date
    0x00080023: "Z/D",  # Content Date
    0x00080024: "X",  # Overlay Date
    0x00080025: "X",  # Curve Date
    0x0008002A: "X/D",  # Acquisition DateTime
    0x00080030: "Z",  # Study Time
    0x00080031: "X/D",  # Series Time
    0x00080032: "X/Z",  # Acquisition Time
    0x00080033: "Z/D",  # Content Time
    0x00080050: "Z",  # Accession Number
    0x00080080: "X/Z/D",  # Institution Name
    0x00080081: "X",  # Institution Address
    0x00080090: "Z",  # Referring Physician's Name
    0x00080092: "X",  # Referring Physician's Address
    0x00080094: "X",  # Referring Physician's Telephone Numbers
    0x00081010: "X/Z/D",  # Station Name
    0x00081030: "X",  # Study Description
    0x0008103E: "X",  # Series Description
    0x00081040: "X",  # Institutional Department Name
    0x00081048: "X",  # Physician(s) of Record
    0x00081050: "X",  # Performing Physician's Name
    0x00081060: "X",  # Name of Physician(s) Reading Study
    0x00081070: "X/Z/D",  # Operators' Name
    0x00081080: "X",  # Admitting Diagnoses Description
    0x00081155: "U",  # Referenced SOP Instance UID
    0x00082111: "X",  # Derivation Description
    0x00100010: "Z",  # Patient's Name
    0x00100020: "Z",  # Patient ID
    0x00100030: "Z",  # Patient's Birth Date
    0x00100032: "X",  # Patient's Birth Time
    0x00100040: "Z",  # Patient's Sex
    0x00101000: "X",  # Other Patient IDs
    0x00101001: "X",  # Other Patient Names
    0x00101002: "X",  # Other Patient IDs Sequence
    0x00101010: "X",  # Patient's Age
    0x00101020: "X",  # Patient's Size
    0x00101030: "X",  # Patient's Weight
    0x00101040: "X",  # Patient's Address
    0x00102160: "X",  # Ethnic Group
    0x001021B0: "X",  # Additional Patient's History
    0x001021D0: "X",  # Last Menstrual Date
    0x00104000: "X",  # Patient Comments
    0x00180010: "Z/D",  # Contrast/Bolus Agent
    0x00181000: "X/Z/D",  # Device Serial Number
    0x00181030: "X/D",  # Protocol Name
    0x00184000: "X",  # Acquisition Comments
    0x0020000D: "U",  # Study Instance UID
    0x0020000E: "U",  # Series Instance UID
    0x00200010: "Z",  # Study ID
    0x00200052: "U",  # Frame of Reference UID
    0x00204000: "X",  # Image Comments
    0x00321032: "X",  # Requesting Physician
    0x00324000: "X",  # Study Comments
    0x00380010: "X",  # Admission ID
    0x00380020: "X",  # Admitting Date
    0x00400244: "X",  # Performed Procedure Step Start Date
    0x00400245: "X",  # Performed Procedure Step Start Time
    0x00400253: "X",  # Performed Procedure Step ID
    0x00400254: "X",  # Performed Procedure Step Description
    0x0040A075: "D",  # Verifying Observer Name
    0x0040A123: "D",  # Person Name
    0x0040A124: "U",  # UID
    0x00700084: "Z",  # Content Creator's Name
    0x00880140: "U",  # Storage Media File-set UID
}


def _values_by_tag(ds: Dataset) -> dict[int, list[str]]:
    """Every value of every element, at any depth, by tag."""
    out: dict[int, list[str]] = {}
    for elem in ds.iterall():
        if elem.VR != "SQ":
            out.setdefault(int(elem.tag), []).append(str(elem.value))
    return out


def _profile_leaks(source: Dataset, copy: Dataset) -> list[str]:
    """Profile attributes whose non-empty source value is still in the copy, and private
    elements still present (the Basic Profile removes private attributes)."""
    leaks = []
    before, after = _values_by_tag(source), _values_by_tag(copy)
    for tag, action in BASIC_PROFILE.items():
        for value in before.get(tag, []):
            if value.strip() and value in after.get(tag, []):
                leaks.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {action} kept {value[:20]!r}")
    leaks += [f"private {e.tag} kept" for e in copy.iterall() if e.tag.is_private]
    return leaks


def _digest(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())}


@pytest.fixture
def lidc_copy(shared_data: Path, tmp_path: Path) -> Path:
    """Four files of LIDC-IDRI-0001, copied into tmp_path (metadata and mtimes kept)."""
    folder = tmp_path / "lidc"
    folder.mkdir()
    for path in sorted((shared_data / "ct" / "LIDC-IDRI-0001").glob("*.dcm"))[:4]:
        shutil.copy2(path, folder / path.name)
    return folder


def test_lidc_series_keeps_nothing_of_the_basic_profile(lidc_copy: Path, tmp_path: Path) -> None:
    before = _digest(lidc_copy)
    sources = sorted(lidc_copy.glob("*.dcm"))
    result = export_deidentified(sources, tmp_path / "out")
    assert len(result.files) == len(sources) and not result.skipped
    assert result.out_dir.parent == tmp_path / "out"
    originals = [pydicom.dcmread(p) for p in sources]
    copies = [pydicom.dcmread(p) for p in result.files]
    for source, copy in zip(originals, copies, strict=True):
        assert _profile_leaks(source, copy) == []
        assert copy.PixelData == source.PixelData  # byte-identical pixels
        assert copy.PatientIdentityRemoved == "YES"
        assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
    # One study, one series, one frame of reference: remapped the same way in every file.
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        new = {str(c.get(keyword)) for c in copies}
        old = {str(o.get(keyword)) for o in originals}
        assert len(new) == len(old) == 1 and new != old
    sops = [str(c.SOPInstanceUID) for c in copies]
    assert len(set(sops)) == len(sops)
    assert not set(sops) & {str(o.SOPInstanceUID) for o in originals}
    assert _digest(lidc_copy) == before  # sources: same bytes, same mtimes


def _write_instance(path: Path, study: str, series: str, sop: str, *,
                    ref: str | None = None, burned_in: str | None = None) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.StudyDescription = "Chest for Jane Roe"
    ds.PatientAge, ds.PatientSex = "042Y", "F"
    if ref is not None:
        item = Dataset()
        item.ReferencedSOPClassUID = ds.SOPClassUID
        item.ReferencedSOPInstanceUID = ref
        ds.ReferencedImageSequence = DicomSequence([item])
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def written_study(tmp_path: Path) -> Path:
    """Two series of one study; an image of series 2 references one of series 1."""
    folder = tmp_path / "study"
    folder.mkdir()
    study = "1.2.826.0.1.3680043.8.498.1"
    _write_instance(folder / "a1.dcm", study, f"{study}.1", f"{study}.1.1")
    _write_instance(folder / "a2.dcm", study, f"{study}.1", f"{study}.1.2")
    _write_instance(folder / "b1.dcm", study, f"{study}.2", f"{study}.2.1", ref=f"{study}.1.2")
    return folder


def test_references_follow_the_remapped_uids(written_study: Path, tmp_path: Path) -> None:
    sources = [written_study / n for n in ("a1.dcm", "a2.dcm", "b1.dcm")]
    originals = [pydicom.dcmread(p) for p in sources]
    copies = [pydicom.dcmread(p) for p in export_deidentified(sources, tmp_path / "o").files]
    for source, copy in zip(originals, copies, strict=True):
        assert _profile_leaks(source, copy) == []  # CT_small: private GEMS tags, names
        assert "StudyDescription" not in copy and "PatientAge" not in copy
    assert len({str(c.StudyInstanceUID) for c in copies}) == 1
    assert copies[0].SeriesInstanceUID == copies[1].SeriesInstanceUID != copies[2].SeriesInstanceUID
    ref = copies[2].ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert ref == copies[1].SOPInstanceUID  # the reference points at the new a2


def test_two_exports_map_uids_differently(written_study: Path, tmp_path: Path) -> None:
    sources = [written_study / "a1.dcm"]
    first = pydicom.dcmread(export_deidentified(sources, tmp_path / "o").files[0])
    second = pydicom.dcmread(export_deidentified(sources, tmp_path / "o").files[0])
    assert first.StudyInstanceUID != second.StudyInstanceUID  # one Anonymizer per export
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "deidentified-series-1", "deidentified-series-2"]  # never over an earlier copy


def test_burned_in_refused_unless_confirmed(tmp_path: Path) -> None:
    folder = tmp_path / "us"
    folder.mkdir()
    uid = "1.2.826.0.1.3680043.8.498.7"
    _write_instance(folder / "x.dcm", uid, f"{uid}.1", f"{uid}.1.1", burned_in="YES")
    _write_instance(folder / "y.dcm", uid, f"{uid}.1", f"{uid}.1.2", burned_in="NO")
    sources = sorted(folder.glob("*.dcm"))
    with pytest.raises(BurnedInAnnotationError) as info:
        export_deidentified(sources, tmp_path / "out")
    assert info.value.flagged == [str(folder / "x.dcm")]
    assert not (tmp_path / "out").exists()  # nothing written before the refusal
    result = export_deidentified(sources, tmp_path / "out", allow_burned_in=True)
    assert len(result.files) == 2 and result.burned_in == 1


@pytest.mark.parametrize("where", ["same", "below"])
def test_writing_in_or_under_the_sources_folder_is_refused(written_study: Path,
                                                           where: str) -> None:
    out = written_study if where == "same" else written_study / "export" / "deid"
    before = sorted(os.listdir(written_study))
    with pytest.raises(DeidTargetError):
        export_deidentified(sorted(written_study.glob("*.dcm")), out)
    assert sorted(os.listdir(written_study)) == before


def test_a_truncated_file_is_skipped_and_named(written_study: Path, tmp_path: Path) -> None:
    broken = tmp_path / "src2"
    broken.mkdir()
    shutil.copy2(written_study / "a1.dcm", broken / "a1.dcm")
    (broken / "cut.dcm").write_bytes((written_study / "a2.dcm").read_bytes()[:900])
    # Cut inside the pixel data: the header reads, the pixels are short.
    (broken / "short.dcm").write_bytes((written_study / "b1.dcm").read_bytes()[:-1000])
    result = export_deidentified(sorted(broken.glob("*.dcm")), tmp_path / "out")
    assert len(result.files) == 1
    assert [Path(s).name for s, _ in result.skipped] == ["cut.dcm", "short.dcm"]
    assert "truncated" in result.skipped[1][1]
    with pytest.raises(DicomReadError):
        export_deidentified([broken / "cut.dcm"], tmp_path / "out2")


def test_a_cancelled_export_leaves_nothing(written_study: Path, tmp_path: Path) -> None:
    from core.errors import CancelledError
    from core.progress import CancelToken

    token = CancelToken()
    seen: list[str] = []

    def progress(fraction: float, message: str = "") -> None:
        seen.append(message)
        if message.startswith("De-identifying 2/"):
            token.cancel()  # after the first file was written

    with pytest.raises(CancelledError):
        export_deidentified(sorted(written_study.glob("*.dcm")), tmp_path / "out",
                            progress=progress, cancel=token)
    assert "De-identifying 2/3" in seen
    assert list((tmp_path / "out").iterdir()) == []


def test_a_bare_data_set_is_copied_as_a_part_10_file(tmp_path: Path) -> None:
    """An old file without preamble or file meta (implicit VR little endian)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.file_meta
    ds.preamble = None
    folder = tmp_path / "old"
    folder.mkdir()
    pydicom.dcmwrite(folder / "bare.dcm", ds, implicit_vr=True, little_endian=True)
    assert (folder / "bare.dcm").read_bytes()[:4] == b"\x08\x00\x05\x00"  # no preamble
    result = export_deidentified([folder / "bare.dcm"], tmp_path / "out")
    copy = pydicom.dcmread(result.files[0])  # no force: a real Part 10 file
    assert copy.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
    assert copy.PixelData == ds.PixelData
