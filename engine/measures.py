"""Measures: the numbers rules are judged on, computed for a whole column of cases at once.

Both executors read these numbers, so a case measured alone (the durable executor, one row) and a case
measured in a scan of millions (the columnar executor) get the same value, limit and deadline. Every
computation is a NumPy operation over the calendar's working-day index: elapsed working days are two
lookups and a subtraction, pauses are merged and clipped with a grouped running maximum.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import BaseModel

from engine.calendar import WorkdayIndex
from engine.cases import CASE_MODELS
from engine.rules import (
    AllOf,
    AnyOf,
    CalendarDaysMeasure,
    Condition,
    FieldMeasure,
    Leaf,
    MonthsMeasure,
    NotOf,
    RatioMeasure,
    Rule,
    RulePack,
    WorkingDaysMeasure,
)

NAT = np.datetime64("NaT", "D")
_DAY = np.timedelta64(1, "D")


@dataclass
class Pauses:
    """Every pause of a batch as one flat table (暂停计时), rows pointing back at their case."""

    row: np.ndarray  # int64
    reason: np.ndarray  # object (str)
    start: np.ndarray  # datetime64[D]
    end: np.ndarray  # datetime64[D], NaT while the pause is still running

    @classmethod
    def empty(cls) -> Pauses:
        return cls(
            np.empty(0, np.int64),
            np.empty(0, object),
            np.empty(0, "datetime64[D]"),
            np.empty(0, "datetime64[D]"),
        )


@dataclass
class Batch:
    """Cases of one kind as columns: what the measures and both executors work on.

    Dates and timestamps are local dates (``datetime64[D]``, NaT when absent); numbers are float64 (NaN
    when absent); money is float64 yuan plus exact integer fen in ``fen``; strings and booleans are object
    arrays with None when absent.
    """

    kind: str
    case_id: np.ndarray
    columns: dict[str, np.ndarray]
    fen: dict[str, np.ndarray]
    pauses: Pauses
    exemptions: dict[str, np.ndarray]  # rule id → the exemption's reason per row (object, None if none)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # district, department, channel

    @property
    def n(self) -> int:
        return len(self.case_id)

    @classmethod
    def from_cases(cls, kind: str, cases: Sequence[Any], fields: Sequence[str]) -> Batch:
        """Columns of the named fields (dotted paths) from validated case models of one kind."""
        columns: dict[str, np.ndarray] = {}
        fen: dict[str, np.ndarray] = {}
        for path in fields:
            values = [_get_path(case, path) for case in cases]
            columns[path], fen_column = _to_column(values, field_type(kind, path))
            if fen_column is not None:
                fen[path] = fen_column
        rows, reasons, starts, ends = [], [], [], []
        exemptions: dict[str, np.ndarray] = {}
        for i, case in enumerate(cases):
            for pause in case.pauses:
                rows.append(i)
                reasons.append(pause.reason)
                starts.append(_local_day(pause.start))
                ends.append(_local_day(pause.end) if pause.end is not None else None)
            for exemption in case.exemptions:
                exemptions.setdefault(exemption.rule, np.full(len(cases), None, object))[i] = exemption.reason
        pauses = Pauses(
            np.array(rows, np.int64),
            np.array(reasons, object),
            np.array(starts, "datetime64[D]"),
            np.array([NAT if e is None else e for e in ends], "datetime64[D]"),
        )
        extra = {
            name: np.array([getattr(case, name, None) for case in cases], object)
            for name in ("district", "department", "channel")
        }
        case_id = np.array([case.case_id for case in cases], object)
        return cls(kind, case_id, columns, fen, pauses, exemptions, extra)


def _local_day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj


def _leaf_types(annotation: Any) -> set[Any]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _leaf_types(args[0])
    if args and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {leaf for arg in args for leaf in _leaf_types(arg)}
    return {annotation}


@functools.cache
def field_type(kind: str, path: str) -> str:
    """``date``, ``money``, ``number`` or ``other``: read from the case model, since a column whose
    values are all absent still needs its dtype."""
    model: Any = CASE_MODELS[kind]
    leaves: set[Any] = set()
    for part in path.split("."):
        info = model.model_fields.get(part)
        if info is None:
            return "other"
        leaves = _leaf_types(info.annotation)
        model = next((t for t in leaves if isinstance(t, type) and issubclass(t, BaseModel)), None)
    if date in leaves or datetime in leaves:
        return "date"
    if Decimal in leaves:
        return "money"
    if float in leaves or int in leaves:
        return "number"
    return "other"


def _to_column(values: list[Any], dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A column of the field's dtype; the second array is exact fen for money."""
    if dtype == "date":
        return np.array([NAT if v is None else _local_day(v) for v in values], "datetime64[D]"), None
    if dtype == "money":
        yuan = np.array([np.nan if v is None else float(v) for v in values], np.float64)
        fen = np.array([0 if v is None else int(v * 100) for v in values], np.int64)
        return yuan, fen
    if dtype == "number":
        return np.array([np.nan if v is None else float(v) for v in values], np.float64), None
    column = np.empty(len(values), object)
    column[:] = values
    return column, None


def referenced_fields(pack: RulePack, kind: str) -> list[str]:
    """Every case field that the kind's rules read, so a batch carries exactly those columns."""
    found: dict[str, None] = {pack.anchor(kind): None}
    for rule in pack.by_kind[kind]:
        if rule.when is not None:
            for leaf in iter_leaves(rule.when):
                found[leaf.field] = None
        for name in measure_fields(rule.measure):
            found[name] = None
    return list(found)


def iter_leaves(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    if isinstance(condition, AllOf):
        children = condition.all
    elif isinstance(condition, AnyOf):
        children = condition.any
    else:
        assert isinstance(condition, NotOf)
        children = [condition.not_]
    return [leaf for child in children for leaf in iter_leaves(child)]


def measure_fields(measure: Any) -> list[str]:
    if isinstance(measure, FieldMeasure):
        return [measure.field]
    if isinstance(measure, RatioMeasure):
        return [measure.numerator, measure.denominator]
    starts = measure.start if isinstance(measure.start, list) else [measure.start]
    return [*starts, measure.end]


@dataclass
class RuleMeasure:
    """One rule's numbers for every row of a batch.

    ``value`` is NaN (or None for text) where an input is missing; ``missing`` names that input.
    ``allowance`` is the case's own limit where a rest-day extension or a month length makes it differ
    from the rule's literal limit. ``open`` marks cases judged as of ``as_of`` because the end is absent.
    """

    value: np.ndarray
    missing: np.ndarray  # object: the missing input's field name, or None
    open: np.ndarray  # bool
    allowance: np.ndarray | None = None  # float64 days
    deadline: np.ndarray | None = None  # datetime64[D]
    excluded: np.ndarray | None = None  # working days excluded by pauses
    not_excluded: np.ndarray | None = None  # pauses in the window whose reason does not stop the clock
    deadline_note: np.ndarray | None = None  # object: why a deadline could not be given


@dataclass
class Measured:
    """A batch with its anchor dates and every rule's measure."""

    batch: Batch
    as_of: date
    anchor: np.ndarray  # datetime64[D]
    rules: list[Rule]
    measures: list[RuleMeasure]


def measure_batch(pack: RulePack, batch: Batch, calendar: WorkdayIndex, as_of: date) -> Measured:
    """Measure every rule of the batch's kind for every row."""
    as_of_day = np.datetime64(as_of, "D")
    rules = pack.by_kind[batch.kind]
    cache: dict[Any, RuleMeasure] = {}
    measures = []
    for rule in rules:
        key = _measure_key(rule)
        if key not in cache:
            cache[key] = _measure_rule(rule, batch, calendar, as_of_day)
        measures.append(cache[key])
    return Measured(batch, as_of, batch.columns[pack.anchor(batch.kind)], rules, measures)


_MEASURE_KEYS: dict[tuple[str, str], str] = {}


def _measure_key(rule: Rule) -> str:
    """Rules that measure the same thing against the same limit share one computation."""
    key = (rule.id, rule.measure.type)
    if key not in _MEASURE_KEYS:
        _MEASURE_KEYS[key] = f"{rule.measure.model_dump_json()}|{rule.require.limit}"
    return _MEASURE_KEYS[key]


def _measure_rule(rule: Rule, batch: Batch, calendar: WorkdayIndex, as_of: np.datetime64) -> RuleMeasure:
    measure = rule.measure
    if isinstance(measure, FieldMeasure):
        return _field_measure(measure, batch)
    if isinstance(measure, RatioMeasure):
        return _ratio_measure(measure, batch)
    if isinstance(measure, WorkingDaysMeasure):
        return _working_days_measure(measure, float(rule.require.limit), batch, calendar, as_of)
    return _calendar_days_measure(measure, float(rule.require.limit), batch, calendar, as_of)


def _missing(column: np.ndarray, name: str, absent: np.ndarray | None = None) -> np.ndarray:
    absent = _absent(column) if absent is None else absent
    return np.where(absent, name, None).astype(object)


def _absent(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "M":
        return np.isnat(column)
    if column.dtype.kind == "f":
        return np.isnan(column)
    return np.equal(column, None)


def _field_measure(measure: FieldMeasure, batch: Batch) -> RuleMeasure:
    column = batch.columns[measure.field]
    absent = _absent(column)
    if measure.default is not None:
        column = np.where(absent, measure.default, column)
        absent = np.zeros(batch.n, bool)
    return RuleMeasure(column, _missing(column, measure.field, absent), np.zeros(batch.n, bool))


def _ratio_measure(measure: RatioMeasure, batch: Batch) -> RuleMeasure:
    # Integer fen on both sides: a ratio that is exactly 5% as a fraction becomes exactly float(0.05).
    numerator = batch.fen[measure.numerator].astype(np.float64)
    denominator = batch.fen[measure.denominator].astype(np.float64)
    absent = _absent(batch.columns[measure.numerator]) | _absent(batch.columns[measure.denominator])
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(absent | (denominator == 0), np.nan, numerator / denominator)
    name = np.where(_absent(batch.columns[measure.numerator]), measure.numerator, measure.denominator)
    return RuleMeasure(value, np.where(absent, name, None).astype(object), np.zeros(batch.n, bool))


def _window(
    starts: list[np.ndarray], end: np.ndarray, calendar: WorkdayIndex, as_of: np.datetime64
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start (latest present), effective end (as_of for open cases, within the calendar), open and absent."""
    start = starts[0]
    for other in starts[1:]:
        start = np.where(np.isnat(other), start, np.where(np.isnat(start), other, np.maximum(start, other)))
    start_absent = np.isnat(start)
    is_open = np.isnat(end) & ~start_absent
    last = np.datetime64(calendar.last, "D")
    judged = np.where(is_open, min(as_of, last), end)
    return start, judged, is_open, start_absent


def _positions(calendar: WorkdayIndex, days: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Offsets into the calendar's arrays; rows that are not valid get position 0 and are masked later."""
    filled = np.where(valid, days, np.datetime64(calendar.first, "D"))
    return calendar.positions(filled)


def _working_days_measure(
    measure: WorkingDaysMeasure, limit: float, batch: Batch, calendar: WorkdayIndex, as_of: np.datetime64
) -> RuleMeasure:
    start, end, is_open, start_absent = _window(
        [batch.columns[measure.start]], batch.columns[measure.end], calendar, as_of
    )
    valid = ~start_absent
    start_pos = _positions(calendar, start, valid)
    end_pos = _positions(calendar, end, valid)
    cum = calendar.cum
    elapsed = (cum[end_pos] - cum[start_pos]).astype(np.int64)
    excluded, not_excluded = _paused_working_days(
        batch.pauses, set(measure.exclude_pauses), start_pos, end_pos, calendar, as_of, batch.n
    )
    value = np.where(valid, (elapsed - excluded).astype(np.float64), np.nan)
    deadline, note = _add_working_days(calendar, start_pos, limit + excluded, valid)
    return RuleMeasure(
        value,
        _missing(start, measure.start, start_absent),
        is_open,
        deadline=deadline,
        excluded=np.where(valid, excluded, 0),
        not_excluded=np.where(valid, not_excluded, 0),
        deadline_note=note,
    )


def _paused_working_days(
    pauses: Pauses,
    reasons: set[str],
    start_pos: np.ndarray,
    end_pos: np.ndarray,
    calendar: WorkdayIndex,
    as_of: np.datetime64,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Working days inside excludable pauses, clipped to each case's window, overlaps merged.

    A pause covers working days d with date(start) < d ≤ date(end), like the case itself. Sorting pauses
    by (case, start) and keeping a running maximum of the ends seen so far within the case makes each
    pause contribute only the part no earlier pause has covered: the union's length without a loop.
    """
    if len(pauses.row) == 0:
        return np.zeros(n, np.int64), np.zeros(n, np.int64)
    last = np.datetime64(calendar.last, "D")
    pause_end = np.where(np.isnat(pauses.end), min(as_of, last), pauses.end)
    p_start = calendar.positions(pauses.start)
    p_end = calendar.positions(pause_end)
    rows = pauses.row
    lo = np.maximum(p_start, start_pos[rows])
    hi = np.minimum(p_end, end_pos[rows])
    overlaps = hi > lo
    excludable = np.isin(pauses.reason, list(reasons)) if reasons else np.zeros(len(rows), bool)
    not_excluded = np.bincount(rows[overlaps & ~excludable], minlength=n).astype(np.int64)
    chosen = overlaps & excludable
    if not chosen.any():
        return np.zeros(n, np.int64), not_excluded
    rows, lo, hi = rows[chosen], lo[chosen], hi[chosen]
    order = np.lexsort((lo, rows))
    rows, lo, hi = rows[order], lo[order], hi[order]
    span = len(calendar.cum) + 1
    running = np.maximum.accumulate(rows * span + hi)
    previous_end = np.full(len(rows), -1, np.int64)
    same_case = np.r_[False, rows[1:] == rows[:-1]]
    previous_end[same_case] = (running[:-1] - rows[1:] * span)[same_case[1:]]
    begin = np.maximum(lo, previous_end)
    cum = calendar.cum
    contribution = np.where(hi > begin, cum[hi] - cum[np.minimum(begin, hi)], 0)
    return np.bincount(rows, weights=contribution, minlength=n).astype(np.int64), not_excluded


def _add_working_days(
    calendar: WorkdayIndex, start_pos: np.ndarray, days: np.ndarray | float, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The n-th working day after each start, NaT with a note where it lies beyond the calendar."""
    cum = calendar.cum
    target = cum[start_pos] + np.asarray(days, np.int64)
    position = np.searchsorted(cum, target, side="left")
    beyond = position >= len(cum)
    first = np.datetime64(calendar.first, "D")
    deadline = np.where(valid & ~beyond, first + np.minimum(position, len(cum) - 1) * _DAY, NAT)
    return deadline, _beyond_note(valid & beyond, calendar)


def _beyond_note(beyond: np.ndarray, calendar: WorkdayIndex) -> np.ndarray:
    note = f"deadline falls after {calendar.last.isoformat()}, beyond the working-day calendar"
    return np.where(beyond, note, None).astype(object)


def _calendar_days_measure(
    measure: CalendarDaysMeasure | MonthsMeasure,
    limit: float,
    batch: Batch,
    calendar: WorkdayIndex,
    as_of: np.datetime64,
) -> RuleMeasure:
    names = measure.start if isinstance(measure.start, list) else [measure.start]
    start, end, is_open, start_absent = _window(
        [batch.columns[name] for name in names], batch.columns[measure.end], calendar, as_of
    )
    valid = ~start_absent
    value = np.where(valid, (end - start).astype("timedelta64[D]").astype(np.float64), np.nan)
    safe_start = np.where(valid, start, np.datetime64(calendar.first, "D"))
    if isinstance(measure, MonthsMeasure):
        deadline = add_months(safe_start, int(limit))
    else:
        deadline = safe_start + np.timedelta64(int(limit), "D")
    allowance = None
    note = np.full(batch.n, None, object)
    if measure.rest_day_extension:
        # 民法典 第203条: a deadline on a rest day moves to the next working day. Past the calendar's last
        # day that cannot be known; the unextended deadline still decides, as every end lies before it.
        beyond = valid & (deadline > np.datetime64(calendar.last, "D"))
        inside = np.where(beyond, np.datetime64(calendar.first, "D"), deadline)
        deadline = np.where(beyond, deadline, np.asarray(calendar.roll_forward(inside), "datetime64[D]"))
        note = _beyond_note(beyond, calendar)
    if measure.rest_day_extension or isinstance(measure, MonthsMeasure):
        allowance = np.where(valid, (deadline - safe_start).astype(np.float64), np.nan)
        if measure.rest_day_extension:
            deadline = np.where(note == None, deadline, NAT)  # noqa: E711 - elementwise comparison
    return RuleMeasure(
        value,
        _missing(start, names[0], start_absent),
        is_open,
        allowance=allowance,
        deadline=np.where(valid, deadline, NAT),
        deadline_note=note,
    )


def add_months(days: np.ndarray, months: int) -> np.ndarray:
    """Same day of month N months later, or that month's last day where there is none (民法典 第202条)."""
    month_start = days.astype("datetime64[M]")
    day_of_month = (days - month_start.astype("datetime64[D]")).astype(np.int64)
    target_month = month_start + np.timedelta64(months, "M")
    month_length = ((target_month + 1).astype("datetime64[D]") - target_month.astype("datetime64[D]")).astype(
        np.int64
    )
    return target_month.astype("datetime64[D]") + np.minimum(day_of_month, month_length - 1) * _DAY
