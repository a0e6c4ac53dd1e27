"""Nodule detection FROC on LIDC-IDRI-style folders (issue 17): LUNA16's sensitivities and CPM.

    .venv/bin/python bench/nodule_froc.py DIR [DIR...] [--pack PACK] [--threads 2]
                                          [--json OUT]

Each DIR holds a CT series and its LIDC reader XML anywhere beneath (the XML's
SeriesInstanceUid picks the series when there are several). Per scan:

* the series is scanned, grouped and loaded as ``lucida infer`` does it
  (``dicomio.scan.scan_paths`` → ``dicomio.group.group_series`` →
  ``dicomio.load.read_volume``);
* the reference comes from the XML (``dicomio.lidc_xml.lidc_reference``: nodules >= 3 mm
  contoured by >= 2 readers; everything else marked is excluded);
* the pack runs through ``inference.pipeline.run``, the engine the app's inference worker
  calls (packs its ``mask_by`` steps name run first, their label maps passed on), after
  ``inference.checks.availability`` (hard refusals fail the scan; warnings are printed);
* each finding is a detection at its ``centroid_lps`` scored by its ``max_score``.

The FROC maths (hits, LUNA16's operating points, CPM) are in ``bench/froc.py``. Without
``--pack`` the first installed or bundled chest CT detector pack is used (modality CT,
output kind "detections", not demo-only, body part naming the chest or lung, or none);
when there is none the tool says what to pass. Exit status: 0, 1 (bad arguments or no
pack), 2 (some scan failed; the FROC of the others is still printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# The lucida packages first (bench/inference.py must not shadow the ``inference``
# package); this folder last, only for froc.py beside this file.
sys.path.insert(0, str(REPO))
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))

from froc import (  # noqa: E402
    LUNA16_FP_RATES,
    Detection,
    FrocCurve,
    ScanMatch,
    Target,
    cpm,
    froc,
    match,
    sensitivity_at,
)

CHEST_WORDS = ("CHEST", "LUNG", "THORAX", "THORACIC")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Sensitivity at 1/8..8 false positives per scan and the CPM (LUNA16) of "
        "a nodule detector pack on LIDC-IDRI-style folders (series + reader XML).")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                   help="folder holding a CT series and its LIDC reader XML")
    p.add_argument("--pack", default=None, metavar="PACK",
                   help="model pack id or pack folder/.zip (default: the chest CT detector)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--provider", default="auto", help="execution provider (default auto)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT",
                   help="also write every number as JSON")
    p.add_argument("--min-readers", type=int, default=2,
                   help="readers who must contour a nodule for the reference (default 2)")
    p.add_argument("--library", default=None, help="library folder (user model packs)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if args.min_readers < 1:
        p.error("--min-readers must be at least 1")
    return args


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One scan to evaluate: a reader XML and the series it names."""

    name: str
    xml: Path
    read: Any  # dicomio.lidc_xml.LidcRead
    instances: list[Any]  # dicomio.scan.InstanceHeader of the series' stack


@dataclass
class ScanResult:
    name: str
    series_uid: str = ""
    slices: int = 0
    nodules: list[Any] = field(default_factory=list)  # ReferenceNodule
    excluded: int = 0
    detections: list[Detection] = field(default_factory=list)
    matched: ScanMatch | None = None
    load_s: float = 0.0
    inference_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def find_cases(folder: Path) -> tuple[list[Case], list[ScanResult]]:
    """Every LIDC reader XML beneath ``folder`` whose series is there too, and a failed
    row for each reader XML that cannot be read (the others still count)."""
    from core.errors import DicomReadError
    from dicomio.group import group_series
    from dicomio.lidc_xml import is_lidc_xml, read_lidc_xml
    from dicomio.scan import scan_paths

    if not folder.is_dir():
        raise DicomReadError(f"{folder}: not a folder")
    xmls = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".xml"
                  and p.is_file() and is_lidc_xml(p))
    if not xmls:
        raise DicomReadError(f"{folder}: no LIDC reader XML (LidcReadMessage) beneath it")
    groups = [g for g in group_series(scan_paths([folder]).instances)
              if g.object_kind.is_image and not g.is_localizer]
    cases: list[Case] = []
    failed: list[ScanResult] = []
    unmatched: list[str] = []
    for xml in xmls:
        name = folder.name if len(xmls) == 1 else f"{folder.name}/{xml.relative_to(folder)}"
        try:
            read = read_lidc_xml(xml)
        except DicomReadError as exc:
            failed.append(ScanResult(name, error=str(exc)))
            continue
        mine = [g for g in groups if g.series_uid == read.series_uid]
        if not mine:  # e.g. the reader XML of a radiograph in the same patient folder
            unmatched.append(read.series_uid)
            continue
        group = max(mine, key=lambda g: len(g.instances))  # the main stack of the series
        cases.append(Case(name, xml, read, list(group.instances)))
    if not cases and not failed:
        raise DicomReadError(f"{folder}: the series its reader XML names "
                             f"({', '.join(sorted(set(unmatched)))}) is not among the image "
                             "series found there")
    return cases, failed


# --------------------------------------------------------------------------- packs


def default_pack(packs: Sequence[Any]) -> Any | None:
    """The first chest CT detector among ``packs`` (ModelPack objects)."""
    for pack in packs:
        m = pack.manifest
        chest = not m.body_part or any(w in b.upper() for b in m.body_part
                                       for w in CHEST_WORDS)
        if ("CT" in m.modality and m.output.kind == "detections" and not m.demo_only
                and chest):
            return pack
    return None


def resolve_pack(ref: str | None, library: str | None) -> tuple[Any, Any]:
    """(pack, registry); SystemExit with what to pass when there is no pack."""
    from app.paths import library_dir
    from inference.registry import Registry

    registry = Registry.for_library(library_dir(library))
    if ref is not None:
        return registry.resolve(ref), registry
    pack = default_pack(registry.list())
    if pack is None:
        raise SystemExit(
            "no chest CT nodule detector pack is bundled or installed (a CT pack with output "
            "kind 'detections'); pass one with --pack PACK (a pack id from `lucida models "
            "list`, or a pack folder or .zip)")
    return pack, registry


# --------------------------------------------------------------------------- one scan


def evaluate(case: Case, pack: Any, registry: Any, *, threads: int, provider: str,
             min_readers: int) -> ScanResult:
    from core.errors import LucidaError
    from dicomio.lidc_xml import SliceGeometry, lidc_reference
    from dicomio.load import read_volume
    from inference.checks import availability
    from inference.manifest import MaskByStep
    from inference.pipeline import run

    out = ScanResult(case.name, case.read.series_uid)
    try:
        t0 = time.perf_counter()
        volume = read_volume([inst.source for inst in case.instances])
        out.load_s = time.perf_counter() - t0
        out.slices = volume.shape[0]
        ref = lidc_reference(case.read, SliceGeometry.from_volume(volume, case.instances),
                             min_readers=min_readers)
        out.nodules, out.excluded = ref.nodules, len(ref.excluded)
        check = availability(volume, pack.manifest)
        if check.reasons:
            raise LucidaError("not for this series: " + "; ".join(check.reasons))
        out.warnings = list(check.warnings)
        t0 = time.perf_counter()
        masks = {}
        for step in pack.manifest.postprocessing:
            if isinstance(step, MaskByStep) and step.model not in masks:
                masks[step.model] = run(volume, registry.get(step.model), threads=threads,
                                        providers=provider).label_map
        result = run(volume, pack, threads=threads, providers=provider, masks=masks or None)
        out.inference_s = time.perf_counter() - t0
    except LucidaError as exc:
        out.error = str(exc)
        return out
    out.detections = [Detection(f.centroid_lps, float(f.max_score)) for f in result.findings]
    out.matched = match(out.detections,
                        [Target(n.centre_lps, n.diameter_mm) for n in out.nodules],
                        [Target(n.centre_lps, n.diameter_mm) for n in ref.excluded])
    return out


# --------------------------------------------------------------------------- report


def _rate_key(rate: float) -> str:
    return f"{rate:g}"


def summary(results: Sequence[ScanResult]) -> tuple[FrocCurve, dict[str, float], float] | None:
    matched = [r.matched for r in results if r.matched is not None]
    if not matched:
        return None
    curve = froc(matched)
    sens = {_rate_key(r): sensitivity_at(curve, r) for r in LUNA16_FP_RATES}
    return curve, sens, cpm(curve)


def _finite(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def to_json(results: Sequence[ScanResult], pack: Any) -> dict[str, Any]:
    done = summary(results)
    m = pack.manifest
    scans = []
    for r in results:
        row: dict[str, Any] = {
            "name": r.name, "series_uid": r.series_uid, "slices": r.slices,
            "load_s": round(r.load_s, 3), "inference_s": round(r.inference_s, 3),
            "error": r.error, "warnings": r.warnings, "excluded_findings": r.excluded,
            "reference": [{"centre_lps_mm": list(n.centre_lps), "diameter_mm": n.diameter_mm,
                           "readers": n.n_readers, "reader_ids": list(n.reader_ids)}
                          for n in r.nodules],
        }
        if r.matched is not None:
            row["detections"] = [{"centre_lps_mm": list(d.centre), "score": d.score,
                                  "outcome": o}
                                 for d, o in zip(r.detections, r.matched.outcomes, strict=True)]
            row["hits"] = r.matched.hits
            row["false_positives"] = len(r.matched.fp_scores)
        scans.append(row)
    out: dict[str, Any] = {"pack": {"id": m.id, "name": m.name, "version": m.version},
                           "scans": scans}
    if done is not None:
        curve, sens, score = done
        out["froc"] = {"thresholds": [_finite(t) for t in curve.thresholds],
                       "fp_per_scan": list(curve.fp_per_scan),
                       "sensitivity": [_finite(s) for s in curve.sensitivity],
                       "nodules": curve.n_nodules, "scans": curve.n_scans}
        out["sensitivity_at"] = {k: _finite(v) for k, v in sens.items()}
        out["cpm"] = _finite(score)
    return out


def print_report(results: Sequence[ScanResult], pack: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    m = pack.manifest
    table = Table(title=f"{m.name} {m.version} ({m.id}) on {len(results)} scan(s)")
    for col in ("scan", "slices", "reference", "excluded", "detections", "hits", "FP",
                "load s", "inference s"):
        table.add_column(col, justify="left" if col == "scan" else "right")
    for r in results:
        if r.matched is None:
            table.add_row(r.name, str(r.slices or "-"), str(len(r.nodules)), str(r.excluded),
                          "-", "-", "-", f"{r.load_s:.2f}", "-")
            continue
        table.add_row(r.name, str(r.slices), str(len(r.nodules)), str(r.excluded),
                      str(len(r.detections)), str(r.matched.hits),
                      str(len(r.matched.fp_scores)), f"{r.load_s:.2f}",
                      f"{r.inference_s:.2f}")
    console.print(table)
    for r in results:
        for w in r.warnings:
            console.print(f"warning {r.name}: {w}")
        if r.error:
            console.print(f"failed {r.name}: {r.error}")
    done = summary(results)
    if done is None:
        console.print("no scan was evaluated: no FROC")
        return
    curve, sens, score = done
    froc_table = Table(title=f"FROC: {curve.n_nodules} reference nodule(s), "
                             f"{curve.n_scans} scan(s)")
    for key in sens:
        froc_table.add_column(f"{key} FP/scan", justify="right")
    froc_table.add_column("CPM", justify="right")
    froc_table.add_row(*(f"{v:.3f}" for v in sens.values()), f"{score:.3f}")
    console.print(froc_table)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from core.errors import LucidaError

    try:
        pack, registry = resolve_pack(args.pack, args.library)
        pack.verify()
    except LucidaError as exc:
        print(f"nodule_froc: {exc}", file=sys.stderr)
        return 1
    results: list[ScanResult] = []
    for folder in args.dirs:
        try:
            cases, failed = find_cases(folder)
        except LucidaError as exc:
            results.append(ScanResult(folder.name, error=str(exc)))
            continue
        results += failed
        for case in cases:
            results.append(evaluate(case, pack, registry, threads=args.threads,
                                    provider=args.provider, min_readers=args.min_readers))
    print_report(results, pack)
    if args.json is not None:
        from core.atomic import write_text

        write_text(args.json, json.dumps(to_json(results, pack), indent=2))
    return 2 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
