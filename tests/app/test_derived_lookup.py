"""derived_for_series on a real library: the dcmqi SEGs on their CT, the broken LIDC SEG as
a sentence, a report linked to a segment, references to series the library lacks."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.derived import derived_for_series, unresolved_references
from app.importer import import_paths, series_sources
from dicomio.load import read_volume
from store import Library
from store.records import SeriesRow

CT3_SERIES = "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1"


@pytest.fixture(scope="module")
def masks(shared_data: Path) -> Path:
    folder = shared_data / "masks"
    if not (folder / "dcmqi_ct-3slice_SEG").is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


def _series(lib: Library, uid: str) -> SeriesRow:
    return next(s for s in lib.all_series() if s.series_uid == uid and s.object_kind == "image")


def test_ct3_shows_its_segs_and_names_what_is_missing(masks: Path, tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        import_paths(lib, [masks / "dcmqi_ct-3slice_SEG", masks / "dicompyler_RTSTRUCT",
                           masks / "dcmqi_sr-tid1500_example"])
        ct = _series(lib, CT3_SERIES)
        volume = read_volume(series_sources(lib, ct.id))
        objs = derived_for_series(lib, ct, volume)
        # Only the two SEGs of this CT: the PET report, its SEG and the RTSTRUCT are not it.
        assert sorted((o.kind, len(o.findings), o.problem) for o in objs) == [
            ("SEG", 1, ""), ("SEG", 5, "")]
        counts = sorted(f.mask.voxel_count for o in objs for f in o.findings
                        if f.mask is not None)
        assert counts == sorted([107098, 9602, 11888, 10743, 6693, 4713])
        texts = sorted(u.text for u in unresolved_references(lib))
        assert "RTSTRUCT 'CT_1' references series 2.16.840.1.113662.2.12.0.3057.1241703565.43, " \
            "which is not in the library" in texts
        pet = "1.3.6.1.4.1.14519.5.2.1.2744.7002.261560220703676715130542397405"
        assert f"SR 'Imaging Measurement Report' references series {pet}, which is not in " \
            "the library" in texts
        assert len(texts) == 3  # the RTSTRUCT, the PET SEG, the PET report


def test_broken_lidc_seg_is_a_sentence(shared_data: Path, tmp_path: Path) -> None:
    seg = shared_data / "masks" / "LIDC-IDRI-0001_SEG_fedorov" / "nodule.dcm"
    ct = shared_data / "ct" / "LIDC-IDRI-0001"
    if not seg.is_file() or not ct.is_dir():
        pytest.skip("the LIDC-IDRI-0001 SEG or CT is absent")
    with Library.open(tmp_path / "lib") as lib:
        import_paths(lib, [seg, ct])
        row = next(s for s in lib.all_series() if s.object_kind == "image")
        volume = read_volume(series_sources(lib, row.id))
        objs = derived_for_series(lib, row, volume)
        assert [(o.kind, o.problem) for o in objs] == [(
            "SEG", "This segmentation cannot be shown: its frames lie at z 97.5..115 mm, "
            "outside this series' z range -340..-10 mm, and it references no images.")]
        assert objs[0].label_map is None
        assert unresolved_references(lib) == []


def test_report_on_a_shown_segment_gets_its_mask(masks: Path, tmp_path: Path) -> None:
    """The dcmqi report, pointed at the liver SEG (a copy in tmp_path), links to its mask."""
    src = tmp_path / "src"
    shutil.copytree(masks / "dcmqi_ct-3slice_SEG" / "ct-3slice", src / "ct")
    shutil.copy(masks / "dcmqi_ct-3slice_SEG" / "liver.dcm", src / "liver.dcm")
    liver = pydicom.dcmread(src / "liver.dcm", stop_before_pixels=True)
    report = copy.deepcopy(pydicom.dcmread(masks / "dcmqi_sr-tid1500_example" / "sr.dcm"))
    group = next(c for c in report.ContentSequence
                 if c.ConceptNameCodeSequence[0].CodeValue == "126010").ContentSequence[0]
    for item in group.ContentSequence:
        if item.ValueType == "IMAGE":
            item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = liver.SOPInstanceUID
        if item.ValueType == "UIDREF" and \
                item.ConceptNameCodeSequence[0].CodeValue == "121232":
            item.UID = CT3_SERIES
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    evidence[-1].ReferencedSOPSequence[0].ReferencedSOPInstanceUID = liver.SOPInstanceUID
    evidence[-1].SeriesInstanceUID = liver.SeriesInstanceUID
    report.save_as(src / "sr.dcm")
    with Library.open(tmp_path / "lib") as lib:
        import_paths(lib, [src])
        ct = _series(lib, CT3_SERIES)
        volume = read_volume(series_sources(lib, ct.id))
        objs = {o.kind: o for o in derived_for_series(lib, ct, volume)}
        assert set(objs) == {"SEG", "SR"}
        seg_mask = objs["SEG"].findings[0].mask
        sr_group = objs["SR"].findings[0]
        assert sr_group.referenced_segment == (liver.SOPInstanceUID, 1)
        assert sr_group.mask is not None and seg_mask is not None
        assert np.array_equal(sr_group.mask.full(volume.shape), seg_mask.full(volume.shape))
        assert [m.value for m in sr_group.measurements][:2] == ["6.01529", "2.91136"]
