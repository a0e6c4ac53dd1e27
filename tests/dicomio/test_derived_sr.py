"""SR TID 1500: the dcmqi report's measurement group, every value exactly as stored."""

from __future__ import annotations

import copy
from pathlib import Path

import pydicom
import pytest

from dicomio.derived.common import read_dataset
from dicomio.derived.sr import read_sr
from dicomio.source import DicomSource


@pytest.fixture(scope="module")
def sr_path(shared_data: Path) -> Path:
    path = shared_data / "masks" / "dcmqi_sr-tid1500_example" / "sr.dcm"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _direct_num_items(ds: pydicom.Dataset) -> list[tuple[str, str, str]]:
    """Every NUM of every measurement group, by a plain pydicom walk of the raw elements:
    the value is the element's bytes as written, not a parsed number."""
    out = []
    for container in ds.ContentSequence:
        if container.ConceptNameCodeSequence[0].CodeValue != "126010":
            continue
        for group in container.ContentSequence:
            for item in group.ContentSequence:
                if item.ValueType != "NUM":
                    continue
                measured = item.MeasuredValueSequence[0]
                raw = measured.get_item((0x0040, 0xA30A))  # NumericValue, undecoded
                value = raw.value.decode("ascii").strip() if isinstance(raw.value, bytes) \
                    else str(raw.value)
                out.append((item.ConceptNameCodeSequence[0].CodeMeaning, value,
                            measured.MeasurementUnitsCodeSequence[0].CodeValue))
    return out


def test_measurement_values_read_back_exactly(sr_path: Path) -> None:
    obj = read_sr(read_dataset(DicomSource(sr_path)))
    assert obj.problem == ""
    assert obj.description == "Imaging Measurement Report"
    assert len(obj.findings) == 1
    group = obj.findings[0]
    assert (group.tracking_id, group.tracking_uid) == (
        "primary tumor", "2.25.318774060119084600392715520575818119084")
    assert (group.finding_type, group.finding_site) == (
        "Neoplasm, Primary", "pharyngeal tonsil (adenoid)")
    assert group.referenced_segment == (
        "1.2.276.0.7230010.3.1.4.8323329.18591.1440001312.777033", 1)
    assert group.mask is None  # its SEG is on a PET series that is not here
    got = [(m.name, m.value, m.unit) for m in group.measurements]
    assert got == _direct_num_items(pydicom.dcmread(sr_path))
    assert len(got) == 22
    by_qualifier = {(m.name, m.qualifiers): (m.value, m.unit) for m in group.measurements}
    assert by_qualifier[("Volume", ("Measurement Method: Sum of segmented voxel volumes",))] \
        == ("33.5824", "ml")
    assert by_qualifier[("SUVbw", ("Derivation: Mean",))] == ("6.01529", "{SUVbw}g/ml")
    assert by_qualifier[("SUVbw", ("Derivation: Maximum",))] == ("10.3814", "{SUVbw}g/ml")
    assert by_qualifier[("Total Lesion Glycolysis", ())] == ("202.008", "g")
    assert by_qualifier[("Percent Within Fourth Quarter of Intensity Range", ())] == (
        "8.55346", "%")
    assert "1.3.6.1.4.1.14519.5.2.1.2744.7002.261560220703676715130542397405" in \
        obj.referenced_series_uids


def test_report_without_measurements_is_a_problem(sr_path: Path) -> None:
    ds = copy.deepcopy(pydicom.dcmread(sr_path))
    ds.ContentSequence = [i for i in ds.ContentSequence
                          if i.ConceptNameCodeSequence[0].CodeValue != "126010"]
    obj = read_sr(ds)
    assert obj.problem == ("This report cannot be shown: it holds no TID 1500 measurement "
                           "groups (TID 1500).")
    del ds.ContentSequence
    assert read_sr(ds).problem == "This report cannot be shown: it has no content tree."


def test_hostile_group_is_a_problem_not_an_exception(sr_path: Path) -> None:
    ds = copy.deepcopy(pydicom.dcmread(sr_path))
    group = next(c for c in ds.ContentSequence
                 if c.ConceptNameCodeSequence[0].CodeValue == "126010").ContentSequence[0]
    num = next(i for i in group.ContentSequence if i.ValueType == "NUM")
    del num.MeasuredValueSequence[0].MeasurementUnitsCodeSequence
    obj = read_sr(ds)
    assert obj.problem == ""  # a NUM without units still reads, with an empty unit
    assert obj.findings[0].measurements[0].unit == ""
    group.ContentSequence[0].ConceptNameCodeSequence = None
    assert isinstance(read_sr(ds).problem, str)
