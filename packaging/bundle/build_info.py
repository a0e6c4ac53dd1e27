"""Writes the bundle's build_info.json (read by app/build_info.py from sys._MEIPASS).

    python packaging/bundle/build_info.py dist/lucida/_internal/build_info.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def build_info(version: str, now: datetime | None = None) -> dict[str, str]:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    commit = git("rev-parse", "HEAD")
    short = git("rev-parse", "--short", "HEAD") or "nogit"
    return {"version": version, "build_id": f"{now:%Y%m%d%H%M}-{short}", "commit": commit,
            "built_at": now.isoformat(timespec="seconds").replace("+00:00", "Z")}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: build_info.py OUT.json", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from app import __version__

    info = build_info(__version__)
    Path(args[0]).write_text(json.dumps(info, indent=2) + "\n")
    print(f"build {info['build_id']} (version {info['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
