"""Tag rows of real files (dicomio.tags): tree, private names, search, identity, errors."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from dicomio.tags import (
    HIDDEN,
    filter_rows,
    identifying_tags,
    iter_rows,
    parse_tag_query,
    read_tag_rows,
)

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))  # GEMS private blocks, a sequence


def _by_tag(rows, tag: int):  # type: ignore[no-untyped-def]
    return [r for r in iter_rows(rows) if r.tag == tag]


def test_rows_of_ct_small_cover_every_element_with_sequences_folded() -> None:
    tree = read_tag_rows(CT_SMALL)
    assert tree.error == ""
    ds = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)
    top = [r.tag for r in tree.rows if r.tag is not None and r.tag >> 16 != 0x0002]
    assert top == [int(t) for t in ds.keys()]  # every element, in order, no pixel data
    assert 0x7FE00010 not in top
    seq = _by_tag(tree.rows, 0x00101002)[0]  # Other Patient IDs Sequence
    assert seq.vr == "SQ" and seq.value == "2 items"
    assert [item.name for item in seq.children] == ["Item 1", "Item 2"]
    ids = [c.value for item in seq.children for c in item.children if c.keyword == "PatientID"]
    assert ids == ["ABCD1234", "1234ABCD"]
    assert _by_tag(tree.rows, 0x00100010)[0].value == "CompressedSamples^CT1"


def test_private_elements_are_named_as_pydicom_names_them(tmp_path: Path) -> None:
    rows = read_tag_rows(CT_SMALL).rows
    full_fidelity = _by_tag(rows, 0x00091001)[0]
    assert full_fidelity.private_creator == "GEMS_IDEN_01"
    assert full_fidelity.name == "[Full fidelity]"
    assert full_fidelity.tag_text == "(0009,1001)"
    # A creator pydicom does not know: the row says whose tag it is.
    ds = pydicom.dcmread(CT_SMALL)
    block = ds.private_block(0x0041, "ACME Imaging 7", create=True)
    block.add_new(0x01, "LO", "secret")
    path = tmp_path / "acme.dcm"
    ds.save_as(path)
    acme = _by_tag(read_tag_rows(path).rows, 0x00411001)[0]
    assert acme.name == "Private tag of ACME Imaging 7" and acme.value == "secret"
    creator = _by_tag(rows, 0x00090010)[0]
    assert creator.name == "Private Creator" and creator.value == "GEMS_IDEN_01"


def test_binary_and_long_values_are_shortened(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    ds.ImageComments = "x" * 1000
    ds.add_new(0x00291010, "OB", bytes(range(200)))  # private binary
    path = tmp_path / "long.dcm"
    ds.save_as(path)
    rows = read_tag_rows(path).rows
    comment = _by_tag(rows, 0x00204000)[0].value
    assert len(comment) == 160 and comment.endswith("…")
    binary = _by_tag(rows, 0x00291010)[0].value
    assert binary.startswith("<200 bytes> 00 01 02") and binary.endswith("…")


def test_search_by_keyword_tag_and_value() -> None:
    rows = read_tag_rows(CT_SMALL).rows
    for query in ("0010,0010", "(0010,0010)", "00100010"):
        assert parse_tag_query(query) == 0x00100010
        assert [r.tag for r in filter_rows(rows, query)] == [0x00100010]
    by_keyword = [r.keyword for r in filter_rows(rows, "PatientName")]
    assert by_keyword == ["PatientName"]
    by_value = filter_rows(rows, "HiSpeed")  # a private value: the Product id
    assert [r.tag for r in by_value] == [0x00091004]
    # A match inside a sequence keeps its sequence and item, and only them.
    nested = filter_rows(rows, "1234ABCD")
    assert [r.tag for r in nested] == [0x00101002]
    assert [c.value for item in nested[0].children for c in item.children] == ["1234ABCD"]
    assert filter_rows(rows, "") == rows


def test_identifying_values_hidden_and_not_searchable_while_identity_hidden() -> None:
    rows = read_tag_rows(CT_SMALL).rows
    name = _by_tag(rows, 0x00100010)[0]
    assert name.identifying and 0x00100010 in identifying_tags()
    assert name.shown_value(False) == HIDDEN
    assert name.shown_value(True) == "CompressedSamples^CT1"
    nested_ids = [r for r in iter_rows(rows) if r.value == "ABCD1234"]
    assert nested_ids and all(r.shown_value(False) == HIDDEN for r in nested_ids)
    modality = _by_tag(rows, 0x00080060)[0]
    assert not modality.identifying and modality.shown_value(False) == "CT"
    assert filter_rows(rows, "CompressedSamples", identity_visible=False) == []
    assert filter_rows(rows, "CompressedSamples", identity_visible=True) != []


def test_a_truncated_file_gives_one_error_row(tmp_path: Path) -> None:
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(CT_SMALL.read_bytes()[:1000])
    tree = read_tag_rows(cut)
    assert tree.error and len(tree.rows) == 1
    assert tree.rows[0].error and "truncated" in tree.rows[0].name
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert "empty" in read_tag_rows(empty).error
    assert "cannot open" in read_tag_rows(tmp_path / "missing.dcm").error
