"""The DICOM tag dock and File ▸ Export on a real window, library and series.

A real CT series is written to tmp_path and imported into a real SQLite library; the
window is a real Qt + VTK window under Xvfb. Pictures are checked at landmarks (the
corner-text area), GIFs by their frame count, the de-identified copy by reading it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from core.volume import Volume

pytestmark = pytest.mark.gui

WAIT_MS = 60_000
SHOTS = Path(os.environ.get("LUCIDA_SHOTS", "/tmp/shots18/h2"))
N_SLICES = 12



def _write_ct(folder: Path, study_date: str = "20250601") -> None:
    """A small CT of GAMMA^THREE: a bright cube (300 HU) in tissue, air outside."""
    from dicomio.write_image import SeriesInfo, write_series

    array = np.full((N_SLICES, 64, 64), -1000, dtype=np.int16)
    array[:, 10:-10, 10:-10] = 40
    array[4:8, 24:40, 24:40] = 300
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([(0, 0, 3.0), (0, 0.8, 0), (0.8, 0, 0)])
    affine[:3, 3] = (-25.0, -25.0, -20.0)
    info = SeriesInfo(patient_name="GAMMA^THREE", patient_id="PID-G", study_date=study_date,
                      study_description="Chest", series_description="Axial 3mm")
    write_series(Volume(array, affine, modality="CT"), folder, info, modality="CT",
                 rescale_intercept=-1024.0)


def _import(library_dir: Path, *folders: Path) -> list[int]:
    from app.importer import import_paths
    from store import Library

    library = Library.open(library_dir)
    try:
        import_paths(library, list(folders))
        return [s.id for s in library.all_series()]
    finally:
        library.close()


@pytest.fixture
def ct_series(tmp_path: Path, library_dir: Path) -> tuple[int, Path]:
    """(series id, source folder) of the small CT."""
    folder = tmp_path / "src" / "ct"
    _write_ct(folder)
    return _import(library_dir, folder)[0], folder


def _open(qt: Any, window: Any, series_id: int) -> None:
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(series_id)
    qt.wait(50)


def _shot(qt: Any, window: Any, name: str) -> None:
    """Save the whole window as the user sees it (QScreen.grabWindow, not QWidget.grab)."""
    qt.wait(150)  # let the tree repaint first
    SHOTS.mkdir(parents=True, exist_ok=True)
    window.screen().grabWindow(window.winId()).save(str(SHOTS / name))


def _wait_rows(qt: Any, window: Any, want: str) -> list[tuple[str, str, str, str]]:
    from pytestqt.exceptions import TimeoutError as QtTimeout

    from app import workers

    browser = window.tags.browser
    try:
        qt.waitUntil(lambda: any(want in " ".join(r) for r in browser.visible_rows()),
                     timeout=WAIT_MS)
    except QtTimeout:  # a job pool full of others' jobs never runs the read: say so
        running = workers.running_job_names()
        raise AssertionError(
            f"no row with {want!r} in {len(browser.visible_rows())} rows; job pool "
            f"{workers.pool().activeThreadCount()} busy, running {running}") from None
    return browser.visible_rows()


def test_tag_dock_shows_filters_and_hides_identity(make_window: Any, qt: Any,
                                                   ct_series: tuple[int, Path],
                                                   library_dir: Path) -> None:
    series_id, _folder = ct_series
    window = make_window(library_dir, size=(1500, 900))
    _open(qt, window, series_id)
    rows_of_sheet = window.shortcut_rows()
    assert ("Ctrl+T", "DICOM tags…") in rows_of_sheet
    assert ("Ctrl+Shift+S", "Current view as PNG…") in rows_of_sheet
    keys = [k for k, _ in rows_of_sheet]
    assert keys.count("Ctrl+T") == 1 and keys.count("Ctrl+Shift+S") == 1  # no clash
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    export = next(a.menu() for a in file_menu.actions() if a.text() == "Export")
    assert [a.text() for a in export.actions() if a.text()] == [
        "Include corner text", "Include overlays", "Current view as PNG…",
        "Whole layout as PNG…", "Cine as animated GIF…", "Cine as numbered PNGs…",
        "De-identified DICOM copy of the series…", "De-identified DICOM copy of the study…"]
    window.tags.action.trigger()
    assert window.tags.dock.isVisible()
    rows = _wait_rows(qt, window, "GAMMA^THREE")
    name_row = [r for r in rows if r[0] == "(0010,0010)"]
    assert name_row == [("(0010,0010)", "Patient's Name", "PN", "GAMMA^THREE")]
    assert any(r[0] == "(0008,0060)" and r[3] == "CT" for r in rows)
    assert "Instance" in window.tags.browser.caption.text()
    _shot(qt, window, "tags_dock.png")

    # The instance follows the slice shown: move to another slice, another file.
    first_uid = next(r[3] for r in rows if r[0] == "(0008,0018)")
    volume = window.current_volume
    window.viewer.set_cursor_lps(volume.index_to_lps((0, 32, 32)))
    qt.waitUntil(lambda: [r[3] for r in window.tags.browser.visible_rows()
                          if r[0] == "(0008,0018)"] not in ([], [first_uid]), timeout=WAIT_MS)

    # Search by tag, keyword and value.
    browser = window.tags.browser
    browser.set_filter("0010,0020")
    assert [r[0] for r in browser.visible_rows()] == ["(0010,0020)"]
    browser.set_filter("Modality")
    assert ("(0008,0060)", "Modality", "CS", "CT") in browser.visible_rows()
    browser.set_filter("PID-G")
    assert [r[0] for r in browser.visible_rows()] == ["(0010,0020)"]

    # Identity hidden (Ctrl+I): values read "hidden", and the search no longer finds them.
    window.act_identity.trigger()
    assert browser.visible_rows() == []
    browser.set_filter("")
    hidden = {r[0]: r[3] for r in browser.visible_rows()}
    assert hidden["(0010,0010)"] == "hidden" and hidden["(0010,0020)"] == "hidden"
    assert hidden["(0008,0060)"] == "CT"
    assert "GAMMA" not in " ".join(" ".join(r) for r in browser.visible_rows())
    _shot(qt, window, "tags_dock_identity_hidden.png")
    window.act_identity.trigger()
    assert {r[0]: r[3] for r in browser.visible_rows()}["(0010,0010)"] == "GAMMA^THREE"


def test_a_corrupt_file_gives_an_error_row(make_window: Any, qt: Any,
                                           ct_series: tuple[int, Path],
                                           library_dir: Path) -> None:
    series_id, _folder = ct_series
    window = make_window(library_dir)
    _open(qt, window, series_id)
    window.tags.action.trigger()
    _wait_rows(qt, window, "GAMMA^THREE")
    # Damage the file under the cursor after loading: the dock says so, the window lives.
    instance = window.tags.current_instance()
    data = instance.path.read_bytes()
    instance.path.write_bytes(data[:700])
    window.tags._request(force=True)
    rows = _wait_rows(qt, window, "Cannot read")
    assert len(rows) == 1 and "truncated" in rows[0][1]
    assert window.isVisible()


def _corner_text_area(rgb: np.ndarray) -> np.ndarray:
    """Top-left of the first view (axial): identity lines when shown (left of the
    crosshair's vertical line)."""
    return rgb[4:40, 4:90].astype(int)


def test_png_of_the_layout_with_and_without_corner_text(make_window: Any, qt: Any,
                                                        ct_series: tuple[int, Path],
                                                        library_dir: Path,
                                                        tmp_path: Path) -> None:
    series_id, folder = ct_series
    window = make_window(library_dir, size=(1400, 800))
    _open(qt, window, series_id)
    window.set_layout("1x3")
    qt.wait(100)
    axial0 = window.viewer.slice_views()["axial"]
    w0, h0 = axial0.width(), axial0.height()
    axial0.add_measurement_from_display(
        "distance", [(w0 * 0.15, h0 * 0.3), (w0 * 0.4, h0 * 0.3)])
    qt.wait(100)
    out = tmp_path / "pictures"
    out.mkdir()
    exports = window.exports
    with_text = exports.export_png(out / "layout.png", "layout", corner_text=True)
    without = exports.export_png(out / "layout-clean.png", "layout", corner_text=False)
    a = np.asarray(Image.open(with_text).convert("RGB"))
    b = np.asarray(Image.open(without).convert("RGB"))
    panel = window.viewer
    assert a.shape[:2] == (panel.height(), panel.width()) == b.shape[:2]
    SHOTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(SHOTS / "export_layout_text.png")
    Image.fromarray(b).save(SHOTS / "export_layout_clean.png")
    # Corner text: light grey letters top left with text, none without.
    assert (_corner_text_area(a).max(axis=2) > 120).sum() > 30
    assert (_corner_text_area(b).max(axis=2) > 120).sum() == 0
    # The image itself is the same in both: the cube at the centre of the axial view.
    axial = panel.slice_views()["axial"]
    at = axial.mapTo(panel, axial.rect().center())
    centre = (at.y(), at.x())
    np.testing.assert_array_equal(a[centre], b[centre])
    # Without overlays the crosshair goes too: its vertical line above the image.
    bare = np.asarray(Image.open(exports.export_png(
        out / "bare.png", "layout", corner_text=False, overlays=False)).convert("RGB"))
    line = (100, centre[1])
    assert int(b[line].max()) > 100 and int(bare[line].max()) < 30

    def amber(img: np.ndarray) -> int:
        """Measurement-coloured pixels in the axial view (its letters are off here)."""
        top_left = axial.mapTo(panel, axial.rect().topLeft())
        area = img[top_left.y(): top_left.y() + axial.height(),
                   top_left.x(): top_left.x() + axial.width()].astype(int)
        return int(((area[..., 0] > 180) & (area[..., 1] > 100) & (area[..., 1] < 210)
                    & (area[..., 2] < 90)).sum())

    # The measurement is an overlay too: drawn without corner text, gone without overlays.
    assert amber(b) > 40 and amber(bare) == 0
    Image.fromarray(bare).save(SHOTS / "export_layout_bare.png")
    # The menu's check boxes drive the default; the view alone is smaller than the layout.
    exports.act_corner_text.setChecked(False)
    view = np.asarray(Image.open(exports.export_png(out / "view.png", "view")).convert("RGB"))
    assert view.shape[1] < a.shape[1] and (_corner_text_area(view).max(axis=2) > 120).sum() == 0
    exports.act_corner_text.setChecked(True)
    # Never beside the sources.
    with pytest.raises(ValueError):
        exports.export_png(folder / "beside.png", "view")
    assert not (folder / "beside.png").exists()
    assert [p.name for p in exports.last_written] == ["view.png"]


def test_cine_gif_has_one_frame_per_slice(make_window: Any, qt: Any,
                                          ct_series: tuple[int, Path], library_dir: Path,
                                          tmp_path: Path) -> None:
    series_id, _folder = ct_series
    window = make_window(library_dir)
    _open(qt, window, series_id)
    window.set_layout("1x1")
    qt.wait(50)
    before = window.viewer.cursor_lps().copy()
    gif = window.exports.export_cine(tmp_path / "cine.gif")[0]
    with Image.open(gif) as image:
        assert image.n_frames == N_SLICES
        frames = []
        for n in (0, 5):
            image.seek(n)
            frames.append(np.asarray(image.convert("RGB")))
    assert not np.array_equal(frames[0], frames[1])  # slice 5 shows the cube, slice 0 not
    np.testing.assert_allclose(window.viewer.cursor_lps(), before)  # position restored
    pngs = window.exports.export_cine(tmp_path / "frames")
    assert [p.name for p in pngs][:2] == ["frame_0001.png", "frame_0002.png"]
    assert len(pngs) == N_SLICES


def test_deidentified_copy_from_the_gui_is_audited(make_window: Any, qt: Any,
                                                   ct_series: tuple[int, Path],
                                                   library_dir: Path, tmp_path: Path) -> None:
    series_id, folder = ct_series
    window = make_window(library_dir)
    _open(qt, window, series_id)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    # Into the sources' folder: refused, nothing written.
    assert window.exports.start_deid(folder / "deid") is None
    assert "never writes next to the source" in window.status_label.text()
    out = tmp_path / "documents"
    job = window.exports.start_deid(out)
    assert job is not None
    with qt.waitSignal(job.done, timeout=WAIT_MS):
        pass
    result = window.exports.last_deid
    assert result is not None and len(result.files) == N_SLICES
    copy = pydicom.dcmread(result.files[0])
    assert "GAMMA" not in str(copy.PatientName) and copy.PatientID != "PID-G"
    assert copy.PatientIdentityRemoved == "YES"
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()} == before
    rows = [r for r in window.library.audit_rows() if r.event == "export"]
    assert len(rows) == 1
    payload = rows[0].payload
    assert payload["what"] == "deidentified-series" and payload["files"] == N_SLICES
    text = json.dumps(payload)
    assert str(tmp_path) not in text and "GAMMA" not in text and "PID-G" not in text


def test_burned_in_series_is_refused_without_confirmation(make_window: Any, qt: Any,
                                                          ct_series: tuple[int, Path],
                                                          library_dir: Path,
                                                          tmp_path: Path) -> None:
    series_id, folder = ct_series
    first = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(first)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(first)
    window = make_window(library_dir)
    _open(qt, window, series_id)
    assert window.exports.start_deid(tmp_path / "out") is None  # no one to confirm
    assert "burned-in" in window.status_label.text()
    assert not (tmp_path / "out").exists()
    job = window.exports.start_deid(tmp_path / "out", allow_burned_in=True)
    assert job is not None
    with qt.waitSignal(job.done, timeout=WAIT_MS):
        pass
    assert window.exports.last_deid.burned_in == 1


@pytest.fixture
def us_cine(tmp_path: Path, library_dir: Path) -> int:
    """pydicom's examples_ybr_color.dcm (US, 30 YBR frames at 33.3 ms) in the library."""
    import shutil

    from pydicom.data import get_testdata_file

    from app.importer import import_paths
    from store import Library

    folder = tmp_path / "src" / "us"
    folder.mkdir(parents=True)
    shutil.copy2(get_testdata_file("examples_ybr_color.dcm"), folder / "us.dcm")
    library = Library.open(library_dir)
    try:
        import_paths(library, [folder])
        return library.all_series()[0].id
    finally:
        library.close()


def test_multiframe_ultrasound_exports_its_frames_in_colour(make_window: Any, qt: Any,
                                                           us_cine: int, library_dir: Path,
                                                           tmp_path: Path) -> None:
    window = make_window(library_dir)
    _open(qt, window, us_cine)
    view = window.viewer.projection_view()
    assert view is not None and view.image.frame_count == 30
    gif = window.exports.export_cine(tmp_path / "us.gif", corner_text=False)[0]
    # The file repeats frames 10 and 27 (10 = 11, 27 = 28): GIF stores a repeat as one
    # frame shown twice as long, so 28 frames that play 30 × the Frame Time.
    with Image.open(gif) as image:
        assert image.n_frames == 28
        durations = []
        for n in range(image.n_frames):
            image.seek(n)
            durations.append(image.info["duration"])
        # GIF counts 10 ms ticks: 30 or 40 ms each, 990 ms in all (30 × 33 ms).
        assert sum(durations) == 990 and set(durations) <= {30, 40, 60, 70, 80}
        image.seek(15)
        frame = np.asarray(image.convert("RGB")).astype(int)
    # Colour kept: the scanner's blue-grey labels (B > R), which a grey rendering loses.
    assert ((frame[..., 2] - frame[..., 0]) > 10).sum() > 1000
    assert view.frame_index == 0  # the frame shown is restored
    png = np.asarray(Image.open(window.exports.export_png(tmp_path / "us.png", "view"))
                     .convert("RGB"))
    assert png.shape[:2] == (view.height(), view.width())
    window.tags.action.trigger()
    rows = _wait_rows(qt, window, "YBR_FULL")
    assert ("(0008,0060)", "Modality", "CS", "US") in rows
    assert any(r[0] == "(0028,0008)" and r[3] == "30" for r in rows)  # Number of Frames
    _shot(qt, window, "tags_dock_us.png")


def test_layout_png_while_comparing_shows_both_panes(make_window: Any, qt: Any,
                                                     library_dir: Path,
                                                     tmp_path: Path) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QWidget

    _write_ct(tmp_path / "src" / "now")
    _write_ct(tmp_path / "src" / "prior", study_date="20240601")
    ids = _import(library_dir, tmp_path / "src")
    window = make_window(library_dir, size=(1600, 900))
    _open(qt, window, ids[0])
    with qt.waitSignal(window.compare.loaded, timeout=WAIT_MS):
        window.compare.open_series(ids[1])
    qt.wait(100)
    path = window.exports.export_png(tmp_path / "compare.png", "layout")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    Image.fromarray(rgb).save(SHOTS / "export_compare_layout.png")
    splitter = window.compare.splitter
    assert rgb.shape[:2] == (splitter.height(), splitter.width())
    for panel in (window.viewer, window.compare.panel):
        view = panel.slice_views()["axial"]
        centre = view.mapTo(splitter, view.rect().center())
        # Inside the bright cube, off the crosshair lines through the centre.
        assert rgb[centre.y() + 6, centre.x() + 6].min() > 200
    header = window.compare.pane.findChild(QWidget, "compareHeader")
    at = header.mapTo(splitter, QPoint(0, 0))
    strip = rgb[at.y():at.y() + header.height(), at.x():at.x() + header.width()]
    assert (strip.max(axis=2) > 120).sum() > 50  # the header's text (title, link state)
