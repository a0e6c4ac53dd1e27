"""Training patches for Lucida's lung nodule detector: real chest CT, synthetic nodules.

    .venv/bin/python packaging/nodules/make_dataset.py --shared ../shared --out DIR \
        [--patches 3000] [--seed 17]

Backgrounds are the real chest CT series in ``../shared/data/ct`` (LIDC-IDRI-0001, whose
four-reader nodule is also a real positive, and the RICORD COVID series, whose ground glass
is the classic false positive). Each patch is a 64³ cube at 1 mm, resampled from the
series with the same SimpleITK linear resampling the engine uses for the pack's model grid,
through a randomly rotated and flipped patch frame, and normalised with the pack's HU
window. Patch kinds (fractions in ``MIX``): synthetic nodules (``nodule_synth``) of every
kind, margin and context; the real LIDC nodule; and negatives centred on lung, vessels,
pleura and ground glass. Nothing is inserted near any LIDC reader's mark. The lung mask is
the bundled ``lucida-lung-mask`` pack run through the engine, as the detector will use it.

With ``--mined SITES.json`` (mine.py's output) it writes ``mined.npz`` instead: hard
negatives, augmented patches centred where a first model marked something that is no
nodule. Writes ``patches.npz`` (``image`` float16 [N, 64, 64, 64] in [0, 1], ``mask`` uint8
[N, 64, 64, 64], ``kind`` and ``source`` per patch) and ``dataset.json`` (what was made,
per kind, the seed and the inputs' hashes). Deterministic for a seed: the same inputs give
the same bytes. Never write it into the repository: it is derived from ``../shared``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from nodule_synth import NoduleSpec, candidate_centres, insert_nodule  # noqa: E402

PATCH = 64  # voxels per axis of a training patch
SPACING_MM = 1.0  # the pack's model grid (isotropic)
HU_LOW, HU_HIGH = -1000.0, 400.0  # the pack's hu_window normalisation
CROP_MM = PATCH * SPACING_MM * math.sqrt(3) / 2 + 4.0  # half-size of the native crop
SERIES = ("LIDC-IDRI-0001", "MIDRC-RICORD-1A-419639-000082")
# Fractions of the patches by kind; positives about half, as in most detector training.
MIX: dict[str, float] = {
    "synthetic": 0.50, "real": 0.04, "lung": 0.16, "vessel": 0.12, "pleura": 0.10,
    "ground_glass": 0.08,
}
KINDS = (("solid", 0.55), ("part_solid", 0.2), ("ground_glass", 0.25))
MARGINS = (("smooth", 0.4), ("lobulated", 0.35), ("spiculated", 0.25))
CONTEXTS = (("isolated", 0.45), ("juxtapleural", 0.3), ("juxtavascular", 0.25))
KEEP_OFF_MARKS_MM = 12.0  # no synthetic nodule or negative centre this near a reader mark
# Candidate centres are found once per context and radius bin (an EDT each, ~0.7 s): a
# nodule of radius r takes the smallest bin >= r.
RADIUS_BINS_MM = (1.5, 2.5, 4.0, 6.0, 9.0, 12.0, 15.0)


@dataclass
class Background:
    name: str
    hu: npt.NDArray[np.float32]  # [k, j, i]
    affine: npt.NDArray[np.float64]  # (k, j, i) index -> LPS mm
    spacing: tuple[float, float, float]  # k, j, i
    thickness: float
    lung: npt.NDArray[np.bool_]
    marks_kji: npt.NDArray[np.float64]  # reader marks (rows k, j, i), kept clear
    real: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]] = field(
        default_factory=list)  # (centre kji, consensus mask) of real nodules
    pools: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    centres: dict[tuple[str, float], npt.NDArray[np.float64]] = field(default_factory=dict)


def _choice(rng: np.random.Generator, table: Sequence[tuple[str, float]]) -> str:
    names, weights = zip(*table, strict=True)
    w = np.asarray(weights, dtype=np.float64)
    return str(names[int(rng.choice(len(names), p=w / w.sum()))])


def _load_series(folder: Path) -> tuple[Any, list[Any], Any]:
    from dicomio.group import group_series
    from dicomio.lidc_xml import is_lidc_xml, read_lidc_xml
    from dicomio.load import read_volume
    from dicomio.scan import scan_paths

    groups = [g for g in group_series(scan_paths([folder]).instances)
              if g.object_kind.is_image and not g.is_localizer]
    group = max(groups, key=lambda g: len(g.instances))
    volume = read_volume([inst.source for inst in group.instances])
    xmls = [p for p in sorted(folder.rglob("*.xml")) if is_lidc_xml(p)]
    read = read_lidc_xml(xmls[0]) if xmls else None
    return volume, list(group.instances), read


def _lung_mask(volume: Any) -> npt.NDArray[np.bool_]:
    from inference.pipeline import run

    result = run(volume, REPO / "resources" / "models" / "lucida-lung-mask", threads=2,
                 providers="cpu")
    return np.asarray(result.label_map.array > 0)


def load_background(folder: Path, rng: np.random.Generator) -> Background:
    volume, instances, read = _load_series(folder)
    hu = np.ascontiguousarray(volume.array, dtype=np.float32)
    affine = np.asarray(volume.affine, dtype=np.float64)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    thick = volume.metadata.get("slice_thickness") or spacing[0]
    bg = Background(folder.name, hu, affine, (spacing[0], spacing[1], spacing[2]),
                    float(thick), _lung_mask(volume), np.zeros((0, 3)))
    if read is not None:
        from dicomio.lidc_xml import SliceGeometry, lidc_reference, reader_marks

        geo = SliceGeometry.from_volume(volume, instances)
        inv = np.linalg.inv(affine)
        marks = reader_marks(read, geo)
        bg.marks_kji = np.array([(inv @ np.r_[m.centroid_lps, 1.0])[:3] for m in marks])
        for nod in lidc_reference(read, geo).nodules:
            votes = np.zeros(hu.shape, dtype=np.uint8)
            for m in nod.marks:
                k, j, i = np.asarray(m.voxels_kji).T
                votes[k, j, i] += 1
            consensus = votes >= 2  # LIDC's usual 50 % agreement of four readers
            centre = np.argwhere(consensus).mean(axis=0)
            bg.real.append((centre, consensus))
    _negative_pools(bg)
    for context, _ in CONTEXTS:
        for r in RADIUS_BINS_MM:
            found = candidate_centres(bg.lung, bg.spacing, r, context,  # type: ignore[arg-type]
                                      rng, volume_hu=bg.hu, count=2000)
            keep = _far_from_marks(bg, np.round(found).astype(np.int64)) if len(found) \
                else np.zeros((0, 3), dtype=np.int64)
            bg.centres[(context, r)] = keep.astype(np.float64)
    return bg


def _far_from_marks(bg: Background, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if not len(bg.marks_kji) or not len(idx):
        return idx
    mm = idx[:, None, :] * np.asarray(bg.spacing) - bg.marks_kji[None] * np.asarray(bg.spacing)
    near = (np.linalg.norm(mm, axis=2) < KEEP_OFF_MARKS_MM).any(axis=1)
    return idx[~near]


def _negative_pools(bg: Background) -> None:
    """Candidate centres (k, j, i) of each negative kind, on a coarse lattice."""
    from scipy import ndimage

    step = tuple(max(1, round(4.0 / s)) for s in bg.spacing)  # about every 4 mm
    sub = (slice(None, None, step[0]), slice(None, None, step[1]), slice(None, None, step[2]))
    lung = bg.lung[sub]
    hu = bg.hu[sub]
    inner = ndimage.binary_erosion(lung, iterations=2)
    edge = lung & ~inner
    pools = {
        "lung": inner & (hu < -700),
        "vessel": lung & (hu > -300),
        "pleura": edge,
        "ground_glass": inner & (hu > -750) & (hu < -300),
    }
    scale = np.asarray(step)
    for name, m in pools.items():
        bg.pools[name] = _far_from_marks(bg, np.argwhere(m) * scale)


def _patch_frame(rng: np.random.Generator, augment: bool) -> npt.NDArray[np.float64]:
    """Columns: the patch's (k, j, i) axes as LPS unit vectors, rotated and flipped."""
    base = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # k→S, j→P, i→L
    if not augment:
        return base
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.uniform(-15.0, 15.0))
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
    flips = np.where(rng.random(3) < 0.5, -1.0, 1.0)
    return np.asarray(rot @ base * flips[None, :])


def _patch_affine(centre_lps: npt.NDArray[np.float64], frame: npt.NDArray[np.float64]
                  ) -> npt.NDArray[np.float64]:
    """(k, j, i) -> LPS of a PATCH³ cube at SPACING_MM centred on ``centre_lps``."""
    out_affine = np.eye(4)
    out_affine[:3, :3] = frame * SPACING_MM
    half = (PATCH - 1) / 2.0
    out_affine[:3, 3] = centre_lps - out_affine[:3, :3] @ np.array([half, half, half])
    return out_affine


def _resample(hu: npt.NDArray[np.float32], affine: npt.NDArray[np.float64],
              out_affine: npt.NDArray[np.float64], interpolation: str, fill: float
              ) -> npt.NDArray[np.float32]:
    """The patch ``out_affine`` places, by the engine's own SimpleITK resampling."""
    from core import convert
    from inference.spaces import _sitk_resample

    image = convert.to_sitk(np.ascontiguousarray(hu, dtype=np.float32), affine)
    out = _sitk_resample(image, out_affine, (PATCH, PATCH, PATCH), interpolation, fill)
    import SimpleITK as sitk

    return np.asarray(sitk.GetArrayFromImage(out), dtype=np.float32)


def _crop(bg: Background, centre_kji: npt.NDArray[np.float64]
          ) -> tuple[tuple[slice, ...], npt.NDArray[np.float64]]:
    """Native index box around a centre covering the rotated patch, and its affine."""
    lo, hi = [], []
    for ax in range(3):
        r = CROP_MM / bg.spacing[ax]
        lo.append(max(0, math.floor(centre_kji[ax] - r)))
        hi.append(min(bg.hu.shape[ax], math.ceil(centre_kji[ax] + r) + 1))
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    aff = bg.affine.copy()
    aff[:3, 3] = (bg.affine @ np.r_[lo, 1.0])[:3]
    return box, aff


def _thicken(hu: npt.NDArray[np.float32], spacing_k: float, thickness: float,
             target: float) -> npt.NDArray[np.float32]:
    """Simulate a thicker reconstruction: average along k over the extra thickness."""
    from scipy import ndimage

    extra = math.sqrt(max(target ** 2 - thickness ** 2, 0.0))
    n = max(1, round(extra / spacing_k))
    if n <= 1:
        return hu
    return np.asarray(ndimage.uniform_filter1d(hu, n, axis=0, mode="nearest"),
                      dtype=np.float32)


def _normalise(hu: npt.NDArray[np.float32]) -> npt.NDArray[np.float16]:
    x = (np.clip(hu, HU_LOW, HU_HIGH) - HU_LOW) / (HU_HIGH - HU_LOW)
    return x.astype(np.float16)


def _offset_centre(rng: np.random.Generator, centre: npt.NDArray[np.float64],
                   spacing: tuple[float, float, float], radius_mm: float
                   ) -> npt.NDArray[np.float64]:
    """The patch centre: the nodule somewhere inside, at least 4 mm from the faces."""
    room = max(0.0, PATCH * SPACING_MM / 2 - radius_mm - 4.0)
    shift_mm = rng.uniform(-room, room, size=3) * 0.8
    return np.asarray(centre + shift_mm / np.asarray(spacing))


def make_patch(bg: Background, kind: str, rng: np.random.Generator
               ) -> tuple[npt.NDArray[np.float16], npt.NDArray[np.uint8], dict[str, Any]]:
    meta: dict[str, Any] = {"kind": kind, "source": bg.name}
    label_hu: npt.NDArray[np.float32] | None = None
    ball: tuple[npt.NDArray[np.float64], float] | None = None  # (centre LPS, radius mm)
    if kind == "synthetic":
        d = float(np.exp(rng.uniform(math.log(3.0), math.log(30.0))))
        spec = NoduleSpec(diameter_mm=d, kind=_choice(rng, KINDS),  # type: ignore[arg-type]
                          margin=_choice(rng, MARGINS),  # type: ignore[arg-type]
                          context=_choice(rng, CONTEXTS),  # type: ignore[arg-type]
                          elongation=float(rng.uniform(1.0, 1.3)))
        rbin = next((r for r in RADIUS_BINS_MM if r >= d / 2), RADIUS_BINS_MM[-1])
        centres = bg.centres[(spec.context, rbin)]
        if not len(centres):
            return make_patch(bg, "lung", rng)
        c = np.asarray(centres[int(rng.integers(len(centres)))], dtype=np.float64)
        c = c + rng.uniform(-0.5, 0.5, size=3)
        patch_c = _offset_centre(rng, c, bg.spacing, d / 2)
        box, aff = _crop(bg, patch_c)
        sub = bg.hu[box].copy()
        local = c - np.array([s.start for s in box], dtype=np.float64)
        ins = insert_nodule(sub, bg.spacing, (local[0], local[1], local[2]), spec, rng,
                            slice_thickness_mm=bg.thickness)
        ins.paste(sub)
        # The target is the nodule itself (a ball of its volume), not its blurred image:
        # a 3 mm nodule on 2.5 mm slices never reaches half occupancy in any voxel.
        ball = ((bg.affine @ np.r_[c, 1.0])[:3], d / 2)
        meta.update(diameter_mm=round(d, 2), nodule=spec.kind, margin=spec.margin,
                    context=spec.context)
    elif kind == "real":
        c, consensus = bg.real[int(rng.integers(len(bg.real)))]
        radius = 0.5 * float(np.cbrt(consensus.sum() * np.prod(bg.spacing) * 6 / math.pi))
        patch_c = _offset_centre(rng, c, bg.spacing, radius)
        box, aff = _crop(bg, patch_c)
        sub = bg.hu[box].copy()
        label_hu = consensus[box].astype(np.float32)
    else:
        pool = bg.pools[kind]
        if not len(pool):
            return make_patch(bg, "lung", rng) if kind != "lung" else _empty(meta)
        c = pool[int(rng.integers(len(pool)))].astype(np.float64)
        patch_c = c + rng.uniform(-2.0, 2.0, size=3) / np.asarray(bg.spacing)
        box, aff = _crop(bg, patch_c)
        sub = bg.hu[box].copy()
    if rng.random() < 0.3:  # other slice thicknesses, up to 5 mm
        target = float(rng.uniform(bg.thickness, 5.0))
        sub = _thicken(sub, bg.spacing[0], bg.thickness, target)
        meta["thickness_mm"] = round(target, 2)
    frame = _patch_frame(rng, augment=True)
    out_affine = _patch_affine((bg.affine @ np.r_[patch_c, 1.0])[:3], frame)
    image = _resample(sub, aff, out_affine, "linear", HU_LOW)
    mask = np.zeros(image.shape, dtype=np.uint8)
    if label_hu is not None:
        mask = (_resample(label_hu, aff, out_affine, "linear", 0.0) >= 0.5).astype(np.uint8)
    if ball is not None:
        idx = np.indices(image.shape, dtype=np.float64).reshape(3, -1)
        lps = out_affine[:3, :3] @ idx + out_affine[:3, 3:4]
        inside = np.linalg.norm(lps - ball[0][:, None], axis=0) <= ball[1]
        mask = inside.reshape(image.shape).astype(np.uint8)
    # Scanner and dose differences: a small gain and offset, and some added noise.
    image = image * np.float32(rng.uniform(0.97, 1.03)) + np.float32(rng.uniform(-20, 20))
    sigma = float(rng.uniform(0.0, 20.0))
    if sigma > 0:
        image = image + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return _normalise(image), mask, meta


def _empty(meta: dict[str, Any]) -> tuple[npt.NDArray[np.float16], npt.NDArray[np.uint8],
                                           dict[str, Any]]:
    return (np.zeros((PATCH,) * 3, dtype=np.float16), np.zeros((PATCH,) * 3, dtype=np.uint8),
            meta)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in (".dcm", ".xml"):
            h.update(p.name.encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def mined_patches(backgrounds: list[Background], mined: dict[str, list[list[float]]],
                  per_site: int, rng: np.random.Generator
                  ) -> tuple[npt.NDArray[np.float16], npt.NDArray[np.uint8], list[str]]:
    """Negatives centred on where a first model marked something that is no nodule (hard
    negative mining): ``per_site`` augmented patches at each mined centre (k, j, i)."""
    sites = [(bg, np.asarray(c, dtype=np.float64)) for bg in backgrounds
             for c in mined.get(bg.name, [])]
    n = len(sites) * per_site
    images = np.zeros((n, PATCH, PATCH, PATCH), dtype=np.float16)
    masks = np.zeros((n, PATCH, PATCH, PATCH), dtype=np.uint8)
    sources = []
    for idx, (bg, c) in enumerate(s for s in sites for _ in range(per_site)):
        bg.pools["mined"] = np.round(c[None]).astype(np.int64)
        images[idx], masks[idx], meta = make_patch(bg, "mined", rng)
        sources.append(meta["source"])
    return images, masks, sources


def build(shared: Path, out: Path, patches: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    folders = [shared / "data" / "ct" / name for name in SERIES]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise SystemExit(f"missing background series: {', '.join(missing)}")
    backgrounds = []
    for f in folders:
        t = time.perf_counter()
        backgrounds.append(load_background(f, np.random.default_rng([seed, len(backgrounds)])))
        print(f"  {f.name}: loaded, lung mask, pools in {time.perf_counter() - t:.1f} s",
              flush=True)
    rng = np.random.default_rng(seed)
    kinds = list(MIX)
    weights = np.asarray([MIX[k] for k in kinds])
    images = np.zeros((patches, PATCH, PATCH, PATCH), dtype=np.float16)
    masks = np.zeros((patches, PATCH, PATCH, PATCH), dtype=np.uint8)
    metas: list[dict[str, Any]] = []
    for n in range(patches):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if kind == "real":
            bg = next(b for b in backgrounds if b.real)
        elif kind == "ground_glass":
            bg = backgrounds[1]  # RICORD: COVID ground glass
        else:
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
        images[n], masks[n], meta = make_patch(bg, kind, rng)
        metas.append(meta)
        if (n + 1) % 250 == 0:
            print(f"  {n + 1}/{patches} patches, {time.perf_counter() - t0:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "patches.npz", image=images, mask=masks,
             kind=np.array([m["kind"] for m in metas]),
             source=np.array([m["source"] for m in metas]))
    info = {
        "patches": patches, "seed": seed, "patch": PATCH, "spacing_mm": SPACING_MM,
        "hu_window": [HU_LOW, HU_HIGH], "mix": MIX,
        "made": dict(Counter(m["kind"] for m in metas)),
        "positive_voxel_fraction": float(masks.mean()),
        "inputs": {f.name: _digest(f) for f in folders},
        "seconds": round(time.perf_counter() - t0, 1),
        "patches_meta": metas,
    }
    (out / "dataset.json").write_text(json.dumps(info, indent=1))
    return info


def build_mined(shared: Path, out: Path, mined_json: Sequence[Path], per_site: int,
                seed: int) -> dict[str, Any]:
    """``mined.npz`` beside the patches: negatives at the sites mine.py found (the sites
    of every mining round given, in turn)."""
    t0 = time.perf_counter()
    mined: dict[str, list[list[float]]] = {}
    for path in mined_json:
        for name, sites in json.loads(path.read_text())["sites"].items():
            mined.setdefault(name, []).extend(sites)
    backgrounds = [load_background(shared / "data" / "ct" / name,
                                   np.random.default_rng([seed, n]))
                   for n, name in enumerate(SERIES)]
    images, masks, sources = mined_patches(backgrounds, mined, per_site,
                                           np.random.default_rng([seed, 99]))
    np.savez(out / "mined.npz", image=images, mask=masks, source=np.array(sources))
    info = {"mined_patches": len(images), "per_site": per_site,
            "sites": {k: len(v) for k, v in mined.items()},
            "seconds": round(time.perf_counter() - t0, 1)}
    (out / "mined.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--patches", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--mined", type=Path, nargs="+", default=None,
                    help="mine.py's JSON (one per round): write mined.npz (hard negatives) "
                         "into --out")
    ap.add_argument("--per-site", type=int, default=6)
    args = ap.parse_args(argv)
    if args.mined is not None:
        info = build_mined(args.shared, args.out, args.mined, args.per_site, args.seed)
        print(f"made {info['mined_patches']} mined negatives in {info['seconds']} s")
        return 0
    info = build(args.shared, args.out, args.patches, args.seed)
    print(f"made {info['made']} in {info['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
