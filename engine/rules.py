"""The rule pack: declarative rules loaded from ``rules/<pack>/*.yaml`` and validated by pydantic.

A pack is one representation that several executors compile (durable_rules, Polars), the way sqlglot
compiles one syntax tree to several dialects. Conditions are data (field → operator → value, combined
with all/any/not), so every executor can translate them without parsing strings of code.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from engine.cases import CASE_MODELS, leaf_types
from engine.domain import KINDS, Kind, PauseReason
from engine.errors import RulePackError
from engine.resources import data_dirs

__all__ = [
    "TIME_MEASURES",
    "UNITS",
    "AggregateRule",
    "AllOf",
    "AnyOf",
    "CalendarDaysMeasure",
    "CaseOverlays",
    "CompareOp",
    "Condition",
    "FieldMeasure",
    "Leaf",
    "Measure",
    "MonthsMeasure",
    "NotOf",
    "Operator",
    "PackManifest",
    "RatioMeasure",
    "Requirement",
    "Rule",
    "RuleFile",
    "RulePack",
    "Scalar",
    "Source",
    "Strict",
    "Wording",
    "WorkingDaysMeasure",
    "diff_packs",
    "iter_leaves",
    "load_pack",
    "load_pack_from",
    "load_packs",
    "measure_fields",
    "pack_folders",
    "referenced_fields",
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


class RuleFile(Strict):
    area: str
    rules: list[dict[str, Any]]


class CaseOverlays(Strict):
    """``field: district`` and ``overlays: {象山县: xiangshan-typhoon}`` (overlay names or .toml paths)."""

    field: str
    overlays: dict[str, str] = Field(min_length=1)


class PackManifest(Strict):
    name: str
    document: str
    title: str
    # 锚定日期: the field that effective_from and report periods are read from, per kind.
    anchors: dict[Kind, str]
    # 预警: days left at which a time limit's yellow card is raised, unless a rule sets its own.
    warn_at: int = Field(default=1, ge=0)
    # A local closure applies to the cases of one place only (a typhoon in 象山县): the calendar overlay
    # of each value of a case field, laid over the run's calendar for those cases.
    case_overlays: CaseOverlays | None = None


class RulePack:
    """A validated pack: its per-case rules by kind, its aggregate rules, and its content version."""

    def __init__(
        self,
        manifest: PackManifest,
        rules: list[Rule],
        aggregates: list[AggregateRule],
        version: str,
        files: dict[str, Path] | None = None,
    ):
        self.manifest = manifest
        self.folder: Path | None = None
        self.rules = rules
        self.aggregates = aggregates
        self.version = version
        # The file each rule is defined in, for messages that must point a rule keeper at it.
        self.files = files or {}
        # The packs in force together (just this one unless it was combined): verdicts name each.
        self.members: tuple[RulePack, ...] = (self,)
        self.by_id: dict[str, Rule | AggregateRule] = {r.id: r for r in [*rules, *aggregates]}
        self.by_kind: dict[str, list[Rule]] = {kind: [r for r in rules if r.kind == kind] for kind in KINDS}
        self._warn_at = dict.fromkeys(self.by_id, manifest.warn_at)

    def anchor(self, kind: str) -> str:
        return self.manifest.anchors[kind]  # type: ignore[index]

    @property
    def case_overlays(self) -> CaseOverlays | None:
        return self.manifest.case_overlays

    def warn_at(self, rule: Rule) -> int:
        """The days left at which the rule's yellow card is raised: its own, else its pack's."""
        return self._warn_at[rule.id] if rule.warn_at is None else rule.warn_at

    @property
    def names(self) -> list[str]:
        """Each pack in force with its version (``name@digest``)."""
        return [member.version for member in self.members]


def _format_location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(rule)"


def load_pack_from(folder: Path) -> RulePack:
    """Load and validate every YAML file of a pack folder; every problem of every file is reported at once
    (``RulePackError``, one line each), naming the file, the rule and the field."""
    files = sorted(p for p in folder.glob("*.yaml") if p.name != "pack.yaml")
    manifest_path = folder / "pack.yaml"
    if not manifest_path.exists():
        raise RulePackError(f"{folder}: no pack.yaml (name, document, title, anchors)")
    problems: list[str] = []
    digest = hashlib.sha256()
    try:
        raw_manifest = manifest_path.read_bytes()
        manifest = PackManifest.model_validate(yaml.safe_load(raw_manifest))
    except (ValidationError, yaml.YAMLError) as exc:
        raise RulePackError(f"{manifest_path}: {exc}") from exc
    digest.update(raw_manifest)
    if manifest.case_overlays is not None:  # an overlay file is named relative to the pack
        overlays = {
            value: str(folder / name) if name.endswith(".toml") and not Path(name).is_absolute() else name
            for value, name in manifest.case_overlays.overlays.items()
        }
        manifest = manifest.model_copy(
            update={"case_overlays": manifest.case_overlays.model_copy(update={"overlays": overlays})}
        )
    for kind in sorted(set(KINDS) - set(manifest.anchors)):
        problems.append(f"{manifest_path}: anchors: no anchor date for {kind}")
    for kind, anchor in manifest.anchors.items():
        if (why := unknown_field(kind, anchor)) is not None:
            problems.append(f"{manifest_path}: anchors.{kind}: {why}")
    if manifest.case_overlays is not None:
        missing = [kind for kind in KINDS if unknown_field(kind, manifest.case_overlays.field)]
        if missing:
            problems.append(
                f"{manifest_path}: case_overlays.field: {manifest.case_overlays.field!r} is not a field of "
                f"{', '.join(missing)}"
            )
    rules: list[Rule] = []
    aggregates: list[AggregateRule] = []
    seen: dict[str, Path] = {}
    for path in files:
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw)
        try:
            rule_file = RuleFile.model_validate(yaml.safe_load(raw))
        except (ValidationError, yaml.YAMLError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        for position, entry in enumerate(rule_file.rules):
            rule_id = entry.get("id", f"#{position + 1}")
            model = AggregateRule if entry.get("aggregate") else Rule
            try:
                rule = model.model_validate(entry)
            except ValidationError as exc:
                problems.extend(
                    f"{path}: rule {rule_id}: {_format_location(e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                continue
            if rule.id in seen:
                problems.append(f"{path}: rule {rule.id}: id already defined in {seen[rule.id]}")
            seen[rule.id] = path
            problems.extend(f"{path}: rule {rule.id}: {why}" for why in _field_problems(rule))
            (aggregates if isinstance(rule, AggregateRule) else rules).append(rule)  # type: ignore[arg-type]
    for rule in rules:
        if rule.replaced_by is not None and rule.replaced_by not in seen:
            problems.append(f"{seen[rule.id]}: rule {rule.id}: replaced_by: no rule {rule.replaced_by!r}")
    if problems:
        raise RulePackError("\n".join(problems))
    pack = RulePack(manifest, rules, aggregates, f"{manifest.name}@{digest.hexdigest()[:12]}", seen)
    pack.folder = folder
    return pack


def _field_problems(rule: Rule | AggregateRule) -> list[str]:
    """The fields a rule reads that its kind does not have: a typo would make it not_applicable to every
    case. A rule of every kind (``*``) needs each field in some kind."""
    kinds = list(KINDS) if rule.kind == "*" else [rule.kind]
    found = []
    for name in rule_fields(rule):
        reasons = [unknown_field(kind, name) for kind in kinds]
        if all(reasons):
            found.append(reasons[0] if len(kinds) == 1 else f"{name!r} is not a field of any kind")
    return found


def pack_folders() -> dict[str, Path]:
    """The packs found by name (folders with a ``pack.yaml``): the data directory's ``rules/``, whose
    packs win over the shipped ones of the same name, then the shipped ``rules/``."""
    found: dict[str, Path] = {}
    for folder in reversed(data_dirs("rules")):
        if folder.is_dir():
            found.update((p.name, p) for p in sorted(folder.iterdir()) if (p / "pack.yaml").is_file())
    return found


def load_pack(name: str = "ningbo-2020") -> RulePack:
    """The named pack (from the data directory, else shipped), or a folder path."""
    folder = Path(name) if ("/" in name or Path(name).is_dir()) else pack_folders().get(name)
    if folder is None or not folder.is_dir():
        where = " or ".join(str(folder) for folder in data_dirs("rules"))
        raise RulePackError(f"rule pack {name!r} not found (looked in {where}; see `casecheck rules packs`)")
    return _load_pack(folder.resolve())


@lru_cache(maxsize=8)
def _load_pack(folder: Path) -> RulePack:
    return load_pack_from(folder)


def load_packs(names: Sequence[str]) -> RulePack:
    """Several packs in force together, as one: rule ids must be unique across them and every kind
    anchored on the same field in each. A single name is just that pack."""
    if not names:
        raise RulePackError("no rule pack given")
    packs = [load_pack(name) for name in dict.fromkeys(names)]
    return packs[0] if len(packs) == 1 else _combined(tuple(packs))


@lru_cache(maxsize=8)
def _combined(packs: tuple[RulePack, ...]) -> RulePack:
    first = packs[0]
    problems: list[str] = []
    files: dict[str, Path] = {}
    for pack in packs:
        for rule_id, path in pack.files.items():
            if rule_id in files:
                problems.append(f"rule {rule_id} is defined twice: in {files[rule_id]} and in {path}")
            files[rule_id] = path
        for kind in KINDS:
            if pack.manifest.anchors.get(kind) != first.manifest.anchors.get(kind):  # type: ignore[call-overload]
                problems.append(
                    f"packs {first.manifest.name} and {pack.manifest.name} anchor {kind} on different "
                    f"fields ({first.anchor(kind)} and {pack.anchor(kind)})"
                )
    mapping = [pack for pack in packs if pack.manifest.case_overlays is not None]
    if len(mapping) > 1:
        problems.append(
            f"packs {mapping[0].manifest.name} and {mapping[1].manifest.name} both map cases to calendar "
            "overlays (case_overlays): keep the mapping in one pack"
        )
    if problems:
        raise RulePackError("\n".join(problems))
    manifest = first.manifest
    if mapping:
        manifest = manifest.model_copy(update={"case_overlays": mapping[0].manifest.case_overlays})
    combined = RulePack(
        manifest,
        [rule for pack in packs for rule in pack.rules],
        [rule for pack in packs for rule in pack.aggregates],
        "+".join(pack.version for pack in packs),
        files,
    )
    combined.members = packs
    combined._warn_at = {rule_id: pack._warn_at[rule_id] for pack in packs for rule_id in pack.by_id}
    return combined


# What `rules diff` compares, in the words of the person who signs off the change.
_DIFF_FIELDS = {
    "limit": lambda r: f"{r.require.op} {r.require.limit}",
    "conditions": lambda r: _dumped(r.when if isinstance(r, Rule) else (r.scope, r.share_of)),
    "measure": lambda r: _dumped(r.measure),
    "severity": lambda r: r.severity,
    "from": lambda r: str(r.effective_from),
    "until": lambda r: str(r.effective_until) if r.effective_until else "open",
    "clause": lambda r: r.source.clause,
}


def _dumped(value: Any) -> str:
    if isinstance(value, tuple):
        return "; ".join(_dumped(v) for v in value)
    return "none" if value is None else value.model_dump_json(by_alias=True, exclude_none=True)


def diff_packs(old: RulePack, new: RulePack) -> list[str]:
    """One line per rule added (+), removed (-) or changed (~, with each changed field old → new)."""
    lines = [
        f"+ {rule_id}: {new.by_id[rule_id].title.en}" for rule_id in new.by_id if rule_id not in old.by_id
    ]
    lines += [
        f"- {rule_id}: {old.by_id[rule_id].title.en}" for rule_id in old.by_id if rule_id not in new.by_id
    ]
    for rule_id, before in old.by_id.items():
        after = new.by_id.get(rule_id)
        if after is None:
            continue
        changes = [
            f"{name} {show(before)} → {show(after)}"
            for name, show in _DIFF_FIELDS.items()
            if show(before) != show(after)
        ]
        if changes:
            lines.append(f"~ {rule_id}: " + "; ".join(changes))
    return lines


def referenced_fields(pack: RulePack, kind: str) -> list[str]:
    """Every case field that the kind's rules read, so a batch carries exactly those columns."""
    found: dict[str, None] = {pack.anchor(kind): None}
    for rule in pack.by_kind[kind]:
        if rule.when is not None:
            for leaf in iter_leaves(rule.when):
                found[leaf.field] = None
        for name in measure_fields(rule.measure):
            found[name] = None
    return list(found)
