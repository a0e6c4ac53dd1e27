"""Preferences file: typed round trip, migration from version 1, damaged and newer files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import (
    CURRENT_VERSION,
    PREFERENCES_FILE,
    Preferences,
    config_dir,
    load_preferences,
    migrate,
    save_preferences,
)


@pytest.fixture(autouse=True)
def _no_library_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings paths are the default ones (HOME is isolated by tests/app/conftest.py)."""
    monkeypatch.delenv("LUCIDA_LIBRARY", raising=False)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / PREFERENCES_FILE
    prefs = Preferences(default_layout="2x2", identity_visible=False, last_preset="lung",
                        cine_fps=24, first_launch_done=True, recent_series=[3, 1])
    save_preferences(prefs, path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["version"] == CURRENT_VERSION
    assert load_preferences(path) == prefs


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    prefs = load_preferences(tmp_path / "absent.json")
    assert prefs == Preferences()
    assert prefs.default_layout == "1x3" and prefs.identity_visible


def test_version_1_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / PREFERENCES_FILE
    path.write_text(json.dumps({"layout": "1x1", "hide_patient_info": True,
                                "cine_speed": 12.6, "last_preset": "bone"}), encoding="utf-8")
    prefs = load_preferences(path)
    assert prefs.version == CURRENT_VERSION
    assert prefs.default_layout == "1x1"
    assert prefs.identity_visible is False
    assert prefs.cine_fps == 13
    assert prefs.last_preset == "bone"
    # Saving writes the new format: the old keys are gone.
    save_preferences(prefs, path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert "layout" not in raw and "hide_patient_info" not in raw
    assert raw["default_layout"] == "1x1"


def test_migrate_refuses_a_newer_version() -> None:
    with pytest.raises(ValueError, match="newer"):
        migrate({"version": CURRENT_VERSION + 1})


@pytest.mark.parametrize("content", ["{not json", json.dumps({"default_layout": "5x5"}), "[]",
                                     '{"cine_fps": "\xe9"}'.encode("latin-1").decode("utf-8",
                                     "surrogateescape")])
def test_unusable_file_is_set_aside_and_defaults_used(tmp_path: Path, content: str) -> None:
    path = tmp_path / PREFERENCES_FILE
    data = content.encode("utf-8", "surrogateescape")  # the last one is not UTF-8
    path.write_bytes(data)
    prefs = load_preferences(path)
    assert prefs.model_dump() == Preferences().model_dump()
    assert not path.exists()
    bad = tmp_path / (PREFERENCES_FILE + ".bad")
    assert bad.read_bytes() == data
    assert prefs.load_problem is not None and str(bad) in prefs.load_problem
    # The damaged content is safe in .bad: saving the defaults is allowed.
    assert not prefs.save_blocked
    assert save_preferences(prefs, path) and path.exists()


def test_a_second_damaged_file_does_not_replace_the_first_one_set_aside(tmp_path: Path) -> None:
    path = tmp_path / PREFERENCES_FILE
    path.write_text("{first", encoding="utf-8")
    load_preferences(path)
    path.write_text("{second", encoding="utf-8")
    prefs = load_preferences(path)
    assert (tmp_path / (PREFERENCES_FILE + ".bad")).read_text(encoding="utf-8") == "{first"
    assert (tmp_path / (PREFERENCES_FILE + ".bad-2")).read_text(encoding="utf-8") == "{second"
    assert prefs.load_problem is not None and ".bad-2" in prefs.load_problem


def test_a_file_from_a_newer_lucida_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / PREFERENCES_FILE
    newer = json.dumps({"version": CURRENT_VERSION + 5, "default_layout": "2x2",
                        "a_future_setting": [1, 2]})
    path.write_text(newer, encoding="utf-8")
    prefs = load_preferences(path)
    assert prefs.model_dump() == Preferences().model_dump()
    assert prefs.save_blocked
    assert prefs.load_problem is not None and "newer Lucida" in prefs.load_problem
    assert "not saved" in prefs.load_problem
    prefs.cine_fps = 30
    assert save_preferences(prefs, path) is False
    assert path.read_text(encoding="utf-8") == newer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", PREFERENCES_FILE]


def test_invalid_assignment_is_refused() -> None:
    prefs = Preferences()
    with pytest.raises(ValueError):
        prefs.default_layout = "3x3"  # type: ignore[assignment]
    with pytest.raises(ValueError):
        prefs.cine_fps = 0


def test_config_dir_follows_the_library_when_one_is_chosen(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    assert config_dir(str(lib)) == lib.resolve()
    monkeypatch.setenv("LUCIDA_LIBRARY", str(tmp_path / "env-lib"))
    assert config_dir(None) == (tmp_path / "env-lib").resolve()


def test_config_dir_default_is_the_user_config_dir(tmp_path: Path) -> None:
    path = config_dir(None)
    # HOME and XDG_CONFIG_HOME point into tmp_path: never the real user folders.
    assert tmp_path in path.parents
    assert path.name == "Lucida"
