"""Version and build id: ``lucida --version``, a packaged bundle's build_info.json, a
source checkout's git HEAD, and the About box that shows them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import __version__
from app import build_info as bi

REPO = Path(__file__).resolve().parents[2]
SHOTS = Path("/tmp/shots/B")
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    bi.build_info.cache_clear()
    yield
    bi.build_info.cache_clear()


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _head_of(reported: str, before: str) -> str:
    """HEAD as git reports it, read before and after the program under test did (a commit
    landing in between must not fail the test): the one that equals what was reported."""
    after = _git(REPO, "rev-parse", "HEAD")
    assert reported in (before, after), (reported, before, after)
    return reported


def _frozen(monkeypatch: pytest.MonkeyPatch, bundle: Path) -> None:
    """This process as PyInstaller starts a one-folder build: sys.frozen, sys._MEIPASS (the
    _internal folder) and sys.executable (``lucida`` in the folder above it)."""
    bundle.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle.parent / "lucida"))


BUILT = {"version": "1.2.3", "build_id": "20261205.7-abc1234",
         "commit": "abc1234" + "0" * 33, "built_at": "2026-12-05T23:30:00Z"}


# ----------------------------------------------------------------------------- lucida --version

@needs_git
def test_version_command_first_line_is_version_and_build_id() -> None:
    """A real ``lucida`` process from this checkout: the first line names the version and
    ``dev-<short sha>`` of HEAD as git itself reports it; the runtime lines follow."""
    lucida = Path(sys.executable).with_name("lucida")
    cmd = [str(lucida)] if lucida.exists() else [sys.executable, "-m", "app.cli"]
    before = _git(REPO, "rev-parse", "HEAD")
    proc = subprocess.run([*cmd, "--version"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    head = _head_of(lines[1].removeprefix("commit "), before)
    assert lines[0].startswith(f"Lucida {__version__} (build dev-{head[:7]})")
    assert "not for diagnostic use" in lines[0]
    assert lines[1] == f"commit {head}"
    assert any(line.startswith("onnxruntime ") for line in lines[2:])
    assert any(line.startswith("execution provider in use: ") for line in lines[2:])


def test_version_report_of_a_packaged_build(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from app.version_info import version_report

    bundle = tmp_path / "_internal"
    _frozen(monkeypatch, bundle)
    (bundle / bi.BUILD_INFO_FILE).write_text(json.dumps(BUILT))
    lines = version_report().splitlines()
    assert lines[0].startswith("Lucida 1.2.3 (build 20261205.7-abc1234) — ")
    assert lines[1] == f"commit {BUILT['commit']}, built 2026-12-05T23:30:00Z"


# ----------------------------------------------------------------------------- packaged build

def test_frozen_build_reads_the_bundles_build_info(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "dist" / "lucida" / "_internal"
    _frozen(monkeypatch, bundle)
    (bundle / bi.BUILD_INFO_FILE).write_text(json.dumps(BUILT))
    info = bi.build_info()
    assert info == bi.BuildInfo("1.2.3", "20261205.7-abc1234", BUILT["commit"],
                                "2026-12-05T23:30:00Z", frozen=True)
    assert bi.build_info() is info  # computed once per process
    # Linux/Windows one-folder: the SBOM and notices beside the executable (none yet: that
    # is where they are expected).
    top = bundle.parent
    assert bi.shipped_documents() == {"SBOM (CycloneDX)": top / "lucida.cdx.json",
                                      "Third-party notices": top / "THIRD-PARTY-NOTICES.txt"}
    # A macOS .app keeps them in the bundle folder (Contents/Frameworks -> Resources).
    (bundle / bi.SBOM_FILE).write_text("{}")
    assert bi.shipped_documents()["SBOM (CycloneDX)"] == bundle / "lucida.cdx.json"
    (top / bi.SBOM_FILE).write_text("{}")
    assert bi.shipped_documents()["SBOM (CycloneDX)"] == top / "lucida.cdx.json"


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", "", '{"version": 3}',
                                     b"\xff\xfe\x00garbage"])
def test_missing_or_damaged_build_info_says_unknown(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    content: str | bytes | None) -> None:
    bundle = tmp_path / "_internal"
    _frozen(monkeypatch, bundle)
    path = bundle / bi.BUILD_INFO_FILE
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    info = bi.build_info()
    assert info.frozen and info.build_id == "unknown"
    assert info.version == __version__  # a number in the wrong type is not a version


def test_partial_build_info_keeps_what_it_has(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "_internal"
    _frozen(monkeypatch, bundle)
    (bundle / bi.BUILD_INFO_FILE).write_text(json.dumps({"build_id": " 42 ", "commit": ""}))
    info = bi.build_info()
    assert (info.version, info.build_id, info.commit, info.built_at) == (__version__, "42", "",
                                                                        "")


# ----------------------------------------------------------------------------- source checkout

@needs_git
def test_source_checkout_reads_head_loose_packed_detached_and_worktree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    assert bi.git_commit(repo) == first  # loose ref refs/heads/main
    info = bi.source_build_info(repo)
    assert info.build_id == f"dev-{first[:7]}" and not info.frozen and info.built_at == ""

    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git/refs/heads/main").exists()
    assert bi.git_commit(repo) == first  # only in packed-refs now

    (repo / "a.txt").write_text("b")
    _git(repo, "commit", "-q", "-am", "two")
    second = _git(repo, "rev-parse", "HEAD")
    assert second != first and bi.git_commit(repo) == second

    _git(repo, "checkout", "-q", "--detach", first)
    assert bi.git_commit(repo) == first  # detached: the sha is in HEAD itself

    tree = tmp_path / "tree"
    _git(repo, "worktree", "add", "-q", str(tree), "main")
    assert (tree / ".git").is_file()
    assert bi.git_commit(tree) == second  # "gitdir:" file, refs shared via commondir


def test_no_git_is_plain_dev(tmp_path: Path) -> None:
    assert bi.git_commit(tmp_path) is None
    info = bi.source_build_info(tmp_path)
    assert (info.version, info.build_id, info.commit) == (__version__, "dev", "")
    assert bi.shipped_documents() == {}


# ----------------------------------------------------------------------------- About box

@pytest.mark.gui
def test_about_box_of_a_packaged_build(qt: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The About box of an installed copy: version, build id, commit, date, the notice and
    where the SBOM and notices are; a missing one is said to be missing."""
    from app.dialogs import AboutDialog

    bundle = tmp_path / "_internal"
    _frozen(monkeypatch, bundle)
    (bundle / bi.BUILD_INFO_FILE).write_text(json.dumps(BUILT))
    (bundle.parent / bi.SBOM_FILE).write_text("{}")
    dialog = AboutDialog(__version__, "Python 3.11 on Linux\nexecution provider in use: CPU")
    qt.addWidget(dialog)
    dialog.show()
    qt.waitExposed(dialog)
    rows = dialog.rows
    assert rows["Version"] == "1.2.3" and rows["Build"] == "20261205.7-abc1234"
    assert rows["Commit"] == BUILT["commit"] and rows["Built"] == "2026-12-05 23:30 UTC"
    assert rows["SBOM (CycloneDX)"] == str(bundle.parent / "lucida.cdx.json")
    assert rows["Third-party notices"] == f"{bundle.parent / 'THIRD-PARTY-NOTICES.txt'} (missing)"
    assert "not for diagnostic use" in dialog.notice.text().lower()
    assert "Build: 20261205.7-abc1234" in dialog.text().splitlines()
    # The SBOM that is there is a link to the file; the missing notices are plain text.
    from PySide6.QtCore import QUrl
    from PySide6.QtWidgets import QLabel

    sbom = next(lb for lb in dialog.findChildren(QLabel) if lb.objectName() == "aboutSBOM")
    href = QUrl.fromLocalFile(str(bundle.parent / "lucida.cdx.json")).toString()
    assert f'href="{href}"' in sbom.text() and sbom.openExternalLinks()
    third = next(lb for lb in dialog.findChildren(QLabel) if lb.objectName() == "aboutThird-party")
    assert "href" not in third.text() and third.text().endswith("(missing)")
    _check_layout(dialog, "about-packaged.png")


@pytest.mark.gui
@needs_git
def test_about_box_from_the_main_window(make_window: Any, library_dir: Path) -> None:
    """Help → About in the real window of this source checkout: build dev-<sha>, not packaged,
    and the runtime lines without a second copy of the build line."""
    window = make_window(library_dir)
    before = _git(REPO, "rev-parse", "HEAD")
    window.act_about.trigger()
    dialog = window.last_dialog
    qt_dialog_exposed(dialog)
    head = _head_of(dialog.rows["Commit"], before)
    assert dialog.rows["Build"] == f"dev-{head[:7]}" and dialog.rows["Commit"] == head
    assert "source checkout" in dialog.rows["Built"]
    labels = [w.text() for w in dialog.findChildren(type(dialog.notice))]
    assert sum("(build " in text for text in labels) == 0  # the build is in the rows only
    assert any("execution provider in use" in text for text in labels)
    _check_layout(dialog, "about-window.png")


def qt_dialog_exposed(dialog: Any) -> None:
    from PySide6.QtCore import QCoreApplication

    for _ in range(20):
        QCoreApplication.processEvents()
    assert dialog.isVisible()


def _check_layout(dialog: Any, name: str) -> None:
    """Dark theme, every label inside the dialog, and no two labels overlapping."""
    from PySide6.QtCore import QCoreApplication, QRect
    from PySide6.QtWidgets import QLabel

    QCoreApplication.processEvents()
    image = dialog.grab().toImage()
    SHOTS.mkdir(parents=True, exist_ok=True)
    image.save(str(SHOTS / name))
    corner = image.pixelColor(3, image.height() - 3)
    assert corner.lightness() < 80, f"About box background is not dark: {corner.name()}"
    rects: list[tuple[str, QRect]] = []
    for label in dialog.findChildren(QLabel):
        if not label.isVisible() or not label.text():
            continue
        rect = QRect(label.mapTo(dialog, label.rect().topLeft()), label.size())
        assert dialog.rect().contains(rect), f"label cut off: {label.text()[:40]!r}"
        rects.append((label.text(), rect))
    for i, (text_a, a) in enumerate(rects):
        for text_b, b in rects[i + 1:]:
            assert not a.intersects(b), f"{text_a[:30]!r} overlaps {text_b[:30]!r}"
    # Letters are drawn where the build id is: its label has light pixels on the dark ground.
    build = next(lb for lb in dialog.findChildren(QLabel) if lb.objectName() == "aboutBuild")
    top_left = build.mapTo(dialog, build.rect().topLeft())
    light = sum(image.pixelColor(top_left.x() + x, top_left.y() + y).lightness() > 150
                for x in range(min(build.width(), 120)) for y in range(build.height()))
    assert light > 20, "no text drawn in the Build row"


def _version_matches_pyproject() -> None:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.M)
    assert match and match.group(1) == __version__


def test_app_version_is_the_projects_version() -> None:
    """The version the bundle's build_info.json and installers carry is app.__version__;
    it must agree with the distribution's version in pyproject.toml."""
    _version_matches_pyproject()
