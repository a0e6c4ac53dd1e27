"""Hanging protocols without Qt: validation, matching order, shipped rules, preferences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.hanging import (
    SHIPPED_FILE,
    PresetName,
    Protocols,
    Rule,
    SeriesFacts,
    choose,
    load_shipped,
    ordered,
    rule_to_raw,
    validate_rules,
)
from app.settings import CURRENT_VERSION, Preferences, load_preferences, migrate, save_preferences
from dicomio.demo import DEMO_SERIES_DESCRIPTION, DEMO_STUDY_DESCRIPTION

DEMO = SeriesFacts(modality="CT", body_part="CHEST", series_description=DEMO_SERIES_DESCRIPTION,
                   study_description=DEMO_STUDY_DESCRIPTION)


def test_shipped_rules_all_validate_and_the_demo_gets_lung_and_mediastinum() -> None:
    shipped, problems = load_shipped()
    assert problems == []
    raw = json.loads(SHIPPED_FILE.read_text(encoding="utf-8"))
    assert raw["version"] == 1 and len(shipped) == len(raw["rules"]) >= 4
    hanging = choose(shipped, DEMO)
    assert hanging is not None and hanging.source == "shipped"
    assert hanging.grid == (1, 2)
    assert [(c.view, c.preset, c.series) for c in hanging.cells] == [
        ("axial", "lung", "current"), ("axial", "mediastinum", "current")]
    # The same chest CT known only by its study description still matches.
    by_text = choose(shipped, SeriesFacts(modality="ct", study_description="CT THORAX W/O"))
    assert by_text is not None and [c.preset for c in by_text.cells] == ["lung", "mediastinum"]
    head = choose(shipped, SeriesFacts(modality="CT", body_part="HEAD"))
    assert head is not None and (head.layout, head.preset) == ("1x3", "brain")


def test_rule_presets_are_the_viewer_presets() -> None:
    from typing import get_args

    from viewer.presets import AUTO, PRESETS, RELATIVE_PRESETS

    assert set(get_args(PresetName)) == {*PRESETS, *RELATIVE_PRESETS, AUTO, "default"}


def test_a_series_no_rule_matches_gets_none() -> None:
    shipped, _ = load_shipped()
    assert choose(shipped, SeriesFacts(modality="MR", body_part="KNEE")) is None
    assert choose(shipped, SeriesFacts(modality="CT", body_part="ABDOMEN",
                                       study_description="CT abdomen")) is None


def test_globs_are_case_insensitive_whole_value_and_all_fields_must_match() -> None:
    rule = Rule.model_validate({"name": "r", "layout": "2x2", "match": {
        "modality": "mr", "series_description": ["*t1*", "*flair*"], "image_type": "ORIG*"}})
    rules, _ = validate_rules([rule_to_raw(rule)], "user")
    facts = SeriesFacts(modality="MR", series_description="Ax FLAIR fs",
                        image_type=("ORIGINAL", "PRIMARY"))
    assert choose(rules, facts) is not None
    assert choose(rules, SeriesFacts(modality="MRX", series_description="T1")) is None
    assert choose(rules, SeriesFacts(modality="MR", series_description="T2")) is None
    assert choose(rules, SeriesFacts(modality="MR", series_description="T1",
                                     image_type=("DERIVED",))) is None


def test_image_type_of_a_loaded_series_reaches_the_rules(tmp_path: Path) -> None:
    """The loader keeps ImageType, so a rule on it matches a real file, not only
    hand-made facts (a localizer rule must not catch the axial series)."""
    import numpy as np

    from app.hanging import facts_for
    from core.volume import Volume
    from dicomio.load import read_volume
    from dicomio.write_image import SeriesInfo, write_series

    arr = np.zeros((3, 6, 5), np.int16)
    arr[0, 1, 2] = 100
    written = write_series(Volume(arr, np.diag([2.0, 0.7, 0.7, 1.0]), modality="CT"),
                           tmp_path / "s", SeriesInfo(image_type=("ORIGINAL", "PRIMARY",
                                                                  "AXIAL")))
    facts = facts_for(read_volume(written))
    assert facts.image_type == ("ORIGINAL", "PRIMARY", "AXIAL")
    rules, problems = validate_rules(
        [{"name": "scout", "layout": "1x1", "match": {"image_type": "LOCALIZER"}},
         {"name": "axial", "layout": "2x2", "match": {"image_type": "axial"}}], "user")
    assert problems == []
    got = choose(rules, facts)
    assert got is not None and got.rule_name == "axial"


def test_series_count_bounds() -> None:
    rules, problems = validate_rules(
        [{"name": "many", "layout": "2x2", "match": {"min_series": 3}},
         {"name": "few", "layout": "1x1", "match": {"max_series": 2}}], "user")
    assert problems == []
    got = choose(rules, SeriesFacts(series_in_study=5))
    assert got is not None and got.rule_name == "many"
    got = choose(rules, SeriesFacts(series_in_study=1))
    assert got is not None and got.rule_name == "few"


def test_user_rule_beats_shipped_then_priority_then_specificity() -> None:
    user_raw = [{"name": "my chest", "match": {"modality": "CT"}, "layout": "2x2"}]
    protocols = Protocols.load(user_raw)
    hanging = protocols.choose(DEMO)
    assert hanging is not None and (hanging.rule_name, hanging.source) == ("my chest", "user")
    assert (hanging.layout, hanging.cells) == ("2x2", ())
    rules, _ = validate_rules([
        {"name": "general", "match": {"modality": "CT"}, "layout": "1x3"},
        {"name": "specific", "match": {"modality": "CT", "body_part": "CHEST"}, "layout": "1x1"},
        {"name": "urgent", "priority": 5, "match": {"modality": "CT"}, "layout": "2x2"},
    ], "user")
    assert [r.rule.name for r in ordered(rules)] == ["urgent", "specific", "general"]
    got = choose(rules, DEMO)
    assert got is not None and got.rule_name == "urgent"
    got = choose(rules[:2], DEMO)
    assert got is not None and got.rule_name == "specific"


@pytest.mark.parametrize(("raw", "field", "words"), [
    ({"name": "a", "cells": [{"view": "axial", "preset": "lungs"}]}, "cells.0.preset", "lung"),
    ({"name": "b", "layout": "3x3"}, "layout", "1x1"),
    ({"name": "c", "match": {"modality": ""}, "layout": "1x1"}, "match.modality", "pattern"),
    ({"name": "d", "match": {"colour": "red"}, "layout": "1x1"}, "match.colour", "not permitted"),
    ({"name": "e"}, "", "either 'layout' or 'cells'"),
    ({"name": "f", "grid": [1, 1], "cells": [{}, {}]}, "", "no room"),
    ({"layout": "1x1"}, "name", "required"),
    ({"name": "h", "cells": [{"view": "oblique"}]}, "cells.0.view", "axial"),
    ({"name": "i", "cells": [{"view": "3d"}, {"view": "3d"}]}, "", "one cell"),
    ("not a rule", "", "dict"),
])
def test_an_invalid_rule_is_reported_with_its_field_and_skipped(
        raw: Any, field: str, words: str) -> None:
    good = {"name": "fine", "match": {"modality": "CT"}, "layout": "1x1"}
    protocols = Protocols.load([raw, good])
    assert [r.rule.name for r in protocols.user] == ["fine"]
    (problem,) = protocols.problems
    assert (problem.source, problem.index) == ("user", 0)
    assert problem.field == field
    assert words.lower() in problem.message.lower()
    text = str(problem)
    assert text.startswith("user rule 1") and (field or "rule") in text
    hanging = protocols.choose(DEMO)
    assert hanging is not None and hanging.rule_name == "fine"


def test_a_damaged_or_newer_shipped_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "hp.json"
    bad.write_text("{not json", encoding="utf-8")
    protocols = Protocols.load([], shipped_path=bad)
    assert protocols.shipped == [] and len(protocols.problems) == 1
    assert protocols.problems[0].field == "hp.json"
    bad.write_text(json.dumps({"version": 99, "rules": []}), encoding="utf-8")
    shipped, problems = load_shipped(bad)
    assert shipped == [] and problems[0].field == "version" and "99" in problems[0].message


def test_without_prior_keeps_the_current_cells() -> None:
    shipped, _ = load_shipped()
    radiograph = choose(shipped, SeriesFacts(modality="DX", body_part="CHEST"))
    assert radiograph is not None and radiograph.wants_prior
    assert [c.series for c in radiograph.cells] == ["current", "prior"]
    alone = radiograph.without_prior()
    assert alone.grid == (1, 1) and [c.series for c in alone.cells] == ["current"]
    assert not alone.wants_prior


def test_user_rules_round_trip_through_the_preferences_file(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    rule = {"name": "mine", "priority": 2, "match": {"modality": ["CT"], "body_part": ["CHEST"]},
            "grid": [2, 1], "cells": [{"view": "axial", "preset": "lung"},
                                      {"view": "coronal", "preset": "bone"}]}
    broken = {"name": "broken", "layout": "9x9"}
    prefs = Preferences(hanging_protocols=[rule, broken])
    assert save_preferences(prefs, path)
    again = load_preferences(path)
    assert again.load_problem is None and again.hanging_protocols == [rule, broken]
    protocols = Protocols.load(again.hanging_protocols)
    assert [r.rule.name for r in protocols.user] == ["mine"]
    assert [p.name for p in protocols.problems] == ["broken"]
    assert rule_to_raw(protocols.user[0].rule) == {**rule, "grid": [2, 1], "cells": [
        {"view": "axial", "preset": "lung", "series": "current"},
        {"view": "coronal", "preset": "bone", "series": "current"}]}


def test_preferences_of_version_2_migrate_to_no_user_rules(tmp_path: Path) -> None:
    # Version 4 (network settings) came later: it adds only the SCP's off switch.
    assert CURRENT_VERSION == 4
    assert migrate({"version": 2, "default_layout": "2x2"}) == {
        "version": 4, "default_layout": "2x2", "hanging_protocols": [], "scp_enabled": False}
    path = tmp_path / "preferences.json"
    path.write_text(json.dumps({"version": 2, "default_layout": "1x1"}), encoding="utf-8")
    prefs = load_preferences(path)
    assert prefs.load_problem is None and prefs.default_layout == "1x1"
    assert prefs.hanging_protocols == [] and prefs.version == CURRENT_VERSION
