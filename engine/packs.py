"""Rule packs: the rule files of a pack folder loaded and checked (each problem named by file, rule and
field), packs found in the data directory and in what casecheck ships, packs in force together combined,
two packs compared."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from engine.domain import KINDS, Kind
from engine.errors import RulePackError
from engine.resources import data_dirs
from engine.rules import (
    AggregateRule,
    Rule,
    Strict,
    iter_leaves,
    measure_fields,
    rule_fields,
    unknown_field,
)

__all__ = [
    "CaseOverlays",
    "PackManifest",
    "RuleFile",
    "RulePack",
    "diff_packs",
    "format_location",
    "load_pack",
    "load_pack_from",
    "load_packs",
    "pack_folders",
    "referenced_fields",
]


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


def format_location(loc: tuple[Any, ...]) -> str:
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
                    f"{path}: rule {rule_id}: {format_location(e['loc'])}: {e['msg']}" for e in exc.errors()
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
