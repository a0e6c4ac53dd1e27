"""Comparison with a prior in the main window (app/compare.py, viewer/link.py).

Real DICOM series written to tmp_path (or read in place from ../shared), imported into
a real library, shown in a real window under Xvfb:

- two series of one Frame of Reference on different grids link by identity and scroll,
  zoom, pan and window in lock-step, both ways, until unlinked; the older study is
  tagged as a prior in the library browser;
- a rotated and shifted copy of LIDC-IDRI-0001 (a new Frame of Reference) is not linked
  until registered; the registration runs off the GUI thread (a QTimer keeps ticking),
  can be cancelled, recovers the known transform within 1 mm and 1°, and then the panes
  scroll in lock-step through it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.volume import Volume

pytestmark = pytest.mark.gui

WAIT_MS = 60_000
SHOTS = Path("/tmp/shots18/h3")
FOR_UID = "1.2.826.0.1.3680043.8.498.18002"



def body_phantom() -> Volume:
    """60 × 96 × 96, 2 mm slices, 1 mm pixels: an elliptic body (40 HU), a 'spine' (700)
    and a sphere (300) off centre, so every slice and position looks different."""
    k, j, i = np.mgrid[0:60, 0:96, 0:96].astype(np.float32)
    array = np.full((60, 96, 96), -1000, dtype=np.int16)
    body = ((i - 48) / 42) ** 2 + ((j - 50) / 32) ** 2 <= 1
    array[body] = 40
    array[((i - 48) ** 2 + (j - 72) ** 2 <= 36)] = 700
    array[((i - 30) ** 2 + (j - 40) ** 2 + ((k - 38) * 2) ** 2 <= 144)] = 300
    affine = np.zeros((4, 4))
    affine[:3, :3] = np.column_stack([(0, 0, 2.0), (0, 1.0, 0), (1.0, 0, 0)])
    affine[:3, 3] = (-48.0, -50.0, -60.0)
    affine[3, 3] = 1.0
    return Volume(array, affine, modality="CT")


def regridded(volume: Volume) -> Volume:
    """The same anatomy on another grid: 3 mm slices, 1.25 mm pixels, shifted, smaller."""
    from core.resample import resample_array

    affine = np.zeros((4, 4))
    affine[:3, :3] = np.column_stack([(0, 0, 3.0), (0, 1.25, 0), (1.25, 0, 0)])
    affine[:3, 3] = (-43.0, -57.0, -49.0)
    affine[3, 3] = 1.0
    shape = (30, 72, 70)
    array = resample_array(volume.array, volume.affine, affine, shape, fill_value=-1000.0)
    return Volume(np.rint(array).astype(np.int16), affine, modality="CT")


def write(volume: Volume, folder: Path, **info: Any) -> None:
    from dicomio.write_image import SeriesInfo, write_series

    write_series(volume, folder, SeriesInfo(**info), rescale_intercept=-1024.0)


def import_into(library_dir: Path, *paths: Path) -> dict[str, int]:
    """Series ids by series description."""
    from app.importer import import_paths
    from store import Library

    library = Library.open(library_dir)
    try:
        import_paths(library, list(paths))
        return {s.series_description: s.id for s in library.all_series()}
    finally:
        library.close()


def open_pair(qt: Any, window: Any, current: int, prior: int) -> Any:
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(current)
    compare = window.compare
    with qt.waitSignal(compare.loaded, timeout=WAIT_MS):
        compare.open_series(prior)
    return compare


def grab(widget: Any) -> np.ndarray:
    """What is on screen over ``widget`` (RGB), read back from the X server."""
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    pixmap = QApplication.primaryScreen().grabWindow(widget.winId())
    image = pixmap.toImage().convertToFormat(pixmap.toImage().Format.Format_RGB888)
    w, h = image.width(), image.height()
    bits = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return bits.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


def save_shot(window: Any, name: str) -> Path:
    from PySide6.QtWidgets import QApplication

    SHOTS.mkdir(parents=True, exist_ok=True)
    QApplication.processEvents()
    path = SHOTS / name
    QApplication.primaryScreen().grabWindow(window.winId()).save(str(path))
    return path


def view_centre(view: Any) -> np.ndarray:
    from viewer.link import view_centre_lps

    return view_centre_lps(view)


def test_same_frame_of_reference_scrolls_zooms_pans_and_windows_in_lock_step(
        tmp_path: Path, library_dir: Path, make_window: Any, qt: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.compare import SAME_FOR, UNLINKED
    from app.library_browser import PRIOR_ROLE, PRIOR_TAG

    current = body_phantom()
    write(current, tmp_path / "current", patient_id="PID-CMP", study_date="20250601",
          series_description="Current 2mm", frame_of_reference_uid=FOR_UID)
    write(regridded(current), tmp_path / "prior", patient_id="PID-CMP", study_date="20240601",
          series_description="Prior 3mm", frame_of_reference_uid=FOR_UID)
    write(current, tmp_path / "other", patient_id="PID-OTHER", study_date="20200101",
          series_description="Other patient")
    # Same patient, same day: the morning study is a prior of the noon one, the evening
    # one is not (the rule app.hanging's "prior" cell uses too).
    write(regridded(current), tmp_path / "morning", patient_id="PID-CMP",
          study_date="20250601", study_time="080000", series_description="Morning")
    write(regridded(current), tmp_path / "evening", patient_id="PID-CMP",
          study_date="20250601", study_time="190000", series_description="Evening")
    ids = import_into(library_dir, tmp_path / "current", tmp_path / "prior", tmp_path / "other",
                      tmp_path / "morning", tmp_path / "evening")
    window = make_window(library_dir, size=(1500, 800))
    window.set_layout("1x3")
    compare = open_pair(qt, window, ids["Current 2mm"], ids["Prior 3mm"])

    # The library marks the older studies of the same patient, not the other patient's.
    assert sorted(window.browser.prior_series_ids()) == sorted(
        [ids["Prior 3mm"], ids["Morning"]])
    prior_items = [st for _p, _s, st, _i in window.browser._study_items if st.data(PRIOR_ROLE)]
    assert len(prior_items) == 2 and all(i.text().endswith(PRIOR_TAG) for i in prior_items)
    assert "Prior study" in prior_items[0].toolTip()

    assert compare.pane.isVisible() and compare.link.linked
    assert compare.link_label.text() == SAME_FOR
    a = window.viewer.slice_views()["axial"]
    b = compare.panel.slice_views()["axial"]
    qt.waitUntil(lambda: b.isVisible() and b.width() > 100, timeout=WAIT_MS)

    # Scroll the current pane (API and a real key press): the prior follows to the same z.
    for steps in (7, -3, 11):
        a.scroll_slices(steps)
        assert abs(b.slice_position_mm() - a.slice_position_mm()) <= 1.5 + 1e-6  # ½ × 3 mm
    a.setFocus()
    before = a.slice_position_mm()
    QTest.keyClick(a, Qt.Key.Key_PageDown)
    assert a.slice_position_mm() != before
    assert abs(b.slice_position_mm() - a.slice_position_mm()) <= 1.5 + 1e-6
    # ... and the other way round (the current pane within half of its 2 mm slice).
    b.scroll_slices(-4)
    assert abs(a.slice_position_mm() - b.slice_position_mm()) <= 1.0 + 1e-6
    cor_a, cor_b = (p.slice_views()["coronal"] for p in (window.viewer, compare.panel))
    assert abs(cor_a.slice_position_mm() - cor_b.slice_position_mm()) <= 0.625 + 1.0

    # Zoom and pan: same mm per pixel, same anatomy in the middle of the view.
    a.set_zoom(2.5)
    assert b.mm_per_px() == pytest.approx(a.mm_per_px(), rel=0.02)
    a.pan_mm(12.0, -7.0)
    np.testing.assert_allclose(view_centre(b)[:2], view_centre(a)[:2], atol=0.5)
    # Window / level, both ways.
    window.viewer.set_window_level(1500.0, -600.0)
    assert compare.panel.window_level_values() == (1500.0, -600.0)
    compare.panel.set_window_level(350.0, 45.0)
    assert window.viewer.window_level_values() == (350.0, 45.0)

    shot = save_shot(window, "compare_same_for.png")
    pixels = grab(compare.link_label)
    green = (pixels[..., 1] > 170) & (pixels[..., 0] < 160) & (pixels[..., 2] < 170)
    assert green.sum() > 30, "the link label is not drawn in green"
    pane = grab(compare.panel)
    assert (pane.max(axis=2) > 60).mean() > 0.05, "the prior pane shows no image"
    assert shot.stat().st_size > 0

    # Unlinked: the panes go their own ways; linking again brings the prior back.
    compare.toggle_link()
    assert not compare.link.linked and compare.link_label.text() == UNLINKED
    position_b = b.slice_position_mm()
    a.scroll_slices(5)
    assert b.slice_position_mm() == position_b
    compare.toggle_link()
    assert compare.link.linked
    assert abs(b.slice_position_mm() - a.slice_position_mm()) <= 1.5 + 1e-6

    compare.close()
    assert not compare.pane.isVisible() and not compare.link.linked
    a.scroll_slices(2)  # nothing linked any more: no error, the closed pane stays empty
    assert compare.panel.volume is None


@pytest.mark.shared
def test_moved_lidc_registers_off_the_gui_thread_then_scrolls_in_lock_step(
        tmp_path: Path, library_dir: Path, make_window: Any, qt: Any,
        shared_data: Path) -> None:
    from PySide6.QtCore import QTimer

    from app.compare import NOT_LINKED_FOR
    from core.registration import apply, rigid_matrix, transform_difference
    from dicomio.load import read_volume

    lidc_dir = shared_data / "ct" / "LIDC-IDRI-0001"
    current = read_volume(sorted(lidc_dir.glob("*.dcm")))
    truth = rigid_matrix((1.0, 1.0, 0.5), 5.0, (6.0, -9.0, 4.0), current.center_lps())
    shift = np.eye(4)
    shift[0, 3] = 10
    prior = Volume(current.array[10:-8].copy(), truth @ current.affine @ shift,
                   modality="CT")
    write(prior, tmp_path / "prior", patient_id="LIDC-IDRI-0001", study_date="19990101",
          series_description="Moved prior")
    ids = import_into(library_dir, lidc_dir, tmp_path / "prior")
    current_id = next(v for k, v in ids.items() if k != "Moved prior")
    window = make_window(library_dir, size=(1500, 800))
    window.set_layout("1x3")
    compare = open_pair(qt, window, current_id, ids["Moved prior"])
    assert window.browser.prior_series_ids() == [ids["Moved prior"]]
    assert not compare.link.linked and compare.link_label.text() == NOT_LINKED_FOR

    # Loading the compared series can be cancelled (its pane closes), then opened again.
    with qt.waitSignal(compare.closed, timeout=WAIT_MS):
        job = compare.open_series(ids["Moved prior"])
        assert job is not None and compare.cancel_button.isVisible()
        compare.cancel()
    assert not compare.pane.isVisible() and compare.volume is None
    with qt.waitSignal(compare.loaded, timeout=WAIT_MS):
        compare.open_series(ids["Moved prior"])
    assert compare.link_label.text() == NOT_LINKED_FOR

    # Cancel as soon as the optimiser reports an iteration.
    def cancel_on_iteration(_fraction: float, message: str) -> None:
        if "level" in message:
            compare.cancel()

    job = compare.register()
    assert job is not None
    job.progress.connect(cancel_on_iteration)
    with qt.waitSignal(compare.registration_cancelled, timeout=WAIT_MS):
        pass
    assert not compare.link.linked and compare.link_label.text() == NOT_LINKED_FOR
    assert compare.result is None

    # Register for real while a GUI timer keeps ticking.
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    started = time.perf_counter()
    with qt.waitSignal(compare.registered, timeout=WAIT_MS) as blocker:
        compare.register()
        assert compare.link_label.text() == "Registering…"
    finished = time.perf_counter()
    timer.stop()
    during = np.array([t for t in ticks if started <= t <= finished])
    assert len(during) >= 5, "the GUI thread did not run during the registration"
    gaps = np.diff(np.concatenate([[started], during, [finished]]))
    assert gaps.max() < 0.75, f"the GUI thread froze for {gaps.max():.2f} s"

    result = blocker.args[0]
    k, j, i = (np.array([0.0, (n - 1) / 2.0, n - 1.0]) for n in current.shape)
    kk, jj, ii = np.meshgrid(k, j, i, indexing="ij")
    points = current.index_to_lps(np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1))
    distance, angle = transform_difference(result.matrix, truth, points)
    assert distance < 1.0 and angle < 1.0
    label = compare.link_label.text()
    assert label.startswith("Linked: registered (rigid, MI), residual MI")
    assert compare.link.linked

    # Lock-step through the transform: the prior's cursor is the current one moved by truth.
    a = window.viewer.slice_views()["axial"]
    for steps in (-20, 9, 30):
        a.scroll_slices(steps)
        expected = apply(truth, window.viewer.cursor_lps())
        np.testing.assert_allclose(compare.panel.cursor_lps(), expected, atol=1.0)
    moved_prior = compare.volume
    expected_k = moved_prior.lps_to_index(apply(truth, window.viewer.cursor_lps()))[0]
    b = compare.panel.slice_views()["axial"]
    assert abs(b.slice_index() - expected_k) <= 1.0
    # Side by side, one axial view each, on the nodule of SOURCE.md (col 316, row 367,
    # z ≈ -115.9 mm): the prior shows the same slice of it.
    window.set_layout("1x1")
    assert compare.panel.layout_name() == "1x1"
    zs = current.index_to_lps(np.stack([np.arange(current.shape[0]), np.zeros(current.shape[0]),
                                        np.zeros(current.shape[0])], axis=1))[:, 2]
    nodule = current.index_to_lps((int(np.argmin(np.abs(zs + 115.9))), 367, 316))
    window.viewer.set_cursor_lps(nodule)
    np.testing.assert_allclose(compare.panel.cursor_lps(), apply(truth, nodule), atol=1.0)
    # The views were resized by the layout change: the prior's zoom catches up (same mm/px).
    qt.waitUntil(lambda: abs(b.mm_per_px() / a.mm_per_px() - 1.0) < 0.02, timeout=5000)
    save_shot(window, "compare_registered.png")
    pixels = grab(compare.link_label)
    green = (pixels[..., 1] > 170) & (pixels[..., 0] < 160) & (pixels[..., 2] < 170)
    assert green.sum() > 30, "the link label is not drawn in green"


def test_entry_points_and_closing(tmp_path: Path, library_dir: Path, make_window: Any,
                                  qt: Any) -> None:
    """The library's context menu and the View ▸ Compare menu open the comparison; Close,
    and opening the compared series itself, end it."""
    from app.compare import SAME_FOR

    current = body_phantom()
    write(current, tmp_path / "current", patient_id="PID-CMP", study_date="20250601",
          series_description="Current 2mm", frame_of_reference_uid=FOR_UID)
    write(regridded(current), tmp_path / "prior", patient_id="PID-CMP", study_date="20240601",
          series_description="Prior 3mm", frame_of_reference_uid=FOR_UID)
    ids = import_into(library_dir, tmp_path / "current", tmp_path / "prior")
    window = make_window(library_dir)
    compare = window.compare
    assert not compare.pane.isVisible() and not compare.act_close.isEnabled()
    # Nothing open yet: the library cannot offer a comparison.
    menu = window.browser.series_menu(ids["Prior 3mm"])
    assert [a.text() for a in menu.actions()] == ["Open", "Compare with open series"]
    assert not menu.actions()[1].isEnabled()
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(ids["Current 2mm"])
    assert not window.browser.series_menu(ids["Current 2mm"]).actions()[1].isEnabled()

    menu = window.browser.series_menu(ids["Prior 3mm"])
    with qt.waitSignal(compare.loaded, timeout=WAIT_MS):
        menu.actions()[1].trigger()
    assert compare.pane.isVisible() and compare.link_label.text() == SAME_FOR
    assert compare.act_close.isEnabled()
    # Hiding identity or the crosshair hides it in the compared pane too.
    prior_axial = compare.panel.slice_views()["axial"]
    assert "ID PI" in prior_axial.corner_texts()["top_left"]  # cut to the narrow view
    window.set_identity_visible(False)
    assert "ID PI" not in prior_axial.corner_texts()["top_left"]
    assert "SYNT" not in prior_axial.corner_texts()["top_left"]
    window.set_identity_visible(True)
    window.act_crosshair.setChecked(False)
    assert not compare.panel.crosshair_visible()
    window.act_crosshair.setChecked(True)
    assert compare.panel.crosshair_visible()
    compare.act_close.trigger()
    assert not compare.pane.isVisible() and compare.series_id is None

    # View ▸ Compare ▸ "Compare with selected series".
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    submenu = next(a.menu() for a in view_menu.actions() if a.text() == "Compare")
    assert compare.act_compare in submenu.actions()
    assert window.browser.select_series(ids["Prior 3mm"])
    with qt.waitSignal(compare.loaded, timeout=WAIT_MS):
        compare.act_compare.trigger()
    assert compare.series_id == ids["Prior 3mm"] and compare.link.linked

    # Opening the compared series as the main one ends the comparison.
    with qt.waitSignal(compare.closed, timeout=WAIT_MS):
        window.open_series(ids["Prior 3mm"])
    assert not compare.pane.isVisible() and not compare.link.linked


def test_two_radiographs_side_by_side_are_not_linked(tmp_path: Path, library_dir: Path,
                                                     make_window: Any, qt: Any) -> None:
    """2-D images have no patient geometry: both show, the label says why they are not
    linked, and Register is refused."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from app.compare import NOT_LINKED_2D

    src = tmp_path / "src"
    src.mkdir()
    first = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))
    first.save_as(src / "current.dcm")
    first.SeriesInstanceUID = generate_uid()
    first.SOPInstanceUID = generate_uid()
    first.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
    first.SeriesDescription = "Earlier copy"
    first.save_as(src / "copy.dcm")
    ids = import_into(library_dir, src)
    copy_id = ids.pop("Earlier copy")
    window = make_window(library_dir)
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(next(iter(ids.values())))
    compare = window.compare
    with qt.waitSignal(compare.loaded, timeout=WAIT_MS):
        compare.open_series(copy_id)
    assert compare.link_label.text() == NOT_LINKED_2D and not compare.link.linked
    assert compare.panel.projection_view() is not None
    assert compare.register() is None
    assert "3-D" in window.status_label.text()
    pixels = grab(compare.panel)
    assert (pixels.max(axis=2) > 60).mean() > 0.05, "the compared radiograph is not shown"
    left, right = compare.splitter.sizes()
    assert abs(left - right) <= 0.1 * (left + right), "the two panes should share the area"
    save_shot(window, "compare_radiographs.png")


def test_other_modality_links_position_but_not_window(tmp_path: Path, library_dir: Path,
                                                      make_window: Any, qt: Any) -> None:
    """A CT and an MR of one Frame of Reference: scrolling is linked, the window is not
    (HU mean nothing on MR), and the label says so."""
    from dicomio.write_image import SeriesInfo, write_series

    ct = body_phantom()
    write(ct, tmp_path / "ct", patient_id="PID-MIX", series_description="CT",
          frame_of_reference_uid=FOR_UID)
    mr = regridded(ct)
    mr = Volume(np.clip(mr.array + 1000, 0, None).astype(np.int16), mr.affine, modality="MR")
    write_series(mr, tmp_path / "mr", SeriesInfo(patient_id="PID-MIX", series_description="MR",
                                                 frame_of_reference_uid=FOR_UID),
                 modality="MR")
    ids = import_into(library_dir, tmp_path / "ct", tmp_path / "mr")
    window = make_window(library_dir)
    compare = open_pair(qt, window, ids["CT"], ids["MR"])
    assert compare.link.linked and not compare.link.window_linked
    assert compare.link_label.text().endswith("(window not linked: other modality)")
    mr_window = compare.panel.window_level_values()
    window.viewer.set_window_level(80.0, 40.0)
    assert compare.panel.window_level_values() == mr_window
    a = window.viewer.slice_views()["axial"]
    b = compare.panel.slice_views()["axial"]
    a.scroll_slices(6)
    assert abs(b.slice_position_mm() - a.slice_position_mm()) <= 1.5 + 1e-6
