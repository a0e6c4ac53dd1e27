"""The open series, without Qt: its volume, runs, review, measurements, imported objects.

3D Slicer's Logic / Widget split: this module is the logic, the main window
and the panels are the widgets. One :class:`SeriesSession` per open series;
opening another series closes it, so nothing of one series (findings, runs,
a crosshair target) can leak into the next. Model runs are recorded in the
library (``app.runs``) the moment they finish, and every review decision is
committed by ``review.session.ReviewSession``: reopening the series gives
everything back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Statuses that count as "reviewed" in the progress line.
REVIEWED = frozenset({"accepted", "rejected", "edited", "added-by-reader"})


@dataclass(frozen=True)
class FindingRow:
    """One line of the findings table, computed from a review or an imported finding."""

    key: str
    label: str  # short (the common prefix of the run's labels is shown once, above)
    full_label: str
    slice_number: int | None  # 1-based axial slice of the centroid, as the axial view counts
    n_slices: int
    side: str  # patient side of the centroid: "R", "L" or "mid"
    centroid_lps: tuple[float, float, float] | None
    diameter_mm: float | None
    volume_mm3: float | None
    score: float | None
    status: str
    reason: str = ""
    imported: bool = False
    extent_mm: float = 20.0  # how much of the view the finding should fill when focused

    @property
    def position_text(self) -> str:
        if self.centroid_lps is None:
            return ""
        x, y, z = self.centroid_lps
        return f"{self.side} {x:.0f}, {y:.0f}, {z:.0f}"


@dataclass
class ImportedGroup:
    """What the library holds about the open series from others (SEG / SR / RTSTRUCT)."""

    rows: list[FindingRow] = field(default_factory=list)
    masks: dict[str, tuple[tuple[int, int, int], np.ndarray, tuple[int, int, int]]] = field(
        default_factory=dict)  # key -> (offset kji, bool crop, colour)
    problems: list[str] = field(default_factory=list)  # "description: why it is not shown"


def side_of(x_lps: float, tolerance_mm: float = 2.0) -> str:
    """LPS: +x is the patient's left."""
    if abs(x_lps) <= tolerance_mm:
        return "mid"
    return "L" if x_lps > 0 else "R"


def common_label_prefix(names: Sequence[str]) -> str:
    """The "PACK MARK: " part shared by every label (shown once, not on every row)."""
    heads = {name.rsplit(": ", 1)[0] for name in names if ": " in name}
    if len(heads) == 1 and all(": " in n for n in names):
        return heads.pop()
    return ""


def short_label(name: str, prefix: str) -> str:
    if prefix and name.startswith(prefix + ": "):
        return name[len(prefix) + 2:]
    return name


def axial_slice_number(affine: np.ndarray, shape: Sequence[int],
                       lps: Sequence[float]) -> tuple[int, int]:
    """(1-based axial slice number, slice count) as the axial view shows it: counted from
    the top of the body, along the volume axis nearest the z axis, whatever the order of
    the stored slices."""
    affine = np.asarray(affine, dtype=float)
    index = np.linalg.solve(affine, np.array([*lps, 1.0]))[:3]
    columns = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(columns[2])))
    n = int(shape[axis])
    k = int(np.clip(np.floor(index[axis] + 0.5), 0, n - 1))
    return (n - k if columns[2, axis] > 0 else k + 1), n


def review_rows(review: Any) -> list[FindingRow]:
    """Rows of a ReviewSession's findings, sorted by score (reader-drawn last)."""
    findings = list(review.findings)
    prefix = common_label_prefix([str(f.label_name) for f in findings])
    affine = np.asarray(review.affine, dtype=float)
    rows = []
    for f in findings:
        m = f.measures
        centroid = _point(m.centroid_lps) if m is not None else None
        number, n_slices = (axial_slice_number(affine, review.shape, centroid)
                            if centroid is not None else (None, 0))
        diameter = float(m.longest_diameter_mm) if m is not None else None
        reason = f.reason.value if getattr(f, "reason", None) is not None else ""
        if reason == "other" and getattr(f, "reason_text", ""):
            reason = f"other: {f.reason_text}"
        rows.append(FindingRow(
            key=str(f.key), label=short_label(str(f.label_name), prefix),
            full_label=str(f.label_name), slice_number=number, n_slices=n_slices,
            side=side_of(centroid[0]) if centroid else "",
            centroid_lps=centroid, diameter_mm=diameter,
            volume_mm3=float(m.volume_mm3) if m is not None else None,
            score=None if f.score is None else float(f.score), status=str(f.status),
            reason=reason, extent_mm=focus_extent_mm(diameter)))
    rows.sort(key=lambda r: (r.key.startswith("r"), -(r.score if r.score is not None else -1)))
    return rows


def focus_extent_mm(diameter_mm: float | None) -> float:
    """How much a focused view shows around a finding: the finding and its surroundings
    (a 4 mm nodule alone filling the view tells the reader nothing)."""
    return max(40.0, 1.5 * (diameter_mm or 0.0))


def imported_group(objects: Sequence[Any], affine: np.ndarray,
                   shape: Sequence[int]) -> ImportedGroup:
    """Rows and masks of imported SEG / SR / RTSTRUCT findings; problems as text."""
    group = ImportedGroup()
    for obj in objects:
        kind = str(getattr(obj, "kind", "") or "object")
        desc = str(getattr(obj, "description", "") or kind)
        problem = str(getattr(obj, "problem", "") or "")
        if problem:
            group.problems.append(f"{kind} {desc}: {problem}")
            continue
        for n, f in enumerate(getattr(obj, "findings", []) or [], start=1):
            key = f"i{len(group.rows) + 1}"
            mask = getattr(f, "mask", None)
            color = tuple(int(v) for v in (getattr(f, "color_rgb", None) or (208, 176, 96)))
            raw = getattr(f, "centroid_lps", None)
            if raw is None and mask is not None and np.asarray(mask.array).any():
                mean = np.argwhere(mask.array).mean(axis=0) + np.asarray(mask.offset)
                raw = (affine @ np.append(mean, 1.0))[:3]
            centroid = _point(raw) if raw is not None else None
            diameter = volume = None
            for m in getattr(f, "measurements", ()) or ():
                name, unit = str(m.name).lower(), str(m.unit).lower()
                if "diameter" in name and diameter is None:
                    diameter = float(m.value) * _MM.get(unit, 1.0)
                elif "volume" in name and volume is None:
                    volume = float(m.value) * _MM3.get(unit, 1.0)
            if mask is not None:
                offset, crop = _mask_parts(mask)
                group.masks[key] = (offset, crop, (color[0], color[1], color[2]))
                diameter, volume = _measure_mask(offset, crop, affine, diameter, volume)
            number, n_slices = (axial_slice_number(affine, shape, centroid)
                                if centroid is not None else (None, 0))
            source = str(getattr(f, "source_kind", "") or kind)
            label = str(getattr(f, "label_name", "") or f"{source} {n}")
            group.rows.append(FindingRow(
                key=key, label=f"{label} ({source})",
                full_label=f"{label} — imported from {source} {desc} (read-only)",
                slice_number=number, n_slices=n_slices,
                side=side_of(centroid[0]) if centroid else "", centroid_lps=centroid,
                diameter_mm=diameter, volume_mm3=volume, score=None, status="imported",
                imported=True, extent_mm=focus_extent_mm(diameter)))
    return group


_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
_MM3 = {"mm3": 1.0, "ml": 1000.0, "cm3": 1000.0, "l": 1e6}


def _measure_mask(offset: tuple[int, int, int], crop: np.ndarray, affine: np.ndarray,
                  diameter: float | None, volume: float | None
                  ) -> tuple[float | None, float | None]:
    """Diameter and volume of an imported region the object itself does not state."""
    from core.measure import mask_diameter_mm, voxel_volume_mm3

    points = np.argwhere(crop).astype(np.int64) + np.asarray(offset, dtype=np.int64)
    if len(points) == 0:
        return diameter, volume
    if volume is None:
        volume = len(points) * voxel_volume_mm3(affine)
    if diameter is None:
        diameter = mask_diameter_mm(crop, offset, affine)
    return diameter, volume


def _point(values: Sequence[float]) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    return (x, y, z)


def _mask_parts(mask: Any) -> tuple[tuple[int, int, int], np.ndarray]:
    if isinstance(mask, tuple) and len(mask) == 2:
        offset, crop = mask
    else:
        offset, crop = mask.offset, mask.array
    return tuple(int(v) for v in offset), np.asarray(crop, dtype=bool)  # type: ignore[return-value]


class SeriesSession:
    """Everything about one open series that is not drawing.

    ``library`` is the window's store.Library; ``volume`` the loaded core.Volume.
    """

    def __init__(self, library: Any, series_id: int, volume: Any, *,
                 reviewer: str | None = None) -> None:
        self.library = library
        self.series_id = series_id
        self.volume = volume
        self.reviewer = reviewer
        self.review: Any = None  # review.session.ReviewSession of the active run
        self.run_id: int | None = None
        self.imported = ImportedGroup()
        self._listeners: list[Callable[[Sequence[str]], None]] = []

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[Any]:
        """This series' recorded model runs, oldest first (only this series')."""
        try:
            from app.runs import runs_for_series
        except ImportError:
            return list(self.library.model_runs(self.series_id))
        return list(runs_for_series(self.library, self.series_id))

    def record_result(self, result: Any, *, actor: str | None = None) -> int:
        """Record a finished model run in the library and open its review."""
        from app.runs import record_run

        run_id = int(record_run(self.library, self.series_id, result,
                                actor=actor or self.reviewer_name()))
        self.open_run(run_id)
        return run_id

    def open_run(self, run_id: int) -> Any:
        """Make ``run_id`` (one of this series' runs) the active review."""
        if run_id not in {int(run_row(r).id) for r in self.runs()}:
            raise ValueError(f"run {run_id} does not belong to the open series")
        from review.session import ReviewSession

        review = ReviewSession.open(self.library, run_id, reviewer=self.reviewer)
        review.add_listener(self._changed)
        self.review, self.run_id = review, run_id
        self._changed([f.key for f in review.findings])
        return review

    def open_last_run(self) -> Any:
        runs = self.runs()
        if not runs:
            return None
        return self.open_run(int(run_row(runs[-1]).id))

    def reviewer_name(self) -> str:
        if self.review is not None:
            return str(self.review.reviewer)
        if self.reviewer:
            return self.reviewer
        import getpass

        return getpass.getuser()

    def set_reviewer(self, name: str) -> None:
        self.reviewer = name.strip() or None
        if self.review is not None and self.reviewer and self.review.reviewer != self.reviewer:
            self.review.set_reviewer(self.reviewer)

    def run_overlay(self, run_id: int | None = None) -> Any:
        """The run's saved label map (core.LabelMap)."""
        from app.runs import load_run_overlay

        wanted = run_id if run_id is not None else self.run_id
        if wanted is None:
            raise ValueError("no model run is open")
        return load_run_overlay(self.library, wanted)[0]

    # ------------------------------------------------------------------ review
    def add_listener(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Called with the changed keys after each change of the active review (once, however
        often it is added)."""
        if callback not in self._listeners:
            self._listeners.append(callback)

    def _changed(self, keys: Sequence[str]) -> None:
        for callback in list(self._listeners):
            callback(list(keys))

    def rows(self) -> list[FindingRow]:
        """The findings table: the active run's findings, then imported ones."""
        own = review_rows(self.review) if self.review is not None else []
        return own + list(self.imported.rows)

    def progress(self) -> tuple[int, int]:
        if self.review is None:
            return (0, 0)
        done, total = self.review.progress()
        return int(done), int(total)

    def row(self, key: str) -> FindingRow | None:
        return next((r for r in self.rows() if r.key == key), None)

    # ------------------------------------------------------------------ imported objects
    def load_derived(self) -> ImportedGroup:
        """SEG / SR / RTSTRUCT objects in the library that reference this series (here)."""
        return self.set_imported(read_imported(self.library, self.series_id, self.volume))

    def set_imported(self, group: ImportedGroup) -> ImportedGroup:
        """Take what :func:`read_imported` found (in a worker, with its own Library)."""
        self.imported = group
        self._changed([row.key for row in group.rows])
        return group

    # ------------------------------------------------------------------ measurements
    def read_measurements(self) -> tuple[list[dict[str, Any]], list[str]]:
        """(readable records, problems): a failing read is a problem, never "none"."""
        try:
            read = self.library.read_measurements(self.series_id)
        except Exception as exc:
            log.warning("reading measurements failed: %s", type(exc).__name__)
            return [], [f"reading them failed: {error_text(exc)}"]
        return list(read.records), list(read.damaged)

    def save_measurements(self, records: Sequence[dict[str, Any]]) -> None:
        self.library.save_measurements(self.series_id, list(records))

    # ------------------------------------------------------------------ export
    def sign_off_and_export(self, out_dir: Any) -> Any:
        from app.signoff import export_signoff

        if self.run_id is None:
            raise ValueError("no model run is open for review")
        result = export_signoff(self.library, self.series_id, self.run_id, out_dir,
                                reviewer=self.reviewer_name(), volume=self.volume)
        self.open_run(self.run_id)  # the sign-off was committed by another session object
        return result

    def close(self) -> None:
        self._listeners.clear()
        self.review = None
        self.run_id = None


def read_imported(library: Any, series_id: int, volume: Any) -> ImportedGroup:
    """The imported findings of a series; thread-safe with its own ``library``. Never
    raises: what cannot be read is a problem line."""
    try:
        from app.derived import derived_for_series
    except ImportError:
        return ImportedGroup()
    try:
        objects = derived_for_series(library, library.get_series(series_id), volume)
    except Exception as exc:  # a broken object must not stop the series from opening
        log.warning("reading derived objects failed: %s", type(exc).__name__)
        return ImportedGroup(problems=[f"Imported objects could not be read: {error_text(exc)}"])
    return imported_group(objects, np.asarray(volume.affine), tuple(volume.shape))


def run_row(run: Any) -> Any:
    """The store's ModelRunRow of an ``app.runs.RunSummary`` (or the row itself)."""
    return getattr(run, "run", run)


def error_text(exc: BaseException) -> str:
    """A Lucida error's own message; anything else with its type (it is unexpected)."""
    from core.errors import LucidaError

    return str(exc) if isinstance(exc, LucidaError) else f"{type(exc).__name__}: {exc}"
