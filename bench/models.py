"""Benchmark: Lucida's imported model packs vs the authors' own CPU pipelines (issue 16).

For each family, in the same run, on the same input and thread count:

* brainchop: brainchop 0.2.5's CLI (tinygrad CPU) with ``--custom`` = the staged
  ``model5_gw_ae/brainchop-cli-format`` files, vs Lucida's ``brainchop-model5_gw_ae`` pack
  (built here with Lucida's importer), on ``data-mr/brain-t1-conformed-256.nii.gz``.
* deepbet: ``deepbet-cli`` 1.0.2 (torch 2.13.0 CPU) vs the Lucida pack given with
  ``--deepbet-pack`` (skipped without one), on the same conformed T1.
* blast-ct: blast-ct 2.1.0's inference code path (PyTorch DeepMedic, their tiling, stitching
  and HU window) with the staged V1 members, vs Lucida's ``blast-ct`` pack with the same
  members, on a block of the gantry-tilt head CT (``--blast-mm`` edge, centred; the whole
  series is 792 tiles per member, an hour of CPU per member here). The block is read from
  DICOM by Lucida, resampled once (SimpleITK linear) onto an axis-aligned 1 mm LPS grid
  (``--blast-grid aligned``; ``native`` keeps the tilted 4 x 0.49 x 0.49 mm grid) and written
  as NIfTI with SimpleITK; both sides read that one file.

Each side is a fresh subprocess (Lucida: ``bench/_run_lucida_pack.py`` in this venv; authors:
``bench/_author_*.py`` in ``.bench-venvs/<family>``, made by ``bench/setup_authors.sh``).
Reported per run: process wall time (interpreter start to exit, as a user waits), the
in-process time of the pipeline after imports, and peak RSS (VmHWM of the child process).
Ratios use the medians over ``--repeat`` runs: Lucida/theirs time (target <= 0.5, i.e. >= 2x
faster) and peak memory (target <= 0.7), with agreement figures of the two outputs.
Packs are built into a temporary folder first (not timed). Nothing is downloaded: the drivers
refuse network access.

    bench/setup_authors.sh
    .venv/bin/python bench/models.py [--family brainchop|deepbet|blast-ct ...] [--threads 2]
        [--repeat 1] [--members 6] [--deepbet-pack PATH] [--blast-mm 59]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
FAMILIES = ("brainchop", "deepbet", "blast-ct")
TARGET_TIME = 0.5  # Lucida time / theirs: at least 2x faster
TARGET_MEMORY = 0.7  # Lucida peak RSS / theirs
BRAINCHOP_MODEL = "model5_gw_ae"
TILT = Path("ct") / "HeadCT_GE_gantry_tilt"
CONFORMED = Path("data-mr") / "brain-t1-conformed-256.nii.gz"


class BenchError(RuntimeError):
    """A side failed or an input is missing: the message says which and why."""


# --- pure helpers (tests/bench/test_models_bench.py) -------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--family", action="append", choices=FAMILIES,
                    help="repeat to run several (default: all three)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per side (medians compared)")
    ap.add_argument("--members", type=int, default=6, help="BLAST-CT ensemble members (1-6)")
    ap.add_argument("--blast-mm", type=float, default=59.0,
                    help="edge of the head CT block in mm (59: 2x2x2 tiles of 30 mm)")
    ap.add_argument("--blast-grid", choices=("aligned", "native"), default="aligned")
    ap.add_argument("--deepbet-pack", type=Path, default=None,
                    help="Lucida's deepbet pack folder, or the ONNX export to build it from "
                         "(packaging/deepbet/export_onnx.py); deepbet is skipped without")
    ap.add_argument("--venvs", type=Path, default=REPO / ".bench-venvs")
    ap.add_argument("--shared", type=Path, default=None,
                    help="the shared folder (default: $LUCIDA_SHARED or ../shared)")
    ap.add_argument("--keep", type=Path, default=None, help="keep inputs/outputs here")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.repeat < 1:
        ap.error("--threads and --repeat must be >= 1")
    if not 1 <= args.members <= 6:
        ap.error("--members must be 1..6 (six V1 members are staged)")
    if args.blast_mm < 10:
        ap.error("--blast-mm must be at least 10")
    args.family = list(dict.fromkeys(args.family or FAMILIES))
    return args


def thread_env(threads: int) -> dict[str, str]:
    """Thread limits every child gets (torch, MKL/OpenBLAS, tinygrad's CPU workers)."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            "NUMEXPR_NUM_THREADS": n, "NUM_CPU_THREADS": n,
            "ORT_DISABLE_TELEMETRY": "1", "ORT_TELEMETRY_DISABLED": "1"}


def _same_shape(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> None:
    if a.shape != b.shape:
        raise BenchError(f"outputs on different grids: {a.shape} vs {b.shape}")


def label_agreement(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Fraction of voxels with the same label."""
    _same_shape(a, b)
    return float(np.count_nonzero(a == b)) / a.size


def dice(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Dice of the non-zero voxels of two masks (1.0 when both are empty)."""
    _same_shape(a, b)
    ma, mb = a != 0, b != 0
    total = int(ma.sum()) + int(mb.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(ma & mb)) / total


def abs_diff(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> tuple[float, float]:
    """(max, mean) absolute difference."""
    _same_shape(a, b)
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max()), float(d.mean())


def ratio_line(what: str, lucida: float, theirs: float, target: float) -> str:
    """'time Lucida/theirs 0.31 (3.2x faster), target <= 0.50: met' and the like."""
    if theirs <= 0:
        return f"{what} Lucida/theirs: n/a (theirs is {theirs})"
    r = lucida / theirs
    gain = (f"{1 / r:.2f}x faster" if what == "time" else f"{1 / r:.2f}x less") if r > 0 else ""
    verdict = "met" if r <= target else "MISSED"
    return f"{what} Lucida/theirs {r:.2f} ({gain}), target <= {target:.2f}: {verdict}"


@dataclass
class Run:
    wall_s: float  # process start to exit, measured by the parent
    seconds: float  # the pipeline inside the process, after imports
    peak_rss_mb: float  # VmHWM of the child
    extra: dict[str, Any] = field(default_factory=dict)


def median_run(runs: Sequence[Run]) -> Run:
    if not runs:
        raise ValueError("no runs")
    return Run(statistics.median(r.wall_s for r in runs),
               statistics.median(r.seconds for r in runs),
               statistics.median(r.peak_rss_mb for r in runs), dict(runs[-1].extra))


def centred_block(shape: Sequence[int], spacing: Sequence[float],
                  edge_mm: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(lo, hi) indices of a block about ``edge_mm`` on each side at the grid's centre,
    clamped to the grid (spacing per axis, same order as shape)."""
    lo, hi = [], []
    for n, s in zip(shape, spacing, strict=True):
        size = max(1, min(n, round(edge_mm / s)))
        start = (n - size) // 2
        lo.append(start)
        hi.append(start + size)
    return tuple(lo), tuple(hi)


# --- running the two sides -------------------------------------------------------------------

def _child(cmd: list[str], env: dict[str, str], log: Path) -> Run:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - t0
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchError(f"{Path(cmd[1]).name} exited {proc.returncode} (log {log}):\n{tail}")
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise BenchError(f"{Path(cmd[1]).name} printed no result line (log {log})") from exc
    return Run(wall, float(data.pop("seconds")), float(data.pop("peak_rss_mb")), data)


@dataclass
class Case:
    family: str
    what: str  # model and input, one line
    lucida_cmd: list[str]
    author_cmd: list[str]
    author_env: dict[str, str]
    author_name: str
    compare: Callable[[Run, Run], list[str]]


def _side_env(threads: int, venv: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(thread_env(threads))
    env["PYTHONNOUSERSITE"] = "1"
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _venv_python(venvs: Path, family: str) -> Path:
    venv = venvs / family
    if not (venv / ".complete").is_file():
        raise BenchError(f"{family}: side venv {venv} is missing; run bench/setup_authors.sh "
                         f"{family}")
    return venv / "bin" / "python"


def _lucida_cmd(pack: Path, nifti: Path, modality: str, threads: int, out: Path) -> list[str]:
    # The rewrite cache sits beside the outputs, as the app's beside its job folders.
    return [sys.executable, str(BENCH / "_run_lucida_pack.py"), "--pack", str(pack),
            "--input", str(nifti), "--modality", modality, "--threads", str(threads),
            "--out", str(out), "--rewrite-cache", str(out.parent / "graph-rewrites")]


def _read_kji(path: Path) -> npt.NDArray[Any]:
    import SimpleITK as sitk

    return np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


def _reference_kji(npz: Path, key: str) -> npt.NDArray[Any] | None:
    """A staged reference array (saved in NIfTI (i, j, k) order) as [k, j, i], if present."""
    if not npz.is_file():
        return None
    with np.load(npz) as data:
        return np.ascontiguousarray(np.asarray(data[key]).transpose(2, 1, 0))


def _build(family: str, src: Path, out: Path, model: str | None = None) -> Path:
    from inference.importers.registry import pack_builder

    t0 = time.perf_counter()
    try:
        pack = pack_builder(family)(src, out, model=model)[0]
    except Exception as exc:  # ModelPackError and the importers' own: one family fails
        raise BenchError(f"{family}: Lucida's importer failed on {src}: {exc}") from exc
    print(f"  built Lucida pack {pack.name} in {time.perf_counter() - t0:.1f} s (not timed)",
          flush=True)
    return pack


def prepare_brainchop(args: argparse.Namespace, models: Path, work: Path) -> Case:
    src = models / "brainchop-meshnet"
    cli_dir = src / BRAINCHOP_MODEL / "brainchop-cli-format"
    nifti = models / CONFORMED
    for need in (cli_dir / "model.json", cli_dir / "model.pth", nifti):
        if not need.is_file():
            raise BenchError(f"brainchop: {need} is missing")
    python = _venv_python(args.venvs, "brainchop")
    pack = _build("brainchop", src, work / "packs", model=BRAINCHOP_MODEL)
    theirs = work / "brainchop" / "authors" / "labels.nii.gz"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    home = args.venvs / "brainchop-home"  # bench-owned HOME: listing + tinygrad kernel cache
    lucida_out = work / "brainchop" / "lucida"

    def compare(_lu: Run, _th: Run) -> list[str]:
        a = np.load(lucida_out / "labels.npy")
        b = _read_kji(theirs)
        lines = [f"label agreement Lucida vs brainchop CLI: {label_agreement(a, b) * 100:.4f} %"
                 f" ({int(np.count_nonzero(a != b))} voxels differ)"]
        ref = _reference_kji(src / "reference" / f"{BRAINCHOP_MODEL}_labels_xyz.npz", "labels")
        if ref is not None:
            lines.append(f"vs the staged reference labels: Lucida "
                         f"{label_agreement(a, ref) * 100:.4f} %, brainchop CLI "
                         f"{label_agreement(b, ref) * 100:.4f} %")
        return lines

    return Case(
        "brainchop", f"{BRAINCHOP_MODEL} (3 classes) on {CONFORMED.name} (256^3 uint8)",
        _lucida_cmd(pack, nifti, "MR", args.threads, lucida_out),
        [str(python), str(BENCH / "_author_brainchop.py"), "--input", str(nifti),
         "--model-dir", str(cli_dir), "--out", str(theirs), "--home", str(home)],
        _side_env(args.threads, python.parent.parent), "brainchop 0.2.5 CLI (tinygrad)", compare)


def prepare_deepbet(args: argparse.Namespace, models: Path, work: Path) -> Case | None:
    pack = args.deepbet_pack
    if pack is not None and (pack / "EXPORT.json").is_file():  # an export: build the pack
        pack = _build("deepbet", pack, work / "packs")
    if pack is None or not (pack / "manifest.json").is_file():
        why = ("--deepbet-pack not given" if pack is None
               else f"{pack} has neither manifest.json (a pack) nor EXPORT.json (an export)")
        print(f"deepbet: skipped: no Lucida deepbet pack ({why})", flush=True)
        return None
    nifti = models / CONFORMED
    python = _venv_python(args.venvs, "deepbet")
    out = work / "deepbet" / "authors"
    out.mkdir(parents=True, exist_ok=True)
    lucida_out = work / "deepbet" / "lucida"

    def compare(_lu: Run, _th: Run) -> list[str]:
        a = np.load(lucida_out / "labels.npy")
        b = _read_kji(out / "mask.nii.gz")
        lines = [f"mask Dice Lucida vs deepbet-cli: {dice(a, b):.5f} ({int(np.count_nonzero(a))}"
                 f" vs {int(np.count_nonzero(b))} brain voxels)"]
        ref = _reference_kji(models / "deepbet" / "reference" / "deepbet_mask.npz", "mask")
        if ref is not None:
            lines.append(f"Dice vs the staged reference mask: Lucida {dice(a, ref):.5f}, "
                         f"deepbet-cli {dice(b, ref):.5f}")
        return lines

    return Case(
        "deepbet", f"two-stage brain mask on {CONFORMED.name}",
        _lucida_cmd(pack, nifti, "MR", args.threads, lucida_out),
        [str(python), str(BENCH / "_author_deepbet.py"), "--input", str(nifti),
         "--brain", str(out / "brain.nii.gz"), "--mask", str(out / "mask.nii.gz"),
         "--threads", str(args.threads)],
        _side_env(args.threads, python.parent.parent), "deepbet-cli 1.0.2 (torch)", compare)


def write_head_ct_block(data: Path, edge_mm: float, grid: str, out: Path) -> str:
    """Write the centred block of the gantry-tilt head CT as NIfTI; returns a description."""
    import SimpleITK as sitk

    from core.convert import to_sitk
    from dicomio.load import read_volume

    files = sorted((data / TILT).glob("*.dcm"))
    if not files:
        raise BenchError(f"blast-ct: no DICOM files in {data / TILT}")
    vol = read_volume(files)
    if grid == "native":
        lo, hi = centred_block(vol.shape, vol.spacing_mm, edge_mm)
        affine = vol.affine.copy()
        affine[:3, 3] = vol.index_to_lps(lo)
        block = np.ascontiguousarray(vol.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
        image = to_sitk(block.astype(np.float32), affine)
        desc = (f"{block.shape} voxels of the tilted grid "
                f"({' x '.join(f'{s:.2f}' for s in vol.spacing_mm)} mm)")
    else:
        n = round(edge_mm)
        centre = vol.index_to_lps((np.asarray(vol.shape, dtype=np.float64) - 1) / 2)
        src = to_sitk(vol.array.astype(np.float32), vol.affine)
        ref = sitk.Image([n, n, n], sitk.sitkFloat32)
        ref.SetSpacing((1.0, 1.0, 1.0))
        ref.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        ref.SetOrigin(tuple(float(c) - (n - 1) / 2 for c in centre))
        image = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear,
                              float(vol.array.min()))
        desc = f"{n}^3 voxels, 1 mm, axis-aligned LPS (resampled once from the tilted series)"
    sitk.WriteImage(image, str(out))
    return f"{desc}, centred in the {vol.shape} series"


def _pack_with_members(pack: Path, members: int) -> Path:
    """The pack with only its first ``members`` ONNX files (a bench-only copy)."""
    manifest = json.loads((pack / "manifest.json").read_text())
    if members >= len(manifest["files"]):
        return pack
    manifest["files"] = manifest["files"][:members]
    if members == 1:
        manifest.pop("ensemble", None)
    manifest["id"] = f"{manifest['id']}-{members}m"
    (pack / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return pack


def prepare_blast(args: argparse.Namespace, models: Path, work: Path) -> Case:
    src = models / "blast-ct"
    weights = src / "weights_v1"
    if not weights.is_dir():
        raise BenchError(f"blast-ct: {weights} is missing")
    if args.shared is None or not (args.shared / "data").is_dir():
        raise BenchError("blast-ct: the shared data folder (head CT) is missing")
    python = _venv_python(args.venvs, "blast-ct")
    nifti = work / "blast-ct" / "head_ct_block.nii.gz"
    nifti.parent.mkdir(parents=True, exist_ok=True)
    desc = write_head_ct_block(args.shared / "data", args.blast_mm, args.blast_grid, nifti)
    pack = _pack_with_members(_build("blast-ct", src, work / "packs"), args.members)
    out = work / "blast-ct" / "authors"
    lucida_out = work / "blast-ct" / "lucida"

    def compare(_lu: Run, th: Run) -> list[str]:
        a = np.load(lucida_out / "labels.npy")
        b = _read_kji(Path(th.extra["prediction"]))
        counts = " ".join(f"{c}:{int(np.count_nonzero(a == c))}/{int(np.count_nonzero(b == c))}"
                          for c in range(1, 5))
        lines = [f"label agreement Lucida vs blast-ct: {label_agreement(a, b) * 100:.4f} % "
                 f"(lesion voxels per class, Lucida/theirs: {counts})"]
        heat_a, heat_b = lucida_out / "heat.npy", out / "authors_heat.npy"
        if heat_a.is_file() and heat_b.is_file():
            mx, mean = abs_diff(np.load(heat_a), np.load(heat_b))
            lines.append(f"lesion probability 1 - p(background), |Lucida - blast-ct|: max "
                         f"{mx:.2e}, mean {mean:.2e} (both resampled linearly onto the input)")
        return lines

    return Case(
        "blast-ct", f"{args.members} V1 member(s) on a head CT block: {desc}",
        _lucida_cmd(pack, nifti, "CT", args.threads, lucida_out),
        [str(python), str(BENCH / "_author_blast_ct.py"), "--input", str(nifti),
         "--weights", str(weights), "--members", str(args.members), "--out", str(out),
         "--threads", str(args.threads)],
        _side_env(args.threads, python.parent.parent), "blast-ct 2.1.0 (PyTorch)", compare)


def _fmt_run(side: str, r: Run) -> str:
    return (f"  {side:30} wall {r.wall_s:7.1f} s   in-process {r.seconds:7.1f} s   "
            f"peak RSS {r.peak_rss_mb:7.0f} MB")


def run_case(case: Case, repeat: int, work: Path) -> dict[str, Any]:
    print(f"{case.family}: {case.what}", flush=True)
    runs: dict[str, list[Run]] = {"lucida": [], "theirs": []}
    lucida_env = _side_env(int(case.author_env["OMP_NUM_THREADS"]))  # same thread limits
    for i in range(repeat):
        for side in ("lucida", "theirs"):
            cmd = case.lucida_cmd if side == "lucida" else case.author_cmd
            env = lucida_env if side == "lucida" else case.author_env
            r = _child(cmd, env, work / "logs" / f"{case.family}-{side}-{i + 1}.log")
            runs[side].append(r)
            name = "Lucida (onnxruntime)" if side == "lucida" else case.author_name
            print(_fmt_run(name, r) + (f"   [{r.extra['note']}]" if "note" in r.extra else ""),
                  flush=True)
            if side == "lucida" and "timings_s" in r.extra:
                print(f"    Lucida timings (s): {r.extra['timings_s']}", flush=True)
    lu, th = median_run(runs["lucida"]), median_run(runs["theirs"])
    agreement = case.compare(runs["lucida"][-1], runs["theirs"][-1])
    for line in agreement:
        print(f"  {line}", flush=True)
    return {"case": case, "lucida": lu, "theirs": th, "agreement": agreement}


def print_table(results: list[dict[str, Any]], threads: int, repeat: int) -> None:
    print()
    print(f"=== Lucida vs the authors' CPU pipelines: {threads} thread(s), median of {repeat} "
          "run(s) per side ===")
    print(f"{'family':10} {'side':30} {'wall s':>8} {'in-proc s':>10} {'peak MB':>8}")
    for res in results:
        case: Case = res["case"]
        for side, name in (("lucida", "Lucida (onnxruntime)"), ("theirs", case.author_name)):
            r: Run = res[side]
            print(f"{case.family:10} {name:30} {r.wall_s:8.1f} {r.seconds:10.1f} "
                  f"{r.peak_rss_mb:8.0f}")
        lu, th = res["lucida"], res["theirs"]
        print(f"{'':10} {ratio_line('time', lu.wall_s, th.wall_s, TARGET_TIME)} (wall; "
              f"in-process {lu.seconds / th.seconds:.2f})")
        print(f"{'':10} {ratio_line('memory', lu.peak_rss_mb, th.peak_rss_mb, TARGET_MEMORY)}")
        for line in res["agreement"]:
            print(f"{'':10} {line}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env_root = os.environ.get("LUCIDA_SHARED")
    args.shared = args.shared or (Path(env_root) if env_root else REPO.parent / "shared")
    models = args.shared / "models-src"
    if not models.is_dir():
        print(f"no {models}: the staged models are needed (set LUCIDA_SHARED or --shared)",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    os.environ.update(ORT_DISABLE_TELEMETRY="1", ORT_TELEMETRY_DISABLED="1")
    tmp = None
    if args.keep is not None:
        work = args.keep
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="lucida-bench-models-")
        work = Path(tmp)
    preparers = {"brainchop": prepare_brainchop, "deepbet": prepare_deepbet,
                 "blast-ct": prepare_blast}
    results, failed = [], []
    try:
        for family in args.family:
            try:
                case = preparers[family](args, models, work)
                if case is not None:
                    results.append(run_case(case, args.repeat, work))
            except BenchError as exc:
                failed.append(family)
                print(f"{family}: FAILED: {exc}", file=sys.stderr, flush=True)
        if results:
            print_table(results, args.threads, args.repeat)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
