"""Scanning history: many files of cases in, verdicts, results, errors, aggregates and a summary out.

Records are read in chunks (NDJSON lines, JSON arrays, CSV and Parquet row batches), so memory stays
bounded however large the input; each chunk is validated, measured per kind and matched by the chosen
executor, and its rows are appended to the Parquet outputs. Aggregate rules only need per-group sums,
which are carried from chunk to chunk. A broken record never stops a scan: it goes to ``errors.jsonl``
with its file, line (or row) and JSON path, and ``input = verdicts + errors`` holds at the end.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engine.aggregates import AggregateAccumulator
from engine.chunks import RESULTS_SCHEMA, VERDICTS_SCHEMA, ChunkChecker, ChunkOutcome, without_repeats
from engine.core import Engine, Setup, parse_as_of
from engine.domain import Period
from engine.errors import CalendarRangeError, RecordError
from engine.ingest import RecordFrame
from engine.reading import as_frame, read_chunks
from engine.verdicts import CASE_VERDICTS

__all__ = ["REPEATING_COLUMNS", "ScanTotals", "Scanner", "SeenCaseIds", "read_ahead", "scan_summary"]

REPEATING_COLUMNS = [
    "kind",
    "file",
    "district",
    "department",
    "verdict",
    "rule",
    "status",
    "outcome",
    "severity",
    "limit",
    "unit",
]


@dataclass
class ScanTotals:
    input: int = 0
    verdicts: int = 0
    errors: int = 0
    verdict_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CASE_VERDICTS, 0))
    rule_counts: dict[str, dict[str, int]] = field(default_factory=dict)


def scan_summary(
    engine: Engine,
    as_of: date,
    period: Period,
    totals: ScanTotals,
    aggregates: AggregateAccumulator,
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    """``summary.json``: the counts, what the scan ran with, and the aggregates (local or Spark)."""
    return {
        "input": totals.input,
        "verdicts": totals.verdicts,
        "errors": totals.errors,
        "as_of": as_of.isoformat(),
        "ruleset": engine.pack.version,
        "packs": engine.pack.names,
        "calendar": engine.calendar.version,
        "overlay": engine.setup.overlay,
        "engine": engine.executor.name,
        "period": period,
        "verdict_counts": totals.verdict_counts,
        "rules": dict(sorted(totals.rule_counts.items())),
        "aggregates": aggregates.results(),
        "skipped": skipped,
    }


def _packed(table: pa.Table) -> pa.Table:
    """The table with its repeating text columns as dictionaries: a fraction of the bytes to send."""
    fields = [
        pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in REPEATING_COLUMNS else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def _unpacked(table: pa.Table) -> pa.Table:
    fields = [
        pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def _work(
    inbox: Any, outbox: Any, executor: str, setup: Setup, as_of: date, period: Period, by: str | None
) -> None:
    """A scan's worker process: builds the frame of each block it is sent and hands back its case_ids; once
    told which of them came before, checks the rest and hands back the outcome. A failure is sent back and
    ends the worker (and the scan)."""
    try:
        engine = Engine.load(setup.packs, setup.overlay, executor)  # type: ignore[arg-type]
        checker = ChunkChecker(engine, as_of, period, by)
        frames: dict[int, RecordFrame] = {}
        while (message := inbox.get()) is not None:
            step, number, payload = message
            if step == "read":
                chunk = frames[number] = as_frame(payload)
                outbox.put(("ids", number, (chunk.file, chunk.case_ids(), chunk.line_numbers(), len(chunk))))
            else:
                kept, problems = without_repeats(frames.pop(number), payload)
                outcome = checker.check(kept)
                outcome.errors[:0] = problems
                outcome.verdicts = [_packed(t) for t in outcome.verdicts]
                outcome.results = [_packed(t) for t in outcome.results]
                outbox.put(("outcome", number, outcome))
    except Exception as exc:  # raised again in the scanning process
        outbox.put(("failed", -1, exc))


class _Worker:
    """One worker process and its two queues. Each chunk goes to a known worker (its number modulo the
    workers), which keeps the frame it built between the two steps, so that only blocks, case_ids and
    outcomes cross between processes."""

    def __init__(self, context: Any, args: tuple[Any, ...]) -> None:
        self.inbox, self.outbox = context.Queue(), context.Queue()
        self.process = context.Process(target=_work, args=(self.inbox, self.outbox, *args), daemon=True)
        # Each worker is one of the cores: Polars thread pools in every process would fight for them.
        with mock.patch.dict(os.environ, POLARS_MAX_THREADS="1"):
            self.process.start()
        self.early: dict[tuple[str, int], Any] = {}  # messages that came before the one waited for

    def receive(self, step: str, number: int) -> Any:
        while (step, number) not in self.early:
            try:
                got, at, payload = self.outbox.get(timeout=1)
            except queue.Empty:
                if not self.process.is_alive():
                    raise RuntimeError(f"a scan worker stopped (exit code {self.process.exitcode})") from None
                continue
            if got == "failed":
                raise payload
            self.early[got, at] = payload
        return self.early.pop((step, number))

    def stop(self) -> None:
        self.inbox.put(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()


class SeenCaseIds:
    """The case_ids met so far in a scan, as 128-bit hashes in sorted runs: 24 bytes an id.

    A dict of every id and its location grows with the input (ten times these 24 bytes an id), which alone
    would break the memory bound of a large scan. Here each chunk's new ids become one sorted run, and runs of similar size are
    merged like a binary counter, so a lookup searches at most log2(chunks) runs and merging costs
    O(n log n) overall. Two different ids would have to agree on 128 bits of hash to be mistaken for one
    another.
    """

    def __init__(self) -> None:
        self.files: list[str] = []
        self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # h1 (sorted), h2, where

    def first_seen(self, ids: list[Any], file: str, lines: np.ndarray) -> list[tuple[str, int] | None]:
        """For each id (met at ``file``, ``lines``), where it was first met if before (None if new); the
        new ones are remembered. Ids that are not strings are left to validation, which reports them.
        """
        result: list[tuple[str, int] | None] = [None] * len(ids)
        positions = [i for i, case_id in enumerate(ids) if isinstance(case_id, str)]
        if not positions:
            return result
        if not self.files or self.files[-1] != file:
            self.files.append(file)
        h1 = np.array([hash(ids[i]) for i in positions], np.int64).view(np.uint64)
        h2 = np.array([hash(ids[i] + "\x1f") for i in positions], np.int64).view(np.uint64)
        where = (len(self.files) - 1) << 40 | lines[positions].astype(np.int64)
        found = np.full(len(positions), -1, np.int64)
        for run_h1, run_h2, run_where in self.runs:
            index = np.minimum(np.searchsorted(run_h1, h1), len(run_h1) - 1)
            hit = (run_h1[index] == h1) & (run_h2[index] == h2) & (found < 0)
            found[hit] = run_where[index[hit]]
        # Repeats inside the chunk: every later occurrence points at the earliest (lexsort is stable).
        order = np.lexsort((h2, h1))
        same = (h1[order][1:] == h1[order][:-1]) & (h2[order][1:] == h2[order][:-1])
        group_start = np.maximum.accumulate(np.where(np.r_[False, same], 0, np.arange(len(order))))
        earliest = order[group_start]
        repeat = (earliest != order) & (found[order] < 0)
        found[order[repeat]] = where[earliest[repeat]]
        new = found < 0
        self._add(h1[new], h2[new], where[new])
        for position in np.flatnonzero(~new).tolist():
            at = int(found[position])
            result[positions[position]] = (self.files[at >> 40], at & ((1 << 40) - 1))
        return result

    def _add(self, h1: np.ndarray, h2: np.ndarray, where: np.ndarray) -> None:
        if not len(h1):  # a chunk of nothing but repeats adds no run (an empty run cannot be searched)
            return
        order = np.argsort(h1, kind="stable")
        self.runs.append((h1[order], h2[order], where[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (a1, a2, aw), (b1, b2, bw) = self.runs.pop(-2), self.runs.pop()
            h1, h2, where = np.concatenate((a1, b1)), np.concatenate((a2, b2)), np.concatenate((aw, bw))
            order = np.argsort(h1, kind="stable")
            self.runs.append((h1[order], h2[order], where[order]))


T = TypeVar("T")


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, the next one produced in a thread while the caller works on the current one.

    Reading a chunk is mostly Polars and pyarrow, which release the GIL: on a second core it overlaps
    the checking of the chunk before, for one more chunk in memory.
    """
    done = object()
    with ThreadPoolExecutor(1) as pool:
        upcoming = pool.submit(next, items, done)
        while (item := upcoming.result()) is not done:
            upcoming = pool.submit(next, items, done)
            yield item  # type: ignore[misc]


class Scanner:
    """One scan: reads, checks and writes chunk by chunk, and keeps the running totals and aggregates.

    With ``workers`` > 1, chunks are checked in that many worker processes (each with its own engine)
    while this process reads, de-duplicates and writes in input order. A few chunks at most are in flight,
    so memory stays bounded however large the input.
    """

    def __init__(
        self,
        engine: Engine,
        out: Path,
        as_of: str | date | None = None,
        period: Period = "month",
        by: str | None = None,
        workers: int = 1,
    ) -> None:
        self.engine = engine
        self.out = out
        self.as_of = parse_as_of(as_of)
        if self.as_of < engine.calendar.first:  # before every case: refused before anything is written
            raise CalendarRangeError(self.as_of.year, engine.calendar.covered)
        self.period = period
        self.by = by
        self.workers = workers
        self.totals = ScanTotals()
        self.seen = SeenCaseIds()
        self.aggregates = AggregateAccumulator(engine.pack, engine.calendar, self.as_of, period, by)
        self.checker = ChunkChecker(engine, self.as_of, period, by)
        out.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.skipped: list[dict[str, str]] = []

    def scan(
        self,
        files: list[Path],
        progress: Callable[[int], None] | None = None,
        skipped: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """Scan ``files``; ``skipped`` (file, why) are the files of the input folders not read, named in
        the summary so that nothing is left out unsaid."""
        self.skipped = [{"file": file, "reason": why} for file, why in skipped]
        # Parquet encoding runs in a thread of its own (pyarrow releases the GIL), overlapping the checks of
        # the next chunk; one thread keeps the rows in input order, and at most one chunk's rows wait.
        with (self.out / "errors.jsonl").open("wb") as errors_file, ThreadPoolExecutor(1) as writing:
            writes: list[Future[None]] = []
            try:
                for outcome, size in self._outcomes(files):
                    for write in writes:
                        write.result()  # a failed write stops the scan
                    writes = self._merge(outcome, errors_file, writing)
                    if progress is not None:
                        progress(size)
                for write in writes:
                    write.result()
            finally:
                writing.shutdown()
                for writer in self._writers.values():
                    writer.close()
        for name, schema in (("verdicts", VERDICTS_SCHEMA), ("results", RESULTS_SCHEMA)):
            if name not in self._writers:  # an empty scan still writes well-formed (empty) outputs
                pl.DataFrame(schema=schema).write_parquet(self.out / f"{name}.parquet")
        summary = self.summary()
        (self.out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        return summary

    def _chunks(self, files: list[Path]) -> Iterator[tuple[RecordFrame, list[RecordError]]]:
        """Chunks without their repeated case_ids; each with the repeats, as errors."""
        for path in files:
            for read in read_chunks(path):
                chunk = as_frame(read)
                yield without_repeats(
                    chunk, self.seen.first_seen(chunk.case_ids(), chunk.file, chunk.line_numbers())
                )

    def _outcomes(self, files: list[Path]) -> Iterator[tuple[ChunkOutcome, int]]:
        """Each chunk's outcome in input order, checked here or in the worker processes."""
        if self.workers <= 1:
            for chunk, problems in read_ahead(self._chunks(files)):
                outcome = self.checker.check(chunk)
                outcome.errors[:0] = problems
                yield outcome, len(chunk) + len(problems)
            return
        # Here only blocks are read (lines or Arrow rows) and case_ids looked up; the workers build the
        # frames and check them. No fork: Polars and durable_rules hold threads.
        context = multiprocessing.get_context("spawn")
        args = (self.engine.executor.name, self.engine.setup, self.as_of, self.period, self.by)
        workers = [_Worker(context, args) for _ in range(self.workers)]
        reading: deque[int] = deque()  # chunks sent to be read, in input order
        checking: deque[tuple[int, int]] = deque()  # (chunk, its size) sent to be checked
        try:
            blocks = (block for path in files for block in read_chunks(path))
            for number, block in enumerate(blocks):
                workers[number % len(workers)].inbox.put(("read", number, block))
                reading.append(number)
                while len(reading) > len(workers):
                    checking.append(self._dedup(workers, reading.popleft()))
                while len(checking) > len(workers):
                    yield self._checked(workers, *checking.popleft())
            while reading:
                checking.append(self._dedup(workers, reading.popleft()))
            while checking:
                yield self._checked(workers, *checking.popleft())
        finally:
            for worker in workers:
                worker.stop()

    def _dedup(self, workers: list[_Worker], number: int) -> tuple[int, int]:
        worker = workers[number % len(workers)]
        file, ids, lines, size = worker.receive("ids", number)
        worker.inbox.put(("check", number, self.seen.first_seen(ids, file, lines)))
        return number, size

    @staticmethod
    def _checked(workers: list[_Worker], number: int, size: int) -> tuple[ChunkOutcome, int]:
        outcome = workers[number % len(workers)].receive("outcome", number)
        outcome.verdicts = [_unpacked(t) for t in outcome.verdicts]
        outcome.results = [_unpacked(t) for t in outcome.results]
        return outcome, size

    def _merge(
        self, outcome: ChunkOutcome, errors_file: Any, writing: ThreadPoolExecutor
    ) -> list[Future[None]]:
        """Counts and errors merged here; the chunk's rows handed to ``writing``, whose futures it returns."""
        writes = [
            writing.submit(self._write, name, table)
            for name, tables in (("verdicts", outcome.verdicts), ("results", outcome.results))
            for table in tables
        ]
        for error in outcome.errors:
            errors_file.write(orjson.dumps(error.__dict__) + b"\n")
        # A record with several problems counts once: input = verdicts + errors counts records.
        bad = len({(error.file, error.line) for error in outcome.errors})
        totals = self.totals
        totals.errors += bad
        totals.verdicts += outcome.checked
        totals.input += bad + outcome.checked
        for name, count in outcome.verdict_counts.items():
            totals.verdict_counts[name] += count
        for rule_id, counts in outcome.rule_counts.items():
            into = totals.rule_counts.setdefault(rule_id, {})
            for name, count in counts.items():
                into[name] = into.get(name, 0) + count
        self.aggregates.merge(outcome.aggregates)
        return writes

    def _write(self, name: str, table: pa.Table) -> None:
        writer = self._writers.get(name)
        if writer is None:
            # zstd and dictionaries only where values repeat: case_ids are unique, a dictionary of them
            # costs time and space for nothing.
            writer = self._writers[name] = pq.ParquetWriter(
                self.out / f"{name}.parquet",
                table.schema,
                compression="zstd",
                use_dictionary=REPEATING_COLUMNS,
            )
        writer.write_table(table)

    def summary(self) -> dict[str, Any]:
        return scan_summary(self.engine, self.as_of, self.period, self.totals, self.aggregates, self.skipped)
