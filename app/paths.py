"""Where the library lives: --library, then $LUCIDA_LIBRARY, then the user data dir."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LUCIDA_LIBRARY"


def library_dir(cli_value: str | None = None) -> Path:
    if cli_value:
        path = Path(cli_value)
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("Lucida", appauthor=False))
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
