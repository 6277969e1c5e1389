"""The watch at scale: sweeps over a store of many open cases, and an update with the watch on vs off.

Run with ``pytest benchmarks/test_watch_bench.py --benchmark-only``. ``CASECHECK_BENCH_WATCH_CASES``
sets how many open cases the store holds (default 1,000,000; filling it takes a while, once per run).

- ``sweep-idle``: a sweep when nothing is due. It reads only the due rows, through the partial index on
  ``next_due``, so its cost must not grow with the open cases (target < 50 ms at 1,000,000).
- ``sweep-10k``: a sweep that judges 10,000 overdue cases (columnar executor) and raises their 10,000
  red cards, in the same store.
- ``update``: one case update as ``PUT /v1/cases`` does it (judge with the durable executor, keep the
  state, raise cards, log) against what ``/v1/check`` does for the same case (judge, log). The p99 of
  each goes to ``extra_info``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from engine import Engine
from engine.cases import validate_case
from engine.domain import SHANGHAI
from engine.store import CheckRecord, canonical_sha256, open_store
from engine.watch import CaseState, ManualClock, Watcher, WatchStore, to_micros

OPEN_CASES = int(os.environ.get("CASECHECK_BENCH_WATCH_CASES", "1000000"))
DUE = 10_000
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
FILL_BATCH = 50_000


def open_record(case_id: str, applied_at: str) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "kind": "water_connection",
        "customer_type": "non_residential",
        "applied_at": applied_at,
        "external_works_m": 0,
        "steps": 2,
        "materials": 1,
        "district": "海曙区",
    }


@pytest.fixture(scope="module")
def engines() -> tuple[Engine, Engine]:
    return Engine.load(executor="durable"), Engine.load(executor="columnar")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatchStore]:
    """OPEN_CASES open cases whose next card is next year, plus DUE overdue ones (not yet due until a
    benchmark's setup makes them so)."""
    path = tmp_path_factory.mktemp("watch") / "watch.db"
    watch = WatchStore(str(path))
    later = to_micros(datetime(2026, 12, 30, tzinfo=SHANGHAI))
    verdict = orjson.dumps({"verdict": "pending", "results": []})
    clock = orjson.dumps([])
    for start in range(0, OPEN_CASES + DUE, FILL_BATCH):
        states = []
        for i in range(start, min(start + FILL_BATCH, OPEN_CASES + DUE)):
            overdue = i >= OPEN_CASES
            case_id = f"DUE-{i}" if overdue else f"OPEN-{i}"
            applied = "2026-10-12T09:00:00+08:00" if overdue else "2026-11-23T09:00:00+08:00"
            states.append(
                CaseState(
                    case_id, "water_connection", "海曙区", to_micros(NOW), "open", "green",
                    orjson.dumps(open_record(case_id, applied)), verdict, clock, b"[]",
                    "water.no_external.2wd", "2026-11-25", "working_days", 1, later,
                )
            )  # fmt: skip
        with watch.writing() as db:
            watch.put(db, states)
    yield watch
    watch.close()


def make_due(watch: WatchStore) -> None:
    """The DUE overdue cases due now again, with no card raised yet."""
    with watch.writing() as db:
        db.execute("DELETE FROM watch_cards")
        db.execute(
            "UPDATE watch_cases SET next_due = 0, raised = '[]', state = 'open' WHERE case_id LIKE 'DUE-%'"
        )


def test_sweep_with_nothing_due(
    benchmark: BenchmarkFixture, engines: tuple[Engine, Engine], store: WatchStore
) -> None:
    benchmark.group = "sweep-idle"
    with store.writing() as db:  # nothing due: the overdue ones wait for next year too
        db.execute("UPDATE watch_cases SET next_due = ? WHERE case_id LIKE 'DUE-%'", (to_micros(NOW) * 2,))
    watcher = Watcher(*engines, store, None, ManualClock(NOW))
    raised = benchmark(watcher.sweep)
    assert raised == []
    benchmark.extra_info["open_cases"] = OPEN_CASES + DUE


def test_sweep_raising_10k_cards(
    benchmark: BenchmarkFixture, engines: tuple[Engine, Engine], store: WatchStore
) -> None:
    benchmark.group = "sweep-10k"
    watcher = Watcher(*engines, store, None, ManualClock(NOW))
    raised = benchmark.pedantic(watcher.sweep, setup=lambda: make_due(store), rounds=3, iterations=1)
    assert len(raised) == DUE and all(card["level"] == "red" for card in raised)
    benchmark.extra_info["open_cases"] = OPEN_CASES + DUE
    benchmark.extra_info["cards"] = len(raised)


def _p99(benchmark: BenchmarkFixture) -> None:
    data = np.asarray(benchmark.stats.stats.data)
    benchmark.extra_info["p99_us"] = round(float(np.percentile(data, 99)) * 1e6, 1)


@pytest.mark.parametrize("watch", ["on", "off"])
def test_update(
    benchmark: BenchmarkFixture, engines: tuple[Engine, Engine], tmp_path: Path, watch: str
) -> None:
    benchmark.group = "update"
    log = open_store(f"sqlite:///{tmp_path / 'verdicts.db'}")
    durable = engines[0]
    counter = iter(range(10**9))
    now = datetime.now(UTC)
    if watch == "on":
        watcher = Watcher(*engines, WatchStore(str(tmp_path / "verdicts.db")), log, ManualClock(NOW))

        def update() -> None:
            watcher.update(open_record(f"U-{next(counter)}", "2026-11-23T09:00:00+08:00"))
    else:

        def update() -> None:
            obj = open_record(f"U-{next(counter)}", "2026-11-23T09:00:00+08:00")
            verdict = durable.check_many([validate_case(obj)], "2026-11-24")[0]
            log.record([CheckRecord.from_verdict(verdict, canonical_sha256(obj), None, now)])

    benchmark.pedantic(update, rounds=2000, iterations=1, warmup_rounds=50)
    _p99(benchmark)
    log.close()
