"""packaging/nodules/evaluate.py's size study: nodules drawn into the demo phantom by the
training's renderer, run through the app's pipeline with the shipped pack.

The full study (five sizes) takes minutes and runs in ``make train-nodules``; here one size,
12 mm, which the shipped pack finds everywhere, checks the placement and the scoring, and
the probability lookup is checked against an asymmetric heat map on a skewed grid.
"""

from __future__ import annotations

from pathlib import Path

import evaluate as ev
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "resources" / "models" / "lucida-lung-nodules"


def test_peak_reads_the_probability_around_a_point_in_patient_space() -> None:
    from core.volume import HeatMap

    # k, j, i spacings 2.5, 0.8, 1.2 mm; the j axis points to -P; an off-origin corner.
    affine = np.array([[0.0, 0.0, 1.2, -40.0],
                       [0.0, -0.8, 0.0, 30.0],
                       [2.5, 0.0, 0.0, -100.0],
                       [0.0, 0.0, 0.0, 1.0]])
    array = np.zeros((20, 40, 30), dtype=np.float32)
    array[8, 10, 5] = 0.9  # at LPS (-40 + 6, 30 - 8, -100 + 20) = (-34, 22, -80)
    array[8, 10, 12] = 0.7  # 8.4 mm further along +x
    heat = HeatMap(array=array, affine=affine)
    assert ev._peak(heat, (-34.0, 22.0, -80.0), 1.0) == pytest.approx(0.9)
    assert ev._peak(heat, (-34.0 + 8.4, 22.0, -80.0), 1.0) == pytest.approx(0.7)
    assert ev._peak(heat, (-34.0, 22.0 + 8.0, -80.0), 3.0) == 0.0  # +y: away from j = 10
    assert ev._peak(heat, (-34.0, 22.0, -80.0 + 5.0), 2.0) == 0.0  # two slices up


def test_size_study_draws_apart_in_each_context_and_finds_12_mm(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dicomio.demo import DEMO_NODULES

    monkeypatch.setattr(ev, "SIZES_MM", (12.0,))
    monkeypatch.setattr(ev, "PER_CONTEXT", 2)
    study = ev.size_study(PACK, threads=2)
    rows = study["nodules"]
    assert [r["context"] for r in rows] == ["isolated"] * 2 + ["juxtapleural"] * 2 \
        + ["juxtavascular"] * 2
    centres = [np.asarray(r["centre_lps"]) for r in rows]
    others = centres + [np.asarray(n.centre_lps) for n in DEMO_NODULES]
    for n, c in enumerate(centres):
        gaps = [np.linalg.norm(c - o) for m, o in enumerate(others) if m != n]
        assert min(gaps) >= ev.APART_MM - 0.1  # centres are rounded to 0.1 mm
    assert all(r["found"] and r["peak"] >= 0.99 for r in rows), rows
    line = ev._size_line(study)
    assert ("12 mm 6/6 (isolated 2/2, juxtapleural 2/2, juxtavascular 2/2; median peak "
            "probability 1.00)") in line, line


def _rows(found: dict[tuple[float, str], tuple[int, int]]) -> list[dict[str, object]]:
    return [{"diameter_mm": d, "context": c, "found": n < hits}
            for (d, c), (hits, total) in found.items() for n in range(total)]


def test_the_card_states_the_size_below_which_most_nodules_are_missed() -> None:
    import build_pack

    rows = _rows({(4.0, "isolated"): (1, 4), (4.0, "juxtapleural"): (0, 4),
                  (6.0, "isolated"): (4, 4), (6.0, "juxtapleural"): (1, 4),
                  (8.0, "isolated"): (2, 4), (8.0, "juxtapleural"): (4, 4),  # 6/8: enough
                  (12.0, "isolated"): (4, 4), (12.0, "juxtapleural"): (4, 4)})
    evaluation = {"results": [{"scan": "demo"}, {"scan": "demo-sizes", "nodules": rows}]}
    assert build_pack.size_limit(evaluation) == (
        "Small nodules are often missed: in the size study (measured results) 6 of 16 solid "
        "nodules under 8 mm were found, juxtapleural ones least (1 of 8).")
    # a dip at a larger size moves the bound above it
    rows = _rows({(4.0, "isolated"): (4, 4), (8.0, "isolated"): (2, 4),
                  (12.0, "isolated"): (4, 4)})
    assert "under 12 mm" in str(build_pack.size_limit(
        {"results": [{"scan": "demo-sizes", "nodules": rows}]}))
    # nothing to say when every size is found, or without a size study
    rows = _rows({(4.0, "isolated"): (3, 4), (8.0, "isolated"): (4, 4)})
    assert build_pack.size_limit({"results": [{"scan": "demo-sizes", "nodules": rows}]}) \
        is None
    assert build_pack.size_limit({"results": [{"scan": "demo"}]}) is None
    assert build_pack.size_limit(None) is None
