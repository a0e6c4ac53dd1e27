"""Run the import-path fuzzer (atheris/libFuzzer) for a given time; ``make fuzz``.

    python -m tests.fuzz.run --seconds 900                  # every target, time split
    python -m tests.fuzz.run --seconds 600 --targets file   # one target
    python -m tests.fuzz.run --replay PATH --target file    # one input, prints the finding
    python -m tests.fuzz.run --minimize PATH --target file  # shrink an input, same finding

Everything it writes goes under ``.fuzz/`` (which carries its own ``.gitignore``):
``corpus/<target>/`` (seeds + what libFuzzer keeps), ``findings/<target>-<hash>/``
(signature, traceback, smallest input of each distinct finding),
``crashes/<target>/`` (libFuzzer's artifacts: aborts, segfaults, timeouts, OOMs)
and ``logs/`` (the raw output of each run and ``runs.jsonl``, one line per run).

A Python-level finding (see :mod:`tests.fuzz.target`) is recorded and the run
goes on, so one bug does not end it; a process-level crash stops libFuzzer, and
the run is restarted for the time left (the corpus persists).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FUZZ_DIR = REPO_ROOT / ".fuzz"
DICT = Path(__file__).with_name("dicom.dict")
#: How the time of a multi-target run is shared (the byte-level file target finds most).
WEIGHTS = {"file": 4, "series": 2, "synth": 2, "zip": 1, "dicomdir": 1}
INSTRUMENTED = ["dicomio", "core", "pydicom"]
MAX_LEN = {"file": 131072, "zip": 131072, "series": 262144, "dicomdir": 65536, "synth": 4096}
MAX_RESTARTS = 8
#: Same value as tests.fuzz.target.DEFAULT_ADDRESS_SPACE_MB (not imported: see _worker).
DEFAULT_ADDRESS_SPACE_MB = 8192

_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+.*?"
                     r"(?:exec/s: (\d+))?(?: rss: (\d+)Mb)?$")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")


# --------------------------------------------------------------------------- worker


def _worker(target: str, cpu_seconds: float, libfuzzer_args: list[str]) -> None:
    """In the child: instrument, then hand control to libFuzzer (never returns)."""
    import logging
    import resource
    import warnings

    # Nothing of Lucida or pydicom may be imported before instrument_imports below,
    # or it runs uninstrumented (no coverage feedback); so the cap is set inline.
    cap = DEFAULT_ADDRESS_SPACE_MB * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    warnings.simplefilter("ignore")  # pydicom warns on every odd element: noise and time
    logging.disable(logging.CRITICAL)

    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        # Imported here, not lazily by the code under test, so that they are instrumented.
        import pydicom.encaps
        import pydicom.fileset
        import pydicom.pixels  # noqa: F401  (the decoders pydicom falls back to)

        import dicomio.decode
        import dicomio.multiframe
        import dicomio.stack  # noqa: F401
        from tests.fuzz import target as fuzz_target
    if target == "synth":
        from tests.fuzz import synth  # noqa: F401  (imported before the first input)

    recorder = fuzz_target.Recorder(FUZZ_DIR / "findings", target)

    def one_input(data: bytes) -> None:
        try:
            fuzz_target.check(target, data, cpu_seconds=cpu_seconds)
        except fuzz_target.Finding as finding:
            recorder.record(finding, data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


# --------------------------------------------------------------------------- parent


def _libfuzzer_args(target: str, seconds: int, args: argparse.Namespace) -> list[str]:
    crashes = FUZZ_DIR / "crashes" / target
    crashes.mkdir(parents=True, exist_ok=True)
    return [
        f"-max_total_time={seconds}",
        # Wall-clock backstop for hangs in C code; Python-level hangs are caught
        # earlier by the CPU-time limit inside the target.
        f"-timeout={int(args.cpu_seconds * 3)}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-max_len={MAX_LEN[target]}",
        f"-artifact_prefix={crashes}/",
        f"-dict={DICT}",
        "-print_final_stats=1",
        "-print_pcs=0",
        str(FUZZ_DIR / "corpus" / target),
    ]


def _run_child(target: str, seconds: int, args: argparse.Namespace, log_path: Path
               ) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tests.fuzz.run", "--worker", target,
           "--cpu-seconds", str(args.cpu_seconds), "--", *_libfuzzer_args(target, seconds, args)]
    stats: dict[str, Any] = {"target": target, "execs": 0, "cov": 0, "ft": 0, "corpus": 0,
                             "exec_per_s": 0, "rss_mb": 0, "artifacts": [], "new_findings": []}
    started = time.monotonic()
    with open(log_path, "a") as log, subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=os.environ | {"RUST_BACKTRACE": "0"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            line = line.rstrip("\n")
            if m := _STATUS.match(line):
                stats.update(execs=int(m[1]), cov=int(m[3]), ft=int(m[4]), corpus=int(m[5]))
                if m[6]:
                    stats["exec_per_s"] = int(m[6])
                if m[7]:
                    stats["rss_mb"] = int(m[7])
                if m[2] in ("DONE", "INITED") or args.verbose:
                    print(f"  [{target}] {line}", flush=True)
            elif m := _STAT.match(line):
                key = {"number_of_executed_units": "execs", "average_exec_per_sec":
                       "exec_per_s", "peak_rss_mb": "rss_mb"}.get(m[1])
                if key:
                    stats[key] = int(m[2])
            elif "Test unit written to" in line:
                stats["artifacts"].append(line.split()[-1])
                print(f"  [{target}] {line}", flush=True)
            elif line.startswith("=== NEW FINDING"):
                stats["new_findings"].append(line.removeprefix("=== NEW FINDING "))
                print(f"  [{target}] {line}", flush=True)
            elif "ERROR: libFuzzer" in line or "Uncaught Python exception" in line:
                print(f"  [{target}] {line}", flush=True)
        returncode = proc.wait()
    stats.update(returncode=returncode, seconds=round(time.monotonic() - started, 1))
    return stats


def fuzz(args: argparse.Namespace) -> int:
    from tests.fuzz.corpus import build, protect

    protect(FUZZ_DIR)
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(WEIGHTS)
    if unknown:
        print(f"unknown target(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.rebuild_corpus or not any((FUZZ_DIR / "corpus").glob("*/*")):
        counts = build(FUZZ_DIR / "corpus")
        print("seed corpus:", " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    total_weight = sum(WEIGHTS[t] for t in targets)
    logs = FUZZ_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                          capture_output=True, text=True).stdout.strip()
    # The harness fuzzes the working tree: note edits to the import path not yet committed.
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "dicomio", "core"],
                           cwd=REPO_ROOT, capture_output=True, text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    summary: list[dict[str, Any]] = []
    for target in targets:
        budget = max(30, int(args.seconds * WEIGHTS[target] / total_weight))
        deadline = time.monotonic() + budget
        log_path = logs / f"{stamp}-{target}.log"
        print(f"[{target}] fuzzing for {budget} s (log {log_path.relative_to(REPO_ROOT)})",
              flush=True)
        total: dict[str, Any] = {"target": target, "execs": 0, "seconds": 0.0, "restarts": 0,
                                 "artifacts": [], "new_findings": [], "commit": head,
                                 "uncommitted": dirty}
        while True:
            left = int(deadline - time.monotonic())
            if left < 20:
                break
            stats = _run_child(target, left, args, log_path)
            total["execs"] += stats["execs"]
            total["seconds"] += stats["seconds"]
            total["artifacts"] += stats["artifacts"]
            total["new_findings"] += stats["new_findings"]
            for key in ("cov", "ft", "corpus", "rss_mb"):
                total[key] = max(total.get(key, 0), stats[key])
            if stats["returncode"] == 0:
                break
            total["restarts"] += 1
            if total["restarts"] >= MAX_RESTARTS:
                print(f"[{target}] stopping after {MAX_RESTARTS} process-level crashes")
                break
        total["exec_per_s"] = round(total["execs"] / max(total["seconds"], 1e-9), 1)
        total["seconds"] = round(total["seconds"], 1)
        summary.append(total)
        with open(logs / "runs.jsonl", "a") as out:
            out.write(json.dumps({"started": stamp, **total}) + "\n")
    print(f"\nfuzz summary (commit {head}{' + uncommitted import-path edits' if dirty else ''}):")
    for row in summary:
        print(f"  {row['target']:8s} {row['seconds']:7.0f} s  {row['execs']:9d} execs  "
              f"{row['exec_per_s']:6.1f}/s  cov {row.get('cov', 0)} ft {row.get('ft', 0)}  "
              f"corpus {row.get('corpus', 0)}  new findings {len(row['new_findings'])}  "
              f"crash artifacts {len(row['artifacts'])}")
    known = sorted((FUZZ_DIR / "findings").glob("*/signature.txt"))
    print(f"findings recorded so far: {len(known)} (in .fuzz/findings/)")
    for path in known:
        print(f"  {path.parent.name}: {path.read_text().strip()}")
    return 0


# --------------------------------------------------------------------------- replay / minimize


def _quiet() -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)


def replay(args: argparse.Namespace) -> int:
    from tests.fuzz.target import limit_address_space
    from tests.fuzz.target import replay as run_one

    limit_address_space()
    _quiet()
    finding = run_one(args.target, Path(args.replay), cpu_seconds=args.cpu_seconds)
    if finding is None:
        print("clean")
        return 0
    print(finding.signature)
    print(finding.detail)
    return 1


def _ddmin(items: list[Any], still_fails: Any) -> list[Any]:
    """Smallest sublist (1-minimal by chunks) for which ``still_fails`` holds."""
    chunk = max(1, len(items) // 2)
    while chunk >= 1:
        start, changed = 0, False
        while start < len(items):
            candidate = items[:start] + items[start + chunk:]
            if still_fails(candidate):
                items, changed = candidate, True
            else:
                start += chunk
        if not changed:
            chunk //= 2
    return items


def minimize(args: argparse.Namespace) -> int:
    """Shrink an input while the same signature still fires.

    Without ``--base``: delta debugging over the bytes. With ``--base FILE`` (the
    zoo file the input was mutated from): over the differences from that file,
    so the result is the base file plus the few edits that matter — a
    regression input that is a known public test file with N bytes changed.
    """
    import difflib

    from tests.fuzz.target import Finding, check, limit_address_space

    limit_address_space()
    _quiet()
    data = Path(args.minimize).read_bytes()

    def signature(candidate: bytes) -> str | None:
        try:
            check(args.target, candidate, cpu_seconds=args.cpu_seconds)
        except Finding as finding:
            return finding.signature
        return None

    wanted = signature(data)
    if wanted is None:
        print("the input is clean: nothing to minimise")
        return 1
    print(f"signature: {wanted}; {len(data)} bytes", flush=True)
    if args.base:
        base = Path(args.base).read_bytes()
        hunks = [op for op in difflib.SequenceMatcher(None, base, data, autojunk=False)
                 .get_opcodes() if op[0] != "equal"]

        def apply(chosen: list[tuple[str, int, int, int, int]]) -> bytes:
            out, pos = bytearray(), 0
            for _tag, i1, i2, j1, j2 in chosen:
                out += base[pos:i1] + data[j1:j2]
                pos = i2
            return bytes(out + base[pos:])

        print(f"{len(hunks)} differences from the base file", flush=True)
        hunks = _ddmin(hunks, lambda chosen: signature(apply(chosen)) == wanted)
        mutated = Path(args.minimize).read_bytes()
        for _tag, i1, i2, j1, j2 in hunks:
            print(f"  base[{i1}:{i2}] {base[i1:i2][:24]!r} -> {mutated[j1:j2][:24]!r}")
        data = apply(hunks)
    else:
        chunks = [data[i:i + 1] for i in range(len(data))]
        if len(chunks) > 4096:  # coarse first: byte-level ddmin on 100 KB is too slow
            step = len(data) // 512 + 1
            chunks = [data[i:i + step] for i in range(0, len(data), step)]
        kept = _ddmin(chunks, lambda c: bool(c) and signature(b"".join(c)) == wanted)
        data = b"".join(kept)
    out = Path(args.out) if args.out else Path(args.minimize).with_suffix(".min")
    out.write_bytes(data)
    print(f"minimised to {len(data)} bytes: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        target = argv[1]
        rest = argv[2:]
        cpu = 10.0
        if rest[:1] == ["--cpu-seconds"]:
            cpu, rest = float(rest[1]), rest[2:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        _worker(target, cpu, rest)
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600,
                        help="total fuzzing time, split among the targets (30 s each at least)")
    parser.add_argument("--targets", default=",".join(WEIGHTS),
                        help=f"comma-separated, of {', '.join(WEIGHTS)}")
    parser.add_argument("--cpu-seconds", type=float, default=10.0,
                        help="CPU time one input may take before it counts as a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=4096)
    parser.add_argument("--rebuild-corpus", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every libFuzzer status")
    parser.add_argument("--replay", metavar="PATH")
    parser.add_argument("--minimize", metavar="PATH")
    parser.add_argument("--target", default="file", help="for --replay / --minimize")
    parser.add_argument("--base", help="for --minimize: the file the input was mutated from")
    parser.add_argument("--out", help="for --minimize: where to write the result")
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args)
    if args.minimize:
        return minimize(args)
    return fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
