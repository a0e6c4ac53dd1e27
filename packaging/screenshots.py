"""Make the README screenshots with ``lucida view`` (run under Xvfb: see screenshots.sh).

1. Imports ``../shared/data/ct/LIDC-IDRI-0001`` into a temporary library (the
   sources are only read; nothing is written next to them).
2. Finds the nodule seen on InstanceNumber 39–47: the voxel at column 316,
   row 367 on the slice at z = −115.9 mm, converted to LPS through the volume's
   affine (never assumed), and measures its longest diameter on that axial slice from the
   voxels (see ``nodule_mask``). The measurement is saved in
   the library like one a user drew, so ``lucida view`` restores it.
3. Runs ``lucida view`` with the lung preset at the nodule in 1×3 and 2×2 (with
   the 3-D view), and the built-in demo study.

PNGs go to ``docs/screenshots/`` (or ``--out``). Look at each before committing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
NODULE_COLUMN, NODULE_ROW, NODULE_Z_MM = 316, 367, -115.9


def find_lidc(shared: Path | None) -> Path:
    candidates = [shared] if shared else []
    env = os.environ.get("LUCIDA_SHARED")
    if env:
        candidates.append(Path(env) / "data")
    candidates.append(REPO.parent / "shared" / "data")
    for root in candidates:
        if root is not None and (root / "ct" / "LIDC-IDRI-0001").is_dir():
            return root / "ct" / "LIDC-IDRI-0001"
    raise SystemExit("LIDC-IDRI-0001 not found: pass --shared PATH/TO/shared/data")


def nodule_mask(slice_hu: np.ndarray, row: int, col: int,
                half_box: int = 35) -> tuple[np.ndarray, str]:
    """The blob around (row, col) on one slice, cut from the chest wall it touches.

    Tries increasing thresholds and morphological openings until the seed's
    component no longer reaches the edge of a box around it (the nodule of
    LIDC-IDRI-0001 abuts the posterior wall). Returns a full-slice mask.
    """
    from scipy import ndimage

    r0, c0 = max(0, row - half_box), max(0, col - half_box)
    crop = slice_hu[r0: row + half_box + 1, c0: col + half_box + 1].astype(np.float64)
    cross = ndimage.generate_binary_structure(2, 1)
    for threshold in (-500, -300, -100):
        for radius in (0, 2, 3, 4):
            mask = crop > threshold
            if radius:
                mask = ndimage.binary_opening(
                    mask, structure=ndimage.iterate_structure(cross, radius))
            labels, _ = ndimage.label(mask)
            seed_label = labels[row - r0, col - c0]
            if not seed_label:
                continue
            blob = labels == seed_label
            rr, cc = np.nonzero(blob)
            if rr.min() > 0 and cc.min() > 0 and rr.max() < blob.shape[0] - 1 \
                    and cc.max() < blob.shape[1] - 1:
                full = np.zeros(slice_hu.shape, dtype=bool)
                full[r0: r0 + blob.shape[0], c0: c0 + blob.shape[1]] = blob
                return full, f"> {threshold} HU, opening radius {radius} px"
    raise SystemExit(f"no separable nodule at row {row}, column {col}; check the data")


def nodule_point_and_measurement(library_dir: Path,
                                 series_id: int) -> tuple[np.ndarray, dict[str, Any]]:
    """LPS of the nodule centre and a distance record across it on the axial slice."""
    from app.importer import series_sources
    from dicomio.load import read_volume
    from store import Library
    from viewer.measure import Measurement
    from viewer.planes import PLANE_AXES

    library = Library.open(library_dir)
    try:
        volume = read_volume(series_sources(library, series_id))
    finally:
        library.close()
    # The slice nearest z = −115.9 mm, then the stated row and column on it.
    z_of_k = [float(volume.index_to_lps((k, 0, 0))[2]) for k in range(volume.shape[0])]
    k = int(np.argmin([abs(z - NODULE_Z_MM) for z in z_of_k]))
    component, how = nodule_mask(volume.array[k], NODULE_ROW, NODULE_COLUMN)
    rows, cols = np.nonzero(component)
    centre_kji = np.array([k, rows.mean(), cols.mean()])
    centre_lps = volume.index_to_lps(centre_kji)
    # Longest in-plane diameter (maximum Feret) between voxel centres, extended by half
    # a voxel at each end to reach the voxel edges.
    pts = np.array([volume.index_to_lps((k, int(r), int(c)))
                    for r, c in zip(rows, cols, strict=True)])
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    p, q = np.unravel_index(int(np.argmax(d2)), d2.shape)
    direction = (pts[q] - pts[p]) / max(float(np.sqrt(d2[p, q])), 1e-6)
    half = 0.5 * float(volume.spacing_mm[2])
    a, b = pts[p] - half * direction, pts[q] + half * direction
    right, up = PLANE_AXES["axial"]
    m = Measurement(kind="distance", points_lps=[a, b], right=np.array(right),
                    up=np.array(up), view="axial", series_uid=volume.series_uid)
    m.compute(volume)
    print(f"nodule: slice k={k} (z {z_of_k[k]:.1f} mm), centre LPS "
          f"{', '.join(f'{c:.1f}' for c in centre_lps)}, longest diameter "
          f"{m.stats['length_mm']:.1f} mm ({component.sum()} voxels, {how})")
    return centre_lps, m.to_record()


def lucida(env: dict[str, str], *args: str) -> None:
    cmd = [sys.executable, "-m", "app.cli", *args]
    print("+ lucida", " ".join(args), flush=True)
    subprocess.run(cmd, env=env, check=True, cwd=REPO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, help="the shared data folder (…/shared/data)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--keep-library", action="store_true", help="do not delete the library")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        raise SystemExit("no DISPLAY: run packaging/screenshots.sh (it uses xvfb-run)")
    lidc = find_lidc(args.shared)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lucida-shots-"))
    library_dir = work / "library"
    env = dict(os.environ, LUCIDA_LIBRARY=str(library_dir), HOME=str(work / "home"),
               XDG_CONFIG_HOME=str(work / "home" / ".config"),
               XDG_CACHE_HOME=str(work / "home" / ".cache"))
    for sub in (".config", ".cache"):
        (work / "home" / sub).mkdir(parents=True, exist_ok=True)
    try:
        from app.importer import import_paths
        from store import Library

        library = Library.open(library_dir)
        try:
            report = import_paths(library, [lidc])
            print("import:", report.summary())
            series = [s for s in library.all_series() if s.modality == "CT"]
            series_id = max(series, key=lambda s: s.num_instances).id
        finally:
            library.close()
        centre, record = nodule_point_and_measurement(library_dir, series_id)
        library = Library.open(library_dir)
        try:
            library.save_measurements(series_id, [record])
        finally:
            library.close()
        at = ",".join(f"{c:.2f}" for c in centre)
        common = ("--preset", "lung", "--at", at, "--size", args.size)
        lucida(env, "view", str(series_id), "--layout", "1x3", "--zoom", "1.8", *common,
               "--screenshot", str(args.out / "lidc-nodule-1x3-lung.png"))
        lucida(env, "view", str(series_id), "--layout", "2x2", "--3d-preset", "ct-lung",
               "--zoom", "1.5", *common, "--screenshot", str(args.out / "lidc-nodule-2x2-3d.png"))
        lucida(env, "view", "demo", "--layout", "2x2", "--preset", "lung", "--size", args.size,
               "--screenshot", str(args.out / "demo-2x2.png"))
    finally:
        if args.keep_library:
            print("library kept in", library_dir)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("screenshots in", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
