"""BLAST-CT importer: the authors' legacy .pt files read without torch, DeepMedic rebuilt
as ONNX by Lucida's code, each member proven against the authors' own output.

The reference probabilities (``reference/probs_model_N.npy``) were computed with
blast-ct 2.1.0's PyTorch DeepMedic on ``reference/input_patch_110.npy`` (see the
README beside them). The input is noise, so every voxel's argmax is background: the
whole probability arrays are compared, and their logarithms too, which makes the
small lesion-class probabilities count (a BN epsilon of 1e-3 instead of 1e-5 already
moves member 1 by 1e-3 in probability and 5 in log-probability).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.importers.deepmedic import DeepMedicError, build_deepmedic_onnx, parse_deepmedic
from inference.importers.torch_legacy import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    LegacyTorchError,
    load_state_dict,
    load_state_dict_bytes,
    read_sha256sums,
)
from tests.inference.conftest import cpu_session

MEMBERS = (1, 2, 3, 4, 5, 6)


@pytest.fixture(scope="module")
def config(blast: Path) -> dict[str, Any]:
    return dict(json.loads((blast / "config.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def patch(blast: Path) -> np.ndarray:
    x = np.load(blast / "reference" / "input_patch_110.npy")
    assert x.shape == (1, 1, 110, 110, 110) and x.dtype == np.float32
    return x


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# --- each member against the authors' output ------------------------------------------------

@pytest.mark.parametrize("member", MEMBERS)
def test_member_matches_authors_reference(blast: Path, config: dict[str, Any],
                                          patch: np.ndarray, member: int) -> None:
    t0 = time.perf_counter()
    state = load_state_dict(blast / "weights_v1" / f"model_{member}.pt")  # sha256 checked
    model = build_deepmedic_onnx(state, config, softmax=True)
    t1 = time.perf_counter()
    session = cpu_session(model)
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    probs = session.run(None, {"image": patch})[0]
    t2 = time.perf_counter()
    ref = np.load(blast / "reference" / f"probs_model_{member}.npy")
    assert probs.shape == ref.shape == (1, 5, 30, 30, 30)
    diff = float(np.abs(probs - ref).max())
    log_diff = float(np.abs(np.log(probs.astype(np.float64)) - np.log(ref.astype(np.float64)))
                     .max())
    print(f"\nBLAST-CT member {member}: max |p - p_ref| = {diff:.3g}, max |log p - log p_ref| "
          f"= {log_diff:.3g}; read+build {t1 - t0:.2f} s, session+run {t2 - t1:.2f} s")
    assert diff <= 1e-4
    assert log_diff <= 1e-3
    # Lesion classes are not all ~0: the comparison carries signal beyond "background".
    assert ref[:, 1:].max() > 1e-5


def test_logits_output_is_the_log_softmax_of_the_reference(
        blast: Path, config: dict[str, Any], patch: np.ndarray) -> None:
    state = load_state_dict(blast / "weights_v1" / "model_1.pt")
    session = cpu_session(build_deepmedic_onnx(state, config))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    logits = session.run(None, {"image": patch})[0]
    ref = np.load(blast / "reference" / "probs_model_1.npy").astype(np.float64)
    assert np.abs(_log_softmax(logits) - np.log(ref)).max() <= 1e-3


def test_structure_and_sizes_come_from_the_state_dict(blast: Path,
                                                      config: dict[str, Any]) -> None:
    state = load_state_dict(blast / "weights_v1" / "model_1.pt")
    assert len(state) == 189 and sum(v.size for v in state.values()) == 1_032_986
    spec = parse_deepmedic(state, config)
    assert [p.scale for p in spec.pathways] == [(5, 5, 5), (3, 3, 3), (1, 1, 1)]
    assert [b.residual for b in spec.pathways[0].blocks] == [
        False, True, False, True, True, True, False, True]
    assert [b.residual for b in spec.head] == [False, True, False]
    assert (spec.input_channels, spec.num_classes) == (1, 5)
    # The authors' own size table (reference/blast_ref_log.txt).
    for size, out in ((110, 30), (170, 90), (100, 20), (95, 15), (85, 5)):
        assert spec.output_size((size,) * 3) == (out,) * 3
    with pytest.raises(DeepMedicError, match="not allowed"):
        spec.output_size((111, 110, 110))
    # A config that disagrees with the weights is refused, not silently followed.
    bad = json.loads(json.dumps(config))
    bad["model"]["DeepMedic"]["feature_maps"][-1] = 60
    with pytest.raises(DeepMedicError, match="feature_maps"):
        parse_deepmedic(state, bad)


# --- the legacy reader's checks --------------------------------------------------------------

def test_sha256sums_lists_the_staged_members(blast: Path) -> None:
    sums = read_sha256sums(blast / "weights_v1" / "SHA256SUMS")
    assert sorted(sums) == [f"model_{m}.pt" for m in MEMBERS]


def test_a_file_whose_sha256_differs_is_refused(blast: Path, tmp_path: Path) -> None:
    source = blast / "weights_v1"
    copy = tmp_path / "model_1.pt"
    data = bytearray((source / "model_1.pt").read_bytes())
    data[-1] ^= 0x01  # one bit of the last float (PReLU slope): still a readable file
    copy.write_bytes(bytes(data))
    shutil.copyfile(source / "SHA256SUMS", tmp_path / "SHA256SUMS")
    with pytest.raises(LegacyTorchError, match="sha256"):
        load_state_dict(copy)
    # The same bytes are readable when no hash is asked for: the refusal is the hash's.
    assert len(load_state_dict_bytes(bytes(data))) == 189
    (tmp_path / "SHA256SUMS").unlink()
    with pytest.raises(LegacyTorchError, match="sha256"):
        load_state_dict(copy, expected_sha256=read_sha256sums(
            source / "SHA256SUMS")["model_1.pt"])
    right = hashlib.sha256(bytes(data)).hexdigest()
    assert len(load_state_dict(copy, expected_sha256=right.upper())) == 189


# Synthetic legacy files (no ../shared needed): hand-written pickle opcodes, since the
# torch globals they name must not (and here cannot) be importable.

def _glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _int(n: int) -> bytes:
    return b"J" + n.to_bytes(4, "little", signed=True)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _header() -> bytes:
    info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(v, protocol=2) for v in (MAGIC_NUMBER, PROTOCOL_VERSION, info))


def _legacy_file(values: np.ndarray, offset: int, shape: tuple[int, ...],
                 stride: tuple[int, ...], declared: int | None = None) -> bytes:
    """One float32 tensor 'w' viewing a storage of ``values``, as torch<1.6 wrote it."""
    numel = values.size if declared is None else declared
    storage = (_tuple(_str("storage"), _glob("torch", "FloatStorage"), _str("k0"),
                      _str("cpu"), _int(numel), b"N") + b"Q")
    tensor = (_glob("torch._utils", "_rebuild_tensor_v2")
              + _tuple(storage, _int(offset), _tuple(*map(_int, shape)),
                       _tuple(*map(_int, stride)), b"\x89",
                       _glob("collections", "OrderedDict") + b")R") + b"R")
    obj = (b"\x80\x02" + _glob("collections", "OrderedDict") + b")R("
           + _str("w") + tensor + b"u.")
    return (_header() + obj + pickle.dumps(["k0"], protocol=2)
            + values.size.to_bytes(8, "little") + values.astype("<f4").tobytes())


def test_offsets_and_strides_are_honoured() -> None:
    values = np.arange(8, dtype=np.float32)
    state = load_state_dict_bytes(_legacy_file(values, 1, (3, 2), (1, 3)))
    expected = np.array([[values[1 + r + 3 * c] for c in range(2)] for r in range(3)])
    assert state["w"].dtype == np.float32 and state["w"].flags.c_contiguous
    np.testing.assert_array_equal(state["w"], expected)
    with pytest.raises(LegacyTorchError, match="past the end"):
        load_state_dict_bytes(_legacy_file(values, 3, (3, 2), (1, 3)))
    with pytest.raises(LegacyTorchError, match="truncated"):
        load_state_dict_bytes(_legacy_file(values, 1, (3, 2), (1, 3))[:-4])
    with pytest.raises(LegacyTorchError, match="declared 9"):
        load_state_dict_bytes(_legacy_file(values, 1, (3, 2), (1, 3), declared=9))
    with pytest.raises(LegacyTorchError, match="after the last storage"):
        load_state_dict_bytes(_legacy_file(values, 1, (3, 2), (1, 3)) + b"\0")


class _Hostile:
    """Unpickling this would run a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("where", ["state_dict", "first pickle", "storage type"])
def test_a_pickle_asking_for_other_globals_is_refused(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "executed"
    hostile = pickle.dumps({"w": _Hostile(marker)}, protocol=2)
    if where == "state_dict":
        data = _header() + hostile
    elif where == "first pickle":
        data = hostile
    else:  # a storage "type" that is really a callable
        good = _legacy_file(np.zeros(2, np.float32), 0, (2,), (1,))
        data = good.replace(_glob("torch", "FloatStorage"), _glob("builtins", "eval"))
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(LegacyTorchError, match=r"refused: the pickle asks for (posix|os|nt|"
                                               r"builtins)\.(system|eval)"):
        load_state_dict(path)
    assert not marker.exists()
