"""``lucida [PATH ...]`` and macOS FileOpen: what file associations hand to Lucida.

The command line is parsed by the real parser (every subcommand registered); the window
tests build a real MainWindow under Xvfb on a real SQLite library, import real DICOM
files written to tmp_path (a folder, a .zip, single files) and wait for the series on
screen. The broken-pipe tests run ``python -m app.cli`` with its stdout a real pipe whose
reader has already gone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.volume import Volume

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000


def parse(argv: list[str]) -> argparse.Namespace:
    from app.cli import build_parser
    from app.launch_paths import parse_command_line

    return parse_command_line(build_parser(), argv)


def write_mr(folder: Path, *, description: str = "T2 axial", n_slices: int = 12,
             size: int = 40) -> list[Path]:
    """A real MR series: a bright square (600) in a 100 background."""
    from dicomio.write_image import SeriesInfo, write_series

    array = np.full((n_slices, size, size), 100, dtype=np.int16)
    array[:, 10:30, 10:30] = 600
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([(0, 0, 3.0), (0, 0.9, 0), (0.9, 0, 0)])
    info = SeriesInfo(patient_name="GAMMA^THREE", patient_id="PID-G",
                      study_description="Knee", series_description=description)
    return write_series(Volume(array, affine, modality="MR"), folder, info, modality="MR")


# --------------------------------------------------------------------------- parsing


def test_paths_start_the_gui_with_absolute_paths(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "study").mkdir()
    (tmp_path / "one.dcm").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    args = parse(["study", "one.dcm"])
    assert args.func is None and args.command is None  # the GUI, no subcommand
    assert args.open_paths == [tmp_path / "study", tmp_path / "one.dcm"]
    assert all(p.is_absolute() for p in args.open_paths)


def test_options_and_their_values_are_not_taken_for_paths(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()  # an existing folder: only the option's value, never a path to import
    scan = tmp_path / "scan.zip"
    scan.write_bytes(b"")
    for argv in (["--library", str(lib), str(scan)], [f"--library={lib}", str(scan)],
                 ["--lib", str(lib), "-v", str(scan)], [str(scan), "--library", str(lib)]):
        args = parse(argv)
        assert args.library == str(lib), argv
        assert args.open_paths == [scan], argv
    assert parse(["-vv", str(scan)]).verbose == 2


def test_command_names_win_over_paths_and_double_dash_separates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "import").mkdir()  # a folder named like a subcommand, in the cwd
    (tmp_path / "import" / "x.dcm").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    args = parse(["import", "import"])
    assert args.command == "import" and args.open_paths == []
    assert args.paths == [Path("import")]  # the subcommand's own PATH argument is untouched
    args = parse(["--", "import"])
    assert args.command is None and args.open_paths == [tmp_path / "import"]
    (tmp_path / "-odd-name").mkdir()  # after --, even a word like an option is a path
    args = parse(["-v", "--", "import", "-odd-name"])
    assert args.verbose == 1
    assert args.open_paths == [tmp_path / "import", tmp_path / "-odd-name"]


def test_nothing_given_opens_nothing() -> None:
    args = parse([])
    assert args.func is None and args.open_paths == []


def test_a_word_that_is_neither_command_nor_path_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        parse(["imprt", "x.dcm"])  # a typo stays an error, not an import of "imprt"
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'imprt' is neither a command" in err and "import" in err
    with pytest.raises(SystemExit):
        parse(["--", "gone.dcm"])
    assert "no such file or folder: gone.dcm" in capsys.readouterr().err


# --------------------------------------------------------------------------- broken pipe


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["models", "list"]])
def test_a_reader_that_went_away_is_not_an_error(argv: list[str], tmp_path: Path) -> None:
    """`lucida --version | head -1`: the reader closes before Lucida writes; no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the child has even started
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("PYTHONUNBUFFERED", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "app.cli", *argv], cwd=REPO, env=env,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # neither a traceback nor "Exception ignored ... BrokenPipeError"


# --------------------------------------------------------------------------- the window


def _make(qt: Any, windows: list[Any], library_dir: Path, **kwargs: Any) -> Any:
    from app.main_window import MainWindow
    from app.settings import PREFERENCES_FILE, WINDOW_STATE_FILE, load_preferences

    prefs_path = library_dir / PREFERENCES_FILE
    window = MainWindow(library_dir, load_preferences(prefs_path), prefs_path,
                        library_dir / WINDOW_STATE_FILE, interactive=False, **kwargs)
    windows.append(window)
    window.resize(1200, 800)
    window.show()
    qt.waitExposed(window)
    return window


@pytest.fixture
def windows(qt: Any) -> Any:
    made: list[Any] = []
    yield made
    for window in made:
        window.close()
        window.deleteLater()


def _series_ids(library_dir: Path) -> dict[str, int]:
    from store import Library

    library = Library.open(library_dir)
    try:
        return {s.description: s.id for s in library.all_series()}
    finally:
        library.close()


@pytest.mark.gui
def test_launch_paths_are_imported_and_their_first_series_opens(
        qt: Any, windows: list[Any], tmp_path: Path, library_dir: Path) -> None:
    """`lucida --library DIR FOLDER ARCHIVE.zip` on a first launch: the import runs (with its
    report), the first imported series opens, and the demo is not made."""
    from app.dialogs import ImportReportDialog
    from app.gui import create_main_window

    folder = tmp_path / "incoming"
    mr_files = write_mr(folder / "knee", description="T2 axial")
    zipped = write_mr(tmp_path / "zipsrc", description="PD coronal", n_slices=6)
    archive = tmp_path / "from-cd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in zipped:
            zf.write(f, f"DICOM/{f.name}")
    before = sorted(p.name for p in folder.rglob("*"))

    args = parse(["--library", str(library_dir), str(folder), str(archive)])
    window = create_main_window(args)  # as run_gui builds it; first launch: demo wanted
    windows.append(window)
    window.show()
    with qt.waitSignal(window.import_done, timeout=WAIT_MS) as imported, \
            qt.waitSignal(window.series_loaded, timeout=WAIT_MS) as loaded:
        pass
    report = imported.args[0]
    assert report.new == len(mr_files) + len(zipped)
    ids = _series_ids(library_dir)
    assert set(ids) == {"T2 axial", "PD coronal"}  # no demo study was made
    assert loaded.args == [report.series[0].series_id]
    assert window.current_series_id in ids.values()
    assert window.current_volume.modality == "MR"
    assert window.viewer.volume is window.current_volume
    assert isinstance(window.last_dialog, ImportReportDialog) and window.last_dialog.isVisible()
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing beside the sources
    qt.wait(500)
    assert set(_series_ids(library_dir)) == {"T2 axial", "PD coronal"}  # still no demo


@pytest.mark.gui
def test_file_open_events_are_gathered_into_one_import_that_opens_the_series(
        qt: Any, windows: list[Any], tmp_path: Path, library_dir: Path) -> None:
    """macOS: one QFileOpenEvent per file, posted to the application."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QFileOpenEvent
    from PySide6.QtWidgets import QApplication

    from app.open_paths import install_file_open_filter

    files = write_mr(tmp_path / "finder", description="Sagittal STIR", n_slices=8)
    window = _make(qt, windows, library_dir, open_demo=False)
    app = QApplication.instance()
    assert app is not None
    file_filter = install_file_open_filter(app)
    try:
        # Before a window is attached the paths wait; then they go to its opener.
        app.postEvent(app, QFileOpenEvent(str(files[0])))
        qt.waitUntil(lambda: file_filter.waiting == [files[0]], timeout=5000)
        reports: list[Any] = []
        window.import_done.connect(reports.append)
        with qt.waitSignal(window.series_loaded, timeout=WAIT_MS) as loaded:
            file_filter.set_opener(window.path_opener)
            for f in files[1:4]:
                app.postEvent(app, QFileOpenEvent(QUrl.fromLocalFile(str(f))))
        assert len(reports) == 1 and reports[0].new == 4  # four files, one import
        assert loaded.args == [_series_ids(library_dir)["Sagittal STIR"]]
        assert window.current_volume.shape[0] == 4
    finally:
        app.removeEventFilter(file_filter)
        file_filter.deleteLater()


@pytest.mark.gui
def test_paths_with_no_image_say_so_and_open_nothing(qt: Any, windows: list[Any],
                                                     tmp_path: Path, library_dir: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not DICOM", encoding="utf-8")
    window = _make(qt, windows, library_dir, open_demo=None, open_paths=[notes])
    with qt.waitSignal(window.path_opener.opened, timeout=WAIT_MS) as opened:
        pass
    assert opened.args == [None]
    assert window.current_series_id is None and window.load_job is None
    assert "no image series" in window.status_label.text()
    assert window.last_import_report.skipped  # the report says why notes.txt was skipped
    qt.wait(500)
    assert _series_ids(library_dir) == {}  # and the demo was not made instead


_RUN_GUI_SCRIPT = """
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app.cli import parse_arguments
from app.gui import make_application, run_gui
from app.main_window import MainWindow
from app.open_paths import FileOpenFilter

args = parse_arguments(sys.argv[1:])  # as `lucida` parses it
app = make_application()
seen = {}

def check():
    for widget in QApplication.topLevelWidgets():
        job = getattr(widget, "load_job", None)
        if isinstance(widget, MainWindow) and widget.isVisible() \\
                and widget.current_volume is not None and job is not None and not job.running:
            file_filter = app.findChild(FileOpenFilter)
            seen["series"] = widget.current_series_id
            seen["filter feeds it"] = (file_filter is not None
                                       and file_filter.opener is widget.path_opener)
            widget.close()
            app.quit()
            return
    QTimer.singleShot(100, check)

QTimer.singleShot(100, check)
QTimer.singleShot(60_000, app.quit)
seen["code"] = run_gui(args)
print("RESULT " + json.dumps(seen))
"""


@pytest.mark.gui
def test_run_gui_opens_the_launch_paths_and_listens_for_file_open(
        tmp_path: Path, library_dir: Path, display: None) -> None:
    """What `lucida --library DIR FOLDER` runs (run_gui, its event loop included): the
    folder's series is on screen and the app's FileOpen filter feeds that window. In its
    own process: an event loop that ran and quit inside the test process starved the
    worker threads of later tests."""
    write_mr(tmp_path / "incoming", description="T1 sagittal", n_slices=6)
    script = tmp_path / "run_gui_check.py"
    script.write_text(_RUN_GUI_SCRIPT, encoding="utf-8")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(script), "--library", str(library_dir),
         str(tmp_path / "incoming")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    import json

    seen = json.loads(lines[-1].removeprefix("RESULT "))
    assert seen["code"] == 0
    assert seen.get("series") == _series_ids(library_dir)["T1 sagittal"]
    assert seen["filter feeds it"] is True
