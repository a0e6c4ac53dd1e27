"""availability(): which packs may run on a volume (hard reasons) and what to confirm
(warnings), on real Volumes, real manifests and the real Siemens MPRAGE series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.volume import Volume, VolumeWarning, WarningCode
from inference.checks import Availability, availability, check_input, mentions
from inference.manifest import Manifest, demo_only_problem
from tests.inference.conftest import base_manifest

PATIENT_UID = "1.2.826.0.1.3680043.8.498.77"


def _manifest(**over: Any) -> Manifest:
    return Manifest.model_validate(base_manifest(
        files=[{"path": "model.onnx", "sha256": "0" * 64}], **over))


def _phantom(shape: tuple[int, int, int] = (20, 24, 28), *, modality: str = "CT",
             spacing: tuple[float, float, float] = (2.0, 0.8, 0.7), **meta: Any) -> Volume:
    """An asymmetric phantom: a bright block in one corner, distinct spacing per axis."""
    array = np.zeros(shape, dtype=np.float32)
    array[: shape[0] // 3, : shape[1] // 2, : shape[2] // 4] = 100.0
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 30.0)
    return Volume(array, affine, series_uid=PATIENT_UID, modality=modality, metadata=dict(meta))


def test_a_matching_volume_is_available_without_warnings() -> None:
    got = availability(_phantom(body_part="HEAD"),
                       _manifest(body_part=["HEAD"], min_slices=10, max_spacing_mm=3.0))
    assert got == Availability(available=True, reasons=[], warnings=[])
    assert check_input(_phantom(), _manifest()) == []


def test_another_modality_is_a_hard_reason_naming_both() -> None:
    got = availability(_phantom(modality="CT"), _manifest(name="mindgrab", modality=["MR"]))
    assert not got.available
    assert got.reasons == ["mindgrab expects MR; this series is CT"]
    assert got.warnings == []
    # A lower-case header value is the same modality.
    assert availability(_phantom(modality="mr"), _manifest(modality=["MR"])).available


def test_a_missing_modality_is_only_a_warning() -> None:
    got = availability(_phantom(modality=""), _manifest(modality=["MR"]))
    assert got.available and got.reasons == []
    assert any("no modality" in w and "MR" in w for w in got.warnings)


def test_a_single_slice_is_refused_even_by_a_pack_without_min_slices() -> None:
    got = availability(_phantom((1, 24, 28)), _manifest(name="Lesions"))
    assert not got.available
    assert got.reasons == ["Lesions needs a 3-D volume of at least 2 slices; this series is "
                           "a single 2-D slice"]
    # The thinnest axis counts, whichever it is (a sagittal single slice too).
    assert not availability(_phantom((24, 28, 1)), _manifest()).available


def test_fewer_slices_than_the_pack_needs_is_refused() -> None:
    manifest = _manifest(name="Lesions", min_slices=10)
    got = availability(_phantom((9, 24, 28)), manifest)
    assert got.reasons == ["Lesions needs a 3-D volume of at least 10 slices; this series is "
                           "only 9 slices thick"]
    assert availability(_phantom((10, 24, 28)), manifest).available


def test_a_projection_image_is_not_a_volume() -> None:
    cine = _phantom((30, 24, 28), modality="XA")  # 30 frames of a projection, not slices
    # A CT pack: refused once, for its modality (no repeated "2-D" reason).
    assert availability(cine, _manifest(name="CT pack")).reasons == [
        "CT pack expects CT; this series is XA"]
    # A pack that lists XA but is a 3-D network still refuses frames as slices.
    got = availability(cine, _manifest(name="XA pack", modality=["XA"], min_slices=16))
    assert got.reasons == ["XA pack needs a 3-D volume; this series is a XA projection image, "
                           "not a stack of slices"]


def test_demo_only_rules_are_kept_exactly() -> None:
    from dicomio.demo import DEMO_SERIES_UID

    manifest = _manifest(demo_only=True, name="Demo")
    patient = _phantom()
    got = availability(patient, manifest)
    assert got.reasons == [demo_only_problem(manifest, PATIENT_UID)]
    demo = _phantom()
    demo.series_uid = DEMO_SERIES_UID
    assert availability(demo, manifest).available


def test_body_part_spacing_and_geometry_are_warnings_not_reasons() -> None:
    volume = _phantom(body_part="ABDOMEN", spacing=(8.0, 0.8, 0.2))
    volume.warnings.append(VolumeWarning(WarningCode.GANTRY_TILT, "gantry tilt 12°"))
    got = availability(volume, _manifest(name="Head", body_part=["HEAD"], min_spacing_mm=0.3,
                                         max_spacing_mm=5.0))
    assert got.available and got.reasons == []
    assert len(got.warnings) == 4
    assert "body part is ABDOMEN" in got.warnings[0] and "HEAD" in got.warnings[0]
    # Spacing is printed in (i, j, k) order: columns 0.20, rows 0.80, slices 8.00.
    assert "0.20 × 0.80 × 8.00 mm is finer than the 0.3 mm" in got.warnings[1]
    assert "coarser than the 5.0 mm" in got.warnings[2]
    assert got.warnings[3] == "series geometry: gantry tilt 12°"
    assert check_input(volume, _manifest(name="Head", body_part=["HEAD"], min_spacing_mm=0.3,
                                         max_spacing_mm=5.0)) == got.warnings


def test_check_input_lists_reasons_first_then_warnings() -> None:
    volume = _phantom((1, 24, 28), body_part="CHEST")
    got = check_input(volume, _manifest(name="Brain", modality=["MR"], body_part=["HEAD"]))
    assert got[0] == "Brain expects MR; this series is CT"
    assert got[1].startswith("Brain needs a 3-D volume")
    assert "body part is CHEST" in got[2] and len(got) == 3


T1_HINTS = ["T1", "MPRAGE", "MP-RAGE", "SPGR", "TFL"]


@pytest.mark.parametrize(("text", "expected"), [
    ("t1_MPRAGEcr_noGRAPPA", True),   # Siemens: word "t1", and MPRAGE as a prefix
    ("T1w", True),
    ("sag T1 3D", True),
    ("MP-RAGE sagittal", True),       # hyphen optional in text and hint
    ("MPRAGE", True),
    ("Accelerated SAG IR-SPGR", True),  # GE: SPGR after a hyphen
    ("tfl3d1_ns", True),               # Siemens sequence name
    ("T10 map", False),                # a hint ending in a digit is not a longer number
    ("T12 FSE", False),
    ("T2_FLAIR", False),
    ("DWI b1000", False),
    ("post-T1", True),
    ("", False),
])
def test_sequence_hint_matching(text: str, expected: bool) -> None:
    assert mentions(text, T1_HINTS) is expected


def test_sequence_hints_warn_only_for_mr_series_naming_none() -> None:
    manifest = _manifest(name="Brain", modality=["MR"], sequence_hints=T1_HINTS)
    flair = _phantom(modality="MR", series_description="AX T2 FLAIR", protocol_name="flair",
                     sequence_name="*tir2d1_16")
    got = availability(flair, manifest)
    assert got.available  # free text: a warning to confirm, never a refusal
    (warning,) = got.warnings
    assert "description 'AX T2 FLAIR'" in warning and "T1, MPRAGE" in warning
    # Any one field naming a hint is enough (the protocol here).
    flair.metadata["protocol_name"] = "t1_mprage_sag"
    assert availability(flair, manifest).warnings == []
    blank = _phantom(modality="MR")
    assert "no description, protocol or sequence name" in availability(blank, manifest).warnings[0]
    # A pack without hints says nothing about sequences.
    assert availability(blank, _manifest(modality=["MR"])).warnings == []


def test_the_real_siemens_mprage_suits_a_brainchop_pack_and_not_a_ct_pack(
        shared_data: Path, shared_models: Path, tmp_path: Path) -> None:
    from dicomio.load import read_volume
    from inference.importers.brainchop_pack import build_pack
    from inference.pack import ModelPack

    folder = shared_data / "mr" / "Siemens_Trio_T1_MPRAGE"
    volume = read_volume(sorted(folder.glob("*.dcm")))
    # The loader keeps the (non-identifying) sequence fields the hints are matched against.
    assert volume.metadata["protocol_name"] == "t1_MPRAGEcr_noGRAPPA"
    assert volume.metadata["sequence_name"] == "tfl3d1_ns"
    assert volume.metadata["scanning_sequence"] == "GR\\IR"
    assert volume.metadata["mr_acquisition_type"] == "3D"
    (pack_dir,) = build_pack(shared_models / "brainchop-meshnet", tmp_path, model="mindgrab")
    mindgrab = ModelPack.open(pack_dir).manifest
    assert "MPRAGE" in mindgrab.sequence_hints
    got = availability(volume, mindgrab)
    assert got.available and got.reasons == []
    assert not any("sequence" in w for w in got.warnings), got.warnings
    ct_pack = _manifest(name="Head CT", modality=["CT"], min_slices=10)
    assert availability(volume, ct_pack).reasons == ["Head CT expects CT; this series is MR"]
    # The same series described as a FLAIR would be offered with a warning.
    volume.metadata.update(series_description="T2 FLAIR", protocol_name="T2 FLAIR",
                           sequence_name="tir2d1")
    assert any("names none of the sequences" in w for w in availability(volume, mindgrab).warnings)
