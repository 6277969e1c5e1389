"""The SQLite verdict log's segment index: a case's history is whole and in order across segments.

The log keys its case_id index by segment (runs of 2**16 consecutive checks) so that logging stays flat as
the log grows; these tests make sure that a history still finds every record of a case, wherever it fell.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from engine import store as store_module
from engine.store import CheckRows, SqliteStore

SEGMENT = 2**16


def batch(case_ids: list[str]) -> CheckRows:
    """A batch's rows whose sha256 column numbers the rows, so that order can be read back."""
    return CheckRows(
        case_id=case_ids,
        case_sha256=[f"{i:064x}" for i in range(len(case_ids))],
        verdict=["pass"] * len(case_ids),
        statuses=['{"r":"pass"}'] * len(case_ids),
        as_of="2026-11-24",
        ruleset="pack@1",
        calendar="cn@1",
        caller=None,
        checked_at=datetime(2026, 11, 25, tzinfo=UTC),
    )


def test_history_spans_segments_in_order(tmp_path: Path) -> None:
    """Records of one case at the first id, on both sides of each segment edge and at the end."""
    store = SqliteStore(tmp_path / "log.db")
    try:
        total = 2 * SEGMENT + 10
        ids = [f"FILL-{i % 5000}" for i in range(total)]
        wanted = [0, SEGMENT - 2, SEGMENT - 1, SEGMENT, 2 * SEGMENT - 1, 2 * SEGMENT, total - 1]
        for position in wanted:  # row ids start at 1, so position p gets id p + 1
            ids[position] = "TRACKED"
        for start in range(0, total, 10_000):
            store.record_rows(batch(ids[start : start + 10_000]))
        history = store.history("TRACKED")
        assert [int(h["case_sha256"], 16) for h in history] == [p % 10_000 for p in wanted]
        assert len(store.history("TRACKED", limit=3)) == 3
        assert store.history("TRACKED", limit=3) == history[:3]
        assert len(store.history("FILL-7")) == len(range(7, total, 5000))
        assert store.history("NEVER") == []
    finally:
        store.close()


def test_history_of_an_empty_log(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db")
    try:
        assert store.history("ANY") == []
    finally:
        store.close()


def test_history_uses_the_segment_index(tmp_path: Path) -> None:
    """A table scan would still give the right answer, only slowly; the plan is what can regress."""
    store = SqliteStore(tmp_path / "log.db")
    store.close()
    for caller in (None, "bob"):  # every caller's checks, or one caller's
        with sqlite3.connect(tmp_path / "log.db") as db:
            query = "EXPLAIN QUERY PLAN" + store_module._HISTORY
            plan = " ".join(row[3] for row in db.execute(query, ("X", 5, caller)))
        assert "SEARCH checks USING COVERING INDEX checks_segment_case_id" in plan or (
            "SEARCH checks USING INDEX checks_segment_case_id" in plan
        )
        assert "SCAN checks" not in plan


def test_a_log_with_the_old_index_is_migrated(tmp_path: Path) -> None:
    """A log written with the plain (case_id, id) index keeps its records and loses that index."""
    path = tmp_path / "log.db"
    store = SqliteStore(path)
    store.record_rows(batch(["A", "B", "A"]))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX checks_segment_case_id")
        db.execute("CREATE INDEX checks_case_id ON checks (case_id, id)")
    store = SqliteStore(path)
    try:
        assert [int(h["case_sha256"], 16) for h in store.history("A")] == [0, 2]
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "checks_case_id" not in indexes and "checks_segment_case_id" in indexes
