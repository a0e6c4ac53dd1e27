"""DIMSE as a service class user (pynetdicom): C-ECHO, C-FIND, C-GET and C-MOVE.

Every call opens one association, does its work and releases it. Failures
(refused connection, no answer within the timeout, rejected association,
a failure status) raise :class:`NetworkError` with one line that names the
node and says what to check; a retrieve that stops part way returns its
report with ``error`` set and keeps what was filed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydicom import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, build_role, evt
from pynetdicom.association import Association

from core.errors import CancelledError
from core.progress import CancelToken, ProgressSink
from net.errors import NetworkError
from net.filing import READABLE_TRANSFER_SYNTAXES, Filer, readable_sop_class
from net.nodes import LocalAE, Node
from net.transfer import InstanceOutcome, TransferReport

log = logging.getLogger(__name__)

# pynetdicom.sop_class builds its names at import time (invisible to mypy): the UIDs here.
Verification = "1.2.840.10008.1.1"
PatientRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.1.1"
StudyRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.2.1"
StudyRootQueryRetrieveInformationModelMove = "1.2.840.10008.5.1.4.1.2.2.2"
StudyRootQueryRetrieveInformationModelGet = "1.2.840.10008.5.1.4.1.2.2.3"

Level = Literal["PATIENT", "STUDY", "SERIES"]

#: Storage SOP classes Lucida accepts as C-GET sub-operations (at most 127 fit beside
#: the query model in one association).
GET_STORAGE_CLASSES: tuple[str, ...] = tuple(
    c.abstract_syntax for c in AllStoragePresentationContexts
    if c.abstract_syntax and readable_sop_class(c.abstract_syntax))[:127]

#: Largest PDU Lucida asks peers to send: fewer, larger reads than pynetdicom's 16 KiB
#: default, still a bounded buffer.
MAX_PDU = 1 << 20

#: pynetdicom's idle poll of the socket during a C-GET (its default: 1 ms).
FAST_LOOP_DELAY_S = 0.0001

_RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                "NumberOfPatientRelatedStudies"),
    "STUDY": ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate",
              "StudyTime", "StudyDescription", "AccessionNumber", "ModalitiesInStudy",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SeriesDescription", "SeriesDate", "NumberOfSeriesRelatedInstances"),
}


@dataclass(frozen=True)
class QueryKeys:
    """What to match. Empty means any; a name without wildcards matches as a part."""

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    accession: str = ""
    study_uid: str = ""


def _dicom_date(value: str) -> str:
    digits = value.replace("-", "").strip()
    if digits and (len(digits) != 8 or not digits.isdigit()):
        raise NetworkError(f"date {value!r} must be YYYYMMDD or YYYY-MM-DD")
    return digits


def _identifier(level: Level, keys: QueryKeys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in _RETURN_KEYS[level]:
        setattr(ds, keyword, "")
    name = keys.patient_name.strip()
    if name and level in ("PATIENT", "STUDY"):
        ds.PatientName = name if any(c in name for c in "*?") else f"*{name}*"
    if keys.patient_id and level in ("PATIENT", "STUDY"):
        ds.PatientID = keys.patient_id
    if (keys.date_from or keys.date_to) and level != "PATIENT":
        span = f"{_dicom_date(keys.date_from)}-{_dicom_date(keys.date_to)}"
        if level == "STUDY":
            ds.StudyDate = span
        else:
            ds.SeriesDate = span
    if keys.modality:
        if level == "STUDY":
            ds.ModalitiesInStudy = keys.modality
        elif level == "SERIES":
            ds.Modality = keys.modality
    if keys.accession and level == "STUDY":
        ds.AccessionNumber = keys.accession
    if keys.study_uid and level in ("STUDY", "SERIES"):
        ds.StudyInstanceUID = keys.study_uid
    return ds


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------- associations


def _where(node: Node) -> str:
    return f"node {node.name!r} ({node.describe()})"


def _probe(node: Node, timeout_s: float) -> None:
    """Say plainly when nothing listens, before pynetdicom would only say 'aborted'."""
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout_s):
            pass
    except ConnectionRefusedError as exc:
        raise NetworkError(f"{_where(node)} refused the connection: is the PACS running and "
                           "are the host and port right?") from exc
    except TimeoutError as exc:
        raise NetworkError(f"{_where(node)} did not accept a connection within "
                           f"{timeout_s:g} s: check the host, port and firewall") from exc
    except OSError as exc:
        raise NetworkError(f"cannot reach {_where(node)}: {exc.strerror or exc}") from exc


def make_ae(local: LocalAE, timeout_s: float) -> AE:
    """Lucida's calling AE with one timeout for every phase (send uses it too)."""
    ae = AE(ae_title=local.ae_title)
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    ae.maximum_pdu_size = MAX_PDU
    return ae


@contextlib.contextmanager
def _associate(ae: AE, node: Node, local: LocalAE, timeout_s: float, *,
               ext_neg: list[Any] | None = None,
               handlers: list[Any] | None = None,
               ssl_context: ssl.SSLContext | None = None) -> Iterator[Association]:
    if node.kind != "dimse":
        raise NetworkError(f"{_where(node)} is a DICOMweb node; this needs a DIMSE node")
    _probe(node, timeout_s)
    tls_args = None
    if node.tls:
        tls_args = (ssl_context or ssl.create_default_context(), node.host)
    started = time.monotonic()
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=ext_neg,
                         evt_handlers=handlers, tls_args=tls_args)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise NetworkError(
                f"{_where(node)} rejected the association: check that the PACS knows "
                f"Lucida's AE title {local.ae_title!r} and that {node.ae_title!r} is its AE "
                "title")
        if time.monotonic() - started >= timeout_s * 0.9:
            raise NetworkError(f"{_where(node)} did not answer within {timeout_s:g} s")
        raise NetworkError(f"{_where(node)} aborted the association: it may not offer the "
                           "service asked for" + (", or the TLS handshake failed"
                                                  if node.tls else ""))
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


_MODEL_NAMES = {
    Verification: "C-ECHO (verification)",
    PatientRootQueryRetrieveInformationModelFind: "patient-level C-FIND (patient root)",
    StudyRootQueryRetrieveInformationModelFind: "C-FIND (study root)",
    StudyRootQueryRetrieveInformationModelMove: "C-MOVE (study root)",
    StudyRootQueryRetrieveInformationModelGet: "C-GET (study root); try C-MOVE",
}


def _require(assoc: Association, node: Node, model: str) -> None:
    """NetworkError naming the service when the peer did not accept its context."""
    if not any(cx.abstract_syntax == model for cx in assoc.accepted_contexts):
        raise NetworkError(f"{_where(node)} does not offer {_MODEL_NAMES.get(model, model)}")


def _check_done(node: Node, what: str, status: Dataset | None,
                assoc: Association | None = None) -> int:
    """The status code of a response; NetworkError when none came."""
    if status is None or "Status" not in status:
        deadline = time.monotonic() + 1.0  # pynetdicom marks the abort just after this
        while assoc is not None and assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.01)
        if assoc is not None and assoc.is_aborted:
            caller = assoc.requestor.ae_title
            raise NetworkError(
                f"{_where(node)} ended the association during {what}: it stopped, the "
                f"connection was lost, it did not answer in time, or it refuses this "
                f"request from Lucida's AE title {caller!r} (check the PACS's configuration)")
        raise NetworkError(f"{_where(node)} stopped answering during {what} (connection "
                           "lost or timed out)")
    return int(status.Status)


# ---------------------------------------------------------------------- services


def echo(node: Node, local: LocalAE, timeout_s: float = 10,
         ssl_context: ssl.SSLContext | None = None) -> float:
    """C-ECHO ``node``; the round trip in seconds (association included)."""
    ae = make_ae(local, timeout_s)
    ae.add_requested_context(Verification)
    started = time.perf_counter()
    with _associate(ae, node, local, timeout_s, ssl_context=ssl_context) as assoc:
        _require(assoc, node, Verification)
        status = assoc.send_c_echo()
        code = _check_done(node, "C-ECHO", status, assoc)
        if code != 0:
            raise NetworkError(f"{_where(node)} answered C-ECHO with status 0x{code:04X}")
    return time.perf_counter() - started


def find(node: Node, local: LocalAE, level: Level, keys: QueryKeys, *,
         timeout_s: float = 30, max_results: int = 1000,
         ssl_context: ssl.SSLContext | None = None) -> list[dict[str, str]]:
    """C-FIND at ``level``: one dict per match, keyed by DICOM keyword (text values)."""
    if level not in _RETURN_KEYS:
        raise NetworkError(f"query level {level!r} must be PATIENT, STUDY or SERIES")
    model = (PatientRootQueryRetrieveInformationModelFind if level == "PATIENT"
             else StudyRootQueryRetrieveInformationModelFind)
    ae = make_ae(local, timeout_s)
    ae.add_requested_context(model)
    identifier = _identifier(level, keys)
    out: list[dict[str, str]] = []
    with _associate(ae, node, local, timeout_s, ssl_context=ssl_context) as assoc:
        _require(assoc, node, model)
        responses = assoc.send_c_find(identifier, model, msg_id=1)
        for status, match in responses:
            code = _check_done(node, "C-FIND", status, assoc)
            if code in (0xFF00, 0xFF01) and match is not None:
                out.append({kw: _as_text(match.get(kw)) for kw in _RETURN_KEYS[level]
                            if kw in match})
                if len(out) >= max_results:
                    assoc.send_c_cancel(1, query_model=model)
                    break
            elif code == 0x0000 or code == 0xFE00:
                break
            else:
                raise NetworkError(f"{_where(node)} answered C-FIND with status 0x{code:04X}")
    return out


class _Progress:
    """Counts from the peer's pending responses, turned into the progress sink's calls."""

    def __init__(self, sink: ProgressSink | None, started: float) -> None:
        self.sink = sink
        self.started = started
        self.bytes = 0
        self.done = 0
        self.total = 0
        self.lock = threading.Lock()

    def received(self, size: int) -> None:
        with self.lock:
            self.bytes += size
            self.done += 1
        self.report()

    def counts(self, status: Dataset) -> None:
        remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
        done = sum(int(status.get(k, 0) or 0) for k in (
            "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
            "NumberOfWarningSuboperations"))
        with self.lock:
            self.total = max(self.total, remaining + done)

    def report(self) -> None:
        if self.sink is None:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        total = max(self.total, self.done)
        fraction = self.done / total if total else 0.0
        self.sink(min(fraction, 1.0), f"{self.done}/{total or '?'} instances, "
                                      f"{self.bytes / 1e6 / elapsed:.1f} MB/s")


def retrieve(node: Node, local: LocalAE, study_uids: Sequence[str], filer: Filer,
             method: Literal["get", "move"] = "get", progress: ProgressSink | None = None,
             cancel: CancelToken | None = None, *, timeout_s: float = 30,
             scp: Any = None, ssl_context: ssl.SSLContext | None = None) -> TransferReport:
    """Bring whole studies into the library through ``filer``; C-GET or C-MOVE.

    C-MOVE asks the peer to send to ``local.ae_title``, which it must know at
    ``local.port``: a running ``scp`` (net.scp.StorageSCP) receives them, or a
    StorageSCP started here for the duration on ``local.bind:local.port``.
    Connection problems before anything moved raise NetworkError; a stop part
    way returns the report with ``error`` set (what arrived stays filed).
    """
    report = TransferReport("retrieve", node.name)
    started = time.perf_counter()
    prog = _Progress(progress, started)
    lock = threading.Lock()

    def record(outcome: InstanceOutcome, size: int) -> None:
        with lock:
            report.instances.append(outcome)
            report.bytes += size
        prog.received(size)

    try:
        if method == "get":
            _get(node, local, study_uids, filer, record, prog, cancel, timeout_s,
                 ssl_context, report)
        elif method == "move":
            _move(node, local, study_uids, filer, record, prog, cancel, timeout_s,
                  ssl_context, report, scp)
        else:
            raise NetworkError(f"retrieve method {method!r} must be 'get' or 'move'")
    except CancelledError:
        report.cancelled = True
    except NetworkError as exc:
        if not report.instances:
            raise
        report.error = str(exc)
    finally:
        filer.flush()
        report.elapsed_s = time.perf_counter() - started
    if filer.index_errors and report.error is None:
        report.error = filer.index_errors[-1]
    return report


def _level_study(uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = uid
    return ds


#: What a retrieve's failure statuses mean for the user (PS3.4 C.4.2.1.5, C.4.3.1.4).
_RETRIEVE_FAILURES = {
    0xA701: "out of resources: it could not count the matches",
    0xA702: "out of resources: it could not start the transfers",
    0xA801: "it does not know the destination: register Lucida's AE title, host and port "
            "on the PACS",
    0xA900: "the request does not match the query model",
    0xC000: "it could not process the request",
}


def _final(node: Node, what: str, code: int, report: TransferReport) -> None:
    if code == 0xFE00:
        report.cancelled = True
    elif code == 0xB000:
        report.error = f"{_where(node)} could not send some instances ({what} warning B000)"
    elif code != 0x0000:
        meaning = _RETRIEVE_FAILURES.get(code) or _RETRIEVE_FAILURES.get(code & 0xFF00, "")
        raise NetworkError(f"{_where(node)} answered {what} with status 0x{code:04X}"
                           + (f": {meaning}" if meaning else ""))


def _responses(node: Node, what: str, responses: Iterator[tuple[Dataset, Dataset | None]],
               prog: _Progress, cancel: CancelToken | None, model: str, assoc: Association,
               report: TransferReport) -> None:
    cancelled = False
    for status, _ in responses:
        code = _check_done(node, what, status, assoc)
        if code in (0xFF00, 0xFF01):
            prog.counts(status)
            prog.report()
            if cancel is not None and cancel.cancelled and not cancelled:
                assoc.send_c_cancel(1, query_model=model)
                cancelled = True
            continue
        _final(node, what, code, report)
        break
    if cancelled:
        report.cancelled = True
        raise CancelledError("retrieve cancelled")


def _get(node: Node, local: LocalAE, study_uids: Sequence[str], filer: Filer,
         record: Callable[[InstanceOutcome, int], None], prog: _Progress,
         cancel: CancelToken | None, timeout_s: float, ssl_context: ssl.SSLContext | None,
         report: TransferReport) -> None:
    ae = make_ae(local, timeout_s)
    model = StudyRootQueryRetrieveInformationModelGet
    ae.add_requested_context(model)
    for sop_class in GET_STORAGE_CLASSES:
        ae.add_requested_context(sop_class, list(READABLE_TRANSFER_SYNTAXES))
    roles = [build_role(sop_class, scp_role=True) for sop_class in GET_STORAGE_CLASSES]

    def on_store(event: evt.Event) -> int:
        data = event.encoded_dataset()
        outcome = filer.file_bytes(data)
        record(outcome, len(data))
        return outcome.status

    with _associate(ae, node, local, timeout_s, ext_neg=roles,
                    handlers=[(evt.EVT_C_STORE, on_store)], ssl_context=ssl_context) as assoc:
        # pynetdicom's reader thread sleeps 1 ms whenever it found nothing to read: once
        # per instance while the PACS sends the next one. 0.1 ms cuts ~25 % off a C-GET
        # of many instances on loopback; the association lives only for this retrieve.
        if hasattr(assoc.dul, "_run_loop_delay"):
            assoc.dul._run_loop_delay = FAST_LOOP_DELAY_S
        _require(assoc, node, model)
        for uid in study_uids:
            if cancel is not None:
                cancel.raise_if_cancelled()
            responses = assoc.send_c_get(_level_study(uid), model, msg_id=1)
            _responses(node, "C-GET", responses, prog, cancel, model, assoc, report)


def _move(node: Node, local: LocalAE, study_uids: Sequence[str], filer: Filer,
          record: Callable[[InstanceOutcome, int], None], prog: _Progress,
          cancel: CancelToken | None, timeout_s: float, ssl_context: ssl.SSLContext | None,
          report: TransferReport, scp: Any) -> None:
    from net.scp import ScpConfig, StorageSCP

    own = None
    if scp is None:
        own = StorageSCP(ScpConfig(ae_title=local.ae_title, port=local.port, bind=local.bind,
                                   allowed_aes=[node.ae_title]), filer)
        own.start()
        scp = own
    listener = scp.add_listener(lambda outcome, size: record(outcome, size))
    try:
        ae = make_ae(local, timeout_s)
        model = StudyRootQueryRetrieveInformationModelMove
        ae.add_requested_context(model)
        with _associate(ae, node, local, timeout_s, ssl_context=ssl_context) as assoc:
            _require(assoc, node, model)
            for uid in study_uids:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                responses = assoc.send_c_move(_level_study(uid), local.ae_title, model,
                                              msg_id=1)
                _responses(node, "C-MOVE", responses, prog, cancel, model, assoc, report)
    finally:
        scp.remove_listener(listener)
        if own is not None:
            own.stop()
