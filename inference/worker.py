"""Inference in a separate, spawned worker process.

The caller (GUI timer, CLI) starts a job and polls it; the worker streams
progress through a queue and writes result arrays next to its input in a
job folder under the library cache (never next to source files). A crash of
the worker (segfault, out-of-memory kill) becomes an InferenceError in the
caller, which keeps running. ``cancel()`` stops the job within a second: the
worker checks between tile batches, and is terminated if it has not stopped
after ``CANCEL_GRACE_S``. Each finding's own mask comes back exactly
(``finding_masks.npz``: the boolean crops and their offsets).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import queue as queue_mod
import shutil
import signal
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import errors as core_errors
from core.errors import CancelledError, InferenceError, LucidaError
from core.progress import CancelToken
from core.volume import Finding, HeatMap, Label, LabelMap, Volume
from inference import disable_onnxruntime_telemetry
from inference.finding_mask import from_arrays, to_arrays

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 0.8
_PROGRESS_INTERVAL_S = 0.1


@dataclass
class JobOptions:
    """Settings of one run; plain data so it crosses the process boundary."""

    providers: str | list[str] | None = None
    threads: int | None = None
    batch_size: int | None = None
    memory_limit_bytes: int | None = None
    # Packs (by model id) run first in the worker for mask_by steps: {id: pack path}.
    mask_packs: dict[str, str] | None = None


@dataclass
class JobStatus:
    state: str  # "starting", "running", "done", "error", "cancelled"
    fraction: float = 0.0
    message: str = ""
    eta_s: float | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    notices: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error", "cancelled")


class _EventCancelToken(CancelToken):
    """A cancel token backed by a multiprocessing Event shared with the caller."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self._mp_event = event

    def cancel(self) -> None:
        self._mp_event.set()

    @property
    def cancelled(self) -> bool:
        return bool(self._mp_event.is_set())

    def raise_if_cancelled(self) -> None:
        if self._mp_event.is_set():
            raise CancelledError("inference cancelled by the user")


def default_work_dir() -> Path:
    return Path(tempfile.gettempdir()) / "lucida-inference"


def _volume_meta(volume: Volume) -> dict[str, Any]:
    plain = {k: v for k, v in volume.metadata.items()
             if isinstance(v, str | int | float | bool) or v is None}
    return {"affine": volume.affine.tolist(), "series_uid": volume.series_uid,
            "frame_of_reference_uid": volume.frame_of_reference_uid,
            "modality": volume.modality, "metadata": plain}


def _finding_from_dict(d: dict[str, Any]) -> Finding:
    c = d["centroid_lps_mm"]
    ci = d["centroid_index_kji"]
    lo, hi = d["bbox_index_kji"]
    return Finding(
        id=int(d["id"]), label_value=int(d["label_value"]), label_name=str(d["label_name"]),
        centroid_lps=(float(c[0]), float(c[1]), float(c[2])),
        centroid_index=(float(ci[0]), float(ci[1]), float(ci[2])),
        bbox_index=((int(lo[0]), int(lo[1]), int(lo[2])), (int(hi[0]), int(hi[1]), int(hi[2]))),
        volume_mm3=float(d["volume_mm3"]), longest_diameter_mm=float(d["longest_diameter_mm"]),
        max_score=float(d["max_score"]), mean_score=float(d["mean_score"]),
        voxel_count=int(d["voxel_count"]), series_uid=str(d["series_uid"]))


def _worker_main(job_dir: str, pack_ref: str, options: dict[str, Any], out_q: Any,
                 cancel_event: Any) -> None:
    """Entry point of the spawned process."""
    disable_onnxruntime_telemetry()  # the package did it already; explicit for the spawned child
    folder = Path(job_dir)
    opts = JobOptions(**options)
    last = [0.0]

    def progress(fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] >= _PROGRESS_INTERVAL_S:
            last[0] = now
            out_q.put(("progress", float(fraction), message))

    try:
        meta = json.loads((folder / "volume.json").read_text())
        array = np.load(folder / "volume.npy", mmap_mode="r")
        volume = Volume(array, np.asarray(meta["affine"]), series_uid=meta["series_uid"],
                        frame_of_reference_uid=meta["frame_of_reference_uid"],
                        modality=meta["modality"], metadata=meta["metadata"])
        masks: dict[str, LabelMap] = {}
        for path in folder.glob("mask-*.npy"):
            masks[path.stem.removeprefix("mask-")] = LabelMap(
                np.load(path), volume.affine, labels=[])
        from inference.pipeline import run

        out_q.put(("progress", 0.0, "loading the model"))
        result = run(volume, pack_ref, progress=progress,
                     cancel=_EventCancelToken(cancel_event), providers=opts.providers,
                     threads=opts.threads, masks=masks or None, batch_size=opts.batch_size,
                     memory_limit_bytes=opts.memory_limit_bytes,
                     rewrite_cache=folder.parent / "graph-rewrites",
                     mask_packs=opts.mask_packs)
        np.save(folder / "labels.npy", result.label_map.array)
        if result.heatmap is not None:
            np.save(folder / "heat.npy", result.heatmap.array)
        if result.finding_masks is not None:  # the bool crops themselves: exact
            arrays: dict[str, Any] = to_arrays(result.finding_masks)
            np.savez(folder / "finding_masks.npz", **arrays)
        out_q.put(("result", {
            "labels": [asdict(lab) for lab in result.label_map.labels],
            "heat_name": result.heatmap.name if result.heatmap is not None else None,
            "findings": [f.to_dict() for f in result.findings],
            "provenance": result.provenance,
            "notices": result.notices,
            "finding_masks": result.finding_masks is not None,
        }))
    except CancelledError:
        out_q.put(("cancelled",))
    except LucidaError as exc:
        out_q.put(("error", type(exc).__name__, str(exc)))
    except MemoryError:
        out_q.put(("error", "InferenceError", "the inference worker ran out of memory"))
    except Exception as exc:  # anything else still reaches the caller as a message
        out_q.put(("error", "InferenceError",
                   f"the inference worker failed: {type(exc).__name__}: {exc}"))


class InferenceJob:
    """One model run in a worker process; poll it from a timer, never block the GUI."""

    def __init__(self, process: Any, out_q: Any, cancel_event: Any, job_dir: Path,
                 volume: Volume) -> None:
        self._process = process
        self._queue = out_q
        self._cancel_event = cancel_event
        self.job_dir = job_dir
        self._volume_affine = volume.affine.copy()
        self._series_uid = volume.series_uid
        self._started = time.monotonic()
        self._cancel_at: float | None = None
        self._status = JobStatus("starting")
        self._payload: dict[str, Any] | None = None
        self._result: Any = None
        self._error: LucidaError | None = None

    @classmethod
    def start(cls, volume: Volume, pack_ref: str | Path, options: JobOptions | None = None,
              *, work_dir: Path | None = None,
              masks: dict[str, LabelMap] | None = None) -> InferenceJob:
        """Write the volume to a job folder and spawn the worker."""
        base = Path(work_dir) if work_dir is not None else default_work_dir()
        base.mkdir(parents=True, exist_ok=True)
        job_dir = base / f"job-{uuid.uuid4().hex}"
        job_dir.mkdir()
        np.save(job_dir / "volume.npy", np.ascontiguousarray(volume.array))
        (job_dir / "volume.json").write_text(json.dumps(_volume_meta(volume)))
        for model_id, labelmap in (masks or {}).items():
            np.save(job_dir / f"mask-{model_id}.npy", labelmap.array)
        ctx = mp.get_context("spawn")
        out_q = ctx.Queue()
        cancel_event = ctx.Event()
        opts = asdict(options or JobOptions())
        process = ctx.Process(target=_worker_main, name="lucida-inference",
                              args=(str(job_dir), str(pack_ref), opts, out_q, cancel_event),
                              daemon=True)
        process.start()
        return cls(process, out_q, cancel_event, job_dir, volume)

    @property
    def pid(self) -> int | None:
        return int(self._process.pid) if self._process.pid is not None else None

    def _drain(self) -> None:
        while True:
            try:
                msg = self._queue.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):
                return
            kind = msg[0]
            if kind == "progress":
                self._status.state = "running"
                self._status.fraction = msg[1]
                self._status.message = msg[2]
                elapsed = time.monotonic() - self._started
                if msg[1] > 0.05:
                    self._status.eta_s = elapsed / msg[1] * (1 - msg[1])
            elif kind == "result":
                self._payload = msg[1]
                self._status.state = "done"
                self._status.fraction = 1.0
                self._status.notices = list(msg[1].get("notices", []))
            elif kind == "cancelled":
                self._status.state = "cancelled"
            elif kind == "error":
                cls = getattr(core_errors, msg[1], InferenceError)
                if not (isinstance(cls, type) and issubclass(cls, LucidaError)):
                    cls = InferenceError
                self._error = cls(msg[2])
                self._status.state = "error"
                self._status.error = msg[2]

    def poll(self) -> JobStatus:
        """Current status; cheap, never blocks."""
        self._status.elapsed_s = time.monotonic() - self._started
        if self._status.finished:
            return self._status
        self._drain()
        if self._status.finished:
            self._reap()
            return self._status
        if self._cancel_at is not None and time.monotonic() - self._cancel_at > CANCEL_GRACE_S:
            self._process.terminate()
            self._process.join(1.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(1.0)
            self._status.state = "cancelled"
            self._cleanup()
            return self._status
        if not self._process.is_alive():
            self._drain()  # a message may have arrived just before exit
            if not self._status.finished:
                self._status.state = "error"
                self._status.error = self._crash_message()
                self._error = InferenceError(self._status.error)
                self._cleanup()
        return self._status

    def _crash_message(self) -> str:
        code = self._process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            why = {"SIGKILL": " (often the system killing it for using too much memory)",
                   "SIGSEGV": " (a crash inside the runtime or model)"}.get(name, "")
            return (f"the inference worker stopped unexpectedly: {name}{why}. Lucida is "
                    "still running; try again with fewer threads or on CPU, or report the model")
        return f"the inference worker exited unexpectedly with code {code}"

    def _reap(self) -> None:
        self._process.join(2.0)
        if self._status.state != "done":
            self._cleanup()

    def cancel(self, wait: bool = False) -> None:
        """Ask the worker to stop; it is terminated if still running after a grace period."""
        if self._status.finished:
            return
        self._cancel_event.set()
        if self._cancel_at is None:
            self._cancel_at = time.monotonic()
        if wait:
            deadline = self._cancel_at + CANCEL_GRACE_S
            while time.monotonic() < deadline and not self.poll().finished:
                time.sleep(0.02)
            while not self.poll().finished:
                time.sleep(0.02)

    def result(self, timeout: float | None = None) -> Any:
        """Block until the job ends; the InferenceResult or the error it raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.poll().finished:
            if deadline is not None and time.monotonic() > deadline:
                raise InferenceError(f"inference did not finish within {timeout:.0f} s")
            time.sleep(0.02)
        if self._status.state == "cancelled":
            raise CancelledError("inference cancelled by the user")
        if self._error is not None:
            raise self._error
        if self._result is None:
            self._result = self._build_result()
        return self._result

    def _build_result(self) -> Any:
        from inference.pipeline import InferenceResult

        assert self._payload is not None
        p = self._payload
        labels = np.load(self.job_dir / "labels.npy")
        heat = np.load(self.job_dir / "heat.npy") if p["heat_name"] is not None else None
        label_map = LabelMap(labels, self._volume_affine.copy(),
                             labels=[Label(d["value"], d["name"], tuple(d["color_rgb"]),
                                           tuple(d["code"]) if d["code"] else None)
                                     for d in p["labels"]],
                             series_uid=self._series_uid)
        heatmap = (HeatMap(heat, self._volume_affine.copy(), name=p["heat_name"],
                           series_uid=self._series_uid) if heat is not None else None)
        finding_masks = None
        if p.get("finding_masks"):
            with np.load(self.job_dir / "finding_masks.npz", allow_pickle=False) as data:
                finding_masks = from_arrays(data)
        result = InferenceResult(label_map, heatmap,
                                 [_finding_from_dict(f) for f in p["findings"]],
                                 p["provenance"], list(p["notices"]),
                                 finding_masks=finding_masks)
        self._cleanup()
        return result

    def _cleanup(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop the worker if needed and remove the job folder."""
        if self._process.is_alive():
            self._cancel_event.set()
            self._process.terminate()
            self._process.join(2.0)
        self._cleanup()
