"""Scanning history: many files of cases in, verdicts, results, errors, aggregates and a summary out.

Records are read in chunks (NDJSON lines, JSON arrays, CSV and Parquet row batches), so memory stays
bounded however large the input; each chunk is validated, measured per kind and matched by the chosen
executor, and its rows are appended to the Parquet outputs. Aggregate rules only need per-group sums,
which are carried from chunk to chunk. A broken record never stops a scan: it goes to ``errors.jsonl``
with its file, line (or row) and JSON path, and ``input = verdicts + errors`` holds at the end.
"""

from __future__ import annotations

import codecs
import contextlib
import multiprocessing
import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from engine.aggregates import AggregateAccumulator, Period
from engine.batch import Batch
from engine.calendar import WorkdayIndex
from engine.cases import Case, shown_id, validate_case
from engine.core import Engine, Setup, isolated, parse_as_of, refused_reason
from engine.errors import CalendarRangeError, InputError, InvalidCase, RecordError
from engine.errors import CaseError as CaseProblem
from engine.executors.plan import KindPlan, status_of
from engine.ingest import Block, Located, RecordFrame, ndjson_blocks, parquet_blocks, validate_frame
from engine.measures import Measured, measure_batch
from engine.verdicts import CASE_VERDICTS

__all__ = [
    "CHUNK",
    "FRAME_CHUNK",
    "GROUP_FIELDS",
    "GZIP",
    "REPEATING_COLUMNS",
    "RESULTS_SCHEMA",
    "SUFFIXES",
    "VERDICTS_SCHEMA",
    "VERDICT_NAMES",
    "ChunkChecker",
    "ChunkOutcome",
    "ScanTotals",
    "Scanner",
    "SeenCaseIds",
    "as_frame",
    "input_files",
    "input_form",
    "read_ahead",
    "read_chunks",
    "repeat_errors",
    "scan_summary",
    "without_repeats",
]

SUFFIXES = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
GZIP = ".gz"  # any text form may be gzipped (.ndjson.gz, .jsonl.gz, .json.gz, .csv.gz)
CHUNK = 20_000
# Rows per frame chunk: Polars plans each chunk's checks once (tens of ms), so frames are larger.
FRAME_CHUNK = 50_000
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


def input_form(path: Path) -> tuple[str, bool]:
    """(form, gzipped) of a file from its suffixes, in any case (``cases.NDJSON``, ``x.csv.GZ``), or
    InputError saying why it cannot be read."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    gzipped = suffixes[-1:] == [GZIP]
    form = SUFFIXES.get(suffixes[-2] if gzipped and len(suffixes) > 1 else suffixes[-1] if suffixes else "")
    if form is None:
        raise InputError(
            "unknown input format (use .ndjson, .jsonl, .json, .csv or .parquet, or .gz of these)"
        )
    if gzipped and form == "parquet":
        raise InputError("a gzipped Parquet file cannot be read (Parquet compresses its own pages)")
    return form, gzipped


def input_files(paths: Iterable[Path], skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """Files to read: each named file, and every readable file in each named folder (sorted); the files
    of a folder that cannot be read are added to ``skipped`` as (file, why), a named one is an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                try:
                    input_form(found)
                except InputError as exc:
                    if skipped is not None:
                        skipped.append((str(found), str(exc)))
                    continue
                files.append(found)
        elif path.is_file():
            input_form(path)  # raises for a file named but not readable
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


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


def read_chunks(path: Path) -> Iterator[Block | RecordFrame]:
    """Chunks of a file: NDJSON and Parquet as blocks, to become frames for the column checks
    (``as_frame``), JSON arrays and CSV as records for pydantic (they are read whole or row by row anyway)."""
    form, gzipped = input_form(path)
    name = str(path)
    if form == "ndjson":
        yield from ndjson_blocks(path, FRAME_CHUNK, gzipped)
    elif form == "parquet":
        yield from parquet_blocks(path, FRAME_CHUNK)
    elif form == "json":
        with pa.input_stream(path, compression="gzip" if gzipped else None) as stream:
            data = stream.read().removeprefix(codecs.BOM_UTF8)
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            chunk = RecordFrame.of_records(name, [])
            chunk.unreadable.append((1, f"invalid JSON: {exc}"))
            yield chunk
            return
        items = data if isinstance(data, list) else [data]
        for start in range(0, len(items), CHUNK):
            records = [
                Located(name, start + i + 1, item) for i, item in enumerate(items[start : start + CHUNK])
            ]
            yield RecordFrame.of_records(name, records)
    else:
        options = pa_csv.ConvertOptions(strings_can_be_null=True)
        reader = pa_csv.open_csv(
            pa.input_stream(path, compression="gzip" if gzipped else None),
            read_options=pa_csv.ReadOptions(block_size=1 << 22),
            convert_options=options,
        )
        # Every column as text: the case models read numbers, booleans and dates from strings anyway.
        first_line = 2  # line 1 is the header
        for batch in reader:
            rows = batch.cast(pa.schema([(f.name, pa.string()) for f in batch.schema])).to_pylist()
            yield RecordFrame.of_records(
                name, [Located(name, first_line + i, _nested(row)) for i, row in enumerate(rows)]
            )
            first_line += len(rows)


def as_frame(chunk: Block | RecordFrame) -> RecordFrame:
    return chunk.frame() if isinstance(chunk, Block) else chunk


@dataclass
class ScanTotals:
    input: int = 0
    verdicts: int = 0
    errors: int = 0
    verdict_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CASE_VERDICTS, 0))
    rule_counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class ChunkOutcome:
    """What checking one chunk produced: rows to append, problems to log, counts and sums to merge."""

    verdicts: list[pa.Table] = field(default_factory=list)
    results: list[pa.Table] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    checked: int = 0
    verdict_counts: dict[str, int] = field(default_factory=dict)
    rule_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    aggregates: dict[tuple[str, str, str | None], list[float]] = field(default_factory=dict)


# Ordered by precedence, as ``verdicts.case_verdict``; then not_checked, the verdict of a kind without
# per-case rules.
VERDICT_NAMES = ("pass", "pending", "warn", "fail", "not_checked")


@dataclass(frozen=True)
class _RuleOutcomes:
    """One rule's outcomes as lookup tables, indexed by the position the executors report."""

    rule_id: str
    severity: str
    limit: str
    unit: str | None
    codes: pl.Series
    statuses: pl.Series
    status_names: tuple[str, ...]
    fails: np.ndarray  # bool per position
    pending: np.ndarray
    decided: np.ndarray  # pass, fail or pending: the value and deadline mean something

    @classmethod
    def of(cls, rule_plan: Any) -> _RuleOutcomes:
        codes = [outcome.code for outcome in rule_plan.outcomes]
        statuses = [status_of(code) for code in codes]
        rule = rule_plan.rule
        return cls(
            rule.id,
            rule.severity,
            str(rule.require.limit),
            rule.unit,
            pl.Series(codes, dtype=pl.String),
            pl.Series(statuses, dtype=pl.String),
            tuple(statuses),
            np.array([s == "fail" for s in statuses]),
            np.array([s == "pending" for s in statuses]),
            np.array([s in ("pass", "fail", "pending") for s in statuses]),
        )


@dataclass(frozen=True)
class _KindOutcomes:
    """A kind's rules' lookup tables joined, made once per kind: a (cases × rules) matrix of outcome
    positions, shifted by ``shift``, indexes every rule's table at once."""

    rules: list[_RuleOutcomes]
    shift: np.ndarray  # per rule: where its outcomes start in the joined tables
    codes: pl.Series
    statuses: pl.Series
    fails: np.ndarray
    pending: np.ndarray
    mandatory: np.ndarray  # per rule
    rule_ids: pl.Series  # per rule, and the per-rule columns of results.parquet
    severities: pl.Series
    limits: pl.Series
    units: pl.Series

    @classmethod
    def of(cls, plan: KindPlan) -> _KindOutcomes:
        rules = [_RuleOutcomes.of(rule_plan) for rule_plan in plan.rules]

        def per_rule(values: list[Any]) -> pl.Series:
            return pl.Series(values, dtype=pl.String)

        return cls(
            rules,
            np.cumsum([0, *(len(rule.codes) for rule in rules)])[: len(rules)].astype(np.int64),
            pl.concat([rule.codes for rule in rules]) if rules else per_rule([]),
            pl.concat([rule.statuses for rule in rules]) if rules else per_rule([]),
            np.concatenate([rule.fails for rule in rules]) if rules else np.zeros(0, bool),
            np.concatenate([rule.pending for rule in rules]) if rules else np.zeros(0, bool),
            np.array([rule.severity == "mandatory" for rule in rules], bool),
            per_rule([rule.rule_id for rule in rules]),
            per_rule([rule.severity for rule in rules]),
            per_rule([rule.limit for rule in rules]),
            per_rule([rule.unit for rule in rules]),
        )


def _repeated(text: str, n: int) -> pl.Series:
    """A text column of one value: one string gathered n times instead of a Python list of n."""
    return pl.Series([text], dtype=pl.String).gather(np.zeros(n, np.int64))


def _verdicts(fails: np.ndarray, pending: np.ndarray, mandatory: np.ndarray) -> np.ndarray:
    """Case verdicts (positions in ``VERDICT_NAMES``) from (cases × rules) fail and pending matrices, as
    ``verdicts.case_verdict`` rolls them up."""
    if not fails.shape[1]:
        return np.full(len(fails), VERDICT_NAMES.index("not_checked"), np.int64)
    verdict = np.zeros(len(fails), np.int64)
    verdict[pending.any(axis=1)] = 1
    verdict[(fails & ~mandatory).any(axis=1)] = 2
    verdict[(fails & mandatory).any(axis=1)] = 3
    return verdict


def _failed_rules(fails: np.ndarray, rule_ids: list[str]) -> pl.Series:
    """Per case, the ids of its failing rules, as one Arrow list column built from offsets: a Python
    list per case would cost more than checking the case."""
    rows, columns = np.nonzero(fails)  # row-major: each case's failures together, in rule order
    offsets = np.zeros(len(fails) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(fails)), out=offsets[1:])
    values = pa.array(np.array(rule_ids, object)[columns] if len(columns) else [], pa.large_string())
    return pl.Series(pa.LargeListArray.from_arrays(pa.array(offsets), values))


def _add(into: dict[str, int], names: Iterable[str], counts: Iterable[int]) -> None:
    for name, count in zip(names, counts, strict=True):
        if count:
            into[name] = into.get(name, 0) + int(count)


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
        self.outcomes = {kind: _KindOutcomes.of(plan) for kind, plan in engine.plans.items()}

    def check(self, chunk: RecordFrame) -> ChunkOutcome:
        """The chunk's outcome; a record that fails while being checked is an error of its own, never
        its chunk's: a failing frame batch goes to pydantic's path, where ``isolated`` finds the record."""
        outcome = ChunkOutcome()
        outcome.errors.extend(RecordError(chunk.file, line, None, "$", why) for line, why in chunk.unreadable)
        aggregates = AggregateAccumulator(
            self.engine.pack, self.engine.calendar, self.as_of, self.period, self.by
        )
        try:
            checked, records = validate_frame(chunk, self.fields)
        except Exception:  # the column checks could not take this chunk: every row to pydantic
            checked, records = [], [*chunk.records, *chunk.originals(np.arange(chunk.frame.height))]
        for kind in checked:
            try:
                self._merge_part(outcome, aggregates, self._checked(kind.batch, chunk.file, kind.lines))
            except Exception:
                records += chunk.originals(np.searchsorted(chunk.lines, kind.lines))
        # What the column checks did not accept: pydantic decides, and words the errors.
        by_kind: dict[str, list[tuple[Located, Case]]] = {}
        for located in records:
            record = located.record
            try:
                case = validate_case(record)
            except InvalidCase as exc:
                case_id = shown_id(record.get("case_id")) if isinstance(record, dict) else None
                problems = exc.errors or [CaseProblem("$", "invalid case")]
                outcome.errors.extend(
                    RecordError(located.file, located.line, case_id, p.path, p.message) for p in problems
                )
                continue
            by_kind.setdefault(case.kind, []).append((located, case))
        for kind_name, items in by_kind.items():
            done, failed = isolated(items, partial(self._checked_cases, kind_name, chunk.file))
            for _, part in done:
                self._merge_part(outcome, aggregates, part)
            for position, error in failed.items():
                located, case = items[position]
                outcome.errors.append(
                    RecordError(located.file, located.line, case.case_id, error.path, error.message)
                )
        outcome.aggregates = dict(aggregates.groups)
        return outcome

    def _checked_cases(self, kind: str, file: str, items: Sequence[tuple[Located, Case]]) -> ChunkOutcome:
        batch = Batch.from_cases(kind, [case for _, case in items], self.fields[kind])
        return self._checked(batch, file, np.array([located.line for located, _ in items], np.int64))

    def _checked(self, batch: Batch, file: str, lines: np.ndarray) -> ChunkOutcome:
        """One batch's outcome on its own, so that a batch that fails half-way leaves nothing behind."""
        part = ChunkOutcome()
        aggregates = AggregateAccumulator(
            self.engine.pack, self.engine.calendar, self.as_of, self.period, self.by
        )
        self._check_batch(batch, file, lines, part, aggregates)
        part.aggregates = aggregates.groups
        return part

    @staticmethod
    def _merge_part(outcome: ChunkOutcome, aggregates: AggregateAccumulator, part: ChunkOutcome) -> None:
        outcome.verdicts += part.verdicts
        outcome.results += part.results
        outcome.errors += part.errors
        outcome.checked += part.checked
        _add(outcome.verdict_counts, part.verdict_counts, part.verdict_counts.values())
        for rule_id, counts in part.rule_counts.items():
            _add(outcome.rule_counts.setdefault(rule_id, {}), counts, counts.values())
        aggregates.merge(part.aggregates)

    def _check_batch(
        self,
        batch: Batch,
        file: str,  # a chunk is part of one file
        lines: np.ndarray,
        outcome: ChunkOutcome,
        aggregates: AggregateAccumulator,
    ) -> None:
        for rows, calendar in self.engine.calendars_of(batch):
            if rows is None:
                self._check_on(batch, calendar, file, lines, outcome, aggregates)
            else:
                self._check_on(batch.take(rows), calendar, file, lines[rows], outcome, aggregates)

    def _check_on(
        self,
        batch: Batch,
        calendar: WorkdayIndex,
        file: str,
        lines: np.ndarray,
        outcome: ChunkOutcome,
        aggregates: AggregateAccumulator,
    ) -> None:
        """The batch's cases measured on one calendar (the run's, or the overlay their field maps to)."""
        engine = self.engine
        kind = batch.kind
        measured = measure_batch(engine.pack, batch, calendar, self.as_of)
        undecidable = engine.undecidable(measured)
        if undecidable is not None:
            reason = refused_reason(self.as_of, calendar.covered)
            outcome.errors.extend(
                RecordError(file, line, case_id, "as_of", reason)
                for line, case_id in zip(
                    lines[undecidable].tolist(), batch.case_id[undecidable].tolist(), strict=True
                )
            )
            kept = np.flatnonzero(~undecidable)
            if not len(kept):
                return
            batch, lines = batch.take(kept), lines[kept]
            measured = measure_batch(engine.pack, batch, calendar, self.as_of)
        tables = self.outcomes[kind]
        positions = engine.executor.positions(engine.plans[kind], measured)
        joined = positions + tables.shift  # (cases × rules) positions in the joined tables
        fails = tables.fails[joined]
        verdict = _verdicts(fails, tables.pending[joined], tables.mandatory)
        case_id = pl.Series(batch.case_id.tolist(), dtype=pl.String)
        district = pl.Series(batch.columns["district"].tolist(), dtype=pl.String)
        verdicts = pl.DataFrame(
            {
                "case_id": case_id,
                "kind": _repeated(kind, batch.n),
                "file": _repeated(file, batch.n),
                "line": lines,
                "anchor_date": measured.anchor,
                "district": district,
                "department": batch.columns["department"].tolist(),
                "verdict": pl.Series(VERDICT_NAMES, dtype=pl.String).gather(verdict),
                "failed_rules": _failed_rules(fails, tables.rule_ids.to_list()),
            },
            schema=VERDICTS_SCHEMA,
        )
        outcome.verdicts.append(verdicts.to_arrow())
        _add(outcome.verdict_counts, VERDICT_NAMES, np.bincount(verdict, minlength=len(VERDICT_NAMES)))
        outcome.checked += batch.n
        if tables.rules:
            outcome.results.append(self._results(tables, measured, joined, case_id, district, outcome))
        aggregates.add(kind, batch, calendar)

    def _results(
        self,
        tables: _KindOutcomes,
        measured: Measured,
        joined: np.ndarray,
        case_id: pl.Series,
        district: pl.Series,
        outcome: ChunkOutcome,
    ) -> pa.Table:
        """The batch's rows of results.parquet, rule after rule; value and deadline only where the rule
        was decided. Built as one frame: a frame per rule costs more to assemble than to fill."""
        rules = tables.rules
        n = len(joined)
        value = np.full((len(rules), n), np.nan)
        deadline = np.full((len(rules), n), np.datetime64("NaT"), "datetime64[D]")
        excluded = np.zeros((len(rules), n), np.int64)
        value_text: list[str | None] = [None] * (len(rules) * n)
        for r, (rule, measure) in enumerate(zip(rules, measured.measures, strict=True)):
            at = joined[:, r] - tables.shift[r]
            by_status: dict[str, int] = {}
            _add(by_status, rule.status_names, np.bincount(at, minlength=len(rule.status_names)))
            _add(outcome.rule_counts.setdefault(rule.rule_id, {}), by_status, by_status.values())
            decided = rule.decided[at]
            if measure.value.dtype.kind == "f":
                np.copyto(value[r], measure.value, where=decided)
            else:
                value_text[r * n : (r + 1) * n] = [
                    str(v) if d and v is not None else None
                    for v, d in zip(measure.value.tolist(), decided, strict=True)
                ]
            if measure.deadline is not None:
                np.copyto(deadline[r], measure.deadline, where=decided)
            if measure.excluded is not None:
                excluded[r] = measure.excluded
        at = joined.T.ravel()  # rule after rule
        which = np.repeat(np.arange(len(rules)), n)
        every = np.tile(np.arange(n), len(rules))
        return pl.DataFrame(
            {
                "case_id": case_id.gather(every),
                "district": district.gather(every),
                "anchor_date": np.tile(measured.anchor, len(rules)),
                "rule": tables.rule_ids.gather(which),
                "status": tables.statuses.gather(at),
                "outcome": tables.codes.gather(at),
                "severity": tables.severities.gather(which),
                "value": pl.Series(value.ravel()).fill_nan(None),
                "value_text": pl.Series(value_text, dtype=pl.String),
                "limit": tables.limits.gather(which),
                "unit": tables.units.gather(which),
                "deadline": deadline.ravel(),
                "excluded": excluded.ravel(),
            },
            schema=RESULTS_SCHEMA,
        ).to_arrow()


def repeat_errors(
    chunk: RecordFrame, repeated: np.ndarray, firsts: list[tuple[str, int] | None]
) -> list[RecordError]:
    """The errors of the repeated records: the repeat, and whatever else is wrong with the record."""
    n = chunk.frame.height
    records = chunk.originals(np.flatnonzero(repeated[:n]))
    records += [r for r, repeat in zip(chunk.records, repeated[n:].tolist(), strict=True) if repeat]
    where = iter(first for first in firsts if first is not None)  # in the order of ``case_ids``
    errors = []
    for located in records:
        case_id = shown_id(located.record.get("case_id"))
        first = next(where)
        errors.append(
            RecordError(
                chunk.file,
                located.line,
                case_id,
                "case_id",
                f"duplicate case_id, first at {first[0]}:{first[1]}",
            )
        )
        try:
            validate_case(located.record)
        except InvalidCase as exc:
            errors += [RecordError(chunk.file, located.line, case_id, p.path, p.message) for p in exc.errors]
    return errors


def without_repeats(
    chunk: RecordFrame, firsts: list[tuple[str, int] | None]
) -> tuple[RecordFrame, list[RecordError]]:
    """The chunk without the records whose case_id came before (``firsts``, from ``SeenCaseIds``), and
    their errors."""
    if all(first is None for first in firsts):
        return chunk, []
    repeated = np.array([first is not None for first in firsts], bool)
    return chunk.select(~repeated), repeat_errors(chunk, repeated, firsts)


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
