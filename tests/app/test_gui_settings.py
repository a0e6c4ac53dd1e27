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
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
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


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 99}),
                                     json.dumps({"default_layout": "5x5"}), "[]"])
def test_unusable_file_is_set_aside_and_defaults_used(tmp_path: Path, content: str) -> None:
    path = tmp_path / PREFERENCES_FILE
    path.write_text(content, encoding="utf-8")
    prefs = load_preferences(path)
    assert prefs == Preferences()
    assert not path.exists()
    assert (tmp_path / (PREFERENCES_FILE + ".bad")).read_text(encoding="utf-8") == content


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
