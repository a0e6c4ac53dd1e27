"""packaging/bundle/offline_check.py: it must catch a real connection attempt and a real
file written under HOME outside Lucida's folders, and pass a program that does neither.
The programs run for real under unshare -n, xvfb-run, env -i and strace."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import offline_check
import pytest
from offline_check import Trace, judge, parse_strace

needs_tools = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in ("unshare", "strace",
                                                                "xvfb-run")),
    reason="needs root (unshare -n), strace and xvfb-run (packaging/system-deps.sh)")


def _run(tmp_path: Path, code: str) -> tuple[int, dict[str, object]]:
    out = tmp_path / "out"
    rc = offline_check.main(["--out", str(out), "--", sys.executable, "-c", code])
    return rc, json.loads((out / "offline_check.json").read_text())


def _caught(tmp_path: Path, code: str) -> str:
    """The reasons the check gives for failing ``code`` (it must fail it)."""
    rc, report = _run(tmp_path, code)
    assert rc == 1
    return "\n".join(report["reasons"])  # type: ignore[arg-type]


@needs_tools
def test_a_connection_attempt_is_caught(tmp_path: Path) -> None:
    reasons = _caught(tmp_path, "import socket; s = socket.socket(); s.settimeout(2); "
                                "print(s.connect_ex(('127.0.0.2', 9)))")
    assert "network connection attempted" in reasons and "AF_INET" in reasons
    assert "127.0.0.2" in reasons


@needs_tools
def test_a_udp_send_and_an_ipv6_connect_are_caught(tmp_path: Path) -> None:
    reasons = _caught(tmp_path, "import socket\n"
                                "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                "try: u.sendto(b'x', ('10.1.2.3', 53))\n"
                                "except OSError: pass\n"
                                "s = socket.socket(socket.AF_INET6); s.settimeout(2)\n"
                                "s.connect_ex(('::1', 9))\n")
    assert "AF_INET6" in reasons and "sendto" in reasons


@needs_tools
def test_a_file_under_home_outside_lucidas_folders_is_caught(tmp_path: Path) -> None:
    reasons = _caught(tmp_path, "import os, pathlib\n"
                                "p = pathlib.Path(os.environ['HOME'], '.cache', 'Microsoft')\n"
                                "p.mkdir(parents=True); (p / 'telemetry').write_text('x')\n")
    assert "left under HOME outside Lucida's folders: ~/.cache/Microsoft/telemetry" in reasons


@needs_tools
def test_a_clean_program_passes_in_a_clean_environment(tmp_path: Path) -> None:
    rc, report = _run(tmp_path, "import os, pathlib, socket\n"
                                "assert set(os.environ) <= {'DISPLAY', 'PATH', 'HOME', "
                                "'LC_CTYPE'}, os.environ\n"
                                "assert os.environ['DISPLAY']\n"
                                "u = socket.socket(socket.AF_UNIX); u.close()\n"
                                "p = pathlib.Path(os.environ['HOME'], '.config', 'Lucida')\n"
                                "p.mkdir(parents=True); (p / 'prefs.json').write_text('{}')\n"
                                "import tempfile\n"
                                "with tempfile.TemporaryDirectory() as t:\n"
                                "    pathlib.Path(t, 'scratch').write_text('x')\n")
    assert rc == 0, report
    assert report["ok"] is True


def test_parse_strace_reads_writes_and_inet_calls() -> None:
    lines = [
        '101 openat(AT_FDCWD, "/home/u/.config/Lucida/p.json", O_WRONLY|O_CREAT|O_TRUNC, '
        '0666) = 3',
        '101 openat(AT_FDCWD, "/usr/lib/libx.so", O_RDONLY|O_CLOEXEC) = 4',
        '102 mkdir("rel/dir", 0777)        = 0',
        '102 renameat2(AT_FDCWD, "/tmp/a.partial", AT_FDCWD, "/out/a.png", 0) = 0',
        '103 connect(5, {sa_family=AF_UNIX, sun_path=@"/tmp/.X11-unix/X0"}, 20) = 0',
        '103 connect(6, {sa_family=AF_INET6, sin6_port=htons(443), ...}, 28) <unfinished ...>',
    ]
    trace = parse_strace(lines, cwd="/work")
    assert trace.created == ["/home/u/.config/Lucida/p.json", "/work/rel/dir", "/out/a.png"]
    assert len(trace.inet) == 1 and "AF_INET6" in trace.inet[0]


def test_judge_allows_lucidas_folders_and_flags_the_rest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    leftover = tmp_path / "tmp" / "leftover"
    leftover.parent.mkdir()
    leftover.write_text("x")
    trace = Trace(created=[f"{home}/.local", f"{home}/.local/share/Lucida/library.sqlite",
                           f"{home}/.mozilla/x", "/etc/lucida.conf", "/dev/shm/sem.mp-1",
                           str(tmp_path / "tmp" / "gone"), str(leftover),
                           str(tmp_path / "report" / "smoke.png")])
    verdict = judge(trace, home, set(), {".local", ".local/share", ".local/share/Lucida",
                                         ".mozilla", ".mozilla/x"},
                    report_dir=tmp_path / "report", temp_roots=(str(tmp_path / "tmp"),))
    assert verdict.outside == [f"{home}/.mozilla/x", "/etc/lucida.conf"]
    assert verdict.home_left == ["~/.mozilla", "~/.mozilla/x"]
    assert verdict.left_behind == [str(leftover)]
    assert not verdict.ok


@needs_tools
def test_a_traceback_from_a_helper_process_is_caught(tmp_path: Path) -> None:
    # The parent exits 0; a child it started crashed (as a frozen resource tracker did).
    reasons = _caught(tmp_path, "import subprocess, sys\n"
                                "subprocess.run([sys.executable, '-c', '1/0'])\n")
    assert "a traceback was printed" in reasons and "ZeroDivisionError" in reasons
