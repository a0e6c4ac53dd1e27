"""One family of errors for all of Lucida.

Each subclasses a built-in so callers that only know Python still catch it,
and each message says what failed and what the user can do about it.
"""

from __future__ import annotations


class LucidaError(Exception):
    """Base of every error Lucida raises on purpose."""


class GeometryError(LucidaError, ValueError):
    """A volume or grid whose geometry is unusable (singular affine, wrong shape)."""


class DicomReadError(LucidaError, ValueError):
    """A DICOM file or series that cannot be read or turned into a volume."""


class UnsupportedError(LucidaError, NotImplementedError):
    """Valid input that Lucida does not handle (yet), e.g. an unknown SOP class."""


class StoreError(LucidaError, RuntimeError):
    """The library database is missing, locked, corrupt or of a newer schema."""


class ModelPackError(LucidaError, ValueError):
    """A model pack that is refused: the message names the field or file."""


class InferenceError(LucidaError, RuntimeError):
    """Inference failed: bad input, runtime failure, worker crash, out of memory."""


class CancelledError(LucidaError):
    """A long operation stopped because the user cancelled it."""
