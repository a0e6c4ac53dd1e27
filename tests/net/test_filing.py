"""The Filer: what arrives is checked like an import, written atomically, indexed once."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from app.importer import import_paths
from net.filing import NETWORK_FOLDER, Filer, encode_dataset
from net.transfer import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, SOP_CLASS_NOT_SUPPORTED
from store import Library


def _ct() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def _files(library_dir: Path) -> list[Path]:
    return sorted(p for p in (library_dir / NETWORK_FOLDER).rglob("*") if p.is_file())


@pytest.fixture
def filer(library_dir: Path) -> Filer:
    Library.open(library_dir).close()
    made = Filer.for_library(library_dir, import_paths)
    yield made
    made.close()


def test_an_instance_is_filed_indexed_and_not_filed_twice(library_dir: Path,
                                                          filer: Filer) -> None:
    ds = _ct()
    outcome = filer.file(ds)
    assert outcome.ok and outcome.status == 0 and outcome.message == ""
    expected = (library_dir / NETWORK_FOLDER / ds.StudyInstanceUID / ds.SeriesInstanceUID
                / f"{ds.SOPInstanceUID}.dcm")
    assert outcome.path == expected and expected.is_file()
    back = pydicom.dcmread(expected)
    assert back.PixelData == ds.PixelData and back.SOPInstanceUID == ds.SOPInstanceUID
    filer.flush()
    assert not filer.index_errors
    with Library.open(library_dir) as lib:
        row = lib.find_instance(ds.SOPInstanceUID)
        assert row is not None and Path(row.path) == expected
        assert lib.counts()["instances"] == 1
    again = filer.file(_ct())
    assert again.ok and again.message == "already in the library" and again.path is None
    filer.flush()
    with Library.open(library_dir) as lib:
        assert lib.counts()["instances"] == 1
    assert _files(library_dir) == [expected]


def test_a_file_written_but_not_indexed_is_indexed_on_the_next_try(library_dir: Path) -> None:
    Library.open(library_dir).close()
    unindexed = Filer(library_dir, None)  # as after a crash before indexing
    path = unindexed.file(_ct()).path
    assert path is not None and path.is_file()
    filer = Filer.for_library(library_dir, import_paths)
    try:
        outcome = filer.file(_ct())
        filer.flush()
    finally:
        filer.close()
    assert outcome.ok and outcome.message == "already received" and outcome.path == path
    with Library.open(library_dir) as lib:
        assert lib.find_instance(_ct().SOPInstanceUID) is not None


def test_part10_bytes_are_written_unchanged(library_dir: Path, filer: Filer) -> None:
    data = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    outcome = filer.file_bytes(data)
    assert outcome.ok and outcome.path is not None
    assert outcome.path.read_bytes() == data


def test_hostile_instances_are_refused_and_nothing_is_written(library_dir: Path,
                                                              filer: Filer) -> None:
    whole = encode_dataset(_ct())
    truncated = filer.file_bytes(whole[: len(whole) - 5000])
    assert not truncated.ok and truncated.status == CANNOT_UNDERSTAND

    ecg = _ct()
    ecg.SOPClassUID = ecg.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
    wrong = filer.file(ecg)
    assert not wrong.ok and wrong.status == SOP_CLASS_NOT_SUPPORTED
    assert "not one Lucida reads" in wrong.message

    sneaky = _ct()
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):  # pydicom sees it too
        sneaky.StudyInstanceUID = "../../../etc"
    escaped = filer.file(sneaky)
    assert not escaped.ok and "not a valid UID" in escaped.message

    small = Filer(library_dir, None, max_instance_mb=0.01)
    big = small.file(_ct())
    assert not big.ok and big.status == OUT_OF_RESOURCES and "over the limit" in big.message

    short = _ct()
    short.PixelData = short.PixelData[:-100]  # well-formed, but less than 128 x 128 x 2
    cut = filer.file(short)
    assert not cut.ok and "pixel data has 32668 bytes, its header needs 32768" in cut.message

    garbage = filer.file_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    assert not garbage.ok
    filer.flush()
    assert _files(library_dir) == []
    with Library.open(library_dir) as lib:
        assert lib.counts()["instances"] == 0


def test_indexing_runs_in_batches_while_instances_arrive(library_dir: Path) -> None:
    Library.open(library_dir).close()
    batches: list[int] = []

    def index(paths: list[Path]) -> None:
        batches.append(len(paths))

    filer = Filer(library_dir, index, batch_size=2, batch_interval_s=60)
    base = _ct()
    for n in range(5):
        ds = base.copy()
        ds.SOPInstanceUID = f"1.2.3.4.{n + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        assert filer.file(ds).ok
    filer.flush()
    assert batches == [2, 2, 1]
    filer.close()


def test_a_partial_batch_is_indexed_once_arrivals_go_quiet(library_dir: Path) -> None:
    Library.open(library_dir).close()
    indexed = threading.Event()
    filer = Filer(library_dir, lambda paths: indexed.set(), batch_size=100,
                  batch_interval_s=0.2)
    try:
        assert filer.file(_ct()).ok  # one instance of a batch of 100
        assert indexed.wait(5)  # indexed without a flush: the quiet interval passed
    finally:
        filer.close()


def test_encode_dataset_roundtrips() -> None:
    ds = _ct()
    back = pydicom.dcmread(io.BytesIO(encode_dataset(ds)))
    assert back.SOPInstanceUID == ds.SOPInstanceUID and back.PixelData == ds.PixelData


def test_finish_runs_after_a_flush_and_when_arrivals_go_quiet(library_dir: Path) -> None:
    """for_library's ``finish(library)`` (the importer plans geometry there): after every
    flush (a transfer's end), and by itself once arrivals pause (a push that ended), on
    the indexing thread with its Library; not after each full batch."""
    Library.open(library_dir).close()
    indexed: list[int] = []
    finished: list[tuple[str, bool]] = []

    def index(lib: Library, paths: list[Path]) -> None:
        indexed.append(len(paths))

    def finish(lib: Library) -> None:
        finished.append((threading.current_thread().name, isinstance(lib, Library)))

    base = _ct()

    def instance(n: int) -> pydicom.Dataset:
        ds = base.copy()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.{n}"
        return ds

    filer = Filer.for_library(library_dir, index, finish=finish, batch_size=2,
                              batch_interval_s=60)
    try:
        for n in range(1, 6):
            assert filer.file(instance(n)).ok
        assert finished == []
        filer.flush()
        assert indexed == [2, 2, 1] and finished == [("lucida-filer-index", True)]
    finally:
        filer.close()

    quiet = Filer.for_library(library_dir, index, finish=finish, batch_size=100,
                              batch_interval_s=0.2)
    try:
        assert quiet.file(instance(9)).ok
        deadline = time.monotonic() + 5
        while len(finished) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(finished) == 2, "no finish after arrivals went quiet"
    finally:
        quiet.close()
