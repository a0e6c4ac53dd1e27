"""Model runs in the library: record a result for review, load its overlay back.

A recorded run is one ``model_runs`` row (full provenance), its label map and heat map
under ``<library>/runs/<run_id>/overlay.npz`` (written atomically), its findings as
pending review findings (each with the mask the pipeline made for it, never
re-derived from the label map), and a "model-run" audit event — all in one transaction; when
anything fails nothing is recorded and the files are removed.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.atomic import write_bytes
from core.errors import StoreError
from core.volume import HeatMap, Label, LabelMap
from review.codec import to_record
from review.model import ReviewFinding, SparseMask, Status
from store.records import ModelRunRow
from store.review import ReviewStore

if TYPE_CHECKING:
    from inference.pipeline import InferenceResult
    from store.library import Library

OVERLAY_NAME = "overlay.npz"


def run_folder(library: Library, run_id: int) -> Path:
    return library.folder / "runs" / str(int(run_id))


def _labels_json(labels: list[Label]) -> list[dict[str, Any]]:
    return [{"value": lab.value, "name": lab.name, "color_rgb": list(lab.color_rgb),
             "code": list(lab.code) if lab.code else None} for lab in labels]


def finding_masks(result: InferenceResult) -> dict[int, SparseMask]:
    """Each finding's own mask as the pipeline handed it over (``result.finding_masks``,
    or the masks a list from ``extract_findings`` carries), checked against its finding;
    a clear error when a result has none (it cannot be reviewed without them)."""
    masks = result.finding_masks
    if masks is None:
        masks = getattr(result.findings, "masks", None)
    if masks is None:
        raise StoreError("this model result carries no finding masks (it comes from a path "
                         "that does not keep them); run the model again to record it for "
                         "review")
    shape = tuple(result.label_map.array.shape)
    out: dict[int, SparseMask] = {}
    for f in result.findings:
        own = masks.get(f.id)
        if own is None:
            raise StoreError(f"finding {f.id} ({f.label_name}) came without its mask; the run "
                             "cannot be recorded for review")
        inside = all(0 <= o and o + n <= s
                     for o, n, s in zip(own.offset, own.array.shape, shape, strict=True))
        if not inside or own.voxel_count != f.voxel_count:
            raise StoreError(f"the mask of finding {f.id} ({f.label_name}) does not fit it "
                             f"({own.voxel_count} voxels at {own.offset} for "
                             f"{f.voxel_count} on a {shape} grid); the run cannot be "
                             "recorded for review")
        out[f.id] = (SparseMask.empty_mask() if own.voxel_count == 0 else
                     SparseMask(own.offset, own.array))
    return out


def _overlay_bytes(result: InferenceResult) -> bytes:
    buf = io.BytesIO()
    arrays: dict[str, Any] = {
        "labels": np.asarray(result.label_map.array),
        "affine": np.asarray(result.label_map.affine, dtype=np.float64),
        "labels_json": np.array(json.dumps(_labels_json(result.label_map.labels))),
    }
    if result.heatmap is not None:
        arrays["heatmap"] = np.asarray(result.heatmap.array, dtype=np.float32)
        arrays["heatmap_affine"] = np.asarray(result.heatmap.affine, dtype=np.float64)
        arrays["heatmap_name"] = np.array(result.heatmap.name)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def record_run(library: Library, series_id: int, result: InferenceResult, *,
               actor: str) -> int:
    """Record ``result`` (computed on series ``series_id``) for review; returns the run id."""
    series = library.get_series(int(series_id))
    prov = dict(result.provenance)
    raw_model = prov.get("model")
    model: dict[str, Any] = raw_model if isinstance(raw_model, dict) else {}
    model_id = str(model.get("id", "")) or "unknown-model"
    version = str(model.get("version", ""))
    lm = result.label_map
    colors = {lab.value: lab.color_rgb for lab in lm.labels}
    masks = finding_masks(result)
    folder: Path | None = None
    try:
        with library.transaction():
            run_id = library.add_model_run(series.id, model_id, version, provenance=prov,
                                           status="recorded")
            folder = run_folder(library, run_id)
            if folder.exists():  # left by a run whose recording was rolled back
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            write_bytes(folder / OVERLAY_NAME, _overlay_bytes(result))
            library.update_model_run(run_id, output_folder=folder)
            records = []
            for f in result.findings:
                rf = ReviewFinding(
                    key=f"m{f.id}", origin="model", label_value=f.label_value,
                    label_name=f.label_name, color_rgb=colors.get(f.label_value, (255, 0, 0)),
                    status=Status.PENDING, measures=f, mask=masks[f.id], original=f,
                    score=float(f.max_score), original_mask=masks[f.id])
                records.append(to_record(rf))
            ReviewStore(library).create_run(run_id, series.series_uid, lm.array.shape,
                                            lm.affine.tolist(), _labels_json(lm.labels),
                                            records)
            library.audit("model-run", {
                "pack_id": model_id, "version": version, "name": model.get("name", ""),
                "sha256": model.get("files", {}), "provider": prov.get("provider", ""),
                "parameters": prov.get("parameters", {}),
                "request_id": prov.get("request_id", ""), "findings": len(result.findings),
                "output_folder": str(folder)},
                actor=actor, series_uid=series.series_uid, run_id=run_id)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return run_id


def load_run_overlay(library: Library, run_id: int) -> tuple[LabelMap, HeatMap | None]:
    """The label map (and heat map) a run produced; a clear error when its files are gone."""
    run = library.get_model_run(run_id)
    folder = run.output_folder or run_folder(library, run_id)
    path = folder / OVERLAY_NAME
    if not path.is_file():
        raise StoreError(f"the files of model run {run_id} are gone ({path} is missing); its "
                         "review decisions are still in the library, but the overlay cannot "
                         "be shown: run the model again to get it back")
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = [Label(int(d["value"]), str(d["name"]),
                            tuple(int(c) for c in d["color_rgb"]),  # type: ignore[arg-type]
                            tuple(d["code"]) if d.get("code") else None)
                      for d in json.loads(str(data["labels_json"]))]
            series_uid = _series_uid(library, run)
            lm = LabelMap(np.array(data["labels"]), np.array(data["affine"]), labels,
                          series_uid=series_uid)
            heat = None
            if "heatmap" in data:
                heat = HeatMap(np.array(data["heatmap"]), np.array(data["heatmap_affine"]),
                               name=str(data["heatmap_name"]), series_uid=series_uid)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"the overlay of model run {run_id} ({path}) cannot be read: {exc}; "
                         "run the model again to get it back") from exc
    return lm, heat


def _series_uid(library: Library, run: ModelRunRow) -> str:
    try:
        return library.get_series(run.series_row).series_uid
    except StoreError:
        return ""


@dataclass(frozen=True)
class RunSummary:
    run: ModelRunRow
    files_present: bool
    reviewed: int
    total: int
    signed_off: bool

    @property
    def problem(self) -> str:
        if self.run.problem:
            return self.run.problem
        if not self.files_present:
            return f"the files of model run {self.run.id} are gone"
        return ""


def runs_for_series(library: Library, series_id: int) -> list[RunSummary]:
    """The runs recorded on a series, newest last, with their review progress."""
    store = ReviewStore(library)
    out = []
    for run in library.model_runs(int(series_id)):
        folder = run.output_folder or run_folder(library, run.id)
        reviewed = total = 0
        signed = False
        if store.has_run(run.id):
            statuses = [status for _key, status in store.findings_status(run.id)]
            own = [s for s in statuses if s != Status.IMPORTED.value]
            total = len(own)
            reviewed = sum(1 for s in own if s != Status.PENDING.value)
            signed = store.signed_off(run.id)
        out.append(RunSummary(run, (folder / OVERLAY_NAME).is_file(), reviewed, total, signed))
    return out
