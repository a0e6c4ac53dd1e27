"""Sign-off export (dicomio.export): SEG, SR and KO on a real CT and on the demo study,
read back with highdicom and pydicom, validated by dciodvfy and PixelMed, and the SEG's
frames checked voxel by voxel against the source series read by SimpleITK."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from core.volume import Volume
from dicomio.export import (
    AlgorithmInfo,
    ExportContext,
    ExportFinding,
    ExportRefused,
    ExportResult,
    export_objects,
)
from dicomio.load import read_volume
from dicomio.source import DicomSource
from tests.dicomio.export_cases import (
    dciodvfy_errors,
    finding,
    l_shape,
    pixelmed_sr_report,
    seg_voxels_via_sitk,
    sitk_series,
)

ALGORITHM = AlgorithmInfo(name="Lung nodule demo", version="1.2.3", pack_id="lung-demo",
                          sha256="ab" * 32, provider="CPUExecutionProvider")
CONTEXT = ExportContext(reviewer="Reader^Rita", signed_off_at="2026-12-05T12:00:00+00:00",
                        audit_head_hash="cd" * 32, file_stem="case")


class Case:
    def __init__(self, folder: Path, out: Path) -> None:
        self.folder = folder
        self.sources = [DicomSource(p) for p in sorted(folder.glob("*.dcm"))]
        self.volume: Volume = read_volume(self.sources)
        self.image = sitk_series(folder)
        self.truth: dict[str, set[tuple[int, int, int]]] = {}
        self.findings: list[ExportFinding] = []
        self.out = out

    def add(self, voxels: set[tuple[int, int, int]], tracking_id: str, **kw: object) -> None:
        self.truth[tracking_id] = voxels
        self.findings.append(finding(self.image, self.volume, voxels, tracking_id=tracking_id,
                                     **kw))  # type: ignore[arg-type]

    def export(self) -> ExportResult:
        return export_objects(self.sources, self.volume.array.shape, self.volume.affine,
                              self.findings, ALGORITHM, CONTEXT, self.out)


@pytest.fixture(scope="module")
def lidc(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, ExportResult]:
    folder = shared_data / "ct" / "LIDC-IDRI-0001"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing from ../shared")
    case = Case(folder, tmp_path_factory.mktemp("lidc-export"))
    size = case.image.GetSize()
    # Asymmetric places: near one corner, the other side low, and an overlap (edited).
    case.add(l_shape(300, 100, 20), "m1")
    case.add(l_shape(60, size[1] - 120, size[2] - 10), "r1", origin="reader",
             decision="added-by-reader", score=None)
    case.add(l_shape(303, 98, 21, size=4), "m2", edited=True, decision="edited")
    return case, case.export()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, ExportResult]:
    from dicomio.demo import write_demo_study

    folder = tmp_path_factory.mktemp("demo-study")
    write_demo_study(folder, shape=(40, 96, 80))
    case = Case(folder, tmp_path_factory.mktemp("demo-export"))
    case.add(l_shape(10, 20, 5), "m1")
    case.add(l_shape(60, 70, 30, size=5), "m2", edited=True, decision="edited")
    return case, case.export()


CASES = ["lidc", "demo"]


@pytest.mark.parametrize("name", CASES)
def test_seg_frames_land_on_the_source_voxels_in_simpleitk(
        name: str, request: pytest.FixtureRequest) -> None:
    case, result = request.getfixturevalue(name)
    got = seg_voxels_via_sitk(result.seg, case.image)
    want = {n: case.truth[f.tracking_id] for n, f in enumerate(case.findings, start=1)}
    assert got == want


@pytest.mark.parametrize("name", CASES)
def test_seg_reads_back_with_highdicom(name: str, request: pytest.FixtureRequest) -> None:
    case, result = request.getfixturevalue(name)
    seg = hd.seg.segread(result.seg)
    assert seg.segmentation_type == hd.seg.SegmentationTypeValues.BINARY
    src = pydicom.dcmread(case.sources[0].path, stop_before_pixels=True)
    assert (seg.PatientID, seg.StudyInstanceUID) == (src.PatientID, src.StudyInstanceUID)
    assert seg.SeriesInstanceUID != src.SeriesInstanceUID
    types = {"m1": "AUTOMATIC", "m2": "SEMIAUTOMATIC", "r1": "MANUAL"}
    # Source instance UID -> Lucida slice k, from each file's own position.
    inverse = np.linalg.inv(case.volume.affine)
    k_of = {}
    for s in case.sources:
        ds = pydicom.dcmread(s.path, stop_before_pixels=True)
        k_of[str(ds.SOPInstanceUID)] = round(float(
            (inverse @ [*map(float, ds.ImagePositionPatient), 1.0])[0]))
    uids = sorted(k_of, key=k_of.__getitem__)
    for n, f in enumerate(case.findings, start=1):
        desc = seg.get_segment_description(n)
        assert desc.tracking_uid == f.tracking_uid and desc.tracking_id == f.tracking_id
        assert desc.algorithm_type.value == types[f.tracking_id]
        if f.origin == "model":
            ident = desc.algorithm_identification[0]
            assert (ident.AlgorithmName, ident.AlgorithmVersion) == ("Lung nodule demo", "1.2.3")
            assert ident.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
        pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[n],
                                                   assert_missing_frames_are_empty=True)
        want = np.zeros(case.volume.array.shape, dtype=bool)
        want[tuple(slice(o, o + s) for o, s in zip(f.offset, f.mask.shape, strict=True))] = f.mask
        assert np.array_equal(pixels[..., 0].astype(bool), want)
    # Frames only where a mask is.
    touched = set()
    for f in case.findings:
        touched |= {f.offset[0] + d for d in range(f.mask.shape[0]) if f.mask[d].any()}
    assert seg.NumberOfFrames <= sum(1 for _ in case.findings) * len(touched)
    assert seg.NumberOfFrames < len(case.sources)


@pytest.mark.parametrize("name", CASES)
def test_sr_reads_back_with_measurements_decisions_and_observers(
        name: str, request: pytest.FixtureRequest) -> None:
    case, result = request.getfixturevalue(name)
    sr = hd.sr.srread(result.sr)
    seg = pydicom.dcmread(result.seg, stop_before_pixels=True)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(case.findings)
    for n, (group, f) in enumerate(zip(groups, case.findings, strict=True), start=1):
        assert group.tracking_uid == f.tracking_uid
        assert str(group.tracking_identifier) == f.tracking_id
        assert group.finding_type.value == f.property_type[0]
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert ref.referenced_segment_numbers == [n]
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        assert values["Volume"] == pytest.approx(f.volume_mm3)
        assert values["Diameter"] == pytest.approx(f.longest_diameter_mm)
        evals = {e.name.value: e.value.value for e in group.get_qualitative_evaluations()}
        assert evals["decision"] == f.decision
        centre = [i for i in group[0].ContentSequence if i.ValueType == "SCOORD3D"]
        assert np.allclose(centre[0].GraphicData, f.centroid_lps, atol=1e-3)
    person = sr.content.get_observer_contexts(
        observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"))
    assert str(person[0].observer_identifying_attributes.name) == "Reader^Rita"
    device = sr.content.get_observer_contexts(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"))
    assert device[0].observer_identifying_attributes.name == "Lung nodule demo"
    # The audit anchor: a TEXT item of the report's Qualitative Evaluations container.
    qualitative = [i for i in pydicom.dcmread(result.sr).ContentSequence
                   if i.ValueType == "CONTAINER"
                   and i.ConceptNameCodeSequence[0].CodeValue == "C0034375"]
    assert qualitative[0].ContentSequence[0].TextValue == "cd" * 32


@pytest.mark.parametrize("name", CASES)
def test_ko_selects_the_image_through_each_centroid(name: str,
                                                    request: pytest.FixtureRequest) -> None:
    case, result = request.getfixturevalue(name)
    ko = hd.ko.KeyObjectSelectionDocument.from_dataset(pydicom.dcmread(result.ko))
    refs = {str(r.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            for r in ko.ContentSequence if r.ValueType == "IMAGE"}
    assert refs == set(result.key_images.values())
    assert ko.PatientID == pydicom.dcmread(case.sources[0].path).PatientID
    for n, f in enumerate(case.findings, start=1):
        # The image whose plane holds the centroid, found by SimpleITK's geometry.
        k_sitk = case.image.TransformPhysicalPointToIndex(f.centroid_lps)[2]
        names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(case.folder))
        uid = pydicom.dcmread(names[k_sitk], stop_before_pixels=True).SOPInstanceUID
        assert result.key_images[n] == uid


@pytest.mark.parametrize("name", CASES)
def test_dciodvfy_reports_no_errors(name: str, request: pytest.FixtureRequest) -> None:
    _, result = request.getfixturevalue(name)
    for path in result.paths:
        assert dciodvfy_errors(path) == [], path.name


@pytest.mark.parametrize("name", CASES)
def test_sr_passes_pixelmed_template_validation(name: str,
                                                request: pytest.FixtureRequest) -> None:
    _, result = request.getfixturevalue(name)
    report = pixelmed_sr_report(result.sr)
    assert "Found Root Template TID_1500" in report, report
    assert "Root Template Validation Complete" in report, report
    errors = [line for line in report.splitlines() if "error" in line.lower()]
    assert errors == [], report


def test_a_rejected_or_pending_finding_is_refused_and_nothing_is_written(
        demo: tuple[Case, ExportResult], tmp_path: Path) -> None:
    case, _ = demo
    for decision in ("rejected", "pending"):
        bad = [*case.findings[:1], finding(case.image, case.volume, l_shape(30, 30, 10),
                                           tracking_id="m9", decision=decision)]
        with pytest.raises(ExportRefused, match="m9"):
            export_objects(case.sources, case.volume.array.shape, case.volume.affine, bad,
                           ALGORITHM, CONTEXT, tmp_path / decision)
        assert not (tmp_path / decision).exists()


def test_no_kept_finding_is_refused(demo: tuple[Case, ExportResult], tmp_path: Path) -> None:
    case, _ = demo
    with pytest.raises(ExportRefused, match="no kept findings"):
        export_objects(case.sources, case.volume.array.shape, case.volume.affine, [],
                       ALGORITHM, CONTEXT, tmp_path)


@pytest.mark.parametrize("name", CASES)
def test_round_trip_through_lucidas_own_seg_and_sr_readers(
        name: str, request: pytest.FixtureRequest) -> None:
    from dicomio.derived.seg import read_seg
    from dicomio.derived.sr import read_sr

    case, result = request.getfixturevalue(name)
    seg = read_seg(pydicom.dcmread(result.seg), case.volume)
    assert seg.ok, seg.problem
    assert len(seg.findings) == len(case.findings)
    for got, f in zip(seg.findings, case.findings, strict=True):
        want = np.zeros(case.volume.array.shape, dtype=bool)
        want[tuple(slice(o, o + s) for o, s in zip(f.offset, f.mask.shape, strict=True))] = f.mask
        assert got.mask is not None
        assert np.array_equal(got.mask.full(case.volume.array.shape), want)
        assert (got.tracking_uid, got.creator) == (f.tracking_uid, f.algorithm_type)
    sr = read_sr(pydicom.dcmread(result.sr))
    assert sr.ok, sr.problem
    for n, (got, f) in enumerate(zip(sr.findings, case.findings, strict=True), start=1):
        assert got.referenced_segment == (seg.sop_instance_uid, n)
        values = {m.name: m.as_float for m in got.measurements}
        assert values["Volume"] == pytest.approx(f.volume_mm3)
        assert got.tracking_uid == f.tracking_uid
