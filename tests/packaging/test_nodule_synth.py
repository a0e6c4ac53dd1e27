"""Synthetic nodule insertion (packaging/nodules/nodule_synth.py), measured on the image.

Every size and HU is measured from the HU array the way a reader or a script would, never
read back from the renderer's internals. Expected values come from physics:

- Blur conserves the integral, so the volume from the integrated excess HU,
  sum(out - bg) / (hu - bg) * voxel volume, equals the requested sphere's at every spacing
  and slice thickness; only the background noise summed over the region limits it.
- The core HU is what the slice-profile model predicts (a box of the slice thickness along k,
  the pixel box plus the Gaussian PSF in-plane), computed here independently by Monte Carlo
  over that footprint: thin nodules in thick slices are diluted, and by exactly that much.
- The half-way-threshold volume is the requested one only for a nodule large against the
  blur: the 50 % surface of a blurred sphere moves inward by sigma^2 / R (mean curvature).
"""

from __future__ import annotations

import math

import nodule_synth as ns
import numpy as np
import pytest

BG_HU = -850.0
NOISE_HU = 20.0
PSF_MM = 0.6  # the insertion's default in-plane PSF sigma
# (spacing kji mm, reconstructed slice thickness mm)
SCANS = [((1.0, 0.7, 0.7), 1.0), ((2.5, 0.7, 0.7), 2.5), ((5.0, 0.6, 0.6), 5.0),
         ((1.25, 1.0, 1.0), 2.5)]
SIZES_MM = [4.0, 8.0, 15.0, 25.0]
# Off the voxel grid in every axis, but close enough to a slice that the 0.5 R core region
# of a 4 mm nodule in 5 mm slices still holds voxels.
OFFSET = np.array([0.1, 0.3, -0.2])


def _lung(shape: tuple[int, int, int], seed: int, noise: float = NOISE_HU) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (BG_HU + noise * rng.standard_normal(shape)).astype(np.float32)


def _mm_from_centre(shape: tuple[int, ...], centre: np.ndarray,
                    spacing: tuple[float, float, float]) -> np.ndarray:
    """(k, j, i, 3) offsets in mm of every voxel centre from ``centre``."""
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing,
                                                                      strict=True)],
                        indexing="ij")
    return np.stack(grids, axis=-1)


def _footprint_samples(spacing: tuple[float, float, float], thickness: float,
                       n: int = 6000) -> np.ndarray:
    """Points drawn from the scanner footprint of one voxel (the slice-profile model)."""
    rng = np.random.default_rng(1234)
    return np.stack([rng.uniform(-thickness / 2, thickness / 2, n),
                     rng.uniform(-spacing[1] / 2, spacing[1] / 2, n)
                     + rng.normal(0.0, PSF_MM, n),
                     rng.uniform(-spacing[2] / 2, spacing[2] / 2, n)
                     + rng.normal(0.0, PSF_MM, n)], axis=-1)


def _predicted_fill(points_mm: np.ndarray, radius: float, eps: np.ndarray) -> np.ndarray:
    """Fraction of each voxel's footprint inside a sphere of ``radius`` at the origin."""
    reach = float(np.linalg.norm(eps, axis=1).max())
    r = np.linalg.norm(points_mm, axis=1)
    fill = np.where(r + reach < radius, 1.0, 0.0)
    edge = np.flatnonzero((r + reach >= radius) & (r - reach < radius))
    for chunk in np.array_split(edge, max(1, len(edge) // 200)):
        if len(chunk):
            inside = np.linalg.norm(points_mm[chunk, None, :] + eps[None], axis=2) < radius
            fill[chunk] = inside.mean(axis=1)
    return fill


def _insert(vol: np.ndarray, spacing: tuple[float, float, float], thickness: float,
            centre: np.ndarray, spec: ns.NoduleSpec, seed: int = 7,
            **kw: float | None) -> tuple[np.ndarray, ns.Insertion]:
    out = vol.copy()
    ins = ns.insert_nodule(vol, spacing, (float(centre[0]), float(centre[1]),
                                          float(centre[2])),
                           spec, np.random.default_rng(seed), slice_thickness_mm=thickness,
                           **kw)  # type: ignore[arg-type]
    ins.paste(out)
    return out, ins


def _volume_shape(spacing: tuple[float, float, float], diameter: float) -> tuple[int, ...]:
    return tuple(math.ceil((diameter + 24.0) / s) | 1 for s in spacing)


@pytest.mark.parametrize("spacing,thickness", SCANS, ids=lambda v: str(v))
@pytest.mark.parametrize("diameter", SIZES_MM)
def test_measured_diameter_and_hu_match_the_request(
        spacing: tuple[float, float, float], thickness: float, diameter: float) -> None:
    shape = _volume_shape(spacing, diameter)
    vol = _lung(shape, seed=int(diameter * 10 + thickness * 100))
    centre = (np.array(shape) - 1) / 2 + OFFSET
    hu = 30.0
    out, ins = _insert(vol, spacing, thickness, centre, ns.NoduleSpec(diameter, hu=hu))
    radius = diameter / 2
    contrast = hu - BG_HU
    voxel_mm3 = float(np.prod(spacing))
    rel = _mm_from_centre(shape, centre, spacing)
    dist = np.linalg.norm(rel, axis=-1)

    # 1. Integrated excess HU -> volume -> equivalent-sphere diameter, for every case.
    region = dist <= radius + thickness + 4 * PSF_MM + 2.0
    n_region = int(region.sum())
    volume = float((out[region] - BG_HU).sum()) / contrast * voxel_mm3
    sphere = math.pi / 6 * diameter**3
    noise_mm3 = 5 * NOISE_HU * math.sqrt(n_region) / contrast * voxel_mm3  # 5 sigma
    assert abs(volume - sphere) <= 0.02 * sphere + noise_mm3, (volume, sphere, noise_mm3)

    # 2. Core HU (voxels within R/2 of the centre) = the slice-profile model's prediction.
    core = dist <= 0.5 * radius
    assert core.sum() >= 1
    eps = _footprint_samples(spacing, thickness)
    fill = _predicted_fill(rel[core], radius, eps)
    predicted = BG_HU + float(fill.mean()) * contrast
    measured = float(out[core].mean())
    # Noise inside is texture smoothed by a 0.6-pixel Gaussian in-plane: its mean over N
    # voxels has std ~ sigma * sqrt(4 pi 0.6^2 / N). 4 such sigmas + 1.5 % of the contrast.
    tol = 4 * NOISE_HU * math.sqrt(4 * math.pi * 0.36 / core.sum()) + 0.015 * contrast
    assert abs(measured - predicted) <= tol, (measured, predicted, tol)
    if fill.min() > 0.999:  # thick enough for the slices: the requested HU itself
        assert abs(measured - hu) <= tol

    # 3. Half-way threshold volume: the requested diameter minus the curvature shift, for
    #    nodules large against the blur (R >= 3 sigma of the widest footprint axis).
    var = max(thickness**2 / 12, spacing[1] ** 2 / 12 + PSF_MM**2,
              spacing[2] ** 2 / 12 + PSF_MM**2)
    above = (out > (BG_HU + hu) / 2) & region
    d_thr = (6 / math.pi * above.sum() * voxel_mm3) ** (1 / 3)
    if radius >= 3 * math.sqrt(var):
        shift = 2 * var / radius
        assert diameter - shift - 0.03 * diameter <= d_thr <= diameter + 0.03 * diameter, (
            d_thr, diameter, shift)
    else:  # blurred below its size, never above
        assert d_thr < diameter

    # The record: where it was asked for, and its mask is the drawn nodule.
    rec = ins.record
    assert rec.centre_kji == pytest.approx(tuple(centre))
    assert rec.diameter_mm == diameter and rec.kind == "solid" and rec.margin == "smooth"
    assert rec.solid_diameter_mm == diameter
    assert rec.mask.shape == ins.crop.shape


def _centred(spec: ns.NoduleSpec, spacing: tuple[float, float, float],
                     thickness: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, ns.Insertion]:
    shape = _volume_shape(spacing, spec.diameter_mm)
    vol = _lung(shape, seed=3)
    centre = (np.array(shape) - 1) / 2 + OFFSET
    out, ins = _insert(vol, spacing, thickness, centre, spec)
    return out, _mm_from_centre(shape, centre, spacing), centre, ins


@pytest.mark.parametrize("spacing,thickness", [*SCANS, ((1.25, 0.7, 0.7), 5.0)],
                         ids=lambda v: str(v))
def test_slice_profile_model_holds_without_noise(spacing: tuple[float, float, float],
                                                 thickness: float) -> None:
    """Noise off, a 4 mm nodule: the renderer and the Monte-Carlo footprint agree at every
    voxel (1 % model + Monte-Carlo error), not only on average; the last case is an
    overlapping reconstruction (5 mm slices every 1.25 mm)."""
    shape = _volume_shape(spacing, 4.0)
    vol = np.full(shape, BG_HU, dtype=np.float32)
    centre = (np.array(shape) - 1) / 2 + OFFSET
    out, _ = _insert(vol, spacing, thickness, centre, ns.NoduleSpec(4.0), noise_std_hu=0.0)
    rel = _mm_from_centre(shape, centre, spacing).reshape(-1, 3)
    fill = _predicted_fill(rel, 2.0, _footprint_samples(spacing, thickness, n=20000))
    measured = (out.reshape(-1) - BG_HU) / (30.0 - BG_HU)
    assert np.abs(measured - fill).max() <= 0.01 + 0.02
    if thickness >= 5.0:
        assert fill.max() < 0.9  # 5 mm slices really dilute a 4 mm nodule


def test_ground_glass_and_part_solid_hu() -> None:
    # Ground glass, 15 mm in 2.5 mm slices: the core is the requested -550.
    spacing, thickness = (2.5, 0.7, 0.7), 2.5
    spec = ns.NoduleSpec(15.0, kind="ground_glass")
    out, rel, _, ins = _centred(spec, spacing, thickness)
    dist = np.linalg.norm(rel, axis=-1)
    core = dist <= 0.5 * 7.5
    tol = 4 * NOISE_HU * math.sqrt(4 * math.pi * 0.36 / core.sum()) + 5.0
    assert abs(float(out[core].mean()) + 550.0) <= tol
    assert ins.record.kind == "ground_glass" and ins.record.solid_diameter_mm == 0.0

    # Part-solid, 20 mm with a 30 % solid core (6 mm) of +30 HU in ground glass of -600.
    spacing, thickness = (1.0, 0.7, 0.7), 1.0
    spec = ns.NoduleSpec(20.0, kind="part_solid", hu=-600.0, core_hu=30.0,
                         solid_fraction=0.3)
    out, rel, _, ins = _centred(spec, spacing, thickness)
    dist = np.linalg.norm(rel, axis=-1)
    solid = dist <= 1.5
    rim = (dist >= 5.5) & (dist <= 7.5)
    eps = _footprint_samples(spacing, thickness)
    flat = rel[solid]
    predicted_solid = (BG_HU + _predicted_fill(flat, 10.0, eps).mean() * (-600 - BG_HU)
                       + _predicted_fill(flat, 3.0, eps).mean() * (30 + 600))
    tol_solid = 4 * NOISE_HU * math.sqrt(4 * math.pi * 0.36 / solid.sum()) + 0.015 * 630
    assert abs(float(out[solid].mean()) - predicted_solid) <= tol_solid
    assert predicted_solid > 0.0  # the core really is solid at this size and resolution
    tol_rim = 4 * NOISE_HU * math.sqrt(4 * math.pi * 0.36 / rim.sum()) + 5.0
    assert abs(float(out[rim].mean()) + 600.0) <= tol_rim
    assert ins.record.solid_diameter_mm == pytest.approx(6.0)
    assert ins.record.core_hu == 30.0 and ins.record.body_hu == -600.0


def test_asymmetric_placement_lands_where_asked() -> None:
    """Off-centre in all three axes, anisotropic spacing, an affine: the centroid of the
    change sits at the requested (k, j, i) and the nodule is round in mm, not in voxels."""
    spacing = (2.0, 0.8, 0.6)
    shape = (31, 57, 83)
    vol = np.full(shape, BG_HU, dtype=np.float32)
    centre = np.array([9.37, 35.62, 20.15])
    affine = np.array([[0.0, 0.0, 0.6, -100.0], [0.0, 0.8, 0.0, 50.0],
                       [2.0, 0.0, 0.0, 300.0], [0, 0, 0, 1]])
    out, ins = _insert(vol, spacing, 2.0, centre, ns.NoduleSpec(9.0), noise_std_hu=0.0,
                       affine=affine)  # type: ignore[arg-type]
    change = (out - vol).astype(np.float64)
    assert change.min() >= 0.0 and change.sum() > 0
    idx = np.indices(shape).reshape(3, -1).astype(np.float64)
    w = change.reshape(-1)
    centroid = idx @ w / w.sum()
    assert np.all(np.abs(centroid - centre) <= 0.25), centroid
    # Second moments in mm along k, j, i agree (a swapped spacing would make them differ by
    # a factor of up to 3.3): the extra variance along k is the slice box, T^2/12.
    rel = (idx - centre[:, None]) * np.array(spacing)[:, None]
    var = (rel**2) @ w / w.sum()
    var_true = np.array([var[0] - 4.0 / 12, var[1] - 0.64 / 12 - PSF_MM**2,
                         var[2] - 0.36 / 12 - PSF_MM**2])
    assert np.all(np.abs(var_true / var_true.mean() - 1) < 0.08), var_true
    rec = ins.record
    assert rec.centre_lps_mm == pytest.approx(tuple((affine @ np.append(centre, 1))[:3]))
    # The crop's mask is where the drawn occupancy exceeds a half.
    crop_change = out[rec.slices].astype(np.float64) - BG_HU
    assert np.array_equal(rec.mask, crop_change > 0.5 * (30.0 - BG_HU))


def test_juxtapleural_never_paints_chest_wall() -> None:
    spacing, thickness = (1.25, 0.7, 0.7), 2.5
    shape = (25, 61, 81)
    rng = np.random.default_rng(11)
    vol = (BG_HU + NOISE_HU * rng.standard_normal(shape)).astype(np.float32)
    wall_i = 40  # columns < 40: chest wall (soft tissue), the rest lung
    vol[:, :, :wall_i] = (40.0 + 15 * rng.standard_normal((25, 61, wall_i))).astype(np.float32)
    radius = 5.0
    centre = np.array([12.2, 30.4, wall_i - 0.5 + 3.0 / 0.7])  # 3 mm from the pleura
    out, ins = _insert(vol, spacing, thickness, centre,
                       ns.NoduleSpec(2 * radius, context="juxtapleural"))
    wall = vol > ns.LUNG_BELOW_HU
    assert np.array_equal(out[wall], vol[wall])  # bit for bit
    lung_change = (out - vol)[~wall]
    drawn_mm3 = float(lung_change.sum()) / (30.0 - BG_HU) * float(np.prod(spacing))
    # The lung-side cap of the sphere (the part beyond 3 mm from its centre is in the wall).
    cap = math.pi / 3 * (radius + 3.0) ** 2 * (3 * radius - (radius + 3.0))
    lung_part = math.pi * 4 / 3 * radius**3 - math.pi / 3 * (radius - 3.0) ** 2 * (
        2 * radius + 3.0)
    assert 0.85 * lung_part <= drawn_mm3 <= 1.1 * lung_part, (drawn_mm3, lung_part, cap)
    rec = ins.record
    assert rec.context == "juxtapleural"
    assert not np.any(rec.mask & wall[rec.slices])
    assert rec.mask.sum() > 0


def _compactness(fraction: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Surface area over volume^(2/3) of the nodule's HU fraction image: the area is the
    integral of |grad f| (coarea formula, so no voxel staircase), the volume that of f.
    4.84 for a sphere, larger for any rougher shape of the same volume."""
    voxel = float(np.prod(spacing))
    grad = np.gradient(fraction, *spacing)
    area = float(np.sqrt(sum(g * g for g in grad)).sum()) * voxel
    return area / (float(fraction.sum()) * voxel) ** (2 / 3)


def test_lobulated_and_spiculated_margins_are_rougher_than_smooth() -> None:
    spacing = (0.6, 0.6, 0.6)
    shape = (71, 71, 71)
    vol = np.full(shape, BG_HU, dtype=np.float32)
    centre = np.array([35.2, 34.9, 35.1])
    measured: dict[str, list[float]] = {}
    for margin in ("smooth", "lobulated", "spiculated"):
        for seed in range(3):
            out, _ = _insert(vol, spacing, 0.6, centre,
                             ns.NoduleSpec(16.0, margin=margin),  # type: ignore[arg-type]
                             seed=seed, noise_std_hu=0.0)
            fraction = (out.astype(np.float64) - BG_HU) / (30.0 - BG_HU)
            measured.setdefault(margin, []).append(_compactness(fraction, spacing))
    smooth = max(measured["smooth"])
    assert abs(smooth / 4.836 - 1) < 0.01  # (36 pi)^(1/3): the smooth one is a sphere
    assert min(measured["lobulated"]) > 1.015 * smooth, measured
    assert min(measured["spiculated"]) > 1.03 * smooth, measured


def test_same_seed_same_bits_other_seed_other_nodule() -> None:
    spacing, thickness = (1.0, 0.7, 0.7), 1.25
    vol = _lung((41, 61, 61), seed=5)
    spec = ns.NoduleSpec(12.0, kind="part_solid", margin="spiculated", elongation=1.25)
    centre = (20.3, 30.1, 29.8)
    a = ns.insert_nodule(vol, spacing, centre, spec, np.random.default_rng(42),
                         slice_thickness_mm=thickness)
    b = ns.insert_nodule(vol, spacing, centre, spec, np.random.default_rng(42),
                         slice_thickness_mm=thickness)
    c = ns.insert_nodule(vol, spacing, centre, spec, np.random.default_rng(43),
                         slice_thickness_mm=thickness)
    assert a.crop.tobytes() == b.crop.tobytes()
    assert np.array_equal(a.record.mask, b.record.mask)
    assert a.record.bbox_kji == b.record.bbox_kji
    assert a.crop.shape != c.crop.shape or not np.array_equal(a.crop, c.crop)
    assert a.crop.shape != c.crop.shape or not np.array_equal(a.record.mask, c.record.mask)
    # The input volume is never modified.
    assert np.array_equal(vol, _lung((41, 61, 61), seed=5))


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        ns.NoduleSpec(2.0)
    with pytest.raises(ValueError):
        ns.NoduleSpec(31.0)
    with pytest.raises(ValueError):
        ns.NoduleSpec(10.0, elongation=1.6)
    with pytest.raises(ValueError):
        ns.NoduleSpec(10.0, kind="cavitary")  # type: ignore[arg-type]
    vol = np.full((10, 10, 10), BG_HU, dtype=np.float32)
    with pytest.raises(ValueError):
        ns.insert_nodule(vol, (1.0, 1.0, 1.0), (50.0, 5.0, 5.0), ns.NoduleSpec(5.0),
                         np.random.default_rng(0))


# ---------------------------------------------------------------------------------------
# Candidate centres


def _phantom_lung() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """An ellipsoidal lung (not centred, unequal axes) with one oblique vessel through it."""
    spacing = (2.5, 0.8, 0.7)
    shape = (40, 110, 120)
    mm = _mm_from_centre(shape, np.array([21.0, 52.0, 63.0]), spacing)
    lung = ((mm[..., 0] / 45.0) ** 2 + (mm[..., 1] / 38.0) ** 2
            + (mm[..., 2] / 34.0) ** 2) <= 1.0
    hu = np.where(lung, BG_HU, 40.0).astype(np.float32)
    axis = np.array([0.3, 0.8, -0.5])
    axis /= np.linalg.norm(axis)
    along = mm @ axis
    perp = np.linalg.norm(mm - along[..., None] * axis, axis=-1)
    hu[lung & (perp <= 1.5)] = 40.0  # the vessel stays inside the (filled) lung mask
    return lung, hu, spacing


def _nearest_mm(points_kji: np.ndarray, targets: np.ndarray,
                spacing: tuple[float, float, float]) -> np.ndarray:
    """Exact distance (mm) from each point to the nearest voxel centre in ``targets``."""
    tgt = np.argwhere(targets).astype(np.float64) * np.array(spacing)
    pts = points_kji * np.array(spacing)
    return np.array([np.sqrt(((tgt - p) ** 2).sum(axis=1).min()) for p in pts])


@pytest.mark.parametrize("radius", [2.0, 6.0])
def test_candidate_centres_respect_their_distances(radius: float) -> None:
    lung, hu, spacing = _phantom_lung()
    band = ns.contact_band_mm(radius)
    rng = np.random.default_rng(0)
    iso = ns.candidate_centres(lung, spacing, radius, "isolated", rng, count=24)
    jp = ns.candidate_centres(lung, spacing, radius, "juxtapleural", rng, count=24)
    jv = ns.candidate_centres(lung, spacing, radius, "juxtavascular", rng, volume_hu=hu,
                              count=24)
    for found in (iso, jp, jv):
        assert found.shape == (24, 3)
    d_iso = _nearest_mm(iso, ~lung, spacing)
    assert d_iso.min() >= radius + ns.ISOLATED_CLEARANCE_MM, d_iso
    d_jp = _nearest_mm(jp, ~lung, spacing)  # the nodule reaches the pleura
    assert np.all((d_jp >= radius - band) & (d_jp <= radius)), (d_jp, radius, band)
    vessel = lung & (hu > ns.VESSEL_ABOVE_HU)
    d_v = _nearest_mm(jv, vessel, spacing)  # ... or the vessel
    assert np.all((d_v >= radius - band) & (d_v <= radius)), (d_v, radius, band)
    assert _nearest_mm(jv, ~lung, spacing).min() >= radius + band
    # Spread over the lung, not one corner: centres span a good part of it along k.
    assert np.ptp(jp[:, 0]) * spacing[0] > 20.0
    # Deterministic for one generator state.
    again = ns.candidate_centres(lung, spacing, radius, "juxtapleural",
                                 np.random.default_rng(0), count=24)
    first = ns.candidate_centres(lung, spacing, radius, "juxtapleural",
                                 np.random.default_rng(0), count=24)
    assert np.array_equal(again, first)


# ---------------------------------------------------------------------------------------
# A real chest CT (skipped without ../shared)


def _crude_lung_mask(hu: np.ndarray) -> np.ndarray:
    """Air below -400 HU not connected to the in-plane border, holes filled slice by slice
    (so vessels are inside): enough lung for placing test nodules."""
    from scipy import ndimage

    air = hu < -400
    lab, _ = ndimage.label(air)
    border = np.unique(np.concatenate([lab[:, 0].ravel(), lab[:, -1].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    sizes = np.bincount(lab.ravel())
    sizes[border] = 0
    sizes[0] = 0
    lung = (sizes > 0.002 * air.size)[lab]
    return np.stack([ndimage.binary_fill_holes(s) for s in lung])


@pytest.mark.shared
def test_on_a_real_chest_ct(shared_data) -> None:  # type: ignore[no-untyped-def]
    from dicomio.load import read_volume

    folder = shared_data / "ct" / "LIDC-IDRI-0001"
    if not folder.is_dir():
        pytest.skip("../shared/data/ct/LIDC-IDRI-0001 is absent")
    volume = read_volume(sorted(folder.glob("*.dcm")))
    hu = np.asarray(volume.array[40:100], dtype=np.float32)  # mid-chest, both lungs
    sk, sj, si = (float(s) for s in volume.spacing_mm)
    spacing = (sk, sj, si)
    thickness = float(volume.metadata.get("slice_thickness") or spacing[0])
    lung = _crude_lung_mask(hu)
    rng = np.random.default_rng(17)

    # Isolated 12 mm solid nodule: volume and core HU measured against the real background.
    radius = 6.0
    centres = ns.candidate_centres(lung, spacing, radius, "isolated", rng, count=3)
    assert len(centres) == 3
    for centre in centres:
        out, ins = _insert(hu, spacing, thickness, centre, ns.NoduleSpec(2 * radius))
        sl = ins.record.slices
        bg, new = hu[sl].astype(np.float64), out[sl].astype(np.float64)
        drawn = bg < ns.LUNG_BELOW_HU  # vessels crossing the nodule stay as they are
        rel = _mm_from_centre(bg.shape, centre - np.array([s.start for s in sl]), spacing)
        dist = np.linalg.norm(rel, axis=-1)
        core = (dist <= 0.5 * radius) & drawn
        noise = float(np.std(bg[drawn & (dist > radius + 4)]))
        tol = 4 * noise * math.sqrt(4 * math.pi * 0.36 / core.sum()) + 0.015 * 880
        assert abs(float(new[core].mean()) - 30.0) <= tol, (new[core].mean(), tol)
        fraction = float(((new - bg)[drawn] / (30.0 - bg[drawn])).sum()) * float(
            np.prod(spacing))
        sphere = math.pi / 6 * (2 * radius) ** 3
        lung_share = float(drawn[dist <= radius].mean())  # what vessels leave to draw on
        assert abs(fraction - sphere * lung_share) <= 0.1 * sphere, (fraction, sphere)

    # Juxtapleural 10 mm nodules: the chest wall is left bit for bit.
    radius = 5.0
    centres = ns.candidate_centres(lung, spacing, radius, "juxtapleural", rng, count=3)
    assert len(centres) == 3
    for centre in centres:
        spec = ns.NoduleSpec(2 * radius, margin="lobulated", context="juxtapleural")
        out, ins = _insert(hu, spacing, thickness, centre, spec)
        wall = hu > ns.LUNG_BELOW_HU
        assert np.array_equal(out[wall], hu[wall])
        assert ins.record.mask.sum() > 0
        assert not np.any(ins.record.mask & wall[ins.record.slices])


def test_paste_into_integer_hu_rounds() -> None:
    vol = np.full((21, 31, 31), -850, dtype=np.int16)
    ins = ns.insert_nodule(vol, (1.0, 0.7, 0.7), (10.0, 15.0, 15.0), ns.NoduleSpec(6.0),
                           np.random.default_rng(0))
    ins.paste(vol)
    assert np.array_equal(vol[ins.record.slices], np.rint(ins.crop).astype(np.int16))
