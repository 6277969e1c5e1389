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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from engine.rules import (
    AllOf,
    CalendarDaysMeasure,
    Condition,
    FieldMeasure,
    Leaf,
    MonthsMeasure,
    NotOf,
    Rule,
    RulePack,
    Scalar,
    WorkingDaysMeasure,
)

if TYPE_CHECKING:
    from engine.executors.facts import FactLayout

EPOCH = date(1970, 1, 1)
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

    @functools.cached_property
    def fact_layout(self) -> FactLayout:
        """Where each key the predicates read comes from (``facts.fact_sources``), worked out once per
        plan: both executors take it, so no backend converts a column that no outcome reads."""
        from engine.executors.facts import FactLayout  # facts reads plans: imported on first use

        return FactLayout.of(self, frozenset(self.read_keys))


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


@dataclass(frozen=True)
class FirstMatch:
    """A rule's outcomes as a first-match chain: what a ``when/then`` chain or an SQL ``CASE`` evaluates.

    ``required`` are the keys every outcome needs present: a fact that lacks one matches no outcome, so a
    backend can tell those facts apart with one test per key and batch. On the other facts, the first of
    ``guards`` that holds is the outcome whose full predicate holds.
    """

    required: tuple[str, ...]
    guards: tuple[Predicate, ...]


def first_match(outcomes: Sequence[Outcome]) -> FirstMatch:
    """Each outcome's *residual* guard: what picks it in a chain where every earlier outcome failed.

    The full predicates repeat the negated prefixes of the earlier outcomes: ``fail`` is "effective AND
    condition AND not exempt AND value present AND value beyond the limit", and a chain would test that
    prefix again for every outcome. Where the earlier outcomes failed, most of it is known (their failure
    is what says the condition held and the value is present), so a guard keeps only the parts of its
    outcome's conjunction that the earlier failures, the required keys and the other kept parts do not
    imply. Parts are only ever dropped, never rewritten, so a guard reads nothing its predicate does not;
    tests/test_executors.py checks the chain against the full predicates on generated facts.
    """
    conjunctions = [_conjuncts_of(outcome.predicate) for outcome in outcomes]
    candidates = dict.fromkeys(keys_of(outcomes[0].predicate)) if outcomes else {}
    required = tuple(
        key for key in candidates if all(_holds(_implied(list(c), []), Has(key)) for c in conjunctions)
    )
    present = [Has(key) for key in required]
    guards = []
    for i, parts in enumerate(conjunctions):
        kept = list(parts)
        for part in parts:
            rest = [p for p in kept if p is not part]
            known = _implied([*present, *rest], conjunctions[:i])
            if _holds(known, part):
                kept = rest
            elif isinstance(part, Or):
                # (a OR b) where a can not hold is b: e.g. a negated condition's "absent OR ..." on a field
                # that an earlier na:absent outcome, by failing, has shown to be present.
                alternatives = tuple(p for p in part.parts if not _fails(known, p))
                kept[kept.index(part)] = alternatives[0] if len(alternatives) == 1 else Or(alternatives)
        guards.append(kept[0] if len(kept) == 1 else And(tuple(kept)))
    return FirstMatch(required, tuple(guards))


def _conjuncts_of(predicate: Predicate) -> tuple[Predicate, ...]:
    return predicate.parts if isinstance(predicate, And) else (predicate,)


# Facts known to hold, keyed by repr: dataclass equality would take False for 0 (see durable.py).
Known = dict[str, Predicate]


def _implied(facts: list[Predicate], failed: list[tuple[Predicate, ...]]) -> Known:
    """What holds where ``facts`` hold and each of the ``failed`` conjunctions does not.

    Two inferences, repeated until nothing new follows: a failed conjunction whose other parts all hold
    must have failed on its remaining part, so that part's negation holds; and a known disjunction whose
    other alternatives all fail must hold on its remaining one.
    """
    known: Known = {}
    _learn(known, And(tuple(facts)))
    learnt = True
    while learnt:
        learnt = False
        for parts in failed:
            if any(_fails(known, p) for p in parts):
                continue
            unknown = [p for p in parts if not _holds(known, p)]
            negation = _negation(unknown[0]) if len(unknown) == 1 else None
            if negation is not None:
                learnt |= _learn(known, negation)
        for fact in list(known.values()):
            if isinstance(fact, Or):
                alternatives = [p for p in fact.parts if not _fails(known, p)]
                if len(alternatives) == 1:
                    learnt |= _learn(known, alternatives[0])
    return known


def _learn(known: Known, fact: Predicate) -> bool:
    """Adds a fact (a conjunction as its parts); True if anything was new."""
    new = False
    for part in _conjuncts_of(fact):
        if not _holds(known, part):
            known[repr(part)] = part
            new = True
    return new


def _holds(known: Known, predicate: Predicate) -> bool:
    """True if the known facts imply the predicate (False: it may or may not hold)."""
    if repr(predicate) in known:
        return True
    if isinstance(predicate, And):
        return all(_holds(known, p) for p in predicate.parts)
    if isinstance(predicate, Or):
        return any(_holds(known, p) for p in predicate.parts)
    if isinstance(predicate, Has):
        # A comparison holds only on a present value (``ne`` aside: backends may differ on absent keys).
        return any(
            isinstance(fact, Cmp) and fact.key == predicate.key and fact.op != "ne" for fact in known.values()
        )
    return False


def _fails(known: Known, predicate: Predicate) -> bool:
    """True if the known facts imply that the predicate does not hold."""
    if isinstance(predicate, And):
        return any(_fails(known, p) for p in predicate.parts)
    if isinstance(predicate, Or):
        return all(_fails(known, p) for p in predicate.parts)
    if isinstance(predicate, Lacks):
        return _holds(known, Has(predicate.key))
    if isinstance(predicate, Has) or (isinstance(predicate, Cmp) and predicate.op != "ne"):
        return repr(Lacks(predicate.key)) in known
    return False


def _negation(predicate: Predicate, present: frozenset[str] = frozenset()) -> Predicate | None:
    """The predicate's exact negation, or None where it can not be said the same way for every backend.

    ``present`` are keys known to be present, on which a comparison and its inverse are each other's
    negation; on a key that may be absent only the comparisons that are false there (all but ``ne``)
    are negated, and comparisons with another key (``Ref``) not at all. In the negation of an ``Or`` that
    allows a key to be absent (``lower``'s negated leaf), or of an ``And`` that needs it present, the
    other parts only matter where the key is present.
    """
    if isinstance(predicate, Has):
        return Lacks(predicate.key)
    if isinstance(predicate, Lacks):
        return Has(predicate.key)
    if isinstance(predicate, Cmp):
        if isinstance(predicate.value, Ref):
            return None
        inverse = Cmp(predicate.key, INVERSE[predicate.op], predicate.value)
        if predicate.key in present:
            return inverse
        return None if predicate.op == "ne" else Or((Lacks(predicate.key), inverse))
    guard = Lacks if isinstance(predicate, Or) else Has
    present = present | {p.key for p in predicate.parts if isinstance(p, guard)}
    negations = [_negation(p, present) for p in predicate.parts]
    if any(n is None for n in negations):
        return None
    return (Or if isinstance(predicate, And) else And)(tuple(negations))  # type: ignore[arg-type]
