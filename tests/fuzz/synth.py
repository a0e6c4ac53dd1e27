"""The structure-aware target: fuzz bytes choose the attributes of a small series.

Byte-level mutation seldom produces a well-formed file whose *values* are odd
(NaN positions, parallel orientation vectors, zero spacing, a slope of 1e308,
slices 1e6 mm apart). Here each byte of the input is a choice: how many files,
which transfer syntax and SOP class, image size and bit depth, and for each
file its position, orientation, spacing, rescale and how its pixel data are
cut. pydicom writes the files, so they always parse; what is fuzzed is the
geometry and value handling of scan → group → plan → load. The choices are
biased towards plausible values so that most inputs reach deep into the loader.

No atheris here: a byte reader of our own makes the mapping deterministic.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Values that break naive arithmetic, mixed in with plausible ones.
ODD_NUMBERS: tuple[float, ...] = (0.0, -0.0, -1.0, 1e-9, 1e9, 1e308, -1e308, math.inf,
                                  -math.inf, math.nan, 65535.0, 2.0**31, 0.5)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SOP_CLASSES = (CT_IMAGE, CT_IMAGE, "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.7",
               "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.3.1",
               "1.2.840.10008.5.1.4.1.1.481.1", "1.2.3.4.5")
SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2",
            "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5")
ORIENTATIONS: tuple[tuple[float, ...], ...] = (
    (1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), (1, 0, 0, 0, 0, -1),
    (0.7071068, 0.7071068, 0, -0.7071068, 0.7071068, 0),  # oblique
    (1, 0, 0, 0, 0.9483236, -0.3173047),  # tilted (18.5 degrees)
    (1, 0, 0, 1, 0, 0),  # parallel row and column
    (0, 0, 0, 0, 0, 0),  # zero vectors
    (1, 0, 0, 0, 1),  # five values
    (2, 0, 0, 0, 3, 0),  # not unit length
)
PHOTOMETRIC = ("MONOCHROME2", "MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "PALETTE COLOR",
               "", "YBR_FULL_422")


class Choices:
    """Reads choices from fuzz bytes; past the end every choice is its first option."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        value = self.data[self.pos]
        self.pos += 1
        return value

    def below(self, n: int) -> int:
        return self.byte() % n if n > 1 else 0

    def pick(self, options: Sequence[T]) -> T:
        return options[self.below(len(options))]

    def rarely(self) -> bool:
        """True for about 1 byte value in 8."""
        return self.byte() >= 224

    def number(self, plausible: Sequence[float]) -> float:
        """Mostly one of ``plausible``; sometimes an odd value or raw float bits."""
        kind = self.byte()
        if kind < 200:
            return plausible[kind % len(plausible)]
        if kind < 240:
            return self.pick(ODD_NUMBERS)
        raw = bytes(self.byte() for _ in range(8))
        return float(struct.unpack("<d", raw)[0])


def _ds(value: float) -> str:
    """Decimal String text for any float, NaN and infinities included (validation off)."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value))


@contextlib.contextmanager
def _lenient_pydicom() -> Iterator[None]:
    """Let pydicom write invalid values (that is the point); restored afterwards."""
    from pydicom import config

    saved = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = saved


def _series_plan(c: Choices) -> dict[str, Any]:
    rows = c.pick((4, 8, 3, 16, 1, 2, 0, 65535, 4096))
    columns = rows if c.byte() < 160 else c.pick((4, 8, 5, 1, 0, 65535))
    bits = c.pick((16, 16, 8, 32, 1, 12, 64, 0))
    return {
        "n_files": 1 + c.below(4),
        "sop_class": c.pick(SOP_CLASSES),
        "syntax": c.pick(SYNTAXES),
        "modality": c.pick(("CT", "CT", "MR", "PT", "OT", "US", "")),
        "rows": rows,
        "columns": columns,
        "bits": bits,
        "bits_stored": bits if c.byte() < 180 else c.pick((12, 0, 1, 33, 15)),
        "signed": c.pick((0, 1, 1, 2)),
        "photometric": c.pick(PHOTOMETRIC),
        "samples": c.pick((1, 1, 1, 3, 4, 0)),
        "frames": c.pick((None, None, None, 1, 2, 3, 0, -1)),
        "orientation": c.pick(ORIENTATIONS),
        "step": c.number((2.5, 1.0, 1.25, 5.0, -2.5, 0.0)),
        "drift": c.number((0.0, 0.0, 0.0, 0.8, -0.3)),  # in-plane shift per slice (tilt)
        "spacing": (c.number((0.7, 1.0, 0.5)), c.number((0.7, 1.0, 0.5))),
        "thickness": c.number((2.5, 1.0, 0.0)),
        "tilt": c.number((0.0, 0.0, 18.5)),
        "slope": c.number((1.0, 1.0, 0.5, 2.0)),
        "intercept": c.number((-1024.0, 0.0, 0.0, -1000.5)),
        "padding": c.pick((None, None, -2000, 0, 65535, 32768)),
        "enhanced": c.rarely(),
        "localizer_every": c.pick((0, 0, 0, 2, 3)),
    }


def _dataset(plan: dict[str, Any], c: Choices, index: int, uids: dict[str, str]) -> Any:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence

    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = plan["sop_class"]
    meta.MediaStorageSOPInstanceUID = f"{uids['root']}.{index + 1}"
    meta.TransferSyntaxUID = plan["syntax"]
    ds.file_meta = meta
    ds.SOPClassUID = plan["sop_class"]
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID if not c.rarely() else uids["root"]
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["for"]
    ds.PatientID = "FUZZ"
    ds.Modality = plan["modality"]
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1 if not c.rarely() else c.pick((0, -1, 1))
    every = plan["localizer_every"]
    ds.ImageType = ["ORIGINAL", "PRIMARY",
                    "LOCALIZER" if every and index % every == 0 else "AXIAL"]
    ori = plan["orientation"] if not c.rarely() else c.pick(ORIENTATIONS)
    row = np.array(ori[:3], dtype=float) if len(ori) >= 6 else np.zeros(3)
    col = np.array(ori[3:6], dtype=float) if len(ori) >= 6 else np.zeros(3)
    with np.errstate(all="ignore"):
        normal = np.cross(row, col)
        pos = (np.array([-100.0, -120.0, 50.0]) + normal * plan["step"] * index
               + col * plan["drift"] * index)
    if c.rarely():
        pos[c.below(3)] = c.number((0.0,))
    ds.ImagePositionPatient = [_ds(v) for v in pos]
    ds.ImageOrientationPatient = [_ds(v) for v in ori]
    ds.PixelSpacing = [_ds(v) for v in plan["spacing"]]
    ds.SliceThickness = _ds(plan["thickness"])
    if c.rarely():
        ds.SpacingBetweenSlices = _ds(c.number((2.5, 0.0)))
    if plan["tilt"]:
        ds.GantryDetectorTilt = _ds(plan["tilt"])
    ds.RescaleSlope = _ds(plan["slope"])
    ds.RescaleIntercept = _ds(plan["intercept"])
    if c.rarely():
        ds.WindowCenter = _ds(c.number((40.0,)))
        ds.WindowWidth = _ds(c.number((400.0,)))
    ds.Rows = plan["rows"]
    ds.Columns = plan["columns"]
    ds.BitsAllocated = plan["bits"]
    ds.BitsStored = plan["bits_stored"]
    ds.HighBit = max(0, plan["bits_stored"] - 1)
    ds.PixelRepresentation = plan["signed"]
    ds.SamplesPerPixel = plan["samples"]
    if plan["photometric"]:
        ds.PhotometricInterpretation = plan["photometric"]
    if plan["samples"] > 1:
        ds.PlanarConfiguration = c.pick((0, 1))
    frames = plan["frames"]
    if frames is not None:
        ds.NumberOfFrames = frames
    if plan["padding"] is not None:
        ds.add_new(0x00280120, "SS" if plan["signed"] == 1 else "US",
                   int(plan["padding"]) & (0x7FFF if plan["signed"] == 1 else 0xFFFF))
    if plan["enhanced"]:
        _functional_groups(ds, plan, c, pos, DicomSequence, Dataset)
    # Pixel data: the exact size, cut short, empty, doubled or absent.
    n_frames = frames if isinstance(frames, int) and frames > 0 else 1
    exact = (plan["rows"] * plan["columns"] * max(plan["samples"], 1)
             * max(plan["bits"], 8) // 8 * n_frames)
    exact = min(exact, 1 << 16)  # a 65535² header stays a small file: only the header is big
    cut = c.pick(("exact", "exact", "exact", "short", "empty", "double", "absent", "odd"))
    size = {"exact": exact, "short": max(exact - 1 - c.below(64), 0), "empty": 0,
            "double": exact * 2, "absent": -1, "odd": exact | 1}[cut]
    if size >= 0:
        pattern = bytes((i * 37 + index * 11) & 0xFF for i in range(256))
        ds.PixelData = (pattern * (size // 256 + 1))[:size]
        ds["PixelData"].VR = "OW" if plan["bits"] > 8 else "OB"
    return ds


def _functional_groups(ds: Any, plan: dict[str, Any], c: Choices, pos: Any,
                       seq: Any, dataset: Any) -> None:
    """Enhanced multi-frame geometry: shared orientation/spacing, per-frame positions."""
    shared = dataset()
    measures = dataset()
    measures.PixelSpacing = [_ds(v) for v in plan["spacing"]]
    measures.SliceThickness = _ds(plan["thickness"])
    orientation = dataset()
    orientation.ImageOrientationPatient = [_ds(v) for v in plan["orientation"]]
    shared.PixelMeasuresSequence = seq([measures])
    if not c.rarely():
        shared.PlaneOrientationSequence = seq([orientation])
    transform = dataset()
    transform.RescaleSlope = _ds(plan["slope"])
    transform.RescaleIntercept = _ds(plan["intercept"])
    transform.RescaleType = c.pick(("HU", "US", ""))
    shared.PixelValueTransformationSequence = seq([transform])
    ds.SharedFunctionalGroupsSequence = seq([shared])
    frames = plan["frames"] if isinstance(plan["frames"], int) else 1
    per_frame = []
    for f in range(max(0, min(frames, 4)) + c.pick((0, 0, 1, -1))):
        item = dataset()
        position = dataset()
        position.ImagePositionPatient = [_ds(pos[0]), _ds(pos[1]),
                                         _ds(float(pos[2]) + f * plan["step"])]
        if not c.rarely():
            item.PlanePositionSequence = seq([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = seq(per_frame)


def write_series(data: bytes, folder: Path) -> list[Path]:
    """Write the series that ``data`` describes into ``folder``; returns the files."""
    import pydicom
    from pydicom.uid import RLELossless

    c = Choices(data)
    plan = _series_plan(c)
    uids = {"root": "1.2.826.0.1.3680043.10.1234.1", "study": "1.2.826.0.1.3680043.10.1234.2",
            "series": "1.2.826.0.1.3680043.10.1234.3", "for": "1.2.826.0.1.3680043.10.1234.4"}
    written: list[Path] = []
    with _lenient_pydicom():
        for index in range(plan["n_files"]):
            ds = _dataset(plan, c, index, uids)
            path = folder / f"IM{index:04d}.dcm"
            syntax = plan["syntax"]
            if syntax == RLELossless:
                # A real RLE stream when pydicom can make one, else native pixels.
                try:
                    ds.compress(RLELossless, encoding_plugin="pydicom")
                except Exception:
                    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
            try:
                pydicom.dcmwrite(path, ds, enforce_file_format=True)
            except Exception:
                # Values pydicom cannot encode (e.g. a US out of range): write what it can.
                with contextlib.suppress(Exception):
                    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
                    pydicom.dcmwrite(path, ds, enforce_file_format=False)
            if path.exists():
                written.append(path)
    return written
