"""DICOMweb (dicomweb-client): QIDO-RS search, WADO-RS retrieve, STOW-RS send.

For a PACS that speaks HTTP only. The results have the same shapes as the DIMSE
calls: search gives what ``net.dimse.find`` gives, retrieve files through the same
:class:`net.filing.Filer`, send reports one outcome per instance.

Offline rule: only the node's own URL is contacted. The HTTP session ignores the
environment (``trust_env = False``: no proxy variables, no .netrc), and nothing is
retried behind the user's back. Failures are :class:`NetworkError` naming the URL
without any credentials in it, and the HTTP status when there was one.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pydicom
import requests
from dicomweb_client import DICOMwebClient
from pydicom import Dataset

from core.progress import CancelToken, ProgressSink
from net.dimse import _RETURN_KEYS, Level, QueryKeys, _as_text, _dicom_date
from net.errors import NetworkError
from net.filing import Filer
from net.nodes import Node
from net.send import NO_RESPONSE, NOT_ATTEMPTED, Source, status_meaning
from net.transfer import PROCESSING_FAILURE, SUCCESS, InstanceOutcome, TransferReport
from store.records import StoredSource

#: WADO-RS: the instances as the server stores them (byte-identical pixel data).
_AS_STORED = (("application/dicom", "*"),)
#: STOW-RS: instances per request (progress and cancel between requests).
STOW_BATCH = 16
_STOW_BATCH_BYTES = 64 * 1024 * 1024


def safe_url(url: str) -> str:
    """``url`` without user, password and query (they may hold credentials or tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# Characters dicomweb-client percent-encodes in query values that RFC 3986 allows
# literally in a query, and that urllib3 then leaves as they are.
_LITERAL_IN_QUERY = {f"%{ord(c):02X}": c for c in "*?,:@/()!$';"}
_ENCODED = re.compile("|".join(re.escape(k) for k in _LITERAL_IN_QUERY), re.IGNORECASE)


class _Session(requests.Session):
    """A requests session that sends QIDO-RS wildcards as typed.

    dicomweb-client percent-encodes ``*`` (``%2A``); Orthanc's DICOMweb plugin (1.7)
    does not decode query values and then matches nothing. Only characters RFC 3986
    allows in a query are decoded (never ``&``, ``=``, ``+``, ``%``, ``#`` or a space),
    so the query means the same to a server that does decode. (That plugin still cannot
    match a ``^`` or a space, which must be encoded; ``*`` matches them.)
    """

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        url = prepared.url or ""
        if "?" in url:
            base, query = url.split("?", 1)
            literal = _ENCODED.sub(lambda m: _LITERAL_IN_QUERY[m.group(0).upper()], query)
            prepared.url = f"{base}?{literal}"
        return prepared


def _session() -> requests.Session:
    session = _Session()
    # The offline rule, explicitly: no HTTP(S)_PROXY / ALL_PROXY from the environment,
    # no .netrc credentials, no CA bundle override; only the node's URL is contacted.
    session.trust_env = False
    session.proxies.clear()
    return session


def client(node: Node, timeout_s: float = 30.0) -> DICOMwebClient:
    """A dicomweb-client for ``node`` (a DICOMweb node), isolated from the environment."""
    if node.kind != "dicomweb":
        raise NetworkError(f"node {node.name!r} ({node.describe()}) is a DIMSE node; "
                           "DICOMweb needs a node with a DICOMweb URL")
    web = DICOMwebClient(node.dicomweb_url, session=_session(), timeout=timeout_s)
    web.set_http_retry_params(retry=False)
    return web


def _where(node: Node, url: str | None = None) -> str:
    return f"node {node.name!r} ({safe_url(url or node.dicomweb_url)})"


@contextlib.contextmanager
def _http(node: Node, doing: str, timeout_s: float) -> Iterator[None]:
    """Turn what requests and dicomweb-client raise into one NetworkError line."""
    try:
        yield
    except requests.HTTPError as exc:
        response = exc.response
        status = response.status_code if response is not None else "?"
        reason = (response.reason or "") if response is not None else ""
        url = response.url if response is not None else None
        raise NetworkError(f"{_where(node, url)} answered HTTP {status} {reason} while "
                           f"{doing}") from None
    except requests.Timeout:
        raise NetworkError(f"{_where(node)} did not answer within {timeout_s:g} s while "
                           f"{doing}: is the server running and the URL right?") from None
    except requests.ConnectionError:
        raise NetworkError(f"cannot connect to {_where(node)} while {doing}: is the server "
                           "running and the URL right?") from None
    except requests.RequestException as exc:
        raise NetworkError(f"{_where(node)}: HTTP failure while {doing} "
                           f"({type(exc).__name__})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not DICOM JSON
        raise NetworkError(f"{_where(node)} sent an answer that is not DICOMweb while "
                           f"{doing} ({type(exc).__name__})") from None


def _dataset(item: dict[str, Any]) -> Dataset:
    return Dataset.from_json(item)


def _values(item: dict[str, Any], keywords: Sequence[str]) -> dict[str, str]:
    ds = _dataset(item)
    return {kw: _as_text(ds.get(kw)) for kw in keywords if kw in ds}


def _filters(level: Level, keys: QueryKeys) -> dict[str, str]:
    """The same matching as ``net.dimse.find`` at ``level``, as QIDO-RS query keys."""
    out: dict[str, str] = {}
    name = keys.patient_name.strip()
    if name and level in ("PATIENT", "STUDY"):
        out["PatientName"] = name if any(c in name for c in "*?") else f"*{name}*"
    if keys.patient_id and level in ("PATIENT", "STUDY"):
        out["PatientID"] = keys.patient_id
    if (keys.date_from or keys.date_to) and level != "PATIENT":
        span = f"{_dicom_date(keys.date_from)}-{_dicom_date(keys.date_to)}"
        out["StudyDate" if level == "STUDY" else "SeriesDate"] = span
    if keys.modality:
        if level == "STUDY":
            out["ModalitiesInStudy"] = keys.modality
        elif level == "SERIES":
            out["Modality"] = keys.modality
    if keys.accession and level == "STUDY":
        out["AccessionNumber"] = keys.accession
    return out


def web_search(node: Node, level: Level, keys: QueryKeys, *, timeout_s: float = 30.0,
               max_results: int = 1000) -> list[dict[str, str]]:
    """QIDO-RS at ``level``: one dict per match keyed by DICOM keyword, as ``find`` gives.

    QIDO-RS has no patient resource: patients are the distinct patients of the studies
    that match, with their study count.
    """
    if level not in _RETURN_KEYS:
        raise NetworkError(f"query level {level!r} must be PATIENT, STUDY or SERIES")
    web = client(node, timeout_s)
    filters = _filters(level, keys)
    with _http(node, f"searching ({level.lower()} level)", timeout_s):
        if level == "SERIES":
            found = web.search_for_series(study_instance_uid=keys.study_uid or None,
                                          fields=list(_RETURN_KEYS["SERIES"]),
                                          search_filters=filters, limit=max_results)
            return [_values(item, _RETURN_KEYS["SERIES"]) for item in found][:max_results]
        if keys.study_uid:
            filters["StudyInstanceUID"] = keys.study_uid
        wanted = list(dict.fromkeys(_RETURN_KEYS["STUDY"] + _RETURN_KEYS["PATIENT"]))
        studies = web.search_for_studies(fields=wanted, search_filters=filters,
                                         limit=max_results)
        rows = [_values(item, _RETURN_KEYS[level]) for item in studies]
    if level == "STUDY":
        return rows[:max_results]
    patients: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        key = (row.get("PatientID", ""), row.get("PatientName", ""))
        patient = patients.setdefault(key, row | {"NumberOfPatientRelatedStudies": "0"})
        patient["NumberOfPatientRelatedStudies"] = str(
            int(patient["NumberOfPatientRelatedStudies"]) + 1)
    return list(patients.values())[:max_results]


# ---------------------------------------------------------------------- retrieve


def _uid(item: dict[str, Any], keyword: str) -> str:
    return str(_dataset(item).get(keyword, ""))


def web_retrieve(node: Node, study_uids: Sequence[str], filer: Filer,
                 progress: ProgressSink | None = None, cancel: CancelToken | None = None,
                 *, timeout_s: float = 30.0) -> TransferReport:
    """WADO-RS whole studies, series by series; each instance is filed as it arrives.

    The studies' instances are listed first (QIDO-RS), so the report names every one:
    instances the library already has are skipped without downloading them (a stopped
    retrieve resumes without duplicates), and what did not arrive is named. Failing to
    list raises NetworkError; a stop part way returns the report with ``error`` set.
    """
    report = TransferReport("retrieve", node.name)
    started = time.perf_counter()
    web = client(node, timeout_s)
    plan: list[tuple[str, str, list[str]]] = []
    unknown: list[str] = []
    with _http(node, "listing the studies to retrieve", timeout_s):
        for study in study_uids:
            series_items = web.search_for_series(study, fields=["SeriesInstanceUID"])
            if not series_items:
                unknown.append(study)
            for series_item in series_items:
                series = _uid(series_item, "SeriesInstanceUID")
                found = web.search_for_instances(study, series, fields=["SOPInstanceUID"])
                plan.append((study, series, [_uid(i, "SOPInstanceUID") for i in found]))
    if unknown and not plan:
        raise NetworkError(f"{_where(node)} has no study {', '.join(unknown)}")
    total = sum(len(sops) for _, _, sops in plan)
    outcomes: dict[str, InstanceOutcome] = {}

    def record(uid: str, outcome: InstanceOutcome, size: int = 0) -> None:
        outcomes[uid] = outcome
        report.bytes += size
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-6)
            progress(len(outcomes) / max(total, 1),
                     f"{len(outcomes)}/{total} instances, {report.bytes / 1e6 / elapsed:.1f} MB/s")

    try:
        for study, series, sops in plan:
            for uid in sops:
                if filer.has(uid):
                    record(uid, InstanceOutcome(uid, SUCCESS, True, "already in the library"))
            missing = [uid for uid in sops if uid not in outcomes]
            if not missing:
                continue
            with _http(node, f"retrieving series {series}", timeout_s):
                for ds in _instances(web, study, series, missing, len(sops)):
                    if cancel is not None and cancel.cancelled:
                        report.cancelled = True
                        break
                    uid = str(ds.get("SOPInstanceUID", ""))
                    outcome = filer.file(ds)
                    size = outcome.path.stat().st_size if outcome.ok and outcome.path else 0
                    record(uid, outcome, size)
            if report.cancelled:
                break
            short = [uid for uid in missing if uid not in outcomes]
            if short:  # the stream ended early: the server stopped or dropped them
                raise NetworkError(f"{_where(node)} stopped sending series {series} after "
                                   f"{len(missing) - len(short)} of {len(missing)} instances")
    except NetworkError as exc:
        report.error = str(exc)
    finally:
        filer.flush()
    why = ("cancelled" if report.cancelled else
           f"not received ({report.error})" if report.error else "not received")
    listed = [uid for _, _, sops in plan for uid in sops]
    for uid in listed:
        if uid not in outcomes:
            outcomes[uid] = InstanceOutcome(uid, NOT_ATTEMPTED, False, why)
    listed_set = set(listed)
    # In listed order, then anything the server sent that its listing did not name.
    report.instances = [outcomes[uid] for uid in listed] + [
        o for uid, o in outcomes.items() if uid not in listed_set]
    if unknown and report.error is None:
        report.error = f"{_where(node)} has no study {', '.join(unknown)}"
    if filer.index_errors and report.error is None:
        report.error = filer.index_errors[-1]
    report.elapsed_s = time.perf_counter() - started
    return report


def _instances(web: DICOMwebClient, study: str, series: str, missing: list[str],
               in_series: int) -> Iterator[Dataset]:
    """The whole series streamed, or only the missing instances one by one."""
    if len(missing) == in_series:
        yield from web.iter_series(study, series, media_types=_AS_STORED)
        return
    for uid in missing:
        yield web.retrieve_instance(study, series, uid, media_types=_AS_STORED)


# ---------------------------------------------------------------------- send


def _read(source: Source) -> bytes:
    if isinstance(source, StoredSource):
        with source.open() as fh:
            return fh.read()
    return Path(source).read_bytes()


def _path(source: Source) -> Path:
    return source.path if isinstance(source, StoredSource) else Path(source)


def _stow_outcomes(node: Node, answer: Dataset, batch: list[tuple[str, Path]]
                   ) -> dict[str, InstanceOutcome]:
    """Per-instance outcome from the STOW-RS answer's Referenced / Failed SOP sequences."""
    out: dict[str, InstanceOutcome] = {}
    paths = dict(batch)
    for item in answer.get("ReferencedSOPSequence", []):
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        warning = item.get("WarningReason")
        status = int(warning) if warning is not None else SUCCESS
        message = "sent" if warning is None else f"sent with a warning: {status_meaning(status)}"
        out[uid] = InstanceOutcome(uid, status, True, message, paths.get(uid))
    for item in answer.get("FailedSOPSequence", []):
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        reason = item.get("FailureReason")
        status = int(reason) if reason is not None else PROCESSING_FAILURE
        out[uid] = InstanceOutcome(
            uid, status, False, f"refused by {node.name}: {status_meaning(status)} — {uid} "
            f"({paths.get(uid)})", paths.get(uid))
    return out


def _json_answer(response: requests.Response | None) -> Dataset | None:
    """The STOW-RS answer in an error response, when it is one (not a server's error page)."""
    if response is None or not response.content:
        return None
    try:
        answer = Dataset.from_json(response.json())
    except Exception:  # not DICOM JSON: the HTTP status is all there is
        return None
    if "ReferencedSOPSequence" in answer or "FailedSOPSequence" in answer:
        return answer
    return None


def _store(web: DICOMwebClient, node: Node, datasets: list[Dataset], timeout_s: float
           ) -> Dataset:
    """POST one STOW-RS request; the answer data set, also when the HTTP status is an error
    that carries one (a server refusing some instances answers 400/409 with the list)."""
    with _http(node, "storing instances", timeout_s):
        try:
            return web.store_instances(datasets)
        except requests.HTTPError as exc:
            answer = _json_answer(exc.response)
            if answer is None:
                raise
            return answer


@dataclass
class _Pending:
    index: int
    dataset: Dataset
    uid: str
    path: Path
    size: int


def web_send(node: Node, paths: Sequence[Source], progress: ProgressSink | None = None,
             cancel: CancelToken | None = None, *, timeout_s: float = 30.0) -> TransferReport:
    """STOW-RS every instance in ``paths`` to ``node``, a few per request.

    Complete like ``net.send.send``: every instance gets an outcome; after an HTTP
    failure without a per-instance answer, that request's instances are failed and the
    rest not attempted.
    """
    started = time.perf_counter()
    report = TransferReport("send", node.name)
    web = client(node, timeout_s)
    outcomes: list[InstanceOutcome | None] = [None] * len(paths)
    uids = [""] * len(paths)
    done = 0

    def put(n: int, outcome: InstanceOutcome) -> None:
        nonlocal done
        outcomes[n] = outcome
        done += 1
        if progress is not None:
            progress(done / max(len(paths), 1), f"sent {done} of {len(paths)} to {node.name}")

    batch: list[_Pending] = []

    def flush() -> None:
        try:
            answer = _store(web, node, [p.dataset for p in batch], timeout_s)
        except NetworkError as exc:
            report.error = str(exc)
            for p in batch:
                put(p.index, InstanceOutcome(p.uid, NO_RESPONSE, False,
                                             f"not stored: {exc} — {p.uid} ({p.path})", p.path))
            return
        by_uid = _stow_outcomes(node, answer, [(p.uid, p.path) for p in batch])
        for p in batch:
            outcome = by_uid.get(p.uid) or InstanceOutcome(
                p.uid, NO_RESPONSE, False, f"{node.name} did not say whether it stored "
                f"{p.uid} ({p.path})", p.path)
            if outcome.ok:
                report.bytes += p.size
            put(p.index, outcome)

    for n, source in enumerate(paths):
        if cancel is not None and cancel.cancelled:
            report.cancelled = True
            break
        path = _path(source)
        try:
            raw = _read(source)
            ds = pydicom.dcmread(BytesIO(raw))
            uids[n] = str(ds.SOPInstanceUID)
        except Exception as exc:  # unreadable: this instance's outcome, the rest go on
            put(n, InstanceOutcome("", NOT_ATTEMPTED, False,
                                   f"not sent: {path} is not a readable DICOM instance ({exc})",
                                   path))
            continue
        batch.append(_Pending(n, ds, uids[n], path, len(raw)))
        if len(batch) >= STOW_BATCH or sum(p.size for p in batch) >= _STOW_BATCH_BYTES:
            flush()
            batch.clear()
            if report.error is not None:
                break
    if batch and not report.cancelled:
        flush()
    why = "cancelled" if report.cancelled else f"after an earlier failure ({report.error})"
    for n, source in enumerate(paths):
        if outcomes[n] is None:
            outcomes[n] = InstanceOutcome(uids[n], NOT_ATTEMPTED, False, f"not attempted: {why}",
                                          _path(source))
    report.instances = [o for o in outcomes if o is not None]
    report.elapsed_s = time.perf_counter() - started
    return report
