"""The library browser: patients / studies / series, search, thumbnails, Import.

The tree is a ``QStandardItemModel`` behind a recursive filter proxy: a row is
shown when it, an ancestor or a descendant matches every word typed in the
search box (patient name and ID, study date in both ``20260101`` and
``2026-01-01`` forms, modality, descriptions). Thumbnails (middle slice,
shown at 64 px, stored at 128 px for high-DPI screens) are made in the background and cached in
``<library>/cache/thumbs/`` — never next to the source files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.workers import Job, JobContext, make
from core.atomic import atomic_path

log = logging.getLogger(__name__)

THUMB_PX = 64  # shown size, logical pixels
THUMB_STORE_PX = 128  # stored size: sharp on 2× (high-DPI) screens too
KIND_ROLE = Qt.ItemDataRole.UserRole + 1  # "patient" | "study" | "series"
ID_ROLE = Qt.ItemDataRole.UserRole + 2  # series id (series rows)
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 3  # lower-case searchable text
KEY_ROLE = Qt.ItemDataRole.UserRole + 4  # thumbnail key (series rows)
PRIOR_ROLE = Qt.ItemDataRole.UserRole + 5  # True on studies / series that are priors
PRIOR_TAG = "  ◷ prior"


# --------------------------------------------------------------------------- data

_IMAGE_KINDS = ("image", "rtimage", "")


@dataclass
class SeriesNode:
    id: Any
    key: str  # series instance UID + stack index: names the cached thumbnail
    text: str
    detail: str
    search: str
    image: bool = True


@dataclass
class StudyNode:
    text: str
    search: str
    series: list[SeriesNode] = field(default_factory=list)
    date: str = ""  # YYYYMMDD: a study of the open patient dated earlier is a prior
    time: str = ""  # HHMMSS: the same day, an earlier time is a prior too


@dataclass
class PatientNode:
    name: str
    patient_id: str
    search: str
    studies: list[StudyNode] = field(default_factory=list)


def _attr(obj: Any, *names: str, default: Any = "") -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def _date_forms(date: str) -> str:
    date = (date or "").strip()
    if len(date) == 8 and date.isdigit():
        return f"{date} {date[:4]}-{date[4:6]}-{date[6:]}"
    return date


def pretty_date(date: str) -> str:
    date = (date or "").strip()
    if len(date) == 8 and date.isdigit():
        return f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return date


def pretty_name(name: str) -> str:
    """DICOM PN ``FAMILY^GIVEN`` as ``FAMILY, GIVEN``."""
    parts = [p for p in (name or "").split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return parts[0] if parts else "(no name)"


def gather(library: Any) -> list[PatientNode]:
    """Read the whole patient / study / series hierarchy from a ``store.Library``."""
    out: list[PatientNode] = []
    for patient in library.patients():
        name = str(_attr(patient, "patient_name", "name"))
        pid = str(_attr(patient, "patient_id"))
        pnode = PatientNode(name=name, patient_id=pid,
                            search=f"{name} {name.replace('^', ' ')} {pid}".lower())
        for study in library.studies(patient):
            date = str(_attr(study, "study_date", "date"))
            desc = str(_attr(study, "study_description", "description"))
            series_list = list(library.series(study))
            modalities = sorted({str(_attr(s, "modality")) for s in series_list} - {""})
            snode = StudyNode(
                text=" ".join(x for x in (pretty_date(date), "/".join(modalities), desc) if x)
                or "(study)",
                search=f"{_date_forms(date)} {desc} {' '.join(modalities)} "
                f"{_attr(study, 'accession_number')}".lower(),
                date=date.strip(),
                time=str(_attr(study, "study_time")).strip(),
            )
            for s in series_list:
                modality = str(_attr(s, "modality"))
                sdesc = str(_attr(s, "series_description", "description"))
                number = _attr(s, "series_number", "number", default=None)
                count = _attr(s, "num_instances", "instance_count", "n_instances",
                              default=None)
                frames = _attr(s, "num_frames", "frame_count", default=None)
                kind = str(_attr(s, "object_kind", "kind", default="image"))
                label = f"{modality} {sdesc}".strip() or "(series)"
                if number not in (None, ""):
                    label = f"#{number} {label}"
                detail_bits = []
                if count:
                    detail_bits.append(f"{count} images")
                if frames and frames != count:
                    detail_bits.append(f"{frames} frames")
                is_image = kind.lower() in _IMAGE_KINDS
                if not is_image:
                    detail_bits.append(kind.upper())
                if _attr(s, "is_localizer", default=False):
                    detail_bits.append("localizer")
                n_warn = len(_attr(s, "warnings", default=[]) or [])
                if n_warn:
                    detail_bits.append(f"⚠ {n_warn} warning(s)")
                snode.series.append(SeriesNode(
                    id=_attr(s, "id", "series_id"),
                    key=f"{_attr(s, 'series_uid', 'uid')}-{_attr(s, 'stack_index', default=0)}",
                    text=label,
                    detail=", ".join(detail_bits),
                    search=f"{modality} {sdesc} {number or ''}".lower(),
                    image=is_image,
                ))
            pnode.studies.append(snode)
        out.append(pnode)
    return out


# ---------------------------------------------------------------------- thumbnails


def thumb_dir(library_dir: Path) -> Path:
    return Path(library_dir) / "cache" / "thumbs"


def thumb_path(library_dir: Path, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in key) or "unknown"
    return thumb_dir(library_dir) / f"{safe}.png"


def slice_to_qimage(slice_2d: np.ndarray[Any, Any], size: int = THUMB_STORE_PX) -> QImage:
    """Grey image of one slice, windowed on its 1st–99th percentiles, fitted in size²."""
    data = np.asarray(slice_2d, dtype=np.float64)
    if data.size == 0:
        data = np.zeros((1, 1))
    lo, hi = np.percentile(data, [1.0, 99.0])
    if hi <= lo:
        hi = lo + 1.0
    grey = np.ascontiguousarray(np.clip((data - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8))
    h, w = grey.shape
    image = QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)


def render_thumbnail(library: Any, series_id: Any, out: Path) -> Path:
    """Middle slice of a series as a small PNG (runs in a worker thread)."""
    from app.importer import series_sources
    from dicomio.load import read_volume

    sources = series_sources(library, series_id)
    if not sources:
        raise ValueError("series has no sources")
    middle = _middle_sources(sources)
    volume = read_volume(middle)
    array = volume.array
    image = slice_to_qimage(array[array.shape[0] // 2])
    out.parent.mkdir(parents=True, exist_ok=True)
    # Atomically, under a unique temporary name: two thumbnail jobs may briefly overlap
    # after a refresh, and a half-written PNG would be cached for good.
    with atomic_path(out) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {out}")
    return out


def _middle_sources(sources: list[Any]) -> list[Any]:
    """The source(s) holding the middle slice, from header-only geometry when possible."""
    if len(sources) == 1:
        return sources
    try:
        from dicomio.load import plan_volume

        plan = plan_volume(sources)
        ordered = [frame.source for frame in plan.frames] or sources
    except Exception as exc:  # a plan failure only costs the thumbnail's accuracy
        log.debug("plan_volume failed for a thumbnail: %s", exc)
        ordered = sources
    return [ordered[len(ordered) // 2]]


def thumbnails_job(library_dir: Path, wanted: list[tuple[Any, str]]) -> Job:
    """Make missing thumbnails; ``partial`` carries ``(key, path)`` as each is ready."""

    def work(ctx: JobContext) -> int:
        from store import Library

        library = Library.open(library_dir)
        made = 0
        try:
            for n, (series_id, key) in enumerate(wanted):
                if ctx.cancel.cancelled:
                    break
                out = thumb_path(library_dir, key)
                if not out.exists():
                    try:
                        render_thumbnail(library, series_id, out)
                    except Exception as exc:  # one bad series must not stop the others
                        # Type only: messages can hold file paths, which can hold names.
                        log.info("no thumbnail for series %s (%s)", series_id,
                                 type(exc).__name__)
                        continue
                    made += 1
                ctx.partial((key, str(out)))
                ctx.progress((n + 1) / max(1, len(wanted)), "thumbnails")
        finally:
            library.close()
        return made

    return make(work, name="thumbnails")


# --------------------------------------------------------------------------- widget


class _Filter(QSortFilterProxyModel):
    def __init__(self) -> None:
        super().__init__()
        self._words: list[str] = []
        self.setRecursiveFilteringEnabled(True)
        self.setAutoAcceptChildRows(True)

    def set_text(self, text: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt ≥ 6.9; invalidateFilter is deprecated
            self.beginFilterChange()
            self._words = text.lower().split()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._words = text.lower().split()
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int,
                         source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if not self._words:
            return True
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        # Words may match at different levels (a name and a modality): combine the
        # row's text with its ancestors'.
        text = ""
        while index.isValid():
            text += " " + str(index.data(SEARCH_ROLE) or "")
            index = index.parent()
        return all(w in text for w in self._words)


class LibraryBrowser(QWidget):
    """Search box + tree; emits ``open_requested(series_id)`` on double-click or Enter."""

    open_requested = Signal(object)
    import_requested = Signal()
    compare_requested = Signal(object)  # series id to show beside the open series

    def __init__(self, library_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("libraryBrowser")
        self.library_dir = Path(library_dir)
        self._identity_visible = True
        self._patients: list[PatientNode] = []
        self._series_items: dict[str, QStandardItem] = {}
        self._thumb_job: Job | None = None
        self.thumbnails_enabled = True

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.search = QLineEdit(self)
        self.search.setObjectName("librarySearch")
        self.search.setPlaceholderText("Search name, ID, date, modality, description")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._on_search)
        top.addWidget(self.search, 1)
        self.import_button = QPushButton("Import…", self)
        self.import_button.setToolTip(
            "Import a folder of DICOM files (or drop files on the window)")
        self.import_button.clicked.connect(self.import_requested)
        top.addWidget(self.import_button)
        layout.addLayout(top)

        self.model = QStandardItemModel(self)
        self.model.setHorizontalHeaderLabels(["Library"])
        self.proxy = _Filter()
        self.proxy.setSourceModel(self.model)
        self.tree = QTreeView(self)
        self.tree.setObjectName("libraryTree")
        self.tree.setModel(self.proxy)
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setUniformRowHeights(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.activated.connect(self._on_activated)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self._open_series_id: Any = None
        self._study_items: list[tuple[PatientNode, StudyNode, QStandardItem,
                                      list[QStandardItem]]] = []
        layout.addWidget(self.tree, 1)
        self.count_label = QLabel("", self)
        self.count_label.setStyleSheet("color: #7d858e;")
        layout.addWidget(self.count_label)

    # ----------------------------------------------------------------- content
    def refresh(self, library: Any) -> None:
        """Rebuild from the library (GUI-thread connection), then fetch thumbnails."""
        self._patients = gather(library)
        self._rebuild()
        self.start_thumbnails()

    def _rebuild(self) -> None:
        self.model.removeRows(0, self.model.rowCount())
        self._series_items.clear()
        self._study_items.clear()
        n_series = 0
        for p_number, patient in enumerate(self._patients, start=1):
            pitem = QStandardItem(self._patient_text(patient, p_number))
            pitem.setData("patient", KIND_ROLE)
            pitem.setData(patient.search, SEARCH_ROLE)
            for study in patient.studies:
                stitem = QStandardItem(study.text)
                stitem.setData("study", KIND_ROLE)
                stitem.setData(study.search, SEARCH_ROLE)
                for series in study.series:
                    text = series.text + (f"\n{series.detail}" if series.detail else "")
                    seitem = QStandardItem(text)
                    seitem.setData("series", KIND_ROLE)
                    seitem.setData(series.id, ID_ROLE)
                    seitem.setData(series.key, KEY_ROLE)
                    seitem.setData(series.search, SEARCH_ROLE)
                    seitem.setToolTip(f"{series.text}\n{series.detail}\nDouble-click to open")
                    if not series.image:
                        seitem.setEnabled(False)
                    cached = thumb_path(self.library_dir, series.key)
                    if cached.exists():
                        seitem.setIcon(QIcon(QPixmap(str(cached))))
                    self._series_items[series.key] = seitem
                    stitem.appendRow(seitem)
                    n_series += 1
                pitem.appendRow(stitem)
                self._study_items.append((patient, study, stitem,
                                          [stitem.child(r) for r in range(stitem.rowCount())]))
            self.model.appendRow(pitem)
        self._mark_priors()
        self.tree.expandAll()
        self.count_label.setText(f"{len(self._patients)} patient(s), {n_series} series")

    def _patient_text(self, patient: PatientNode, number: int) -> str:
        if self._identity_visible:
            pid = f"  [{patient.patient_id}]" if patient.patient_id else ""
            return f"{pretty_name(patient.name)}{pid}"
        return f"Patient {number}"

    def set_identity_visible(self, visible: bool) -> None:
        """Hide patient names and IDs (rows become "Patient 1", "Patient 2", ...)."""
        self._identity_visible = bool(visible)
        for row in range(self.model.rowCount()):
            item = self.model.item(row)
            if item is not None and row < len(self._patients):
                item.setText(self._patient_text(self._patients[row], row + 1))

    def start_thumbnails(self) -> None:
        if not self.thumbnails_enabled:
            return
        wanted = [(s.id, s.key) for p in self._patients for st in p.studies for s in st.series
                  if s.image and not thumb_path(self.library_dir, s.key).exists()]
        if not wanted:
            return
        if self._thumb_job is not None and self._thumb_job.running:
            self._thumb_job.cancel()
        job = thumbnails_job(self.library_dir, wanted)
        job.partial.connect(self._on_thumbnail)
        self._thumb_job = job
        job.start()

    def _on_thumbnail(self, value: object) -> None:
        key, path = cast(tuple[str, str], value)
        item = self._series_items.get(str(key))
        if item is not None and Path(str(path)).exists():
            item.setIcon(QIcon(QPixmap(str(path))))

    # ----------------------------------------------------------------- queries
    def visible_series_ids(self) -> list[Any]:
        """Ids of series rows the current search leaves visible (for tests and scripts)."""
        out: list[Any] = []

        def walk(parent: QModelIndex) -> None:
            for r in range(self.proxy.rowCount(parent)):
                idx = self.proxy.index(r, 0, parent)
                if idx.data(KIND_ROLE) == "series":
                    out.append(idx.data(ID_ROLE))
                walk(idx)

        walk(QModelIndex())
        return out

    def select_series(self, series_id: Any) -> bool:
        for item in self._series_items.values():
            if item.data(ID_ROLE) == series_id:
                idx = self.proxy.mapFromSource(item.index())
                if idx.isValid():
                    self.tree.setCurrentIndex(idx)
                    self.tree.scrollTo(idx)
                    return True
        return False

    def selected_series_id(self) -> Any:
        """Id of the series row under the tree's cursor, or None."""
        idx = self.tree.currentIndex()
        return idx.data(ID_ROLE) if idx.data(KIND_ROLE) == "series" else None

    # ----------------------------------------------------------------- priors
    def set_open_series(self, series_id: Any) -> list[Any]:
        """Mark the priors of the open series' patient; returns their series ids."""
        self._open_series_id = series_id
        return self._mark_priors()

    def prior_series_ids(self) -> list[Any]:
        return [item.data(ID_ROLE) for _p, _s, _st, items in self._study_items
                for item in items if item.data(PRIOR_ROLE)]

    def _mark_priors(self) -> list[Any]:
        """Same patient ID, earlier study date than the open study: tag, colour, tooltip."""
        open_patient, open_date, open_time, open_study = "", "", "", None
        for patient, study, _item, items in self._study_items:
            if any(i.data(ID_ROLE) == self._open_series_id for i in items):
                open_patient, open_date, open_time = patient.patient_id, study.date, study.time
                open_study = study
        out: list[Any] = []
        for patient, study, stitem, items in self._study_items:
            # Earlier by date, then by time on the same day: the rule the hanging
            # protocols' "prior" cell uses too (app.hanging._prior_of).
            prior = bool(open_patient and open_date and study.date and study is not open_study
                         and patient.patient_id == open_patient
                         and (study.date, study.time) < (open_date, open_time))
            stitem.setText(study.text + (PRIOR_TAG if prior else ""))
            stitem.setData(prior, PRIOR_ROLE)
            stitem.setToolTip(f"Prior study of the open patient ({pretty_date(study.date)}, "
                              f"before {pretty_date(open_date)}): right-click a series to "
                              "compare" if prior else "")
            for item in items:
                item.setData(prior, PRIOR_ROLE)
                if prior:
                    item.setForeground(QColor("#e0b060"))
                    out.append(item.data(ID_ROLE))
                else:
                    item.setData(None, Qt.ItemDataRole.ForegroundRole)
        return out

    def series_menu(self, series_id: Any) -> QMenu:
        """The context menu of a series row: Open, Compare with open series."""
        menu = QMenu(self)
        menu.setObjectName("seriesMenu")
        menu.addAction("Open", lambda: self.open_requested.emit(series_id))
        compare = menu.addAction("Compare with open series",
                                 lambda: self.compare_requested.emit(series_id))
        compare.setEnabled(self._open_series_id is not None
                           and series_id != self._open_series_id)
        return menu

    def _context_menu(self, pos: Any) -> None:
        idx = self.tree.indexAt(pos)
        if idx.data(KIND_ROLE) != "series" or not idx.flags() & Qt.ItemFlag.ItemIsEnabled:
            return
        self.series_menu(idx.data(ID_ROLE)).exec(self.tree.viewport().mapToGlobal(pos))

    def has_thumbnail(self, key: str) -> bool:
        item = self._series_items.get(key)
        return item is not None and not item.icon().isNull()

    def set_filter(self, text: str) -> None:
        self.search.setText(text)

    def _on_search(self, text: str) -> None:
        self.proxy.set_text(text)
        self.tree.expandAll()

    def _on_activated(self, index: QModelIndex) -> None:
        if index.data(KIND_ROLE) == "series" and index.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.open_requested.emit(index.data(ID_ROLE))

    def stop(self) -> None:
        if self._thumb_job is not None and self._thumb_job.running:
            self._thumb_job.cancel()
