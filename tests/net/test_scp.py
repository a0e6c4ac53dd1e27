"""Lucida's storage SCP: Orthanc pushes to it; strangers, hostile data and bad TLS are refused."""

from __future__ import annotations

import socket
import ssl
import subprocess
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE

from app.importer import import_paths
from net.dimse import echo
from net.errors import NetworkError
from net.filing import NETWORK_FOLDER, Filer
from net.nodes import LocalAE, Node
from net.scp import ScpConfig, StorageSCP
from net.transfer import InstanceOutcome
from store import Library
from tests.net.conftest import LIDC_INSTANCES, Orthanc

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _stored(library_dir: Path) -> list[Path]:
    return sorted((library_dir / NETWORK_FOLDER).rglob("*.dcm"))


@pytest.fixture
def make_scp(library_dir: Path) -> Iterator[object]:
    Library.open(library_dir).close()
    made: list[StorageSCP] = []

    def make(**kwargs: object) -> StorageSCP:
        config = ScpConfig(**{"ae_title": "LUCIDA", "port": 0,  # type: ignore[arg-type]
                              "allowed_aes": ["ORTHANC", "FRIEND"], **kwargs})
        scp = StorageSCP(config, Filer.for_library(library_dir, import_paths))
        scp.start()
        made.append(scp)
        return scp

    yield make
    for scp in made:
        scp.stop()
        scp.filer.close()


def _store(port: int, paths: list[Path], calling: str = "FRIEND",
           contexts: tuple[str, ...] = (CT_IMAGE,)) -> list[int]:
    """C-STORE files as they are on disk (pynetdicom sends their bytes unparsed)."""
    ae = AE(ae_title=calling)
    for uid in contexts:
        ae.add_requested_context(uid, [EXPLICIT_LE, "1.2.840.10008.1.2"])
    assoc = ae.associate("127.0.0.1", port, ae_title="LUCIDA")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(path).Status) for path in paths]
    finally:
        assoc.release()


def _ct_file(folder: Path, n: int = 1) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.99.{n}"
    path = folder / f"ct{n}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.shared
def test_orthanc_pushes_a_study_into_the_library(orthanc_lidc: Orthanc, make_scp: object,
                                                 library_dir: Path) -> None:
    received: list[InstanceOutcome] = []
    scp = make_scp(port=orthanc_lidc.lucida_port)  # type: ignore[operator]
    scp.on_received = received.append
    assert scp.is_running and scp.port == orthanc_lidc.lucida_port
    study = orthanc_lidc.studies()
    assert len(study) == 1
    orthanc_lidc.push("lucida", study)
    scp.filer.flush()
    assert len(received) == LIDC_INSTANCES and all(o.ok for o in received)
    assert len(_stored(library_dir)) == LIDC_INSTANCES
    with Library.open(library_dir) as lib:
        assert lib.counts()["instances"] == LIDC_INSTANCES


@pytest.mark.shared
def test_a_caller_not_on_the_allow_list_is_rejected(orthanc_lidc: Orthanc, make_scp: object,
                                                    library_dir: Path) -> None:
    scp = make_scp(port=orthanc_lidc.lucida_port,  # type: ignore[operator]
                   allowed_aes=["SOMEONE"])
    with pytest.raises(urllib.error.HTTPError):
        orthanc_lidc.push("lucida", orthanc_lidc.studies(), timeout=60)
    node = Node(name="lucida", ae_title="LUCIDA", host="127.0.0.1", port=scp.port)
    with pytest.raises(NetworkError, match=r"rejected the association.*'INTRUDER'"):
        echo(node, LocalAE(ae_title="INTRUDER"), timeout_s=5)
    assert echo(node, LocalAE(ae_title="SOMEONE"), timeout_s=5) > 0
    assert _stored(library_dir) == []
    with Library.open(library_dir) as lib:
        assert lib.counts()["instances"] == 0


def test_hostile_instances_are_refused_and_the_scp_keeps_serving(
        make_scp: object, library_dir: Path, tmp_path: Path) -> None:
    scp = make_scp(max_instance_mb=0.1)  # type: ignore[operator]
    good = _ct_file(tmp_path, 1)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(_ct_file(tmp_path, 2).read_bytes()[:-3000])
    big = pydicom.dcmread(good)
    big.SOPInstanceUID = big.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.99.3"
    big.add_new(0x00091010, "OB", b"\0" * 200_000)  # a private blob: 0.24 MB > 0.1 MB
    oversized = tmp_path / "big.dcm"
    big.save_as(oversized, enforce_file_format=True)
    statuses = _store(scp.port, [truncated, oversized])
    assert statuses[0] == 0xC000 and statuses[1] == 0xA700

    # A class or a transfer syntax (here MPEG-2) Lucida does not read is not negotiated.
    ae = AE(ae_title="FRIEND")
    ae.add_requested_context(ECG, EXPLICIT_LE)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.2.4.100")
    ae.add_requested_context(CT_IMAGE, EXPLICIT_LE)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="LUCIDA")
    assert [c.abstract_syntax for c in assoc.accepted_contexts] == [CT_IMAGE]
    ecg = pydicom.dcmread(good)
    ecg.SOPClassUID = ECG
    with pytest.raises(ValueError, match="No presentation context"):
        assoc.send_c_store(ecg)
    assoc.release()

    # Garbled A-ASSOCIATE-RQ bytes over a raw socket: dropped, nothing stored.
    with socket.create_connection(("127.0.0.1", scp.port), timeout=5) as raw:
        raw.sendall(b"\x01\x00\x00\x00\x00\x40" + b"\xde\xad\xbe\xef" * 16)
        raw.settimeout(5)
        try:
            answer = raw.recv(64)
        except (ConnectionResetError, TimeoutError):
            answer = b""
        assert not answer or answer[0] in (0x03, 0x07)  # A-ASSOCIATE-RJ or A-ABORT
    assert _stored(library_dir) == []
    assert _store(scp.port, [good]) == [0]  # still serving
    scp.filer.flush()
    (only,) = _stored(library_dir)
    assert pydicom.dcmread(only).SOPInstanceUID == "1.2.826.0.1.3680043.99.1"


def test_the_association_size_limit(make_scp: object, library_dir: Path,
                                    tmp_path: Path) -> None:
    size_mb = _ct_file(tmp_path, 9).stat().st_size / 1e6
    scp = make_scp(max_association_mb=size_mb * 2.5)  # type: ignore[operator]
    statuses = _store(scp.port, [_ct_file(tmp_path, n) for n in (1, 2, 3)])
    assert statuses == [0, 0, 0xA700]
    assert len(_stored(library_dir)) == 2
    assert _store(scp.port, [_ct_file(tmp_path, 4)]) == [0]  # a new association, a new budget


def test_allowed_hosts(make_scp: object, library_dir: Path, tmp_path: Path) -> None:
    """A host off the list gets no association at all (the connection is closed as soon as
    it is accepted); the listed host gets one, and the SCP keeps serving after the refusal."""
    scp = make_scp(allowed_hosts=["10.9.9.9"])  # type: ignore[operator]
    ae = AE(ae_title="FRIEND")
    ae.add_requested_context(CT_IMAGE, EXPLICIT_LE)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="LUCIDA")
    assert not assoc.is_established and not assoc.is_rejected  # closed, never answered
    assert _stored(library_dir) == []
    scp.config.allowed_hosts.append("127.0.0.1")
    assert _store(scp.port, [_ct_file(tmp_path)]) == [0]
    assert len(_stored(library_dir)) == 1


def test_the_scp_listens_on_loopback_by_default(make_scp: object) -> None:
    scp = make_scp()  # type: ignore[operator]
    assert scp.config.bind == "127.0.0.1"
    assert scp._server.server_address[0] == "127.0.0.1"


def test_a_port_in_use_is_a_clear_error(make_scp: object, library_dir: Path) -> None:
    first = make_scp()  # type: ignore[operator]
    second = StorageSCP(ScpConfig(ae_title="LUCIDA", port=first.port, allowed_aes=["X"]),
                        Filer(library_dir, None))
    with pytest.raises(NetworkError, match=f"cannot listen on 127.0.0.1:{first.port}"):
        second.start()
    with pytest.raises(NetworkError, match="at least one allowed calling AE"):
        StorageSCP(ScpConfig(ae_title="LUCIDA", port=0), Filer(library_dir, None)).start()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls(make_scp: object, library_dir: Path, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    scp = make_scp(tls_cert=cert, tls_key=key)  # type: ignore[operator]
    node = Node(name="lucida", ae_title="LUCIDA", host="localhost", port=scp.port, tls=True)
    trusted = ssl.create_default_context(cafile=str(cert))
    assert echo(node, LocalAE(ae_title="FRIEND"), timeout_s=5, ssl_context=trusted) > 0
    with pytest.raises(NetworkError):  # the system's CAs do not know this certificate
        echo(node, LocalAE(ae_title="FRIEND"), timeout_s=5)
    plain = node.model_copy(update={"tls": False})
    with pytest.raises(NetworkError):  # a plain-text caller gets nowhere
        echo(plain, LocalAE(ae_title="FRIEND"), timeout_s=3)
    with pytest.raises(NetworkError, match="cannot load the TLS certificate"):
        StorageSCP(ScpConfig(ae_title="LUCIDA", port=0, allowed_aes=["A"], tls_cert=key,
                             tls_key=cert), Filer(library_dir, None)).start()
