"""Filing what arrives from the network into the library.

Every instance a peer sends (C-GET, C-MOVE, the storage SCP, DICOMweb) goes
through :class:`Filer`: the same header checks as an import from disk
(``dicomio.scan``), a size limit, the SOP classes and transfer syntaxes Lucida
reads, then an atomic write to
``<library>/network/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`` and, in small
batches on the Filer's own thread, the ``index`` callable the caller supplies
(the app passes its importer; ``net`` never imports ``app``). Batches keep a
series openable while it is still arriving.

An instance the library already has (indexed, or filed here before) is skipped,
so an interrupted retrieve resumes without duplicates.
"""

from __future__ import annotations

import io
import logging
import queue
import re
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import Dataset
from pydicom import uid as _uid
from pydicom.filewriter import dcmwrite

from core.atomic import write_bytes
from core.errors import LucidaError
from dicomio import fastheader
from dicomio.classify import ObjectKind, classify_sop_class
from dicomio.scan import ScanProblem, read_header
from dicomio.source import DicomSource
from net.transfer import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    InstanceOutcome,
)
from store.library import Library

log = logging.getLogger(__name__)

#: Folder of the library that holds what came over the network.
NETWORK_FOLDER = "network"

#: Transfer syntaxes Lucida decodes (dicomio.decode): native little endian, deflated,
#: JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 (incl. HTJ2K), RLE.
READABLE_TRANSFER_SYNTAXES: tuple[str, ...] = (
    str(_uid.ExplicitVRLittleEndian),
    str(_uid.ImplicitVRLittleEndian),
    str(_uid.DeflatedExplicitVRLittleEndian),
    str(_uid.JPEGBaseline8Bit),
    str(_uid.JPEGExtended12Bit),
    str(_uid.JPEGLossless),
    str(_uid.JPEGLosslessSV1),
    str(_uid.JPEGLSLossless),
    str(_uid.JPEGLSNearLossless),
    str(_uid.JPEG2000Lossless),
    str(_uid.JPEG2000),
    str(_uid.HTJ2KLossless),
    str(_uid.HTJ2KLosslessRPCL),
    str(_uid.HTJ2K),
    str(_uid.RLELossless),
)

# What Lucida shows or reads back: image stacks and the derived objects it understands.
_READABLE_KINDS = frozenset({ObjectKind.IMAGE, ObjectKind.RTIMAGE, ObjectKind.SEG,
                             ObjectKind.SR, ObjectKind.KO, ObjectKind.RTSTRUCT, ObjectKind.PR})
# Image classes whose pixels are video or not a raster Lucida draws.
_NOT_READABLE = frozenset({
    "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic
    "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy
})

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

DEFAULT_MAX_INSTANCE_MB = 2048.0


def readable_sop_class(sop_class_uid: str) -> bool:
    """True for the storage SOP classes Lucida reads (images, SEG, SR, KO, RTSTRUCT, PR)."""
    if sop_class_uid in _NOT_READABLE:
        return False
    return classify_sop_class(sop_class_uid, has_pixel_data=False) in _READABLE_KINDS


def _valid_uid(value: str) -> bool:
    # The UID becomes a path component: digits and dots only, never '..' or a separator.
    return 0 < len(value) <= 64 and bool(_UID.match(value))


# Rows, Columns, Samples per Pixel, Bits Allocated, Number of Frames.
_ROWS, _COLUMNS, _SAMPLES, _BITS, _FRAMES = 0x00280010, 0x00280011, 0x00280002, 0x00280100, \
    0x00280008
_PIXEL_TAGS = frozenset({_ROWS, _COLUMNS, _SAMPLES, _BITS, _FRAMES})


def _short_pixel_data(data: bytes, meta: fastheader.FileMeta) -> str:
    """Why native pixel data is shorter than its header says ('' when it is not): a
    sender may re-encode a cut file into a well-formed but short element. Read with
    the fast header walker: this runs for every instance received."""
    implicit = meta.transfer_syntax == fastheader.IMPLICIT_LE
    if meta.transfer_syntax not in (str(_uid.ExplicitVRLittleEndian), fastheader.IMPLICIT_LE):
        return ""  # encapsulated frames are checked by the decoder when read
    try:
        found = fastheader.walk(io.BytesIO(data), meta.dataset_start, end=len(data),
                                implicit=implicit, wanted=_PIXEL_TAGS, head=meta.head)
    except (fastheader.Declined, fastheader.HeaderProblem) as exc:
        return f"unreadable header: {exc}"
    head, values = found.pixel_head, found.values
    if found.pixel_pos is None or len(head) < 8 or not {_ROWS, _COLUMNS, _BITS} <= set(values):
        return ""
    if implicit or not fastheader.is_vr(head[4:6]):
        length = struct.unpack_from("<I", head, 4)[0]
    elif head[4:6] in fastheader.LONG_VRS and len(head) >= 12:
        length = struct.unpack_from("<I", head, 8)[0]
    else:
        length = struct.unpack_from("<H", head, 6)[0]
    if length == 0xFFFFFFFF:
        return ""

    def us(tag: int, default: int) -> int:
        raw = values.get(tag, b"")
        return int(struct.unpack_from("<H", raw)[0]) if len(raw) >= 2 else default

    try:
        frames = max(1, int(values.get(_FRAMES, b"1").decode("ascii").strip() or 1))
    except ValueError:
        return "Number of Frames is not a number"
    bits = us(_BITS, 0)
    need = (us(_ROWS, 0) * us(_COLUMNS, 0) * us(_SAMPLES, 1) * frames * bits + 7) // 8
    if length < need:
        return f"truncated: pixel data has {length} bytes, its header needs {need}"
    return ""


def encode_dataset(ds: Dataset) -> bytes:
    """``ds`` as a Part 10 file (its file meta completed where missing)."""
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or _uid.ExplicitVRLittleEndian)
    out = io.BytesIO()
    ds = ds.copy()
    ds.file_meta = ds.file_meta if meta is not None else Dataset()  # type: ignore[assignment]
    ds.file_meta.TransferSyntaxUID = _uid.UID(ts)
    ds.file_meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


class Filer:
    """Checks, writes and indexes instances as they arrive; safe to call from many threads.

    ``index`` runs on the Filer's own indexing thread (open any Library there:
    SQLite connections belong to one thread; :meth:`for_library` does that).
    Its failures are collected in :attr:`index_errors`, never raised into the
    receiving connection.
    """

    def __init__(self, library_folder: Path,
                 index: Callable[[Sequence[Path]], object] | None, *,
                 max_instance_mb: float = DEFAULT_MAX_INSTANCE_MB,
                 batch_size: int = 64, batch_interval_s: float = 1.0) -> None:
        self.library_folder = Path(library_folder)
        self.root = self.library_folder / NETWORK_FOLDER
        self.max_instance_bytes = int(max_instance_mb * 1e6)
        self.index_errors: list[str] = []
        self._index = index
        self._batch_size = max(1, batch_size)
        self._interval = batch_interval_s
        self._lock = threading.Lock()
        self._pending: list[Path] = []
        self._last_sent = time.monotonic()
        self._local = threading.local()
        self._jobs: queue.Queue[list[Path] | threading.Event | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        #: Run on the indexing thread when it stops (closes what ``index`` opened there).
        self.index_cleanup: Callable[[], None] | None = None
        #: Run on the indexing thread after a flush indexed everything pending.
        self.index_flushed: Callable[[], None] | None = None

    @classmethod
    def for_library(cls, library_folder: Path,
                    import_paths: Callable[[Library, Sequence[Path]], object], *,
                    finish: Callable[[Library], object] | None = None,
                    **kwargs: float | int) -> Filer:
        """A Filer that indexes with ``import_paths(library, paths)`` on a Library it opens
        on its own indexing thread (e.g. ``app.importer.ArrivalIndexer().index``), and
        calls ``finish(library)`` there after each flush (e.g. its ``finish``)."""
        local = threading.local()

        def index(paths: Sequence[Path]) -> object:
            lib = getattr(local, "lib", None)
            if lib is None:
                lib = local.lib = Library.open(library_folder)
            return import_paths(lib, paths)

        def cleanup() -> None:
            lib = getattr(local, "lib", None)
            if lib is not None:
                lib.close()
                local.lib = None

        filer = cls(library_folder, index, **kwargs)  # type: ignore[arg-type]
        filer.index_cleanup = cleanup
        if finish is not None:
            def flushed() -> None:
                lib = getattr(local, "lib", None)
                if lib is None:
                    lib = local.lib = Library.open(library_folder)
                finish(lib)

            filer.index_flushed = flushed
        return filer

    # ------------------------------------------------------------------ checks

    def path_for(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
        return self.root / study_uid / series_uid / f"{sop_instance_uid}.dcm"

    def _library(self) -> Library | None:
        lib = getattr(self._local, "lib", None)
        if lib is None and (self.library_folder / "library.sqlite").exists():
            try:
                lib = self._local.lib = Library.open(self.library_folder)
            except LucidaError as exc:
                log.warning("filer cannot read the library: %s", exc)
                return None
        return lib

    def has(self, sop_instance_uid: str) -> bool:
        """True when the library already indexes this instance."""
        lib = self._library()
        return lib is not None and lib.find_instance(sop_instance_uid) is not None

    # ------------------------------------------------------------------ filing

    def file(self, ds: Dataset) -> InstanceOutcome:
        """Check, write and queue for indexing one received data set."""
        uid = str(ds.get("SOPInstanceUID", ""))
        try:
            data = encode_dataset(ds)
        except Exception as exc:  # pydicom fails in many ways on a bad data set
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False,
                                   f"cannot encode the data set: {type(exc).__name__}: {exc}")
        return self.file_bytes(data)

    def file_bytes(self, data: bytes) -> InstanceOutcome:
        """Check, write and queue one instance given as Part 10 bytes (preamble + meta +
        data set, as pynetdicom's ``Event.encoded_dataset()`` gives it)."""
        size = len(data)
        if size > self.max_instance_bytes:
            return InstanceOutcome("", OUT_OF_RESOURCES, False,
                                   f"instance of {size / 1e6:.1f} MB is over the limit of "
                                   f"{self.max_instance_bytes / 1e6:g} MB")
        stream = io.BytesIO(data)
        try:
            meta = fastheader.read_file_meta(stream, size)
        except (fastheader.Declined, fastheader.HeaderProblem) as exc:
            return InstanceOutcome("", CANNOT_UNDERSTAND, False, f"bad file meta: {exc}")
        if meta is None:
            return InstanceOutcome("", CANNOT_UNDERSTAND, False, "no DICOM file meta")
        uid = meta.sop_instance
        if meta.transfer_syntax not in READABLE_TRANSFER_SYNTAXES:
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False,
                                   f"transfer syntax {meta.transfer_syntax} is not one "
                                   "Lucida reads")
        if not readable_sop_class(meta.sop_class):
            return InstanceOutcome(uid, SOP_CLASS_NOT_SUPPORTED, False,
                                   f"SOP class {meta.sop_class} is not one Lucida reads")
        if not _valid_uid(uid):
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False,
                                   "the SOP Instance UID is not a valid UID")
        if self.has(uid):
            return InstanceOutcome(uid, SUCCESS, True, "already in the library")
        try:
            header = read_header(stream, DicomSource(self.root / f"{uid}.dcm"), size,
                                 time.time())
        except ScanProblem as problem:
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False, f"refused: {problem}")
        except Exception as exc:  # the same guard as the scanner's: this instance only
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False,
                                   f"refused: {type(exc).__name__}: {exc}"[:300])
        if header.sop_instance_uid != uid or header.sop_class_uid != meta.sop_class:
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False,
                                   "the data set's SOP UIDs differ from its file meta")
        if not (_valid_uid(header.study_uid) and _valid_uid(header.series_uid)):
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False,
                                   "the study or series UID is missing or not a valid UID")
        short = _short_pixel_data(data, meta)
        if short:
            return InstanceOutcome(uid, CANNOT_UNDERSTAND, False, f"refused: {short}")
        target = self.path_for(header.study_uid, header.series_uid, uid)
        if target.exists():  # filed before, maybe not indexed yet (a crash in between)
            self._queue(target)
            return InstanceOutcome(uid, SUCCESS, True, "already received", target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(target, data)
        except OSError as exc:
            return InstanceOutcome(uid, PROCESSING_FAILURE, False,
                                   f"cannot write {target}: {exc.strerror or exc}")
        self._queue(target)
        return InstanceOutcome(uid, SUCCESS, True, "", target)

    # ------------------------------------------------------------------ indexing

    def _queue(self, path: Path) -> None:
        if self._index is None:
            return
        with self._lock:
            self._pending.append(path)
            due = (len(self._pending) >= self._batch_size
                   or time.monotonic() - self._last_sent >= self._interval)
            batch = self._take() if due else None
        self._ensure_worker()  # it also indexes a partial batch once arrivals go quiet
        if batch:
            self._jobs.put(batch)

    def _take(self) -> list[Path]:
        batch, self._pending = self._pending, []
        self._last_sent = time.monotonic()
        return batch

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="lucida-filer-index",
                                                daemon=True)
                self._worker.start()

    def _run(self) -> None:
        while True:
            quiet = False
            try:
                job = self._jobs.get(timeout=self._interval)
            except queue.Empty:
                with self._lock:
                    quiet = time.monotonic() - self._last_sent >= self._interval
                    job = self._take() if self._pending and quiet else []
                if not job:
                    continue
            if job is None:
                if self.index_cleanup is not None:
                    self.index_cleanup()
                return
            if isinstance(job, threading.Event):  # a flush: everything before it is indexed
                self._flushed()
                job.set()
                continue
            try:
                assert self._index is not None
                self._index(job)
            except Exception as exc:  # reported, never raised into a network thread
                log.warning("indexing %d received files failed: %s", len(job), exc)
                self.index_errors.append(f"indexing {len(job)} received files failed: {exc}")
            with self._lock:
                still_quiet = quiet and not self._pending and self._jobs.empty()
            if still_quiet:
                self._flushed()  # arrivals paused: a push may be over (a flush says so too)

    def _flushed(self) -> None:
        if self.index_flushed is None:
            return
        try:
            self.index_flushed()
        except Exception as exc:  # reported, never raised into a network thread
            log.warning("finishing received files failed: %s", exc)
            self.index_errors.append(f"finishing received files failed: {exc}")

    def flush(self, timeout_s: float | None = None) -> None:
        """Index everything pending and wait until it is indexed."""
        if self._index is None:
            return
        with self._lock:
            batch = self._take()
            if self._worker is None and not batch:
                return
        self._ensure_worker()
        if batch:
            self._jobs.put(batch)
        done = threading.Event()
        self._jobs.put(done)
        done.wait(timeout_s)

    def close(self) -> None:
        """Flush, stop the indexing thread, close this thread's library."""
        self.flush()
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(10)
            self._worker = None
        lib = getattr(self._local, "lib", None)
        if lib is not None:
            lib.close()
            self._local.lib = None
