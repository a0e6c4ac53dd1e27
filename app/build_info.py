"""Which build of Lucida is running: version, build id, commit, build date.

A packaged (PyInstaller) build carries ``build_info.json`` in its bundle folder
(``sys._MEIPASS``), written by the packaging step (packaging/bundle/build_info.py); the
SBOM and the third-party notices lie beside the ``lucida`` executable (Linux, Windows) or
in the bundle folder (macOS .app: packaging/macos/app_bundle.py puts them there). A source
checkout has no such file: its build id is ``dev-<short sha>`` read from ``.git`` directly
(no subprocess on the common path), or ``dev`` without git. The answer is computed once
per process (``lucida --version`` and the About box ask).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Names of the files the packaging step writes (packaging/linux/build_bundle.sh).
BUILD_INFO_FILE = "build_info.json"
SBOM_FILE = "lucida.cdx.json"
NOTICES_FILE = "THIRD-PARTY-NOTICES.txt"

UNKNOWN = "unknown"
_GIT_TIMEOUT_S = 2.0
_SHORT_SHA = 7


@dataclass(frozen=True)
class BuildInfo:
    version: str
    build_id: str
    commit: str  # full sha, or "" when not known
    built_at: str  # ISO 8601 UTC from the build, "" for a source checkout
    frozen: bool

    def headline(self) -> str:
        """``Lucida 0.1.0 (build 20261205.1-abc1234)``: the first line of ``--version``."""
        return f"Lucida {self.version} (build {self.build_id})"


def bundle_dir() -> Path | None:
    """The packaged build's bundle folder (``sys._MEIPASS``), or None from source."""
    if not getattr(sys, "frozen", False):
        return None
    meipass = getattr(sys, "_MEIPASS", None)
    return Path(meipass) if meipass else Path(sys.executable).resolve().parent


def shipped_documents() -> dict[str, Path]:
    """The SBOM and third-party notices of this installation (empty from source): beside the
    executable, else in the bundle folder; the executable's folder when neither has it."""
    root = bundle_dir()
    if root is None:
        return {}
    folders = [Path(sys.executable).resolve().parent, root]
    found: dict[str, Path] = {}
    for label, name in (("SBOM (CycloneDX)", SBOM_FILE), ("Third-party notices", NOTICES_FILE)):
        found[label] = next((f / name for f in folders if (f / name).is_file()), folders[0] / name)
    return found


@functools.cache
def build_info() -> BuildInfo:
    root = bundle_dir()
    if root is not None:
        return read_bundle_info(root)
    return source_build_info(Path(__file__).resolve().parent.parent)


def read_bundle_info(root: Path) -> BuildInfo:
    """The bundle's ``build_info.json``; a missing or damaged file says "unknown", never raises."""
    from app import __version__

    try:
        data = json.loads((root / BUILD_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        return BuildInfo(__version__, UNKNOWN, "", "", frozen=True)

    def field(name: str, default: str) -> str:
        value = data.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else default

    return BuildInfo(version=field("version", __version__), build_id=field("build_id", UNKNOWN),
                     commit=field("commit", ""), built_at=field("built_at", ""), frozen=True)


def source_build_info(repo: Path) -> BuildInfo:
    from app import __version__

    commit = git_commit(repo) or ""
    build_id = f"dev-{commit[:_SHORT_SHA]}" if commit else "dev"
    return BuildInfo(__version__, build_id, commit, "", frozen=False)


def git_commit(repo: Path) -> str | None:
    """HEAD's sha of the checkout at ``repo``, or None when it is not a git checkout."""
    git_dir = _git_dir(repo)
    if git_dir is None:
        return None
    sha = _read_head(git_dir)
    if sha is None:  # an unusual layout (reftable, odd worktree): ask git, briefly
        sha = _rev_parse(repo)
    return sha


def _git_dir(repo: Path) -> Path | None:
    dot_git = repo / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            path = Path(text.removeprefix("gitdir:").strip())
            return path if path.is_absolute() else (repo / path).resolve()
    return None


def _read_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head if _is_sha(head) else None  # detached HEAD
    ref = head.removeprefix("ref:").strip()
    # A worktree keeps its HEAD but shares refs with the main repository ("commondir").
    roots = [git_dir]
    common = git_dir / "commondir"
    if common.is_file():
        roots.append((git_dir / common.read_text(encoding="utf-8").strip()).resolve())
    for root in roots:
        try:
            sha = (root / ref).read_text(encoding="utf-8").strip()
            if _is_sha(sha):
                return sha
        except OSError:
            pass
        packed = _packed_ref(root / "packed-refs", ref)
        if packed is not None:
            return packed
    return None


def _packed_ref(packed: Path, ref: str) -> str | None:
    try:
        lines = packed.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
            return parts[0]
    return None


def _rev_parse(repo: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and _is_sha(sha) else None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)
