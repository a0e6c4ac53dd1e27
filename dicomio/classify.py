"""What kind of DICOM object a file holds, decided by its SOP Class UID.

Scanning indexes every object, but only images become volumes; the others
(segmentations, reports, structure sets, presentation states, ...) are
listed in the library as what they are. The table covers the SOP classes
Lucida treats specially; every other known class is classified by its
registered name, and an unknown class by whether it carries pixel data.
"""

from __future__ import annotations

from enum import StrEnum

from pydicom import uid as _uid
from pydicom._uid_dict import UID_dictionary


class ObjectKind(StrEnum):
    """The role of one DICOM object in the library."""

    IMAGE = "image"
    SEG = "seg"
    SR = "sr"
    RTSTRUCT = "rtstruct"
    KO = "ko"
    PR = "pr"
    RTPLAN = "rtplan"
    RTDOSE = "rtdose"
    RTIMAGE = "rtimage"
    WAVEFORM = "waveform"
    OTHER_NONIMAGE = "other_nonimage"

    @property
    def is_image(self) -> bool:
        """True for objects whose pixels make a viewable image stack."""
        return self in (ObjectKind.IMAGE, ObjectKind.RTIMAGE)


#: Media Storage Directory Storage: a DICOMDIR, never indexed as an object.
MEDIA_STORAGE_DIRECTORY = str(_uid.MediaStorageDirectoryStorage)

# Explicit entries win over the name rules below.
_TABLE: dict[str, ObjectKind] = {
    str(_uid.SegmentationStorage): ObjectKind.SEG,
    "1.2.840.10008.5.1.4.1.1.66.7": ObjectKind.SEG,  # Label Map Segmentation Storage
    str(_uid.SurfaceSegmentationStorage): ObjectKind.OTHER_NONIMAGE,
    str(_uid.RTStructureSetStorage): ObjectKind.RTSTRUCT,
    str(_uid.KeyObjectSelectionDocumentStorage): ObjectKind.KO,
    str(_uid.RTPlanStorage): ObjectKind.RTPLAN,
    str(_uid.RTIonPlanStorage): ObjectKind.RTPLAN,
    str(_uid.RTDoseStorage): ObjectKind.RTDOSE,
    str(_uid.RTImageStorage): ObjectKind.RTIMAGE,
    str(_uid.RealWorldValueMappingStorage): ObjectKind.OTHER_NONIMAGE,
    str(_uid.SpatialRegistrationStorage): ObjectKind.OTHER_NONIMAGE,
    str(_uid.DeformableSpatialRegistrationStorage): ObjectKind.OTHER_NONIMAGE,
    str(_uid.EncapsulatedPDFStorage): ObjectKind.OTHER_NONIMAGE,
    str(_uid.EncapsulatedCDAStorage): ObjectKind.OTHER_NONIMAGE,
    str(_uid.RawDataStorage): ObjectKind.OTHER_NONIMAGE,
}


def _kind_from_name(name: str) -> ObjectKind | None:
    """Classify a registered SOP class by its standard name."""
    if "Presentation State" in name:
        return ObjectKind.PR
    if "Waveform" in name or "ECG" in name or "Audio" in name:
        return ObjectKind.WAVEFORM
    if name.endswith("SR Storage") or "SR Storage" in name or "Structured Report" in name:
        return ObjectKind.SR
    if name.startswith("RT ") and "Plan" in name:
        return ObjectKind.RTPLAN
    if name.startswith("RT ") or "Treatment" in name or "Brachy" in name:
        return ObjectKind.OTHER_NONIMAGE
    if "Image Storage" in name or "Volume Storage" in name:
        return ObjectKind.IMAGE
    if name.startswith("Encapsulated") or "Registration" in name or "Document" in name:
        return ObjectKind.OTHER_NONIMAGE
    return None


def classify_sop_class(sop_class_uid: str, *, has_pixel_data: bool) -> ObjectKind:
    """The ObjectKind of a SOP class; unknown classes go by ``has_pixel_data``."""
    kind = _TABLE.get(sop_class_uid)
    if kind is not None:
        return kind
    entry = UID_dictionary.get(sop_class_uid)
    if entry is not None:
        named = _kind_from_name(entry[0])
        if named is not None:
            return named
    return ObjectKind.IMAGE if has_pixel_data else ObjectKind.OTHER_NONIMAGE


def sop_class_name(sop_class_uid: str) -> str:
    """The registered name of a SOP class, or the UID itself when unknown."""
    entry = UID_dictionary.get(sop_class_uid)
    return entry[0] if entry is not None else sop_class_uid
