"""Odd sources for the sign-off export: an enhanced multi-frame CT is exported (frames
referenced by number), a resampled (gantry-tilted) volume is refused with a reason."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicomio.export import (
    AlgorithmInfo,
    ExportContext,
    ExportFinding,
    ExportRefused,
    export_objects,
)
from dicomio.load import read_volume
from dicomio.source import DicomSource
from tests.dicomio.export_cases import dciodvfy_errors

ALGORITHM = AlgorithmInfo(name="Lung nodule demo", version="1.2.3")
CONTEXT = ExportContext(reviewer="Reader^Rita", signed_off_at="2026-12-05T12:00:00+00:00")


def _finding(offset: tuple[int, int, int]) -> ExportFinding:
    mask = np.zeros((3, 4, 5), dtype=bool)
    mask[0, :, 0] = True  # an asymmetric comb: column 0 on the first slice,
    mask[1, 0, :] = True  # row 0 on the second,
    mask[2, 3, 4] = True  # one corner voxel on the third
    return ExportFinding(number=0, tracking_id="m1", tracking_uid=hd.UID(),
                         label_name="nodule", origin="model", edited=False,
                         decision="accepted", reviewer="Reader^Rita",
                         decided_at="2026-12-05T12:00:00+00:00", mask=mask, offset=offset,
                         volume_mm3=10.0, longest_diameter_mm=5.0,
                         centroid_lps=(0.0, 0.0, 0.0))


def test_enhanced_multiframe_ct_is_exported_on_its_frames(tmp_path: Path) -> None:
    from dicomio.demo import write_demo_study

    singles = write_demo_study(tmp_path / "demo", shape=(12, 48, 40))
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        [pydicom.dcmread(p) for p in singles], hd.UID(), 7, hd.UID(), 1)
    path = tmp_path / "enhanced.dcm"
    enhanced.save_as(path)
    sources = [DicomSource(path)]
    volume = read_volume(sources)
    f = _finding((4, 10, 20))
    result = export_objects(sources, volume.array.shape, volume.affine, [f], ALGORITHM,
                            CONTEXT, tmp_path / "out")
    seg = pydicom.dcmread(result.seg)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    pixels = seg.pixel_array
    assert seg.NumberOfFrames == 3
    for n, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        frame = int(ref.ReferencedFrameNumber) - 1
        src_pos = source.PerFrameFunctionalGroupsSequence[frame].PlanePositionSequence[0]
        seg_pos = item.PlanePositionSequence[0].ImagePositionPatient
        assert np.allclose([float(v) for v in seg_pos],
                           [float(v) for v in src_pos.ImagePositionPatient])
        # The slice k that frame is in the loaded volume, and the mask there.
        k = round(float((np.linalg.inv(volume.affine) @ [*map(float, seg_pos), 1.0])[0]))
        want = np.zeros(volume.array.shape[1:], dtype=bool)
        want[10:14, 20:25] = f.mask[k - 4]
        assert np.array_equal(pixels[n].astype(bool), want)
    for p in result.paths:
        assert dciodvfy_errors(p) == [], p.name


def test_a_resampled_gantry_tilt_volume_is_refused(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "ct" / "HeadCT_GE_gantry_tilt"
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".md"]
    if not files:
        pytest.fail(f"{folder} is missing from ../shared")
    sources = [DicomSource(p) for p in files]
    volume = read_volume(sources)
    assert volume.metadata.get("resampled")
    with pytest.raises(ExportRefused, match="resampled on loading"):
        export_objects(sources, volume.array.shape, volume.affine, [_finding((2, 100, 100))],
                       ALGORITHM, CONTEXT, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_findings_on_another_grid_are_refused(tmp_path: Path) -> None:
    from dicomio.demo import write_demo_study

    singles = write_demo_study(tmp_path / "demo", shape=(12, 48, 40))
    sources = [DicomSource(p) for p in singles]
    volume = read_volume(sources)
    shifted = volume.affine.copy()
    shifted[:3, 3] += 1.0
    with pytest.raises(ExportRefused, match="grid differs"):
        export_objects(sources, volume.array.shape, shifted, [_finding((2, 10, 10))],
                       ALGORITHM, CONTEXT, tmp_path / "out")
