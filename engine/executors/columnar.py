"""The columnar executor: the plan compiled into Polars expressions over a whole batch at once.

Every rule becomes one ``when/then`` chain choosing its outcome; Polars evaluates all rules of a kind
over all rows in two ``select``s, with no Python per row. A comparison on an absent (null) value is
false, as in durable_rules, so both executors read the same plan the same way.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.executors.facts import FactLayout
from engine.executors.plan import (
    INVERSE,
    And,
    Cmp,
    Has,
    KindPlan,
    Lacks,
    Or,
    Outcome,
    Predicate,
    Ref,
    keys_of,
)
from engine.measures import Measured

__all__ = [
    "COMPARE",
    "Atom",
    "ColumnarExecutor",
    "CompiledKind",
    "FirstMatch",
    "compile_atom",
    "compile_condition",
    "compile_plan",
    "compile_predicate",
    "fact_frame",
    "fact_series",
    "first_match",
]

COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}

Atom = Cmp | Has | Lacks


def compile_atom(atom: Atom) -> pl.Expr:
    """An atom as a Polars boolean expression: null where a comparison meets an absent value."""
    if isinstance(atom, Has):
        return pl.col(atom.key).is_not_null()
    if isinstance(atom, Lacks):
        return pl.col(atom.key).is_null()
    right = pl.col(atom.value.key) if isinstance(atom.value, Ref) else pl.lit(atom.value)
    return COMPARE[atom.op](pl.col(atom.key), right)


def compile_condition(predicate: Predicate, atom: Callable[[Atom], pl.Expr] = compile_atom) -> pl.Expr:
    """A plan predicate as a Polars boolean expression: true where it holds, false or null elsewhere.

    Null only ever means "does not hold": a predicate has no negation (``lower`` pushes it into the
    atoms), so if reading its null atoms as false makes it false, Polars' three-valued AND/OR give false
    or null, never true. A ``when`` takes null as false, so conditions need no ``fill_null`` per atom.
    ``atom`` compiles the atoms, e.g. as references to columns that hold them already.
    """
    if isinstance(predicate, And | Or):
        parts = [compile_condition(p, atom) for p in predicate.parts]
        if not parts:  # an empty conjunction always holds, an empty disjunction never
            return pl.lit(isinstance(predicate, And))
        return functools.reduce(operator.and_ if isinstance(predicate, And) else operator.or_, parts)
    return atom(predicate)


def compile_predicate(predicate: Predicate) -> pl.Expr:
    """A plan predicate as a Polars boolean expression that is never null, for counting or keeping."""
    return compile_condition(predicate).fill_null(False)


def _atoms(predicate: Predicate) -> list[Atom]:
    if isinstance(predicate, And | Or):
        return [atom for part in predicate.parts for atom in _atoms(part)]
    return [predicate]


@dataclass(frozen=True)
class CompiledKind:
    """A kind's plan as two selects: its atoms, each once, then every rule's first-match chain over them.

    The rules of a kind test the same few atoms (the effective date, the first condition) again and
    again; as columns, each is computed once per batch, and the chains only combine boolean columns.
    An atom's column is named by its repr, which no fact key can be. ``layout`` says where each fact
    key the chains read comes from.
    """

    layout: FactLayout
    atoms: list[pl.Expr]
    chains: list[pl.Expr]
    # Per rule: its id and the keys without which no outcome of it holds (``FirstMatch.required``).
    required: list[tuple[str, tuple[str, ...]]]


def compile_plan(plan: KindPlan) -> CompiledKind:
    """Each rule's chain gives the position of its first residual guard that holds, named by rule index.

    The position, not the code: a small integer per row is far cheaper to produce than a string, and
    the codes are looked up once per column afterwards.
    """
    atoms: dict[str, pl.Expr] = {}
    chains = []
    required = []
    for rule_plan in plan.rules:
        matching = first_match(rule_plan.outcomes)
        tested = list(enumerate(matching.guards))
        # A guard that always holds (nothing left to test) ends the chain: later outcomes are unreachable.
        last = next((position for position, guard in tested if guard == And(())), None)
        chain = pl.lit(last, pl.UInt8)
        for position, guard in reversed(tested[:last]):
            for atom in _atoms(guard):
                atoms.setdefault(repr(atom), compile_atom(atom).alias(repr(atom)))
            condition = compile_condition(guard, lambda a: pl.col(repr(a)))
            chain = pl.when(condition).then(pl.lit(position, pl.UInt8)).otherwise(chain)
        chains.append(chain.alias(str(rule_plan.index)))
        required.append((rule_plan.rule.id, matching.required))
    return CompiledKind(FactLayout.of(plan), list(atoms.values()), chains, required)


def fact_series(column: np.ndarray | None, n: int) -> pl.Series:
    """A fact column as a Polars Series, null where absent; each kind of column by its cheapest path.

    Numbers, and dates as their day numbers, are float64 with NaN turned into null as Polars copies
    them (dates with no NaT go as their int64 day numbers, without a mask); presence flags become 1.0 or
    null the same way, and a flag no row carries (None) is all null. Only text and booleans go through
    Python objects.
    """
    if column is None:
        return pl.Series(np.full(n, np.nan), nan_to_null=True)
    kind = column.dtype.kind
    if kind == "M":
        missing = np.isnat(column)
        if not missing.any():
            return pl.Series(column.view(np.int64))
        days = column.view(np.int64).astype(np.float64)
        days[missing] = np.nan
        return pl.Series(days, nan_to_null=True)
    if kind == "f":
        return pl.Series(column, nan_to_null=True)
    if kind == "b":
        return pl.Series(np.where(column, 1.0, np.nan), nan_to_null=True)
    return pl.Series(column.tolist(), strict=False)


def fact_frame(layout: FactLayout, measured: Measured) -> pl.DataFrame:
    """Every key of the layout, as a column; null where the fact lacks the key.

    Keys often share a column (a flag no case sets, one field measured by several rules, a field that
    is also a measure): each array is converted once and aliased for the others.
    """
    converted: dict[int, pl.Series] = {}
    columns = []
    for key, column in layout.sources(measured):
        series = converted.get(id(column))
        if series is None:
            series = converted[id(column)] = fact_series(column, measured.batch.n)
        columns.append(series.alias(key))
    return pl.DataFrame(columns)


class ColumnarExecutor:
    """Matches a whole batch in Polars; the path for scans and batch checks."""

    name = "columnar"

    def __init__(self, plans: dict[str, KindPlan]) -> None:
        self._plans = plans
        self._compiled = {kind: compile_plan(plan) for kind, plan in plans.items()}

    def outcome_frame(self, plan: KindPlan, measured: Measured) -> pl.DataFrame:
        """One column per rule (named by rule index), one row per case: the position of the outcome
        that holds in the rule's ``outcomes``."""
        compiled = self._compiled[plan.kind]
        frame = fact_frame(compiled.layout, measured)
        # Eager: the atoms are shared by hand, so a lazy query's optimiser would only add its own cost.
        outcomes = frame.select(compiled.atoms).select(compiled.chains)
        lacking = {
            key for key in {k for _, keys in compiled.required for k in keys} if frame[key].null_count()
        }
        unmatched = [
            rule_id
            for nulls, (rule_id, keys) in zip(outcomes.null_count().row(0), compiled.required, strict=True)
            if nulls or lacking.intersection(keys)
        ]
        if unmatched:
            raise RuntimeError(f"no outcome matched for rules {', '.join(unmatched)}")
        return outcomes

    def outcome_indices(self, plan: KindPlan, measured: Measured) -> np.ndarray:
        if not plan.rules:
            return np.zeros((measured.batch.n, 0), np.int64)
        # ``outcome_frame``'s columns are the rules' chains in the plan's rule order already.
        return self.outcome_frame(plan, measured).to_numpy().astype(np.int64)

    def match(self, plan: KindPlan, measured: Measured) -> list[list[str]]:
        if not plan.rules:
            return [[] for _ in range(measured.batch.n)]
        positions = self.outcome_indices(plan, measured)
        columns = [
            np.array([o.code for o in rule_plan.outcomes], object)[positions[:, r]]
            for r, rule_plan in enumerate(plan.rules)
        ]
        return np.stack(columns, axis=1).tolist()


# The first-match chains ``compile_plan`` builds: each outcome's residual guard, found by implication.


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
