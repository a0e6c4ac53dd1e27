"""Send (C-STORE) against a real Orthanc: a library series, a SEG from ../shared, the SEG,
SR and KO Lucida's own sign-off writes, refusals named with their status code, cancel and a
PACS that dies mid-send, every instance always reported; and ``lucida send``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.uid import generate_uid

from app.cli import main
from app.importer import import_paths
from app.settings import PREFERENCES_FILE, Preferences, config_dir, save_preferences
from core.progress import CancelToken
from net.nodes import LocalAE, Node, add_node
from net.send import NO_RESPONSE, NOT_ATTEMPTED, send, series_paths, signoff_paths
from net.transfer import OUT_OF_RESOURCES, SOP_CLASS_NOT_SUPPORTED, SUCCESS
from store import Library
from tests.net.conftest import LIDC_INSTANCES, Orthanc, free_port, launch_orthanc, lidc_files

LOCAL = LocalAE(ae_title="LUCIDA")


def _node(peer: Orthanc, name: str = "pacs") -> Node:
    return Node(name=name, ae_title=peer.aet, host=peer.host, port=peer.dicom_port)


def _sha(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _orthanc_series(peer: Orthanc, series_uid: str) -> dict[str, object]:
    found = peer.rest("POST", "/tools/lookup", series_uid.encode())
    ids = [f["ID"] for f in found if f["Type"] == "Series"]
    assert ids, f"Orthanc does not list series {series_uid}"
    return dict(peer.rest("GET", f"/series/{ids[0]}"))


def _orthanc_instance(peer: Orthanc, sop_uid: str) -> str | None:
    found = peer.rest("POST", "/tools/lookup", sop_uid.encode())
    return next((f["ID"] for f in found if f["Type"] == "Instance"), None)


@pytest.fixture
def lidc_library(lidc_0001: Path, library_dir: Path) -> tuple[Library, int]:
    lib = Library.open(library_dir)
    import_paths(lib, [lidc_0001], actor="tester")
    series = [s for st in lib.studies() for s in lib.series(st)]
    assert len(series) == 1 and series[0].num_instances == LIDC_INSTANCES
    yield lib, series[0].id
    lib.close()


def test_send_a_library_series_and_a_seg(orthanc: Orthanc, lidc_library: tuple[Library, int],
                                         shared_data: Path) -> None:
    lib, series_id = lidc_library
    paths = series_paths(lib, series_id)
    seg = shared_data / "masks" / "LIDC-IDRI-0001_SEG_fedorov" / "nodule.dcm"
    before = _sha([*paths, seg])  # type: ignore[list-item]
    seen: list[float] = []
    report = send(_node(orthanc), LOCAL, [*paths, seg], lambda f, m="": seen.append(f))

    assert report.ok, report.summary()
    assert len(report.instances) == LIDC_INSTANCES + 1
    assert all(o.status == SUCCESS and o.message == "sent" for o in report.instances)
    assert report.bytes == sum(p.stat().st_size for p in before)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    # Orthanc lists them: the whole CT series and the SEG, by their UIDs.
    ct = pydicom.dcmread(paths[0], stop_before_pixels=True)
    assert len(_orthanc_series(orthanc, ct.SeriesInstanceUID)["Instances"]) == LIDC_INSTANCES  # type: ignore[arg-type]
    seg_ds = pydicom.dcmread(seg, stop_before_pixels=True)
    seg_series = _orthanc_series(orthanc, seg_ds.SeriesInstanceUID)
    assert seg_series["MainDicomTags"]["Modality"] == "SEG"  # type: ignore[index]
    stored = orthanc.rest("GET", f"/instances/{_orthanc_instance(orthanc, seg_ds.SOPInstanceUID)}"
                          "/file")
    assert pydicom.dcmread(DicomBytesIO(stored)).PixelData == pydicom.dcmread(seg).PixelData
    assert _sha(list(before)) == before  # sources only read


def test_a_refused_instance_is_named_with_its_status_and_the_rest_reported(
        orthanc: Orthanc, lidc_0001: Path, tmp_path: Path) -> None:
    good = lidc_files(lidc_0001)[:3]
    # Orthanc refuses an instance without SeriesInstanceUID with 0xA700 (out of resources).
    broken = pydicom.dcmread(lidc_files(lidc_0001)[3])
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del broken.SeriesInstanceUID
    broken_path = tmp_path / "no-series-uid.dcm"
    broken.save_as(broken_path)
    # A SOP class Orthanc does not know: no presentation context is accepted for it.
    odd = pydicom.dcmread(lidc_files(lidc_0001)[4])
    odd.SOPClassUID = odd.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.8.498.1.7"
    odd.SOPInstanceUID = odd.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    odd_path = tmp_path / "private-class.dcm"
    odd.save_as(odd_path)
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    paths = [good[0], broken_path, good[1], odd_path, text, good[2]]

    report = send(_node(orthanc), LOCAL, paths)

    assert [o.path for o in report.instances] == paths  # complete, in the order given
    by_path = {o.path: o for o in report.instances}
    assert all(by_path[p].ok and by_path[p].status == SUCCESS for p in good)
    refused = by_path[broken_path]
    assert not refused.ok and refused.status == OUT_OF_RESOURCES
    assert refused.sop_instance_uid == broken.SOPInstanceUID
    assert "0xA700" in refused.message and broken.SOPInstanceUID in refused.message
    assert str(broken_path) in refused.message
    no_context = by_path[odd_path]
    assert not no_context.ok and no_context.status == SOP_CLASS_NOT_SUPPORTED
    assert odd.SOPInstanceUID in no_context.message and "presentation context" in no_context.message
    assert by_path[text].status == NOT_ATTEMPTED and "not a readable DICOM" in by_path[text].message
    assert not report.ok and report.error is None and len(report.failed) == 3
    assert _orthanc_instance(orthanc, broken.SOPInstanceUID) is None
    assert _orthanc_instance(orthanc, odd.SOPInstanceUID) is None


def test_a_compressed_instance_goes_as_is_or_decompressed_when_only_that_is_accepted(
        orthanc: Orthanc, tmp_path: Path) -> None:
    j2k = Path(get_testdata_file("RG1_J2KR.dcm"))  # JPEG 2000 lossless
    original = pydicom.dcmread(j2k)
    report = send(_node(orthanc), LOCAL, [j2k])
    assert report.ok, report.summary()
    stored_id = _orthanc_instance(orthanc, original.SOPInstanceUID)
    syntax = orthanc.rest("GET", f"/instances/{stored_id}/metadata/TransferSyntax")
    assert syntax == b"1.2.840.10008.1.2.4.90"  # its own syntax, untouched

    plain = launch_orthanc(tmp_path / "plain", config={
        "AcceptedTransferSyntaxes": ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]})
    try:
        report = send(_node(plain, "plain"), LOCAL, [j2k])
        assert report.ok, report.summary()
        stored_id = _orthanc_instance(plain, original.SOPInstanceUID)  # same UID (PS3.5 10)
        assert stored_id is not None
        syntax = plain.rest("GET", f"/instances/{stored_id}/metadata/TransferSyntax")
        assert syntax in (b"1.2.840.10008.1.2", b"1.2.840.10008.1.2.1")
        stored = pydicom.dcmread(DicomBytesIO(
            plain.rest("GET", f"/instances/{stored_id}/file")))
        assert np.array_equal(stored.pixel_array, original.pixel_array)  # lossless
    finally:
        plain.stop()


def test_cancel_leaves_the_rest_not_attempted(orthanc: Orthanc, lidc_0001: Path) -> None:
    paths = lidc_files(lidc_0001)[:20]
    token = CancelToken()

    def progress(fraction: float, message: str = "") -> None:
        if fraction >= 5 / 20:
            token.cancel()

    report = send(_node(orthanc), LOCAL, paths, progress, token)
    assert report.cancelled and not report.ok
    assert len(report.instances) == 20
    assert [o.ok for o in report.instances] == [True] * 5 + [False] * 15
    assert all(o.status == NOT_ATTEMPTED and o.message == "not attempted: cancelled"
               for o in report.instances[5:])


def test_a_pacs_that_dies_mid_send_leaves_nothing_half_reported(
        lidc_0001: Path, tmp_path: Path) -> None:
    peer = launch_orthanc(tmp_path / "dying")
    paths = lidc_files(lidc_0001)[:40]

    def progress(fraction: float, message: str = "") -> None:
        if fraction >= 10 / 40 and peer.process is not None and peer.process.poll() is None:
            peer.process.kill()  # the PACS is gone, mid-association
            peer.process.wait(10)

    try:
        report = send(_node(peer, "dying"), LOCAL, paths, progress, timeout_s=5)
    finally:
        peer.stop()
    assert len(report.instances) == 40
    assert all(o.ok for o in report.instances[:10])
    rest = report.instances[10:]
    assert rest and not any(o.ok for o in rest)
    assert {o.status for o in rest} <= {NOT_ATTEMPTED, NO_RESPONSE}
    assert report.error is not None and "dying" in report.error
    assert all(o.sop_instance_uid and o.path in paths for o in rest)


def test_an_unreachable_node_is_an_error_with_every_instance_not_attempted(
        lidc_0001: Path) -> None:
    node = Node(name="nobody", ae_title="NOBODY", host="127.0.0.1", port=free_port())
    paths = lidc_files(lidc_0001)[:3]
    report = send(node, LOCAL, paths, timeout_s=3)
    assert report.error is not None and "nobody" in report.error
    assert "refused the connection" in report.error
    assert [o.status for o in report.instances] == [NOT_ATTEMPTED] * 3
    assert all(report.error in o.message for o in report.instances)
    assert report.elapsed_s < 10


def _signed_off(tmp_path: Path, library_dir: Path) -> tuple[int, int]:
    """A demo series with a recorded run, reviewed and exported by the sign-off."""
    from app.importer import series_sources
    from app.runs import record_run
    from app.signoff import export_signoff
    from core.volume import HeatMap, Label, LabelMap
    from dicomio.demo import write_demo_study
    from dicomio.load import read_volume
    from inference.pipeline import InferenceResult
    from inference.postprocess import extract_findings
    from review.session import ReviewSession

    write_demo_study(tmp_path / "demo", shape=(24, 64, 64))
    with Library.open(library_dir) as lib:
        import_paths(lib, [tmp_path / "demo"], actor="tester")
        series = lib.series(lib.studies()[0])[0]
        volume = read_volume(series_sources(lib, series.id))
        labels = np.zeros(volume.array.shape, dtype=np.uint8)
        labels[5:9, 20:26, 20:26] = 1
        findings = extract_findings(labels, volume.affine, {1: "nodule"},
                                    labels.astype(np.float32), series_uid=series.series_uid)
        result = InferenceResult(
            LabelMap(labels, volume.affine, [Label(1, "nodule", (255, 0, 0))],
                     series_uid=series.series_uid),
            HeatMap(labels.astype(np.float32), volume.affine, series_uid=series.series_uid),
            findings, {"model": {"id": "lucida-demo-lung-density", "name": "Demo pack",
                                 "version": "0.1.0", "files": {"model.onnx": "ef" * 32}},
                       "provider": "CPUExecutionProvider"})
        run_id = record_run(lib, series.id, result, actor="tester")  # type: ignore[arg-type]
        session = ReviewSession.open(lib, run_id, reviewer="Reader^Rita")
        for f in session.findings:
            session.accept(f.key)
        export_signoff(lib, series.id, run_id, tmp_path / "export", reviewer="Reader^Rita")
    return series.id, run_id


def test_lucidas_own_signoff_seg_sr_ko_reach_the_pacs_via_the_cli(
        orthanc: Orthanc, tmp_path: Path, library_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    series_id, run_id = _signed_off(tmp_path, library_dir)
    with Library.open(library_dir) as lib:
        files = signoff_paths(lib, run_id)
        add_node(lib, _node(orthanc))
    assert sorted(p.name for p in files) == sorted(
        f"lucida-run{run_id}-{kind}.dcm" for kind in ("seg", "sr", "ko"))

    code = main(["send", "pacs", str(series_id), "--signoff", str(run_id), "--timeout", "20"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "send pacs: 27/27 instances" in out.out  # 24 CT slices + SEG + SR + KO
    modalities = set()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        stored = _orthanc_instance(orthanc, ds.SOPInstanceUID)
        assert stored is not None, path
        modalities.add(orthanc.rest("GET", f"/instances/{stored}/tags?simplify")["Modality"])
    assert modalities == {"SEG", "SR", "KO"}

    # A signed-off file changed since: refused before anything is sent, with the reason.
    files[0].write_bytes(files[0].read_bytes() + b"\0\0")
    code = main(["send", "pacs", "--signoff", str(run_id)])
    assert code == 2
    assert "changed since it was signed off" in capsys.readouterr().err


def test_cli_names_the_refused_instance_and_exits_1(
        orthanc: Orthanc, lidc_0001: Path, tmp_path: Path, library_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    broken = pydicom.dcmread(lidc_files(lidc_0001)[7])
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del broken.StudyInstanceUID
    folder = tmp_path / "to-send"
    folder.mkdir()
    broken.save_as(folder / "broken.dcm")
    with Library.open(library_dir) as lib:
        add_node(lib, _node(orthanc))
    # Lucida calls with the AE title of its settings.
    save_preferences(Preferences(local_ae_title="READROOM1"),
                     config_dir(None) / PREFERENCES_FILE)
    fresh = pydicom.dcmread(lidc_files(lidc_0001)[8])  # new to this PACS
    fresh.SOPInstanceUID = fresh.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    fresh.save_as(folder / "fresh.dcm")
    (folder / "readme.txt").write_text("a folder's other files are skipped, not failed")
    code = main(["send", "pacs", str(folder)])
    out = capsys.readouterr()
    assert code == 1
    assert "1/2 instances" in out.out
    assert "skipped 1 file(s) that are not DICOM" in out.err
    assert "0xA700" in out.err and broken.SOPInstanceUID in out.err
    stored = _orthanc_instance(orthanc, fresh.SOPInstanceUID)
    assert orthanc.rest("GET", f"/instances/{stored}/metadata/RemoteAET") == b"READROOM1"
    assert main(["send", "nowhere", str(folder)]) == 2
    assert "no network node named 'nowhere'" in capsys.readouterr().err


def test_a_peer_that_never_answers_times_out_with_a_clear_message(lidc_0001: Path) -> None:
    import socket
    import time

    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        node = Node(name="mute", ae_title="MUTE", host="127.0.0.1",
                    port=silent.getsockname()[1])
        started = time.monotonic()
        report = send(node, LOCAL, lidc_files(lidc_0001)[:2], timeout_s=1)
    assert time.monotonic() - started < 10
    assert report.error == ("mute (MUTE@127.0.0.1:" + str(node.port) + ") did not answer the "
                            "association request within 1 s")
    assert [o.status for o in report.instances] == [NOT_ATTEMPTED] * 2
