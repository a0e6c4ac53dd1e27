"""User preferences: a versioned, typed JSON file, plus where window state lives.

Preferences (default layout, identity text visible, last preset, cine speed,
...) are a pydantic model with a ``version`` field saved as JSON. Older files
are migrated step by step by :func:`migrate`; a newer or damaged file is set
aside (renamed ``.bad``) and defaults are used, so the application always
starts.

Where: ``platformdirs.user_config_dir("Lucida")`` normally; when a library
folder was chosen explicitly (``--library`` or ``$LUCIDA_LIBRARY``) the files
live in that library folder instead, which keeps tests and portable setups
isolated from the user's real configuration. Window geometry and dock state
are Qt's business (QSettings, INI format) and sit beside the preferences.

No Qt import at module level: the CLI uses this module too.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.paths import ENV_VAR

log = logging.getLogger(__name__)

CURRENT_VERSION = 2
PREFERENCES_FILE = "preferences.json"
WINDOW_STATE_FILE = "window-state.ini"

Layout = Literal["1x1", "1x3", "2x2"]


class Preferences(BaseModel):
    """What the user chose, remembered between sessions."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    version: int = CURRENT_VERSION
    default_layout: Layout = "1x3"
    identity_visible: bool = True
    last_preset: str | None = None
    cine_fps: int = Field(default=10, ge=1, le=60)
    thumbnails: bool = True
    open_demo_on_first_launch: bool = True
    first_launch_done: bool = False
    recent_series: list[int] = Field(default_factory=list)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a preferences dict of any older version up to :data:`CURRENT_VERSION`.

    Version 1 (the first release) had ``layout`` (e.g. ``"1x3"``),
    ``hide_patient_info`` (the inverse of ``identity_visible``) and
    ``cine_speed`` in frames per second, and no ``version`` key at all.
    """
    data = dict(data)
    version = int(data.get("version", 1))
    if version > CURRENT_VERSION:
        raise ValueError(
            f"preferences file has version {version}, newer than this Lucida "
            f"({CURRENT_VERSION}); update Lucida or delete the file"
        )
    if version == 1:
        if "layout" in data:
            data["default_layout"] = data.pop("layout")
        if "hide_patient_info" in data:
            data["identity_visible"] = not bool(data.pop("hide_patient_info"))
        if "cine_speed" in data:
            data["cine_fps"] = max(1, min(60, round(float(data.pop("cine_speed")))))
        version = 2
    data["version"] = version
    return data


def config_dir(library_override: str | None = None) -> Path:
    """Folder for preferences and window state (see the module docstring)."""
    explicit = library_override or os.environ.get(ENV_VAR)
    if explicit:
        from app.paths import library_dir

        return library_dir(explicit)
    from platformdirs import user_config_dir

    path = Path(user_config_dir("Lucida", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_preferences(path: Path) -> Preferences:
    """Read, migrate and validate; defaults when absent, unreadable or invalid."""
    if not path.exists():
        return Preferences()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("top level is not an object")
        return Preferences.model_validate(migrate(raw))
    except (OSError, ValueError, ValidationError) as exc:
        bad = path.with_suffix(path.suffix + ".bad")
        log.warning("preferences file %s unusable (%s); using defaults, kept as %s",
                    path, exc, bad.name)
        try:
            path.replace(bad)
        except OSError:
            pass
        return Preferences()


def save_preferences(prefs: Preferences, path: Path) -> None:
    """Write atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(prefs.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)
