"""Compressed DICOM through a packaged ``lucida``: import, load, export, compare.

Codecs are the part of a frozen build most easily lost (imagecodecs and pylibjpeg load
their decoders lazily or through entry points). For each of pydicom's compressed test
files (JPEG 2000, JPEG-LS, lossless JPEG, RLE, 12-bit JPEG) this runs the given
``lucida`` to import it into its own library and export it as NIfTI, and does the same
with the build venv's ``lucida``: the voxels must be identical, and for the lossless files
equal to pydicom's own decoding too. (pydicom cannot decode the 12-bit JPEG at all; only
imagecodecs can, so that file catches a bundle that lost it.)

    python packaging/bundle/codec_check.py dist/lucida/lucida
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels.processing import apply_rescale

# (file, transfer syntax it exercises, whether pydicom decodes it as the reference)
CASES: tuple[tuple[str, str, bool], ...] = (
    ("MR_small_jp2klossless.dcm", "JPEG 2000 lossless", True),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS lossless", True),
    ("JPEG-LL.dcm", "JPEG lossless (process 14)", True),
    ("MR_small_RLE.dcm", "RLE lossless", True),
    ("JPEG-lossy.dcm", "JPEG extended 12-bit", False),
)


def reference(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return np.asarray(apply_rescale(ds.pixel_array, ds), dtype=np.float64)


def export(exe: str, source: Path, work: Path) -> np.ndarray | str:
    """The voxels ``exe`` imports and exports from source, or why it could not."""
    folder = work / "in"
    folder.mkdir(parents=True)
    (folder / source.name).write_bytes(source.read_bytes())
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work / "home")}
    out = work / "volume.nii.gz"
    for args in (["import", str(folder)], ["export-volume", "1", str(out)]):
        done = subprocess.run([exe, "--library", str(work / "library"), *args], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            return f"lucida {args[0]} failed ({done.returncode}): {done.stderr.strip()[-300:]}"
    return np.asarray(nib.load(out).get_fdata(), dtype=np.float64)


def check_deid(exe: str, source: Path, work: Path) -> str | None:
    """De-identified export (dicognito, highdicom) through the packaged app."""
    folder = work / "in"
    folder.mkdir(parents=True)
    (folder / source.name).write_bytes(source.read_bytes())
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work / "home")}
    out = work / "deid"
    for args in (["import", str(folder)], ["export-deid", "1", "--out", str(out)]):
        done = subprocess.run([exe, "--library", str(work / "library"), *args], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            return f"lucida {args[0]} failed ({done.returncode}): {done.stderr.strip()[-300:]}"
    written = [p for p in out.rglob("*") if p.is_file()]
    if len(written) != 1:
        return f"export-deid wrote {len(written)} files, not 1"
    before, after = pydicom.dcmread(source), pydicom.dcmread(written[0])
    if str(after.PatientName) == str(before.PatientName) or \
            after.SOPInstanceUID == before.SOPInstanceUID:
        return "export-deid kept the patient's name or the SOP Instance UID"
    return None


def check_one(exe: str, venv_exe: str, source: Path, work: Path,
              pydicom_reference: bool) -> str | None:
    """None when the packaged app's voxels are the venv app's (and pydicom's)."""
    got = export(exe, source, work / "packaged")
    if isinstance(got, str):
        return got
    want = export(venv_exe, source, work / "venv")
    if isinstance(want, str):
        return f"the venv's lucida: {want}"
    if got.shape != want.shape or not np.array_equal(got, want):
        return "the packaged app's voxels differ from the venv app's"
    if pydicom_reference:
        ref = reference(source)
        # Orientation differs (NIfTI is RAS, pixel_array is rows x columns): compare the
        # sorted values, which a wrong decoder (or none) cannot match.
        if ref.size != got.size or not np.array_equal(np.sort(got.ravel()),
                                                      np.sort(ref.ravel())):
            return "the voxels differ from pydicom's decoding"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: codec_check.py LUCIDA_EXECUTABLE", file=sys.stderr)
        return 2
    exe = os.path.abspath(args[0])
    venv_exe = str(Path(sys.executable).with_name("lucida"))
    failures = []
    with tempfile.TemporaryDirectory(prefix="lucida-codec-check-") as tmp:
        for i, (name, what, lossless) in enumerate(CASES):
            source = Path(str(get_testdata_file(name)))
            problem = check_one(exe, venv_exe, source, Path(tmp, str(i)), lossless)
            print(f"  {what:32s} {name:32s} {'ok' if problem is None else problem}")
            if problem is not None:
                failures.append(name)
        problem = check_deid(exe, Path(str(get_testdata_file("MR_small.dcm"))),
                             Path(tmp, "deid"))
        print(f"  {'de-identified export':32s} {'MR_small.dcm':32s} "
              f"{'ok' if problem is None else problem}")
        if problem is not None:
            failures.append("export-deid")
    if failures:
        print(f"codec check FAILED for {', '.join(failures)}", file=sys.stderr)
        return 1
    print("codec check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
