"""LIDC-IDRI reader XML (``LidcReadMessage``) → readers' marks → a reference nodule list.

Reading (:func:`read_lidc_xml`): one ``readingSession`` per radiologist, each with its
``unblindedReadNodule`` entries (``noduleID``, optional ``characteristics``, ``roi``
elements: ``imageZposition``, ``imageSOP_UID``, ``inclusion``, ``edgeMap`` x/y) and its
``nonNodule`` marks (one ``locus`` point). Element names are matched by local name, so
the ``http://www.nih.gov`` namespace (or none) both work. Pixel points keep LIDC's
convention: x is the column (``i``), y the row (``j``).

The XML is parsed by the standard library's ElementTree: ``defusedxml`` is not a
dependency, and the stdlib parser is acceptable here because these are local files the
user chose, Python 3.11's expat (>= 2.4.1) refuses entity-expansion bombs, and
ElementTree never fetches external entities or DTDs. The file size is capped as well.

Reference (:func:`reference_nodules`, :func:`lidc_reference`), following LUNA16:

* each reader nodule becomes a :class:`ReaderMark` on the series grid: ROIs map to slices
  by SOP Instance UID (falling back to ``imageZposition``); inclusion polygons are filled
  (Pillow, voxel centres inside or on the contour, as for RTSTRUCT) and exclusion polygons
  removed on their slice;
* a mark is *contoured* (LIDC's ">= 3 mm" class) when one of its ROIs has more than one
  edge point; a single-point mark is a "< 3 mm" nodule;
* its centroid is the mean LPS position of its filled voxels (of its points for a
  single-point mark); its diameter is the **largest in-plane distance between two contour
  points of one slice** (mm) — the measure LIDC's own 3 mm rule uses ("greatest in-plane
  dimension") and pylidc's ``Annotation.diameter``; 0 for a single-point mark;
* marks of different sessions are one nodule when their voxels overlap or their
  centroids are closer than the larger of their radii (a single-point mark counts with
  LUNA16's stand-in diameter of 10 mm); pairs are merged closest first and a cluster
  never takes two marks of one session;
* a cluster is a reference nodule when at least ``min_readers`` sessions contoured it and
  the mean of their diameters is at least ``min_diameter_mm``; its centre is the mean of
  those readers' centroids and its diameter the mean of their diameters (LUNA16). Other
  clusters, and every ``nonNodule`` mark, are *excluded* findings: detections on them are
  neither hits nor false positives.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from core.errors import DicomReadError
from core.volume import FloatArray, Volume

__all__ = [
    "EXCLUDED_STANDIN_DIAMETER_MM",
    "LidcNodule",
    "LidcNonNodule",
    "LidcRead",
    "LidcReference",
    "LidcRoi",
    "LidcSession",
    "ReaderMark",
    "ReferenceNodule",
    "SliceGeometry",
    "is_lidc_xml",
    "lidc_reference",
    "read_lidc_xml",
    "reader_marks",
    "reference_nodules",
]

#: LUNA16's evaluation gives marks without a measured size (< 3 mm nodules, non-nodules)
#: this diameter; used here for clustering single-point marks and for their hit radius.
EXCLUDED_STANDIN_DIAMETER_MM = 10.0
#: LIDC reader XMLs are well under 2 MB; anything far larger is not one.
MAX_XML_BYTES = 64 << 20
ROOT_TAG = "LidcReadMessage"


# --------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class LidcRoi:
    """One contour (or single point) of a reader nodule on one image."""

    sop_uid: str
    z_mm: float | None
    inclusion: bool
    points_xy: tuple[tuple[float, float], ...]  # (x = column i, y = row j) pixels


@dataclass(frozen=True)
class LidcNodule:
    """One ``unblindedReadNodule`` of one reader."""

    nodule_id: str
    rois: tuple[LidcRoi, ...]
    characteristics: Mapping[str, int] = field(default_factory=dict)

    @property
    def contoured(self) -> bool:
        """LIDC's ">= 3 mm" class: some ROI is an outline, not a single point."""
        return any(len(roi.points_xy) > 1 for roi in self.rois if roi.inclusion)


@dataclass(frozen=True)
class LidcNonNodule:
    """A ``nonNodule`` mark: one point the reader judged a non-nodule >= 3 mm."""

    non_nodule_id: str
    sop_uid: str
    z_mm: float | None
    point_xy: tuple[float, float]


@dataclass(frozen=True)
class LidcSession:
    """One reader's ``readingSession``."""

    radiologist_id: str
    nodules: tuple[LidcNodule, ...]
    non_nodules: tuple[LidcNonNodule, ...]


@dataclass(frozen=True)
class LidcRead:
    """A whole LIDC reader XML."""

    source: str  # the file, for messages
    series_uid: str
    study_uid: str
    sessions: tuple[LidcSession, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _child_text(elem: ET.Element, name: str) -> str | None:
    for c in elem:
        if _local(c.tag) == name:
            return (c.text or "").strip()
    return None


class _Where:
    """Builds '069.xml: readingSession 2 / unblindedReadNodule 'X' / roi 3' messages."""

    def __init__(self, source: str, *parts: str) -> None:
        self.source, self.parts = source, parts

    def __truediv__(self, part: str) -> _Where:
        return _Where(self.source, *self.parts, part)

    def error(self, what: str) -> DicomReadError:
        where = " / ".join(self.parts)
        return DicomReadError(f"{self.source}: {where + ': ' if where else ''}{what}")


def _number(text: str | None, name: str, where: _Where, *, required: bool) -> float | None:
    if text is None or text == "":
        if required:
            raise where.error(f"{name} is missing")
        return None
    try:
        value = float(text)
    except ValueError:
        raise where.error(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise where.error(f"{name} {text!r} is not a finite number")
    return value


def _point(elem: ET.Element, where: _Where) -> tuple[float, float]:
    x = _number(_child_text(elem, "xCoord"), "xCoord", where, required=True)
    y = _number(_child_text(elem, "yCoord"), "yCoord", where, required=True)
    assert x is not None and y is not None
    return x, y


def _roi(elem: ET.Element, where: _Where) -> LidcRoi:
    sop = _child_text(elem, "imageSOP_UID") or ""
    z = _number(_child_text(elem, "imageZposition"), "imageZposition", where, required=False)
    if not sop and z is None:
        raise where.error("neither imageSOP_UID nor imageZposition names its image")
    flag = (_child_text(elem, "inclusion") or "TRUE").upper()
    if flag not in ("TRUE", "FALSE"):
        raise where.error(f"inclusion {flag!r} is neither TRUE nor FALSE")
    edges = _children(elem, "edgeMap")
    if not edges:
        raise where.error("no edgeMap point")
    points = tuple(_point(e, where / f"edgeMap {n}") for n, e in enumerate(edges, 1))
    return LidcRoi(sop, z, flag == "TRUE", points)


def _characteristics(elem: ET.Element | None, where: _Where) -> dict[str, int]:
    out: dict[str, int] = {}
    if elem is None:
        return out
    for c in elem:
        text = (c.text or "").strip()
        if text:
            value = _number(text, _local(c.tag), where, required=True)
            assert value is not None
            out[_local(c.tag)] = int(value)
    return out


def _session(elem: ET.Element, where: _Where) -> LidcSession:
    nodules = []
    for n, node in enumerate(_children(elem, "unblindedReadNodule"), 1):
        nid = _child_text(node, "noduleID")
        here = where / f"unblindedReadNodule {nid!r}" if nid else where / f"unblindedReadNodule {n}"
        if not nid:
            raise here.error("noduleID is missing")
        chars = _children(node, "characteristics")
        rois = tuple(_roi(r, here / f"roi {k}") for k, r in enumerate(_children(node, "roi"), 1))
        if not rois:
            raise here.error("no roi")
        nodules.append(LidcNodule(nid, rois, _characteristics(chars[0] if chars else None,
                                                              here / "characteristics")))
    marks = []
    for n, node in enumerate(_children(elem, "nonNodule"), 1):
        nid = _child_text(node, "nonNoduleID") or f"nonNodule {n}"
        here = where / f"nonNodule {nid!r}"
        loci = _children(node, "locus")
        if not loci:
            raise here.error("no locus point")
        sop = _child_text(node, "imageSOP_UID") or ""
        z = _number(_child_text(node, "imageZposition"), "imageZposition", here, required=False)
        if not sop and z is None:
            raise here.error("neither imageSOP_UID nor imageZposition names its image")
        marks.append(LidcNonNodule(nid, sop, z, _point(loci[0], here / "locus")))
    return LidcSession(_child_text(elem, "servicingRadiologistID") or "", tuple(nodules),
                       tuple(marks))


def is_lidc_xml(path: str | Path) -> bool:
    """Cheap check (first 4 KiB) whether a file looks like an LIDC reader XML."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return ROOT_TAG.encode() in head


def read_lidc_xml(path: str | Path) -> LidcRead:
    """Parse one LIDC reader XML; DicomReadError names the file and element on failure."""
    p = Path(path)
    where = _Where(str(p))
    try:
        size = p.stat().st_size
        if size > MAX_XML_BYTES:
            raise where.error(f"{size} bytes is too large for an LIDC reader XML")
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise where.error(f"not well-formed XML ({exc})") from None
    except OSError as exc:
        raise where.error(f"cannot be read ({exc.strerror or exc})") from None
    if _local(root.tag) != ROOT_TAG:
        raise where.error(f"root element is {_local(root.tag)!r}, not {ROOT_TAG!r}")
    headers = _children(root, "ResponseHeader")
    header = headers[0] if headers else None
    series = (_child_text(header, "SeriesInstanceUid") if header is not None else None) or ""
    study = (_child_text(header, "StudyInstanceUID") if header is not None else None) or ""
    if not series:
        raise (where / "ResponseHeader").error("SeriesInstanceUid is missing")
    sessions = tuple(_session(s, where / f"readingSession {n}")
                     for n, s in enumerate(_children(root, "readingSession"), 1))
    return LidcRead(str(p), series, study, sessions)


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class SliceGeometry:
    """What placing LIDC marks needs from a series: its grid and which SOP UID is slice k."""

    affine: FloatArray
    shape: tuple[int, int, int]
    series_uid: str = ""
    sop_to_k: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_volume(cls, volume: Volume, instances: Iterable[Any] = ()) -> SliceGeometry:
        """The volume's grid; ``instances`` (objects with ``sop_instance_uid`` and
        ``image_position``, e.g. :class:`dicomio.scan.InstanceHeader`) give the SOP map:
        each instance lies on the slice its ImagePositionPatient falls on."""
        sop_to_k: dict[str, int] = {}
        for inst in instances:
            pos = getattr(inst, "image_position", None)
            uid = getattr(inst, "sop_instance_uid", "")
            if pos is None or not uid:
                continue
            kji = volume.lps_to_index(pos)
            k = round(float(kji[0]))
            # Only an instance that sits on a slice plane of this grid (a resampled volume
            # or another stack does not) maps by UID; the rest fall back to z.
            if 0 <= k < volume.shape[0] and abs(kji[0] - k) < 0.1:
                sop_to_k[uid] = k
        return cls(np.asarray(volume.affine, dtype=np.float64), volume.shape,
                   volume.series_uid, sop_to_k)


def _geometry(g: Volume | SliceGeometry) -> SliceGeometry:
    return g if isinstance(g, SliceGeometry) else SliceGeometry.from_volume(g)


def _slice_of(sop_uid: str, z_mm: float | None, geo: SliceGeometry, where: _Where) -> int:
    if sop_uid in geo.sop_to_k:
        return geo.sop_to_k[sop_uid]
    if z_mm is not None:
        # The z of each slice's first voxel (ImagePositionPatient z for an axial stack).
        origin_z = float(geo.affine[2, 3])
        step_z = float(geo.affine[2, 0])
        if abs(step_z) > 1e-6:
            # Nearest slice, so within half a slice step of it (an axial stack's z).
            k = round((z_mm - origin_z) / step_z)
            if 0 <= k < geo.shape[0]:
                return k
    known = "is not an image of this series" if geo.sop_to_k else "cannot be matched by UID"
    raise where.error(f"imageSOP_UID {sop_uid or '(none)'} {known}, and imageZposition "
                      f"{z_mm} lies on none of its {geo.shape[0]} slices")


def _fill(points_xy: Sequence[tuple[float, float]], rows: int, cols: int
          ) -> npt.NDArray[np.bool_]:
    """Pixels whose centre lies inside or on the polygon (Pillow, as for RTSTRUCT)."""
    img = Image.new("1", (cols, rows), 0)
    xy = [(float(x), float(y)) for x, y in points_xy]
    draw = ImageDraw.Draw(img)
    if len(xy) >= 3:
        draw.polygon(xy, fill=1, outline=1)
    else:
        draw.line(xy if len(xy) == 2 else xy * 2, fill=1)
    return np.asarray(img, dtype=bool)


@dataclass(frozen=True, eq=False)
class ReaderMark:
    """One reader's nodule (or non-nodule) placed on the series grid."""

    session: int  # index into LidcRead.sessions
    radiologist_id: str
    nodule_id: str
    centroid_lps: tuple[float, float, float]
    diameter_mm: float  # largest in-plane contour extent; 0 for a single-point mark
    contoured: bool
    non_nodule: bool = False
    voxels_kji: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros((0, 3), dtype=np.int64), repr=False)

    @property
    def link_radius_mm(self) -> float:
        return (self.diameter_mm if self.contoured else EXCLUDED_STANDIN_DIAMETER_MM) / 2.0


def _in_plane_extent(points_xy: Sequence[tuple[float, float]], affine: FloatArray) -> float:
    pts = np.asarray(points_xy, dtype=np.float64)  # (x = i, y = j)
    if len(pts) < 2:
        return 0.0
    mm = pts[:, 1:2] * affine[:3, 1] + pts[:, 0:1] * affine[:3, 2]
    d = mm[:, None, :] - mm[None, :, :]
    return float(np.sqrt((d * d).sum(axis=2).max()))


def _nodule_mark(session: int, radiologist: str, nodule: LidcNodule, geo: SliceGeometry,
                 where: _Where) -> ReaderMark:
    rows, cols = geo.shape[1], geo.shape[2]
    include: dict[int, npt.NDArray[np.bool_]] = {}
    exclude: dict[int, npt.NDArray[np.bool_]] = {}
    points: list[tuple[int, float, float]] = []
    diameter = 0.0
    for n, roi in enumerate(nodule.rois, 1):
        k = _slice_of(roi.sop_uid, roi.z_mm, geo, where / f"roi {n}")
        for x, y in roi.points_xy:
            if not (-0.5 <= x < cols - 0.5 and -0.5 <= y < rows - 0.5):
                raise (where / f"roi {n}").error(
                    f"edgeMap point ({x:g}, {y:g}) lies outside the {cols}x{rows} image")
        target = include if roi.inclusion else exclude
        filled = _fill(roi.points_xy, rows, cols)
        target[k] = target[k] | filled if k in target else filled
        if roi.inclusion:
            points += [(k, y, x) for x, y in roi.points_xy]
            diameter = max(diameter, _in_plane_extent(roi.points_xy, geo.affine))
    parts = []
    for k, mask in include.items():
        if k in exclude:
            mask = mask & ~exclude[k]
        j, i = np.nonzero(mask)
        parts.append(np.stack([np.full_like(j, k), j, i], axis=1))
    voxels = (np.concatenate(parts).astype(np.int64) if parts
              else np.zeros((0, 3), dtype=np.int64))
    contoured = nodule.contoured
    if contoured and len(voxels):
        centre_kji = voxels.mean(axis=0)
    elif points:  # a single-point mark: its point(s)
        centre_kji = np.asarray(points, dtype=np.float64).mean(axis=0)
    else:
        raise where.error("every roi is an exclusion; nothing marks the nodule itself")
    centre = geo.affine[:3, :3] @ centre_kji + geo.affine[:3, 3]
    return ReaderMark(session, radiologist, nodule.nodule_id,
                      (float(centre[0]), float(centre[1]), float(centre[2])),
                      diameter if contoured else 0.0, contoured, False, voxels)


def reader_marks(read: LidcRead, geometry: Volume | SliceGeometry) -> list[ReaderMark]:
    """Every reader nodule and non-nodule mark of the file, placed on the series grid."""
    geo = _geometry(geometry)
    if read.series_uid and geo.series_uid and read.series_uid != geo.series_uid:
        raise DicomReadError(f"{read.source}: SeriesInstanceUid {read.series_uid} is not the "
                             f"series given ({geo.series_uid})")
    marks: list[ReaderMark] = []
    for s, session in enumerate(read.sessions):
        where = _Where(read.source, f"readingSession {s + 1}")
        for nodule in session.nodules:
            marks.append(_nodule_mark(s, session.radiologist_id, nodule, geo,
                                      where / f"unblindedReadNodule {nodule.nodule_id!r}"))
        for mark in session.non_nodules:
            here = where / f"nonNodule {mark.non_nodule_id!r}"
            k = _slice_of(mark.sop_uid, mark.z_mm, geo, here)
            x, y = mark.point_xy
            centre = geo.affine[:3, :3] @ np.array([k, y, x]) + geo.affine[:3, 3]
            marks.append(ReaderMark(s, session.radiologist_id, mark.non_nodule_id,
                                    (float(centre[0]), float(centre[1]), float(centre[2])),
                                    0.0, False, True))
    return marks


# --------------------------------------------------------------------------- the reference


@dataclass(frozen=True)
class ReferenceNodule:
    """One nodule of the reference (or an excluded finding), in LPS mm."""

    centre_lps: tuple[float, float, float]
    diameter_mm: float  # mean of the contouring readers' diameters; -1 when none contoured
    n_readers: int  # sessions that contoured it (">= 3 mm" marks)
    # servicingRadiologistIDs and noduleIDs of those readers (of every mark when none did)
    reader_ids: tuple[str, ...]
    nodule_ids: tuple[str, ...]
    marks: tuple[ReaderMark, ...] = field(repr=False, compare=False)

    @property
    def hit_radius_mm(self) -> float:
        """Radius a detection's centre must lie within (LUNA16: 10 mm stand-in diameter)."""
        d = self.diameter_mm if self.diameter_mm > 0 else EXCLUDED_STANDIN_DIAMETER_MM
        return d / 2.0


@dataclass(frozen=True)
class LidcReference:
    """The reference nodules and the excluded findings of one reader XML."""

    nodules: list[ReferenceNodule]
    excluded: list[ReferenceNodule]


def _overlap(a: ReaderMark, b: ReaderMark, shape: tuple[int, int, int]) -> bool:
    if not (len(a.voxels_kji) and len(b.voxels_kji)):
        return False
    flat_a = np.ravel_multi_index(a.voxels_kji.T, shape)
    flat_b = np.ravel_multi_index(b.voxels_kji.T, shape)
    return bool(np.intersect1d(flat_a, flat_b).size)


def _clusters(marks: list[ReaderMark], shape: tuple[int, int, int]) -> list[list[ReaderMark]]:
    """Closest pairs first; a cluster never holds two marks of one session."""
    pairs: list[tuple[float, int, int]] = []
    for a in range(len(marks)):
        for b in range(a + 1, len(marks)):
            ma, mb = marks[a], marks[b]
            if ma.session == mb.session:
                continue
            dist = math.dist(ma.centroid_lps, mb.centroid_lps)
            if dist <= max(ma.link_radius_mm, mb.link_radius_mm) or _overlap(ma, mb, shape):
                pairs.append((dist, a, b))
    parent = list(range(len(marks)))
    sessions = [{m.session} for m in marks]

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for _, a, b in sorted(pairs):
        ra, rb = root(a), root(b)
        if ra != rb and not sessions[ra] & sessions[rb]:
            parent[rb] = ra
            sessions[ra] |= sessions[rb]
    groups: dict[int, list[ReaderMark]] = {}
    for n, mark in enumerate(marks):
        groups.setdefault(root(n), []).append(mark)
    return list(groups.values())


def _summary(group: list[ReaderMark]) -> ReferenceNodule:
    sized = [m for m in group if m.contoured]
    used = sized or group
    centre = np.mean([m.centroid_lps for m in used], axis=0)
    diameter = float(np.mean([m.diameter_mm for m in sized])) if sized else -1.0
    return ReferenceNodule((float(centre[0]), float(centre[1]), float(centre[2])), diameter,
                           len({m.session for m in sized}),
                           tuple(m.radiologist_id for m in used),
                           tuple(m.nodule_id for m in used), tuple(group))


def lidc_reference(read: LidcRead, geometry: Volume | SliceGeometry, *,
                   min_diameter_mm: float = 3.0, min_readers: int = 2) -> LidcReference:
    """Reference nodules (>= ``min_readers`` contouring readers, mean diameter >=
    ``min_diameter_mm``) and the excluded findings (everything else marked)."""
    geo = _geometry(geometry)
    marks = reader_marks(read, geo)
    nodules = [m for m in marks if not m.non_nodule]
    kept: list[ReferenceNodule] = []
    excluded: list[ReferenceNodule] = []
    for group in _clusters(nodules, geo.shape):
        ref = _summary(group)
        ok = ref.n_readers >= min_readers and ref.diameter_mm >= min_diameter_mm
        (kept if ok else excluded).append(ref)
    excluded += [_summary([m]) for m in marks if m.non_nodule]
    kept.sort(key=lambda r: (-r.n_readers, r.centre_lps))
    return LidcReference(kept, excluded)


def reference_nodules(read: LidcRead, geometry: Volume | SliceGeometry, *,
                      min_diameter_mm: float = 3.0, min_readers: int = 2
                      ) -> list[ReferenceNodule]:
    """The reference: nodules >= ``min_diameter_mm`` contoured by >= ``min_readers``."""
    return lidc_reference(read, geometry, min_diameter_mm=min_diameter_mm,
                          min_readers=min_readers).nodules
