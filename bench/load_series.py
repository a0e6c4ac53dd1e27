"""Benchmark: series → volume, Lucida against SimpleITK's ImageSeriesReader.

For LIDC-IDRI-0001 (133 uncompressed slices) and MIDRC-RICORD (255 JPEG
lossless slices) prints Lucida's load time, SimpleITK's (same run, warm
cache, best of N), the ratio, and the header-scan rate of ``dicomio.scan``
in files/s. Targets (2 cores): uncompressed ≤ 0.5×, JPEG lossless ≤ 1.0×,
scan ≥ 2,000 files/s.

    .venv/bin/python bench/load_series.py [--repeat N] [--workers N]

Skips with a message (exit 0) when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _common import bench_start, best_of  # the script's folder is on sys.path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERIES = {
    "LIDC-IDRI-0001 (133 × 512², uncompressed)": "ct/LIDC-IDRI-0001",
    "MIDRC-RICORD (255 × 512², JPEG lossless)": "ct/MIDRC-RICORD-1A-419639-000082",
}
TARGETS = {"ct/LIDC-IDRI-0001": 0.5, "ct/MIDRC-RICORD-1A-419639-000082": 1.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="Lucida decode threads")
    args, data = bench_start(__doc__, 3, parser)
    if data is None:
        return 0

    import SimpleITK as sitk

    from dicomio.load import read_volume
    from dicomio.scan import scan_paths

    print(f"cores: {os.cpu_count()}, best of {args.repeat}, warm cache")
    for label, rel in SERIES.items():
        folder = data / rel
        files = sorted(folder.glob("*.dcm"))

        def lucida(files: list[Path] = files) -> object:
            return read_volume(files, workers=args.workers)

        def simpleitk(folder: Path = folder) -> object:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
            return reader.Execute()

        vol = lucida()  # warm the cache and the imports
        ref = simpleitk()
        same = vol.shape == sitk.GetArrayViewFromImage(ref).shape  # type: ignore[attr-defined]
        t_lucida = best_of(lucida, args.repeat)
        t_sitk = best_of(simpleitk, args.repeat)
        ratio = t_lucida / t_sitk
        def scan_once(folder: Path = folder) -> object:
            return scan_paths([folder])

        scan_time = best_of(scan_once, args.repeat)
        scan = scan_paths([folder])
        rate = (len(scan.instances) + len(scan.skipped)) / scan_time
        target = TARGETS[rel]
        verdict = "OK" if ratio <= target else "SLOWER THAN TARGET"
        print(f"{label}:")
        print(f"  Lucida read_volume   {t_lucida:7.3f} s   shape {vol.shape} {vol.array.dtype}"
              f"{'' if same else '  (shape differs from SimpleITK!)'}")
        print(f"  SimpleITK series     {t_sitk:7.3f} s")
        print(f"  ratio Lucida/SITK    {ratio:7.2f}×   (target ≤ {target}×: {verdict})")
        print(f"  header scan          {rate:7.0f} files/s ({len(scan.instances)} instances)")
        del vol, ref
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
