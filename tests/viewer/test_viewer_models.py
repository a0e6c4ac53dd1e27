"""Viewer logic without a window: plane geometry, presets, measurements, models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.volume import Volume
from viewer import planes
from viewer.measure import Measurement, angle_deg, distance_mm, roi_stats
from viewer.presets import CT_PRESET_ORDER, PRESETS, auto_window, default_window


def _volume(dirs: np.ndarray, spacing: tuple[float, float, float],
            shape: tuple[int, int, int] = (10, 12, 14)) -> Volume:
    affine = np.eye(4)
    affine[:3, :3] = dirs * np.array(spacing)
    affine[:3, 3] = (5.0, -7.0, 30.0)
    return Volume(np.zeros(shape, np.int16), affine)


AXIAL_DIRS = np.column_stack([(0, 0, 1), (0, 1, 0), (1, 0, 0)]).astype(float)
FEET_FIRST_DIRS = np.column_stack([(0, 0, -1), (0, -1, 0), (-1, 0, 0)]).astype(float)


def test_plane_axes_follow_radiological_convention() -> None:
    letters = {n: planes.orientation_letters(*planes.PLANE_AXES[n]) for n in planes.PLANE_NAMES}
    assert letters["axial"] == {"right": "L", "left": "R", "top": "A", "bottom": "P"}
    assert letters["coronal"] == {"right": "L", "left": "R", "top": "S", "bottom": "I"}
    assert letters["sagittal"] == {"right": "P", "left": "A", "top": "S", "bottom": "I"}
    # Normal = right × up points to the viewer: feet (axial), front (coronal), left (sagittal).
    normals = {n: np.cross(*[np.array(v) for v in planes.PLANE_AXES[n]])
               for n in planes.PLANE_NAMES}
    assert np.allclose(normals["axial"], (0, 0, -1))
    assert np.allclose(normals["coronal"], (0, -1, 0))
    assert np.allclose(normals["sagittal"], (1, 0, 0))


@pytest.mark.parametrize("dirs", [AXIAL_DIRS, FEET_FIRST_DIRS])
def test_reslice_matrix_maps_plane_points_to_voxel_indices(dirs: np.ndarray) -> None:
    vol = _volume(dirs, (2.5, 0.7, 0.8))
    for name in planes.PLANE_NAMES:
        g = planes.PlaneGeometry.for_volume(vol, name)
        assert not g.oblique
        offset = g.slice_offset(vol, vol.center_lps())
        m = planes.reslice_matrix(vol.affine, g.plane_to_lps_matrix(offset))
        for xy in [(0.0, 0.0), (3.2, -1.4), (g.origin_xy[0], g.origin_xy[1])]:
            ijk = m @ np.array([xy[0], xy[1], 0.0, 1.0])
            lps = g.to_lps(xy, offset)
            assert np.allclose(ijk[:3][::-1], vol.lps_to_index(lps))
        # Output samples of an aligned grid land on voxel centres.
        ijk0 = m @ np.array([g.origin_xy[0], g.origin_xy[1], 0.0, 1.0])
        assert np.allclose(ijk0[:3], np.rint(ijk0[:3]), atol=1e-6)


def test_slice_step_is_the_spacing_of_the_axis_along_the_normal() -> None:
    vol = _volume(AXIAL_DIRS, (2.5, 0.7, 0.8))
    steps = {n: planes.PlaneGeometry.for_volume(vol, n).step_mm for n in planes.PLANE_NAMES}
    assert steps == pytest.approx({"axial": 2.5, "coronal": 0.7, "sagittal": 0.8})


def test_oblique_volume_is_flagged() -> None:
    a = math.radians(20)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    vol = _volume(rot @ AXIAL_DIRS, (2.0, 1.0, 1.0))
    g = planes.PlaneGeometry.for_volume(vol, "axial")
    assert g.oblique
    assert g.spacing_xy == (1.0, 1.0)


def test_presets_and_auto_window() -> None:
    assert len(CT_PRESET_ORDER) == 8 and set(CT_PRESET_ORDER) == set(PRESETS)
    assert (PRESETS["lung"].width, PRESETS["lung"].level) == (1500.0, -600.0)
    arr = np.arange(100_000, dtype=np.float32).reshape(10, 100, 100)
    w, lev = auto_window(arr)
    lo, hi = np.percentile(arr, [1, 99])
    assert w == pytest.approx(hi - lo, rel=1e-3)
    assert lev == pytest.approx((hi + lo) / 2, rel=1e-3)
    assert default_window("CT", arr, {"window_width": [400], "window_center": [40]}) == (400, 40)
    assert default_window("CT", arr, {}) == (PRESETS["mediastinum"].width,
                                             PRESETS["mediastinum"].level)
    assert default_window("MR", arr, {}) == pytest.approx((w, lev))


def test_distance_and_angle() -> None:
    assert distance_mm((0, 0, 0), (3, 4, 0)) == pytest.approx(5.0)
    assert angle_deg((1, 0, 0), (0, 0, 0), (0, 1, 0)) == pytest.approx(90.0)
    assert angle_deg((1, 0, 0), (0, 0, 0), (1, 1, 0)) == pytest.approx(45.0)


def test_roi_stats_from_voxels() -> None:
    arr = np.zeros((5, 40, 40), np.int16)
    arr[:, 10:30, 10:30] = 100
    arr[2, 15:25, 15:25] = np.arange(100, dtype=np.int16).reshape(10, 10)
    vol = Volume(arr, np.diag([3.0, 0.5, 0.5, 1.0]), modality="CT")
    right, up = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)       # i and j axes in LPS here
    # Rectangle over the ramp on slice 2 (voxel centres 15…24 in j and i).
    a = vol.index_to_lps((2, 15, 15))
    b = vol.index_to_lps((2, 24, 24))
    s = roi_stats(vol, "rectangle", a, b, right, up)
    assert s["count"] == 100
    assert s["mean"] == pytest.approx(49.5)
    assert (s["min"], s["max"]) == (0.0, 99.0)
    assert s["sd"] == pytest.approx(np.arange(100).std())
    assert s["area_mm2"] == pytest.approx(4.5 * 4.5)
    assert s["unit"] == "HU"
    # Ellipse inside the constant region of slice 0.
    e = roi_stats(vol, "ellipse", vol.index_to_lps((0, 12, 12)), vol.index_to_lps((0, 20, 20)),
                  right, up)
    assert e["mean"] == pytest.approx(100.0) and e["sd"] == pytest.approx(0.0)
    assert e["area_mm2"] == pytest.approx(math.pi * 2.0 * 2.0)


def test_measurement_record_round_trip() -> None:
    m = Measurement("angle", [(0, 0, 0), (1, 0, 0), (1, 1, 0)], right=(1, 0, 0),
                    up=(0, -1, 0), view="axial", series_uid="1.2")
    m.compute(None)
    rec = json.loads(json.dumps(m.to_record()))
    back = Measurement.from_record(rec)
    assert back.to_record() == m.to_record()
    assert back.stats["angle_deg"] == pytest.approx(90.0)
    with pytest.raises(ValueError, match="needs 2 points"):
        Measurement("distance", [(0, 0, 0)], right=(1, 0, 0), up=(0, 1, 0))
    with pytest.raises(ValueError, match="lacks"):
        Measurement.from_record({"kind": "distance"})


def test_models_emit_signals() -> None:
    from viewer.models import CursorModel, MeasurementList, SlabModel, WindowLevelModel

    wl = WindowLevelModel()
    seen: list[tuple[float, float]] = []
    wl.changed.connect(lambda w, lev: seen.append((w, lev)))
    wl.set(200, 10)
    assert seen == [(200.0, 10.0)]
    assert wl.grey(10) == pytest.approx(127.5)
    assert wl.grey(-500) == 0.0 and wl.grey(500) == 255.0
    cur = CursorModel()
    moved: list[np.ndarray] = []
    cur.changed.connect(moved.append)
    cur.set((1, 2, 3))
    cur.set((1, 2, 3))
    assert len(moved) == 1 and np.allclose(moved[0], (1, 2, 3))
    slab = SlabModel()
    with pytest.raises(ValueError):
        slab.set("max", 5)
    ml = MeasurementList()
    ml.add(Measurement("distance", [(0, 0, 0), (0, 0, 5)], right=(1, 0, 0), up=(0, 0, 1)))
    ml.select(0)
    ml.delete(0)
    assert len(ml) == 0 and ml.selected == -1
