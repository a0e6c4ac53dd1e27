"""Where one DICOM object's bytes are: a plain file, or a member of a .zip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True, order=True)
class DicomSource:
    """A file path, plus the member name when the file is a zip archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def open(self) -> BinaryIO:
        """Readable binary stream; source files are only ever opened for reading."""
        if self.member is None:
            return open(self.path, "rb")
        # A member is inflated in blocks within decode's caps (size, CRC, declared size)
        # and spooled (memory up to a cap, then an anonymous temp file): never read whole
        # into memory, never trusted for its declared size.
        from dicomio.decode import open_zip_member

        return open_zip_member(self.path, self.member)
