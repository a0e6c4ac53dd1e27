"""Hard negative mining: where does a first-stage nodule pack mark something that is no
nodule on the training backgrounds?

    .venv/bin/python packaging/nodules/mine.py --pack DIR --out SITES.json

Runs the pack as the app does (lung mask first) on each background series of
make_dataset.py and keeps every finding farther than ``KEEP_OFF_MARKS_MM`` from all LIDC
reader marks (on RICORD, which has no nodule annotations, every finding): their centres
(k, j, i on the series' grid) become ``make_dataset.py --mined``'s negative patches.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import make_dataset as md  # noqa: E402


def mine(shared: Path, pack: Path, threads: int) -> dict[str, list[list[float]]]:
    from inference.pipeline import run

    sites: dict[str, list[list[float]]] = {}
    for name in md.SERIES:
        folder = shared / "data" / "ct" / name
        volume, instances, read = md._load_series(folder)
        marks = np.zeros((0, 3))
        if read is not None:
            from dicomio.lidc_xml import SliceGeometry, reader_marks

            inv = np.linalg.inv(volume.affine)
            marks = np.array([(inv @ np.r_[m.centroid_lps, 1.0])[:3] for m in
                              reader_marks(read, SliceGeometry.from_volume(volume, instances))])
        result = run(volume, pack, threads=threads, providers="cpu",
                     mask_packs={"lucida-lung-mask": md.REPO / "resources" / "models"
                                 / "lucida-lung-mask"})
        spacing = np.linalg.norm(np.asarray(volume.affine)[:3, :3], axis=0)
        keep = []
        for f in result.findings:
            c = np.asarray(f.centroid_index, dtype=np.float64)
            if len(marks) and (np.linalg.norm((marks - c) * spacing, axis=1)
                               < md.KEEP_OFF_MARKS_MM).any():
                continue
            keep.append([round(float(v), 2) for v in c])
        sites[name] = keep
        print(f"  {name}: {len(result.findings)} findings, {len(keep)} mined", flush=True)
    return sites


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", type=Path, required=True)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sites = mine(args.shared, args.pack, args.threads)
    args.out.write_text(json.dumps({"pack": str(args.pack), "sites": sites}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
