"""Read a legacy (pre-zip, torch < 1.6) ``torch.save`` state_dict without torch.

A clinic machine importing the authors' ``.pt`` files has no torch, and a pickle
from the outside must never run code. The legacy format is a plain sequence:

1. pickle: the magic number ``0x1950a86a20f9469cfc6c``;
2. pickle: the protocol version, ``1001``;
3. pickle: system info (``little_endian``, type sizes);
4. pickle: the object itself (here an ``OrderedDict`` of tensors). Each tensor is
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
   hooks)``; each storage is a *persistent id* tuple
   ``("storage", torch.FloatStorage, key, location, numel, view_metadata)``;
5. pickle: the list of storage keys, in the order their data follows;
6. per key: an int64 element count, then that many little-endian elements.

Every pickle is read by :class:`_RestrictedUnpickler`: ``find_class`` admits only
``collections.OrderedDict``, the torch tensor rebuild functions and the storage
types, all mapped to numpy-building stand-ins; any other global is refused with
:class:`LegacyTorchError` before anything is called. Tensors are built as numpy
arrays (copies, C-contiguous) once all storage bytes are read and bounds-checked.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
SHA256SUMS = "SHA256SUMS"


class LegacyTorchError(ValueError):
    """The file is not a legacy torch state_dict Lucida can read safely."""


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype[Any]


# numpy has no bfloat16: such files are refused rather than misread.
_STORAGE_TYPES = {
    name: _StorageType(name, np.dtype(code))
    for name, code in (
        ("FloatStorage", "<f4"), ("DoubleStorage", "<f8"), ("HalfStorage", "<f2"),
        ("LongStorage", "<i8"), ("IntStorage", "<i4"), ("ShortStorage", "<i2"),
        ("CharStorage", "i1"), ("ByteStorage", "u1"), ("BoolStorage", "?"),
    )
}


@dataclass(frozen=True)
class _StorageRef:
    key: str
    kind: _StorageType
    numel: int
    view: tuple[str, int, int] | None  # (root key, offset, size) of an old storage view


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: object, offset: object, size: object, stride: object,
                    *_ignored: object) -> _TensorRef:
    """Stand-in for torch._utils._rebuild_tensor(_v2): records where the data is."""
    if not isinstance(storage, _StorageRef):
        raise LegacyTorchError("tensor rebuilt from something that is not a storage")
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride))
            and len(size) == len(stride)):
        raise LegacyTorchError("tensor with a malformed offset, size or stride")
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: object, *_ignored: object) -> object:
    """Stand-in for torch._utils._rebuild_parameter: a Parameter is its tensor."""
    if not isinstance(data, _TensorRef):
        raise LegacyTorchError("parameter rebuilt from something that is not a tensor")
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): kind for name, kind in _STORAGE_TYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise LegacyTorchError(
                f"refused: the pickle asks for {module}.{name}, which is not a tensor, "
                "storage or OrderedDict (a state_dict file never needs it)") from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise LegacyTorchError(f"refused: unknown persistent id {str(pid)[:80]!r}")
        _, kind, key, _location, numel, view = pid
        if not (isinstance(kind, _StorageType) and isinstance(key, str)
                and isinstance(numel, int) and numel >= 0):
            raise LegacyTorchError("malformed storage reference")
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                    and all(isinstance(v, int) and v >= 0 for v in view[1:])):
                raise LegacyTorchError("malformed storage view")
            view = (view[0], view[1], view[2])
        ref = self.storages.get(key) or _StorageRef(key, kind, numel, view)
        if ref.kind != kind:
            raise LegacyTorchError(f"storage {key} referenced with two element types")
        self.storages[key] = ref
        return ref


def _read_pickle(f: BinaryIO, what: str) -> tuple[Any, _RestrictedUnpickler]:
    unpickler = _RestrictedUnpickler(f)
    try:
        return unpickler.load(), unpickler
    except LegacyTorchError:
        raise
    except Exception as exc:  # truncated or corrupt pickle: one clear error
        raise LegacyTorchError(f"cannot read the {what}: {exc}") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sha256sums(path: Path) -> dict[str, str]:
    """``sha256sum`` output (``HEX  name`` or ``HEX *name``) → {name: lower-case hex}."""
    sums: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected.strip().lower():
        raise LegacyTorchError(
            f"{path.name}: sha256 {actual} differs from the expected {expected.strip().lower()}"
            " (a different or damaged file)")


def load_state_dict(path: Path | str, expected_sha256: str | None = None,
                    ) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a legacy torch state_dict file, as numpy arrays (insertion order).

    The file's sha256 is checked against ``expected_sha256`` when given, else against
    a ``SHA256SUMS`` file beside it when that lists the file; a mismatch raises
    :class:`LegacyTorchError` before the pickle is read.
    """
    path = Path(path)
    if expected_sha256 is None and (path.parent / SHA256SUMS).is_file():
        expected_sha256 = read_sha256sums(path.parent / SHA256SUMS).get(path.name)
    if expected_sha256 is not None:
        verify_sha256(path, expected_sha256)
    with path.open("rb") as f:
        return _read_state_dict(f, path.name)


def load_state_dict_bytes(data: bytes, name: str = "<bytes>") -> dict[str, npt.NDArray[Any]]:
    """As :func:`load_state_dict`, from bytes already in memory (no sha256 check)."""
    return _read_state_dict(io.BytesIO(data), name)


def _read_state_dict(f: BinaryIO, name: str) -> dict[str, npt.NDArray[Any]]:
    magic, _ = _read_pickle(f, "magic number")
    if magic != MAGIC_NUMBER:
        raise LegacyTorchError(
            f"{name}: not a legacy torch file (no magic number; torch >= 1.6 zip files "
            "are not supported here)")
    protocol, _ = _read_pickle(f, "protocol version")
    if protocol != PROTOCOL_VERSION:
        raise LegacyTorchError(f"{name}: unsupported torch protocol version {protocol!r}")
    sys_info, _ = _read_pickle(f, "system info")
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise LegacyTorchError(f"{name}: only little-endian files are supported")
    obj, unpickler = _read_pickle(f, "state_dict")
    keys, _ = _read_pickle(f, "storage key list")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise LegacyTorchError(f"{name}: malformed storage key list")
    data = _read_storages(f, name, keys, unpickler.storages)
    if f.read(1):
        raise LegacyTorchError(f"{name}: unexpected bytes after the last storage")
    if not isinstance(obj, dict):
        raise LegacyTorchError(f"{name}: the file holds a {type(obj).__name__}, not a state_dict")
    out: dict[str, npt.NDArray[Any]] = {}
    for key, value in obj.items():
        if not (isinstance(key, str) and isinstance(value, _TensorRef)):
            raise LegacyTorchError(f"{name}: entry {key!r} is not a named tensor")
        out[key] = _tensor(value, data, name, key)
    return out


def _read_storages(f: BinaryIO, name: str, keys: list[str],
                   refs: dict[str, _StorageRef]) -> dict[str, npt.NDArray[Any]]:
    data: dict[str, npt.NDArray[Any]] = {}
    roots = {ref.view[0] if ref.view else ref.key: ref.kind for ref in refs.values()}
    declared = {ref.key: ref.numel for ref in refs.values() if ref.view is None}
    for key in keys:
        kind = roots.get(key)
        if kind is None or key in data:
            raise LegacyTorchError(f"{name}: storage {key} listed but never (or twice) used")
        head = f.read(8)
        if len(head) != 8:
            raise LegacyTorchError(f"{name}: file ends before storage {key}")
        numel = int.from_bytes(head, "little", signed=True)
        nbytes = numel * kind.dtype.itemsize
        raw = f.read(nbytes) if numel >= 0 else b""
        if numel < 0 or len(raw) != nbytes:
            raise LegacyTorchError(f"{name}: storage {key} is truncated")
        if declared.get(key, numel) != numel:
            raise LegacyTorchError(f"{name}: storage {key} holds {numel} elements, "
                                   f"the pickle declared {declared[key]}")
        data[key] = np.frombuffer(raw, dtype=kind.dtype)
    missing = set(roots) - set(data)
    if missing:
        raise LegacyTorchError(f"{name}: no data for storage(s) {sorted(missing)[:3]}")
    return data


def _tensor(ref: _TensorRef, data: dict[str, npt.NDArray[Any]], name: str,
            key: str) -> npt.NDArray[Any]:
    storage = ref.storage
    flat = data[storage.view[0] if storage.view else storage.key]
    if storage.view:
        _, start, size = storage.view
        if start + size > flat.size:
            raise LegacyTorchError(f"{name}: {key} views past the end of its storage")
        flat = flat[start:start + size]
    if any(d == 0 for d in ref.shape):
        return np.zeros(ref.shape, dtype=flat.dtype)
    last = ref.offset + sum((d - 1) * s for d, s in zip(ref.shape, ref.stride, strict=True))
    if last >= flat.size:
        raise LegacyTorchError(f"{name}: {key} reads past the end of its storage")
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.shape, strides=tuple(s * itemsize for s in ref.stride),
        writeable=False)
    return np.array(view, order="C", copy=True)  # (ascontiguousarray makes 0-d 1-d)
