"""brainchop 0.2.5's own CLI (tinygrad, CPU) on a staged MeshNet model; run in its side venv.

    .bench-venvs/brainchop/bin/python bench/_author_brainchop.py --input T1.nii.gz \
        --model-dir .../model5_gw_ae/brainchop-cli-format --out labels.nii.gz --home DIR

Runs ``brainchop INPUT --custom MODEL_DIR -o OUT --no-optimize`` in this process (the command
the staged reference was made with). No download:

* brainchop fetches its model listing (``~/.cache/brainchop/models.json``) at import when the
  file is missing; ``--home`` is a bench-owned HOME where an empty listing is pre-populated
  (``--custom`` never reads it). tinygrad's compiled-kernel cache (``~/.cache/tinygrad``)
  lives there too, so it is warm after the first run, as for a user.
* the weights come from ``--custom`` (``model.json`` + ``model.pth``), never the network;
  any other connection attempt raises.

Threads: tinygrad's CPU device runs kernels on ``NUM_CPU_THREADS`` workers (the parent sets it
with OMP_NUM_THREADS); kernels are compiled with clang (``CC``: clang, else clang-14).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from _author_common import emit, forbid_network, peak_rss_mb


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--home", required=True)
    args = ap.parse_args()

    home = Path(args.home)
    listing = home / ".cache" / "brainchop" / "models.json"
    listing.parent.mkdir(parents=True, exist_ok=True)
    if not listing.exists():
        listing.write_text(json.dumps({}))
    warm = (home / ".cache" / "tinygrad").is_dir()
    os.environ["HOME"] = str(home)
    if "CC" not in os.environ:
        os.environ["CC"] = "clang" if shutil.which("clang") else "clang-14"
    if not shutil.which(os.environ["CC"]):
        raise SystemExit(f"tinygrad's CPU device needs {os.environ['CC']} (apt-get install "
                         "clang-14, or set CC)")
    forbid_network()

    import brainchop.cli as cli

    sys.argv = ["brainchop", str(Path(args.input).resolve()), "--custom",
                str(Path(args.model_dir).resolve()), "-o", str(Path(args.out).resolve()),
                "--no-optimize"]
    t0 = time.perf_counter()
    cli.main()
    seconds = time.perf_counter() - t0
    emit({"seconds": seconds, "peak_rss_mb": peak_rss_mb(),
          "note": f"tinygrad kernel cache {'warm' if warm else 'cold (first run)'}, "
                  f"NUM_CPU_THREADS={os.environ.get('NUM_CPU_THREADS', 'all')}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
