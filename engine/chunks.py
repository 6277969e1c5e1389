"""Checking one chunk of a scan: validate (``engine.ingest``, pydantic for the rest), measure and match
each kind through the engine's executor, and turn the outcomes into verdict and result rows, counts and
aggregate sums that the scan (``engine.scan``) or a Spark task merges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from engine.aggregates import AggregateAccumulator
from engine.batch import Batch
from engine.calendar import WorkdayIndex
from engine.cases import Case, shown_id, validate_case
from engine.core import Engine, isolated, refused_reason
from engine.domain import Period
from engine.errors import CaseError as CaseProblem
from engine.errors import InvalidCase, RecordError
from engine.executors.plan import KindPlan, status_of
from engine.ingest import Located, RecordFrame, validate_frame
from engine.measures import Measured
from engine.verdicts import VERDICT_PRECEDENCE, result_verdict

__all__ = [
    "GROUP_FIELDS",
    "RESULTS_SCHEMA",
    "VERDICTS_SCHEMA",
    "VERDICT_NAMES",
    "ChunkChecker",
    "ChunkOutcome",
    "failed_rules",
    "repeat_errors",
    "roll_up_verdicts",
    "without_repeats",
]

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


# Ordered by precedence (``verdicts.VERDICT_PRECEDENCE``); then not_checked, the verdict of a kind without
# per-case rules.
VERDICT_NAMES = (*VERDICT_PRECEDENCE, "not_checked")


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
    ranks: np.ndarray  # int64 per position: what the outcome says of the case, as its rank in VERDICT_NAMES
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
            np.array([VERDICT_NAMES.index(result_verdict(s, rule.severity)) for s in statuses], np.int64),
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
    ranks: np.ndarray
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
            np.concatenate([rule.ranks for rule in rules]) if rules else np.zeros(0, np.int64),
            per_rule([rule.rule_id for rule in rules]),
            per_rule([rule.severity for rule in rules]),
            per_rule([rule.limit for rule in rules]),
            per_rule([rule.unit for rule in rules]),
        )


def _repeated(text: str, n: int) -> pl.Series:
    """A text column of one value: one string gathered n times instead of a Python list of n."""
    return pl.Series([text], dtype=pl.String).gather(np.zeros(n, np.int64))


def roll_up_verdicts(ranks: np.ndarray) -> np.ndarray:
    """Case verdicts (positions in ``VERDICT_NAMES``) from the (cases × rules) ranks of their outcomes:
    the weightiest, as ``verdicts.case_verdict``."""
    if not ranks.shape[1]:
        return np.full(len(ranks), VERDICT_NAMES.index("not_checked"), np.int64)
    return ranks.max(axis=1)


def failed_rules(fails: np.ndarray, rule_ids: list[str]) -> pl.Series:
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
        for part in self.engine.measured_parts(batch, self.as_of):
            if len(part.refused):
                reason = refused_reason(self.as_of, part.calendar.covered)
                outcome.errors.extend(
                    RecordError(file, line, case_id, "as_of", reason)
                    for line, case_id in zip(
                        lines[part.refused].tolist(), batch.case_id[part.refused].tolist(), strict=True
                    )
                )
            if part.measured is not None:
                at = lines if part.rows is None else lines[part.rows]
                self._check_on(part.measured, part.calendar, file, at, outcome, aggregates)

    def _check_on(
        self,
        measured: Measured,
        calendar: WorkdayIndex,
        file: str,
        lines: np.ndarray,
        outcome: ChunkOutcome,
        aggregates: AggregateAccumulator,
    ) -> None:
        """The outcome of a batch measured on one calendar (the run's, or the overlay a field maps to)."""
        batch = measured.batch
        kind = batch.kind
        tables = self.outcomes[kind]
        positions = self.engine.outcome_indices(measured)
        joined = positions + tables.shift  # (cases × rules) positions in the joined tables
        fails = tables.fails[joined]
        verdict = roll_up_verdicts(tables.ranks[joined])
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
                "failed_rules": failed_rules(fails, tables.rule_ids.to_list()),
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
