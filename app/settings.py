"""User preferences: a versioned, typed JSON file, plus where window state lives.

Preferences (default layout, identity text visible, last preset, cine speed,
...) are a pydantic model with a ``version`` field saved as JSON, written
atomically (``core.atomic``). Older files are migrated step by step by
:func:`migrate`. Whatever goes wrong, the application starts with defaults —
and never writes over a file it could not use: a damaged file is first set
aside (renamed ``.bad``); a file from a newer Lucida, or one that could not be
read or set aside, blocks saving for the session (``Preferences.save_blocked``)
so the newer Lucida's settings survive. ``Preferences.load_problem`` says what
happened, for the window to show.

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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from app.paths import ENV_VAR
from core.atomic import write_text

log = logging.getLogger(__name__)

CURRENT_VERSION = 4
PREFERENCES_FILE = "preferences.json"
WINDOW_STATE_FILE = "window-state.ini"

Layout = Literal["1x1", "1x3", "2x2"]
SingleView = Literal["axial", "coronal", "sagittal", "3d"]


class Preferences(BaseModel):
    """What the user chose, remembered between sessions."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    version: int = CURRENT_VERSION
    default_layout: Layout = "1x3"
    single_view: SingleView = "axial"  # the view that fills the window in the 1 × 1 layout
    identity_visible: bool = True
    last_preset: str | None = None
    cine_fps: int = Field(default=10, ge=1, le=60)
    thumbnails: bool = True
    open_demo_on_first_launch: bool = True
    first_launch_done: bool = False
    recent_series: list[int] = Field(default_factory=list)
    reviewer: str = ""  # the name review decisions carry; "" = the OS user
    # The user's hanging protocols, raw: app.hanging validates each on its own, so one bad
    # rule is reported and skipped instead of making the whole file unusable.
    hanging_protocols: list[dict[str, Any]] = Field(default_factory=list)
    # Network (net/, issue 20): Lucida's own AE and its storage SCP, which is off by default,
    # listens on loopback unless the user picks an interface, and takes allow-listed callers.
    local_ae_title: str = Field(default="LUCIDA", min_length=1, max_length=16)
    local_port: int = Field(default=11112, ge=1, le=65535)
    scp_enabled: bool = False
    scp_bind: str = "127.0.0.1"
    scp_allowed_aes: list[str] = Field(default_factory=list)
    scp_allowed_hosts: list[str] = Field(default_factory=list)
    scp_tls_cert: str | None = None
    scp_tls_key: str | None = None
    scp_max_instance_mb: float = Field(default=2048.0, gt=0)
    scp_max_association_mb: float = Field(default=20000.0, gt=0)

    # How loading went (not saved; private attributes are not fields).
    _load_problem: str | None = PrivateAttr(default=None)
    _save_blocked: bool = PrivateAttr(default=False)

    @property
    def load_problem(self) -> str | None:
        """What was wrong with the preferences file, for the user; None when it was fine."""
        return self._load_problem

    @property
    def save_blocked(self) -> bool:
        """True when saving would overwrite a file that could not be used."""
        return self._save_blocked


class NewerPreferencesError(ValueError):
    """A preferences file written by a newer Lucida."""


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a preferences dict of any older version up to :data:`CURRENT_VERSION`.

    Version 1 (the first release) had ``layout`` (e.g. ``"1x3"``),
    ``hide_patient_info`` (the inverse of ``identity_visible``) and
    ``cine_speed`` in frames per second, and no ``version`` key at all.
    Version 2 had no ``hanging_protocols`` (the user's hanging protocols).
    Version 3 had no network settings (their defaults: SCP off, loopback).
    """
    data = dict(data)
    version = int(data.get("version", 1))
    if version > CURRENT_VERSION:
        raise NewerPreferencesError(
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
    if version == 2:
        data.setdefault("hanging_protocols", [])
        version = 3
    if version == 3:
        data.setdefault("scp_enabled", False)  # never switched on by an upgrade
        version = 4
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


def _defaults(problem: str, *, block_saving: bool) -> Preferences:
    prefs = Preferences()
    prefs._load_problem = problem
    prefs._save_blocked = block_saving
    log.warning("%s", problem)
    return prefs


def _set_aside_name(path: Path) -> Path:
    """``preferences.json.bad``, or ``.bad-2``, ``.bad-3`` …: an earlier one is kept too."""
    candidate = path.with_name(path.name + ".bad")
    number = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bad-{number}")
        number += 1
    return candidate


def load_preferences(path: Path) -> Preferences:
    """Read, migrate and validate; defaults when absent, unreadable or invalid.

    With defaults because of a problem, ``load_problem`` says what happened and
    ``save_blocked`` whether saving is refused (see the module docstring).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Preferences()
    except OSError as exc:
        return _defaults(f"The preferences file {path} could not be read ({exc}); defaults are "
                         "used and changes to preferences are not saved this session.",
                         block_saving=True)
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("top level is not an object")
        return Preferences.model_validate(migrate(raw))
    except NewerPreferencesError as exc:
        return _defaults(f"The preferences file {path} is from a newer Lucida ({exc}); defaults "
                         "are used and changes to preferences are not saved, so the newer "
                         "Lucida's preferences stay as they are.", block_saving=True)
    except (ValueError, ValidationError) as exc:
        reason = " ".join(str(exc).split())[:200]
        bad = _set_aside_name(path)
        try:
            path.replace(bad)
        except OSError as move_exc:
            return _defaults(f"The preferences file {path} is damaged ({reason}) and could not "
                             f"be set aside ({move_exc}); defaults are used and changes to "
                             "preferences are not saved this session.", block_saving=True)
        return _defaults(f"The preferences file was damaged ({reason}); it is kept as {bad} "
                         "and defaults are used.", block_saving=False)


def save_preferences(prefs: Preferences, path: Path) -> bool:
    """Write atomically (core.atomic); False, writing nothing, when ``prefs.save_blocked``."""
    if prefs.save_blocked:
        log.info("preferences not saved: %s", prefs.load_problem)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, prefs.model_dump_json(indent=2))
    return True
