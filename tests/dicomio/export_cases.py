"""Helpers of the export tests: findings placed on a real series in SimpleITK's own
index space, and the DICOM validators (dciodvfy, PixelMed's DicomSRValidator)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import SimpleITK as sitk

from core.volume import Volume
from dicomio.export import ExportFinding
from tests.conftest import REQUIRE_SHARED, skip_or_fail

Voxel = tuple[int, int, int]

PIXELMED_JAR = Path("/usr/share/java/pixelmed.jar")


def sitk_series(folder: Path) -> sitk.Image:
    """The source series read by SimpleITK (GDCM's own sorting), pixels and geometry."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def sitk_to_lucida(image: sitk.Image, volume: Volume, voxels: Iterable[Voxel]
                   ) -> list[Voxel]:
    """SimpleITK (i, j, k) indices -> Lucida (k, j, i) via LPS millimetres."""
    inverse = np.linalg.inv(volume.affine)
    out = []
    for v in voxels:
        p = image.TransformIndexToPhysicalPoint(tuple(int(c) for c in v))
        kji = inverse @ np.array([*p, 1.0])
        assert np.allclose(kji[:3], np.round(kji[:3]), atol=0.01), (v, kji)
        out.append(tuple(int(c) for c in np.round(kji[:3])))
    return out  # type: ignore[return-value]


def crop_of(voxels: list[Voxel]) -> tuple[npt.NDArray[np.bool_], tuple[int, int, int]]:
    arr = np.array(voxels)
    lo = arr.min(axis=0)
    mask = np.zeros(tuple(arr.max(axis=0) - lo + 1), dtype=bool)
    mask[tuple((arr - lo).T)] = True
    return mask, (int(lo[0]), int(lo[1]), int(lo[2]))


def l_shape(i0: int, j0: int, k0: int, size: int = 6) -> set[Voxel]:
    """An L in the (i, j) plane over three slices plus a one-voxel tail on a fourth:
    no mirror or transpose of it maps onto itself."""
    out = {(i0 + a, j0, k0 + d) for a in range(size) for d in range(3)}
    out |= {(i0, j0 + b, k0 + d) for b in range(size // 2) for d in range(3)}
    out.add((i0 + size - 1, j0, k0 + 3))
    return out


def finding(image: sitk.Image, volume: Volume, sitk_voxels: set[Voxel], *, tracking_id: str,
            origin: str = "model", edited: bool = False, decision: str = "accepted",
            score: float | None = 0.9) -> ExportFinding:
    kji = sitk_to_lucida(image, volume, sorted(sitk_voxels))
    mask, offset = crop_of(kji)
    centre = np.mean([image.TransformIndexToPhysicalPoint(v) for v in sitk_voxels], axis=0)
    spacing = np.array(image.GetSpacing())
    return ExportFinding(
        number=0, tracking_id=tracking_id, tracking_uid=hd.UID(), label_name="nodule",
        origin=origin, edited=edited, decision=decision, reviewer="Reader^Rita",
        decided_at="2026-12-05T12:00:00+00:00", mask=mask, offset=offset,
        volume_mm3=float(len(sitk_voxels) * np.prod(spacing)), longest_diameter_mm=6.0,
        centroid_lps=(float(centre[0]), float(centre[1]), float(centre[2])), score=score)


def seg_voxels_via_sitk(seg_path: Path, image: sitk.Image) -> dict[int, set[Voxel]]:
    """Each segment's voxels as SimpleITK indices, from the SEG's own header only:
    frame ImagePositionPatient + the shared orientation and spacing, per pixel."""
    ds = pydicom.dcmread(seg_path)
    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[None]
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    dy, dx = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    out: dict[int, set[Voxel]] = {}
    for n, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ident = item.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        segment = int(ident[0].ReferencedSegmentNumber)
        ipp = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        for r, c in zip(*np.nonzero(pixels[n]), strict=True):
            p = ipp + c * dx * iop[:3] + r * dy * iop[3:]
            index = image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in p))
            rounded = tuple(round(v) for v in index)
            assert np.allclose(index, rounded, atol=0.01), (p, index)
            out.setdefault(segment, set()).add(rounded)  # type: ignore[arg-type]
    return out


def dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        skip_or_fail("dciodvfy (dicom3tools) is not installed: run packaging/system-deps.sh",
                     REQUIRE_SHARED)
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def pixelmed_sr_report(path: Path) -> str:
    """DicomSRValidator with template checking (its wrapper fails on Debian 12's Java)."""
    if shutil.which("java") is None or not PIXELMED_JAR.is_file():
        skip_or_fail("java or PixelMed (Debian pixelmed-apps) is not installed: run "
                     "packaging/system-deps.sh", REQUIRE_SHARED)
    run = subprocess.run(
        ["java", "-Djdk.xml.xpathExprOpLimit=0", "-Djdk.xml.xpathExprGrpLimit=0",
         "-Djdk.xml.xpathTotalOpLimit=0", "-cp", str(PIXELMED_JAR),
         "com.pixelmed.validate.DicomSRValidator", "-checktemplateid", str(path)],
        capture_output=True, text=True, timeout=300)
    return run.stdout + run.stderr
