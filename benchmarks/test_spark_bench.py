"""The scan on Spark (``local[2]``) beside the local scan, on the same generated Parquet file, in one run.

Run with ``pytest benchmarks/test_spark_bench.py --benchmark-only``; ``CASECHECK_BENCH_SPARK_CASES``
sets the size (default 1,000,000). Each side runs the whole scan: reading, checking, the summary and
aggregates, and writing verdicts and results as Parquet. ``extra_info`` has cases/s; the ratio of the two
medians is Spark's overhead on one machine (JVM start-up excluded: the session is made before timing).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from engine import Engine
from engine.generate import generate_cases, write_cases
from engine.scan import Scanner
from engine.spark import read_cases, scan_dataframe, spark_session, write_scan

CASES = int(os.environ.get("CASECHECK_BENCH_SPARK_CASES", "1000000"))
AS_OF = date(2026, 11, 24)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spark-bench") / "cases.parquet"
    write_cases(generate_cases(CASES, 3), path)
    return path


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]", "casecheck-bench")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_local_scan(benchmark: BenchmarkFixture, source: Path, tmp_path: Path) -> None:
    benchmark.group = "spark-vs-local"
    engine = Engine.load(executor="columnar")

    def scan() -> dict[str, Any]:
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        return Scanner(engine, tmp_path / "out", AS_OF, "quarter", "district").scan([source])

    summary = benchmark.pedantic(scan, rounds=3, iterations=1)
    assert summary["input"] == CASES
    benchmark.extra_info["cases_per_s"] = round(CASES / benchmark.stats.stats.median)


def test_spark_scan(benchmark: BenchmarkFixture, spark: Any, source: Path, tmp_path: Path) -> None:
    benchmark.group = "spark-vs-local"

    def scan() -> dict[str, Any]:
        result = scan_dataframe(read_cases(spark, [source]), AS_OF, "quarter", "district")
        write_scan(result, tmp_path / "out")
        result.release()
        return result.summary

    summary = benchmark.pedantic(scan, rounds=3, iterations=1)
    assert summary["input"] == CASES
    benchmark.extra_info["cases_per_s"] = round(CASES / benchmark.stats.stats.median)
