"""Hanging protocols: rules (data) that choose the layout, each cell's view and window.

Qt-free. A rule matches a series on its facts (:class:`SeriesFacts`) and picks a
:class:`Hanging`: a grid of cells, each a view ("axial", "coronal", "sagittal" or
"3d"), a window preset and which series it shows ("current", or "prior": the
same patient's latest earlier series of the same modality).

Matching (every ``match`` field given must match; absent fields match anything):

- ``modality``, ``body_part``, ``series_description``, ``study_description``,
  ``image_type``: a list of **case-insensitive shell globs** (``fnmatch``:
  ``*`` any text, ``?`` one character, ``[ab]`` one of). A field matches when
  any pattern matches the whole value; a plain string is a one-pattern list.
  ``image_type`` matches when any pattern matches any of the ImageType values.
  Globs, not regular expressions: a radiologist can write ``*chest*``.
- ``min_series`` / ``max_series``: how many series the study has.

Order (the first rule that matches wins): user rules before shipped ones; within
each, higher ``priority`` first, then the more specific rule (more ``match``
fields given), then the order in the list.

Shipped rules live in ``resources/hanging_protocols.json`` ({"version": 1,
"rules": [...]}); user rules are raw dicts in the preferences
(``Preferences.hanging_protocols``). Each rule is validated on its own: one that
fails is reported (:class:`RuleProblem`, naming the field) and skipped, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CURRENT_VERSION = 1
SHIPPED_FILE = Path(__file__).resolve().parent.parent / "resources" / "hanging_protocols.json"
ViewName = Literal["axial", "coronal", "sagittal", "3d"]
LayoutName = Literal["1x1", "1x3", "2x2"]
# Window presets a rule may name: viewer.presets' CT presets and the ones computed from
# the volume for MR and other non-HU series (a test keeps the lists equal), "auto"
# (percentiles) and "default" (the file's own window, else the modality's).
PresetName = Literal["brain", "subdural", "stroke", "lung", "mediastinum", "abdomen", "liver",
                     "bone", "full-range", "tissue", "bright", "auto", "default"]

Patterns = list[str]


class Match(BaseModel):
    """What a series must look like (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    modality: Patterns | None = None
    body_part: Patterns | None = None
    series_description: Patterns | None = None
    study_description: Patterns | None = None
    image_type: Patterns | None = None
    min_series: int | None = Field(default=None, ge=1)
    max_series: int | None = Field(default=None, ge=1)

    @field_validator("modality", "body_part", "series_description", "study_description",
                     "image_type", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("modality", "body_part", "series_description", "study_description",
                     "image_type")
    @classmethod
    def _not_empty(cls, value: Patterns | None) -> Patterns | None:
        if value is not None and (not value or any(not p.strip() for p in value)):
            raise ValueError("needs at least one non-empty pattern")
        return value

    def specificity(self) -> int:
        return sum(v is not None for v in self.model_dump().values())


class Cell(BaseModel):
    """One cell of the grid: a view, its window preset and the series it shows."""

    model_config = ConfigDict(extra="forbid")

    view: ViewName = "axial"
    preset: PresetName = "default"
    series: Literal["current", "prior"] = "current"


class Rule(BaseModel):
    """A hanging protocol: a layout name ("1x1", "1x3", "2x2") or a grid of cells."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    priority: int = 0
    match: Match = Field(default_factory=Match)
    layout: LayoutName | None = None
    preset: PresetName | None = None
    grid: tuple[int, int] | None = None
    cells: list[Cell] | None = None

    @model_validator(mode="after")
    def _layout_or_cells(self) -> Rule:
        if (self.layout is None) == (self.cells is None):
            raise ValueError("give either 'layout' or 'cells' (with 'grid')")
        if self.cells is not None:
            if not self.cells:
                raise ValueError("'cells' needs at least one cell")
            rows, cols = self.grid if self.grid is not None else (1, len(self.cells))
            if rows < 1 or cols < 1 or rows * cols < len(self.cells):
                raise ValueError(f"'grid' {rows}x{cols} has no room for {len(self.cells)} cells")
            if sum(c.view == "3d" for c in self.cells) > 1:
                raise ValueError("only one cell can show the 3-D view")
            if self.grid is None:
                self.grid = (rows, cols)
        return self


class ShippedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    rules: list[Any]


@dataclass(frozen=True)
class SeriesFacts:
    """What rules match on, gathered by the window from the volume and the library."""

    modality: str = ""
    body_part: str = ""
    series_description: str = ""
    study_description: str = ""
    image_type: tuple[str, ...] = ()
    series_in_study: int = 1
    prior_series_id: int | None = None  # the same patient's earlier series, when one exists


@dataclass(frozen=True)
class RuleProblem:
    """A rule that was skipped: where it came from, its position and name, and why."""

    source: str           # "user" or "shipped"
    index: int
    name: str
    field: str            # dotted path of the failing field ("" for the rule as a whole)
    message: str

    def __str__(self) -> str:
        where = f"{self.source} rule {self.index + 1}" + (f" ({self.name!r})" if self.name else "")
        return f"{where}: {self.field or 'rule'}: {self.message}"


@dataclass(frozen=True)
class LoadedRule:
    rule: Rule
    source: str   # "user" or "shipped"
    index: int


@dataclass(frozen=True)
class Hanging:
    """What a matched rule asks for: a layout name, or cells on a grid."""

    rule_name: str
    source: str
    layout: str | None
    preset: str | None
    grid: tuple[int, int] | None
    cells: tuple[Cell, ...]

    @property
    def wants_prior(self) -> bool:
        return any(c.series == "prior" for c in self.cells)

    def without_prior(self) -> Hanging:
        """The same hanging with the prior's cells left out (none exists, or no comparison)."""
        kept = tuple(c for c in self.cells if c.series == "current")
        if not self.cells or len(kept) == len(self.cells):
            return self
        if not kept:
            return Hanging(self.rule_name, self.source, "1x1", self.preset, None, ())
        rows, cols = _fit_grid(len(kept))
        return Hanging(self.rule_name, self.source, None, self.preset, (rows, cols), kept)


def _fit_grid(n: int) -> tuple[int, int]:
    return (1, n) if n <= 3 else (2, (n + 1) // 2)


def validate_rules(raw: Iterable[Any], source: str) -> tuple[list[LoadedRule], list[RuleProblem]]:
    """Each raw rule validated on its own; the bad ones become problems naming the field."""
    good: list[LoadedRule] = []
    problems: list[RuleProblem] = []
    for index, item in enumerate(raw):
        name = str(item.get("name", "")) if isinstance(item, dict) else ""
        try:
            good.append(LoadedRule(Rule.model_validate(item), source, index))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(RuleProblem(source, index, name, loc, err["msg"]))
    return good, problems


def load_shipped(path: Path = SHIPPED_FILE) -> tuple[list[LoadedRule], list[RuleProblem]]:
    """The shipped rules; a damaged or newer file is one problem and no rules."""
    try:
        data = ShippedFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        return [], [RuleProblem("shipped", 0, "", str(path.name), reason)]
    if data.version != CURRENT_VERSION:
        return [], [RuleProblem("shipped", 0, "", "version",
                                f"version {data.version}, this Lucida reads {CURRENT_VERSION}")]
    return validate_rules(data.rules, "shipped")


def ordered(rules: Iterable[LoadedRule]) -> list[LoadedRule]:
    """The matching order: user first, then priority, specificity, list order."""
    return sorted(rules, key=lambda r: (r.source != "user", -r.rule.priority,
                                        -r.rule.match.specificity(), r.index))


def _globs(patterns: Patterns | None, values: Sequence[str]) -> bool:
    if patterns is None:
        return True
    return any(fnmatchcase(v.strip().lower(), p.strip().lower())
               for p in patterns for v in values)


def matches(rule: Rule, facts: SeriesFacts) -> bool:
    m = rule.match
    return (_globs(m.modality, [facts.modality])
            and _globs(m.body_part, [facts.body_part])
            and _globs(m.series_description, [facts.series_description])
            and _globs(m.study_description, [facts.study_description])
            and _globs(m.image_type, facts.image_type)
            and (m.min_series is None or facts.series_in_study >= m.min_series)
            and (m.max_series is None or facts.series_in_study <= m.max_series))


def choose(rules: Iterable[LoadedRule], facts: SeriesFacts) -> Hanging | None:
    """The first rule (in :func:`ordered` order) that matches, as a Hanging; None: no match."""
    for loaded in ordered(rules):
        if matches(loaded.rule, facts):
            r = loaded.rule
            return Hanging(r.name, loaded.source, r.layout, r.preset, r.grid,
                           tuple(r.cells or ()))
    return None


@dataclass
class Protocols:
    """Shipped and user rules with the problems found loading them."""

    shipped: list[LoadedRule]
    user: list[LoadedRule]
    problems: list[RuleProblem]

    @classmethod
    def load(cls, user_raw: Iterable[Any], shipped_path: Path = SHIPPED_FILE) -> Protocols:
        shipped, p1 = load_shipped(shipped_path)
        user, p2 = validate_rules(user_raw, "user")
        return cls(shipped, user, [*p2, *p1])

    def choose(self, facts: SeriesFacts) -> Hanging | None:
        return choose([*self.user, *self.shipped], facts)


def rule_to_raw(rule: Rule) -> dict[str, Any]:
    """The JSON-able dict of a rule (what the preferences store), without unset defaults."""
    raw: dict[str, Any] = rule.model_dump(mode="json", exclude_none=True)
    raw["match"] = {k: v for k, v in raw.get("match", {}).items() if v is not None}
    return raw


def facts_for(volume: Any, library: Any = None, series_id: Any = None) -> SeriesFacts:
    """A loaded series' facts: its volume's metadata, and from the library (a
    ``store.Library``, when the series is in one) the series count of its study and
    the same patient's latest earlier series of the same modality (its prior)."""
    md: dict[str, Any] = dict(getattr(volume, "metadata", None) or {})
    modality = str(getattr(volume, "modality", "") or md.get("modality", ""))
    image_type = md.get("image_type", ())
    if isinstance(image_type, str):
        image_type = tuple(v.strip() for v in image_type.split("\\"))
    facts = SeriesFacts(modality=modality, body_part=str(md.get("body_part", "") or ""),
                        series_description=str(md.get("series_description", "") or ""),
                        study_description=str(md.get("study_description", "") or ""),
                        image_type=tuple(str(v) for v in image_type))
    if library is None or not isinstance(series_id, int):
        return facts
    row = library.get_series(series_id)
    in_study = [s for s in library.series(row.study_row) if s.stack_index == 0]
    prior = _prior_of(library, row)
    return SeriesFacts(modality=facts.modality or row.modality,
                       body_part=facts.body_part or row.body_part,
                       series_description=facts.series_description or row.series_description,
                       study_description=facts.study_description or row.study_description,
                       image_type=facts.image_type, series_in_study=max(1, len(in_study)),
                       prior_series_id=prior)


# Modalities that read as one kind for a prior (a DX today, a CR last year).
_SAME_KIND = ({"CR", "DX"}, {"MR"}, {"CT"}, {"MG"}, {"US"})


def _same_kind(a: str, b: str) -> bool:
    a, b = a.upper(), b.upper()
    return a == b or any(a in group and b in group for group in _SAME_KIND)


def _prior_of(library: Any, row: Any) -> int | None:
    """The same patient's latest series of the same kind (modality, CR/DX alike; body
    part when both have one) in an earlier study."""
    current = next((st for st in library.studies(row.patient_row) if st.id == row.study_row),
                   None)
    if current is None:
        return None
    when = (current.study_date, current.study_time)
    earlier = [st for st in library.studies(row.patient_row)
               if st.id != current.id and (st.study_date, st.study_time) < when]
    for study in sorted(earlier, key=lambda st: (st.study_date, st.study_time), reverse=True):
        same = [s for s in library.series(study.id)
                if _same_kind(s.modality, row.modality) and not s.is_localizer
                and (not s.body_part or not row.body_part
                     or s.body_part.upper() == row.body_part.upper())]
        if same:
            return int(same[0].id)
    return None
