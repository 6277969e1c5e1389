"""Rules: what a rule of a pack is — its condition, measure, requirement and source — as pydantic models.

Rules are one representation that several executors compile (durable_rules, Polars), the way sqlglot
compiles one syntax tree to several dialects. Conditions are data (field → operator → value, combined
with all/any/not), so every executor can translate them without parsing strings of code.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from engine.cases import CASE_MODELS, leaf_types
from engine.domain import Kind, PauseReason

__all__ = [
    "TIME_MEASURES",
    "UNITS",
    "AggregateRule",
    "AllOf",
    "AnyOf",
    "CalendarDaysMeasure",
    "CompareOp",
    "Condition",
    "FieldMeasure",
    "Leaf",
    "Measure",
    "MonthsMeasure",
    "NotOf",
    "Operator",
    "RatioMeasure",
    "Requirement",
    "Rule",
    "Scalar",
    "Source",
    "Strict",
    "Wording",
    "WorkingDaysMeasure",
    "iter_leaves",
    "measure_fields",
    "rule_fields",
    "unknown_field",
]

Scalar = bool | int | float | str
Operator = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "present", "absent"]
CompareOp = Literal["eq", "ne", "lt", "le", "gt", "ge"]


class Strict(BaseModel):
    """Rule files are written by people: an unknown key is a typo, not an extension."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Wording(Strict):
    """A text in both languages verdicts are worded in."""

    zh: str
    en: str


class Leaf(Strict):
    """One comparison of a case field (dotted path, e.g. ``approval.mode``) with a literal."""

    field: str
    op: Operator
    value: Scalar | list[Scalar] | None = None
    label: Wording | None = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Leaf:
        if self.op in ("present", "absent"):
            if self.value is not None:
                raise ValueError(f"operator {self.op} takes no value")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator {self.op} needs a non-empty list value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"operator {self.op} needs a single value")
        return self


class AllOf(Strict):
    all: list[Condition] = Field(min_length=1)
    label: Wording | None = None


class AnyOf(Strict):
    any: list[Condition] = Field(min_length=1)
    label: Wording | None = None


class NotOf(Strict):
    not_: Condition = Field(alias="not")
    label: Wording | None = None


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {Leaf: "leaf", AllOf: "all", AnyOf: "any", NotOf: "not"}.get(type(value))
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
        return "leaf"
    return None


Condition = Annotated[
    Annotated[Leaf, Tag("leaf")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")],
    Discriminator(_condition_tag),
]


class FieldMeasure(Strict):
    """The value of a case field itself (环节数, 材料数, 保证金 …)."""

    type: Literal["field"]
    field: str
    # Used when the case does not carry the field (RULES.md: an absent approval counts as filing).
    default: Scalar | None = None


class RatioMeasure(Strict):
    """numerator / denominator, computed from integer fen so that exactly 5% is exactly 5%."""

    type: Literal["ratio"]
    numerator: str
    denominator: str


class WorkingDaysMeasure(Strict):
    """Working days d with date(start) < d ≤ date(end), less excludable pauses (SPEC, time semantics)."""

    type: Literal["working_days"]
    start: str
    end: str
    exclude_pauses: list[PauseReason] = []


class CalendarDaysMeasure(Strict):
    """date(end) − date(start); ``start`` may name several fields, the latest present one counts."""

    type: Literal["calendar_days"]
    start: str | list[str]
    end: str
    # 民法典 第203条: a deadline on a rest day moves to the next working day.
    rest_day_extension: bool = False
    # What a missing start means: usually the rule does not apply; for a notice period it fails.
    missing_start: Literal["not_applicable", "fail"] = "not_applicable"


class MonthsMeasure(Strict):
    """Calendar days elapsed, judged against start + N months (民法典 第202条)."""

    type: Literal["months"]
    start: str
    end: str
    rest_day_extension: bool = False


Measure = Annotated[
    FieldMeasure | RatioMeasure | WorkingDaysMeasure | CalendarDaysMeasure | MonthsMeasure,
    Field(discriminator="type"),
]

UNITS = {
    "working_days": "working_days",
    "calendar_days": "calendar_days",
    # Judged in months but measured in days: the value is the days elapsed, the limit the days allowed.
    "months": "calendar_days",
    "ratio": "ratio",
}


TIME_MEASURES = (WorkingDaysMeasure, CalendarDaysMeasure, MonthsMeasure)


class Requirement(Strict):
    op: CompareOp
    limit: Scalar


class Source(Strict):
    document: str = "甬政办发〔2020〕36号"
    task: int | None = Field(default=None, description="task number in the attachment, e.g. 29 for (29)")
    paragraph: int | None = Field(
        default=None, description="numbered paragraph of the main text, e.g. 6 for §6"
    )
    clause: str = Field(min_length=1, description="the Chinese clause, quoted")

    @property
    def reference(self) -> str:
        parts = [self.document]
        if self.task is not None:
            parts.append(f"附件 ({self.task})")
        if self.paragraph is not None:
            parts.append(f"正文 第{self.paragraph}条")
        return " ".join(parts)


class Rule(Strict):
    """A per-case rule: judged for every case of its kind."""

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    title: Wording
    source: Source
    kind: Kind
    aggregate: Literal[False] = False
    when: Condition | None = None
    measure: Measure
    require: Requirement
    severity: Literal["mandatory", "advisory"]
    exemptible: bool = False
    effective_from: date
    # The last day the rule applies; a case anchored later is not_applicable, naming replaced_by if given.
    effective_until: date | None = None
    replaced_by: str | None = Field(default=None, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    # steps, documents, CNY … for field measures; time and ratio measures carry their own unit.
    unit: str | None = None
    # 预警: the days left (in the measure's unit) at which an open case gets its yellow card; None takes
    # the pack's ``warn_at``.
    warn_at: int | None = Field(default=None, ge=0)

    @functools.cached_property
    def measure_key(self) -> str:
        """Equal for rules whose measure and limit are equal, so they can share one computation."""
        return f"{self.measure.model_dump_json()}|{self.require.limit}"

    @property
    def timed(self) -> bool:
        """A time limit: its open cases have a deadline and are watched (预警 / 超时)."""
        return isinstance(self.measure, TIME_MEASURES)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Rule:
        if self.effective_until is not None and self.effective_until < self.effective_from:
            raise ValueError(f"effective_until {self.effective_until} is before effective_from")
        if self.replaced_by is not None and self.effective_until is None:
            raise ValueError("replaced_by needs effective_until")
        return self

    @model_validator(mode="after")
    def _unit_from_measure(self) -> Rule:
        if self.unit is None and not isinstance(self.measure, FieldMeasure):
            object.__setattr__(self, "unit", UNITS[self.measure.type])
        if self.warn_at is not None and not self.timed:
            raise ValueError("warn_at is for time limits only (working_days, calendar_days, months)")
        return self


class AggregateRule(Strict):
    """A rule on a mean or a share over a group of cases (平均…, …率达到…)."""

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    title: Wording
    source: Source
    kind: Kind | Literal["*"]
    aggregate: Literal[True]
    scope: Condition | None = None
    statistic: Literal["mean", "share"]
    measure: WorkingDaysMeasure | FieldMeasure | None = Field(default=None, discriminator="type")
    share_of: Condition | None = None
    require: Requirement
    severity: Literal["mandatory", "advisory"] = "mandatory"
    effective_from: date
    effective_until: date | None = None
    min_cases: int = 5

    @model_validator(mode="after")
    def _statistic_has_its_input(self) -> AggregateRule:
        if self.statistic == "mean" and self.measure is None:
            raise ValueError("a mean needs a measure")
        if self.statistic == "share" and self.share_of is None:
            raise ValueError("a share needs share_of")
        return self


def iter_leaves(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    if isinstance(condition, AllOf):
        children = condition.all
    elif isinstance(condition, AnyOf):
        children = condition.any
    else:
        assert isinstance(condition, NotOf)
        children = [condition.not_]
    return [leaf for child in children for leaf in iter_leaves(child)]


def measure_fields(measure: Any) -> list[str]:
    if isinstance(measure, FieldMeasure):
        return [measure.field]
    if isinstance(measure, RatioMeasure):
        return [measure.numerator, measure.denominator]
    starts = measure.start if isinstance(measure.start, list) else [measure.start]
    return [*starts, measure.end]


def rule_fields(rule: Rule | AggregateRule) -> list[str]:
    """Every case field a rule reads: its conditions' and its measure's."""
    conditions = [rule.when] if isinstance(rule, Rule) else [rule.scope, rule.share_of]
    names = [
        leaf.field for condition in conditions if condition is not None for leaf in iter_leaves(condition)
    ]
    if rule.measure is not None:
        names.extend(measure_fields(rule.measure))
    return list(dict.fromkeys(names))


def unknown_field(kind: str, path: str) -> str | None:
    """Why a dotted field path is not a field of the kind's case model (None when it is)."""
    model: Any = CASE_MODELS[kind]
    for depth, part in enumerate(path.split(".")):
        if model is None or part not in model.model_fields:
            where = ".".join(path.split(".")[:depth]) or kind
            return f"{path!r} is not a field of {where}"
        leaves = leaf_types(model.model_fields[part].annotation)
        model = next((t for t in leaves if isinstance(t, type) and issubclass(t, BaseModel)), None)
    return None
