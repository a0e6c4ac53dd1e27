"""Write a Volume as a classic single-frame DICOM image series.

Used for the built-in demo study and for test phantoms in any orientation.
Every file is a complete Part 10 file with real UIDs; the series is marked
as derived/synthetic where the caller says so.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from core.atomic import atomic_path
from core.geometry import spacing_from_affine
from core.volume import Volume


@dataclass
class SeriesInfo:
    """Descriptive attributes of the written series (all optional)."""

    patient_name: str = "SYNTHETIC^PHANTOM"
    patient_id: str = "LUCIDA-SYNTH"
    patient_sex: str = "O"
    patient_birth_date: str = ""
    study_uid: str = field(default_factory=lambda: str(generate_uid()))
    series_uid: str = field(default_factory=lambda: str(generate_uid()))
    frame_of_reference_uid: str = field(default_factory=lambda: str(generate_uid()))
    study_date: str = "20260101"
    study_time: str = "120000"
    study_description: str = "Synthetic study"
    series_description: str = "Synthetic series"
    series_number: int = 1
    accession_number: str = ""
    body_part: str = ""
    manufacturer: str = "Lucida (synthetic)"
    patient_position: str = "HFS"
    image_type: Sequence[str] = ("DERIVED", "SECONDARY", "AXIAL")
    window_center: float | None = None
    window_width: float | None = None
    burned_in_annotation: str = "NO"


def write_series(
    volume: Volume,
    out_dir: Path,
    info: SeriesInfo | None = None,
    *,
    modality: str = "CT",
    rescale_intercept: float = 0.0,
    rescale_slope: float = 1.0,
    signed: bool = True,
    file_order_seed: int | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> list[Path]:
    """Write ``volume`` (values in physical units, e.g. HU) as one file per k-slice.

    Stored values are ``round((value - intercept) / slope)``. With
    ``file_order_seed`` the file names are shuffled so that no reader can
    rely on them for slice order. Returns the written paths in k order.
    """
    info = info or SeriesInfo()
    out_dir.mkdir(parents=True, exist_ok=True)
    affine = volume.affine
    spacing = spacing_from_affine(affine)
    row_cos = affine[:3, 2] / spacing[2]
    col_cos = affine[:3, 1] / spacing[1]
    stored = np.rint((np.asarray(volume.array, dtype=np.float64) - rescale_intercept)
                     / rescale_slope)
    dtype = np.int16 if signed else np.uint16
    info_range = np.iinfo(dtype)
    if stored.min() < info_range.min or stored.max() > info_range.max:
        raise ValueError(f"values do not fit {dtype.__name__} with this rescale")
    stored = stored.astype(dtype)
    n = volume.shape[0]
    names = [f"IM{idx:05d}.dcm" for idx in range(n)]
    if file_order_seed is not None:
        np.random.default_rng(file_order_seed).shuffle(names)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    now = _dt.datetime.now(_dt.UTC)
    paths: list[Path] = []
    for k in range(n):
        position = affine[:3, :3] @ np.array([k, 0.0, 0.0]) + affine[:3, 3]
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = UID(transfer_syntax)
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = list(info.image_type)
        ds.InstanceCreationDate = now.strftime("%Y%m%d")
        ds.Modality = modality
        ds.Manufacturer = info.manufacturer
        ds.PatientName = info.patient_name
        ds.PatientID = info.patient_id
        ds.PatientBirthDate = info.patient_birth_date
        ds.PatientSex = info.patient_sex
        ds.StudyInstanceUID = info.study_uid
        ds.SeriesInstanceUID = info.series_uid
        ds.FrameOfReferenceUID = info.frame_of_reference_uid
        ds.StudyDate = info.study_date
        ds.SeriesDate = info.study_date
        ds.StudyTime = info.study_time
        ds.StudyID = "1"
        ds.AccessionNumber = info.accession_number
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = info.study_description
        ds.SeriesDescription = info.series_description
        ds.SeriesNumber = info.series_number
        ds.InstanceNumber = k + 1
        ds.BodyPartExamined = info.body_part
        ds.PatientPosition = info.patient_position
        ds.BurnedInAnnotation = info.burned_in_annotation
        ds.ImagePositionPatient = [round(float(x), 6) for x in position]
        ds.ImageOrientationPatient = [round(float(x), 8) for x in (*row_cos, *col_cos)]
        ds.PixelSpacing = [round(float(spacing[1]), 6), round(float(spacing[2]), 6)]
        ds.SliceThickness = round(float(spacing[0]), 6)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept = rescale_intercept
        ds.RescaleSlope = rescale_slope
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.KVP = 120
        if info.window_center is not None and info.window_width is not None:
            ds.WindowCenter = info.window_center
            ds.WindowWidth = info.window_width
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        path = out_dir / names[k]
        with atomic_path(path) as tmp:  # a crash never leaves half a file
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        paths.append(path)
    return paths
