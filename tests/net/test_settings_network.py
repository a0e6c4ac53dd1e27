"""The network preferences: safe defaults, and older files upgrade with the SCP off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import CURRENT_VERSION, Preferences, load_preferences


def test_defaults_are_off_and_loopback() -> None:
    prefs = Preferences()
    assert (prefs.local_ae_title, prefs.local_port) == ("LUCIDA", 11112)
    assert prefs.scp_enabled is False and prefs.scp_bind == "127.0.0.1"
    assert prefs.scp_allowed_aes == [] and prefs.scp_tls_cert is None
    with pytest.raises(ValidationError):
        Preferences(local_port=0)
    with pytest.raises(ValidationError):
        Preferences(scp_max_instance_mb=0)


def test_version_3_preferences_upgrade_with_the_scp_off(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    path.write_text(json.dumps({"version": 3, "default_layout": "2x2"}), encoding="utf-8")
    prefs = load_preferences(path)
    assert prefs.load_problem is None and prefs.version == CURRENT_VERSION == 4
    assert prefs.default_layout == "2x2" and prefs.scp_enabled is False
    assert prefs.scp_bind == "127.0.0.1"
