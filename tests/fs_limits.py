"""Run a real command on a read-only folder or a full disk.

Permissions alone do not stop root (CI containers often run as root), so a
read-only folder is a read-only bind mount and a full disk a small tmpfs, both
inside a private user + mount namespace (``unshare -rm``): nothing outside the
command sees them, nothing needs privileges. Without user namespaces the
read-only case falls back to ``chmod`` (as root with the file-access
capabilities dropped by ``setpriv``, as tests/dicomio/test_scan_permissions.py
does); a full disk then cannot be made and that test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest


def namespaces_work() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def run_on_read_only_folder(folder: Path, argv: Sequence[str], *, env: dict[str, str],
                            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` while ``folder`` (and what is in it) cannot be written."""
    if namespaces_work():
        script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && '
                  'exec "$@"')
        return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(folder), *argv],
                              capture_output=True, text=True, env=env, timeout=timeout)
    command = list(argv)
    if os.geteuid() == 0:
        # Root ignores modes unless its file-access capabilities are dropped.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without user namespaces or setpriv: cannot make a folder "
                        "read-only")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    try:
        for p, mode in modes.items():
            p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        return subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=timeout)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


_FULL_DISK = textwrap.dedent("""
    import json, os, shutil, subprocess, sys
    src, mount_point, reserve = sys.argv[1], sys.argv[2], int(sys.argv[3])
    read_back = sys.argv[4].split(",")
    argv = sys.argv[5:]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mount_point], check=True)
    shutil.copytree(src, mount_point, dirs_exist_ok=True)
    st = os.statvfs(mount_point)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(mount_point, "filler.bin"), "wb") as out:
        out.write(b"\\0" * max(0, free - reserve))
    proc = subprocess.run(argv, capture_output=True, text=True)
    os.remove(os.path.join(mount_point, "filler.bin"))
    names = sorted(os.listdir(mount_point))
    files = {}
    for name in read_back:
        try:
            with open(os.path.join(mount_point, name), "rb") as f:
                files[name] = f.read().hex()
        except FileNotFoundError:
            files[name] = None
    print(json.dumps({"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                      "names": names, "files": files}))
""")


def run_with_full_disk(library: Path, mount_point: Path, argv: Sequence[str], *,
                       env: dict[str, str], reserve_bytes: int = 96 * 1024,
                       read_back: Sequence[str] = ("library.sqlite",),
                       timeout: float = 180) -> dict[str, object]:
    """Copy ``library`` onto a small tmpfs at ``mount_point``, fill it up to
    ``reserve_bytes``, run ``argv`` there; returns its exit code ("rc"), "stdout",
    "stderr", the file "names" left and the bytes (hex, None when absent) of the
    ``read_back`` files afterwards ("files")."""
    if not namespaces_work():
        pytest.skip("no user namespaces (unshare -rm): cannot make a full disk without root")
    mount_point.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", _FULL_DISK, str(library), str(mount_point),
         str(reserve_bytes), ",".join(read_back), *argv], capture_output=True, text=True,
        env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
