"""Write files so that a crash never leaves one half-written.

Every file Lucida writes for the user (exports, screenshots, preferences,
reports) goes through :func:`atomic_path` or its two shorthands: the bytes go
to a hidden temporary file in the *same folder* (``os.replace`` is atomic only
within one file system), are flushed to disk with ``fsync``, and only then is
the file renamed over the target. A reader, or the user after a crash or a
kill, sees either the old file or the complete new one — never a truncated
one. On an error the temporary file is removed and the target is untouched.

What a crash *can* leave is the hidden temporary file itself
(``.lucida-partial-<random>-<name>``): a killed process cannot clean up after
itself, and removing other processes' temporaries is not safe.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".lucida-partial-"


def temp_path_for(target: Path) -> Path:
    """A fresh temporary name beside ``target``.

    It ends with the target's whole name, so writers that choose a format
    from the suffix (``.nii.gz`` → gzip, ``.png``) see the same suffix.
    """
    return target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{target.name}")


def _fsync_file(path: Path) -> None:
    # O_RDWR, not O_RDONLY: Windows' fsync (_commit) needs a handle that may write.
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); folders cannot be opened on Windows."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the data itself is synced
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write instead of ``target``; put it in place on success.

    ::

        with atomic_path(out) as tmp:
            nib.save(image, str(tmp))

    The temporary file exists (empty) when the block starts, so its name is
    reserved; the writer may open it by name or replace its content. When the
    block raises (anything, KeyboardInterrupt included) the temporary file is
    removed, the target is left as it was, and the exception propagates.
    """
    target = Path(target)
    tmp = temp_path_for(target)
    # O_EXCL: never adopt a file someone else created; 0o666 lets the umask decide, as
    # for any file the user's programs write.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666))
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``target`` by ``data``."""
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        out.write(data)


def write_text(target: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Atomically replace ``target`` by ``text`` (newlines written as given)."""
    write_bytes(target, text.encode(encoding))
