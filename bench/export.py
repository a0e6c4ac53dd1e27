"""Benchmark: sign-off export, Lucida's SEG + SR + KO against a bare highdicom SEG.

LIDC-IDRI-0001 (133 × 512² CT) with 10 kept findings (spheres of 4–9 mm radius spread
over the volume). Lucida: ``dicomio.export.export_objects`` — reads the source headers,
maps slices to source frames, builds and writes SEG, SR (TID 1500) and KO. Reference:
``hd.seg.Segmentation`` with default options on the same masks (a full
frames × rows × columns × segments array in source order) plus writing it, with the
source headers read by pydicom (``stop_before_pixels``, the cheapest read) counted too.
Same run, warm cache, best of N; target ≤ 1.2× the reference.

    .venv/bin/python bench/export.py [--repeat N]

Skips with a message (exit 0) when ../shared/data is absent.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import bench_start, best_of  # the script's folder is on sys.path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERIES = "ct/LIDC-IDRI-0001"
TARGET = 1.2
FINDINGS = 10


def _spheres(shape: tuple[int, int, int], spacing: np.ndarray, count: int,
             seed: int = 7) -> list[tuple[np.ndarray, tuple[int, int, int], float]]:
    """(crop mask, offset, radius mm) of ``count`` spheres inside the grid."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        radius = float(rng.uniform(4.0, 9.0))
        half = np.ceil(radius / spacing).astype(int)
        centre = [int(rng.integers(h, n - h)) for h, n in zip(half, shape, strict=True)]
        grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing,
                                                                         strict=True)],
                            indexing="ij")
        mask = sum(g**2 for g in grids) <= radius**2
        k, j, i = (int(c - h) for c, h in zip(centre, half, strict=True))
        out.append((np.asarray(mask, dtype=bool), (k, j, i), radius))
    return out


def main() -> int:
    args, data = bench_start(__doc__, 3)
    if data is None:
        return 0

    import highdicom as hd
    import pydicom

    from dicomio.export import AlgorithmInfo, ExportContext, ExportFinding, export_objects
    from dicomio.load import read_volume
    from dicomio.source import DicomSource

    files = sorted((data / SERIES).glob("*.dcm"))
    sources = [DicomSource(p) for p in files]
    volume = read_volume(sources)
    shape = volume.array.shape
    spacing = np.linalg.norm(volume.affine[:3, :3], axis=0)
    spheres = _spheres(shape, spacing, FINDINGS)
    findings = []
    for n, (mask, offset, radius) in enumerate(spheres, start=1):
        centre = volume.affine @ np.array([*(np.array(offset) + np.array(mask.shape) // 2), 1])
        findings.append(ExportFinding(
            number=n, tracking_id=f"m{n}", tracking_uid=hd.UID(), label_name="nodule",
            origin="model", edited=False, decision="accepted", reviewer="Bench^Reader",
            decided_at="2026-12-05T12:00:00+00:00", mask=mask, offset=offset,
            volume_mm3=float(mask.sum() * np.prod(spacing)), longest_diameter_mm=2 * radius,
            centroid_lps=(float(centre[0]), float(centre[1]), float(centre[2])), score=0.9))
    algorithm = AlgorithmInfo(name="Bench model", version="1.0", pack_id="bench")
    context = ExportContext(reviewer="Bench^Reader", signed_off_at="2026-12-05T12:00:00",
                            audit_head_hash="0" * 64, file_stem="bench")

    # The reference's full mask in source order (k of each file from its position).
    inverse = np.linalg.inv(volume.affine)

    def read_headers() -> list[pydicom.Dataset]:
        return [pydicom.dcmread(p, stop_before_pixels=True) for p in files]

    headers = read_headers()
    order = sorted(range(len(headers)), key=lambda m: float(
        (inverse @ [*map(float, headers[m].ImagePositionPatient), 1.0])[0]))
    full = np.zeros((len(files), shape[1], shape[2], FINDINGS), dtype=bool)
    for s, f in enumerate(findings):
        k0, j0, i0 = f.offset
        dk, dj, di = f.mask.shape
        full[k0:k0 + dk, j0:j0 + dj, i0:i0 + di, s] = f.mask
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=f"m{n}",
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT",
                                                       "Morphologically Altered Structure"),
        segmented_property_type=hd.sr.CodedConcept("27925004", "SCT", "Nodule"),
        algorithm_type="AUTOMATIC",
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="Bench model", family=hd.sr.CodedConcept("123110", "DCM",
                                                          "Artificial Intelligence"),
            version="1.0")) for n in range(1, FINDINGS + 1)]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def lucida() -> object:
            return export_objects(sources, shape, volume.affine, findings, algorithm, context,
                                  out / "lucida")

        def reference() -> object:
            ds = read_headers()
            seg = hd.seg.Segmentation(
                source_images=[ds[m] for m in order], pixel_array=full,
                segmentation_type="BINARY", segment_descriptions=descriptions,
                series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
                instance_number=1, manufacturer="Bench", manufacturer_model_name="Bench",
                software_versions="1", device_serial_number="1")
            seg.save_as(out / "reference-seg.dcm")
            return seg

        t_lucida = best_of(lucida, args.repeat)
        t_reference = best_of(reference, args.repeat)
        frames = pydicom.dcmread(out / "lucida" / "bench-seg.dcm",
                                 stop_before_pixels=True).NumberOfFrames
        ref_frames = pydicom.dcmread(out / "reference-seg.dcm",
                                     stop_before_pixels=True).NumberOfFrames

    ratio = t_lucida / t_reference
    verdict = "OK" if ratio <= TARGET else "SLOWER THAN TARGET"
    print(f"cores: {os.cpu_count()}, best of {args.repeat}, warm cache")
    print(f"LIDC-IDRI-0001 ({shape[0]} × {shape[1]}×{shape[2]}), {FINDINGS} kept findings:")
    print(f"  Lucida SEG + SR + KO (written)   {t_lucida:7.3f} s   SEG frames {frames}")
    print(f"  highdicom SEG only (written)     {t_reference:7.3f} s   SEG frames {ref_frames}")
    print(f"  ratio Lucida/highdicom           {ratio:7.2f}×   (target ≤ {TARGET}×: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
