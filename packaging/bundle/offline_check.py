"""Offline guarantee: run a command with no network and a fresh HOME, prove it stayed home.

The command runs in a new network namespace (``unshare -n``: no interface but a downed
loopback), with a virtual display started inside it (``xvfb-run``, access control off so
no X cookie is needed), in a clean environment (``env -i`` with only DISPLAY, PATH and
HOME), under ``strace -f``. Afterwards:

* no ``connect``/``sendto``/``sendmsg`` to an AF_INET or AF_INET6 address was attempted
  (unix sockets, the X server's among them, are fine);
* every file or folder it created lies in an allowed place: Lucida's library and
  settings folders under HOME, the smoke report folder, temporary folders that are gone
  again at the end, /dev/shm (multiprocessing) and /dev, /proc;
* nothing is left under HOME outside Lucida's folders (file trees compared before and
  after), in particular never ``~/.cache/Microsoft`` (onnxruntime's telemetry cache);
* no traceback was printed (a crashed helper process exits 0 for its parent).

    python packaging/bundle/offline_check.py --out DIR -- dist/lucida/lucida --smoke-test
    (``--smoke-out DIR/smoke`` is appended for a command with --smoke-test)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TRACED = ("connect", "sendto", "sendmsg", "open", "openat", "creat", "mkdir", "mkdirat",
          "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat")
# Where Lucida may write under HOME (platformdirs' Linux folders for "Lucida").
HOME_ALLOWED = (".local/share/Lucida", ".config/Lucida", ".cache/Lucida", ".local/state/Lucida")
# Outside HOME: the kernel's and multiprocessing's places.
SYSTEM_ALLOWED = ("/dev/", "/proc/", "/sys/")
_INET = re.compile(r"sa_family=AF_INET6?\b")
_CALL = re.compile(r"^(?:\[pid\s+)?(?P<pid>\d+)?\]?\s*(?P<call>\w+)\((?P<args>.*)$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WRITE_FLAGS = re.compile(r"\bO_(?:WRONLY|RDWR|CREAT)\b")


@dataclass
class Trace:
    """What a strace log says the program tried: network connections and writes."""

    inet: list[str] = field(default_factory=list)  # the offending strace lines
    created: list[str] = field(default_factory=list)  # absolute paths written or made


def parse_strace(lines: Iterable[str], cwd: str = "/") -> Trace:
    trace = Trace()
    for raw in lines:
        line = raw.rstrip("\n")
        match = _CALL.match(line)
        if match is None:
            continue
        call, args = match.group("call"), match.group("args")
        if call in ("connect", "sendto", "sendmsg"):
            if _INET.search(args):
                trace.inet.append(line)
            continue
        strings = _STRING.findall(args)
        if not strings:
            continue
        if call in ("open", "openat", "creat"):
            if call != "creat" and not _WRITE_FLAGS.search(args):
                continue
            target = strings[0]
        elif call in ("mkdir", "mkdirat"):
            target = strings[0]
        elif call in ("rename", "renameat", "renameat2", "link", "linkat", "symlink",
                      "symlinkat"):
            target = strings[-1]
        else:
            continue
        path = target.encode().decode("unicode_escape")
        trace.created.append(os.path.normpath(os.path.join(cwd, path)))
    return trace


def snapshot(root: Path) -> set[str]:
    """Every file and folder under root, relative, as posix strings."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


@dataclass
class Verdict:
    inet: list[str]
    outside: list[str]  # created where nothing may be created
    home_left: list[str]  # left under HOME outside Lucida's folders
    left_behind: list[str]  # created outside HOME and the report, still there at the end

    @property
    def ok(self) -> bool:
        return not (self.inet or self.outside or self.home_left or self.left_behind)

    def reasons(self) -> list[str]:
        out = [f"network connection attempted: {line}" for line in self.inet[:5]]
        out += [f"created outside the allowed places: {p}" for p in self.outside[:10]]
        out += [f"left under HOME outside Lucida's folders: {p}" for p in self.home_left[:10]]
        out += [f"left behind: {p}" for p in self.left_behind[:10]]
        return out


def judge(trace: Trace, home: Path, before: set[str], after: set[str],
          report_dir: Path | None, temp_roots: Sequence[str] = ("/tmp", "/var/tmp")) -> Verdict:
    home_s = str(home)
    allowed_home = [f"{home_s}/{rel}" for rel in HOME_ALLOWED]
    outside: list[str] = []
    left: list[str] = []
    for path in dict.fromkeys(trace.created):
        if _under(path, home_s):
            if path != home_s and not any(_under(path, a) for a in allowed_home) and not any(
                    _under(a, path) for a in allowed_home):  # a parent of an allowed folder
                outside.append(path)
            continue
        if report_dir is not None and _under(path, str(report_dir)):
            continue
        if any(_under(path, s) for s in SYSTEM_ALLOWED) or path.startswith("/dev/shm/"):
            continue
        if any(_under(path, t) for t in temp_roots):
            if os.path.lexists(path):
                left.append(path)
            continue
        outside.append(path)
    home_left = []
    for rel in sorted(after - before):
        if not any(_under(rel, a) or _under(a, rel) for a in HOME_ALLOWED):
            home_left.append(f"~/{rel}")
    return Verdict(trace.inet, outside, home_left, left)


def offline_command(command: Sequence[str], home: Path, log: Path,
                    path_env: str = "/usr/local/bin:/usr/bin:/bin") -> list[str]:
    """unshare -n + xvfb-run + strace -f + env -i around command."""
    inner = (f'exec strace -f -qq -s 4096 -o {shlex.quote(str(log))} '
             f'-e trace={",".join(TRACED)} -e signal=none '
             f'env -i DISPLAY="$DISPLAY" PATH={shlex.quote(path_env)} '
             f'HOME={shlex.quote(str(home))} ' + " ".join(shlex.quote(c) for c in command))
    return ["unshare", "-n", "--", "xvfb-run", "-a", "-s", "-screen 0 1280x1024x24 -ac",
            "sh", "-c", inner]


def run_offline(command: Sequence[str], work: Path, report_dir: Path | None = None,
                timeout: float = 900) -> tuple[int, Verdict, str]:
    """Run command offline in a fresh HOME under work/; (exit code, verdict, its output)."""
    home = work / "home"
    home.mkdir(parents=True)
    log = work / "strace.log"
    before = snapshot(home)
    done = subprocess.run(offline_command(command, home, log), cwd=work, capture_output=True,
                          text=True, timeout=timeout, check=False)
    trace = parse_strace(log.read_text(errors="replace").splitlines(), cwd=str(work))
    # strace's own log is written by strace, not traced; work/ is ours.
    trace.created = [p for p in trace.created if not _under(p, str(log))]
    verdict = judge(trace, home, before, snapshot(home), report_dir)
    return done.returncode, verdict, done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (kept)")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    for tool in ("unshare", "strace", "xvfb-run"):
        if shutil.which(tool) is None:
            print(f"offline check: {tool} is missing (packaging/system-deps.sh)", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.out))
    command = list(args.command)
    if os.sep in command[0]:  # it runs from the work folder: make a relative path absolute
        command[0] = str(Path(command[0]).resolve())
    report_dir = None
    if "--smoke-test" in command and "--smoke-out" not in command:
        report_dir = args.out / "smoke"
        command += ["--smoke-out", str(report_dir)]
    code, verdict, output = run_offline(command, work, report_dir)
    shutil.copy(work / "strace.log", args.out / "strace.log")
    shutil.rmtree(work, ignore_errors=True)
    reasons = verdict.reasons()
    if "Traceback (most recent call last)" in output:
        # Exit code 0 with a traceback: a helper process (worker, resource tracker) crashed.
        reasons.append("a traceback was printed: " + output[output.index("Traceback"):][:800])
    summary = {"exit_code": code, "ok": code == 0 and not reasons, "reasons": reasons,
               "output_tail": output[-4000:]}
    (args.out / "offline_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    if code != 0:
        print(f"offline check: the command failed with exit code {code}:\n{output[-3000:]}",
              file=sys.stderr)
        return 1
    if reasons:
        print("offline check FAILED:\n  " + "\n  ".join(reasons), file=sys.stderr)
        return 1
    print(f"offline check passed: no network connection attempted, nothing written outside "
          f"Lucida's folders ({args.out / 'offline_check.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
