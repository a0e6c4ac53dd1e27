"""Who is acting: the name audit rows carry when no reviewer was set."""

from __future__ import annotations

import getpass
import os


def os_user() -> str:
    """The OS account name; never fails (a container without a passwd entry has none)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):
        name = ""
    return name or os.environ.get("USER", "") or "unknown"
