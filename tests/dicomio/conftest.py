"""Fixtures shared by the dicomio tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zoo_files() -> list[Path]:
    """The transfer-syntax zoo: pydicom's test files plus pydicom-data's data_store."""
    import pydicom.data

    files = [Path(p) for p in pydicom.data.get_testdata_files() if Path(p).is_file()]
    spec = importlib.util.find_spec("data_store")
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        files += [p for p in root.rglob("*.dcm") if p.is_file()]
    return files
