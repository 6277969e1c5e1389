"""Scanning history: end to end against orjson's parse floor, Parquet against NDJSON, and the executors.

Run with ``pytest benchmarks/test_scan_bench.py --benchmark-only``. The number of generated cases is
``CASECHECK_BENCH_CASES`` (default 1,000,000; the data is generated once per run into a temporary
folder). Groups:

* ``scan``: orjson parsing every line of the NDJSON file on one core (the floor), ``casecheck scan``'s
  pipeline on the same NDJSON and on the same cases as Parquet, in one process and with two worker
  processes. Goals: NDJSON within 4× of the floor (2× beyond that); Parquet at least 300,000 cases/s;
  workers never slower than one process.
* ``executors``: the columnar executor on in-memory columns (measured batches, no I/O or validation):
  goal ≥ 10 million case evaluations per second; and the durable executor on the same 100,000 cases.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from engine import Engine
from engine.batch import Batch
from engine.cases import validate_case
from engine.generate import generate_cases, write_cases
from engine.measures import Measured, measure_batch
from engine.reading import input_files
from engine.scan import Scanner

CASES = int(os.environ.get("CASECHECK_BENCH_CASES", "1000000"))
EXECUTOR_CASES = 100_000
AS_OF = "2026-11-24"
AS_OF_DAY = date.fromisoformat(AS_OF)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scan-bench")
    paths = {"ndjson": folder / "cases.ndjson", "parquet": folder / "cases.parquet"}
    for path in paths.values():
        write_cases(generate_cases(CASES, seed=1), path)
    return paths


@pytest.fixture(scope="module")
def columnar() -> Engine:
    return Engine.load(executor="columnar")


def parse_every_line(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
            count += 1
    return count


@pytest.mark.benchmark(group="scan")
def test_orjson_parse_floor(benchmark: BenchmarkFixture, data: dict[str, Path]) -> None:
    count = benchmark.pedantic(parse_every_line, args=(data["ndjson"],), rounds=3, iterations=1)
    benchmark.extra_info["cases"] = count
    assert count == CASES


def _scan(engine: Engine, path: Path, out: Path, workers: int) -> dict:
    return Scanner(engine, out, AS_OF, workers=workers).scan(input_files([path]))


@pytest.mark.benchmark(group="scan")
@pytest.mark.parametrize("form", ["ndjson", "parquet"])
@pytest.mark.parametrize("workers", [1, 2])
def test_scan(
    benchmark: BenchmarkFixture,
    data: dict[str, Path],
    columnar: Engine,
    tmp_path: Path,
    form: str,
    workers: int,
) -> None:
    summary = benchmark.pedantic(
        _scan, args=(columnar, data[form], tmp_path, workers), rounds=3, iterations=1
    )
    benchmark.extra_info["cases"] = summary["input"]
    assert summary["input"] == CASES


@pytest.fixture(scope="module")
def measured(columnar: Engine) -> list[Measured]:
    """EXECUTOR_CASES generated cases, validated and measured per kind: the executors' input."""
    cases = [validate_case(obj) for obj in generate_cases(EXECUTOR_CASES, seed=4)]
    batches = []
    for kind in columnar.plans:
        of_kind = [case for case in cases if case.kind == kind]
        if of_kind and columnar.plans[kind].rules:
            batch = Batch.from_cases(kind, of_kind, columnar.fields[kind])
            batches.append(measure_batch(columnar.pack, batch, columnar.calendar, AS_OF_DAY))
    return batches


def _match_all(engine: Engine, batches: list[Measured]) -> int:
    return sum(len(engine.executor.match(engine.plans[m.batch.kind], m)) for m in batches)


@pytest.mark.benchmark(group="executors")
def test_columnar_executor(benchmark: BenchmarkFixture, columnar: Engine, measured: list[Measured]) -> None:
    def outcome_frames() -> int:
        executor = columnar.executor
        return sum(executor.outcome_frame(columnar.plans[m.batch.kind], m).height for m in measured)  # type: ignore[attr-defined]

    rows = benchmark.pedantic(outcome_frames, rounds=5, iterations=1)
    benchmark.extra_info["cases"] = rows


@pytest.mark.benchmark(group="executors")
def test_durable_executor(benchmark: BenchmarkFixture, measured: list[Measured]) -> None:
    durable = Engine.load(executor="durable")
    rows = benchmark.pedantic(_match_all, args=(durable, measured), rounds=3, iterations=1)
    benchmark.extra_info["cases"] = rows
