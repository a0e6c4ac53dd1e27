"""Measure a nodule pack on the demo study, LIDC-IDRI-0001 and the RICORD series.

    .venv/bin/python packaging/nodules/evaluate.py --pack DIR --shared ../shared --out JSON

Runs the pack as the app does (``pipeline.run`` with the lung mask pack run first) and
writes a JSON with per-scan findings, runtimes and the lines the model card quotes:
- the demo study (synthetic phantom, never trained on): which of its four nodules are
  found, and the false marks;
- LIDC-IDRI-0001 (a training background; its four-reader nodule was a training positive):
  the rank of that nodule among the findings, and the other marks;
- the RICORD COVID series (a training background, no nodule annotations): how many marks
  it makes on infection ground glass;
- sensitivity by size and context: solid nodules of 4 to 20 mm drawn into the demo phantom
  (a background never seen in training) by the training's own renderer, four per context
  and size, found or missed at the operating point, with the highest probability on each.
How the model does on LIDC data it has never seen is bench/nodule_froc.py's job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

LUNG_MASK = REPO / "resources" / "models" / "lucida-lung-mask"
SIZES_MM = (4.0, 6.0, 8.0, 12.0, 20.0)  # the size study's diameters
PER_CONTEXT = 4  # nodules per context and size
APART_MM = 30.0  # between any two nodules of one volume (the demo's own included)


def _run(volume: Any, pack: Path, threads: int) -> tuple[Any, float]:
    from inference.pipeline import run

    t0 = time.perf_counter()
    result = run(volume, pack, threads=threads, providers="cpu",
                 mask_packs={"lucida-lung-mask": LUNG_MASK})
    return result, time.perf_counter() - t0


def _hit(finding: Any, centre: Any, radius: float) -> bool:
    d = np.linalg.norm(np.asarray(finding.centroid_lps) - np.asarray(centre))
    return bool(d <= max(radius, 5.0))


def _ranked(result: Any) -> list[Any]:
    return sorted(result.findings, key=lambda f: -f.max_score)


def demo(pack: Path, threads: int) -> dict[str, Any]:
    from dicomio.demo import DEMO_NODULES, build_demo_volume

    volume = build_demo_volume()
    result, seconds = _run(volume, pack, threads)
    found = []
    ranked = _ranked(result)
    hits: set[int] = set()
    for n in DEMO_NODULES:
        ranks = [r for r, f in enumerate(ranked) if _hit(f, n.centre_lps, n.radius_mm)]
        hits.update(ranks)
        found.append({"name": n.name, "diameter_mm": n.diameter_mm, "contact": n.contact,
                      "rank": ranks[0] + 1 if ranks else None,
                      "score": round(float(ranked[ranks[0]].max_score), 3) if ranks else None,
                      "measured_diameter_mm": round(ranked[ranks[0]].longest_diameter_mm, 1)
                      if ranks else None})
    return {"scan": "demo", "seconds": round(seconds, 1), "findings": len(ranked),
            "scores": [round(float(f.max_score), 4) for f in ranked],
            "diameters_mm": [round(f.longest_diameter_mm, 1) for f in ranked],
            "false_marks": len(ranked) - len(hits), "nodules": found}


def _peak(heatmap: Any, centre_lps: Any, radius_mm: float) -> float:
    """The highest probability within ``radius_mm`` of a point (a box around it)."""
    from core.geometry import lps_to_index, spacing_from_affine

    a = heatmap.array if heatmap.array.ndim == 3 else heatmap.array[0]
    c = lps_to_index(heatmap.affine, centre_lps)
    reach = radius_mm / spacing_from_affine(heatmap.affine)
    lo = np.maximum(np.floor(c - reach).astype(int), 0)
    hi = np.minimum(np.ceil(c + reach).astype(int) + 1, a.shape)
    return float(a[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].max())


def size_study(pack: Path, threads: int, seed: int = 5) -> dict[str, Any]:
    """Solid, smooth nodules of each size in :data:`SIZES_MM` drawn into the demo phantom
    (one volume per size, :data:`PER_CONTEXT` per context, far apart), run as the app runs."""
    import dataclasses

    import make_dataset as md
    from nodule_synth import CONTEXTS, NoduleSpec, candidate_centres, insert_nodule

    from core.geometry import index_to_lps
    from dicomio.demo import DEMO_NODULES, build_demo_volume

    base = build_demo_volume()
    sp = base.spacing_mm
    spacing = (float(sp[0]), float(sp[1]), float(sp[2]))
    lung = md._lung_mask(base)
    rows: list[dict[str, Any]] = []
    seconds = 0.0
    for d in SIZES_MM:
        rng = np.random.default_rng([seed, int(d * 10)])
        hu = base.array.astype(np.float32)
        placed = [np.asarray(n.centre_lps, dtype=np.float64) for n in DEMO_NODULES]
        drawn: list[tuple[str, Any]] = []
        for context in CONTEXTS:
            sites = candidate_centres(lung, spacing, d / 2, context, rng, volume_hu=hu,
                                      count=400)
            n = 0
            for c in sites:
                lps = index_to_lps(base.affine, c)
                if min(float(np.linalg.norm(lps - p)) for p in placed) < APART_MM:
                    continue
                insert_nodule(hu, spacing, (c[0], c[1], c[2]), NoduleSpec(d, context=context),
                              rng).paste(hu)
                placed.append(lps)
                drawn.append((context, lps))
                n += 1
                if n == PER_CONTEXT:
                    break
        volume = dataclasses.replace(base, array=np.rint(hu).astype(base.array.dtype))
        result, s = _run(volume, pack, threads)
        seconds += s
        for context, lps in drawn:
            rows.append({"diameter_mm": d, "context": context,
                         "centre_lps": [round(float(v), 1) for v in lps],
                         "found": any(_hit(f, lps, d / 2) for f in result.findings),
                         "peak": round(_peak(result.heatmap, lps, d / 2 + 1.0), 3)})
    return {"scan": "demo-sizes", "seconds": round(seconds, 1), "nodules": rows}


def _size_line(study: dict[str, Any]) -> str:
    parts = []
    for d in SIZES_MM:
        rows = [r for r in study["nodules"] if r["diameter_mm"] == d]
        by = ", ".join(f"{c} {sum(r['found'] for r in rows if r['context'] == c)}"
                       f"/{sum(r['context'] == c for r in rows)}"
                       for c in dict.fromkeys(r["context"] for r in rows))
        peak = float(np.median([r["peak"] for r in rows])) if rows else float("nan")
        parts.append(f"{d:g} mm {sum(r['found'] for r in rows)}/{len(rows)} ({by}; median "
                     f"peak probability {peak:.2f})")
    return ("Solid smooth nodules drawn into the demo phantom (a background never seen in "
            "training) by the training's own renderer, found at the operating point: "
            + "; ".join(parts) + ".")


def _load(folder: Path) -> tuple[Any, Any]:
    """The series (as training reads it) and its LIDC reference, if it has reader XML."""
    import make_dataset as md

    volume, instances, read = md._load_series(folder)
    ref = None
    if read is not None:
        from dicomio.lidc_xml import SliceGeometry, lidc_reference

        ref = lidc_reference(read, SliceGeometry.from_volume(volume, instances))
    return volume, ref


def real(folder: Path, pack: Path, threads: int) -> dict[str, Any]:
    volume, ref = _load(folder)
    result, seconds = _run(volume, pack, threads)
    ranked = _ranked(result)
    out: dict[str, Any] = {"scan": folder.name, "seconds": round(seconds, 1),
                           "findings": len(ranked),
                           "scores": [round(float(f.max_score), 4) for f in ranked],
                           "diameters_mm": [round(f.longest_diameter_mm, 1) for f in ranked],
                           "top": [{"score": round(float(f.max_score), 3),
                                    "diameter_mm": round(f.longest_diameter_mm, 1),
                                    "centre_lps": [round(v, 1) for v in f.centroid_lps]}
                                   for f in ranked[:10]]}
    if ref is not None:
        nods = []
        for n in ref.nodules:
            ranks = [r for r, f in enumerate(ranked) if _hit(f, n.centre_lps, n.hit_radius_mm)]
            nods.append({"readers": n.n_readers, "diameter_mm": round(n.diameter_mm, 1),
                         "rank": ranks[0] + 1 if ranks else None})
        out["reference"] = nods
    return out


def card_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        if r["scan"] == "demo-sizes":
            lines.append(_size_line(r))
        elif r["scan"] == "demo":
            got = [n for n in r["nodules"] if n["rank"] is not None]
            desc = "; ".join(
                f"{n['name']} {n['diameter_mm']:g} mm"
                + (f" ({n['contact']})" if n["contact"] else "")
                + (f": rank {n['rank']}, score {n['score']}" if n["rank"] else ": missed")
                for n in r["nodules"])
            lines.append(f"Demo study (synthetic phantom, never seen in training): "
                         f"{len(got)} of {len(r['nodules'])} nodules found ({desc}); "
                         f"{r['false_marks']} other mark(s); {r['seconds']} s.")
        elif "reference" in r:
            refs = "; ".join(f"{n['readers']}-reader {n['diameter_mm']} mm nodule: "
                             + (f"rank {n['rank']}" if n["rank"] else "missed")
                             for n in r["reference"])
            lines.append(f"{r['scan']} (a training background; its nodule was a training "
                         f"positive): {refs}; {r['findings']} mark(s) in all; "
                         f"{r['seconds']} s.")
        else:
            lines.append(f"{r['scan']} (COVID-19, no nodule annotations, a training "
                         f"background): {r['findings']} mark(s), all false; {r['seconds']} s.")
    lines.append("Runtimes on 2 CPU threads of this project's machine, lung mask included. "
                 "Sensitivity on LIDC data never seen in training: measure it with "
                 "bench/nodule_froc.py.")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", type=Path, required=True)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results = [demo(args.pack, args.threads), size_study(args.pack, args.threads)]
    for name in ("LIDC-IDRI-0001", "MIDRC-RICORD-1A-419639-000082"):
        folder = args.shared / "data" / "ct" / name
        if folder.is_dir():
            results.append(real(folder, args.pack, args.threads))
    info = {"results": results, "card_lines": card_lines(results)}
    args.out.write_text(json.dumps(info, indent=1))
    for line in info["card_lines"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
