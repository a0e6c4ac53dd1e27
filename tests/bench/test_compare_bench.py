"""bench/compare.py's reference: the bare SimpleITK registration uses the same settings as
Lucida's, so both give the same transform (a ratio of unlike runs would mean nothing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import SimpleITK as sitk

from core.registration import (
    RegistrationSettings,
    euler_to_matrix,
    register_rigid,
    rigid_matrix,
    transform_difference,
)
from core.volume import Volume

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # the script imports its sibling _common
    try:
        spec = importlib.util.spec_from_file_location("bench_compare", BENCH / "compare.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def phantom() -> Volume:
    """A 2 mm body with a spine and a sphere off centre (enough structure to register)."""
    k, j, i = np.mgrid[0:48, 0:80, 0:80].astype(np.float32)
    array = np.full(k.shape, -1000, dtype=np.int16)
    array[((i - 40) / 34) ** 2 + ((j - 42) / 26) ** 2 <= 1] = 40
    array[(i - 40) ** 2 + (j - 60) ** 2 <= 30] = 700
    array[(i - 25) ** 2 + (j - 35) ** 2 + (k - 30) ** 2 <= 60] = 300
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, :3] = np.column_stack([(0, 0, 2.0), (0, 2.0, 0), (2.0, 0, 0)])
    affine[:3, 3] = (-80.0, -84.0, -48.0)
    return Volume(array, affine, modality="CT")


def test_bare_reference_matches_lucidas_registration() -> None:
    bench = _load()
    fixed = phantom()
    truth = rigid_matrix((0.3, 1.0, 0.2), 4.0, (4.0, -3.0, 2.0), fixed.center_lps())
    moving = Volume(fixed.array.copy(), truth @ fixed.affine, modality="CT")
    settings = RegistrationSettings()
    ours = register_rigid(fixed, moving, settings)
    composite = sitk.CompositeTransform(bench.bare_simpleitk(fixed, moving, settings))
    bare = euler_to_matrix(sitk.Euler3DTransform(composite.GetBackTransform()))
    corners = fixed.index_to_lps(np.array([[0, 0, 0], [47, 79, 79], [0, 79, 0], [47, 0, 79]]))
    distance, angle = transform_difference(ours.matrix, bare, corners)
    assert distance < 1e-3 and angle < 1e-3  # the same computation, not just a similar one
    # And it is a real registration, not two identical no-ops.
    assert transform_difference(ours.matrix, truth, corners)[0] < 2.0
    assert transform_difference(np.eye(4), truth, corners)[0] > 5.0
