"""Faults: the PACS stopped mid-retrieve, a peer that never answers, nothing listening."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from app.importer import import_paths
from net.dimse import QueryKeys, echo, find, retrieve
from net.errors import NetworkError
from net.filing import NETWORK_FOLDER, Filer
from net.nodes import LocalAE, Node
from store import Library
from tests.net.conftest import LIDC_INSTANCES, free_port, launch_orthanc, lidc_files
from tests.net.test_dimse import STUDY_UID, assert_complete_copy, local_of, node_of


@pytest.mark.shared
def test_pacs_stopped_mid_retrieve_keeps_the_part_and_resumes(
        tmp_path: Path, lidc_0001: Path, library_dir: Path) -> None:
    peer = launch_orthanc(tmp_path / "pacs")
    try:
        peer.upload(lidc_files(lidc_0001))
        Library.open(library_dir).close()
        done: list[int] = []

        def progress(fraction: float, message: str = "") -> None:
            done.append(1)
            if len(done) == 40:  # the PACS dies part way
                assert peer.process is not None
                peer.process.kill()

        filer = Filer.for_library(library_dir, import_paths)
        try:
            first = retrieve(node_of(peer), local_of(peer), [STUDY_UID], filer,
                             progress=progress, timeout_s=5)
        finally:
            filer.close()
        peer.stop()
        assert first.error is not None and not first.ok
        assert "'orthanc'" in first.error and "C-GET" in first.error
        kept = len([o for o in first.instances if o.ok])
        assert 0 < kept < LIDC_INSTANCES
        with Library.open(library_dir) as lib:
            assert lib.counts()["instances"] == kept  # partial data kept and indexed
        assert len(list((library_dir / NETWORK_FOLDER).rglob("*.dcm"))) == kept

        # The PACS comes back (same storage, new ports): the next try completes the study.
        peer = launch_orthanc(tmp_path / "pacs")
        filer = Filer.for_library(library_dir, import_paths)
        try:
            second = retrieve(node_of(peer), local_of(peer), [STUDY_UID], filer)
        finally:
            filer.close()
        assert second.ok, second.summary()
        assert len([o for o in second.instances if o.message == "already in the library"]) \
            == kept
        assert_complete_copy(library_dir, lidc_0001)
    finally:
        peer.stop()


def test_a_peer_that_never_answers_times_out_with_a_clear_message() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel accepts connections; nobody ever replies
        node = Node(name="silent", ae_title="SILENT", host="127.0.0.1",
                    port=silent.getsockname()[1])
        for call in (lambda: echo(node, LocalAE(), timeout_s=2),
                     lambda: find(node, LocalAE(), "STUDY", QueryKeys(), timeout_s=2)):
            started = time.monotonic()
            with pytest.raises(NetworkError, match=r"'silent'.*did not answer within 2 s"):
                call()
            assert time.monotonic() - started < 6


def test_nothing_listening_is_a_refused_connection() -> None:
    node = Node(name="gone", ae_title="GONE", host="127.0.0.1", port=free_port())
    with pytest.raises(NetworkError, match=r"'gone'.*refused the connection.*running"):
        echo(node, LocalAE(), timeout_s=2)


def test_a_dicomweb_node_is_not_used_for_dimse(tmp_path: Path) -> None:
    node = Node(name="web", dicomweb_url="http://127.0.0.1:1/dicom-web")
    with pytest.raises(NetworkError, match="DICOMweb node"):
        echo(node, LocalAE())
    with pytest.raises(NetworkError, match="DICOMweb node"):
        retrieve(node, LocalAE(), ["1.2.3"], Filer(tmp_path, None))


def test_a_service_the_peer_does_not_offer_is_named(tmp_path: Path) -> None:
    from net.scp import ScpConfig, StorageSCP

    Library.open(tmp_path).close()
    # Lucida's own storage SCP offers C-ECHO and C-STORE only.
    scp = StorageSCP(ScpConfig(ae_title="STORE", port=0, allowed_aes=["LUCIDA"]),
                     Filer(tmp_path, None))
    scp.start()
    try:
        node = Node(name="store-only", ae_title="STORE", host="127.0.0.1", port=scp.port)
        assert echo(node, LocalAE(), timeout_s=5) > 0
        # It refuses an association that asks only for C-FIND...
        with pytest.raises(NetworkError, match=r"'store-only'.*aborted the association: it "
                                               r"may not offer the service asked for"):
            find(node, LocalAE(), "STUDY", QueryKeys(), timeout_s=5)
        # ...and accepts one for C-GET's storage sub-operations, without C-GET itself.
        with pytest.raises(NetworkError, match=r"does not offer C-GET .*try C-MOVE"):
            retrieve(node, LocalAE(), ["1.2.3"], Filer(tmp_path, None), timeout_s=5)
    finally:
        scp.stop()
