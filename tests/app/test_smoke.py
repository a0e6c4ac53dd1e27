"""``lucida --smoke-test``: the installation check an installer's CI runs, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.gui
def test_smoke_test_passes_and_writes_only_its_report(tmp_path: Path, display: None) -> None:
    """A real process (as the packaged app would be run): exit 0, a report naming the
    build and versions, the execution provider, the default model's findings and every step's time,
    a screenshot with four rendered views; nothing written under HOME."""
    home = tmp_path / "smoke-home"
    home.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("LUCIDA_LIBRARY", None)
    proc = subprocess.run([sys.executable, "-m", "app.cli", "--smoke-test", "--smoke-out",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "smoke test passed" in proc.stdout
    report = json.loads((out / "smoke.json").read_text())
    assert report["ok"] is True and "error" not in report
    assert [s["step"] for s in report["steps"]] == [
        "start Qt", "make and load the demo study",
        "run the default model (lucida-lung-nodules)", "render every view"]
    assert all(s["seconds"] > 0 for s in report["steps"][1:])
    assert report["model"]["provider"] == "CPUExecutionProvider"
    assert report["model"]["findings"] >= 3 and report["model"]["timings_s"]["total"] > 0
    assert all(report["versions"][name][0].isdigit()
               for name in ("onnxruntime", "vtk", "PySide6", "pydicom", "SimpleITK", "numpy"))
    # The build that ran is named (a source checkout: its commit, as `lucida --version`
    # says; others may commit while this runs, so the commit is checked to be this repo's).
    from app import __version__

    build = report["build"]
    assert set(build) == {"version", "build_id", "commit", "built_at", "frozen"}
    assert build["version"] == __version__ and build["frozen"] is False
    assert len(build["commit"]) == 40 and build["build_id"] == f"dev-{build['commit'][:7]}"
    assert subprocess.run(["git", "cat-file", "-e", f"{build['commit']}^{{commit}}"],
                          cwd=REPO).returncode == 0
    assert report["series"] == {"shape_kji": [120, 256, 256], "modality": "CT"}
    from PIL import Image

    shot = Image.open(out / "smoke.png")
    assert shot.width > 400 and shot.height > 400
    # The temporary library, preferences and window state are gone; HOME is untouched.
    assert [p for p in home.rglob("*")] == []


@pytest.mark.gui
def test_smoke_test_fails_with_the_step_and_reason(tmp_path: Path, display: None) -> None:
    """Without a display the window cannot start: exit 1, the reason on stderr and in the
    report (the packaged app's CI then says why, instead of a traceback)."""
    env = {**os.environ, "HOME": str(tmp_path), "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    env.pop("QT_QPA_PLATFORM", None)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "app.cli", "--smoke-test", "--smoke-out",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "smoke test FAILED" in proc.stderr and "no display" in proc.stderr
    report = json.loads((out / "smoke.json").read_text())
    assert report["ok"] is False and "no display" in report["error"]
