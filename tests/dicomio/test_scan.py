"""Header scanning and grouping on real DICOM files written to tmp_path."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from core.errors import CancelledError
from core.progress import CancelToken
from core.volume import Volume
from dicomio.classify import ObjectKind, classify_sop_class
from dicomio.group import group_series
from dicomio.scan import scan_paths
from dicomio.write_image import SeriesInfo, write_series


def _axial(n: int = 5, rows: int = 8, cols: int = 6, spacing: float = 2.5,
           origin: tuple[float, float, float] = (-10.0, -20.0, 30.0)) -> Volume:
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, spacing)  # k: +S
    affine[:3, 1] = (0.0, 0.8, 0.0)      # j: +P (rows)
    affine[:3, 2] = (0.7, 0.0, 0.0)      # i: +L (columns)
    affine[:3, 3] = origin
    array = np.arange(n * rows * cols, dtype=np.float64).reshape(n, rows, cols) - 100
    return Volume(array=array, affine=affine)


def _coronal_localizer(rows: int = 10, cols: int = 12) -> Volume:
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 1.0, 0.0)     # k: +P (a single slice anyway)
    affine[:3, 1] = (0.0, 0.0, -1.5)    # j: -S (rows go down, towards feet)
    affine[:3, 2] = (1.5, 0.0, 0.0)     # i: +L
    affine[:3, 3] = (-50.0, 0.0, 60.0)
    return Volume(array=np.zeros((1, rows, cols)), affine=affine)


def _write(volume: Volume, folder: Path, **info: object) -> list[Path]:
    return write_series(volume, folder, SeriesInfo(**info))  # type: ignore[arg-type]


def test_scan_folder_recursive_fields_and_grouping(tmp_path: Path) -> None:
    src = tmp_path / "src"
    a = _write(_axial(5), src / "patient1" / "ct", patient_name="DOE^JANE", patient_id="P1",
               series_number=3, series_description="Chest")
    b = _write(_axial(4, rows=6, cols=6), src / "patient2" / "deep" / "mr", patient_id="P2")
    (src / "notes.txt").write_text("not dicom")
    progress: list[float] = []
    result = scan_paths([src], progress=lambda f, m="": progress.append(f), workers=1)
    assert len(result.instances) == len(a) + len(b) == 9
    assert result.files_seen == 10
    assert [s.reason for s in result.skipped] == [
        "not a DICOM file (no 'DICM' marker and no DICOM header)"]
    assert progress and progress[-1] == pytest.approx(1.0)
    first = next(i for i in result.instances if i.source.path == a[0])
    assert first.patient_name == "DOE^JANE" and first.patient_id == "P1"
    assert (first.rows, first.columns) == (8, 6)
    assert first.pixel_spacing == pytest.approx((0.8, 0.7))
    assert first.image_position == pytest.approx((-10.0, -20.0, 30.0))
    assert first.image_orientation == pytest.approx((1, 0, 0, 0, 1, 0))
    assert first.object_kind is ObjectKind.IMAGE
    assert first.series_number == 3 and first.instance_number == 1
    assert first.file_size == a[0].stat().st_size
    assert "DOE" not in repr(first)  # identity never in reprs (they end up in logs)
    groups = group_series(result.instances)
    assert [(g.patient_id, len(g.instances), g.stack_index) for g in groups] == [
        ("P1", 5, 0), ("P2", 4, 0)]
    assert groups[0].description.startswith("CT #3 Chest")


def test_threads_and_serial_agree(tmp_path: Path) -> None:
    for n in range(3):
        _write(_axial(20), tmp_path / f"s{n}")
    serial = scan_paths([tmp_path], workers=1)
    threaded = scan_paths([tmp_path], workers=2, use_processes=False)
    assert len(serial.instances) == 60
    assert sorted(i.sop_instance_uid for i in serial.instances) == sorted(
        i.sop_instance_uid for i in threaded.instances)


def test_process_pool_scan_matches(tmp_path: Path) -> None:
    _write(_axial(40), tmp_path / "s")
    serial = scan_paths([tmp_path], workers=1)
    pooled = scan_paths([tmp_path], workers=2, use_processes=True)
    assert sorted(map(repr, serial.instances)) == sorted(map(repr, pooled.instances))


def test_zip_members_read_in_place(tmp_path: Path) -> None:
    files = _write(_axial(4), tmp_path / "series")
    archive = tmp_path / "in" / "study.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f"dicom/{f.name}")
        zf.writestr("dicom/readme.txt", "hello")
    before = sorted(p.name for p in archive.parent.rglob("*"))
    result = scan_paths([archive.parent])
    assert sorted(p.name for p in archive.parent.rglob("*")) == before  # nothing extracted
    assert len(result.instances) == 4
    assert {i.source.path for i in result.instances} == {archive}
    assert sorted(i.source.member or "" for i in result.instances) == sorted(
        f"dicom/{f.name}" for f in files)
    assert [(s.source.member, s.reason.split(" (")[0]) for s in result.skipped] == [
        ("dicom/readme.txt", "not a DICOM file")]
    # a member opens through the source and is the same object as the loose file
    member = result.instances[0]
    with member.source.open() as fp:
        ds = pydicom.dcmread(fp)
    assert ds.SOPInstanceUID == member.sop_instance_uid


def test_dicomdir_references_are_followed_and_not_indexed(tmp_path: Path) -> None:
    from pydicom.fileset import FileSet

    files = _write(_axial(3), tmp_path / "loose")
    fs = FileSet()
    for f in files:
        fs.add(pydicom.dcmread(f))
    media = tmp_path / "media"
    fs.write(media)
    dicomdir = media / "DICOMDIR"
    assert dicomdir.is_file()
    result = scan_paths([dicomdir])
    assert result.dicomdirs == [dicomdir]
    assert len(result.instances) == 3
    assert all(i.source.path.is_relative_to(media) for i in result.instances)
    assert not result.skipped
    # Scanning the folder finds each referenced file once, DICOMDIR not as an object.
    folder = scan_paths([media])
    assert len(folder.instances) == 3 and folder.dicomdirs == [dicomdir]
    assert not folder.skipped


def test_localizer_and_second_size_become_own_stacks(tmp_path: Path) -> None:
    series_uid = str(generate_uid())
    study_uid = str(generate_uid())
    common = dict(series_uid=series_uid, study_uid=study_uid, series_number=2)
    _write(_axial(6), tmp_path / "axial", **common)
    _write(_coronal_localizer(), tmp_path / "scout",
           image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), **common)
    _write(_axial(2, rows=16, cols=16), tmp_path / "big", **common)
    groups = group_series(scan_paths([tmp_path]).instances)
    assert [g.series_uid for g in groups] == [series_uid] * 3
    by_index = {g.stack_index: g for g in groups}
    assert len(by_index[0].instances) == 6 and not by_index[0].is_localizer
    assert (by_index[1].first.rows, by_index[1].first.columns) == (16, 16)
    assert by_index[2].is_localizer and "localizer" in by_index[2].description
    assert len({g.stack_key for g in groups}) == 3


def test_same_geometry_tiny_orientation_jitter_stays_one_stack(tmp_path: Path) -> None:
    uid = str(generate_uid())
    files = _write(_axial(4), tmp_path / "s", series_uid=uid)
    ds = pydicom.dcmread(files[1])
    ds.ImageOrientationPatient = [0.99999999, 0.0000001, 0, 0, 1, 0.00001]
    ds.save_as(files[1])
    groups = group_series(scan_paths([tmp_path]).instances)
    assert len(groups) == 1 and len(groups[0].instances) == 4


def test_duplicate_sop_instances_grouped_once(tmp_path: Path) -> None:
    files = _write(_axial(3), tmp_path / "a")
    shutil.copytree(files[0].parent, tmp_path / "copy")
    result = scan_paths([tmp_path])
    assert len(result.instances) == 6
    groups = group_series(result.instances)
    assert len(groups) == 1 and len(groups[0].instances) == 3


def _make_bad_inputs(folder: Path, good: Path) -> dict[str, str]:
    """Write bad inputs next to nothing real; return name -> expected reason fragment."""
    data = good.read_bytes()
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "text.dcm").write_text("hello, not an image\n" * 20)
    # Cut inside the SeriesInstanceUID value. A cut at len // 2 could land exactly on an
    # element boundary (UID lengths vary), and such a file honestly reads as "missing UIDs".
    series_uid_tag = data.index(b"\x20\x00\x0e\x00UI")  # (0020,000E), explicit VR LE
    (folder / "half.dcm").write_bytes(data[: series_uid_tag + 8 + 3])
    (folder / "header_cut.dcm").write_bytes(data[:200])
    (folder / "dir_like_file.dcm").mkdir()
    ds = pydicom.dcmread(good)
    del ds.SeriesInstanceUID
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(folder / "no_series_uid.dcm")
    ds = pydicom.dcmread(good)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    del ds.PixelData
    ds.save_as(folder / "no_pixels.dcm")
    bad_preamble = bytearray(data)
    bad_preamble[128:132] = b"XXXX"
    (folder / "wrong_preamble.dcm").write_bytes(bytes(bad_preamble))
    return {
        "empty.dcm": "empty file",
        "text.dcm": "not a DICOM file",
        "half.dcm": "truncated",
        "header_cut.dcm": "truncated",
        "dir_like_file.dcm": "directory named like a file",
        "no_series_uid.dcm": "missing required UID(s): SeriesInstanceUID",
        "no_pixels.dcm": "without pixel data",
        "wrong_preamble.dcm": "not a DICOM file",
    }


def test_bad_files_are_skipped_with_specific_reasons(tmp_path: Path) -> None:
    good = _write(_axial(3), tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    expected = _make_bad_inputs(bad, good[0])
    result = scan_paths([tmp_path])
    assert len(result.instances) == 3  # the rest imports
    reasons = {s.source.path.name: s.reason for s in result.skipped}
    assert set(reasons) == set(expected), reasons
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])


def test_bad_files_inside_a_zip_are_skipped_too(tmp_path: Path) -> None:
    good = _write(_axial(2), tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    expected = _make_bad_inputs(bad, good[0])
    archive = tmp_path / "z" / "mixed.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for f in [*good, *bad.iterdir()]:
            if f.is_file():
                zf.write(f, f.name)
    result = scan_paths([archive])
    assert len(result.instances) == 2
    reasons = {s.source.member: s.reason for s in result.skipped}
    for name, fragment in expected.items():
        if name != "dir_like_file.dcm":
            assert fragment in reasons[name], (name, reasons[name])


def test_missing_path_and_corrupt_zip(tmp_path: Path) -> None:
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 this is no zip")
    result = scan_paths([tmp_path / "nowhere", tmp_path / "broken.zip"])
    reasons = sorted(s.reason.split(":")[0] for s in result.skipped)
    assert reasons == ["does not exist", "unreadable zip archive"]


def test_unknown_sop_class_with_and_without_pixels(tmp_path: Path) -> None:
    files = _write(_axial(2), tmp_path / "s")
    unknown = "1.2.3.4.5.6.7.8.9"
    ds = pydicom.dcmread(files[0])
    ds.SOPClassUID = unknown
    ds.file_meta.MediaStorageSOPClassUID = unknown
    ds.save_as(files[0])
    ds = pydicom.dcmread(files[1])
    ds.SOPClassUID = unknown
    ds.file_meta.MediaStorageSOPClassUID = unknown
    del ds.PixelData
    ds.save_as(files[1])
    result = scan_paths([tmp_path])
    kinds = {i.source.path.name: i.object_kind for i in result.instances}
    assert kinds == {files[0].name: ObjectKind.IMAGE, files[1].name: ObjectKind.OTHER_NONIMAGE}
    assert not result.skipped


def test_classification_table() -> None:
    from pydicom import uid

    cases = {
        uid.SegmentationStorage: ObjectKind.SEG,
        uid.ComprehensiveSRStorage: ObjectKind.SR,
        uid.EnhancedSRStorage: ObjectKind.SR,
        uid.RTStructureSetStorage: ObjectKind.RTSTRUCT,
        uid.KeyObjectSelectionDocumentStorage: ObjectKind.KO,
        uid.GrayscaleSoftcopyPresentationStateStorage: ObjectKind.PR,
        uid.RTPlanStorage: ObjectKind.RTPLAN,
        uid.RTDoseStorage: ObjectKind.RTDOSE,
        uid.RTImageStorage: ObjectKind.RTIMAGE,
        uid.TwelveLeadECGWaveformStorage: ObjectKind.WAVEFORM,
        uid.RealWorldValueMappingStorage: ObjectKind.OTHER_NONIMAGE,
        uid.CTImageStorage: ObjectKind.IMAGE,
        uid.EnhancedMRImageStorage: ObjectKind.IMAGE,
        uid.EncapsulatedPDFStorage: ObjectKind.OTHER_NONIMAGE,
    }
    for sop_class, kind in cases.items():
        assert classify_sop_class(str(sop_class), has_pixel_data=True) is kind, sop_class


def test_cancel_stops_the_scan(tmp_path: Path) -> None:
    _write(_axial(3), tmp_path / "s")
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        scan_paths([tmp_path], cancel=token)


def test_shared_masks_are_classified(shared_data: Path) -> None:
    result = scan_paths([shared_data / "masks"])
    kinds = {str(i.source.path.relative_to(shared_data / "masks")): i.object_kind.value
             for i in result.instances}
    print(kinds)
    assert kinds == {
        "dcmqi_ct-3slice_SEG/ct-3slice/01.dcm": "image",
        "dcmqi_ct-3slice_SEG/ct-3slice/02.dcm": "image",
        "dcmqi_ct-3slice_SEG/ct-3slice/03.dcm": "image",
        "dcmqi_ct-3slice_SEG/liver.dcm": "seg",
        "dcmqi_ct-3slice_SEG/partial_overlaps.dcm": "seg",
        "LIDC-IDRI-0001_SEG_fedorov/nodule.dcm": "seg",
        "dcmqi_sr-tid1500_example/sr.dcm": "sr",
        "dcmqi_sr-tid1500_example/seg.dcm": "seg",
        "dcmqi_sr-tid1500_example/rwvm.dcm": "other_nonimage",
        "dicompyler_RTSTRUCT/rtss.dcm": "rtstruct",
    }
    assert [s.source.path.name for s in result.skipped] == ["SOURCE.md"]
    seg = next(i for i in result.instances if i.source.path.name == "liver.dcm")
    assert seg.number_of_frames == 3


def test_shared_lidc_scan_and_rate(shared_data: Path) -> None:
    import time

    folder = shared_data / "ct" / "LIDC-IDRI-0001"
    scan_paths([folder])  # warm the cache
    started = time.perf_counter()
    result = scan_paths([folder])
    elapsed = time.perf_counter() - started
    print(f"LIDC header scan: {result.files_seen / elapsed:.0f} files/s "
          f"({result.files_seen} files in {elapsed * 1000:.0f} ms)")
    groups = group_series(result.instances)
    assert len(groups) == 1 and len(groups[0].instances) == 133
    assert {s.source.path.name for s in result.skipped} == {"069.xml", "SOURCE.md"}


def test_non_ascii_names_and_implicit_vr(tmp_path: Path) -> None:
    from pydicom.uid import ImplicitVRLittleEndian

    _write(_axial(2), tmp_path / "latin1", patient_name="Müller^Jörg",
           series_description="Thorax nativ é 1 mm")
    write_series(_axial(3), tmp_path / "implicit", SeriesInfo(patient_id="IMPL"),
                 transfer_syntax=ImplicitVRLittleEndian)
    result = scan_paths([tmp_path])
    assert not result.skipped
    names = {i.patient_name for i in result.instances if i.patient_id != "IMPL"}
    assert names == {"Müller^Jörg"}
    assert {i.series_description for i in result.instances if i.patient_id != "IMPL"} == {
        "Thorax nativ é 1 mm"}
    implicit = [i for i in result.instances if i.patient_id == "IMPL"]
    assert len(implicit) == 3
    assert implicit[0].transfer_syntax_uid == str(ImplicitVRLittleEndian)
    assert (implicit[0].rows, implicit[0].columns) == (8, 6)
    assert implicit[0].image_position is not None


def test_fast_reader_agrees_with_pydicom_on_the_zoo(zoo_files: list[Path]) -> None:
    """The header parser (fastheader) gives exactly what pydicom gives, or declines.

    The fast reader is called on its own (``read_header_fast`` returns None when it
    declines), so a file it hands to pydicom cannot count as agreement: the test
    asserts how many files it really parsed.
    """
    from dicomio import scan as scan_module
    from dicomio.source import DicomSource

    files = zoo_files
    assert len(files) > 300
    fast_parsed = declined = 0
    def run(reader: object, path: Path, size: int, mtime: float) -> object:
        try:
            with open(path, "rb") as fp:
                return reader(fp, DicomSource(path), size, mtime)  # type: ignore[operator]
        except scan_module.ScanProblem as problem:
            return "skipped: " + str(problem).split(":")[0]

    for path in files:
        size, mtime = path.stat().st_size, path.stat().st_mtime
        if size == 0:
            continue
        fast = run(scan_module.read_header_fast, path, size, mtime)
        if fast is None:
            declined += 1
            continue
        general = run(scan_module._read_header_pydicom, path, size, mtime)
        assert fast == general, path
        fast_parsed += 1
    print(f"fast reader == pydicom on {fast_parsed} files, {declined} declined")
    # 295 of the 312 non-empty zoo files today; the 17 declined have no 'DICM' marker
    # (raw data sets, JSON, text) or an invalid VR in an explicit-VR data set.
    assert fast_parsed >= 290 and declined <= 20


def test_zoo_tally_every_file_accounted_for(zoo_files: list[Path]) -> None:
    """The scan of the whole zoo, checked against a record: the count of each object
    kind and skip reason, and for known files their kind or their reason."""
    files = zoo_files
    folders = sorted({p.parent for p in files})
    result = scan_paths(folders)
    kinds: dict[str, int] = {}
    for instance in result.instances:
        kinds[instance.object_kind.value] = kinds.get(instance.object_kind.value, 0) + 1
    reasons: dict[str, int] = {}
    for item in result.skipped:
        key = item.reason.split(" (")[0].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    print(f"zoo scan: {result.files_seen} files, {len(result.instances)} indexed {kinds}, "
          f"{len(result.dicomdirs)} DICOMDIRs, skipped {reasons}")
    assert (result.files_seen, len(result.dicomdirs)) == (244, 8)
    assert kinds == {"image": 144, "rtdose": 7, "seg": 4, "rtplan": 3, "sr": 3,
                     "rtstruct": 1, "waveform": 1}
    assert reasons == {"image object without pixel data": 50, "missing required UID(s)": 10,
                       "not a DICOM file": 10, "truncated": 3}
    kind_of = {i.source.path.name: i.object_kind.value for i in result.instances}
    for name, kind in (("CT_small.dcm", "image"), ("MR_small_bigendian.dcm", "image"),
                       ("image_dfl.dcm", "image"), ("emri_small.dcm", "image"),
                       ("rtstruct.dcm", "rtstruct"), ("rtdose.dcm", "rtdose"),
                       ("test-SR.dcm", "sr"), ("waveform_ecg.dcm", "waveform"),
                       ("liver.dcm", "seg")):
        assert kind_of.get(name) == kind, (name, kind_of.get(name))
    skipped = {s.source.path.name: s.reason for s in result.skipped}
    for name, fragment in (
            ("MR_truncated.dcm", "truncated: pixel data needs 8192 bytes but the file is 62"),
            ("rtplan_truncated.dcm", "truncated: the file ends inside a data element"),
            ("emri_small_jpeg_2k_lossless_too_short.dcm",
             "truncated: compressed pixel data has no end-of-sequence marker"),
            ("priv_SQ.dcm", "missing required UID(s): StudyInstanceUID, SeriesInstanceUID"),
            ("no_meta.dcm", "not a DICOM file"), ("zipMR.gz", "not a DICOM file")):
        assert fragment in skipped.get(name, ""), (name, skipped.get(name))


def test_key_object_selection_is_indexed_as_ko(tmp_path: Path) -> None:
    """No public KO example exists, so one is built with highdicom from real images."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    files = _write(_axial(2), tmp_path / "ct")
    images = [pydicom.dcmread(f) for f in files]
    content = hd.ko.KeyObjectSelection(document_title=codes.DCM.Manifest,
                                       referenced_objects=images)
    document = hd.ko.KeyObjectSelectionDocument(
        evidence=images, content=content, series_instance_uid=hd.UID(), series_number=50,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Lucida tests")
    document.save_as(tmp_path / "ko.dcm")
    result = scan_paths([tmp_path])
    kinds = {i.source.path.name: i.object_kind for i in result.instances}
    assert kinds["ko.dcm"] is ObjectKind.KO
    groups = group_series(result.instances)
    ko_group = next(g for g in groups if g.object_kind is ObjectKind.KO)
    assert len(ko_group.instances) == 1 and "ko" in ko_group.description


def test_top_level_uc_ur_sv_uv_elements_are_read(tmp_path: Path) -> None:
    """Valid files with top-level UC, UR, SV and UV elements (4-byte lengths) are
    indexed with pydicom's values, as an image and as a non-image object.

    The URI starts with two capitals, so a parser that took UR for a short VR would
    read "HT" as a VR and "TP" as a 20,564-byte length: past the end of this file.
    """
    from app.importer import import_paths
    from store import Library

    files = _write(_axial(2), tmp_path / "s", patient_name="DOE^JANE", series_number=7,
                   series_description="Chest")
    for path in files:
        ds = pydicom.dcmread(path)
        ds.add_new(0x00080409, "UR", "HTTPS://pacs.example.org/studies/1")  # FileAccessURI
        ds.add_new(0x00100212, "UC", "HETEROZYGOUS strain, described at length")
        ds.add_new(0x00720082, "SV", [-5, 1 << 40])  # SelectorSVValue
        ds.add_new(0x00720083, "UV", [1 << 60])  # SelectorUVValue
        ds.save_as(path)
    no_pixels = tmp_path / "s" / "no_pixels.dcm"
    ds = pydicom.dcmread(files[1])
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.3.4.5.6.7.8.9"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(no_pixels)
    raw = files[0].read_bytes()
    for vr in (b"UR\x00\x00", b"UC\x00\x00", b"SV\x00\x00", b"UV\x00\x00"):
        assert vr in raw  # written with the 4-byte length form

    result = scan_paths([tmp_path / "s"], workers=1)
    assert not result.skipped, result.skipped
    by_name = {i.source.path.name: i for i in result.instances}
    assert by_name["no_pixels.dcm"].object_kind is ObjectKind.OTHER_NONIMAGE
    for path in [*files, no_pixels]:
        ref = pydicom.dcmread(path)
        assert ref[0x00720082].value == [-5, 1 << 40] and ref[0x00720083].value == 1 << 60
        got = by_name[path.name]
        assert got.sop_instance_uid == ref.SOPInstanceUID
        assert got.series_uid == ref.SeriesInstanceUID and got.study_uid == ref.StudyInstanceUID
        assert got.patient_name == str(ref.PatientName) == "DOE^JANE"
        assert got.series_description == ref.SeriesDescription
        assert got.series_number == ref.SeriesNumber == 7
        assert got.instance_number == ref.InstanceNumber
        assert got.image_position == pytest.approx([float(v) for v in ref.ImagePositionPatient])
        assert (got.rows, got.columns) == (ref.Rows, ref.Columns)

    from dicomio.fastheader import WANTED, read_lean_header

    with open(files[0], "rb") as fp:
        lean = read_lean_header(fp, files[0].stat().st_size)
    assert lean is not None
    ref = pydicom.dcmread(files[0], stop_before_pixels=True)
    for keyword in ("Rows", "Columns", "InstanceNumber", "Modality", "RescaleIntercept"):
        assert keyword in WANTED
        assert lean[0].get(keyword) == pytest.approx(ref.get(keyword)) \
            if keyword != "Modality" else lean[0].get(keyword) == ref.Modality

    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [tmp_path / "s"])
    assert report.new == 3 and not report.skipped
