"""Remote nodes: validation, and kept in the library (real SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import LucidaError
from net.errors import NodeNotFoundError
from net.nodes import LocalAE, Node, add_node, get_node, list_nodes, remove_node
from store import Library


def test_dimse_and_dicomweb_nodes_validate() -> None:
    pacs = Node(name="PACS", ae_title=" ORTHANC ", host="10.0.0.5", port=104, tls=True)
    assert pacs.kind == "dimse" and pacs.ae_title == "ORTHANC"
    assert pacs.describe() == "ORTHANC@10.0.0.5:104 (TLS)"
    web = Node(name="web", dicomweb_url="https://pacs.example/dicom-web/")
    assert web.kind == "dicomweb" and web.dicomweb_url == "https://pacs.example/dicom-web"


@pytest.mark.parametrize(("fields", "words"), [
    ({"ae_title": "A" * 17, "host": "h", "port": 104}, "1 to 16"),
    ({"ae_title": "BAD\\AE", "host": "h", "port": 104}, "backslash"),
    ({"ae_title": "AE", "host": "h", "port": 0}, "between 1 and 65535"),
    ({"ae_title": "AE", "host": "h", "port": 70000}, "between 1 and 65535"),
    ({"ae_title": "AE", "host": "", "port": 104}, "AE title and a host"),
    ({}, "or a DICOMweb URL"),
    ({"ae_title": "AE", "host": "h", "port": 104, "dicomweb_url": "http://x"}, "not both"),
    ({"dicomweb_url": "ftp://x"}, "http:// or https://"),
])
def test_invalid_nodes_are_refused_with_the_reason(fields: dict[str, object],
                                                   words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Node(name="n", **fields)  # type: ignore[arg-type]


def test_local_ae_defaults_to_loopback() -> None:
    local = LocalAE()
    assert (local.ae_title, local.port, local.bind) == ("LUCIDA", 11112, "127.0.0.1")
    with pytest.raises(ValidationError):
        LocalAE(ae_title="")


def test_nodes_are_kept_in_the_library(library_dir: Path) -> None:
    with Library.open(library_dir) as lib:
        add_node(lib, Node(name="pacs", ae_title="ORTHANC", host="127.0.0.1", port=4242))
        add_node(lib, Node(name="web", dicomweb_url="http://127.0.0.1:8042/dicom-web"))
        with pytest.raises(LucidaError, match="exists already"):
            add_node(lib, Node(name="pacs", ae_title="OTHER", host="h", port=1))
        add_node(lib, Node(name="pacs", ae_title="OTHER", host="h", port=1), replace=True)
    with Library.open(library_dir) as lib:  # a new connection reads what was committed
        assert [n.name for n in list_nodes(lib)] == ["pacs", "web"]
        assert get_node(lib, "pacs") == Node(name="pacs", ae_title="OTHER", host="h", port=1)
        with pytest.raises(NodeNotFoundError, match=r"'nope'.*known: pacs, web"):
            get_node(lib, "nope")
        assert remove_node(lib, "pacs") is True
        assert remove_node(lib, "pacs") is False
        assert [n.name for n in list_nodes(lib)] == ["web"]


def test_a_damaged_node_row_does_not_hide_the_others(library_dir: Path) -> None:
    with Library.open(library_dir) as lib:
        add_node(lib, Node(name="good", ae_title="GOOD", host="h", port=11112))
    conn = sqlite3.connect(library_dir / "library.sqlite")
    conn.execute("INSERT INTO network_nodes VALUES ('bad', '{not json', '2026-01-01')")
    conn.execute("INSERT INTO network_nodes VALUES ('old', '{\"port\": 0}', '2026-01-01')")
    conn.commit()
    conn.close()
    with Library.open(library_dir) as lib:
        assert [n.name for n in list_nodes(lib)] == ["good"]
        with pytest.raises(LucidaError, match="'old' is not valid"):
            get_node(lib, "old")
