"""Where one DICOM object's bytes are: a plain file, or a member of a .zip."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from io import BytesIO
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
        with zipfile.ZipFile(self.path) as archive:
            return BytesIO(archive.read(self.member))
