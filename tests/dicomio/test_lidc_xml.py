"""LIDC reader XML: parsing, pixel → LPS placement, readers' clustering into a reference.

The real file (LIDC-IDRI-0001's 069.xml) must reproduce the facts its SOURCE.md states,
checked through the real series' affine loaded from its DICOM. Synthetic files written
here, on an asymmetric grid, pin down the conventions: x is the column, y the row.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import DicomReadError
from dicomio.lidc_xml import (
    SliceGeometry,
    lidc_reference,
    read_lidc_xml,
    reader_marks,
    reference_nodules,
)

# --------------------------------------------------------------------------- synthetic

# Asymmetric grid: k runs towards the feet (-z) in 2 mm steps, rows (j) go posterior by
# 0.9 mm, columns (i) go left by 0.7 mm; 12 slices of 40 rows x 60 columns.
AFFINE = np.array([[0.0, 0.0, 0.7, -100.0],
                   [0.0, 0.9, 0.0, 50.0],
                   [-2.0, 0.0, 0.0, 30.0],
                   [0.0, 0.0, 0.0, 1.0]])
SHAPE = (12, 40, 60)
SERIES = "1.2.826.0.1.3680043.8.498.1"


def _sop(k: int) -> str:
    return f"{SERIES}.{k + 1}"


def _geometry() -> SliceGeometry:
    return SliceGeometry(AFFINE, SHAPE, SERIES, {_sop(k): k for k in range(SHAPE[0])})


def _z(k: int) -> float:
    return float(AFFINE[2, 3] + AFFINE[2, 0] * k)


def _roi(k: int, points: list[tuple[int, int]], *, inclusion: bool = True,
         sop: str | None = None, z: float | None = None) -> str:
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>"
                    for x, y in points)
    return (f"<roi><imageZposition>{_z(k) if z is None else z}</imageZposition>"
            f"<imageSOP_UID>{_sop(k) if sop is None else sop}</imageSOP_UID>"
            f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>")


def _square(cx: int, cy: int, half: int) -> list[tuple[int, int]]:
    return [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
            (cx - half, cy + half)]


def _nodule(nid: str, rois: list[str], malignancy: int | None = None) -> str:
    chars = (f"<characteristics><malignancy>{malignancy}</malignancy></characteristics>"
             if malignancy is not None else "")
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{chars}{''.join(rois)}" \
           "</unblindedReadNodule>"


def _session(reader: str, nodules: list[str], non_nodules: str = "") -> str:
    return (f"<readingSession><servicingRadiologistID>{reader}</servicingRadiologistID>"
            f"{''.join(nodules)}{non_nodules}</readingSession>")


def _write(tmp_path: Path, sessions: list[str], name: str = "read.xml") -> Path:
    path = tmp_path / name
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<LidcReadMessage xmlns="http://www.nih.gov"><ResponseHeader>'
        f"<SeriesInstanceUid>{SERIES}</SeriesInstanceUid>"
        "<StudyInstanceUID>1.2.3</StudyInstanceUID></ResponseHeader>"
        f"{''.join(sessions)}</LidcReadMessage>")
    return path


def _lps(kji: tuple[float, float, float]) -> np.ndarray:
    return AFFINE[:3, :3] @ np.asarray(kji, dtype=float) + AFFINE[:3, 3]


def test_parsing_keeps_sessions_nodules_rois_and_characteristics(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        _session("r1", [_nodule("n1", [_roi(3, _square(45, 10, 3))], malignancy=4),
                        _nodule("small", [_roi(5, [(20, 30)])])],
                 "<nonNodule><nonNoduleID>nn</nonNoduleID><imageZposition>20.0"
                 f"</imageZposition><imageSOP_UID>{_sop(5)}</imageSOP_UID><locus><xCoord>7"
                 "</xCoord><yCoord>8</yCoord></locus></nonNodule>"),
        _session("r2", [])])
    read = read_lidc_xml(path)
    assert read.series_uid == SERIES and read.study_uid == "1.2.3"
    assert [s.radiologist_id for s in read.sessions] == ["r1", "r2"]
    n1, small = read.sessions[0].nodules
    assert n1.nodule_id == "n1" and dict(n1.characteristics) == {"malignancy": 4}
    assert n1.contoured and not small.contoured and dict(small.characteristics) == {}
    roi = n1.rois[0]
    assert roi.sop_uid == _sop(3) and roi.z_mm == _z(3) and roi.inclusion
    assert roi.points_xy[:2] == ((42.0, 7.0), (48.0, 7.0))  # (x, y) as written
    (nn,) = read.sessions[0].non_nodules
    assert (nn.non_nodule_id, nn.point_xy, nn.sop_uid) == ("nn", (7.0, 8.0), _sop(5))


def test_x_is_the_column_and_y_the_row_in_lps(tmp_path: Path) -> None:
    # A 7x7-pixel square at column 45, row 10 on slices 3 and 4; only columns reach 45
    # (40 rows), so swapping x and y could not place it at all.
    path = _write(tmp_path, [_session("r1", [_nodule("n1", [_roi(3, _square(45, 10, 3)),
                                                            _roi(4, _square(45, 10, 3))])])])
    (mark,) = reader_marks(read_lidc_xml(path), _geometry())
    assert mark.contoured
    assert np.allclose(mark.centroid_lps, _lps((3.5, 10, 45)))
    assert np.allclose(mark.centroid_lps, (-100 + 45 * 0.7, 50 + 10 * 0.9, 30 - 2 * 3.5))
    # Pillow fills the outline too: 7 x 7 pixels on each of the 2 slices.
    assert len(mark.voxels_kji) == 2 * 49
    assert set(mark.voxels_kji[:, 2]) == set(range(42, 49))  # columns
    assert set(mark.voxels_kji[:, 1]) == set(range(7, 14))  # rows
    # Largest in-plane extent: the square's diagonal, 6 columns of 0.7 and 6 rows of 0.9.
    assert mark.diameter_mm == pytest.approx(math.hypot(6 * 0.7, 6 * 0.9))


def test_exclusion_rois_cut_their_slice_and_z_is_the_fallback(tmp_path: Path) -> None:
    # Inclusion 11x11 at (30, 20) on slice 6; exclusion of its left 5 columns (x 25..29).
    # The exclusion names no known SOP UID: it is placed by its z.
    hole = [(25, 15), (29, 15), (29, 25), (25, 25)]
    path = _write(tmp_path, [_session("r1", [_nodule("n1", [
        _roi(6, _square(30, 20, 5)),
        _roi(6, hole, inclusion=False, sop="9.9.9")])])])
    (mark,) = reader_marks(read_lidc_xml(path), _geometry())
    assert len(mark.voxels_kji) == 121 - 5 * 11
    assert mark.voxels_kji[:, 2].min() == 30  # columns 25..29 removed
    assert np.allclose(mark.centroid_lps, _lps((6, 20, 32.5)))
    # The diameter comes from the inclusion contour only.
    assert mark.diameter_mm == pytest.approx(math.hypot(10 * 0.7, 10 * 0.9))


def test_two_readers_2_mm_apart_are_one_nodule(tmp_path: Path) -> None:
    # Reader 2's square is 3 columns further: 2.1 mm, within either's radius.
    path = _write(tmp_path, [
        _session("r1", [_nodule("a", [_roi(5, _square(30, 20, 4))])]),
        _session("r2", [_nodule("b", [_roi(5, _square(33, 20, 4))])]),
        _session("r3", [_nodule("c", [_roi(9, [(50, 35)])])])])  # a lone < 3 mm mark
    ref = lidc_reference(read_lidc_xml(path), _geometry())
    (nodule,) = ref.nodules
    assert nodule.n_readers == 2
    assert nodule.reader_ids == ("r1", "r2") and nodule.nodule_ids == ("a", "b")
    assert np.allclose(nodule.centre_lps, _lps((5, 20, 31.5)))
    assert nodule.diameter_mm == pytest.approx(math.hypot(8 * 0.7, 8 * 0.9))
    (small,) = ref.excluded
    assert small.n_readers == 0 and small.diameter_mm == -1.0
    assert small.hit_radius_mm == 5.0  # LUNA16's 10 mm stand-in
    assert np.allclose(small.centre_lps, _lps((9, 35, 50)))
    # Three readers are asked for: the two-reader nodule is excluded instead.
    assert reference_nodules(read_lidc_xml(path), _geometry(), min_readers=3) == []


def test_two_readers_30_mm_apart_are_two_single_reader_nodules_none_kept(
        tmp_path: Path) -> None:
    # 43 columns x 0.7 mm = 30.1 mm apart, each 5.6 mm wide.
    path = _write(tmp_path, [
        _session("r1", [_nodule("a", [_roi(5, _square(8, 20, 4))])]),
        _session("r2", [_nodule("b", [_roi(5, _square(51, 20, 4))])])])
    ref = lidc_reference(read_lidc_xml(path), _geometry())
    assert ref.nodules == []
    assert sorted(n.n_readers for n in ref.excluded) == [1, 1]


def test_one_readers_two_nodules_never_merge(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        _session("r1", [_nodule("a", [_roi(5, _square(30, 20, 4))]),
                        _nodule("a2", [_roi(5, _square(32, 20, 4))])]),
        _session("r2", [_nodule("b", [_roi(5, _square(31, 20, 4))])])])
    ref = lidc_reference(read_lidc_xml(path), _geometry())
    assert [n.n_readers for n in ref.nodules] == [2]
    assert [n.n_readers for n in ref.excluded] == [1]


def test_a_small_cluster_is_excluded_by_min_diameter(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        _session("r1", [_nodule("a", [_roi(5, _square(30, 20, 1))])]),
        _session("r2", [_nodule("b", [_roi(5, _square(30, 20, 1))])])])
    read = read_lidc_xml(path)
    assert reference_nodules(read, _geometry()) == []  # 2.3 mm < 3 mm
    assert len(reference_nodules(read, _geometry(), min_diameter_mm=2.0)) == 1


@pytest.mark.parametrize("body,message", [
    ("<LidcReadMessage><ResponseHeader>", "not well-formed XML"),
    ("<Other/>", "root element is 'Other'"),
    ("<LidcReadMessage/>", "ResponseHeader: SeriesInstanceUid is missing"),
])
def test_malformed_files_name_the_file_and_element(tmp_path: Path, body: str,
                                                   message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(body)
    with pytest.raises(DicomReadError, match=message) as info:
        read_lidc_xml(path)
    assert str(path) in str(info.value)


def test_bad_values_name_their_element(tmp_path: Path) -> None:
    path = _write(tmp_path, [_session("r1", [_nodule("n1", [
        _roi(3, [(45, 10), (46, 11)]).replace("<xCoord>46</xCoord>", "<xCoord>4x</xCoord>")
    ])])])
    with pytest.raises(DicomReadError, match=r"readingSession 1 / unblindedReadNodule 'n1' / "
                                             r"roi 1 / edgeMap 2: xCoord '4x' is not a number"):
        read_lidc_xml(path)


def test_an_unknown_image_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path, [_session("r1", [_nodule("n1", [
        _roi(3, _square(45, 10, 3), sop="7.7.7", z=500.0)])])])
    read = read_lidc_xml(path)
    with pytest.raises(DicomReadError, match=r"unblindedReadNodule 'n1' / roi 1: "
                                             r"imageSOP_UID 7\.7\.7 is not an image of this "
                                             r"series, and imageZposition 500\.0"):
        reference_nodules(read, _geometry())
    other = SliceGeometry(AFFINE, SHAPE, "1.2.3.4.5", {})
    with pytest.raises(DicomReadError, match="is not the series given"):
        reference_nodules(read, other)


# --------------------------------------------------------------------------- LIDC-IDRI-0001


@pytest.fixture(scope="module")
def lidc_0001(shared_data: Path) -> tuple[Path, object, list[object]]:
    from dicomio.group import group_series
    from dicomio.load import read_volume
    from dicomio.scan import scan_paths

    folder = shared_data / "ct" / "LIDC-IDRI-0001"
    if not (folder / "069.xml").is_file():
        pytest.skip(f"{folder}/069.xml is absent")
    (group,) = [g for g in group_series(scan_paths([folder]).instances)
                if g.object_kind.is_image and not g.is_localizer]
    volume = read_volume([inst.source for inst in group.instances])
    return folder / "069.xml", volume, list(group.instances)


def test_lidc_0001_sessions_and_marks_match_its_source_md(
        lidc_0001: tuple[Path, object, list[object]]) -> None:
    xml, _volume, _ = lidc_0001
    read = read_lidc_xml(xml)
    assert read.series_uid == ("1.3.6.1.4.1.14519.5.2.1.6279.6001."
                               "179049373636438705059720603192")
    assert [len(s.nodules) for s in read.sessions] == [4, 1, 4, 4]
    assert [len(s.non_nodules) for s in read.sessions] == [4, 1, 8, 0]


def test_lidc_0001_reference_is_the_four_reader_nodule_in_lps(
        lidc_0001: tuple[Path, object, list[object]]) -> None:
    from core.volume import Volume

    xml, volume, instances = lidc_0001
    assert isinstance(volume, Volume)
    read = read_lidc_xml(xml)
    geometry = SliceGeometry.from_volume(volume, instances)
    # Every ROI's SOP UID resolves to a slice of the loaded series.
    assert len(geometry.sop_to_k) == 133
    assert all(roi.sop_uid in geometry.sop_to_k
               for s in read.sessions for n in s.nodules for roi in n.rois)
    ref = lidc_reference(read, geometry)
    (nodule,) = ref.nodules
    assert nodule.n_readers == 4
    assert set(nodule.nodule_ids) == {"Nodule 001", "IL057_127364", "MI014_12127", "0"}
    malignancy = sorted(n.characteristics.get("malignancy", 0) for s in read.sessions
                        for n in s.nodules if n.nodule_id in nodule.nodule_ids)
    assert malignancy == [4, 5, 5, 5]
    # Centre: pixel column 316, row 367, z -115.9 mm, through the DICOM's affine.
    _k, j, i = volume.lps_to_index(nodule.centre_lps)
    assert abs(i - 316) < 1.5 and abs(j - 367) < 1.5
    assert nodule.centre_lps[2] == pytest.approx(-115.9, abs=0.5)
    # Its contours lie on InstanceNumber 39..47 (z -105 .. -125 mm).
    number_of = {geometry.sop_to_k[inst.sop_instance_uid]: inst.instance_number
                 for inst in instances}
    covered = {number_of[int(kk)] for m in nodule.marks for kk in np.unique(m.voxels_kji[:, 0])}
    assert covered == set(range(39, 48))
    assert all(m.contoured and m.diameter_mm > 3.0 for m in nodule.marks)
    # Everything else is excluded: the three 3-reader < 3 mm nodules lead the list.
    small = [e for e in ref.excluded if len(e.marks) == 3]
    assert len(small) == 3 and all(e.n_readers == 0 for e in small)
    z_small = sorted(round(e.centre_lps[2], 1) for e in small)
    assert z_small == [-175.0, -175.0, -150.0]
