"""One case from JSON bytes to verdict JSON bytes with the durable executor, and each stage alone.

Run with ``pytest benchmarks/test_check_bench.py --benchmark-only``. The ``check`` group holds the
whole path and its stages (parse, validate, measure, match, serialise) on the same water case, so the
split can be read off one run. Target: the whole path's median ≤ 100 µs.
"""

from __future__ import annotations

from datetime import date

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from engine import Engine
from engine.batch import Batch
from engine.cases import validate_case
from engine.measures import measure_batch

AS_OF = "2026-11-24"
AS_OF_DAY = date.fromisoformat(AS_OF)
WATER_CASE = orjson.dumps(
    {
        "case_id": "W-2026-0001",
        "kind": "water_connection",
        "district": "海曙区",
        "channel": "online",
        "customer_type": "non_residential",
        "applied_at": "2026-03-02T09:00:00+08:00",
        "connected_at": "2026-03-05T16:30:00+08:00",
        "external_works_m": 0,
        "steps": 2,
        "materials": 1,
        "pauses": [{"reason": "user_internal_works", "start": "2026-03-03", "end": "2026-03-04"}],
    }
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def check_bytes(engine: Engine, payload: bytes) -> bytes:
    case = validate_case(orjson.loads(payload))
    return orjson.dumps(engine.check_many([case], AS_OF)[0])


@pytest.mark.benchmark(group="check")
def test_check_json_to_json(benchmark: BenchmarkFixture, engine: Engine) -> None:
    out = benchmark(check_bytes, engine, WATER_CASE)
    assert orjson.loads(out)["verdict"] == "pass"  # 03-03..03-05 is 3 working days, 03-04 paused: 2


@pytest.mark.benchmark(group="check")
def test_stage_parse(benchmark: BenchmarkFixture) -> None:
    benchmark(orjson.loads, WATER_CASE)


@pytest.mark.benchmark(group="check")
def test_stage_validate(benchmark: BenchmarkFixture) -> None:
    obj = orjson.loads(WATER_CASE)
    benchmark(validate_case, obj)


@pytest.mark.benchmark(group="check")
def test_stage_measure(benchmark: BenchmarkFixture, engine: Engine) -> None:
    case = validate_case(orjson.loads(WATER_CASE))
    fields = engine.fields[case.kind]

    def measure() -> object:
        return measure_batch(
            engine.pack, Batch.from_cases(case.kind, [case], fields), engine.calendar, AS_OF_DAY
        )

    benchmark(measure)


@pytest.mark.benchmark(group="check")
def test_stage_match(benchmark: BenchmarkFixture, engine: Engine) -> None:
    case = validate_case(orjson.loads(WATER_CASE))
    measured = measure_batch(
        engine.pack, Batch.from_cases(case.kind, [case], engine.fields[case.kind]), engine.calendar, AS_OF_DAY
    )
    benchmark(engine.executor.match, engine.plans[case.kind], measured)


@pytest.mark.benchmark(group="check")
def test_stage_verdict_and_serialise(benchmark: BenchmarkFixture, engine: Engine) -> None:
    case = validate_case(orjson.loads(WATER_CASE))
    measured = measure_batch(
        engine.pack, Batch.from_cases(case.kind, [case], engine.fields[case.kind]), engine.calendar, AS_OF_DAY
    )
    outcomes = engine.executor.match(engine.plans[case.kind], measured)
    builder = engine.builders[case.kind]
    benchmark(lambda: orjson.dumps(builder.build(measured, outcomes)[0]))
