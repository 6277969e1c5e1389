"""Both executors read one plan: they must agree on every case, and every rule must reach one outcome."""

from __future__ import annotations

import operator
import resource
from datetime import date
from typing import Any

import durable_rules_engine
import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine
from engine.batch import Batch
from engine.cases import validate_case
from engine.domain import KINDS
from engine.errors import CalendarRangeError
from engine.executors import durable as durable_module
from engine.executors.columnar import FirstMatch, compile_predicate, fact_frame, first_match
from engine.executors.facts import FactLayout, fact_sources
from engine.executors.plan import (
    And,
    Cmp,
    Has,
    Lacks,
    Or,
    Outcome,
    Predicate,
    Ref,
    RulePlan,
)
from engine.generate import generate_cases
from engine.measures import measure_batch
from tests.builders import water

AS_OF = date(2026, 11, 24)


@pytest.fixture(scope="module")
def durable() -> Engine:
    return Engine.load(executor="durable")


@pytest.fixture(scope="module")
def columnar() -> Engine:
    return Engine.load(executor="columnar")


def test_generated_cases_cover_every_kind_and_status(durable: Engine) -> None:
    cases = [validate_case(obj) for obj in generate_cases(3000, seed=7)]
    assert {case.kind for case in cases} == set(KINDS)
    statuses = {r["status"] for v in durable.check_many(cases, AS_OF) for r in v["results"]}
    assert statuses == {"pass", "fail", "pending", "exempt", "not_applicable"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), as_of=st.dates(date(2019, 6, 1), date(2026, 12, 31)))
def test_executors_agree_on_generated_cases(
    durable: Engine, columnar: Engine, seed: int, as_of: date
) -> None:
    cases = [validate_case(obj) for obj in generate_cases(200, seed=seed)]
    assert durable.check_many(cases, as_of) == columnar.check_many(cases, as_of)


def test_outcomes_are_exclusive_and_complete(durable: Engine) -> None:
    """Each outcome predicate evaluated on its own: exactly one holds per rule and case."""
    cases = [validate_case(obj) for obj in generate_cases(2000, seed=11)]
    for kind in KINDS:
        of_kind = [case for case in cases if case.kind == kind]
        batch = Batch.from_cases(kind, of_kind, durable.fields[kind])
        measured = measure_batch(durable.pack, batch, durable.calendar, AS_OF)
        plan = durable.plans[kind]
        frame = fact_frame(FactLayout.of(plan), measured)
        for rule_plan in plan.rules:
            held = frame.select(
                [compile_predicate(o.predicate).cast(pl.Int8).alias(o.code) for o in rule_plan.outcomes]
            )
            counts = held.sum_horizontal().to_numpy()
            assert np.all(counts == 1), f"{rule_plan.rule.id}: outcomes held {set(counts.tolist())} times"


def test_fact_layout_of_some_keys_takes_those_of_every_key(durable: Engine) -> None:
    """A layout of some of the read keys gets exactly those sources, each the same column as in
    ``fact_sources`` (the plan's layout, of every key read), in the same order; exemption flags included."""
    cases = [validate_case(obj) for obj in generate_cases(2000, seed=5)]
    exempt_seen = False
    for kind in KINDS:
        of_kind = [case for case in cases if case.kind == kind]
        if not of_kind:
            continue
        batch = Batch.from_cases(kind, of_kind, durable.fields[kind])
        measured = measure_batch(durable.pack, batch, durable.calendar, AS_OF)
        plan = durable.plans[kind]
        every = fact_sources(plan, measured)
        keys = [key for i, (key, _) in enumerate(every) if i % 2 == 0]  # half of them, of every sort
        some = FactLayout.of(plan, set(keys)).sources(measured)
        assert [key for key, _ in some] == keys
        for (key, column), (every_key, every_column) in zip(
            some, [source for source in every if source[0] in set(keys)], strict=True
        ):
            assert key == every_key
            if column is None or every_column is None:
                assert column is every_column
            else:
                exempt_seen |= key.startswith("x") and bool(column.any())
                assert np.array_equal(column, every_column, equal_nan=column.dtype.kind == "f")
    assert exempt_seen


def _water_batch(durable: Engine, **days: str | None) -> Batch:
    """A one-case water batch whose date columns are then set to ``days`` (None: absent), as a batch
    from another source than validated models (which refuse dates outside the calendar) could be."""
    batch = Batch.from_cases("water_connection", [validate_case(water())], durable.fields["water_connection"])
    assert batch.days is not None
    for path, day in days.items():
        batch.columns[path][:] = np.datetime64("NaT") if day is None else np.datetime64(day, "D")
    return batch


@pytest.mark.parametrize(
    ("days", "year"),
    [
        ({"connected_at": "2027-01-05"}, 2027),
        ({"applied_at": "2003-12-30"}, 2003),
        ({"applied_at": "2026-12-30", "connected_at": None}, None),  # open: runs to as_of, inside
        ({"applied_at": None, "connected_at": "2027-01-05"}, None),  # no start: the end is not read
    ],
)
def test_measures_refuse_a_window_outside_the_calendar(
    durable: Engine, days: dict[str, str | None], year: int | None
) -> None:
    """The range check of the working-day windows: a bound outside the calendar (either side) raises the
    calendar's own error, naming its year; a window without a start raises nothing."""
    batch = _water_batch(durable, **days)
    if year is None:
        measure_batch(durable.pack, batch, durable.calendar, AS_OF)
    else:
        with pytest.raises(CalendarRangeError, match=str(year)):
            measure_batch(durable.pack, batch, durable.calendar, AS_OF)


_OPERATORS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _holds(predicate: Predicate, fact: dict[str, Any]) -> bool:
    """What a predicate means (plan.py), written out again: a comparison with an absent value is false."""
    if isinstance(predicate, And):
        return all(_holds(p, fact) for p in predicate.parts)
    if isinstance(predicate, Or):
        return any(_holds(p, fact) for p in predicate.parts)
    if isinstance(predicate, Has | Lacks):
        return (fact[predicate.key] is None) == isinstance(predicate, Lacks)
    left = fact[predicate.key]
    right = fact[predicate.value.key] if isinstance(predicate.value, Ref) else predicate.value
    return left is not None and right is not None and _OPERATORS[predicate.op](left, right)


def _first(predicates: list[Predicate], fact: dict[str, Any]) -> int | None:
    return next((i for i, predicate in enumerate(predicates) if _holds(predicate, fact)), None)


def _atoms(predicate: Predicate) -> list[Predicate]:
    if isinstance(predicate, And | Or):
        return [atom for part in predicate.parts for atom in _atoms(part)]
    return [predicate]


def _facts(rule_plan: RulePlan) -> st.SearchStrategy[dict[str, Any]]:
    """Facts over the keys a rule reads: each absent, or a value on either side of (or at) every
    constant it is compared with, so that every comparison can go either way."""
    values: dict[str, list[Any]] = {}
    for outcome in rule_plan.outcomes:
        for atom in _atoms(outcome.predicate):
            found = values.setdefault(atom.key, [])
            if not isinstance(atom, Cmp):
                continue
            if isinstance(atom.value, Ref):  # two measures compared: small numbers, often equal
                found += range(4)
                values.setdefault(atom.value.key, []).extend(range(4))
            elif isinstance(atom.value, bool):
                found += [True, False]
            elif isinstance(atom.value, str):
                found += [atom.value, "other"]
            else:
                found += [atom.value - 1, atom.value, atom.value + 0.5, atom.value + 1]
    return st.fixed_dictionaries(
        {key: st.none() | st.sampled_from(found or [True]) for key, found in values.items()}
    )


@pytest.fixture(scope="module")
def chains(durable: Engine) -> list[tuple[RulePlan, FirstMatch]]:
    return [
        (rule_plan, first_match(rule_plan.outcomes))
        for plan in durable.plans.values()
        for rule_plan in plan.rules
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_first_match_guards_pick_the_outcome_that_holds(
    chains: list[tuple[RulePlan, FirstMatch]], data: st.DataObject
) -> None:
    """Residual guards in order choose the outcome whose full predicate holds, on any fact."""
    for rule_plan, matching in chains:
        fact = data.draw(_facts(rule_plan), label=rule_plan.rule.id)
        holds = _first([outcome.predicate for outcome in rule_plan.outcomes], fact)
        if any(fact[key] is None for key in matching.required):
            assert holds is None, f"{rule_plan.rule.id}: an outcome holds without {matching.required}"
        else:
            assert _first(list(matching.guards), fact) == holds, rule_plan.rule.id


_KEYS = ("a", "b")
_atom = st.one_of(
    st.builds(Has, st.sampled_from(_KEYS)),
    st.builds(Lacks, st.sampled_from(_KEYS)),
    st.builds(Cmp, st.sampled_from(_KEYS), st.sampled_from(sorted(_OPERATORS)), st.integers(0, 2)),
    st.builds(
        Cmp,
        st.sampled_from(_KEYS),
        st.sampled_from(sorted(_OPERATORS)),
        st.builds(Ref, st.sampled_from(_KEYS)),
    ),
)
_predicate = st.recursive(
    _atom,
    lambda inner: st.builds(And, st.tuples(inner, inner)) | st.builds(Or, st.tuples(inner, inner)),
    max_leaves=4,
)


@settings(max_examples=500, deadline=None)
@given(
    conjunctions=st.lists(st.lists(_predicate, min_size=1, max_size=4), min_size=1, max_size=6),
    facts=st.lists(
        st.fixed_dictionaries({key: st.none() | st.integers(-1, 3) for key in _KEYS}), max_size=20
    ),
)
def test_first_match_guards_on_any_outcome_list(
    conjunctions: list[list[Predicate]], facts: list[dict[str, Any]]
) -> None:
    """Guards are derived for any list of outcomes (not only exclusive ones, as the plan's are)."""
    outcomes = [Outcome(str(i), And(tuple(parts))) for i, parts in enumerate(conjunctions)]
    matching = first_match(outcomes)
    for fact in facts:
        holds = _first([outcome.predicate for outcome in outcomes], fact)
        if any(fact[key] is None for key in matching.required):
            assert holds is None
        else:
            assert _first(list(matching.guards), fact) == holds


def test_guards_only_drop_parts_of_their_predicates(chains: list[tuple[RulePlan, FirstMatch]]) -> None:
    """A guard reads no atom its predicate does not, and the guards together read far fewer."""
    full = residual = 0
    for rule_plan, matching in chains:
        assert len(matching.guards) == len(rule_plan.outcomes)
        for outcome, guard in zip(rule_plan.outcomes, matching.guards, strict=True):
            assert {repr(a) for a in _atoms(guard)} <= {repr(a) for a in _atoms(outcome.predicate)}
            full += len(_atoms(outcome.predicate))
            residual += len(_atoms(guard))
    assert residual < full / 2


def _water(case_id: str, connected: str) -> dict[str, object]:
    return {
        "case_id": case_id,
        "kind": "water_connection",
        "customer_type": "non_residential",
        "applied_at": "2026-03-02",
        "connected_at": connected,
        "external_works_m": 0,
        "steps": 2,
        "materials": 1,
    }


def test_same_case_id_twice_is_judged_twice(durable: Engine) -> None:
    """durable_rules dedups facts by id within a session: each check must assert under an id of its own."""
    first = durable.check(_water("W-DUP", "2026-03-04"), as_of=AS_OF)
    second = durable.check(_water("W-DUP", "2026-03-09"), as_of=AS_OF)
    again = durable.check(_water("W-DUP", "2026-03-04"), as_of=AS_OF)
    assert (first.results[2].rule, first.results[2].status) == ("water.no_external.2wd", "pass")
    assert second.results[2].status == "fail"
    assert again == first


def test_no_fact_outlives_its_check(durable: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The durable session is kept and each fact retracted: none is left, even by a check that failed
    halfway through its actions (the session goes then), and the next check is judged as before."""
    case = validate_case(_water("W-LEFT", "2026-03-05"))
    expected = durable.check_many([case], AS_OF)

    def broken(handle: int, state: str) -> str:
        raise RuntimeError("action failed")

    monkeypatch.setattr(durable_module.durable_rules_engine, "complete_and_start_action", broken)
    with pytest.raises(RuntimeError, match="action failed"):
        durable.check_many([case], AS_OF)
    monkeypatch.undo()
    assert durable.check_many([case], AS_OF) == expected
    handle = durable.executor._handles["water_connection"][0][0]  # type: ignore[attr-defined]
    assert orjson.loads(durable_rules_engine.get_facts(handle, durable_module._SESSION)) == []


def test_a_kind_whose_rules_all_do_not_apply(durable: Engine) -> None:
    review = {
        "case_id": "R-1",
        "kind": "service_review",
        "rating": "positive",
        "reviewed_at": "2026-05-06",
        "revisited": False,
        "rectified": False,
    }
    verdict = durable.check(review, as_of=AS_OF)
    assert verdict.verdict == "pass"
    assert {r.status for r in verdict.results} == {"not_applicable"}


@pytest.mark.scale
def test_durable_memory_stays_flat(durable: Engine) -> None:
    """Facts are retracted after each check: RSS must not grow with the number of checks."""
    case = validate_case(_water("W-MEM", "2026-03-05"))

    def rss_mib() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

    for _ in range(2_000):
        durable.check_many([case], AS_OF)
    before = rss_mib()
    for _ in range(20_000):
        durable.check_many([case], AS_OF)
    assert rss_mib() - before < 8, "RSS grew over 20,000 checks"
