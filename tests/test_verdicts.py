"""Serialised batch verdicts (``Engine.check_serialised``) against the verdict dicts (``Engine.check_many``).

The batch endpoint answers and logs from the first; single checks, the CLI and every rule test read the
second. The first words each distinct result once and reuses it, so it is only right if rows that share
a wording really share every input the wording reads: these tests hold it to the second, byte for byte,
on batches where such inputs vary.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine
from engine.cases import Case, validate_case
from engine.chunks import VERDICT_NAMES, roll_up_verdicts
from engine.errors import InvalidCase
from engine.generate import generate_cases
from engine.rules import measure_fields
from engine.verdicts import WORDED_RESULTS, _as_integers, case_verdict, result_verdict
from tests.builders import water

SAMPLES = Path(__file__).resolve().parent.parent / "cases" / "samples"


@pytest.fixture(scope="module")
def columnar() -> Engine:
    return Engine.load(executor="columnar")


def expected(engine: Engine, cases: list[Case], as_of: date, lang: str) -> tuple[list[Any], ...]:
    """What ``check_serialised`` must give: ``check_many``'s dicts serialised one by one."""
    verdicts = engine.check_many(cases, as_of, lang)  # type: ignore[arg-type]
    return (
        [orjson.dumps(v) for v in verdicts],
        [v["verdict"] for v in verdicts],
        [orjson.dumps({r["rule"]: r["status"] for r in v["results"]}).decode() for v in verdicts],
    )


def serialised(engine: Engine, cases: list[Case], as_of: date, lang: str) -> tuple[list[Any], ...]:
    got = engine.check_serialised(cases, as_of, lang)  # type: ignore[arg-type]
    return [h + r for h, r in zip(got.head, got.rest, strict=True)], got.verdict, got.statuses


def varied(seed: int, n: int) -> list[Case]:
    """Generated cases, some with an exemption reason of their own or without one optional field: the
    inputs (reasons, missing fields, absent conditions) that the generator alone rarely varies."""
    rng = random.Random(seed)
    cases = []
    for record in generate_cases(n, seed=seed):
        for exemption in record.get("exemptions", []):
            exemption["reason"] = rng.choice(["经批准", "特殊情形", 'a "quoted"\nreason'])
        optional = [k for k in record if k not in ("case_id", "kind")]
        if rng.random() < 0.3 and optional:
            del record[rng.choice(optional)]
        try:
            cases.append(validate_case(record))
        except InvalidCase:
            continue
    return cases


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    as_of=st.dates(date(2019, 6, 1), date(2026, 12, 31)),
    lang=st.sampled_from(["zh", "en"]),
)
def test_serialised_verdicts_are_the_verdict_dicts(
    columnar: Engine, seed: int, as_of: date, lang: str
) -> None:
    cases = varied(seed, 400)
    assert serialised(columnar, cases, as_of, lang) == expected(columnar, cases, as_of, lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sample_cases_repeated_in_one_batch(columnar: Engine, lang: str) -> None:
    """Each sample many times over (distinct ids), as the API benchmark sends them."""
    valid = []
    for line in (
        line for path in sorted(SAMPLES.glob("*.ndjson")) for line in path.read_bytes().splitlines()
    ):
        try:
            valid.append(validate_case(orjson.loads(line)))
        except (orjson.JSONDecodeError, InvalidCase):
            continue
    cases = [case.model_copy(update={"case_id": f"{case.case_id}-{n}"}) for n in range(5) for case in valid]
    as_of = date(2026, 11, 24)
    assert serialised(columnar, cases, as_of, lang) == expected(columnar, cases, as_of, lang)


def without(record: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The record without the field at a dotted path; None if it has no such field."""
    head, _, rest = path.partition(".")
    if head not in record:
        return None
    if not rest:
        return {k: v for k, v in record.items() if k != head}
    inner = without(record[head], rest) if isinstance(record[head], dict) else None
    return None if inner is None else {**record, head: inner}


def test_inputs_missing_in_turn_and_pauses_that_do_not_stop_the_clock(columnar: Engine) -> None:
    """Copies of each case without one measure input at a time (``na:input``/``fail:input`` name the
    field), and with an extra pause whose reason stops no clock (counted in the message, not in the
    value): rows that differ only there must still be worded apart."""
    cases = []
    for record in generate_cases(600, seed=5):
        inputs = {
            name for rule in columnar.pack.by_kind[record["kind"]] for name in measure_fields(rule.measure)
        }
        variants = [v for name in sorted(inputs) if (v := without(record, name)) is not None]
        start = next((v for k, v in record.items() if k.endswith("_at") and isinstance(v, str)), None)
        if start is not None:
            day = date.fromisoformat(start[:10])
            pause = {
                "reason": "other",
                "start": day.isoformat(),
                "end": (day + timedelta(days=3)).isoformat(),
            }
            variants.append({**record, "pauses": [*record.get("pauses", []), pause]})
        for n, variant in enumerate([record, *variants]):
            try:
                cases.append(validate_case({**variant, "case_id": f"{record['case_id']}-{n}"}))
            except InvalidCase:
                continue
    as_of = date(2026, 11, 24)
    assert serialised(columnar, cases, as_of, "zh") == expected(columnar, cases, as_of, "zh")


def test_an_empty_batch(columnar: Engine) -> None:
    assert serialised(columnar, [], date(2026, 11, 24), "zh") == ([], [], [])


def test_values_are_numbered_apart_by_type_and_value() -> None:
    """True and 1 are equal in Python but worded differently ("true", "1"), and None is not "None"."""
    numbers = _as_integers(np.array([True, 1, 1.0, "1", None, "None", True, 1], object))
    assert len(set(numbers[:6].tolist())) == 6
    assert numbers[6] == numbers[0] and numbers[7] == numbers[1]
    floats = _as_integers(np.array([0.5, 2.0, 0.5, np.nan]))
    assert floats[0] == floats[2] and len(set(floats[:2].tolist())) == 2


def test_kept_wordings_are_copies_and_keyed_by_every_input(engine: Engine) -> None:
    """Measured results are kept worded by their row's values (``VerdictBuilder._measured_result``): a caller
    that changes a verdict it got must not change the next one's, and a row that differs in a value, its
    type or the language must get its own wording."""
    case = validate_case(water(steps=2))
    first = engine.check_many([case], "2026-11-24")[0]
    first["results"][0]["message"] = "changed"
    again = engine.check_many([case], "2026-11-24")[0]
    assert (
        again["results"][0]["message"] == "符合：用水报装流程不超过2个环节（实际2个环节，要求不超过2个环节）"
    )
    other = engine.check_many([validate_case(water(steps=1))], "2026-11-24", "en")[0]["results"][0]
    assert other["value"] == 1 and other["message"].startswith("pass: ") and "(1 step," in other["message"]
    builder = engine.builders["water_connection"]
    words = [
        builder._measured_result("water.steps", "pass", "zh", v, *[None] * 7)["message"] for v in (1, True)
    ]
    assert "实际1个环节" in words[0] and "实际true" in words[1]


def test_kept_wordings_are_bounded(engine: Engine) -> None:
    """However many distinct rows a long run words, the builder keeps at most ``WORDED_RESULTS``."""
    builder = engine.builders["water_connection"]
    for value in range(WORDED_RESULTS + 10):
        builder._measured_result("water.steps", "fail", "en", float(value), *[None] * 7)
    assert builder._measured_result.cache_info().currsize == WORDED_RESULTS


@pytest.mark.parametrize(
    ("results", "verdict"),
    [
        ([], "not_checked"),
        ([("exempt", "mandatory"), ("not_applicable", "advisory")], "pass"),
        ([("pass", "mandatory"), ("pending", "advisory")], "pending"),
        ([("pending", "mandatory"), ("fail", "advisory")], "warn"),
        ([("fail", "advisory"), ("fail", "mandatory"), ("pending", "mandatory")], "fail"),
    ],
)
def test_case_verdict_by_hand(results: list[tuple[str, str]], verdict: str) -> None:
    assert case_verdict([{"status": s, "severity": v} for s, v in results]) == verdict


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["pass", "fail", "pending", "exempt", "not_applicable"]),
                st.sampled_from(["mandatory", "advisory"]),
            ),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_a_scan_rolls_up_verdicts_as_a_single_check_does(cases: list[list[tuple[str, str]]]) -> None:
    """The scan's matrix roll-up and the single check's agree for every mix of outcomes."""
    ranks = np.array([[VERDICT_NAMES.index(result_verdict(s, v)) for s, v in case] for case in cases])
    scanned = [VERDICT_NAMES[i] for i in roll_up_verdicts(ranks)]
    assert scanned == [case_verdict([{"status": s, "severity": v} for s, v in case]) for case in cases]
