"""Lucida's side of bench/models.py: one pack on one NIfTI volume, in a fresh process.

    .venv/bin/python bench/_run_lucida_pack.py --pack DIR --input IN.nii.gz --modality MR \
        --threads 2 --out DIR

The NIfTI is read with SimpleITK into a Lucida ``Volume`` (``core.convert.from_sitk``: the
same voxels and geometry the authors' tools read) and ``inference.pipeline.run(volume, pack,
threads=N, providers="cpu")`` runs on it. Timed: reading the volume and the run (opening the
pack, sha256, sessions, preprocessing, network, post-processing, results on the source grid).
The graph-rewrite check (which imports onnx) is remembered in ``--rewrite-cache`` as the
app's worker remembers it, so only a pack's first run pays it. Not timed: imports before,
writing ``labels.npy`` / ``heat.npy`` (``[k, j, i]`` on the input grid) after. The last
stdout line is JSON: seconds, peak RSS (VmHWM), provenance timings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.update(ORT_DISABLE_TELEMETRY="1", ORT_TELEMETRY_DISABLED="1")

from _author_common import peak_rss_mb  # noqa: E402  (bench/ is the script's folder)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--modality", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rewrite-cache", default=None,
                    help="folder remembering graphs with nothing to rewrite, as the app's "
                         "inference worker keeps one (the first run imports onnx to check)")
    args = ap.parse_args()

    import numpy as np
    import SimpleITK as sitk

    from core.convert import from_sitk
    from core.volume import Volume
    from inference import pipeline, runtime  # noqa: F401  (onnxruntime)

    rss_imports = peak_rss_mb()
    t0 = time.perf_counter()
    array, affine = from_sitk(sitk.ReadImage(args.input))
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    volume = Volume(np.ascontiguousarray(array), affine, series_uid="", modality=args.modality)
    t_load = time.perf_counter() - t0
    result = pipeline.run(volume, args.pack, threads=args.threads, providers="cpu",
                          rewrite_cache=Path(args.rewrite_cache) if args.rewrite_cache else None)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "labels.npy", result.label_map.array)
    if result.heatmap is not None:
        np.save(out / "heat.npy", result.heatmap.array.astype(np.float32))
    prov = result.provenance
    timings = {"load": round(t_load, 3), **{k: round(float(v), 3)
                                              for k, v in prov.get("timings_s", {}).items()}}
    params = prov.get("parameters", {})
    print(json.dumps({
        "seconds": seconds, "peak_rss_mb": peak, "rss_after_imports_mb": rss_imports,
        "timings_s": timings, "findings": len(result.findings),
        "note": (f"model grid {params.get('model_grid_shape')}, "
                 f"{prov.get('tiles_in_flight')} tile(s) in flight x "
                 f"{prov.get('threads_per_tile')} thread(s), memory estimate "
                 f"{params.get('memory_estimate_mb')} MB"),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
