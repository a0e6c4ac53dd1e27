"""Unreadable files and folders are skipped with "permission denied", the rest is scanned.

Root bypasses file modes through the CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
capabilities, so as root (CI runs as root) the scan runs in a child process with
both removed from its bounding set by `setpriv`: the modes then bind it like any
user, and the case really runs instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.volume import Volume
from dicomio.write_image import SeriesInfo, write_series

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes only")

REPO_ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import json, sys
from pathlib import Path
from dicomio.scan import scan_paths
result = scan_paths([Path(sys.argv[1])])
print(json.dumps({
    "skipped": {s.source.path.name: s.reason for s in result.skipped},
    "indexed": sorted(Path(h.source.path).name for h in result.instances),
}))
"""


def _scan_without_file_access_override(root: Path) -> dict[str, object]:
    command = [sys.executable, "-c", _CHILD, str(root)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("running as root needs setpriv (util-linux) to drop file-access "
                        "capabilities for this test")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_unreadable_file_and_folder(tmp_path: Path) -> None:
    affine = np.diag([2.5, 0.8, 0.7, 1.0])
    affine[:3, 3] = (-10.0, -20.0, 30.0)
    volume = Volume(array=np.arange(2 * 8 * 6, dtype=np.float64).reshape(2, 8, 6), affine=affine)
    files = write_series(volume, tmp_path / "s", SeriesInfo())
    locked_dir = tmp_path / "locked"
    locked_dir.mkdir()
    shutil.copy(files[1], locked_dir / "hidden.dcm")
    files[0].chmod(0)
    locked_dir.chmod(0)
    try:
        outcome = _scan_without_file_access_override(tmp_path)
    finally:
        files[0].chmod(0o644)
        locked_dir.chmod(0o755)
    skipped = outcome["skipped"]
    assert isinstance(skipped, dict)
    assert "permission denied" in skipped[files[0].name]
    assert "permission denied" in skipped["locked"]
    # Only the readable file is indexed; the copy inside the locked folder is never seen.
    assert outcome["indexed"] == [files[1].name]
