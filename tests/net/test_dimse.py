"""DIMSE against a real Orthanc holding LIDC-IDRI-0001: echo, find, C-GET, C-MOVE."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.importer import import_paths, series_sources
from core.progress import CancelToken
from dicomio.load import read_volume
from net.dimse import QueryKeys, echo, find, retrieve
from net.filing import NETWORK_FOLDER, Filer
from net.nodes import LocalAE, Node
from store import Library
from tests.net.conftest import LIDC_INSTANCES, Orthanc, lidc_files

STUDY_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178"
SERIES_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


def node_of(peer: Orthanc) -> Node:
    return Node(name="orthanc", ae_title=peer.aet, host=peer.host, port=peer.dicom_port)


def local_of(peer: Orthanc) -> LocalAE:
    return LocalAE(ae_title="LUCIDA", port=peer.lucida_port)


def fresh_filer(library_dir: Path, **kwargs: float) -> Filer:
    Library.open(library_dir).close()
    return Filer.for_library(library_dir, import_paths, **kwargs)


def test_echo(orthanc: Orthanc) -> None:
    seconds = echo(node_of(orthanc), local_of(orthanc))
    assert 0 < seconds < 10


def test_find_at_each_level(orthanc_lidc: Orthanc) -> None:
    node, local = node_of(orthanc_lidc), local_of(orthanc_lidc)
    patients = find(node, local, "PATIENT", QueryKeys(patient_id="LIDC-IDRI-0001"))
    assert [p["PatientID"] for p in patients] == ["LIDC-IDRI-0001"]
    keys = QueryKeys(patient_id="LIDC-IDRI-0001", date_from="1999-01-01",
                     date_to="20010101", modality="CT", accession="2819497684894126")
    studies = find(node, local, "STUDY", keys)
    assert len(studies) == 1
    study = studies[0]
    assert study["StudyInstanceUID"] == STUDY_UID
    assert study["NumberOfStudyRelatedInstances"] == str(LIDC_INSTANCES)
    assert study["ModalitiesInStudy"] == "CT" and study["StudyDate"] == "20000101"
    assert find(node, local, "STUDY", QueryKeys(date_from="20010101")) == []
    assert find(node, local, "STUDY", QueryKeys(modality="MR")) == []
    assert find(node, local, "PATIENT", QueryKeys(patient_id="NOBODY")) == []
    series = find(node, local, "SERIES", QueryKeys(study_uid=STUDY_UID))
    assert [(s["SeriesInstanceUID"], s["Modality"], s["NumberOfSeriesRelatedInstances"])
            for s in series] == [(SERIES_UID, "CT", str(LIDC_INSTANCES))]


def assert_complete_copy(library_dir: Path, lidc: Path) -> None:
    """All 133 instances indexed once, pixel data byte-identical, and the series loads."""
    files = sorted((library_dir / NETWORK_FOLDER).rglob("*.dcm"))
    assert len(files) == LIDC_INSTANCES
    source = {pydicom.dcmread(p).SOPInstanceUID: p for p in lidc_files(lidc)}
    for path in files:
        got = pydicom.dcmread(path)
        assert got.PixelData == pydicom.dcmread(source[got.SOPInstanceUID]).PixelData
    with Library.open(library_dir) as lib:
        assert lib.counts()["instances"] == LIDC_INSTANCES
        (row,) = lib.all_series()
        assert row.series_uid == SERIES_UID and row.num_instances == LIDC_INSTANCES
        volume = read_volume(series_sources(lib, row.id))
    reference = read_volume(lidc_files(lidc))
    assert volume.array.shape == (LIDC_INSTANCES, 512, 512)
    assert np.array_equal(volume.array, reference.array)
    assert np.allclose(volume.affine, reference.affine)


@pytest.mark.shared
def test_c_get_brings_the_whole_study(orthanc_lidc: Orthanc, lidc_0001: Path,
                                      library_dir: Path) -> None:
    filer = fresh_filer(library_dir, batch_size=16, batch_interval_s=60)
    seen: list[tuple[float, str]] = []
    indexed_while_arriving: list[int] = []

    def progress(fraction: float, message: str = "") -> None:
        seen.append((fraction, message))
        if len(seen) == 60 and not indexed_while_arriving:
            # The viewer can open the series before the retrieve ends: poll the library.
            for _ in range(100):
                with Library.open(library_dir) as lib:
                    if lib.counts()["instances"]:
                        indexed_while_arriving.append(lib.counts()["instances"])
                        break
                threading.Event().wait(0.05)

    try:
        report = retrieve(node_of(orthanc_lidc), local_of(orthanc_lidc), [STUDY_UID], filer,
                          method="get", progress=progress)
    finally:
        filer.close()
    assert report.ok, report.summary()
    assert len(report.instances) == LIDC_INSTANCES and report.mb_per_s > 0
    assert report.bytes > 60e6
    assert indexed_while_arriving and indexed_while_arriving[0] >= 16
    assert seen[-1][0] == pytest.approx(1.0)
    assert any(m.startswith(f"{LIDC_INSTANCES}/{LIDC_INSTANCES} instances") for _, m in seen)
    assert_complete_copy(library_dir, lidc_0001)


@pytest.mark.shared
def test_c_move_brings_the_whole_study(orthanc_lidc: Orthanc, lidc_0001: Path,
                                       library_dir: Path) -> None:
    filer = fresh_filer(library_dir)
    try:
        report = retrieve(node_of(orthanc_lidc), local_of(orthanc_lidc), [STUDY_UID], filer,
                          method="move")
    finally:
        filer.close()
    assert report.ok, report.summary()
    assert len(report.instances) == LIDC_INSTANCES
    assert_complete_copy(library_dir, lidc_0001)


@pytest.mark.shared
def test_cancel_then_resume_without_duplicates(orthanc_lidc: Orthanc, lidc_0001: Path,
                                               library_dir: Path) -> None:
    node, local = node_of(orthanc_lidc), local_of(orthanc_lidc)
    cancel = CancelToken()

    def progress(fraction: float, message: str = "") -> None:
        if fraction > 0.1:
            cancel.cancel()

    filer = fresh_filer(library_dir)
    try:
        first = retrieve(node, local, [STUDY_UID], filer, progress=progress, cancel=cancel)
    finally:
        filer.close()
    assert first.cancelled and not first.ok
    kept = len([o for o in first.instances if o.ok])
    assert 0 < kept < LIDC_INSTANCES
    filer = fresh_filer(library_dir)
    try:
        second = retrieve(node, local, [STUDY_UID], filer)
    finally:
        filer.close()
    assert second.ok, second.summary()
    skipped = [o for o in second.instances if o.message == "already in the library"]
    assert len(skipped) == kept
    assert_complete_copy(library_dir, lidc_0001)


@pytest.mark.shared
def test_c_move_to_a_destination_the_pacs_does_not_know(orthanc_lidc: Orthanc,
                                                        library_dir: Path) -> None:
    from net.errors import NetworkError

    stranger = LocalAE(ae_title="STRANGER", port=orthanc_lidc.lucida_port)
    filer = fresh_filer(library_dir)
    try:
        with pytest.raises(NetworkError, match=r"'orthanc'.*(does not know the destination"
                                               r"|refuses this request from Lucida's AE "
                                               r"title 'STRANGER')"):
            retrieve(node_of(orthanc_lidc), stranger, [STUDY_UID], filer, method="move",
                     timeout_s=10)
    finally:
        filer.close()
    assert not (library_dir / NETWORK_FOLDER).exists()
