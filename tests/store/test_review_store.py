"""store.review: the review tables read back, join the caller's transaction, name damage."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import DamagedRecordError, Library
from store.review import FindingRecord, ReviewStore


@pytest.fixture
def lib_run(tmp_path: Path) -> object:
    from store import NewInstance, NewStack

    lib = Library.open(tmp_path / "lib")
    f = tmp_path / "a.dcm"
    f.write_bytes(b"x" * 10)
    lib.index_stack(NewStack(
        patient_id="P", patient_name="N", birth_date="", study_uid="1.2.3.0", study_date="",
        study_time="", study_description="", accession_number="", series_uid="1.2.3.1",
        stack_key="k", object_kind="image", modality="CT", series_number=1, description="",
        body_part="", frame_of_reference_uid="", rows=4, columns=4, is_localizer=False,
        instances=(NewInstance(sop_instance_uid="1.2.3.1.1", sop_class_uid="1.2",
                               transfer_syntax_uid="", path=f.absolute(), member=None,
                               file_size=10, mtime=f.stat().st_mtime, instance_number=1,
                               position=(0.0, 0.0, 0.0)),)))
    run_id = lib.add_model_run(lib.get_series("1.2.3.1").id, "pack", "1")
    yield lib, run_id
    lib.close()


def _rec(key: str, status: str = "pending") -> FindingRecord:
    return FindingRecord(key, "model", status, f"2.25.{len(key)}", {"x": key}, {"id": 1},
                         b"\x00\x01mask")


def test_round_trip_grid_findings_history_signoffs(lib_run: tuple[Library, int]) -> None:
    lib, run_id = lib_run
    store = ReviewStore(lib)
    affine = [[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1.0]]
    store.create_run(run_id, "1.2.3.1", (2, 3, 4), affine, [{"value": 1, "name": "a"}],
                     [_rec("m1"), _rec("m2")])
    grid = store.grid(run_id)
    assert grid.shape == (2, 3, 4) and grid.affine == affine and grid.labels[0]["name"] == "a"
    store.save_findings(run_id, [_rec("m1", "accepted")])
    got = {r.key: r for r in store.findings(run_id)}
    assert got["m1"].status == "accepted" and got["m1"].mask == b"\x00\x01mask"
    assert got["m2"].original == {"id": 1} and store.findings_status(run_id)[1] == ("m2",
                                                                                     "pending")
    assert store.push_command(run_id, "decide", "Accept m1", {"a": 1}, b"blob") == 1
    assert store.push_command(run_id, "decide", "Accept m2", {"a": 2}, None) == 2
    store.set_undone(run_id, 2, True)
    # A new command discards the redo tail (seq 2) and takes the next number.
    assert store.push_command(run_id, "paint", "Paint on m1", {"a": 3}, None) == 2
    cmds = store.commands(run_id)
    assert [(c.seq, c.kind, c.undone) for c in cmds] == [(1, "decide", False),
                                                         (2, "paint", False)]
    assert cmds[0].blob == b"blob" and cmds[0].payload == {"a": 1}
    assert not store.signed_off(run_id)
    store.add_signoff(run_id, "sign-off", "dr", {"kept": ["m1"]})
    assert store.signed_off(run_id)
    store.add_signoff(run_id, "reopen", "dr", {})
    assert not store.signed_off(run_id) and len(store.signoffs(run_id)) == 2


def test_writes_join_the_callers_transaction(lib_run: tuple[Library, int]) -> None:
    lib, run_id = lib_run
    store = ReviewStore(lib)
    store.create_run(run_id, "1.2.3.1", (1, 1, 1), [[1.0] * 4] * 4, [], [_rec("m1")])
    with pytest.raises(RuntimeError), lib.transaction():
        store.save_findings(run_id, [_rec("m1", "rejected")])
        store.push_command(run_id, "decide", "Reject m1", {}, None)
        lib.audit("decision", {"key": "m1"}, actor="dr", run_id=run_id)
        raise RuntimeError("crash before commit")
    assert store.findings(run_id)[0].status == "pending"
    assert store.commands(run_id) == []
    assert [r.event for r in lib.audit_rows(run_id=run_id)] == []


def test_damaged_json_names_table_and_row(lib_run: tuple[Library, int]) -> None:
    lib, run_id = lib_run
    store = ReviewStore(lib)
    store.create_run(run_id, "1.2.3.1", (1, 1, 1), [[1.0] * 4] * 4, [], [_rec("m1")])
    lib._conn.execute("UPDATE review_findings SET state_json = '[1, 2'")
    with pytest.raises(DamagedRecordError, match="review_findings row 1 has a damaged "
                       "state_json"):
        store.findings(run_id)
    lib._conn.execute("UPDATE review_runs SET grid_json = '{\"shape\": 3}'")
    with pytest.raises(DamagedRecordError, match="review_runs row"):
        store.grid(run_id)


def test_missing_review_is_a_clear_error(lib_run: tuple[Library, int]) -> None:
    from core.errors import StoreError

    lib, run_id = lib_run
    with pytest.raises(StoreError, match="has no review in the library"):
        ReviewStore(lib).grid(run_id)


def test_deleting_the_run_deletes_its_review(lib_run: tuple[Library, int]) -> None:
    lib, run_id = lib_run
    store = ReviewStore(lib)
    store.create_run(run_id, "1.2.3.1", (1, 1, 1), [[1.0] * 4] * 4, [], [_rec("m1")])
    with lib.transaction():
        lib._conn.execute("DELETE FROM model_runs WHERE id = ?", (run_id,))
    assert store.findings(run_id) == [] and not store.has_run(run_id)
