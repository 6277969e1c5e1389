"""Working-day counting: the precomputed index against stock workalendar, in the same run.

Run with ``pytest benchmarks/test_calendar_bench.py --benchmark-only``. Each group holds the index and
workalendar (stock ``workalendar.asia.China``, which only knows 2018–2023) on the same intervals: case
windows of 0–60 days starting in 2018–2023.

* ``calendar-scalar``: 1,000 intervals, one Python call each, ``datetime.date`` inputs. Targets ≥100×.
* ``calendar-vectorized``: the index counts 1,000,000 intervals given as ``datetime64[D]`` arrays in one
  call; workalendar counts the first 1,000 of them one by one. Per-interval time = mean / intervals
  (recorded in ``extra_info``); the target is ≥10,000× per interval.
"""

from __future__ import annotations

import warnings
from datetime import date

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from workalendar.asia import China

from engine.calendar import load_calendar

SCALAR_INTERVALS = 1_000
VECTOR_INTERVALS = 1_000_000
MAX_WINDOW_DAYS = 60

pytestmark = pytest.mark.filterwarnings("ignore:Support years")


def make_intervals(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Random case windows inside 2018–2023, the years stock workalendar knows."""
    rng = np.random.default_rng(20260302)
    first = np.datetime64("2018-01-01", "D")
    span = (np.datetime64("2023-12-31", "D") - first).astype(np.int64) - MAX_WINDOW_DAYS
    starts = first + rng.integers(0, span + 1, count)
    ends = starts + rng.integers(0, MAX_WINDOW_DAYS + 1, count)
    return starts, ends


VEC_STARTS, VEC_ENDS = make_intervals(VECTOR_INTERVALS)
PAIRS: list[tuple[date, date]] = list(
    zip(VEC_STARTS[:SCALAR_INTERVALS].tolist(), VEC_ENDS[:SCALAR_INTERVALS].tolist(), strict=True)
)


@pytest.fixture(scope="module")
def stock_china() -> China:
    """Stock workalendar, with its per-year holiday cache warmed so only the counting is measured."""
    cal = China()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for year in range(2018, 2024):
            cal.holidays(year)
    return cal


def workalendar_loop(cal: China) -> list[int]:
    return [cal.get_working_days_delta(start, end) for start, end in PAIRS]


@pytest.mark.benchmark(group="calendar-scalar")
def test_scalar_index(benchmark: BenchmarkFixture) -> None:
    idx = load_calendar()
    between = idx.working_days_between
    benchmark.extra_info["intervals"] = SCALAR_INTERVALS
    result = benchmark(lambda: [between(start, end) for start, end in PAIRS])
    assert len(result) == SCALAR_INTERVALS


@pytest.mark.benchmark(group="calendar-scalar")
def test_scalar_workalendar(benchmark: BenchmarkFixture, stock_china: China) -> None:
    benchmark.extra_info["intervals"] = SCALAR_INTERVALS
    result = benchmark.pedantic(workalendar_loop, args=(stock_china,), rounds=5, iterations=1)
    assert len(result) == SCALAR_INTERVALS


@pytest.mark.benchmark(group="calendar-vectorized")
def test_vectorized_index(benchmark: BenchmarkFixture) -> None:
    idx = load_calendar()
    benchmark.extra_info["intervals"] = VECTOR_INTERVALS
    result = benchmark(idx.working_days_between, VEC_STARTS, VEC_ENDS)
    assert result.shape == (VECTOR_INTERVALS,)


@pytest.mark.benchmark(group="calendar-vectorized")
def test_vectorized_workalendar(benchmark: BenchmarkFixture, stock_china: China) -> None:
    benchmark.extra_info["intervals"] = SCALAR_INTERVALS
    result = benchmark.pedantic(workalendar_loop, args=(stock_china,), rounds=5, iterations=1)
    assert len(result) == SCALAR_INTERVALS
