"""core.atomic: a write either completes or leaves the target as it was, and no litter."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from core.atomic import TEMP_PREFIX, atomic_path, write_bytes, write_text


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_text(target, '{"a": 1}\n')
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n'
    write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert _names(tmp_path) == ["report.json"]


def test_failure_leaves_no_temp_file_and_no_target(tmp_path: Path) -> None:
    target = tmp_path / "out.nii.gz"
    with pytest.raises(RuntimeError, match="disk went away"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a volume")
        raise RuntimeError("disk went away")
    assert _names(tmp_path) == []


def test_failure_leaves_an_existing_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "shot.png"
    target.write_bytes(b"the old picture")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"the new pic")
        raise KeyboardInterrupt  # Ctrl+C mid-write is cleaned up too
    assert target.read_bytes() == b"the old picture"
    assert _names(tmp_path) == ["shot.png"]


def test_temp_file_is_beside_the_target_hidden_and_keeps_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "labels.nii.gz"
    seen: list[Path] = []
    with atomic_path(target) as tmp:
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp.exists()
        assert tmp.name.startswith(TEMP_PREFIX) and tmp.name.endswith("labels.nii.gz")
        assert not target.exists(), "nothing at the target while writing"
        with gzip.open(tmp, "wb") as out:  # a writer that opens the path itself
            out.write(b"voxels")
    assert not seen[0].exists()
    with gzip.open(target, "rb") as back:
        assert back.read() == b"voxels"


def test_a_missing_folder_is_an_oserror_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_text(tmp_path / "absent" / "x.txt", "x")
    assert _names(tmp_path) == []


def test_two_writers_do_not_share_a_temporary_name(tmp_path: Path) -> None:
    target = tmp_path / "prefs.json"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        first.write_text("first", encoding="utf-8")
        second.write_text("second", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "first"  # the outer one finished last
    assert _names(tmp_path) == ["prefs.json"]
