"""Synthetic lung nodules inserted into real chest CT: training data for the nodule detector.

Conventions (the same as ``core.volume.Volume``):

- Arrays are indexed ``[k, j, i]`` and hold HU. Spacing is ``(sk, sj, si)`` in mm.
- A nodule's centre is given as float **voxel indices** ``(k, j, i)`` (voxel centres are
  integers). With the series' affine (``(k, j, i, 1)`` → LPS mm) the record also carries the
  centre in LPS mm.

Image model (why the numbers match a real scan of the same size of object):

1. The nodule is an implicit shape in mm around its centre: an ellipsoid of equal volume to
   the requested sphere (axis ratio ``elongation``, random rotation), optionally lobulated
   (a few smooth radial bumps, volume renormalised) or spiculated (thin tapered spikes added
   to the smooth body). Its occupancy is sampled on a fine grid with a soft one-cell edge.
2. Each output voxel averages that occupancy over its scanner footprint: a box of the pixel
   size in-plane convolved with a Gaussian PSF (``psf_sigma_mm``), and a box of the
   reconstructed **slice thickness** (not the slice spacing) along k. The kernel is integrated
   analytically over each fine cell, so the operator is exact for the sampled occupancy, and
   separable: three small matrices applied to the local crop only (never a whole-volume pass).
3. Blend: ``out = bg + gate * (a * (nodule_hu - bg) + texture)``, where ``a`` is the blurred
   occupancy, ``gate`` is 1 only where the background is lung (``HU < lung_below_hu``) so a
   juxtapleural nodule is never painted over chest wall, and the texture is smoothed noise of
   the local lung noise level scaled by ``sqrt(a (2 - a))`` so that the total noise variance
   stays that of the background inside and around the nodule.

All randomness comes from the caller's ``numpy.random.Generator``: the same generator state
gives the same crop bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage, special

Kind = Literal["solid", "ground_glass", "part_solid"]
Margin = Literal["smooth", "lobulated", "spiculated"]
Context = Literal["isolated", "juxtapleural", "juxtavascular"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Triple = tuple[float, float, float]
IntTriple = tuple[int, int, int]

KINDS: tuple[Kind, ...] = ("solid", "ground_glass", "part_solid")
MARGINS: tuple[Margin, ...] = ("smooth", "lobulated", "spiculated")
CONTEXTS: tuple[Context, ...] = ("isolated", "juxtapleural", "juxtavascular")

MIN_DIAMETER_MM = 3.0
MAX_DIAMETER_MM = 30.0
MAX_ELONGATION = 1.3
DEFAULT_BODY_HU: dict[str, float] = {"solid": 30.0, "ground_glass": -550.0,
                                     "part_solid": -550.0}
#: Background below this is lung: the only place a nodule is drawn.
LUNG_BELOW_HU = -400.0
#: A lung voxel above this is a vessel (or other soft tissue) for juxtavascular placement.
VESSEL_ABOVE_HU = -300.0
#: An isolated nodule's centre is at least its radius plus this from the lung boundary.
ISOLATED_CLEARANCE_MM = 3.0


def contact_band_mm(radius_mm: float) -> float:
    """Depth of "touching": a juxtapleural (juxtavascular) centre lies between radius minus
    this and radius from the nearest non-lung (vessel) voxel, so the nodule reaches it."""
    return max(1.0, 0.25 * radius_mm)


@dataclass(frozen=True)
class NoduleSpec:
    """What to draw. ``hu`` is the body value (default: solid +30, ground glass -550);
    a part-solid nodule is ground glass of ``hu`` with a solid core of ``core_hu`` whose
    diameter is ``solid_fraction`` of the whole."""

    diameter_mm: float
    kind: Kind = "solid"
    margin: Margin = "smooth"
    context: Context = "isolated"
    hu: float | None = None
    core_hu: float = 30.0
    solid_fraction: float = 0.5
    elongation: float = 1.0

    def __post_init__(self) -> None:
        if not MIN_DIAMETER_MM <= self.diameter_mm <= MAX_DIAMETER_MM:
            raise ValueError(f"diameter {self.diameter_mm} mm is outside "
                             f"{MIN_DIAMETER_MM}-{MAX_DIAMETER_MM} mm")
        if self.kind not in KINDS:
            raise ValueError(f"unknown nodule kind {self.kind!r}")
        if self.margin not in MARGINS:
            raise ValueError(f"unknown margin {self.margin!r}")
        if self.context not in CONTEXTS:
            raise ValueError(f"unknown context {self.context!r}")
        if not 1.0 <= self.elongation <= MAX_ELONGATION:
            raise ValueError(f"elongation {self.elongation} is outside 1-{MAX_ELONGATION}")
        if self.kind == "part_solid" and not 0.1 <= self.solid_fraction <= 0.8:
            raise ValueError(f"solid fraction {self.solid_fraction} is outside 0.1-0.8")

    @property
    def body_hu(self) -> float:
        return DEFAULT_BODY_HU[self.kind] if self.hu is None else float(self.hu)

    @property
    def solid_diameter_mm(self) -> float:
        if self.kind == "solid":
            return self.diameter_mm
        if self.kind == "part_solid":
            return self.solid_fraction * self.diameter_mm
        return 0.0


@dataclass(frozen=True, eq=False)
class NoduleRecord:
    """Ground truth of one inserted nodule. ``bbox_kji`` is the crop as (start, stop) voxel
    indices (stop exclusive); ``mask`` (the crop's shape) is where the occupancy exceeds 0.5
    and the nodule was drawn (over lung: not the part cut off by the chest wall, but with
    any vessel it encloses)."""

    centre_kji: Triple
    centre_lps_mm: Triple | None
    diameter_mm: float
    kind: Kind
    margin: Margin
    context: Context
    body_hu: float
    solid_diameter_mm: float
    core_hu: float | None
    bbox_kji: tuple[IntTriple, IntTriple]
    mask: BoolArray

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        (k0, j0, i0), (k1, j1, i1) = self.bbox_kji
        return slice(k0, k1), slice(j0, j1), slice(i0, i1)


@dataclass(frozen=True, eq=False)
class Insertion:
    """The modified crop (float32 HU) and its record; ``paste`` writes it into the volume."""

    crop: npt.NDArray[np.float32]
    record: NoduleRecord

    def paste(self, volume_hu: npt.NDArray[np.generic]) -> None:
        """Write the crop into ``volume_hu`` (rounded when the volume is integer HU)."""
        crop = self.crop
        if np.issubdtype(volume_hu.dtype, np.integer):
            crop = np.rint(crop)
        volume_hu[self.record.slices] = crop


# ---------------------------------------------------------------------------------------
# Shape


@dataclass(frozen=True)
class _Shape:
    """Implicit nodule shape in mm around the centre, axes in (k, j, i) mm order."""

    radius: float
    rotation: FloatArray  # columns: the ellipsoid's axes in kji-mm
    axes: FloatArray  # relative semi-axes, product 1 (equal volume)
    lobe_dirs: FloatArray  # (n, 3) unit vectors in the ellipsoid's normalised frame
    lobe_amps: FloatArray
    lobe_kappa: float
    lobe_scale: float  # renormalises the lobulated volume to the sphere's
    spike_dirs: FloatArray  # (m, 3) unit vectors in kji-mm
    spike_t0: FloatArray  # spike starts inside the body ...
    spike_ts: FloatArray  # ... leaves the surface here ...
    spike_t1: FloatArray  # ... and ends here (mm from the centre)
    spike_w0: FloatArray  # half-width at the surface (mm)

    def _radial(self, u: FloatArray) -> FloatArray:
        """Surface radius factor along unit directions ``u`` (..., 3) of the normalised frame."""
        if len(self.lobe_amps) == 0:
            return np.ones(u.shape[:-1])
        bumps = np.exp(self.lobe_kappa * (u @ self.lobe_dirs.T - 1.0)) @ self.lobe_amps
        return self.lobe_scale * (1.0 + bumps)

    def sdf(self, gk: FloatArray, gj: FloatArray, gi: FloatArray,
            cell: float) -> tuple[FloatArray, FloatArray]:
        """Approximate signed distance (mm, negative inside) on the grid ``gk x gj x gi``
        (mm, ascending), and each point's ellipsoidal radius (mm; a centred smooth core is
        ``rho < r``). Each spike is evaluated only inside its own bounding box: beyond it
        the spike is farther than a cell and could not change the occupancy."""
        p = np.stack(np.meshgrid(gk, gj, gi, indexing="ij"), axis=-1)
        q = (p @ self.rotation) / self.axes
        rho = np.sqrt(np.sum(q * q, axis=-1))
        u = q / np.maximum(rho, 1e-9)[..., None]
        d = rho - self.radius * self._radial(u)
        for s, axis in enumerate(self.spike_dirs):
            t0, ts, t1, w0 = (self.spike_t0[s], self.spike_ts[s], self.spike_t1[s],
                              self.spike_w0[s])
            ends = np.stack([t0 * axis, t1 * axis])
            lo, hi = ends.min(axis=0) - w0 - cell, ends.max(axis=0) + w0 + cell
            box = tuple(slice(int(np.searchsorted(g, lo[a])), int(np.searchsorted(g, hi[a])))
                        for a, g in enumerate((gk, gj, gi)))
            pb = p[box]
            t = pb @ axis
            perp = np.sqrt(np.maximum(np.sum(pb * pb, axis=-1) - t * t, 0.0))
            # Full width inside the body, tapering linearly to 30 % at the tip.
            width = w0 * (1.0 - 0.7 * np.clip((t - ts) / (t1 - ts), 0.0, 1.0))
            spike = np.where((t >= t0) & (t <= t1), perp - width, np.inf)
            d[box] = np.minimum(d[box], spike)
        return d, rho

    def extent_mm(self) -> float:
        """A radius (mm) that contains the whole shape."""
        body = self.radius * float(self.axes.max()) * float(self._radial(_sphere_dirs()).max())
        spikes = float((self.spike_t1 + self.spike_w0).max()) if len(self.spike_t1) else 0.0
        return max(1.05 * body, spikes)


def _sphere_dirs(n: int = 1500) -> FloatArray:
    """Quasi-uniform unit vectors (Fibonacci sphere): deterministic quadrature points."""
    idx = np.arange(n) + 0.5
    z = 1.0 - 2.0 * idx / n
    phi = math.pi * (3.0 - math.sqrt(5.0)) * idx
    r = np.sqrt(1.0 - z * z)
    return np.stack([z, r * np.cos(phi), r * np.sin(phi)], axis=-1)


def _random_rotation(rng: np.random.Generator) -> FloatArray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return np.asarray(q * np.sign(np.diag(r)))


def _unit_vectors(rng: np.random.Generator, n: int) -> FloatArray:
    v = rng.standard_normal((n, 3))
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True))


def _make_shape(spec: NoduleSpec, rng: np.random.Generator) -> _Shape:
    radius = spec.diameter_mm / 2.0
    rotation = _random_rotation(rng)
    e = spec.elongation
    axes = np.array([e ** (2.0 / 3.0), e ** (-1.0 / 3.0), e ** (-1.0 / 3.0)])
    empty = np.zeros(0)
    lobe_dirs, lobe_amps, kappa, scale = np.zeros((0, 3)), empty, 0.0, 1.0
    if spec.margin == "lobulated":
        n = int(rng.integers(4, 9))
        lobe_dirs = _unit_vectors(rng, n)
        lobe_amps = rng.uniform(0.2, 0.35, n)
        kappa = float(rng.uniform(6.0, 10.0))
        u = _sphere_dirs()
        radial = 1.0 + np.exp(kappa * (u @ lobe_dirs.T - 1.0)) @ lobe_amps
        # The volume of a star-shaped body is the sphere mean of r^3 (times 4/3 pi).
        scale = float(np.mean(radial**3) ** (-1.0 / 3.0))
    shape = _Shape(radius, rotation, axes, lobe_dirs, lobe_amps, kappa, scale,
                   np.zeros((0, 3)), empty, empty, empty, empty)
    if spec.margin != "spiculated":
        return shape
    m = int(rng.integers(8, 19))
    dirs = _unit_vectors(rng, m)
    q = (dirs @ rotation) / axes
    qn = np.linalg.norm(q, axis=1)
    ts = radius * shape._radial(q / qn[:, None]) / qn  # where each spike axis leaves the body
    # Strands a few mm to ~1.5 cm long, ~1.5-2.5 mm thick at the base (thinner on small
    # nodules), so that they survive the PSF and the slice box instead of blurring away.
    length = np.minimum(rng.uniform(0.6, 1.3, m) * radius + 2.0, 14.0)
    w0 = np.minimum(rng.uniform(0.7, 1.2, m), 0.3 * radius)
    return _Shape(radius, rotation, axes, lobe_dirs, lobe_amps, kappa, scale,
                  dirs, 0.5 * ts, ts, ts + length, w0)


# ---------------------------------------------------------------------------------------
# Scanner footprint


def _footprint_cdf(x: FloatArray, width: float, sigma: float) -> FloatArray:
    """CDF of a box of ``width`` convolved with a Gaussian of ``sigma`` (0: pure box)."""

    def ramp(u: FloatArray) -> FloatArray:  # integral of the Gaussian CDF
        if sigma <= 0.0:
            return np.maximum(u, 0.0)
        z = u / sigma
        return np.asarray(u * special.ndtr(z) + sigma * np.exp(-0.5 * z * z)
                          / math.sqrt(2.0 * math.pi))

    return (ramp(x + width / 2.0) - ramp(x - width / 2.0)) / width


def _axis_operator(out_mm: FloatArray, fine_mm: FloatArray, cell: float, width: float,
                   sigma: float) -> FloatArray:
    """Weights (out, fine): the footprint integrated exactly over each fine cell."""
    d = fine_mm[None, :] - out_mm[:, None]
    return _footprint_cdf(d + cell / 2.0, width, sigma) - _footprint_cdf(d - cell / 2.0,
                                                                          width, sigma)


# ---------------------------------------------------------------------------------------
# Insertion


def _fine_step(spec: NoduleSpec, spacing: FloatArray) -> float:
    """Fine-grid step: ~24 cells across the nodule, and at most half the finest pixel."""
    return float(min(np.clip(spec.diameter_mm / 24.0, 0.1, 0.35), spacing.min() / 2.0))


def _local_noise_std(bg: FloatArray, lung: BoolArray) -> float:
    """Robust noise level of the lung around the nodule (MAD of the lung voxels)."""
    values = bg[lung]
    if values.size < 50:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def insert_nodule(volume_hu: npt.NDArray[np.floating], spacing_kji: Triple,
                  centre_kji: Triple, spec: NoduleSpec, rng: np.random.Generator, *,
                  slice_thickness_mm: float | None = None, psf_sigma_mm: float = 0.6,
                  noise_std_hu: float | None = None, lung_below_hu: float = LUNG_BELOW_HU,
                  affine: FloatArray | None = None) -> Insertion:
    """Render ``spec`` at ``centre_kji`` (float voxel indices) into a crop of ``volume_hu``.

    ``slice_thickness_mm`` is the reconstructed thickness (default: the k spacing).
    ``noise_std_hu``: texture noise level; None estimates it from the lung around the
    nodule, 0 disables it. The volume itself is not modified: see ``Insertion.paste``.
    """
    if volume_hu.ndim != 3:
        raise ValueError(f"expected a [k, j, i] volume, got shape {volume_hu.shape}")
    spacing = np.asarray(spacing_kji, dtype=np.float64)
    centre = np.asarray(centre_kji, dtype=np.float64)
    thickness = float(spacing[0] if slice_thickness_mm is None else slice_thickness_mm)
    if np.any(spacing <= 0) or thickness <= 0 or psf_sigma_mm < 0:
        raise ValueError("spacing, slice thickness and PSF must be positive")
    shape = _make_shape(spec, rng)
    widths = (thickness, float(spacing[1]), float(spacing[2]))
    sigmas = (0.0, psf_sigma_mm, psf_sigma_mm)

    # Crop: every voxel whose footprint can reach the shape.
    extent = shape.extent_mm()
    lo, hi = [], []
    for ax in range(3):
        reach = extent + widths[ax] / 2.0 + 4.0 * sigmas[ax]
        lo.append(max(0, math.floor(centre[ax] - reach / spacing[ax])))
        hi.append(min(volume_hu.shape[ax], math.ceil(centre[ax] + reach / spacing[ax]) + 1))
    if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
        raise ValueError(f"nodule centre {tuple(centre)} is outside the volume")

    # Fine grid in mm around the centre and the three footprint operators.
    step = _fine_step(spec, spacing)
    n_half = math.ceil(extent / step)
    fine = np.arange(-n_half, n_half + 1, dtype=np.float64) * step
    ops = [_axis_operator((np.arange(lo[ax], hi[ax]) - centre[ax]) * spacing[ax], fine,
                          step, widths[ax], sigmas[ax]) for ax in range(3)]
    # Only fine cells that reach the crop matter (a nodule clipped by the volume edge).
    keep = [np.flatnonzero(op.any(axis=0)) for op in ops]
    ops = [op[:, kp] for op, kp in zip(ops, keep, strict=True)]
    gk, gj, gi = (fine[kp] for kp in keep)

    core_scale = spec.solid_fraction if spec.kind == "part_solid" else 0.0
    crop_shape = tuple(h - lo_ for lo_, h in zip(lo, hi, strict=True))
    a_body = np.zeros(crop_shape)
    a_core = np.zeros(crop_shape)
    slab = max(1, 1_000_000 // max(1, len(gj) * len(gi)))  # bounds the memory
    for s0 in range(0, len(gk), slab):
        zs = gk[s0:s0 + slab]
        sdf, rho = shape.sdf(zs, gj, gi, step)
        a_body += _separable(np.clip(0.5 - sdf / step, 0.0, 1.0), ops, s0, len(zs))
        if core_scale > 0:
            # The solid core: the smooth ellipsoid scaled down, same orientation.
            core = np.clip(0.5 - (rho - core_scale * shape.radius) / step, 0.0, 1.0)
            a_core += _separable(core, ops, s0, len(zs))
    a_body = np.clip(a_body, 0.0, 1.0)
    a_core = np.minimum(np.clip(a_core, 0.0, 1.0), a_body)

    sl = tuple(slice(lo_, h) for lo_, h in zip(lo, hi, strict=True))
    bg = np.asarray(volume_hu[sl], dtype=np.float64)
    gate = bg < lung_below_hu
    body_hu = spec.body_hu
    delta = a_body * (body_hu - bg) + a_core * (spec.core_hu - body_hu)
    sigma_noise = _local_noise_std(bg, gate) if noise_std_hu is None else noise_std_hu
    if sigma_noise > 0:
        white = rng.standard_normal(crop_shape)
        texture = ndimage.gaussian_filter(white, sigma=(0.0, 0.6, 0.6), mode="reflect")
        texture *= sigma_noise / max(float(texture.std()), 1e-9)
        delta += np.sqrt(a_body * (2.0 - a_body)) * texture
    out = np.where(gate, bg + delta, bg).astype(np.float32)

    drawn = (a_body > 0.5) & gate
    # A vessel inside the nodule is kept in the image but is still part of the nodule.
    mask = ndimage.binary_fill_holes(drawn) & (a_body > 0.5)
    lps: Triple | None = None
    if affine is not None:
        v = np.asarray(affine, dtype=np.float64) @ np.append(centre, 1.0)
        lps = (float(v[0]), float(v[1]), float(v[2]))
    record = NoduleRecord(
        centre_kji=(float(centre[0]), float(centre[1]), float(centre[2])),
        centre_lps_mm=lps, diameter_mm=spec.diameter_mm, kind=spec.kind, margin=spec.margin,
        context=spec.context, body_hu=body_hu, solid_diameter_mm=spec.solid_diameter_mm,
        core_hu=spec.core_hu if spec.kind == "part_solid" else None,
        bbox_kji=((lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])), mask=np.asarray(mask))
    return Insertion(crop=out, record=record)


def _separable(occ: FloatArray, ops: list[FloatArray], s0: int, n: int) -> FloatArray:
    """Footprint-average one fine k-slab (n, fj, fi) onto the crop's voxels."""
    if not occ.any():
        return np.zeros((ops[0].shape[0], ops[1].shape[0], ops[2].shape[0]))
    t = np.tensordot(occ, ops[1], axes=(1, 1))  # (n, fi, oj)
    t = np.tensordot(t, ops[2], axes=(1, 1))  # (n, oj, oi)
    return np.asarray(np.tensordot(ops[0][:, s0:s0 + n], t, axes=(1, 0)))


# ---------------------------------------------------------------------------------------
# Candidate centres


def _block_pool(mask: BoolArray, f: IntTriple, *, all_: bool) -> BoolArray:
    """Pool ``mask`` over f-blocks (all: every voxel set; any: one voxel set), after a
    one-block border of False so that outside the array counts as not set."""
    pads = [(fa, fa + (-n) % fa) for n, fa in zip(mask.shape, f, strict=True)]
    m = np.pad(mask, pads, constant_values=False)
    b = m.reshape(m.shape[0] // f[0], f[0], m.shape[1] // f[1], f[1], m.shape[2] // f[2], f[2])
    return np.asarray(b.all(axis=(1, 3, 5)) if all_ else b.any(axis=(1, 3, 5)))


def _nearest_mm(centre: FloatArray, target: BoolArray, spacing: FloatArray, reach: float,
                *, outside_is_target: bool) -> float:
    """Exact distance (mm) from ``centre`` (float k, j, i) to the nearest voxel centre of
    ``target`` within ``reach`` mm (inf beyond). With ``outside_is_target`` the voxels just
    outside the array count too."""
    lo = np.maximum(np.floor(centre - reach / spacing).astype(int), 0)
    hi = np.minimum(np.ceil(centre + reach / spacing).astype(int) + 1, target.shape)
    box = target[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    best = math.inf
    hits = np.argwhere(box)
    if len(hits):
        best = float(np.sqrt((((hits + lo - centre) * spacing) ** 2).sum(axis=1).min()))
    if outside_is_target:
        # The nearest outside voxel along each axis is the one just past either end.
        edge = np.minimum(centre + 1.0, np.array(target.shape) - centre) * spacing
        best = min(best, float(edge.min()))
    return best if best <= reach else math.inf


def candidate_centres(lung_mask: BoolArray, spacing_kji: Triple, radius_mm: float,
                      context: Context, rng: np.random.Generator, *,
                      volume_hu: npt.NDArray[np.floating] | None = None, count: int = 32,
                      step_mm: float = 2.0,
                      vessel_above_hu: float = VESSEL_ABOVE_HU) -> FloatArray:
    """Up to ``count`` nodule centres (rows of float k, j, i voxel indices) for ``context``.

    With d the distance (mm) from the centre to the nearest voxel centre outside
    ``lung_mask`` (outside the array counts as outside the lung), R the radius and
    band = ``contact_band_mm(R)``: isolated: d >= R + 3 mm; juxtapleural: R - band <= d <= R
    (the nodule reaches the pleura); juxtavascular: the same on the distance to the nearest
    lung voxel above ``vessel_above_hu`` (needs ``volume_hu``; the lung mask must include its
    vessels), and d >= R + band. Candidates come from EDTs on ~``step_mm`` blocks (fast on a
    whole CT), widened by the blocks' worst-case error; each one drawn is then checked
    exactly at full resolution, so the guarantees hold for every centre returned.
    """
    spacing = np.asarray(spacing_kji, dtype=np.float64)
    band = contact_band_mm(radius_mm)
    f = [max(1, round(step_mm / s)) for s in spacing]
    fb: IntTriple = (f[0], f[1], f[2])
    fa = np.array(fb, dtype=np.float64)
    # Every voxel lies within err of its block's centre: block distances are within err.
    err = 0.5 * float(np.linalg.norm((fa - 1.0) * spacing))
    lung_full = np.asarray(lung_mask, dtype=bool)
    nz = np.nonzero(lung_full.any(axis=(1, 2)))[0], np.nonzero(lung_full.any(axis=(0, 2)))[0], \
        np.nonzero(lung_full.any(axis=(0, 1)))[0]
    if any(len(a) == 0 for a in nz):
        return np.zeros((0, 3))
    lo = np.array([int(a[0]) for a in nz])
    hi = np.array([int(a[-1]) + 1 for a in nz])
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    lung = _block_pool(lung_full[sl], fb, all_=True)
    block_mm = spacing * fa
    d_pleura = ndimage.distance_transform_edt(lung, sampling=block_mm)

    vessel_full: BoolArray | None = None
    if context == "isolated":
        coarse = d_pleura >= radius_mm + ISOLATED_CLEARANCE_MM - err
    elif context == "juxtapleural":
        coarse = lung & (d_pleura >= radius_mm - band - err) & (d_pleura <= radius_mm + err)
    elif context == "juxtavascular":
        if volume_hu is None:
            raise ValueError("juxtavascular centres need the volume's HU")
        vessel_full = lung_full & (np.asarray(volume_hu) > vessel_above_hu)
        d_vessel = ndimage.distance_transform_edt(
            ~_block_pool(vessel_full[sl], fb, all_=False), sampling=block_mm)
        coarse = (lung & (d_vessel >= radius_mm - band - err) & (d_vessel <= radius_mm + err)
                  & (d_pleura >= radius_mm + band - err))
    else:
        raise ValueError(f"unknown context {context!r}")

    blocks = np.argwhere(coarse)
    # Block b covers voxels lo - f + b f ... + f - 1 (the first block is the False border).
    centres = lo - fa + blocks * fa + (fa - 1.0) / 2.0
    outside = ~lung_full
    found: list[FloatArray] = []
    for c in centres[rng.permutation(len(centres))[:50 * count]]:
        if context == "isolated":
            ok = math.isinf(_nearest_mm(c, outside, spacing, radius_mm + ISOLATED_CLEARANCE_MM,
                                        outside_is_target=True))
        else:
            target, reach = ((outside, radius_mm) if vessel_full is None
                             else (vessel_full, radius_mm))
            d = _nearest_mm(c, target, spacing, reach, outside_is_target=vessel_full is None)
            ok = radius_mm - band <= d <= radius_mm
            if ok and vessel_full is not None:
                ok = math.isinf(_nearest_mm(c, outside, spacing, radius_mm + band,
                                            outside_is_target=True))
        if ok:
            found.append(c)
            if len(found) == count:
                break
    return np.array(found, dtype=np.float64).reshape(-1, 3)
