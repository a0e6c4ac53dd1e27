"""Benchmark: start-up time to the first rendered frame of the demo study.

Times ``lucida`` from the virtual environment and the packaged one-folder build
(``dist/lucida/lucida``, skipped with a note when it is not built) in the same
run, each to its first frame (``lucida --first-frame-exit``, app/first_frame.py:
seconds from the kernel's start of the process to VTK's end of the first render
of a slice view holding the study). Targets (issue 19): packaged cold <= 2 s,
warm <= 1 s::

    python bench/startup.py [--runs 5] [--bundle dist/lucida/lucida] [--json OUT]

A throw-away library is prepared first with the demo study (one unmeasured
first launch of the venv ``lucida``: it writes and imports the demo). Then, per
program: "cold" = the first run after the page cache was emptied
(``echo 3 > /proc/sys/vm/drop_caches``; where that is refused, every file of
the program's tree, the Python installation and the library is evicted with
``posix_fadvise(DONTNEED)``; the method used is printed), "warm" = the median
of the N-1 runs that follow. Both programs run with the same small environment
(DISPLAY, XAUTHORITY, PATH, LANG and a fresh HOME). Runs itself under
``xvfb-run`` when DISPLAY is unset.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX = "first-frame"  # the lines app/first_frame.py prints
PHASES_PREFIX = "first-frame-phases"
PHASES = ("gui", "window", "demo", "image", "frame")
XVFB_SCREEN = "-screen 0 1920x1080x24"
RUN_TIMEOUT_S = 180.0


@dataclass
class Sample:
    first_frame_s: float  # printed by the app: since the kernel started the process
    line_s: float         # seen from here: from before the spawn to reading that line
    phases: dict[str, float] = field(default_factory=dict)  # process age at each step


@dataclass
class Result:
    name: str
    program: Path
    cold: Sample | None = None
    warm: list[Sample] = field(default_factory=list)

    def warm_median(self) -> float | None:
        return statistics.median(s.first_frame_s for s in self.warm) if self.warm else None


def reexec_under_xvfb() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("LUCIDA_BENCH_XVFB"):
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        sys.exit("no DISPLAY and no xvfb-run: install xvfb (packaging/system-deps.sh)")
    env = {**os.environ, "LUCIDA_BENCH_XVFB": "1"}
    os.execve(xvfb, [xvfb, "-a", "-s", XVFB_SCREEN, sys.executable, *sys.argv], env)


def run_env(home: Path) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "LANG": os.environ.get("LANG", "C.UTF-8")}
    for name in ("DISPLAY", "XAUTHORITY"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def time_start(program: Path, library: Path, env: dict[str, str]) -> Sample:
    """One start to the first frame; raises when the program fails or prints no time."""
    cmd = [str(program), "--library", str(library), "--first-frame-exit"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    seen: Sample | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(PREFIX + " "):
            seen = Sample(float(line.split()[1]), time.monotonic() - start)
        elif line.startswith(PHASES_PREFIX + " ") and seen is not None:
            seen.phases = {k: float(v) for k, v in (x.split("=") for x in line.split()[1:])}
            break
    try:
        _out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    if proc.returncode != 0 or seen is None:
        raise RuntimeError(f"{program} exited {proc.returncode} without a first frame: "
                           f"{err.strip()[-2000:]}")
    return seen


def drop_caches() -> bool:
    """Empty the page cache (root only); False when the kernel refuses."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def evict_tree(root: Path) -> int:
    """posix_fadvise(DONTNEED) over every regular file under ``root``; returns the count."""
    count = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return count


def make_cold(trees: list[Path]) -> str:
    """Empty the caches the next start reads from; says how."""
    if drop_caches():
        return "drop_caches (sync; echo 3 > /proc/sys/vm/drop_caches)"
    files = sum(evict_tree(t) for t in trees if t.exists())
    return f"posix_fadvise(DONTNEED) over {files} files ({', '.join(map(str, trees))})"


def python_trees() -> list[Path]:
    """The interpreter's own files (stdlib, libpython) that a venv start reads."""
    paths = {Path(sysconfig.get_paths()["stdlib"]), Path(sys.base_prefix) / "lib"}
    return sorted(p for p in paths if p.exists())


def measure(result: Result, library: Path, env: dict[str, str], runs: int,
            trees: list[Path]) -> str:
    how = make_cold(trees)
    result.cold = time_start(result.program, library, env)
    for _ in range(runs - 1):
        result.warm.append(time_start(result.program, library, env))
    return how


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_table(results: list[Result]) -> None:
    print(f"{'program':<10} {'cold s':>7} {'warm s (median)':>16} {'warm min..max':>14} "
          f"{'cold/warm seen from outside s':>30}")
    for r in results:
        warm = [s.first_frame_s for s in r.warm]
        spread = f"{min(warm):.2f}..{max(warm):.2f}" if warm else "—"
        outside = (f"{r.cold.line_s:.2f} / "
                   f"{statistics.median(s.line_s for s in r.warm):.2f}"
                   if r.cold is not None and r.warm else fmt(r.cold.line_s if r.cold else None))
        print(f"{r.name:<10} {fmt(r.cold.first_frame_s if r.cold else None):>7} "
              f"{fmt(r.warm_median()):>16} {spread:>14} {outside:>30}")
    print("where the warm time goes (median process age in s when each step was reached: "
          "gui = interpreter and command line ready, window = main window built, demo = demo "
          "series found, image = first slices handed to the views, frame = drawn):")
    for r in results:
        steps = [f"{p}={statistics.median(s.phases[p] for s in r.warm):.2f}" for p in PHASES
                 if r.warm and all(p in s.phases for s in r.warm)]
        print(f"  {r.name:<10} {' '.join(steps) or '—'}")
    if len(results) != 2:
        return
    venv_cold, packaged_cold = results[0].cold, results[1].cold
    if venv_cold is not None and packaged_cold is not None:
        cold = packaged_cold.first_frame_s / venv_cold.first_frame_s
        warm_v, warm_p = results[0].warm_median(), results[1].warm_median()
        print(f"ratio packaged/venv: cold {cold:.2f}"
              + (f", warm {warm_p / warm_v:.2f}" if warm_v and warm_p else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts per program (default 5): "
                        "one cold, the rest warm")
    parser.add_argument("--venv-lucida", type=Path, default=REPO / ".venv" / "bin" / "lucida")
    parser.add_argument("--bundle", type=Path, default=REPO / "dist" / "lucida" / "lucida",
                        help="the packaged program (default dist/lucida/lucida)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2 (one cold, one warm)")
    reexec_under_xvfb()

    programs = [Result("venv", args.venv_lucida.absolute())]
    if args.bundle.exists():
        programs.append(Result("packaged", args.bundle.absolute()))
    else:
        print(f"note: no packaged build at {args.bundle} (make package); timing the venv only")

    with tempfile.TemporaryDirectory(prefix="lucida-startup-") as tmp:
        library, home = Path(tmp) / "library", Path(tmp) / "home"
        home.mkdir()
        env = run_env(home)
        prep = time_start(programs[0].program, library, env)
        print(f"library prepared (first launch, demo written and imported): "
              f"{prep.first_frame_s:.2f} s to its first frame")
        methods = []
        failed = False
        for result in programs:
            # Only for the fallback: the files the start reads (the repo holds .venv).
            trees = ([result.program.parent, library] if result.name == "packaged"
                     else [REPO, *python_trees(), library])
            try:
                how = measure(result, library, env, args.runs, trees)
            except (OSError, RuntimeError) as exc:  # e.g. a bundle being rebuilt meanwhile
                print(f"note: {result.name} could not be timed: {exc}")
                failed = True
                continue
            methods.append(f"{result.name}: {how}")
    print(f"cold = first start after emptying the cache; {'; '.join(methods)}")
    print(f"runs per program: {args.runs} (1 cold, {args.runs - 1} warm); first frame in s "
          "since the process started (kernel start time)")
    print_table(programs)
    if args.json is not None:
        args.json.write_text(json.dumps([{
            "program": r.name, "path": str(r.program),
            "cold_s": r.cold.first_frame_s if r.cold else None,
            "warm_s": [s.first_frame_s for s in r.warm], "warm_median_s": r.warm_median(),
            "cold_seen_outside_s": r.cold.line_s if r.cold else None,
            "warm_seen_outside_s": [s.line_s for s in r.warm],
            "warm_phases": [s.phases for s in r.warm]} for r in programs], indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
