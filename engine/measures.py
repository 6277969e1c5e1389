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
from dataclasses import dataclass
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


@dataclass
class Pauses:
    """Every pause of a batch as one flat table (暂停计时), rows pointing back at their case."""

    row: np.ndarray  # int64
    reason: np.ndarray  # object (str)
    start: np.ndarray  # datetime64[D]
    end: np.ndarray  # datetime64[D], NaT while the pause is still running


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
        case_id = np.array([case.case_id for case in cases], object)
        return cls(kind, case_id, columns, fen, pauses, exemptions)


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
    extended: np.ndarray | None = None  # bool: the deadline fell on a rest day and moved (第203条)


@dataclass
class Measured:
    """A batch with its anchor dates and every rule's measure."""

    batch: Batch
    as_of: date
    anchor: np.ndarray  # datetime64[D]
    measures: list[RuleMeasure]  # one per rule of the kind, in the pack's order


def measure_batch(pack: RulePack, batch: Batch, calendar: WorkdayIndex, as_of: date) -> Measured:
    """Measure every rule of the batch's kind for every row."""
    measurer = _Measurer(batch, calendar, as_of)
    rules = pack.by_kind[batch.kind]
    cache: dict[str, RuleMeasure] = {}
    measures = []
    for rule in rules:
        # Rules that measure the same thing against the same limit share one computation.
        if rule.measure_key not in cache:
            cache[rule.measure_key] = measurer.measure(rule)
        measures.append(cache[rule.measure_key])
    return Measured(batch, as_of, batch.columns[pack.anchor(batch.kind)], measures)


def _absent(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "M":
        return np.isnat(column)
    if column.dtype.kind == "f":
        return np.isnan(column)
    return np.equal(column, None)


def _named_where(mask: np.ndarray, name: str) -> np.ndarray:
    """The input's name where it is missing, None elsewhere.

    ``np.empty`` of object dtype is already all None, and most masks are all False, so the fill is
    skipped then: a batch of one pays for neither ``np.full`` nor an empty fancy assignment.
    """
    missing = np.empty(len(mask), object)
    if mask.any():
        missing[mask] = name
    return missing


@dataclass
class _Window:
    """A case window (start, end] as calendar positions, shared by the rules that measure it."""

    start: np.ndarray  # datetime64[D], the latest of the named starts that is present
    end: np.ndarray  # datetime64[D], as_of for open cases (never past the calendar's last day)
    start_pos: np.ndarray
    end_pos: np.ndarray
    is_open: np.ndarray
    valid: np.ndarray  # the start is present
    start_cum: np.ndarray  # int64: cum at start_pos, read by every working-day rule on the window
    end_cum: np.ndarray  # int64: cum at end_pos
    missing: np.ndarray  # object: the first start's name where no start is present
    pauses: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # rows, reason, lo, hi


@functools.lru_cache(maxsize=16)
def _calendar_constants(calendar: WorkdayIndex) -> tuple[np.datetime64, int, np.ndarray]:
    """The first day (as ``datetime64`` and as its epoch day number) and ``cum`` widened to int64.

    Per calendar, not per batch: ``cum`` is int32, and searching it for int64 targets would copy all of
    it to int64 on every call, which costs more than the search itself for a batch of one.
    """
    first = np.datetime64(calendar.first, "D")
    cum64 = calendar.cum.astype(np.int64)
    cum64.flags.writeable = False
    return first, int(first.astype(np.int64)), cum64


_NAT_DAY = int(NAT.view(np.int64))


class _Measurer:
    """Measures one batch; windows and clipped pauses are computed once and shared between rules."""

    def __init__(self, batch: Batch, calendar: WorkdayIndex, as_of: date) -> None:
        self.batch = batch
        self.calendar = calendar
        self.first, self.first_day, self.cum = _calendar_constants(calendar)
        # Compared as dates (cheaper than NumPy scalars); a datetime keeps NumPy's reading of it.
        day = as_of if type(as_of) is date else np.datetime64(as_of, "D").item()
        self.judged_as_of = np.datetime64(min(day, calendar.last), "D")
        self.windows: dict[tuple[tuple[str, ...], str], _Window] = {}
        self.no_rows = np.zeros(batch.n, bool)
        self.zero_counts = np.zeros(batch.n, np.int64)
        self.pause_positions: tuple[np.ndarray, np.ndarray] | None = None

    def positions(self, days: np.ndarray) -> np.ndarray:
        """Calendar positions of dates, validated by one min/max instead of ``positions``' full checks.

        The case models already guarantee real dates, so the common case needs only the subtraction;
        when any position is out of range (or NaT), ``calendar.positions`` runs to raise its own error,
        so the message and the offending year stay exactly those of the calendar.
        """
        # Integer arithmetic on the day numbers: NumPy's datetime arithmetic resolves units on every call.
        pos = days.view(np.int64) - self.first_day
        # Viewed as unsigned, negative positions (and NaT, the most negative int64) exceed any length,
        # so one max() checks both ends of the range.
        if len(pos) and pos.view(np.uint64).max() >= len(self.cum):
            return self.calendar.positions(days)
        return pos

    def measure(self, rule: Rule) -> RuleMeasure:
        measure = rule.measure
        if isinstance(measure, FieldMeasure):
            return self.field(measure)
        if isinstance(measure, RatioMeasure):
            return self.ratio(measure)
        if isinstance(measure, WorkingDaysMeasure):
            return self.working_days(measure, int(rule.require.limit))
        return self.calendar_days(measure, int(rule.require.limit))

    def field(self, measure: FieldMeasure) -> RuleMeasure:
        column = self.batch.columns[measure.field]
        absent = _absent(column)
        if measure.default is not None:
            column = np.where(absent, measure.default, column)
            absent = self.no_rows
        return RuleMeasure(column, _named_where(absent, measure.field), self.no_rows)

    def ratio(self, measure: RatioMeasure) -> RuleMeasure:
        # Integer fen on both sides: a ratio that is exactly 5% as a fraction becomes exactly float(0.05).
        numerator_absent = _absent(self.batch.columns[measure.numerator])
        absent = numerator_absent | _absent(self.batch.columns[measure.denominator])
        numerator = self.batch.fen[measure.numerator].astype(np.float64)
        denominator = self.batch.fen[measure.denominator].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(absent | (denominator == 0), np.nan, numerator / denominator)
        missing = _named_where(absent, measure.denominator)
        missing[numerator_absent] = measure.numerator
        return RuleMeasure(value, missing, self.no_rows)

    def window(self, starts: tuple[str, ...], end_name: str) -> _Window:
        key = (starts, end_name)
        if key not in self.windows:
            columns = self.batch.columns
            start = columns[starts[0]]
            for other_name in starts[1:]:
                other = columns[other_name]
                start = np.where(np.isnat(start) | (other > start), other, start)
            valid = ~np.isnat(start)
            end = columns[end_name]
            is_open = np.isnat(end) & valid
            if is_open.any():  # closed cases keep their own end; no substitution to make
                end = np.where(is_open, self.judged_as_of, end)
            # Rows without a start get position 0; they are masked out by ``valid`` afterwards. Starts
            # and ends go through one concatenated array: one subtraction and one range check.
            n = self.batch.n
            both_valid = np.concatenate((valid, valid))
            positions = self.positions(np.where(both_valid, np.concatenate((start, end)), self.first))
            cums = self.cum[positions]
            self.windows[key] = _Window(
                start,
                end,
                positions[:n],
                positions[n:],
                is_open,
                valid,
                cums[:n],
                cums[n:],
                _named_where(~valid, starts[0]),
            )
        return self.windows[key]

    def clipped_pauses(self, window: _Window) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every pause clipped to its case's window, as positions (lo, hi]; empty ones dropped."""
        if window.pauses is None:
            pauses = self.batch.pauses
            rows = pauses.row
            if len(rows):
                if self.pause_positions is None:
                    # The pauses' own positions do not depend on the window: computed once per batch.
                    pause_end = np.where(np.isnat(pauses.end), self.judged_as_of, pauses.end)
                    both = self.positions(np.concatenate((pauses.start, pause_end)))
                    self.pause_positions = (both[: len(rows)], both[len(rows) :])
                start_pos, end_pos = self.pause_positions
                lo = np.maximum(start_pos, window.start_pos[rows])
                hi = np.minimum(end_pos, window.end_pos[rows])
                keep = (hi > lo) & window.valid[rows]
                if keep.all():  # usually every pause lies in its case's window: no copies to make
                    window.pauses = (rows, pauses.reason, lo, hi)
                else:
                    window.pauses = (rows[keep], pauses.reason[keep], lo[keep], hi[keep])
            else:
                window.pauses = (rows, pauses.reason, rows, rows)
        return window.pauses

    def working_days(self, measure: WorkingDaysMeasure, limit: int) -> RuleMeasure:
        window = self.window((measure.start,), measure.end)
        elapsed = window.end_cum - window.start_cum
        excluded, not_excluded = self.paused_working_days(window, measure.exclude_pauses)
        deadline, note = self.add_working_days(window, limit + excluded)
        return RuleMeasure(
            np.where(window.valid, (elapsed - excluded).astype(np.float64), np.nan),
            window.missing,
            window.is_open,
            deadline=deadline,
            excluded=excluded,
            not_excluded=not_excluded,
            deadline_note=note,
        )

    def paused_working_days(self, window: _Window, reasons: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Working days inside excludable pauses within each case's window, overlaps merged.

        A pause covers working days d with date(start) < d ≤ date(end), like the case itself. Sorting the
        pauses by (case, start) and keeping a running maximum of the ends seen so far within the case
        makes each pause add only the part no earlier pause covered: the union's length without a loop.
        Pauses whose reason the rule does not exclude are counted, to be reported as not excluded.
        """
        n = self.batch.n
        rows, reason, lo, hi = self.clipped_pauses(window)
        if not len(rows):
            return self.zero_counts, self.zero_counts
        # Few reasons against many pauses: one vectorized comparison per reason, as ``np.isin`` itself
        # does for object arrays, without its dispatch overhead.
        excludable = np.zeros(len(rows), bool)
        for excluded_reason in reasons:
            excludable |= reason == excluded_reason
        not_excluded = np.bincount(rows[~excludable], minlength=n).astype(np.int64)
        if not excludable.any():
            return self.zero_counts, not_excluded
        rows, lo, hi = rows[excludable], lo[excludable], hi[excludable]
        begin = lo
        if len(rows) > 1:
            # Overlaps can only exist between two pauses; a lone pause is its own union.
            order = np.lexsort((lo, rows))
            rows, lo, hi = rows[order], lo[order], hi[order]
            span = len(self.cum) + 1
            running = np.maximum.accumulate(rows * span + hi)
            previous_end = np.full(len(rows), -1, np.int64)
            same_case = np.r_[False, rows[1:] == rows[:-1]]
            previous_end[same_case] = (running[:-1] - rows[1:] * span)[same_case[1:]]
            begin = np.minimum(np.maximum(lo, previous_end), hi)
        cum = self.cum
        contribution = cum[hi] - cum[begin]
        return np.bincount(rows, weights=contribution, minlength=n).astype(np.int64), not_excluded

    def add_working_days(self, window: _Window, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The n-th working day after each start, NaT with a note where it lies beyond the calendar."""
        cum = self.cum
        position = cum.searchsorted(window.start_cum + days, side="left")
        beyond = window.valid & (position >= len(cum))
        shown = window.valid & ~beyond if beyond.any() else window.valid
        # searchsorted returns at most len(cum), so the day number is always representable; rows beyond
        # the calendar are replaced by NaT. Day numbers, viewed as dates, spare datetime arithmetic.
        deadline = np.where(shown, position + self.first_day, _NAT_DAY).view("datetime64[D]")
        return deadline, self.beyond_note(beyond)

    def beyond_note(self, beyond: np.ndarray) -> np.ndarray:
        note = f"deadline falls after {self.calendar.last.isoformat()}, beyond the working-day calendar"
        return _named_where(beyond, note)

    def calendar_days(self, measure: CalendarDaysMeasure | MonthsMeasure, limit: int) -> RuleMeasure:
        starts = tuple(measure.start) if isinstance(measure.start, list) else (measure.start,)
        window = self.window(starts, measure.end)
        valid = window.valid
        start = np.where(valid, window.start, self.first)
        value = np.where(valid, (window.end - start).astype(np.float64), np.nan)
        if isinstance(measure, MonthsMeasure):
            deadline = add_months(start, limit)
        else:
            deadline = start + np.timedelta64(limit, "D")
        allowance = None
        note = _named_where(self.no_rows, "")
        extended = self.no_rows
        if measure.rest_day_extension:
            # 民法典 第203条: a deadline on a rest day moves to the next working day. Past the calendar's
            # last day that cannot be known; the unextended deadline still decides, as every end lies
            # before it.
            beyond = valid & (deadline > np.datetime64(self.calendar.last, "D"))
            rolled = self.calendar.roll_forward(np.where(beyond, self.first, deadline))
            rolled = np.where(beyond, deadline, np.asarray(rolled, "datetime64[D]"))
            extended = valid & (rolled != deadline)
            deadline = rolled
            note = self.beyond_note(beyond)
        if measure.rest_day_extension or isinstance(measure, MonthsMeasure):
            allowance = np.where(valid, (deadline - start).astype(np.float64), np.nan)
        shown = np.where(valid & np.equal(note, None), deadline, NAT)
        return RuleMeasure(
            value,
            window.missing,
            window.is_open,
            allowance=allowance,
            deadline=shown,
            deadline_note=note,
            extended=extended,
        )


def add_months(days: np.ndarray, months: int) -> np.ndarray:
    """Same day of month N months later, or that month's last day where there is none (民法典 第202条)."""
    month_start = days.astype("datetime64[M]")
    day_of_month = (days - month_start.astype("datetime64[D]")).astype(np.int64)
    target_month = month_start + np.timedelta64(months, "M")
    month_length = ((target_month + 1).astype("datetime64[D]") - target_month.astype("datetime64[D]")).astype(
        np.int64
    )
    return target_month.astype("datetime64[D]") + np.minimum(day_of_month, month_length - 1).astype(
        "timedelta64[D]"
    )
