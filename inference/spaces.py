"""Model space: the grid and tensor layout a network expects, and the way there and back.

A volume is brought onto the model's grid (orientation, spacing, optional
fixed shape) with SimpleITK; when the model grid is only a permutation/flip
of the source grid at the same spacing, the exact index shuffle is used
instead (no interpolation, so identity round trips are exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core import convert, geometry
from core.errors import GeometryError, InferenceError
from core.resample import grid_covering, resample_array
from core.volume import FloatArray
from inference.manifest import InputSpec

_LETTER_LPS: dict[str, tuple[float, float, float]] = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0),
    "I": (0.0, 0.0, -1.0),
}


def orientation_directions_ijk(code: str) -> FloatArray:
    """3×3 matrix whose columns are the LPS unit vectors of grid axes i, j, k."""
    try:
        return np.array([_LETTER_LPS[c] for c in code.upper()], dtype=np.float64).T
    except KeyError as exc:
        raise InferenceError(f"bad orientation code {code!r}") from exc


@dataclass
class ModelGrid:
    """The model-space grid (Lucida convention: affine maps ``(k, j, i)`` → LPS)."""

    affine: FloatArray
    shape_kji: tuple[int, int, int]
    axis_order: Literal["kji", "ijk"]
    # When the grid is an exact index shuffle of the source: (perm, flips) from source.
    exact: tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None = None

    @property
    def tensor_shape(self) -> tuple[int, int, int]:
        k, j, i = self.shape_kji
        return (k, j, i) if self.axis_order == "kji" else (i, j, k)

    def to_tensor(self, grid_array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``[k, j, i]`` grid array → tensor axis order (a view)."""
        return grid_array if self.axis_order == "kji" else grid_array.transpose(2, 1, 0)

    def from_tensor(self, tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Tensor-ordered spatial array (last 3 axes) → ``[k, j, i]`` grid order (a view)."""
        if self.axis_order == "kji":
            return tensor
        nd = tensor.ndim
        axes = (*range(nd - 3), nd - 1, nd - 2, nd - 3)
        return tensor.transpose(axes)


def model_grid(source_affine: FloatArray, source_shape: tuple[int, int, int],
               spec: InputSpec) -> ModelGrid:
    """The grid a network with input ``spec`` sees for a volume on the source grid."""
    dir_ijk = orientation_directions_ijk(spec.orientation)
    dir_kji = dir_ijk[:, ::-1]  # Lucida columns: k, j, i
    src_spacing = geometry.spacing_from_affine(source_affine)  # (k, j, i)
    src_dir = geometry.direction_from_affine(source_affine)
    if spec.spacing_mm == "native":
        # Each model axis takes the spacing of the source axis closest to it.
        spacing_kji = np.empty(3)
        for t in range(3):
            s = int(np.argmax(np.abs(src_dir.T @ dir_kji[:, t])))
            spacing_kji[t] = src_spacing[s]
    else:
        si, sj, sk = spec.spacing_mm
        spacing_kji = np.array([sk, sj, si], dtype=np.float64)

    if spec.grid == "closest":
        affine = closest_grid_affine(source_affine, source_shape, dir_kji)
        shape = _shuffled_shape(source_affine, affine, source_shape)
        return ModelGrid(affine, shape, spec.axis_order,
                         _exact_map(source_affine, source_shape, affine, shape))
    if spec.shape is not None:
        ni, nj, nk = spec.shape
        shape = (nk, nj, ni)
        affine = np.eye(4)
        affine[:3, :3] = dir_kji * spacing_kji
        centre = geometry.index_to_lps(source_affine, (np.array(source_shape) - 1) / 2.0)
        affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(shape, dtype=np.float64) - 1) / 2)
        return ModelGrid(affine, shape, spec.axis_order, _exact_map(source_affine, source_shape,
                                                                    affine, shape))
    affine, shape = grid_covering(source_affine, source_shape, dir_kji, spacing_kji)
    return ModelGrid(affine, shape, spec.axis_order,
                     _exact_map(source_affine, source_shape, affine, shape))


def closest_grid_affine(source_affine: FloatArray, source_shape: tuple[int, int, int],
                        dir_kji: FloatArray) -> FloatArray:
    """The source grid with its axes permuted and flipped so that each points as nearly as
    possible along ``dir_kji``'s columns (the pairs with the largest |cosine| are matched
    first, so an axis is never used twice); the voxels stay where they are."""
    src_dir = geometry.direction_from_affine(source_affine)
    cos = np.abs(src_dir.T @ dir_kji)  # [source axis, model axis]
    perm = [-1, -1, -1]
    for flat in np.argsort(-cos, axis=None):
        s, t = divmod(int(flat), 3)
        if perm[t] < 0 and s not in perm:
            perm[t] = s
    columns = np.empty((3, 3))
    corner = np.zeros(3)
    for t, s in enumerate(perm):
        col = source_affine[:3, s]
        if float(col @ dir_kji[:, t]) < 0:  # flipped: start from the far end of that axis
            col = -col
            corner[s] = source_shape[s] - 1
        columns[:, t] = col
    affine = np.eye(4)
    affine[:3, :3] = columns
    affine[:3, 3] = geometry.index_to_lps(source_affine, corner)
    return affine


def _shuffled_shape(source_affine: FloatArray, affine: FloatArray,
                    source_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    m = np.abs(np.linalg.solve(source_affine, affine)[:3, :3])
    perm = [int(np.argmax(m[:, t])) for t in range(3)]
    return (source_shape[perm[0]], source_shape[perm[1]], source_shape[perm[2]])


def _exact_map(src_affine: FloatArray, src_shape: tuple[int, int, int], dst_affine: FloatArray,
               dst_shape: tuple[int, int, int]
               ) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """(perm, flips) if the destination grid is the source grid with axes shuffled/flipped."""
    m = np.linalg.solve(src_affine, dst_affine)  # dst index -> src index
    rot = m[:3, :3]
    if not np.allclose(np.abs(rot), np.round(np.abs(rot)), atol=1e-6):
        return None
    r = np.round(rot).astype(int)
    if sorted(np.abs(r).sum(axis=0).tolist()) != [1, 1, 1] or sorted(
            np.abs(r).sum(axis=1).tolist()) != [1, 1, 1]:
        return None
    offset = m[:3, 3]
    if not np.allclose(offset, np.round(offset), atol=1e-4):
        return None
    # dst axis t comes from src axis perm[t]; flipped if the sign is negative.
    perm = tuple(int(np.argmax(np.abs(r[:, t]))) for t in range(3))
    flips = tuple(bool(r[perm[t], t] < 0) for t in range(3))
    off = np.round(offset).astype(int)
    for t in range(3):
        s = perm[t]
        first = off[s]
        last = off[s] + r[s, t] * (dst_shape[t] - 1)
        if (min(first, last) != 0 or max(first, last) != src_shape[s] - 1):
            return None
    return (perm[0], perm[1], perm[2]), (flips[0], flips[1], flips[2])


def _apply_exact(array: npt.NDArray[Any], perm: tuple[int, int, int],
                 flips: tuple[bool, bool, bool]) -> npt.NDArray[Any]:
    out = array.transpose(perm)
    sl = tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    return out[sl]


def _invert_exact(array: npt.NDArray[Any], perm: tuple[int, int, int],
                  flips: tuple[bool, bool, bool]) -> npt.NDArray[Any]:
    lead = array.ndim - 3
    sl = (slice(None),) * lead + tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    unflipped = array[sl]
    inv = np.argsort(perm)
    return unflipped.transpose(*range(lead), *(lead + int(a) for a in inv))


def to_model_grid(array_kji: npt.NDArray[Any], source_affine: FloatArray, grid: ModelGrid,
                  *, interpolation: str = "linear", fill_value: float = 0.0,
                  copy: bool = True) -> npt.NDArray[np.float32]:
    """Intensities resampled onto the model grid, ``[k, j, i]`` float32.

    On an exact (shuffle-only) grid with ``copy=False`` and float32 input the
    result may be a read-only view of the caller's array; otherwise it is a new
    C-contiguous array that normalisation may modify in place.
    """
    if grid.exact is not None:
        view = _apply_exact(array_kji, *grid.exact)
        if not copy and view.dtype == np.float32:
            return view
        return np.array(view, dtype=np.float32, order="C", copy=True)
    if not geometry.is_orthogonal(source_affine):
        # Sheared (gantry-tilted) grids: SimpleITK cannot carry shear; scipy can.
        order: Literal["nearest", "linear"] = "nearest" if interpolation == "nearest" else "linear"
        return resample_array(array_kji, source_affine, grid.affine, grid.shape_kji, order,
                              fill_value, np.float32)
    import SimpleITK as sitk

    image = convert.to_sitk(np.asarray(array_kji, dtype=np.float32), source_affine)
    out = _sitk_resample(image, grid.affine, grid.shape_kji, interpolation, fill_value)
    result = sitk.GetArrayFromImage(out)
    return np.ascontiguousarray(result, dtype=np.float32)


def _sitk_resample(image: Any, affine: FloatArray, shape_kji: tuple[int, int, int],
                   interpolation: str, fill_value: float) -> Any:
    import SimpleITK as sitk

    interp = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor,
              "bspline": sitk.sitkBSpline}[interpolation]
    origin, spacing, direction = convert.sitk_geometry(affine)
    size = [int(shape_kji[2]), int(shape_kji[1]), int(shape_kji[0])]
    return sitk.Resample(image, size, sitk.Transform(), interp, origin, spacing, direction,
                         float(fill_value), image.GetPixelID())


def from_model_grid(array_kji: npt.NDArray[Any], grid: ModelGrid, target_affine: FloatArray,
                    target_shape: tuple[int, int, int], *,
                    interpolation: Literal["nearest", "linear"], fill_value: float = 0.0
                    ) -> npt.NDArray[Any]:
    """A ``[k, j, i]`` model-grid array (labels: nearest, scores: linear) on the source grid."""
    if array_kji.shape != grid.shape_kji:
        raise GeometryError(f"model output shape {array_kji.shape} != grid {grid.shape_kji}")
    if grid.exact is not None:
        return np.ascontiguousarray(_invert_exact(array_kji, *grid.exact))
    if not geometry.is_orthogonal(target_affine):
        return resample_array(array_kji, grid.affine, target_affine, target_shape,
                              interpolation, fill_value)
    import SimpleITK as sitk

    work = array_kji
    if work.dtype == np.float16:
        work = work.astype(np.float32)
    elif work.dtype == np.bool_:
        work = work.view(np.uint8)
    image = convert.to_sitk(work, grid.affine)
    out = _sitk_resample(image, target_affine, target_shape, interpolation, fill_value)
    result = sitk.GetArrayFromImage(out)
    return np.ascontiguousarray(result, dtype=array_kji.dtype)
