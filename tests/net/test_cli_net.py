"""``lucida nodes|query|retrieve|scp`` end to end through app.cli.main against Orthanc."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from app.cli import build_parser, main
from app.commands.query import parse_date_range
from core.errors import LucidaError
from store import Library
from tests.net.conftest import LIDC_INSTANCES, Orthanc, free_port
from tests.net.test_dimse import STUDY_UID


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_nodes_add_list_remove(library_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "nodes", "list")[1].startswith("no network nodes yet")
    code, out, _ = _run(capsys, "nodes", "add", "pacs", "--ae", "ORTHANC", "--host",
                        "127.0.0.1", "--port", "4242")
    assert code == 0 and "ORTHANC@127.0.0.1:4242" in out
    code, _, err = _run(capsys, "nodes", "add", "pacs", "--url", "http://x")
    assert code == 2 and "exists already" in err
    code, _, err = _run(capsys, "nodes", "add", "bad", "--ae", "X", "--host", "h")
    assert code == 2 and "between 1 and 65535" in err
    _run(capsys, "nodes", "add", "web", "--url", "http://127.0.0.1:8042/dicom-web/")
    out = _run(capsys, "nodes", "list")[1]
    assert "pacs" in out and "dimse" in out and "http://127.0.0.1:8042/dicom-web" in out
    assert _run(capsys, "nodes", "remove", "pacs")[0] == 0
    assert _run(capsys, "nodes", "remove", "pacs")[0] == 1
    code, _, err = _run(capsys, "nodes", "echo", "pacs")
    assert code == 2 and "no network node named 'pacs'" in err


def test_date_ranges() -> None:
    assert parse_date_range("") == ("", "")
    assert parse_date_range("20200101-20201231") == ("20200101", "20201231")
    assert parse_date_range("2020-01-01-2020-12-31") == ("20200101", "20201231")
    assert parse_date_range("2020-01-01") == ("20200101", "20200101")
    assert parse_date_range("-20201231") == ("", "20201231")
    assert parse_date_range("20200101-") == ("20200101", "")
    with pytest.raises(LucidaError, match="FROM-TO"):
        parse_date_range("last week")


@pytest.mark.shared
def test_echo_query_retrieve_scp(orthanc_lidc: Orthanc, library_dir: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "nodes", "add", "pacs", "--ae", orthanc_lidc.aet, "--host", "127.0.0.1",
         "--port", str(orthanc_lidc.dicom_port))
    code, out, _ = _run(capsys, "nodes", "echo", "pacs")
    assert code == 0 and "C-ECHO answered in" in out
    _run(capsys, "nodes", "add", "web", "--url", orthanc_lidc.dicomweb_url)
    code, out, _ = _run(capsys, "nodes", "echo", "web")
    assert code == 0 and "QIDO-RS answered in" in out
    _run(capsys, "nodes", "add", "gone", "--ae", "GONE", "--host", "127.0.0.1", "--port",
         str(free_port()))
    code, _, err = _run(capsys, "nodes", "echo", "gone", "--timeout", "3")
    assert code == 2 and "refused the connection" in err
    code, out, _ = _run(capsys, "query", "pacs", "--patient-id", "LIDC-IDRI-0001",
                        "--date", "19990101-20010101", "--modality", "CT", "--json")
    assert code == 0
    (study,) = [json.loads(line) for line in out.splitlines()]
    assert study["StudyInstanceUID"] == STUDY_UID
    code, out, _ = _run(capsys, "query", "pacs", "--level", "series", "--study", STUDY_UID)
    assert code == 0 and "1 match(es)" in out and str(LIDC_INSTANCES) in out
    code, out, _ = _run(capsys, "query", "pacs", "--modality", "MR")
    assert code == 0 and "no study on pacs matches" in out

    code, out, _ = _run(capsys, "retrieve", "pacs", STUDY_UID, "--quiet")
    assert code == 0 and f"{LIDC_INSTANCES}/{LIDC_INSTANCES} instances" in out
    code, out, _ = _run(capsys, "retrieve", "pacs", STUDY_UID, "--move", "--quiet",
                        "--port", str(orthanc_lidc.lucida_port))
    assert code == 0 and f"{LIDC_INSTANCES} already in the library" in out
    with Library.open(library_dir) as lib:
        assert lib.counts()["instances"] == LIDC_INSTANCES

    # `lucida scp` in the foreground (stopped by an event instead of Ctrl-C): Orthanc pushes.
    from app.commands import scp as scp_command

    fresh = library_dir.parent / "received"
    args = build_parser().parse_args(
        ["--library", str(fresh), "scp", "--port", str(orthanc_lidc.lucida_port),
         "--allow", orthanc_lidc.aet])
    stop = threading.Event()
    worker = threading.Thread(target=scp_command.cmd_scp, args=(args, stop))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while "receiving as" not in capsys.readouterr().out and time.monotonic() < deadline:
            time.sleep(0.1)
        orthanc_lidc.push("lucida", orthanc_lidc.studies())
    finally:
        stop.set()
        worker.join(30)
    out = capsys.readouterr().out
    assert out.count("stored ") == LIDC_INSTANCES and "storage SCP stopped" in out
    with Library.open(fresh) as lib:
        assert lib.counts()["instances"] == LIDC_INSTANCES
