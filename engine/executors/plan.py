"""The plan: each per-case rule lowered to mutually exclusive outcomes, each guarded by a predicate.

This is the one representation both executors compile, like sqlglot's expression tree: a predicate is
a tree of ``And``/``Or`` over atoms (``Cmp``, ``Has``, ``Lacks``) on the keys of a *fact* — the case's
fields plus the measures (``v{i}`` value, ``t{i}`` case allowance, ``o{i}`` open, ``x{i}`` exemption,
``anchor``). Negation is pushed down to the atoms while planning, with SPEC.md's rule that a condition on
an absent field is false (so its negation is true), so no backend needs a notion of "not".

Outcome codes name why a status was reached, so the verdict can say it without re-deciding anything:
``na:effective``, ``na:absent:K`` / ``na:cond:K`` (conjunct K of ``when``), ``exempt``, ``na:input`` /
``fail:input`` (a measure input is missing), ``pass``, ``pending``, ``fail``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

from engine.domain import EPOCH
from engine.packs import RulePack
from engine.rules import (
    AllOf,
    CalendarDaysMeasure,
    Condition,
    FieldMeasure,
    Leaf,
    MonthsMeasure,
    NotOf,
    Rule,
    Scalar,
    WorkingDaysMeasure,
)

__all__ = [
    "INVERSE",
    "STATUS_OF_CODE",
    "And",
    "Cmp",
    "Has",
    "KindPlan",
    "Lacks",
    "Or",
    "Outcome",
    "Predicate",
    "Ref",
    "RulePlan",
    "day_number",
    "keys_of",
    "lower",
    "plan_kind",
    "plan_rule",
    "status_of",
]

INVERSE = {"eq": "ne", "ne": "eq", "lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


@dataclass(frozen=True)
class Ref:
    """The value of another key of the same fact (a case-specific allowance)."""

    key: str


@dataclass(frozen=True)
class Cmp:
    key: str
    op: str
    value: Scalar | Ref


@dataclass(frozen=True)
class Has:
    key: str


@dataclass(frozen=True)
class Lacks:
    key: str


@dataclass(frozen=True)
class And:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Predicate, ...]


Predicate = Cmp | Has | Lacks | And | Or


# Outcome code prefix → the rule status it reports (``fail:input`` is a failure, ``na:…`` not applicable).
STATUS_OF_CODE = {
    "na": "not_applicable",
    "exempt": "exempt",
    "fail": "fail",
    "pass": "pass",
    "pending": "pending",
}


def status_of(code: str) -> str:
    """The status an outcome code reports in verdicts and scan results."""
    return STATUS_OF_CODE[code.partition(":")[0]]


@dataclass(frozen=True)
class Outcome:
    code: str
    predicate: Predicate


@dataclass(frozen=True)
class RulePlan:
    index: int
    rule: Rule
    conjuncts: tuple[Condition, ...]
    outcomes: tuple[Outcome, ...]


def day_number(day: date) -> int:
    """Dates travel through facts as day numbers since 1970-01-01, comparable in every backend."""
    return (day - EPOCH).days


def _leaf(leaf: Leaf) -> Predicate:
    key = leaf.field
    if leaf.op == "present":
        return Has(key)
    if leaf.op == "absent":
        return Lacks(key)
    if leaf.op == "in":
        return Or(tuple(Cmp(key, "eq", v) for v in leaf.value))  # type: ignore[union-attr]
    if leaf.op == "not_in":
        return And((Has(key), *(Cmp(key, "ne", v) for v in leaf.value)))  # type: ignore[union-attr]
    if leaf.op == "ne":
        return And((Has(key), Cmp(key, "ne", leaf.value)))  # type: ignore[arg-type]
    return Cmp(key, leaf.op, leaf.value)  # type: ignore[arg-type]


def _negated_leaf(leaf: Leaf) -> Predicate:
    key = leaf.field
    if leaf.op == "present":
        return Lacks(key)
    if leaf.op == "absent":
        return Has(key)
    if leaf.op == "in":
        return Or((Lacks(key), And(tuple(Cmp(key, "ne", v) for v in leaf.value))))  # type: ignore[union-attr]
    if leaf.op == "not_in":
        return Or((Lacks(key), *(Cmp(key, "eq", v) for v in leaf.value)))  # type: ignore[union-attr]
    return Or((Lacks(key), Cmp(key, INVERSE[leaf.op], leaf.value)))  # type: ignore[arg-type]


def lower(condition: Condition, negate: bool = False) -> Predicate:
    """A rule condition as a predicate; with ``negate``, its negation pushed down to the atoms."""
    if isinstance(condition, Leaf):
        return _negated_leaf(condition) if negate else _leaf(condition)
    if isinstance(condition, NotOf):
        return lower(condition.not_, not negate)
    children = condition.all if isinstance(condition, AllOf) else condition.any
    parts = tuple(lower(child, negate) for child in children)
    conjunctive = isinstance(condition, AllOf) != negate
    return And(parts) if conjunctive else Or(parts)


def _conjuncts(rule: Rule) -> tuple[Condition, ...]:
    if rule.when is None:
        return ()
    if isinstance(rule.when, AllOf):
        return tuple(rule.when.all)
    return (rule.when,)


def plan_rule(index: int, rule: Rule) -> RulePlan:
    """The outcomes of one rule. Exactly one holds for any fact: the test suite checks it on every case."""
    conjuncts = _conjuncts(rule)
    outcomes = [Outcome("na:effective", Cmp("anchor", "lt", day_number(rule.effective_from)))]
    prefix: list[Predicate] = [Cmp("anchor", "ge", day_number(rule.effective_from))]
    if rule.effective_until is not None:
        until = day_number(rule.effective_until)
        outcomes.append(Outcome("na:ended", And((*prefix, Cmp("anchor", "gt", until)))))
        prefix.append(Cmp("anchor", "le", until))
    for k, conjunct in enumerate(conjuncts):
        if isinstance(conjunct, Leaf) and conjunct.op != "absent":
            outcomes.append(Outcome(f"na:absent:{k}", And((*prefix, Lacks(conjunct.field)))))
            if conjunct.op != "present":
                outcomes.append(
                    Outcome(f"na:cond:{k}", And((*prefix, Has(conjunct.field), lower(conjunct, True))))
                )
        else:
            outcomes.append(Outcome(f"na:cond:{k}", And((*prefix, lower(conjunct, True)))))
        prefix.append(lower(conjunct))
    value, exemption, is_open = f"v{index}", f"x{index}", f"o{index}"
    if rule.exemptible:
        outcomes.append(Outcome("exempt", And((*prefix, Has(exemption)))))
        prefix.append(Lacks(exemption))
    measure = rule.measure
    missing_fails = isinstance(measure, CalendarDaysMeasure) and measure.missing_start == "fail"
    # A field measure with a default is never missing: its input outcome could not hold.
    if not (isinstance(measure, FieldMeasure) and measure.default is not None):
        outcomes.append(Outcome("fail:input" if missing_fails else "na:input", And((*prefix, Lacks(value)))))
    op, limit = rule.require.op, rule.require.limit
    bound: Scalar | Ref = limit
    if isinstance(measure, MonthsMeasure) or (
        isinstance(measure, CalendarDaysMeasure) and measure.rest_day_extension
    ):
        bound = Ref(f"t{index}")
    within = Cmp(value, op, bound)
    beyond = Cmp(value, INVERSE[op], bound)
    can_be_open = isinstance(measure, WorkingDaysMeasure | CalendarDaysMeasure | MonthsMeasure) and op in (
        "le",
        "lt",
    )
    if can_be_open:
        outcomes.append(Outcome("pass", And((*prefix, Has(value), within, Lacks(is_open)))))
        outcomes.append(Outcome("pending", And((*prefix, Has(value), within, Has(is_open)))))
    else:
        outcomes.append(Outcome("pass", And((*prefix, Has(value), within))))
    outcomes.append(Outcome("fail", And((*prefix, Has(value), beyond))))
    return RulePlan(index, rule, conjuncts, tuple(o for o in outcomes if _possible(o.predicate)))


def _possible(predicate: Predicate) -> bool:
    """False for a conjunction that needs a key both absent and present, so can never hold.

    Such outcomes arise when two conjuncts test one field (``external_works_m > 0`` then ``≤ 150``:
    the second can not find it absent). Dropping them changes no verdict, and each outcome costs the
    durable executor one more rule to match against every fact. A comparison holds only on a present
    value, except ``ne``, which is always paired with ``Has`` when presence matters.
    """
    if not isinstance(predicate, And):
        return True
    absent = {part.key for part in predicate.parts if isinstance(part, Lacks)}
    present = {
        part.key
        for part in predicate.parts
        if isinstance(part, Has) or (isinstance(part, Cmp) and part.op != "ne")
    }
    return absent.isdisjoint(present)


@dataclass(frozen=True)
class KindPlan:
    kind: str
    rules: tuple[RulePlan, ...]

    @functools.cached_property
    def read_keys(self) -> tuple[str, ...]:
        """The fact keys some outcome predicate reads, each once, in the order first read.

        Only these need a column: a rule's four measure keys are not all read (no outcome tests the
        open flag of a field measure, nor the allowance of a fixed limit).
        """
        return tuple(
            dict.fromkeys(
                key for rule_plan in self.rules for o in rule_plan.outcomes for key in keys_of(o.predicate)
            )
        )

    @functools.cached_property
    def case_fields(self) -> list[str]:
        """The case fields the predicates read (everything that is not a measure key)."""
        return [key for key in self.read_keys if key != "anchor" and not _is_measure_key(key)]

    @functools.cached_property
    def measure_keys(self) -> tuple[tuple[str, str, str, str], ...]:
        """Each rule's fact keys (value, allowance, open, exemption), spelt once instead of per batch."""
        return tuple((f"v{r.index}", f"t{r.index}", f"o{r.index}", f"x{r.index}") for r in self.rules)


def _is_measure_key(key: str) -> bool:
    return key[0] in "vtox" and key[1:].isdigit()


def keys_of(predicate: Predicate) -> list[str]:
    if isinstance(predicate, And | Or):
        return [key for part in predicate.parts for key in keys_of(part)]
    keys = [predicate.key]
    if isinstance(predicate, Cmp) and isinstance(predicate.value, Ref):
        keys.append(predicate.value.key)
    return keys


def plan_kind(pack: RulePack, kind: str) -> KindPlan:
    return KindPlan(kind, tuple(plan_rule(i, rule) for i, rule in enumerate(pack.by_kind[kind])))
