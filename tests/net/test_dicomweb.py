"""DICOMweb against a real Orthanc with its DICOMweb plugin: STOW-RS store (per-instance
outcomes, a refusal named), QIDO-RS search by patient name at each level (the same rows as
C-FIND), WADO-RS retrieve into a fresh library (byte-identical pixel data, loads as a
Volume, resumes without duplicates), and the failures: timeout, HTTP status, no proxy from
the environment, no credentials in messages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from app.importer import import_paths
from core.progress import CancelToken
from net.dimse import QueryKeys, find
from net.errors import NetworkError
from net.filing import NETWORK_FOLDER, Filer
from net.nodes import LocalAE, Node
from net.send import NOT_ATTEMPTED, send
from net.transfer import CANNOT_UNDERSTAND, SUCCESS
from net.web import web_retrieve, web_search, web_send
from store import Library
from tests.conftest import REQUIRE_SHARED, skip_or_fail
from tests.net.conftest import (
    DICOMWEB_PLUGIN,
    LIDC_INSTANCES,
    Orthanc,
    free_port,
    launch_orthanc,
    lidc_files,
)

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))  # PatientName CompressedSamples^CT1
LIDC_STUDY = "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178"


@pytest.fixture(scope="module")
def web_pacs(orthanc: Orthanc) -> Orthanc:
    """The module's Orthanc, with its DICOMweb plugin (skip, or fail in CI, without it)."""
    if not DICOMWEB_PLUGIN.exists():
        skip_or_fail(f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}; "
                     "Debian package `orthanc-dicomweb`)", REQUIRE_SHARED)
    return orthanc


def _web(peer: Orthanc, name: str = "web") -> Node:
    return Node(name=name, dicomweb_url=peer.dicomweb_url)


@pytest.fixture(scope="module")
def stored_lidc(web_pacs: Orthanc, lidc_0001: Path) -> Orthanc:
    """LIDC-IDRI-0001 and CT_small stored in the module's Orthanc by STOW-RS (via send())."""
    if not web_pacs.instances():
        report = send(_web(web_pacs), LocalAE(), [*lidc_files(lidc_0001), CT_SMALL])
        assert report.ok, report.summary()
    return web_pacs


def test_stow_rs_stores_every_instance_and_orthanc_lists_them(
        stored_lidc: Orthanc, lidc_0001: Path) -> None:
    assert len(stored_lidc.instances()) == LIDC_INSTANCES + 1
    series = stored_lidc.rest("POST", "/tools/lookup", pydicom.dcmread(
        lidc_files(lidc_0001)[0], stop_before_pixels=True).SeriesInstanceUID.encode())
    listed = stored_lidc.rest("GET", f"/series/{series[0]['ID']}")
    assert len(listed["Instances"]) == LIDC_INSTANCES


def test_stow_rs_names_the_refused_instance_and_reports_the_others(
        web_pacs: Orthanc, tmp_path: Path) -> None:
    mr = Path(get_testdata_file("MR_small.dcm"))
    broken = pydicom.dcmread(CT_SMALL)
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del broken.SeriesInstanceUID
    broken_path = tmp_path / "no-series.dcm"
    broken.save_as(broken_path)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 300)
    paths = [mr, broken_path, junk]
    seen: list[float] = []
    report = web_send(_web(web_pacs), paths, lambda f, m="": seen.append(f))
    assert [o.path for o in report.instances] == paths
    ok, refused, unreadable = report.instances
    assert ok.ok and ok.status == SUCCESS
    assert ok.sop_instance_uid == pydicom.dcmread(mr, stop_before_pixels=True).SOPInstanceUID
    assert not refused.ok and refused.status == CANNOT_UNDERSTAND
    assert broken.SOPInstanceUID in refused.message and "0xC000" in refused.message
    assert unreadable.status == NOT_ATTEMPTED and str(junk) in unreadable.message
    assert seen[-1] == pytest.approx(1.0) and not report.ok and report.error is None


@pytest.mark.parametrize("level", ["PATIENT", "STUDY", "SERIES"])
def test_qido_rs_search_gives_the_rows_c_find_gives(stored_lidc: Orthanc, level: str) -> None:
    keys = QueryKeys(patient_name="CT1")
    web = _web(stored_lidc)
    dimse = Node(name="dimse", ae_title=stored_lidc.aet, host=stored_lidc.host,
                 port=stored_lidc.dicom_port)
    if level == "SERIES":  # series are searched within a study, as C-FIND does
        keys = QueryKeys(study_uid=LIDC_STUDY)
    rows = web_search(web, level, keys)  # type: ignore[arg-type]
    expected = find(dimse, LocalAE(), level, keys)  # type: ignore[arg-type]
    assert len(rows) == 1
    if level == "SERIES":
        assert rows[0]["SeriesInstanceUID"] and rows[0]["Modality"] == "CT"
        assert rows[0]["NumberOfSeriesRelatedInstances"] == str(LIDC_INSTANCES)
    else:
        assert rows[0]["PatientName"] == "CompressedSamples^CT1"
        assert rows[0]["PatientID"] == "1CT1"
    # The same keys and values as C-FIND against the same PACS.
    for kw in set(rows[0]) & set(expected[0]):
        assert rows[0][kw] == expected[0][kw], kw
    assert set(rows[0]) <= set(expected[0]) | {"NumberOfPatientRelatedStudies"}
    assert web_search(web, "STUDY", QueryKeys(patient_name="Nobody^Here")) == []


def _lidc_pixels(folder: Path) -> dict[str, bytes]:
    return {str(ds.SOPInstanceUID): ds.PixelData
            for ds in (pydicom.dcmread(p) for p in lidc_files(folder))}


def test_wado_rs_retrieve_into_a_fresh_library_resumes_without_duplicates(
        stored_lidc: Orthanc, lidc_0001: Path, library_dir: Path) -> None:
    from dicomio.load import read_volume

    node = _web(stored_lidc)
    token = CancelToken()

    def stop_early(fraction: float, message: str = "") -> None:
        if fraction >= 40 / LIDC_INSTANCES:
            token.cancel()

    Library.open(library_dir).close()  # the user's library exists before a retrieve
    filer = Filer.for_library(library_dir, import_paths)
    first = web_retrieve(node, [LIDC_STUDY], filer, stop_early, token)
    filer.close()
    assert first.cancelled and len(first.instances) == LIDC_INSTANCES  # all named
    received = [o for o in first.instances if o.ok]
    assert 40 <= len(received) < LIDC_INSTANCES
    assert {o.status for o in first.instances if not o.ok} == {NOT_ATTEMPTED}

    seen: list[str] = []
    filer = Filer.for_library(library_dir, import_paths)
    second = web_retrieve(node, [LIDC_STUDY], filer, lambda f, m="": seen.append(m))
    filer.close()
    assert second.ok, second.summary()
    assert sum(o.message == "already in the library" for o in second.instances) == len(received)
    assert second.bytes > 0 and "MB/s" in seen[-1]

    files = sorted((library_dir / NETWORK_FOLDER).rglob("*.dcm"))
    assert len(files) == LIDC_INSTANCES  # no duplicates
    source = _lidc_pixels(lidc_0001)
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.PixelData == source[str(ds.SOPInstanceUID)]  # byte-identical
    with Library.open(library_dir) as lib:
        series = [s for st in lib.studies() for s in lib.series(st)]
        assert [s.num_instances for s in series] == [LIDC_INSTANCES]
        volume = read_volume([s.source for s in lib.series_instances(series[0].id)])
    assert volume.array.shape == (LIDC_INSTANCES, 512, 512)
    original = read_volume(lidc_files(lidc_0001))
    assert np.array_equal(volume.array, original.array)
    assert np.allclose(volume.affine, original.affine)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_a_server_that_never_answers_times_out_with_a_clear_message(
        silent_server: int) -> None:
    node = Node(name="mute", dicomweb_url=f"http://127.0.0.1:{silent_server}/dicom-web")
    with pytest.raises(NetworkError) as err:
        web_search(node, "STUDY", QueryKeys(patient_name="x"), timeout_s=1)
    assert "did not answer within 1 s" in str(err.value)
    assert f"http://127.0.0.1:{silent_server}/dicom-web" in str(err.value)


def test_http_errors_name_the_url_and_status_but_never_credentials(
        web_pacs: Orthanc) -> None:
    secret = "s3cret-pass"
    url = f"http://reader:{secret}@127.0.0.1:{web_pacs.http_port}/no-such-root?token={secret}"
    with pytest.raises(NetworkError) as err:
        web_search(Node(name="wrong", dicomweb_url=url), "STUDY", QueryKeys())
    text = str(err.value)
    assert "HTTP 404" in text and f"127.0.0.1:{web_pacs.http_port}/no-such-root" in text
    assert secret not in text and "reader" not in text

    closed = Node(name="closed", dicomweb_url=f"http://127.0.0.1:{free_port()}/dicom-web")
    with pytest.raises(NetworkError, match="cannot connect to node 'closed'"):
        web_search(closed, "STUDY", QueryKeys())


def test_proxy_variables_from_the_environment_are_not_used(
        stored_lidc: Orthanc, monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, dead_proxy)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    # The environment is live: a default requests call goes to the dead proxy and fails.
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get(f"{stored_lidc.dicomweb_url}/studies", timeout=5)
    rows = web_search(_web(stored_lidc), "STUDY", QueryKeys(patient_name="CT1"))
    assert [r["PatientID"] for r in rows] == ["1CT1"]


def test_a_dimse_only_call_on_a_web_node_and_back_is_refused_clearly(tmp_path: Path) -> None:
    dimse = Node(name="dimse", ae_title="PACS", host="127.0.0.1", port=104)
    with pytest.raises(NetworkError, match="is a DIMSE node"):
        web_search(dimse, "STUDY", QueryKeys())
    with pytest.raises(NetworkError, match="is a DIMSE node"):
        web_retrieve(dimse, ["1.2.3"], Filer(tmp_path, None))


def test_a_stopped_web_pacs_mid_retrieve_keeps_what_arrived(
        lidc_0001: Path, tmp_path: Path, library_dir: Path) -> None:
    if not DICOMWEB_PLUGIN.exists():
        skip_or_fail("the Orthanc DICOMweb plugin is not installed", REQUIRE_SHARED)
    peer = launch_orthanc(tmp_path / "dying")
    try:
        peer.upload(lidc_files(lidc_0001))

        def kill(fraction: float, message: str = "") -> None:
            if fraction >= 20 / LIDC_INSTANCES and peer.process and peer.process.poll() is None:
                peer.process.kill()
                peer.process.wait(10)

        filer = Filer(library_dir, None)
        report = web_retrieve(_web(peer, "dying"), [LIDC_STUDY], filer, kill, timeout_s=5)
    finally:
        peer.stop()
    assert len(report.instances) == LIDC_INSTANCES
    arrived = [o for o in report.instances if o.ok]
    assert 20 <= len(arrived) < LIDC_INSTANCES
    assert report.error is not None and "'dying'" in report.error
    assert "stopped sending series" in report.error or "cannot connect" in report.error
    # The instance cut in the middle is refused as truncated by the Filer, never filed.
    assert [o for o in report.instances if not o.ok and not (
        o.status == NOT_ATTEMPTED and "not received" in o.message) and not (
        o.status == CANNOT_UNDERSTAND and "truncated" in o.message and o.path is None)] == []
    assert all(o.path is not None and o.path.exists() for o in arrived)


def test_retrieving_a_study_the_pacs_does_not_have_says_so(
        stored_lidc: Orthanc, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"has no study 1\.2\.3\.4"):
        web_retrieve(_web(stored_lidc), ["1.2.3.4"], Filer(tmp_path, None))


def test_lucida_send_to_a_dicomweb_node_uses_stow_rs(
        web_pacs: Orthanc, library_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from net.nodes import add_node

    us = Path(get_testdata_file("US1_UNCR.dcm"))
    with Library.open(library_dir) as lib:
        add_node(lib, _web(web_pacs, "webpacs"))
    assert main(["send", "webpacs", str(us)]) == 0, capsys.readouterr().err
    assert "send webpacs: 1/1 instances" in capsys.readouterr().out
    uid = pydicom.dcmread(us, stop_before_pixels=True).SOPInstanceUID
    found = web_pacs.rest("POST", "/tools/lookup", uid.encode())
    assert [f["Type"] for f in found] == ["Instance"]


def test_a_stow_rs_refused_by_http_fails_that_request_and_leaves_the_rest_not_attempted(
        web_pacs: Orthanc, lidc_0001: Path) -> None:
    from net.send import NO_RESPONSE
    from net.web import STOW_BATCH

    wrong = Node(name="wrongroot",
                 dicomweb_url=f"http://pacs:pw@127.0.0.1:{web_pacs.http_port}/not-dicom-web")
    paths = lidc_files(lidc_0001)[:STOW_BATCH + 4]
    report = web_send(wrong, paths)
    assert len(report.instances) == len(paths) and not any(o.ok for o in report.instances)
    assert report.error is not None and "HTTP 404" in report.error and "pw" not in report.error
    first = report.instances[:STOW_BATCH]  # the request that was refused
    assert all(o.status == NO_RESPONSE and "HTTP 404" in o.message and o.sop_instance_uid
               for o in first)
    assert all(o.status == NOT_ATTEMPTED and o.path == p
               for o, p in zip(report.instances[STOW_BATCH:], paths[STOW_BATCH:], strict=True))
