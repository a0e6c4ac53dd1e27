"""Shared fixtures: where ../shared is, and a throw-away library folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["ORT_DISABLE_TELEMETRY"] = "1"

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
        pytest.skip("../shared/data is absent (set LUCIDA_SHARED to its parent folder)")
    return root / "data"


@pytest.fixture(scope="session")
def shared_models() -> Path:
    root = shared_root()
    if root is None or not (root / "models-src").is_dir():
        pytest.skip("../shared/models-src is absent (set LUCIDA_SHARED to its parent folder)")
    return root / "models-src"


@pytest.fixture
def library_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh library folder, also exported as $LUCIDA_LIBRARY."""
    path = tmp_path / "library"
    path.mkdir()
    monkeypatch.setenv("LUCIDA_LIBRARY", str(path))
    return path
