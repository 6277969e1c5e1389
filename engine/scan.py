"""Scanning history: many files of cases in, verdicts, results, errors, aggregates and a summary out.

Records are read in chunks (NDJSON lines, JSON arrays, CSV and Parquet row batches), so memory stays
bounded however large the input; each chunk is validated, measured per kind and matched by the chosen
executor, and its rows are appended to the Parquet outputs. Aggregate rules only need per-group sums,
which are carried from chunk to chunk. A broken record never stops a scan: it goes to ``errors.jsonl``
with its file, line (or row) and JSON path, and ``input = verdicts + errors`` holds at the end.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from engine.aggregates import AggregateAccumulator, Period
from engine.cases import Case, InvalidCase, validate_case
from engine.cases import CaseError as CaseProblem
from engine.core import Engine, parse_as_of
from engine.measures import Batch, measure_batch

SUFFIXES = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
CHUNK = 20_000
GROUP_FIELDS = ("district", "department", "channel")

# Fixed schemas: a chunk where a column happens to be all null must still write the file's own types.
VERDICTS_SCHEMA = {
    "case_id": pl.String,
    "kind": pl.String,
    "file": pl.String,
    "line": pl.Int64,
    "anchor_date": pl.Date,
    "district": pl.String,
    "department": pl.String,
    "verdict": pl.String,
    "failed_rules": pl.List(pl.String),
}
RESULTS_SCHEMA = {
    "case_id": pl.String,
    # The case's grouping keys travel with each result, so reports never join results to verdicts.
    "district": pl.String,
    "anchor_date": pl.Date,
    "rule": pl.String,
    "status": pl.String,
    "outcome": pl.String,
    "severity": pl.String,
    "value": pl.Float64,
    "value_text": pl.String,
    "limit": pl.String,
    "unit": pl.String,
    "deadline": pl.Date,
    "excluded": pl.Int64,
}

# Outcome code prefix → rule status (the codes are the plan's, see engine/executors/plan.py).
STATUS_OF_CODE = {
    "na": "not_applicable",
    "exempt": "exempt",
    "fail": "fail",
    "pass": "pass",
    "pending": "pending",
}


@dataclass
class Located:
    """A record and where it came from: ``line`` is the line for text files, the row for Parquet."""

    file: str
    line: int
    record: Any


@dataclass
class ScanError:
    file: str
    line: int
    case_id: str | None
    path: str
    message: str


def input_files(paths: Iterable[Path]) -> list[Path]:
    """Files to read: each named file, and every file of a known kind in each named folder (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    unknown = [str(p) for p in files if p.suffix not in SUFFIXES]
    if unknown:
        raise ValueError(
            f"unknown input format (use .ndjson, .jsonl, .json, .csv or .parquet): {', '.join(unknown)}"
        )
    return files


def _without_nulls(value: Any) -> Any:
    """Columnar formats write absent fields as null; a case record simply leaves them out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """CSV columns ``approval.mode`` → ``{"approval": {"mode": …}}``; ``pauses``/``exemptions`` hold JSON."""
    record: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None or value == "":
            continue
        if key in ("pauses", "exemptions") and isinstance(value, str):
            # Text that is not JSON stays text, so validation reports it at its path.
            with contextlib.suppress(orjson.JSONDecodeError):
                value = orjson.loads(value)
        target = record
        *parents, last = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return record


class _Unreadable(Exception):
    """A line or file that is not JSON: reported as an error at the record's root."""


def read_records(path: Path, errors: list[ScanError]) -> Iterator[list[Located]]:
    """Chunks of located records; unreadable lines are appended to ``errors`` as they are met."""
    form = SUFFIXES[path.suffix]
    name = str(path)
    if form == "ndjson":
        with path.open("rb") as handle:
            chunk: list[Located] = []
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    chunk.append(Located(name, number, orjson.loads(line)))
                except orjson.JSONDecodeError as exc:
                    errors.append(ScanError(name, number, None, "$", f"invalid JSON: {exc}"))
                if len(chunk) >= CHUNK:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
    elif form == "json":
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            errors.append(ScanError(name, 1, None, "$", f"invalid JSON: {exc}"))
            return
        items = data if isinstance(data, list) else [data]
        for start in range(0, len(items), CHUNK):
            yield [Located(name, start + i + 1, item) for i, item in enumerate(items[start : start + CHUNK])]
    elif form == "csv":
        options = pa_csv.ConvertOptions(strings_can_be_null=True)
        reader = pa_csv.open_csv(
            path, read_options=pa_csv.ReadOptions(block_size=1 << 22), convert_options=options
        )
        # Every column as text: the case models read numbers, booleans and dates from strings anyway.
        first_line = 2  # line 1 is the header
        for batch in reader:
            rows = batch.cast(pa.schema([(f.name, pa.string()) for f in batch.schema])).to_pylist()
            yield [Located(name, first_line + i, _nested(row)) for i, row in enumerate(rows)]
            first_line += len(rows)
    else:
        row = 1
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK):
            rows = batch.to_pylist()
            yield [Located(name, row + i, _without_nulls(record)) for i, record in enumerate(rows)]
            row += len(rows)


@dataclass
class ScanTotals:
    input: int = 0
    verdicts: int = 0
    errors: int = 0
    verdict_counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("pass", "warn", "pending", "fail"), 0)
    )
    rule_counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class ChunkOutcome:
    """What checking one chunk produced: rows to append, problems to log, counts and sums to merge."""

    verdicts: list[pa.Table] = field(default_factory=list)
    results: list[pa.Table] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    checked: int = 0
    verdict_counts: dict[str, int] = field(default_factory=dict)
    rule_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    aggregates: dict[tuple[str, str, str | None], list[float]] = field(default_factory=dict)


def _add_counts(into: dict[str, int], values: np.ndarray) -> None:
    for name, count in zip(*np.unique(values, return_counts=True), strict=True):
        into[str(name)] = into.get(str(name), 0) + int(count)


def _verdicts(statuses: np.ndarray, mandatory: np.ndarray) -> np.ndarray:
    """Case verdicts from a (cases × rules) status matrix, as ``verdicts.case_verdict`` rolls them up."""
    failed = statuses == "fail"
    verdict = np.full(len(statuses), "pass", object)
    verdict[(statuses == "pending").any(axis=1)] = "pending"
    verdict[(failed & ~mandatory).any(axis=1)] = "warn"
    verdict[(failed & mandatory).any(axis=1)] = "fail"
    return verdict


def _failed_rules(statuses: np.ndarray, rule_ids: list[str]) -> pl.Series:
    """Per case, the ids of its failing rules; built by Polars, as a list per row costs ~6 µs a case."""
    if not rule_ids:
        return pl.Series([[]] * len(statuses), dtype=pl.List(pl.String))
    failing = pl.DataFrame({rule_id: statuses[:, i] == "fail" for i, rule_id in enumerate(rule_ids)})
    lists = failing.select(
        pl.concat_list([pl.when(pl.col(r)).then(pl.lit(r)) for r in rule_ids]).list.drop_nulls().alias("f")
    )
    return lists["f"]


class ChunkChecker:
    """Validates, measures and matches one chunk of records; runs in the scanning process or a worker."""

    def __init__(self, engine: Engine, as_of: date, period: Period, by: str | None) -> None:
        self.engine = engine
        self.as_of = as_of
        self.period = period
        self.by = by
        probe = AggregateAccumulator(engine.pack, engine.calendar, as_of, period, by)
        # Each batch carries the fields the rules read, the report's grouping keys and what aggregates need.
        self.fields = {
            kind: list(dict.fromkeys([*fields, *GROUP_FIELDS, *probe.fields(kind)]))
            for kind, fields in engine.fields.items()
        }

    def check(self, chunk: list[Located]) -> ChunkOutcome:
        outcome = ChunkOutcome()
        by_kind: dict[str, list[tuple[Located, Case]]] = {}
        for located in chunk:
            record = located.record
            try:
                case = validate_case(record)
            except InvalidCase as exc:
                case_id = record.get("case_id") if isinstance(record, dict) else None
                problems = exc.errors or [CaseProblem("$", "invalid case")]
                outcome.errors.extend(
                    ScanError(located.file, located.line, case_id, p.path, p.message) for p in problems
                )
                continue
            by_kind.setdefault(case.kind, []).append((located, case))
        aggregates = AggregateAccumulator(
            self.engine.pack, self.engine.calendar, self.as_of, self.period, self.by
        )
        for kind, items in by_kind.items():
            self._check_kind(kind, items, outcome, aggregates)
        outcome.aggregates = dict(aggregates.groups)
        return outcome

    def _check_kind(
        self,
        kind: str,
        items: list[tuple[Located, Case]],
        outcome: ChunkOutcome,
        aggregates: AggregateAccumulator,
    ) -> None:
        engine = self.engine
        batch = Batch.from_cases(kind, [case for _, case in items], self.fields[kind])
        measured = measure_batch(engine.pack, batch, engine.calendar, self.as_of)
        plan = engine.plans[kind]
        outcomes = np.array(engine.executor.match(plan, measured), dtype=object).reshape(
            batch.n, len(plan.rules)
        )
        statuses = (
            np.vectorize(lambda code: STATUS_OF_CODE[code.split(":", 1)[0]], otypes=[object])(outcomes)
            if outcomes.size
            else outcomes
        )
        mandatory = np.array([rp.rule.severity == "mandatory" for rp in plan.rules], bool)
        verdict = _verdicts(statuses, mandatory)
        verdicts = pl.DataFrame(
            {
                "case_id": batch.case_id.tolist(),
                "kind": [kind] * batch.n,
                "file": [located.file for located, _ in items],
                "line": [located.line for located, _ in items],
                "anchor_date": measured.anchor,
                "district": batch.columns["district"].tolist(),
                "department": batch.columns["department"].tolist(),
                "verdict": verdict.tolist(),
                "failed_rules": _failed_rules(statuses, [rp.rule.id for rp in plan.rules]),
            },
            schema=VERDICTS_SCHEMA,
        )
        outcome.verdicts.append(verdicts.to_arrow())
        _add_counts(outcome.verdict_counts, verdict)
        outcome.checked += batch.n
        if plan.rules:
            outcome.results.append(
                self._results(kind, batch, measured, outcomes, statuses, outcome).to_arrow()
            )
        aggregates.add(kind, batch)

    def _results(
        self,
        kind: str,
        batch: Batch,
        measured: Any,
        outcomes: np.ndarray,
        statuses: np.ndarray,
        outcome: ChunkOutcome,
    ) -> pl.DataFrame:
        frames = []
        district = batch.columns["district"].tolist()
        for position, (rule_plan, measure) in enumerate(
            zip(self.engine.plans[kind].rules, measured.measures, strict=True)
        ):
            rule = rule_plan.rule
            _add_counts(outcome.rule_counts.setdefault(rule.id, {}), statuses[:, position])
            numeric = measure.value.dtype.kind == "f"
            decided = np.isin(statuses[:, position], ("pass", "fail", "pending"))
            frames.append(
                pl.DataFrame(
                    {
                        "case_id": batch.case_id.tolist(),
                        "district": district,
                        "anchor_date": measured.anchor,
                        "rule": [rule.id] * batch.n,
                        "status": statuses[:, position].tolist(),
                        "outcome": outcomes[:, position].tolist(),
                        "severity": [rule.severity] * batch.n,
                        "value": np.where(decided, measure.value, np.nan)
                        if numeric
                        else np.full(batch.n, np.nan),
                        "value_text": [None] * batch.n
                        if numeric
                        else [
                            str(v) if d and v is not None else None
                            for v, d in zip(measure.value.tolist(), decided, strict=True)
                        ],
                        "limit": [str(rule.require.limit)] * batch.n,
                        "unit": [rule.unit] * batch.n,
                        "deadline": np.where(decided, measure.deadline, np.datetime64("NaT"))
                        if measure.deadline is not None
                        else np.full(batch.n, np.datetime64("NaT"), "datetime64[D]"),
                        "excluded": measure.excluded
                        if measure.excluded is not None
                        else np.zeros(batch.n, np.int64),
                    },
                    schema=RESULTS_SCHEMA,
                ).with_columns(pl.col("value").fill_nan(None))
            )
        return pl.concat(frames)


# A worker process's own checker, made once by ``_start_worker``.
_WORKER: ChunkChecker | None = None


def _start_worker(engine_name: str, as_of: date, period: Period, by: str | None) -> None:
    global _WORKER
    _WORKER = ChunkChecker(Engine.load(engine=engine_name), as_of, period, by)  # type: ignore[arg-type]


def _check_in_worker(chunk: list[Located]) -> ChunkOutcome:
    assert _WORKER is not None
    return _WORKER.check(chunk)


class SeenCaseIds:
    """The case_ids met so far in a scan, as 128-bit hashes in sorted runs: 24 bytes an id.

    A dict of ten million ids and their locations costs ~1.7 GB, which alone would break the memory
    bound of a large scan. Here each chunk's new ids become one sorted run, and runs of similar size are
    merged like a binary counter, so a lookup searches at most log2(chunks) runs and merging costs
    O(n log n) overall. Two different ids would have to agree on 128 bits of hash to be mistaken for one
    another.
    """

    def __init__(self) -> None:
        self.files: list[str] = []
        self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # h1 (sorted), h2, where

    def _where(self, file: str, line: int) -> int:
        if not self.files or self.files[-1] != file:
            self.files.append(file)
        return (len(self.files) - 1) << 40 | line

    def first_seen(self, ids: list[Any], places: list[tuple[str, int]]) -> list[tuple[str, int] | None]:
        """For each id, where it was first met if before (None if new); the new ones are remembered.

        Ids that are not strings are left to validation, which reports them.
        """
        result: list[tuple[str, int] | None] = [None] * len(ids)
        positions = [i for i, case_id in enumerate(ids) if isinstance(case_id, str)]
        if not positions:
            return result
        h1 = np.array([hash(ids[i]) for i in positions], np.int64).view(np.uint64)
        h2 = np.array([hash(ids[i] + "\x1f") for i in positions], np.int64).view(np.uint64)
        where = np.array([self._where(*places[i]) for i in positions], np.int64)
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
        for position, at in zip(positions, found.tolist(), strict=True):
            if at >= 0:
                result[position] = (self.files[at >> 40], at & ((1 << 40) - 1))
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
        self.period = period
        self.by = by
        self.workers = workers
        self.totals = ScanTotals()
        self.errors: list[ScanError] = []
        self.seen = SeenCaseIds()
        self.aggregates = AggregateAccumulator(engine.pack, engine.calendar, self.as_of, period, by)
        self.checker = ChunkChecker(engine, self.as_of, period, by)
        out.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, pq.ParquetWriter] = {}

    def scan(self, files: list[Path], progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        with (self.out / "errors.jsonl").open("wb") as errors_file:
            try:
                for outcome, size in self._outcomes(files):
                    self._merge(outcome, errors_file)
                    if progress is not None:
                        progress(size)
            finally:
                for writer in self._writers.values():
                    writer.close()
        for name, schema in (("verdicts", VERDICTS_SCHEMA), ("results", RESULTS_SCHEMA)):
            if name not in self._writers:  # an empty scan still writes well-formed (empty) outputs
                pl.DataFrame(schema=schema).write_parquet(self.out / f"{name}.parquet")
        summary = self.summary()
        (self.out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        return summary

    def _chunks(self, files: list[Path]) -> Iterator[tuple[list[Located], list[ScanError]]]:
        """Chunks without their repeated case_ids; each with the reading problems met on the way."""
        for path in files:
            for chunk in read_records(path, self.errors):
                ids = [
                    record.get("case_id") if isinstance(record := located.record, dict) else None
                    for located in chunk
                ]
                firsts = self.seen.first_seen(ids, [(located.file, located.line) for located in chunk])
                kept = []
                for located, case_id, first in zip(chunk, ids, firsts, strict=True):
                    if first is None:
                        kept.append(located)
                        continue
                    message = f"duplicate case_id, first at {first[0]}:{first[1]}"
                    self.errors.append(ScanError(located.file, located.line, case_id, "case_id", message))
                problems = self.errors[:]
                self.errors.clear()  # read_records keeps appending to this very list
                yield kept, problems
            if self.errors:  # unreadable lines after the last full chunk
                problems = self.errors[:]
                self.errors.clear()  # read_records keeps appending to this very list
                yield [], problems

    def _outcomes(self, files: list[Path]) -> Iterator[tuple[ChunkOutcome, int]]:
        """Each chunk's outcome in input order, checked here or in the worker pool."""
        if self.workers <= 1:
            for chunk, problems in self._chunks(files):
                outcome = self.checker.check(chunk)
                outcome.errors[:0] = problems
                yield outcome, len(chunk) + len(problems)
            return
        context = multiprocessing.get_context("spawn")  # no fork: Polars and durable_rules hold threads
        initargs = (self.engine.executor.name, self.as_of, self.period, self.by)
        with ProcessPoolExecutor(self.workers, context, initializer=_start_worker, initargs=initargs) as pool:
            pending: deque[tuple[Future[ChunkOutcome], list[ScanError], int]] = deque()
            for chunk, problems in self._chunks(files):
                pending.append((pool.submit(_check_in_worker, chunk), problems, len(chunk) + len(problems)))
                while len(pending) > 2 * self.workers:
                    yield self._finished(pending.popleft())
            while pending:
                yield self._finished(pending.popleft())

    @staticmethod
    def _finished(entry: tuple[Future[ChunkOutcome], list[ScanError], int]) -> tuple[ChunkOutcome, int]:
        future, problems, size = entry
        outcome = future.result()
        outcome.errors[:0] = problems
        return outcome, size

    def _merge(self, outcome: ChunkOutcome, errors_file: Any) -> None:
        for table in outcome.verdicts:
            self._write("verdicts", table)
        for table in outcome.results:
            self._write("results", table)
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

    def _write(self, name: str, table: pa.Table) -> None:
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = pq.ParquetWriter(self.out / f"{name}.parquet", table.schema)
        writer.write_table(table)

    def summary(self) -> dict[str, Any]:
        totals = self.totals
        return {
            "input": totals.input,
            "verdicts": totals.verdicts,
            "errors": totals.errors,
            "as_of": self.as_of.isoformat(),
            "ruleset": self.engine.pack.version,
            "calendar": self.engine.calendar.version,
            "engine": self.engine.executor.name,
            "verdict_counts": totals.verdict_counts,
            "rules": dict(sorted(totals.rule_counts.items())),
            "aggregates": self.aggregates.results(),
        }
