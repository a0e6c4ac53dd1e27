"""Shared fixtures: where ../shared is, and a throw-away library folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from inference import disable_onnxruntime_telemetry

disable_onnxruntime_telemetry()  # before any test imports onnxruntime

# Tests never touch the user's real Lucida folders: platformdirs (library,
# settings, user model packs) and any cache resolve under one throw-away root.
_SANDBOX = Path(tempfile.mkdtemp(prefix="lucida-tests-"))
atexit.register(shutil.rmtree, _SANDBOX, ignore_errors=True)
for _var, _sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"),
                   ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")):
    os.environ[_var] = str(_SANDBOX / _sub)

# In CI (CI=true, as CI services set it) or with these switches, a missing ../shared
# or a missing display fails loudly instead of silently skipping the tests that need them.
_IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
REQUIRE_SHARED = _IN_CI or os.environ.get("LUCIDA_REQUIRE_SHARED") == "1"
REQUIRE_DISPLAY = _IN_CI or os.environ.get("LUCIDA_REQUIRE_DISPLAY") == "1"


def skip_or_fail(reason: str, required: bool) -> None:
    if required:
        pytest.fail(f"{reason} (required in this run)", pytrace=False)
    pytest.skip(reason)

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_root() -> Path | None:
    """The shared data folder beside the repository (or $LUCIDA_SHARED), if present."""
    env = os.environ.get("LUCIDA_SHARED")
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path if (path / "data").is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with a clear reason when it is absent."""
    root = shared_root()
    if root is None:
        skip_or_fail("../shared/data is absent (set LUCIDA_SHARED to its parent folder)",
                     REQUIRE_SHARED)
    return root / "data"


@pytest.fixture(scope="session")
def shared_models() -> Path:
    root = shared_root()
    if root is None or not (root / "models-src").is_dir():
        skip_or_fail("../shared/models-src is absent (set LUCIDA_SHARED to its parent folder)",
                     REQUIRE_SHARED)
    return root / "models-src"


@pytest.fixture
def library_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh library folder, also exported as $LUCIDA_LIBRARY."""
    path = tmp_path / "library"
    path.mkdir()
    monkeypatch.setenv("LUCIDA_LIBRARY", str(path))
    return path


@pytest.fixture
def display() -> None:
    """Skip (or fail, in CI) when there is no X display.

    Checked before any QApplication exists: without a display Qt's xcb plugin
    aborts the process, and VTK cannot render with QT_QPA_PLATFORM=offscreen.
    """
    if not os.environ.get("DISPLAY"):
        skip_or_fail("no DISPLAY: run the GUI tests under "
                     "xvfb-run -a -s '-screen 0 1920x1080x24'", REQUIRE_DISPLAY)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every test marked ``gui`` or using Qt's fixtures gets the display check.

    Without a display, creating the QApplication aborts the interpreter (Qt's xcb
    plugin calls abort()), which would end the whole run instead of one test.
    """
    needs_display = item.get_closest_marker("gui") is not None or bool(
        {"qtbot", "qapp"} & set(getattr(item, "fixturenames", ())))
    if needs_display and not os.environ.get("DISPLAY"):
        skip_or_fail("no DISPLAY: run the GUI tests under "
                     "xvfb-run -a -s '-screen 0 1920x1080x24'", REQUIRE_DISPLAY)


@pytest.fixture
def worker_faults(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Factory: ``worker_faults(crash="segfault")`` makes every inference worker started
    afterwards in this test run with those faults (tests/support/lucida_test_faults.py)."""
    import inference.worker

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent / "support"))
    from lucida_test_faults import Faults

    def install(**faults: Any) -> None:
        monkeypatch.setattr(inference.worker, "_worker_main", Faults(**faults))

    return install
