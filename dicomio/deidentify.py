"""A de-identified copy of a series: PS3.15 Basic Application Level Confidentiality Profile.

The work is done by dicognito (one :class:`dicognito.anonymizer.Anonymizer` per export,
so every UID of the study — Study, Series, Frame of Reference, SOP Instance and the
references to them, file meta included — is mapped the same way in every file: its
randomizer derives each new UID from the old one and the export's seed). dicognito
replaces names, IDs, UIDs, addresses, equipment and shifts dates; the Basic Profile
also removes what it leaves: private elements, free-text descriptions and comments,
patient characteristics (:data:`REMOVE_KEYWORDS`, :data:`EMPTY_KEYWORDS`). The last
check reuses :data:`dicomio.tags.IDENTIFYING_KEYWORDS`: any of them still holding its
source value is removed.

Safety rules:

* Sources are only read (headers within the loader's caps, then the whole file
  through :class:`dicomio.decode.BoundedReader`); nothing is written beside them —
  an output folder in or under a source's folder is refused
  (:class:`DeidTargetError`).
* Each file is written atomically (:mod:`core.atomic`) into a new subfolder of the
  chosen folder (``deidentified-series-N``), never over an existing file.
* Images whose BurnedInAnnotation is "YES" carry text in their pixels that no header
  edit removes: the export is refused (:class:`BurnedInAnnotationError`) unless the
  caller passes ``allow_burned_in=True`` after the user confirmed.
* Pixel data are copied byte for byte.
* A cancelled or failed export removes the files it wrote and its folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_path
from core.errors import DicomReadError, LucidaError
from core.progress import CancelToken, ProgressSink, no_progress
from dicomio.source import DicomSource
from dicomio.tags import IDENTIFYING_KEYWORDS, read_header_dataset

PROFILE = "PS3.15 Basic Application Level Confidentiality Profile"
#: Written into DeidentificationMethod next to dicognito's own text.
METHOD = "Lucida: PS3.15 Basic Profile (dicognito), no private"

#: Basic Profile action X (remove) for attributes dicognito leaves in place.
REMOVE_KEYWORDS: frozenset[str] = frozenset({
    "StudyDescription", "SeriesDescription", "ImageComments", "DerivationDescription",
    "ProtocolName", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup",
    "PatientComments", "AdditionalPatientHistory", "AdmittingDiagnosesDescription",
    "AcquisitionComments", "StudyComments", "PerformedProcedureStepDescription",
    "RequestedProcedureDescription", "ScheduledProcedureStepDescription",
    "AcquisitionDeviceProcessingDescription", "InstitutionalDepartmentName",
    "InstitutionAddress", "LastMenstrualDate", "PatientBirthTime", "SoftwareVersions",
    "DeviceSerialNumber", "RequestAttributesSequence", "ReferencedPatientSequence",
    "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence",
    "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence", "PatientAddress",
    "MedicalAlerts", "Allergies", "PregnancyStatus", "SmokingStatus", "Occupation",
    "PatientState", "SpecialNeeds", "VisitComments", "ReasonForStudy",
    "RequestedContrastAgent", "ContentSequence", "TextValue", "TopicSubject",
    "FrameComments", "ServiceEpisodeDescription", "AdmissionID",
    "PerformedProcedureStepID", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime", "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndTime", "InstanceCreatorUID",
})
#: Basic Profile action Z (zero length) for Type 2 attributes dicognito leaves in place.
EMPTY_KEYWORDS: frozenset[str] = frozenset({"PatientSex", "ContrastBolusAgent"})


class DeidTargetError(LucidaError, ValueError):
    """The output folder is in or under a source's folder."""


class BurnedInAnnotationError(LucidaError, ValueError):
    """Sources flagged BurnedInAnnotation YES, and the user did not confirm."""

    def __init__(self, flagged: Sequence[str]) -> None:
        self.flagged = list(flagged)
        super().__init__(
            f"{len(self.flagged)} image(s) are flagged BurnedInAnnotation YES: their pixels "
            "carry text (names, dates) that de-identifying the header does not remove")


@dataclass
class DeidResult:
    """What an export wrote: the new folder and its files (in source order)."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    burned_in: int = 0  # files flagged BurnedInAnnotation YES that were exported (confirmed)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)


def _as_source(source: DicomSource | Path) -> DicomSource:
    return source if isinstance(source, DicomSource) else DicomSource(Path(source))


def source_folders(sources: Sequence[DicomSource | Path]) -> set[Path]:
    """The folders that hold the sources (a zip member: the archive's folder)."""
    return {_as_source(s).path.resolve().parent for s in sources}


def check_target(out_dir: Path, sources: Sequence[DicomSource | Path]) -> None:
    """Refuse an output folder that is, or is under, a folder holding a source."""
    target = Path(out_dir).resolve()
    for folder in source_folders(sources):
        if target == folder or folder in target.parents:
            raise DeidTargetError(
                "Lucida never writes next to the source files: choose a folder outside "
                "the series' folder")


def is_burned_in(ds: Any) -> bool:
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"


def burned_in_sources(sources: Sequence[DicomSource | Path]) -> list[str]:
    """Sources whose header says BurnedInAnnotation YES (unreadable files are not listed:
    the export reports them)."""
    flagged = []
    for source in sources:
        src = _as_source(source)
        try:
            if is_burned_in(read_header_dataset(src)):
                flagged.append(str(src))
        except DicomReadError:
            continue
    return flagged


def new_anonymizer() -> Any:
    """One per export: it is what keeps the UID mapping consistent across the study."""
    from dicognito.anonymizer import Anonymizer

    return Anonymizer()


def deidentify_dataset(ds: Any, anonymizer: Any) -> None:
    """De-identify one data set in place (dicognito, then what it leaves)."""
    original = {k: _plain(ds.get(k)) for k in IDENTIFYING_KEYWORDS if k in ds}
    anonymizer.anonymize(ds)
    ds.remove_private_tags()
    ds.walk(_basic_profile_cleanup)
    for keyword, value in original.items():
        if keyword in ds and value and _plain(ds.get(keyword)) == value:
            del ds[keyword]  # dicognito kept it: the Basic Profile does not
    ds.PatientIdentityRemoved = "YES"
    methods = list(ds.get("DeidentificationMethod", []) or [])
    methods = [methods] if isinstance(methods, str) else [str(m) for m in methods]
    if METHOD not in methods:
        ds.DeidentificationMethod = [*methods, METHOD] if methods else METHOD


def _basic_profile_cleanup(dataset: Any, elem: Any) -> None:
    keyword = elem.keyword
    if keyword in REMOVE_KEYWORDS:
        del dataset[elem.tag]
    elif keyword in EMPTY_KEYWORDS:
        elem.value = None


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


def read_whole(src: DicomSource) -> Any:
    """The whole file (pixel data included), after the header was read within the
    loader's caps; a value longer than the file is never allocated."""
    import pydicom

    from dicomio import fastheader
    from dicomio.decode import BoundedReader

    read_header_dataset(src)  # the structure walk and caps: refuses hostile headers
    with src.open() as fp:
        size = fastheader.data_size(fp)
        meta = fastheader.read_file_meta(fp, size) if size else None
        if meta is not None and meta.transfer_syntax in fastheader.DEFLATED:
            raise DicomReadError("deflated files are not exported (Lucida cannot bound "
                                 "pydicom's inflation of the whole data set)")
        fp.seek(0)
        try:
            ds = pydicom.dcmread(BoundedReader(fp, None, size), force=True)
            _check_pixel_length(ds)
        except DicomReadError:
            raise
        except Exception as exc:  # pydicom raises many types on corrupt files
            raise DicomReadError(f"cannot read the file ({type(exc).__name__})") from exc
    return ds


def _check_pixel_length(ds: Any) -> None:
    """Refuse native pixel data shorter than the header describes (a truncated file:
    the reader hands pydicom what is there, which would be copied as if whole).
    Truncated encapsulated data fail in pydicom's own parse."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if "PixelData" not in ds or syntax is None or syntax.is_encapsulated:
        return
    samples = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
               * int(ds.get("NumberOfFrames", 1) or 1))
    expected = (samples * int(ds.BitsAllocated) + 7) // 8
    if len(ds.PixelData) < expected:
        raise DicomReadError(f"the pixel data end early ({len(ds.PixelData)} of {expected} "
                             "bytes): the file is truncated")


def _new_folder(out_dir: Path) -> Path:
    n = 1
    while (out_dir / f"deidentified-series-{n}").exists():
        n += 1
    return out_dir / f"deidentified-series-{n}"


def export_deidentified(sources: Sequence[DicomSource | Path], out_dir: Path, *,
                        allow_burned_in: bool = False, progress: ProgressSink | None = None,
                        cancel: CancelToken | None = None) -> DeidResult:
    """Write a de-identified copy of ``sources`` into a new folder under ``out_dir``.

    Raises DeidTargetError (output beside the sources), BurnedInAnnotationError
    (flagged images without ``allow_burned_in``), CancelledError, or DicomReadError
    when no file could be exported. Files that cannot be read are skipped and listed.
    """
    report = progress or no_progress
    srcs = [_as_source(s) for s in sources]
    if not srcs:
        raise DicomReadError("no files to export")
    check_target(out_dir, srcs)
    report(0.0, "Checking for burned-in annotation")
    flagged = burned_in_sources(srcs)
    if flagged and not allow_burned_in:
        raise BurnedInAnnotationError(flagged)
    folder = _new_folder(Path(out_dir))
    folder.mkdir(parents=True)
    result = DeidResult(folder, burned_in=len(flagged))
    try:
        _write_all(srcs, result, report, cancel)
    except BaseException:
        _remove_partial(result)  # a cancelled or failed export leaves no half copy
        raise
    if not result.files:
        _remove_partial(result)
        raise DicomReadError("no file of the series could be exported: "
                             + "; ".join(reason for _, reason in result.skipped[:3]))
    report(1.0, f"Wrote {len(result.files)} de-identified file(s)")
    return result


def _write_all(srcs: list[DicomSource], result: DeidResult, report: ProgressSink,
               cancel: CancelToken | None) -> None:
    anonymizer = new_anonymizer()
    for n, src in enumerate(srcs, start=1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        report((n - 1) / len(srcs), f"De-identifying {n}/{len(srcs)}")
        try:
            ds = read_whole(src)
        except DicomReadError as exc:
            result.skipped.append((str(src), str(exc)))
            continue
        deidentify_dataset(ds, anonymizer)
        target = result.out_dir / f"IM{n:05d}.dcm"
        _complete_file_meta(ds)
        with atomic_path(target) as tmp:
            ds.save_as(os.fspath(tmp), enforce_file_format=True)
        result.files.append(target)


def _remove_partial(result: DeidResult) -> None:
    """Delete the files this export wrote and its folder (nothing else is touched)."""
    for path in result.files:
        path.unlink(missing_ok=True)
    result.files.clear()
    try:
        result.out_dir.rmdir()
    except OSError:
        pass  # not empty: something else was put there meanwhile; leave it


def _complete_file_meta(ds: Any) -> None:
    """Give a copy of an old bare data set (no preamble, no file meta) the Part 10 header
    every copy gets: the syntax it was encoded in, its SOP class and instance."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.2" if little is False else
                                     "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1")
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
