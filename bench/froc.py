"""FROC maths for nodule detection, as LUNA16 defines it (pure functions, no I/O).

* :func:`match` (one scan): a detection is a hit on a reference nodule when its centre
  lies within the nodule's radius (diameter / 2) of the nodule's centre. Each reference
  nodule counts once, with its highest-scoring hit; its other hits are ignored (neither
  true nor false positives). A detection that hits no reference nodule but lies within an
  excluded finding's radius (< 3 mm, single-reader, non-nodule; LUNA16 gives those without
  a size a 10 mm diameter) is ignored too. Every other detection is a false positive.
* :func:`froc` (all scans): for every score threshold t, sensitivity = reference nodules
  whose best hit scores >= t / all reference nodules, and FP rate = false positives
  scoring >= t / scans (scans without nodules count).
* :func:`sensitivity_at`: the FROC curve read at the target rate as LUNA16's evaluation
  script reads it (``np.interp`` over the operating points): linear between operating
  points, the highest sensitivity where several share one FP rate, the last sensitivity
  beyond the curve's end.
* :func:`cpm`: the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 FPs per scan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: LUNA16's FROC operating points (average false positives per scan).
LUNA16_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: LUNA16's diameter for a marked finding without a measured size.
STANDIN_DIAMETER_MM = 10.0

Point = tuple[float, float, float]


@dataclass(frozen=True)
class Target:
    """A reference nodule or excluded finding: centre (LPS mm) and diameter (mm; <= 0:
    unknown, LUNA16's 10 mm stand-in)."""

    centre: Point
    diameter_mm: float

    @property
    def radius_mm(self) -> float:
        return (self.diameter_mm if self.diameter_mm > 0 else STANDIN_DIAMETER_MM) / 2.0

    def hit_by(self, point: Point) -> bool:
        return math.dist(self.centre, point) <= self.radius_mm


@dataclass(frozen=True)
class Detection:
    """One finding of the detector: its centre (LPS mm) and score."""

    centre: Point
    score: float


@dataclass(frozen=True)
class ScanMatch:
    """One scan's outcome: each reference nodule's best hit score (None: missed), the
    false positives' scores, and what became of each detection, in input order."""

    nodule_scores: tuple[float | None, ...]
    fp_scores: tuple[float, ...]
    outcomes: tuple[str, ...]  # "tp", "duplicate", "excluded" or "fp"

    @property
    def hits(self) -> int:
        return sum(s is not None for s in self.nodule_scores)


@dataclass(frozen=True)
class FrocCurve:
    """Operating points, from the highest threshold down; the first is (inf: 0, 0)."""

    thresholds: tuple[float, ...]
    fp_per_scan: tuple[float, ...]
    sensitivity: tuple[float, ...]
    n_nodules: int
    n_scans: int


def match(detections: Sequence[Detection], nodules: Sequence[Target],
          excluded: Sequence[Target] = ()) -> ScanMatch:
    """Hits, duplicates, ignored and false-positive detections of one scan."""
    best: list[float | None] = [None] * len(nodules)
    best_at: list[int | None] = [None] * len(nodules)
    hits_of: list[list[int]] = []
    for n, det in enumerate(detections):
        hit = [t for t, nod in enumerate(nodules) if nod.hit_by(det.centre)]
        hits_of.append(hit)
        for t in hit:
            current = best[t]
            if current is None or det.score > current:
                best[t], best_at[t] = det.score, n
    winners = {n for n in best_at if n is not None}
    outcomes: list[str] = []
    fps: list[float] = []
    for n, det in enumerate(detections):
        if n in winners:
            outcomes.append("tp")
        elif hits_of[n]:
            outcomes.append("duplicate")
        elif any(t.hit_by(det.centre) for t in excluded):
            outcomes.append("excluded")
        else:
            outcomes.append("fp")
            fps.append(det.score)
    return ScanMatch(tuple(best), tuple(fps), tuple(outcomes))


def froc(scans: Sequence[ScanMatch]) -> FrocCurve:
    """The FROC curve over all scans; sensitivity is NaN without any reference nodule."""
    if not scans:
        raise ValueError("a FROC curve needs at least one scan")
    tp = sorted((s for m in scans for s in m.nodule_scores if s is not None), reverse=True)
    fp = sorted((s for m in scans for s in m.fp_scores), reverse=True)
    n_nodules = sum(len(m.nodule_scores) for m in scans)
    thresholds = [math.inf, *sorted(set(tp) | set(fp), reverse=True)]
    fpr: list[float] = []
    sens: list[float] = []
    i = j = 0
    for t in thresholds:
        while i < len(tp) and tp[i] >= t:
            i += 1
        while j < len(fp) and fp[j] >= t:
            j += 1
        sens.append(i / n_nodules if n_nodules else math.nan)
        fpr.append(j / len(scans))
    return FrocCurve(tuple(thresholds), tuple(fpr), tuple(sens), n_nodules, len(scans))


def sensitivity_at(curve: FrocCurve, fp_rate: float) -> float:
    """Sensitivity at ``fp_rate`` FPs per scan as LUNA16's evaluation script reads it:
    linear interpolation between the curve's points (``np.interp``), the highest
    sensitivity where several points share one FP rate, the last one beyond the curve."""
    if not curve.n_nodules:
        return math.nan
    best: dict[float, float] = {}
    for rate, sens in zip(curve.fp_per_scan, curve.sensitivity, strict=True):
        best[rate] = max(sens, best.get(rate, 0.0))  # FP rate and sensitivity only rise
    rates = sorted(best)
    return float(np.interp(fp_rate, rates, [best[r] for r in rates]))


def cpm(curve: FrocCurve, rates: Sequence[float] = LUNA16_FP_RATES) -> float:
    """Competition performance metric: mean sensitivity at ``rates`` FPs per scan."""
    return sum(sensitivity_at(curve, r) for r in rates) / len(rates)
