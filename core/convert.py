"""The one place where Lucida's ``[k, j, i]`` + LPS convention meets others.

SimpleITK indexes ``(i, j, k)`` with a direction matrix and origin in LPS;
NIfTI indexes ``(i, j, k)`` with an affine to RAS. Each conversion lives in
exactly one function here, so no one else does the axis gymnastics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.volume import FloatArray

if TYPE_CHECKING:
    import SimpleITK as sitk

# Flips LPS ↔ RAS (its own inverse).
LPS_TO_RAS: FloatArray = np.diag([-1.0, -1.0, 1.0, 1.0])
# Swaps the (k, j, i) and (i, j, k) index orders (its own inverse).
_SWAP_KJI_IJK: FloatArray = np.array(
    [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64
)


def to_ras_affine_ijk(affine_kji_lps: FloatArray) -> FloatArray:
    """NIfTI affine ``(i, j, k) → RAS`` from a Lucida affine."""
    return np.asarray(LPS_TO_RAS @ affine_kji_lps @ _SWAP_KJI_IJK, dtype=np.float64)


def from_ras_affine_ijk(affine_ijk_ras: FloatArray) -> FloatArray:
    """Lucida affine ``(k, j, i) → LPS`` from a NIfTI affine."""
    return np.asarray(LPS_TO_RAS @ affine_ijk_ras @ _SWAP_KJI_IJK, dtype=np.float64)


def array_to_ijk(array_kji: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """View of a ``[k, j, i]`` array in NIfTI's ``[i, j, k]`` order (no copy)."""
    return array_kji.transpose(2, 1, 0)


def array_from_ijk(array_ijk: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return array_ijk.transpose(2, 1, 0)


def sitk_geometry(affine_kji_lps: FloatArray) -> tuple[tuple[float, ...], tuple[float, ...],
                                                        tuple[float, ...]]:
    """(origin, spacing, direction) for SimpleITK, all in its (i, j, k) order."""
    a = affine_kji_lps
    cols = [a[:3, 2], a[:3, 1], a[:3, 0]]  # i, j, k
    spacing = tuple(float(np.linalg.norm(c)) for c in cols)
    direction = np.stack([c / s for c, s in zip(cols, spacing, strict=True)], axis=1)
    return (tuple(float(x) for x in a[:3, 3]), spacing,
            tuple(float(x) for x in direction.ravel()))


def affine_from_sitk(image: sitk.Image) -> FloatArray:
    """Lucida affine of a SimpleITK image (3-D)."""
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, 2] = direction[:, 0] * spacing[0]
    affine[:3, 1] = direction[:, 1] * spacing[1]
    affine[:3, 0] = direction[:, 2] * spacing[2]
    affine[:3, 3] = image.GetOrigin()
    return affine


def to_sitk(array_kji: npt.NDArray[Any], affine_kji_lps: FloatArray) -> sitk.Image:
    """SimpleITK image sharing Lucida's geometry (the affine must have no shear)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array_kji))
    origin, spacing, direction = sitk_geometry(affine_kji_lps)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def from_sitk(image: sitk.Image) -> tuple[npt.NDArray[Any], FloatArray]:
    """(array ``[k, j, i]``, affine) of a SimpleITK image."""
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image), affine_from_sitk(image)
