"""Seed corpus for the fuzz targets, built outside version control (``.fuzz/corpus``).

Seeds come from the zoo (pydicom's test files and the pydicom-data store, see
``../shared/data/zoo/README.md``) and from a few files of each real series in
``../shared/data`` when it is present. Files larger than ``max_len`` are
shrunk with pydicom — header kept, pixels cropped to a small tile and (for
compressed files) decoded to native little endian or re-encoded losslessly —
because libFuzzer would otherwise spend its mutations inside pixel data.
Nothing here is ever committed: the folder carries its own ``.gitignore``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import random
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

from tests.fuzz.target import join_series

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAX_LEN = 128 * 1024
#: Crop size of shrunk images: small enough to keep executions fast, big enough
#: that the image is not degenerate.
TILE = 16
#: How many consecutive files of each real series seed the "series" target.
SERIES_SLICES = 3


def shared_data() -> Path | None:
    """../shared/data (or $LUCIDA_SHARED/data) when present."""
    env = os.environ.get("LUCIDA_SHARED")
    root = Path(env) if env else REPO_ROOT.parent / "shared"
    return root / "data" if (root / "data").is_dir() else None


def zoo_files() -> list[Path]:
    """Every file of the zoo: pydicom's test files and the pydicom-data store."""
    import pydicom.data

    files = [Path(p) for p in pydicom.data.get_testdata_files() if Path(p).is_file()]
    spec = importlib.util.find_spec("data_store")
    if spec is not None and spec.submodule_search_locations:
        store = Path(next(iter(spec.submodule_search_locations))) / "data"
        files.extend(sorted(p for p in store.glob("*") if p.is_file()))
    return sorted({p.resolve() for p in files} - {p for p in files if p.suffix == ".txt"})


def shrink(data: bytes, max_len: int = DEFAULT_MAX_LEN) -> bytes | None:
    """``data`` if small enough, else the same header with a cropped image; None on failure."""
    if len(data) <= max_len:
        return data
    import numpy as np
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            if "PixelData" not in ds or int(ds.get("BitsAllocated", 0)) == 1:
                return None
            was_jpeg_lossless = ds.file_meta.get("TransferSyntaxUID") in (
                JPEGLosslessSV1, "1.2.840.10008.1.2.4.57")
            arr = ds.pixel_array
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            if frames > 1:
                arr = arr[:2]
            # Crop the middle of the image: the corner is often all background.
            axis_r = 1 if frames > 1 else 0
            rows, cols = arr.shape[axis_r], arr.shape[axis_r + 1]
            r0, c0 = max(0, rows // 2 - TILE // 2), max(0, cols // 2 - TILE // 2)
            index: list[slice] = [slice(None)] * arr.ndim
            index[axis_r] = slice(r0, r0 + TILE)
            index[axis_r + 1] = slice(c0, c0 + TILE)
            arr = np.ascontiguousarray(arr[tuple(index)])
            ds.Rows, ds.Columns = arr.shape[axis_r], arr.shape[axis_r + 1]
            if frames > 1:
                ds.NumberOfFrames = arr.shape[0]
                for name in ("PerFrameFunctionalGroupsSequence",):
                    if name in ds:
                        ds[name].value = ds[name].value[: arr.shape[0]]
            if samples > 1:
                ds.PlanarConfiguration = 0
                if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
                    ds.PhotometricInterpretation = "RGB"
            stored = arr.astype(arr.dtype.newbyteorder("<"))
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.PixelData = stored.tobytes()
            ds["PixelData"].VR = "OW" if stored.dtype.itemsize > 1 else "OB"
            if was_jpeg_lossless and samples == 1 and frames == 1:
                # Keep a JPEG Lossless seed (the MIDRC series' syntax), re-encoded small.
                encoded = _jpeg_lossless(stored, int(ds.get("BitsStored", 16) or 16))
                if encoded is not None:
                    from pydicom.encaps import encapsulate

                    ds.PixelData = encapsulate([encoded])
                    ds["PixelData"].VR = "OB"
                    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=False)
    except Exception as exc:  # best effort: a seed we cannot shrink is left out
        log.debug("cannot shrink: %s", exc)
        return None
    value = out.getvalue()
    return value if len(value) <= max_len else None


def _jpeg_lossless(arr: object, bits: int) -> bytes | None:
    try:
        import imagecodecs

        return bytes(imagecodecs.ljpeg_encode(arr, bitspersample=bits))
    except Exception:  # this imagecodecs build has no lossless JPEG encoder
        return None


def _real_series(root: Path) -> list[list[Path]]:
    """A few consecutive files of each real series (files of a folder, sorted by name)."""
    picked: list[list[Path]] = []
    for top in ("ct", "mr", "masks"):
        base = root / top
        if not base.is_dir():
            continue
        folders = sorted({p.parent for p in base.rglob("*.dcm")})
        for folder in folders:
            files = sorted(folder.glob("*.dcm"))
            if top == "masks":
                picked.extend([[f] for f in files])
                continue
            middle = len(files) // 2
            picked.append(files[middle:middle + SERIES_SLICES])
            # The gantry-tilt series changes spacing part way: seed that transition too.
            if "tilt" in folder.name.lower() and len(files) > SERIES_SLICES:
                picked.append(files[:SERIES_SLICES])
    return picked


def _zip_of(items: Iterable[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return out.getvalue()


def _save(folder: Path, data: bytes) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha1(data).hexdigest()
    if path.exists():
        return False
    path.write_bytes(data)
    return True


def protect(folder: Path) -> None:
    """Make ``folder`` invisible to git even before .gitignore names it."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# fuzz corpus and findings: never committed\n*\n")


def build(corpus: Path, *, max_len: int = DEFAULT_MAX_LEN, seed: int = 0) -> dict[str, int]:
    """Fill ``corpus/<target>/`` with seeds; returns the count added per target."""
    import pydicom.data

    counts = dict.fromkeys(("file", "zip", "series", "dicomdir", "synth"), 0)
    small: list[bytes] = []
    for path in zoo_files():
        data = path.read_bytes()
        if path.name.upper().startswith("DICOMDIR"):
            counts["dicomdir"] += _save(corpus / "dicomdir", data)
            continue
        shrunk = shrink(data, max_len)
        if shrunk is not None:
            small.append(shrunk)

    # Multi-file sets from the zoo: pydicom's DICOMDIR test tree holds small CT and MR series.
    tree = Path(pydicom.data.get_testdata_file("DICOMDIR")).parent
    for folder in sorted({p.parent for p in tree.rglob("*") if p.is_file()}):
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.isdigit())
        if len(files) >= 2:
            counts["series"] += _save(corpus / "series",
                                      join_series([f.read_bytes() for f in files[:4]]))

    root = shared_data()
    if root is not None:
        for group in _real_series(root):
            parts = [p for p in (shrink(f.read_bytes(), max_len) for f in group) if p]
            small.extend(parts)
            if len(parts) > 1:
                counts["series"] += _save(corpus / "series", join_series(parts))
    else:
        log.warning("../shared/data is absent: seeding from the zoo only")

    for data in small:
        counts["file"] += _save(corpus / "file", data)
        counts["zip"] += _save(corpus / "zip", data)
    # A few archives as plain-file seeds, so the file target also mutates zip structure.
    rng = random.Random(seed)
    for n in range(4):
        members = rng.sample(small, k=min(2, len(small)))
        archive = _zip_of((f"dir{n}/IM{i:04d}", m) for i, m in enumerate(members)
                          if len(m) < max_len // 4)
        counts["file"] += _save(corpus / "file", archive)
    # The structure-aware target reads its bytes as choices: random seeds of a few sizes.
    for size in (8, 32, 64, 128, 256, 512) * 4:
        counts["synth"] += _save(corpus / "synth", rng.randbytes(size))
    return counts


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=REPO_ROOT / ".fuzz" / "corpus")
    parser.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN)
    args = parser.parse_args()
    protect(args.corpus.parent)
    counts = build(args.corpus, max_len=args.max_len)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
