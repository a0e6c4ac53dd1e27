"""Send: C-STORE of local instances to a remote node, one outcome per instance.

Presentation contexts come from the files themselves: for each SOP class, its own
transfer syntaxes are proposed, plus Explicit and Implicit VR Little Endian as a
fallback. An instance goes in its own syntax when the node accepts it; a compressed one
the node only accepts uncompressed is decompressed in memory by pydicom. Source files are
only ever read.

The report is complete: every instance given has an outcome, sent, refused (with the
node's status code and its meaning) or not attempted (cancel, dropped association),
in the order the instances were given.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from core.errors import LucidaError
from core.progress import CancelToken, ProgressSink
from net.dimse import make_ae
from net.nodes import LocalAE, Node
from net.transfer import (
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    InstanceOutcome,
    TransferReport,
)
from store.library import Library
from store.records import StoredSource

#: No DIMSE status: the instance was never sent (cancel, dropped or refused association).
NOT_ATTEMPTED = -1
#: No DIMSE status: the instance was sent but the node never answered (timeout, abort).
NO_RESPONSE = -2

#: A source: a file, or a library object that may be a zip member.
Source = Path | StoredSource

_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
# PS3.8 9.3.2.2: presentation context ids are odd numbers 1-255.
_MAX_CONTEXTS = 128


@dataclass(frozen=True)
class _Instance:
    index: int  # position in the caller's list, so the report keeps that order
    source: Source
    sop_class: str
    sop_instance: str
    transfer_syntax: str


def status_meaning(status: int) -> str:
    """``"0xA700 Failure: Refused: Out of Resources"``; our own codes in words."""
    if status == NOT_ATTEMPTED:
        return "not attempted"
    if status == NO_RESPONSE:
        return "no response"
    category, text = STORAGE_SERVICE_CLASS_STATUS.get(status, (code_to_category(status), ""))
    return f"0x{status:04X} {category}" + (f": {text}" if text else "")


def _open(source: Source) -> Any:
    return source.open() if isinstance(source, StoredSource) else open(source, "rb")


def _read_header(index: int, source: Source) -> _Instance | InstanceOutcome:
    """The instance's identity and syntax, or a failed outcome naming the unreadable file."""
    try:
        with _open(source) as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
        meta = getattr(ds, "file_meta", None)
        syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
        if syntax is None:  # a bare data set: its encoding says which of the two it is
            syntax = ImplicitVRLittleEndian if ds.is_implicit_VR else ExplicitVRLittleEndian
        return _Instance(index, source, str(ds.SOPClassUID), str(ds.SOPInstanceUID),
                         str(syntax))
    except Exception as exc:  # pydicom fails in many ways on what is not DICOM: this file only
        return InstanceOutcome("", NOT_ATTEMPTED, False,
                               f"not sent: {source} is not a readable DICOM instance ({exc})",
                               _path(source))


def _path(source: Source) -> Path:
    return source.path if isinstance(source, StoredSource) else Path(source)


def _contexts_for(instances: Iterable[_Instance]) -> dict[str, list[PresentationContext]]:
    """Per SOP class: one context per own non-uncompressed syntax, plus one uncompressed."""
    syntaxes: dict[str, set[str]] = {}
    for inst in instances:
        syntaxes.setdefault(inst.sop_class, set()).add(inst.transfer_syntax)
    out: dict[str, list[PresentationContext]] = {}
    for sop_class, own in sorted(syntaxes.items()):
        contexts = [build_context(sop_class, ts) for ts in sorted(own - set(_UNCOMPRESSED))]
        contexts.append(build_context(sop_class, list(_UNCOMPRESSED)))
        out[sop_class] = contexts
    return out


def _association_groups(instances: list[_Instance]) -> list[tuple[list[PresentationContext],
                                                                  list[_Instance]]]:
    """Split by SOP class so no association proposes more than 128 contexts."""
    groups: list[tuple[list[PresentationContext], list[str]]] = []
    for sop_class, contexts in _contexts_for(instances).items():
        if not groups or len(groups[-1][0]) + len(contexts) > _MAX_CONTEXTS:
            groups.append(([], []))
        groups[-1][0].extend(contexts)
        groups[-1][1].append(sop_class)
    return [(contexts, [i for i in instances if i.sop_class in classes])
            for contexts, classes in groups]


def _choose_context(assoc: Association, inst: _Instance) -> tuple[bool, str] | None:
    """(needs decompression, syntax) of an accepted context for ``inst``, or None."""
    accepted = [(str(c.transfer_syntax[0]), c) for c in assoc.accepted_contexts
                if c.abstract_syntax == inst.sop_class and c.transfer_syntax]
    for syntax, _ in accepted:
        if syntax == inst.transfer_syntax:
            return False, syntax
    own = UID(inst.transfer_syntax)
    for syntax, _ in accepted:
        if syntax in _UNCOMPRESSED:
            if own in _UNCOMPRESSED:  # pynetdicom re-encodes implicit <-> explicit itself
                return False, syntax
            if own.is_compressed:
                return True, syntax
    return None


def _tls_args(node: Node, context: ssl.SSLContext | None) -> tuple[ssl.SSLContext, str] | None:
    if not node.tls:
        return None
    return context or ssl.create_default_context(ssl.Purpose.SERVER_AUTH), node.host


def _make_ae(local: LocalAE, contexts: list[PresentationContext], timeout_s: float) -> AE:
    ae = make_ae(local, timeout_s)
    ae.requested_contexts = contexts
    return ae


def _unreachable(node: Node, timeout_s: float) -> str | None:
    """Why nothing answers at the node's address, or None when something listens there.

    pynetdicom only says "aborted" for a refused or silent connection; this says which.
    """
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return (f"{node.name} ({node.describe()}) refused the connection: is the PACS "
                "running, and are the host and port right?")
    except TimeoutError:
        return (f"{node.name} ({node.describe()}) did not accept a connection within "
                f"{timeout_s:g} s: check the host, port and firewall")
    except OSError as exc:
        return f"cannot reach {node.name} ({node.describe()}): {exc.strerror or exc}"


def _association_failure(node: Node, assoc: Association, waited_s: float,
                         timeout_s: float) -> str:
    if assoc.is_rejected:
        return (f"{node.name} ({node.describe()}) rejected the association; check that "
                f"it knows Lucida's AE title and the called AE title {node.ae_title!r}")
    if waited_s >= 0.9 * timeout_s:
        return (f"{node.name} ({node.describe()}) did not answer the association request "
                f"within {timeout_s:g} s")
    return (f"no association with {node.name} ({node.describe()}): the connection failed "
            "or was aborted; is the node running, and are its host, port and AE title right?")


class _Sender:
    """One send: walks the instances, fills ``outcomes`` slot by slot."""

    def __init__(self, node: Node, local: LocalAE, total: int, progress: ProgressSink | None,
                 cancel: CancelToken | None, timeout_s: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.node, self.local, self.total = node, local, total
        self.ssl_context = ssl_context
        self.progress, self.cancel, self.timeout_s = progress, cancel, timeout_s
        self.outcomes: list[InstanceOutcome | None] = [None] * total
        self.bytes = 0
        self.error: str | None = None
        self.cancelled = False
        self.done = 0

    def put(self, index: int, outcome: InstanceOutcome) -> None:
        self.outcomes[index] = outcome
        self.done += 1
        if self.progress is not None:
            self.progress(self.done / max(self.total, 1),
                          f"sent {self.done} of {self.total} to {self.node.name}")

    def skip_rest(self, instances: Iterable[_Instance], why: str) -> None:
        for inst in instances:
            if self.outcomes[inst.index] is None:
                self.put(inst.index, InstanceOutcome(inst.sop_instance, NOT_ATTEMPTED, False,
                                                     f"not attempted: {why}", _path(inst.source)))

    def run_group(self, contexts: list[PresentationContext], group: list[_Instance]) -> None:
        unreachable = _unreachable(self.node, self.timeout_s)
        if unreachable is not None:
            self.error = unreachable
            self.skip_rest(group, unreachable)
            return
        ae = _make_ae(self.local, contexts, self.timeout_s)
        asked = time.monotonic()
        assoc = ae.associate(self.node.host, self.node.port, ae_title=self.node.ae_title,
                             tls_args=_tls_args(self.node, self.ssl_context))
        if not assoc.is_established:
            self.error = _association_failure(self.node, assoc, time.monotonic() - asked,
                                              self.timeout_s)
            self.skip_rest(group, self.error)
            return
        try:
            for n, inst in enumerate(group):
                if self.cancel is not None and self.cancel.cancelled:
                    self.cancelled = True
                    self.skip_rest(group[n:], "cancelled")
                    return
                if not assoc.is_established:
                    self.error = (f"the association with {self.node.name} was dropped after "
                                  f"{n} of {len(group)} instances")
                    self.skip_rest(group[n:], self.error)
                    return
                self.put(inst.index, self.store_one(assoc, inst))
            if not assoc.is_established:  # the last one went unanswered
                self.error = f"the association with {self.node.name} was dropped"
        finally:
            if assoc.is_established:
                assoc.release()

    def store_one(self, assoc: Association, inst: _Instance) -> InstanceOutcome:
        path = _path(inst.source)
        choice = _choose_context(assoc, inst)
        if choice is None:
            return InstanceOutcome(
                inst.sop_instance, SOP_CLASS_NOT_SUPPORTED, False,
                f"refused: {self.node.name} accepted no presentation context for "
                f"{UID(inst.sop_class).name} in {UID(inst.transfer_syntax).name} or "
                f"uncompressed ({inst.sop_instance}, {path})", path)
        decompress, syntax = choice
        try:
            with _open(inst.source) as fh:
                raw = fh.read()
            ds = pydicom.dcmread(BytesIO(raw))
            if decompress:
                # pydicom's own decoders, in memory; a change of transfer syntax keeps
                # the instance's UID (PS3.5 10), so no new one is made.
                ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # any decoder failure is this instance's outcome
            return InstanceOutcome(inst.sop_instance, PROCESSING_FAILURE, False,
                                   f"not sent: cannot read {path} for sending ({exc})", path)
        if not assoc.is_established:  # dropped while this one was read
            return InstanceOutcome(inst.sop_instance, NOT_ATTEMPTED, False,
                                   f"not attempted: the association with {self.node.name} "
                                   "was dropped", path)
        try:
            status_ds = assoc.send_c_store(ds)
        except RuntimeError:  # pynetdicom: the association ended under us
            return InstanceOutcome(inst.sop_instance, NO_RESPONSE, False,
                                   f"no response: the association with {self.node.name} "
                                   f"ended while sending {inst.sop_instance} ({path})", path)
        except (ValueError, AttributeError) as exc:
            return InstanceOutcome(inst.sop_instance, PROCESSING_FAILURE, False,
                                   f"not sent: cannot encode {inst.sop_instance} from {path} "
                                   f"as {UID(syntax).name} ({exc})", path)
        status = status_ds.get("Status")
        if status is None:
            return InstanceOutcome(inst.sop_instance, NO_RESPONSE, False,
                                   f"no response from {self.node.name} for {inst.sop_instance} "
                                   f"({path}): none within {self.timeout_s:g} s, or the "
                                   "association was aborted", path)
        status = int(status)
        category = code_to_category(status)
        ok = category in ("Success", "Warning")
        if ok:
            self.bytes += len(raw)
        meaning = status_meaning(status)
        comment = str(status_ds.get("ErrorComment", "") or "")
        if ok and status == SUCCESS:
            message = "sent"
        elif ok:
            message = f"sent with a warning: {meaning}"
        else:
            message = f"refused by {self.node.name}: {meaning}"
        if comment:
            message += f" ({comment})"
        if not ok:
            message += f" — {inst.sop_instance} ({path})"
        return InstanceOutcome(inst.sop_instance, status, ok, message, path)


def send(node: Node, local: LocalAE, paths: Sequence[Source],
         progress: ProgressSink | None = None, cancel: CancelToken | None = None,
         *, timeout_s: float = 30.0, ssl_context: ssl.SSLContext | None = None
         ) -> TransferReport:
    """C-STORE every instance in ``paths`` to ``node``; a DICOMweb node gets STOW-RS.

    ``ssl_context``: for a TLS node (default: the system's trust store, host checked).

    Never raises for what the node does: an unreachable node or a refused association
    is the report's ``error``, with every instance ``not attempted``.
    """
    if node.kind == "dicomweb":
        from net.web import web_send

        return web_send(node, paths, progress, cancel, timeout_s=timeout_s)
    started = time.perf_counter()
    sender = _Sender(node, local, len(paths), progress, cancel, timeout_s, ssl_context)
    instances: list[_Instance] = []
    for n, source in enumerate(paths):
        header = _read_header(n, source)
        if isinstance(header, InstanceOutcome):
            sender.put(n, header)
        else:
            instances.append(header)
    groups = _association_groups(instances)
    for g, (contexts, group) in enumerate(groups):
        sender.run_group(contexts, group)
        if sender.error is not None or sender.cancelled:
            rest = [i for _, later in groups[g + 1:] for i in later]
            sender.skip_rest(rest, "cancelled" if sender.cancelled else sender.error or "")
            break
    outcomes = [o for o in sender.outcomes if o is not None]
    assert len(outcomes) == len(paths), "every instance has an outcome"
    return TransferReport(kind="send", node=node.name, instances=outcomes, bytes=sender.bytes,
                          elapsed_s=time.perf_counter() - started, error=sender.error,
                          cancelled=sender.cancelled)


# ------------------------------------------------------------------ what the app sends


def series_paths(lib: Library, series_id: int) -> list[Source]:
    """The files of a library series (a zip member stays a StoredSource: send reads it)."""
    return [s.path if s.member is None else s for s in lib.series_sources(int(series_id))]


class SignoffFilesError(LucidaError):
    """The sign-off's exported files cannot be sent as they were signed off."""


def signoff_paths(lib: Library, run_id: int) -> list[Path]:
    """The SEG, SR and KO of the latest sign-off export of model run ``run_id``.

    Found through the run's audited ``export`` event (folder and SHA-256 of each file);
    a file that is gone or changed since is refused, so what reaches the PACS is what was
    signed off.
    """
    import hashlib

    exports = [r for r in lib.audit_rows(run_id=int(run_id)) if r.event == "export"
               and isinstance(r.payload, dict) and isinstance(r.payload.get("files"), dict)]
    if not exports:
        raise SignoffFilesError(f"model run {run_id} has no sign-off export yet; export it "
                                "first (`lucida export SERIES --run RUN --out DIR`)")
    payload = exports[-1].payload
    folder = Path(str(payload.get("out_dir", "")))
    out: list[Path] = []
    for name, digest in sorted(payload["files"].items()):
        if not str(name).lower().endswith(".dcm"):
            continue  # the HTML report is for people, not for the PACS
        path = folder / str(name)
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise SignoffFilesError(f"the signed-off file {path} cannot be read ({exc}); "
                                    "export the run again") from exc
        if actual != digest:
            raise SignoffFilesError(f"{path} changed since it was signed off (SHA-256 "
                                    "differs from the audit log); export the run again")
        out.append(path)
    if not out:
        raise SignoffFilesError(f"the sign-off export of model run {run_id} lists no DICOM "
                                "files")
    return out

