"""deepbet 1.0.2's own CLI (TorchScript networks from its wheel, CPU); run in its side venv.

    .bench-venvs/deepbet/bin/python bench/_author_deepbet.py --input T1.nii.gz \
        --brain brain.nii.gz --mask mask.nii.gz --threads 2

Runs ``deepbet-cli -i INPUT -o BRAIN -m MASK`` in this process (the reference's command),
with torch limited to ``--threads`` intra-op threads and any network access refused.
"""

from __future__ import annotations

import argparse
import sys
import time

from _author_common import emit, forbid_network, peak_rss_mb, torch_threads


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--brain", required=True)
    ap.add_argument("--mask", required=True)
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args()
    forbid_network()
    torch_threads(args.threads)

    from deepbet.ui.cli import run_cli

    sys.argv = ["deepbet-cli", "-i", args.input, "-o", args.brain, "-m", args.mask]
    t0 = time.perf_counter()
    run_cli()
    emit({"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
