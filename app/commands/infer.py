"""``lucida infer --model ID SERIES|FOLDER|NIFTI... --out DIR``: the batch path.

Each input becomes one or more volumes: a library series (id or UID prefix),
a folder / DICOM file / .zip (scanned and grouped into series), or a NIfTI
file. For each volume the command writes, under ``DIR/<name>/``:
``labels.nii.gz``, ``probability.nii.gz`` (when the model gives scores),
``findings.json`` and ``provenance.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "infer", help="run a model pack on series and write label maps and findings",
        description="Run a model pack on one or many series (library ids/UIDs, folders, "
        "DICOM files, .zip archives or NIfTI files). Research use only.")
    p.add_argument("--model", required=True, metavar="ID",
                   help="model pack id (see `lucida models list`) or a pack folder/.zip")
    p.add_argument("inputs", nargs="+", metavar="SERIES|FOLDER",
                   help="library series id or UID prefix, a folder/file/.zip, or a NIfTI file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--force", action="store_true",
                   help="run even when the input does not match the model (warnings); a "
                   "series of another modality or a 2-D image is refused all the same")
    p.add_argument("--provider", default="auto",
                   help="execution provider: auto (default), cpu, cuda, tensorrt, directml, "
                   "coreml, openvino")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the network (default: every CPU this process may use)")
    p.add_argument("--modality", default=None,
                   help="modality of NIfTI inputs (NIfTI has none; default: the model's first)")
    p.set_defaults(func=cmd_infer)


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name[:120] or "series"


def _nifti_volume(path: Path, modality: str) -> Any:
    import nibabel as nib
    import numpy as np

    from core.convert import array_from_ijk, from_ras_affine_ijk
    from core.volume import Volume

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        from core.errors import UnsupportedError

        raise UnsupportedError(f"{path.name}: a {data.ndim}-D NIfTI is not supported")
    array = np.ascontiguousarray(array_from_ijk(data))
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    return Volume(array, from_ras_affine_ijk(np.asarray(img.affine, dtype=np.float64)),
                  series_uid="", modality=modality, metadata={"source": "nifti"})


def _iter_volumes(args: argparse.Namespace, default_modality: str
                  ) -> Iterator[tuple[str, Any, int | None]]:
    """(name, loader, library series id or None) triples; loaders are called lazily so
    errors stay per series."""
    from app.paths import library_dir

    for item in args.inputs:
        path = Path(item)
        if path.exists() and path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES):
            stem = path.name[:-7] if path.name.lower().endswith(".gz") else path.stem
            yield _safe_name(stem), (lambda p=path: _nifti_volume(p, args.modality
                                                                    or default_modality)), None
        elif path.exists():
            from dicomio.group import group_series
            from dicomio.scan import scan_paths

            result = scan_paths([path])
            groups = [g for g in group_series(result.instances)
                      if g.object_kind.is_image and not g.is_localizer]
            if not groups:
                yield (_safe_name(path.name),
                       (lambda p=path: _fail(f"{p}: no image series found")), None)
            for g in groups:
                sources = [inst.source for inst in g.instances]
                suffix = f"_{g.stack_index}" if g.stack_index else ""
                yield _safe_name(g.series_uid + suffix), (lambda s=sources: _read(s)), None
        else:
            from core.errors import LucidaError
            from store.library import Library

            try:
                lib = Library.open(library_dir(args.library))
                try:
                    row = lib.get_series(item)
                    stored = lib.series_sources(row.id)
                finally:
                    lib.close()
            except LucidaError as exc:
                yield _safe_name(item), (lambda e=exc: _raise(e)), None
                continue
            from dicomio.source import DicomSource

            sources = [DicomSource(s.path, s.member) for s in stored]
            yield _safe_name(f"{row.series_uid}_{row.stack_index}" if row.stack_index
                             else row.series_uid), (lambda s=sources: _read(s)), row.id


def _raise(exc: Exception) -> Any:
    raise exc


def _fail(message: str) -> Any:
    from core.errors import DicomReadError

    raise DicomReadError(message)


def _read(sources: list[Any]) -> Any:
    from dicomio.load import read_volume

    return read_volume(sources)


def _write_outputs(folder: Path, result: Any) -> list[str]:
    import nibabel as nib
    import numpy as np

    from core.atomic import atomic_path, write_text
    from core.convert import array_to_ijk, to_ras_affine_ijk

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    affine = to_ras_affine_ijk(result.label_map.affine)
    img = nib.Nifti1Image(np.asarray(array_to_ijk(result.label_map.array)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_path(folder / "labels.nii.gz") as tmp:
        nib.save(img, str(tmp))
    written.append("labels.nii.gz")
    if result.heatmap is not None:
        heat = nib.Nifti1Image(np.asarray(array_to_ijk(result.heatmap.array), dtype=np.float32),
                               affine)
        heat.set_qform(affine, code=1)
        heat.set_sform(affine, code=1)
        with atomic_path(folder / "probability.nii.gz") as tmp:
            nib.save(heat, str(tmp))
        written.append("probability.nii.gz")
    labels = [{"value": lab.value, "name": lab.name, "color_rgb": list(lab.color_rgb),
               "code": list(lab.code) if lab.code else None}
              for lab in result.label_map.labels]
    write_text(folder / "findings.json", json.dumps(
        {"labels": labels, "findings": [f.to_dict() for f in result.findings],
         "research_use_only": True}, indent=2))
    write_text(folder / "provenance.json", json.dumps(result.provenance, indent=2))
    written += ["findings.json", "provenance.json"]
    return written


def _record(library: Path, series_id: int, result: Any) -> int:
    """Record a library series' result as a model run for review (see app.runs)."""
    from app.runs import record_run
    from review.session import default_reviewer
    from store.library import Library

    lib = Library.open(library)
    try:
        return record_run(lib, series_id, result, actor=default_reviewer())
    finally:
        lib.close()


def cmd_infer(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from app.paths import library_dir
    from core.errors import LucidaError
    from inference.checks import availability
    from inference.manifest import demo_only_problem
    from inference.registry import Registry, mask_packs
    from inference.worker import InferenceJob, JobOptions

    err = Console(stderr=True)
    library = library_dir(args.library)
    work_dir = library / "cache" / "inference"
    registry = Registry.for_library(library)
    pack = registry.resolve(args.model)
    pack.verify()
    m = pack.manifest
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    err.print(f"{m.name} {m.version} — {m.research_use_notice}")
    needs = mask_packs(m, registry.list())  # e.g. the lung mask a nodule detector needs
    items = list(_iter_volumes(args, m.modality[0]))
    failures = 0
    used: set[str] = set()
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(), console=err,
                  transient=False) as bar:
        overall = bar.add_task(f"{len(items)} series", total=len(items))
        for name, load, series_id in items:
            unique = name
            n = 2
            while unique in used:
                unique, n = f"{name}-{n}", n + 1
            used.add(unique)
            task = bar.add_task(unique[:40], total=1.0)
            try:
                volume = load()
                check = availability(volume, m)
                # A DICOM series names itself (its UID), so a demo pack is refused on any
                # real one. A NIfTI has no UID: the command line cannot tell the demo study
                # from another, so there the demo pack's refusal is a --force warning.
                demo = demo_only_problem(m, volume.series_uid)
                soft = demo if demo and not volume.series_uid else None
                hard = [r for r in check.reasons if r != soft]
                warnings = ([soft] if soft else []) + check.warnings
                if hard:
                    raise LucidaError(f"not for this series: {'; '.join(hard)} (--force does "
                                      "not override this)")
                for w in warnings:
                    bar.console.print(f"[yellow]warning[/] {unique}: {w}")
                if warnings and not args.force:
                    raise LucidaError("input does not match the model (see warnings); "
                                      "use --force to run anyway")

                # Each series runs in its own worker process: a crash (segfault,
                # out-of-memory kill) fails that series, not the whole batch.
                job = InferenceJob.start(
                    volume, pack.source,
                    JobOptions(providers=args.provider, threads=args.threads,
                               mask_packs=needs or None),
                    work_dir=work_dir)
                try:
                    while not (status := job.poll()).finished:
                        bar.update(task, completed=status.fraction)
                        time.sleep(0.1)
                    result = job.result(timeout=0)
                finally:
                    job.close()
                for notice in result.notices:
                    bar.console.print(f"[yellow]notice[/] {unique}: {notice}")
                written = _write_outputs(out_root / unique, result)
                provider = result.provenance["provider"].removesuffix("ExecutionProvider")
                bar.console.print(f"{unique}: {len(result.findings)} findings on {provider} "
                                  f"→ {out_root / unique} ({', '.join(written)})")
                if series_id is not None:
                    run_id = _record(library, series_id, result)
                    bar.console.print(f"{unique}: recorded as model run {run_id} "
                                      f"(review: lucida review {series_id} --run {run_id})")
            except LucidaError as exc:
                failures += 1
                bar.console.print(f"[red]failed[/] {unique}: {exc}")
            finally:
                bar.update(task, completed=1.0)
                bar.advance(overall)
    if failures:
        print(f"{failures} of {len(items)} series failed", file=sys.stderr)
        return 2
    return 0
