"""The Models panel: pick a model pack for the open series, read its card, run, cancel.

Every installed pack is listed; those whose input requirements the open series does not
meet (``inference.checks.availability``: modality, a 3-D volume, a demonstration pack on a
patient's series) are greyed out with the reason, shown under the list and as a tooltip,
and cannot be run. A pack's card, headed by its requirements, is shown before any run.

Inference runs in a spawned worker process (``inference.worker.InferenceJob``);
a QTimer polls it, so the GUI thread never blocks. The panel emits
``result_ready(InferenceResult)`` for the main window to record as a run and
review in the Findings panel (``app.findings_panel``), and ``error(str)`` for
a message; it shows a small legend of the labels.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

PROVIDERS = ["auto", "cpu", "cuda", "tensorrt", "directml", "coreml", "openvino"]
POLL_MS = 100
UNAVAILABLE_GREY = "#6b737c"  # the theme's placeholder text: readable, clearly secondary
UNAVAILABLE_LINES = 4  # reasons shown under the list; the rest are in the tooltips


class ModelsPanel(QWidget):
    """List packs, show the model card and input warnings, run / cancel with progress."""

    result_ready = Signal(object)  # inference.InferenceResult
    error = Signal(str)
    status_message = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, library_dir: Path | None = None,
                 bundled_dir: Path | None = None, defer_scan: bool = False) -> None:
        """``defer_scan``: read and validate the packs on first need (``ensure_scanned``: its
        tab shown, a series set, a pack asked for) or the first host-volume check (0.5 s),
        not now: the main window keeps that work off its path to the first frame."""
        super().__init__(parent)
        self.setObjectName("modelsPanel")
        self._host = parent
        if library_dir is None:
            library_dir = getattr(parent, "library_dir", None)
        if library_dir is None:
            from app.paths import library_dir as default_library_dir

            library_dir = default_library_dir()
        self.library_dir = Path(library_dir)
        self._bundled_dir = None if bundled_dir is None else Path(bundled_dir)
        self._registry: Any = None   # inference.registry (pydantic manifests) on first need
        self._volume: Any = None
        self._projection_reason: str | None = None   # a 2-D image is open: why nothing runs
        self._job: Any = None
        self._packs: list[Any] = []
        self._scanned = False   # the packs read (refresh), else done on first need
        self._warnings: list[str] = []
        self._reasons: dict[str, list[str]] = {}  # pack id → why it cannot run here
        self.last_result: Any = None

        self.model_list = QListWidget(self)
        self.model_list.setObjectName("modelList")
        self.model_list.setWordWrap(True)
        self.model_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.model_list.setMaximumHeight(110)
        self.unavailable_label = QLabel(self)
        self.unavailable_label.setObjectName("unavailablePacks")
        self.unavailable_label.setWordWrap(True)
        self.unavailable_label.setStyleSheet(f"color: {UNAVAILABLE_GREY};")
        self.unavailable_label.setVisible(False)
        self.card = QTextBrowser(self)
        self.card.setOpenExternalLinks(False)
        self.card.setObjectName("modelCard")
        self.warnings_label = QLabel(self)
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setObjectName("inputWarnings")
        self.warnings_label.setStyleSheet("color: #e0a030;")
        self.confirm = QCheckBox("Run anyway: I have read the warnings", self)
        self.provider_box = QComboBox(self)
        self.provider_box.addItems(PROVIDERS)
        self.threads_box = QSpinBox(self)
        self.threads_box.setRange(0, 256)
        self.threads_box.setSpecialValueText("auto")
        self.run_button = QPushButton("Run", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.legend = QListWidget(self)
        self.legend.setObjectName("legend")
        self.legend.setMaximumHeight(70)
        form = QFormLayout()
        form.addRow("Execution", self.provider_box)
        form.addRow("Threads", self.threads_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Model packs (research use only):", self))
        layout.addWidget(self.model_list)
        layout.addWidget(self.unavailable_label)
        layout.addWidget(self.card, 2)
        layout.addWidget(self.warnings_label)
        layout.addWidget(self.confirm)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.legend)

        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        # Follows the host window's open series (``current_volume``) without it
        # having to call set_volume(); a cheap identity check twice a second.
        self._seen_volume: Any = None
        self._watch = QTimer(self)
        self._watch.setInterval(500)
        self._watch.timeout.connect(self._check_host_volume)
        if self._host is not None and hasattr(self._host, "current_volume"):
            self._watch.start()
        self.model_list.currentRowChanged.connect(self._on_model_changed)
        self.confirm.toggled.connect(lambda _checked: self._update_buttons())
        self.run_button.clicked.connect(self.run_selected)
        self.cancel_button.clicked.connect(self.cancel)
        if not defer_scan:
            self.refresh()

    @property
    def registry(self) -> Any:
        """The library's and the bundled model packs (inference.registry.Registry)."""
        if self._registry is None:
            from inference.registry import Registry

            self._registry = Registry.for_library(self.library_dir)
            if self._bundled_dir is not None:
                self._registry.bundled_dir = self._bundled_dir
        return self._registry

    def ensure_scanned(self) -> None:
        """Read the packs now unless done already (a deferred scan, see ``__init__``)."""
        if not self._scanned:
            self.refresh()

    # ------------------------------------------------------------------ state
    def refresh(self) -> None:
        """Reload the pack list (after an install or removal)."""
        self._scanned = True
        current = self.selected_pack_id()
        self._packs = self.registry.list()
        self.model_list.blockSignals(True)
        self.model_list.clear()
        for pack in self._packs:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, pack.id)
            self.model_list.addItem(item)
        for problem in self.registry.problems:
            item = QListWidgetItem(f"⚠ {problem.source.name}: unreadable pack")
            item.setToolTip(problem.message)
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.model_list.addItem(item)
        self.model_list.blockSignals(False)
        self._apply_availability()
        ids = [p.id for p in self._packs]
        if current in ids:
            self._set_row(ids.index(current))
        else:
            self._select_default()

    def _set_row(self, row: int) -> None:
        self.model_list.blockSignals(True)
        self.model_list.setCurrentRow(row)
        self.model_list.blockSignals(False)
        self._on_model_changed(row)  # once, also when the row is unchanged

    def _apply_availability(self) -> None:
        """Grey out, with the reason, each pack the open series does not suit."""
        volume = self.current_volume()
        self._reasons = {pack.id: [self._projection_reason] if self._projection_reason
                         else [] if volume is None else _reasons(pack, volume)
                         for pack in self._packs}
        lines: list[str] = []
        for row, pack in enumerate(self._packs):
            m, reasons = pack.manifest, self._reasons[pack.id]
            where = "bundled" if pack.bundled else "installed"
            demo = ", demo study only" if m.demo_only else ""
            item = self.model_list.item(row)
            text = f"{m.name}  ({m.version}, {'/'.join(m.modality)}, {where}{demo})"
            if reasons:
                item.setText(f"{text}  — not for this series")
                item.setForeground(QColor(UNAVAILABLE_GREY))
                item.setToolTip("Not for this series: " + "; ".join(reasons))
                lines.append(_short_reason(pack, reasons))
            else:
                item.setText(text)
                item.setData(Qt.ItemDataRole.ForegroundRole, None)  # the theme's text colour
                item.setToolTip(m.intended_use)
        shown = [f"Not for this series: {line}" for line in lines[:UNAVAILABLE_LINES]]
        if len(lines) > UNAVAILABLE_LINES:
            shown.append(f"… and {len(lines) - UNAVAILABLE_LINES} more (hover a greyed pack "
                         "for why)")
        self.unavailable_label.setText("\n".join(shown))
        self.unavailable_label.setVisible(bool(shown))

    def available(self, pack_id: str) -> bool:
        """Whether that pack may run on the open series (every pack, with none open)."""
        self.ensure_scanned()
        return not self._reasons.get(pack_id)

    def unavailable_reasons(self, pack_id: str) -> list[str]:
        self.ensure_scanned()
        return list(self._reasons.get(pack_id, []))

    def _select_default(self) -> None:
        """The first pack that may run on the open series, with a demo pack last and a
        pack that another available one runs first as its mask (the lung mask under the
        nodule detector) after that one: the chest CT default is the detector."""
        from inference.manifest import MaskByStep

        rows = [row for row, pack in enumerate(self._packs) if self.available(pack.id)]
        masks = {step.model for row in rows for step in self._packs[row].manifest.postprocessing
                 if isinstance(step, MaskByStep)}
        rows.sort(key=lambda row: (self._packs[row].manifest.demo_only,
                                   self._packs[row].id in masks, row))
        self._set_row(rows[0] if rows else -1)

    def selected_pack(self) -> Any:
        self.ensure_scanned()
        row = self.model_list.currentRow()
        return self._packs[row] if 0 <= row < len(self._packs) else None

    def selected_pack_id(self) -> str | None:
        pack = self.selected_pack()
        return pack.id if pack is not None else None

    def select_pack(self, pack_id: str) -> None:
        self.ensure_scanned()
        for row, pack in enumerate(self._packs):
            if pack.id == pack_id:
                self.model_list.setCurrentRow(row)
                return
        raise KeyError(pack_id)

    def set_projection(self, modality: str | None) -> None:
        """A 2-D image (radiograph, ultrasound...) is open, or None when not: every pack is a
        3-D network, so none may run on it, each greyed with that reason."""
        self._projection_reason = None if modality is None else (
            f"a 2-D image{f' ({modality})' if modality else ''}: every model needs a 3-D volume")
        self._volume_changed()
        if self._scanned:   # else the deferred scan sets the buttons
            self._update_buttons()

    def set_volume(self, volume: Any) -> None:
        """The series the next run uses (the main window's open series by default)."""
        self._volume = volume
        self._volume_changed()

    def _check_host_volume(self) -> None:
        self.ensure_scanned()   # a deferred scan happens by the first check at the latest
        if self._volume is not None:
            return
        volume = getattr(self._host, "current_volume", None)
        if volume is not self._seen_volume:
            self._seen_volume = volume
            self._volume_changed()

    def _volume_changed(self) -> None:
        # A pack chosen for another series (the demo pack on the demo study, a CT model
        # on an MR) is not carried over to a series it may not run on.
        if not self._scanned:
            return   # the deferred scan applies the series then (open_series calls this)
        self._apply_availability()
        pack = self.selected_pack()
        if pack is None or not self.available(pack.id):
            self._select_default()
        else:
            self._update_warnings()

    def current_volume(self) -> Any:
        if self._volume is not None:
            return self._volume
        return getattr(self._host, "current_volume", None)

    @property
    def running(self) -> bool:
        return self._job is not None

    def refusal(self) -> str | None:
        """Why the selected pack must not run on the open series (another modality, not a
        3-D volume, a demo-only pack on a real series); None when it may. Unlike warnings,
        this cannot be confirmed away."""
        pack, volume = self.selected_pack(), self.current_volume()
        if pack is not None and self._projection_reason:
            return self._projection_reason
        if pack is None or volume is None:
            return None
        reasons = _reasons(pack, volume)
        return "; ".join(reasons) if reasons else None

    def input_warnings(self) -> list[str]:
        """What to confirm before the selected pack runs on the open series (body part,
        spacing, geometry, MR sequence)."""
        pack, volume = self.selected_pack(), self.current_volume()
        if pack is None or volume is None:
            return []
        from inference.checks import availability

        return availability(volume, pack.manifest).warnings

    # ------------------------------------------------------------------ slots
    def _on_model_changed(self, _row: int) -> None:
        pack = self.selected_pack()
        if pack is None and self._packs:
            self.card.setMarkdown(
                "No model pack here suits this series: the greyed packs above say why (a "
                "demonstration pack runs only on Lucida's synthetic demo study). Choose one "
                "to read its card, or install a model with `lucida models install PACK`.")
        elif pack is None:
            self.card.setMarkdown("No model packs installed. Install one with "
                                  "`lucida models install PACK`.")
        else:
            self.card.setMarkdown(card_markdown(pack.manifest, pack.model_card()))
        self._update_warnings()

    def _update_warnings(self) -> None:
        refusal = self.refusal()
        warnings = [] if refusal else self.input_warnings()
        self._warnings = warnings
        self.confirm.setChecked(False)
        self.confirm.setVisible(bool(warnings))
        self.warnings_label.setVisible(bool(warnings) or refusal is not None)
        self.warnings_label.setStyleSheet("color: #e05040;" if refusal else "color: #e0a030;")
        self.warnings_label.setText(f"⚠ Cannot run: {refusal}" if refusal else
                                    "\n".join(f"⚠ {w}" for w in warnings))
        self._update_buttons()

    def _update_buttons(self) -> None:
        ready = (self.selected_pack() is not None and self.current_volume() is not None
                 and self.refusal() is None)
        needs_confirm = bool(self._warnings)
        self.run_button.setEnabled(
            ready and not self.running and (not needs_confirm or self.confirm.isChecked()))
        self.cancel_button.setEnabled(self.running)

    def run_selected(self) -> bool:
        """Start the selected pack on the current volume; False if it cannot start."""
        if self.running:
            return False
        pack, volume = self.selected_pack(), self.current_volume()
        if pack is None or volume is None:
            self._fail("Open a series and choose a model first.")
            return False
        reasons = _reasons(pack, volume)
        if reasons:
            self._fail("; ".join(reasons))
            return False
        if self.input_warnings() and not self.confirm.isChecked():
            self._fail("The series does not match the model: read the warnings and confirm.")
            return False
        from inference.registry import mask_packs
        from inference.worker import InferenceJob, JobOptions

        provider = self.provider_box.currentText()
        threads = self.threads_box.value() or None
        try:
            # Packs whose findings stay inside another model's mask (a nodule detector in
            # the lung mask) get that model run first, in the same worker.
            needs = mask_packs(pack.manifest, self._packs)
            self._job = InferenceJob.start(
                volume, pack.source,
                JobOptions(providers=provider, threads=threads, mask_packs=needs or None),
                work_dir=self.library_dir / "cache" / "inference")
        except Exception as exc:  # e.g. disk full writing the job folder
            self._fail(f"Could not start the model: {exc}")
            return False
        self.legend.clear()
        self.progress.setValue(0)
        self.status.setText(f"Starting {pack.manifest.name}…")
        self._timer.start()
        self._update_buttons()
        return True

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.status.setText("Cancelling…")

    def _poll(self) -> None:
        job = self._job
        if job is None:
            self._timer.stop()
            return
        status = job.poll()
        self.progress.setValue(round(status.fraction * 1000))
        if not status.finished:
            eta = f", about {status.eta_s:.0f} s left" if status.eta_s is not None else ""
            self.status.setText(f"{status.message or 'running'} — {status.fraction:.0%}{eta}")
            return
        self._timer.stop()
        self._job = None
        try:
            if status.state == "done":
                result = job.result(timeout=5)
                self.last_result = result
                self._show_result(result)
                self.result_ready.emit(result)
            elif status.state == "cancelled":
                self.status.setText("Cancelled.")
                self.progress.setValue(0)
            else:
                self._fail(status.error or "inference failed")
        except Exception as exc:  # one place turns failures into a message
            self._fail(str(exc))
        finally:
            job.close()
            self._update_buttons()

    def _show_result(self, result: Any) -> None:
        provider = str(result.provenance.get("provider", "")).removesuffix("ExecutionProvider")
        seconds = result.provenance.get("timings_s", {}).get("total", 0.0)
        text = (f"Done on {provider} in {seconds:.1f} s: {len(result.findings)} findings, "
                "to review in the Findings panel. Research use only — not for diagnostic use.")
        if result.notices:
            text += "\n" + "\n".join(f"Note: {n}" for n in result.notices)
        self.status.setText(text)
        self.status_message.emit(text)
        self.legend.clear()
        for label in result.label_map.labels:
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(*label.color_rgb))
            item = QListWidgetItem(f"{label.value}: {label.name}")
            item.setIcon(swatch)
            self.legend.addItem(item)

    def _fail(self, message: str) -> None:
        self.status.setText(f"Error: {message}")
        self.progress.setValue(0)
        self.error.emit(message)

    def closeEvent(self, event: Any) -> None:  # Qt naming
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop a running job (the worker process) and the timer."""
        self._timer.stop()
        self._watch.stop()
        if self._job is not None:
            self._job.close()
            self._job = None


def _reasons(pack: Any, volume: Any) -> list[str]:
    from inference.checks import availability

    return availability(volume, pack.manifest).reasons


def _short_reason(pack: Any, reasons: list[str]) -> str:
    """One line under the list; the demo pack's long refusal is said briefly (its whole
    text is in the tooltip and, once chosen, above the Run button)."""
    from inference.manifest import demo_only_problem

    first = reasons[0]
    if first == demo_only_problem(pack.manifest, ""):
        return f"{pack.manifest.name} is a demonstration for Lucida's demo study only"
    return first


def requirements_markdown(manifest: Any) -> str:
    """The input requirements of a pack, from its manifest (what availability checks)."""
    parts = [f"**Modality:** {' / '.join(manifest.modality)}",
             f"**3-D volume:** at least {max(2, manifest.min_slices)} slices"]
    if manifest.body_part:
        parts.append(f"**Body part:** {' / '.join(manifest.body_part)}")
    lo, hi = manifest.min_spacing_mm, manifest.max_spacing_mm
    if lo is not None or hi is not None:
        span = (f"{lo:g}–{hi:g} mm" if lo is not None and hi is not None
                else f"≥ {lo:g} mm" if lo is not None else f"≤ {hi:g} mm")
        parts.append(f"**Voxel spacing:** {span}")
    if manifest.sequence_hints:
        parts.append(f"**MR sequence:** {', '.join(manifest.sequence_hints)} (named in the "
                     "series description, protocol or sequence name)")
    if manifest.demo_only:
        parts.append("**Series:** Lucida's synthetic demo study only")
    return "#### Checked before a run\n\n" + "\n".join(f"- {p}" for p in parts) + "\n"


def card_markdown(manifest: Any, card: str) -> str:
    """The model card for the panel: its title, what Lucida checks before a run, the
    card's measured runtime and memory (moved up: they decide whether to run at all),
    then the rest of the card."""
    paragraphs = _demote_headings(card).split("\n\n")
    title = paragraphs.pop(0) if paragraphs and paragraphs[0].startswith("#") else ""
    measured = [para for para in paragraphs if _is_measured(para)]
    rest = [para for para in paragraphs if not _is_measured(para)]
    return "\n\n".join(part for part in [title, requirements_markdown(manifest), *measured,
                                          *rest] if part)


def _is_measured(paragraph: str) -> bool:
    """The card paragraph of runtime and memory (a bold lead-in saying "measured here")."""
    first = paragraph.lstrip().split("\n", 1)[0]
    return first.startswith("**") and "measured here" in first.lower()


def _demote_headings(markdown: str, by: int = 2) -> str:
    """Model cards start with a top-level title; in a narrow dock it is shown as a
    sub-heading so that the card's text, not its title, fills the space."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            if line[level:level + 1] in (" ", ""):
                line = "#" * min(6, level + by) + line[level:]
        out.append(line)
    return "\n".join(out)
