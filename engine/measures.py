"""Measures: the numbers rules are judged on, computed for a whole column of cases at once.

Both executors read these numbers, so a case measured alone (the durable executor, one row) and a case
measured in a scan of millions (the columnar executor) get the same value, limit and deadline. Every
computation is a NumPy operation over the calendar's working-day index: elapsed working days are two
lookups and a subtraction, pauses are merged and clipped with a grouped running maximum.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np

from engine.batch import DAY_DTYPE, NAT, NAT_DAY, Batch
from engine.calendar import WorkdayIndex
from engine.domain import PAUSE_REASONS
from engine.errors import CalendarRangeError
from engine.packs import RulePack
from engine.rules import (
    CalendarDaysMeasure,
    FieldMeasure,
    MonthsMeasure,
    RatioMeasure,
    Rule,
    WorkingDaysMeasure,
)

__all__ = [
    "Measured",
    "OpenNote",
    "RuleMeasure",
    "add_months",
    "measure_batch",
]

# The same as a 0-d array: comparing with a Python int resolves its type on every call, which costs as much
# as the comparison itself on a batch of one.
_NAT_ARRAY = np.array(NAT_DAY)
_NONE = np.array(None, object)
_NONES = itertools.repeat(None)  # the allowance of every working-day measure (``_Measurer.working_days``)


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
    # object: how an open case was counted, where not simply up to as_of (``OpenNote``), None elsewhere.
    open_note: np.ndarray | None = None
    # bool: open rows counted only up to the calendar's last day because as_of lies past it. Their value is
    # a lower bound: a fail stands, anything else cannot be judged (``Measured.undecidable``).
    beyond: np.ndarray | None = None


@dataclass(frozen=True)
class OpenNote:
    """Why an open case's count stops short of as_of: it starts after as_of (``not_started``: nothing has
    elapsed yet), or as_of lies past the calendar (``counted_to``: counted up to ``last``, a lower bound).
    Hashable, so that results worded from it can be kept (``VerdictBuilder._measured_result``)."""

    code: Literal["not_started", "counted_to"]
    as_of: date
    last: date | None = None


@dataclass
class Measured:
    """A batch with its anchor dates and every rule's measure."""

    batch: Batch
    as_of: date
    anchor: np.ndarray  # datetime64[D]
    measures: list[RuleMeasure]  # one per rule of the kind, in the pack's order

    def undecidable(self, pending: np.ndarray) -> np.ndarray:
        """Rows that cannot be judged: a rule is pending on a count that stopped at the calendar's last
        day, as_of lying past it. ``pending`` is the (rows × rules) mask of pending outcomes.

        A fail on such a count stands (more days can only add to it), and a rule that does not apply needs
        no count: only what the judgement needs counts (SPEC.md).
        """
        rows = np.zeros(self.batch.n, bool)
        for r, measure in enumerate(self.measures):
            if measure.beyond is not None:
                rows |= measure.beyond & pending[:, r]
        return rows


def measure_batch(pack: RulePack, batch: Batch, calendar: WorkdayIndex, as_of: date) -> Measured:
    """Measure every rule of the batch's kind for every row.

    An as_of before the calendar's first day is refused (every case starts inside the calendar, so it
    would judge nothing); one past its last day counts open cases up to that day (``RuleMeasure.beyond``).
    """
    plan = _measure_plan(pack, batch.kind)
    measurer = _Measurer(batch, calendar, as_of)
    distinct: list[RuleMeasure | None] = [None] * plan.slots
    if plan.working is not None:
        for slot, measure in zip(plan.working.slots, measurer.working_days(plan.working), strict=True):
            distinct[slot] = measure
    for slot, rule in plan.others:
        distinct[slot] = measurer.measure(rule)
    measures = [distinct[slot] for slot in plan.slot_of_rule]
    return Measured(batch, as_of, batch.columns[plan.anchor], measures)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _WorkingDayGroup:
    """A kind's working-day rules as stacked constants, so that all are measured in one pass."""

    slots: tuple[int, ...]  # each rule's slot among the kind's distinct measures
    # The start field of each rule, then the end field of each: as a block (start/end, rule, row), each
    # half is contiguous, and NumPy operations on contiguous arrays of one shape cost half as much as on
    # strided or broadcast ones.
    bounds: tuple[str, ...]
    limits: np.ndarray  # float64 (rules, 1): added to float64 counts (see ``_CalendarConstants.cum_nan``)
    start_names: np.ndarray  # object (rules, 1): named as missing where the start is absent
    # int64 (rules, pause reasons): the pause's tally for the rule, numbered to count (tally, row) groups
    # (tally r, the rule's index, sums the working days of the pauses the rule excludes; tally rules + r
    # counts the pauses it does not).
    by_reason: np.ndarray
    # bool (rules, pause reasons): the rule excludes pauses of the reason. Bool like the mask of pauses
    # inside the window that it is combined with: NumPy operations that mix dtypes cost twice as much.
    excludes: np.ndarray

    @classmethod
    def of(cls, rules: Sequence[Rule], slots: Sequence[int]) -> _WorkingDayGroup:
        measures = [rule.measure for rule in rules]
        assert all(isinstance(m, WorkingDaysMeasure) for m in measures)
        excludes = np.array(
            [[reason in m.exclude_pauses for reason in PAUSE_REASONS] for m in measures],  # type: ignore[union-attr]
            bool,
        ).reshape(-1, len(PAUSE_REASONS))
        rule_index = np.arange(len(rules)).reshape(-1, 1)
        return cls(
            tuple(slots),
            (*(m.start for m in measures), *(m.end for m in measures)),  # type: ignore[union-attr]
            np.array([[int(rule.require.limit)] for rule in rules], np.float64).reshape(-1, 1),
            np.array([m.start for m in measures], object).reshape(-1, 1),  # type: ignore[union-attr]
            np.where(excludes, rule_index, len(rules) + rule_index),
            excludes,
        )


@dataclass(frozen=True)
class _MeasurePlan:
    """What measuring a kind needs that does not depend on the cases: computed once per pack and kind.

    Rules that measure the same thing against the same limit share one computation (one *slot*).
    """

    anchor: str
    slots: int  # how many distinct measures the kind's rules have
    slot_of_rule: tuple[int, ...]
    working: _WorkingDayGroup | None
    # The slots measured one by one (every measure but working days), so a batch need not look for them.
    others: tuple[tuple[int, Rule], ...]


@functools.lru_cache(maxsize=256)
def _measure_plan(pack: RulePack, kind: str) -> _MeasurePlan:
    slots: dict[str, int] = {}
    distinct: list[Rule] = []
    slot_of_rule = []
    for rule in pack.by_kind[kind]:
        if rule.measure_key not in slots:
            slots[rule.measure_key] = len(distinct)
            distinct.append(rule)
        slot_of_rule.append(slots[rule.measure_key])
    working = [slot for slot, rule in enumerate(distinct) if isinstance(rule.measure, WorkingDaysMeasure)]
    group = _WorkingDayGroup.of([distinct[slot] for slot in working], working) if working else None
    others = tuple((slot, rule) for slot, rule in enumerate(distinct) if slot not in working)
    return _MeasurePlan(pack.anchor(kind), len(distinct), tuple(slot_of_rule), group, others)


def _absent(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "M":
        return np.isnat(column)
    if column.dtype.kind == "f":
        return np.isnan(column)
    return np.equal(column, None)


@dataclass
class _Window:
    """A calendar-day window (start, end], shared by the rules that measure it.

    Working-day rules do not use it: they are measured together, on stacked windows of their own.
    """

    start: np.ndarray  # datetime64[D], the latest of the named starts that is present
    end: np.ndarray  # datetime64[D], as_of for open cases (never past the calendar's last day)
    is_open: np.ndarray
    not_started: np.ndarray  # open, and starting after as_of: its end is its start
    valid: np.ndarray  # the start is present
    missing: np.ndarray  # object: the first start's name where no start is present


@dataclass(frozen=True)
class _CalendarConstants:
    """What the measures read of a calendar, in the forms that cost least per batch."""

    first: np.datetime64
    first_day: int  # the epoch day number of ``first``
    # ``first_day`` as a 0-d array: arithmetic with a Python int resolves the scalar's type on every call,
    # which costs as much as the operation itself on a batch of one.
    first_day_array: np.ndarray
    # The day number of each calendar position, then NaT for position ``len(cum)`` (past the last day):
    # a deadline is one ``take``, and a search that ran off the calendar lands on NaT by itself.
    day_of: np.ndarray
    end: np.ndarray  # 0-d: len(cum), the position past the last day
    # The calendar's ``cum`` as float64, then NaN at position -1: a window without a start is sent there,
    # so that its count, its value and its deadline search come out NaN, NaN and off the calendar (NaT) by
    # themselves, with no ``where`` per result. Float64 like the pause tallies (``bincount``'s sums):
    # arithmetic that mixes dtypes costs twice that on one dtype, and the counts are small integers, exact
    # in float64.
    cum_nan: np.ndarray
    cum_float: np.ndarray  # ``cum_nan`` without the NaN: what deadlines are searched and pauses counted in


@functools.lru_cache(maxsize=16)
def _calendar_constants(calendar: WorkdayIndex) -> _CalendarConstants:
    """Per calendar, not per batch."""
    first = np.datetime64(calendar.first, "D")
    first_day = int(first.astype(np.int64))
    cum = calendar.cum  # int32: exact in float64 too
    day_of = np.append(np.arange(len(cum), dtype=np.int64) + first_day, NAT_DAY)
    cum_nan = np.append(cum.astype(np.float64), np.nan)
    for array in (day_of, cum_nan):
        array.flags.writeable = False
    return _CalendarConstants(
        first, first_day, np.array(first_day), day_of, np.array(len(cum)), cum_nan, cum_nan[:-1]
    )


@functools.lru_cache(maxsize=16)
def _beyond_text(calendar: WorkdayIndex) -> str:
    """Why a deadline is not given: worded once per calendar, not per batch."""
    return f"deadline falls after {calendar.last.isoformat()}, beyond the working-day calendar"


# Tests of whole masks use ``np.count_nonzero``: the ``ndarray.any`` method goes through a Python wrapper
# that costs more than the test on a batch of one, and the measures make a few dozen such calls per batch.


@dataclass(frozen=True)
class _AsOf:
    """The day open cases are judged on, in the forms the measures read."""

    date: date
    day: np.datetime64  # as_of itself: calendar days run up to it whatever the calendar covers
    counted_day: int  # as_of's day number, capped at the calendar's last day: working days stop there
    beyond: bool  # as_of lies past the calendar's last day
    counted_to: OpenNote | None  # the note of open rows counted to the last day (when ``beyond``)


@functools.lru_cache(maxsize=64)
def _judged_as_of(calendar: WorkdayIndex, as_of: date) -> _AsOf:
    """Cached: a service checks many cases against the same as_of, and building the NumPy scalars costs
    more than a batch of one's arithmetic with them."""
    # Compared as dates (cheaper than NumPy scalars); a datetime keeps NumPy's reading of it.
    day = as_of if type(as_of) is date else np.datetime64(as_of, "D").item()
    if day < calendar.first:
        raise CalendarRangeError(day.year, calendar.covered)
    beyond = day > calendar.last
    counted = np.datetime64(min(day, calendar.last), "D")
    note = OpenNote("counted_to", day, calendar.last) if beyond else None
    return _AsOf(day, np.datetime64(day, "D"), int(counted.view(np.int64)), beyond, note)


class _Measurer:
    """Measures one batch; windows and clipped pauses are computed once and shared between rules."""

    def __init__(self, batch: Batch, calendar: WorkdayIndex, as_of: date) -> None:
        self.batch = batch
        self.calendar = calendar
        self.constants = constants = _calendar_constants(calendar)
        self.first, self.first_day = constants.first, constants.first_day
        self.as_of = _judged_as_of(calendar, as_of)
        self.windows: dict[tuple[tuple[str, ...], str], _Window] = {}
        self.no_rows = np.zeros(batch.n, bool)
        # All None: the missing names or notes of measures that have none, shared like ``no_rows`` (nothing
        # writes into a measure's arrays), so a batch builds one instead of one per rule.
        self.nones = np.empty(batch.n, object)

    def named_where(self, mask: np.ndarray, name: object) -> np.ndarray:
        """The input's name (or a note) where ``mask`` holds, None elsewhere.

        Most masks are all False: then the answer is the shared ``nones``, so a batch of one pays for
        neither a new array nor an empty fancy assignment. A mask of any other shape than (rows,) must
        hold somewhere (``working_days`` tests its (rules, rows) masks first). ``np.empty`` of object
        dtype is already all None.
        """
        if not np.count_nonzero(mask):
            return self.nones
        named = np.empty(mask.shape, object)
        named[mask] = name
        return named

    def check_day_offsets(self, offsets: np.ndarray) -> None:
        """Raise if a day offset into the calendar (of a 1-d array) lies outside it, with the calendar's
        own error.

        The case models already guarantee real dates, so the common case needs one argmax instead of
        ``day_offsets``' full checks; when any offset is out of range (or NaT), ``calendar.day_offsets``
        runs on the dates, so the message and the offending year stay exactly those of the calendar.
        """
        # Viewed as unsigned, negative offsets (and NaT, the most negative int64) exceed any length,
        # so the largest checks both ends of the range. Found by ``argmax``: a third of the instructions
        # of the ``maximum`` reduction on a batch of one.
        if offsets.size:
            unsigned = offsets.view(np.uint64)  # 1-d (both callers'), so argmax's flat index indexes it
            # The length as a Python int: comparing the scalar with the 0-d ``end`` costs three times as much.
            if unsigned[unsigned.argmax()] >= self.constants.end.item():
                self.calendar.day_offsets((offsets + self.first_day).view(DAY_DTYPE))

    def measure(self, rule: Rule) -> RuleMeasure:
        """Any measure but working days, which ``measure_batch`` takes for all rules of a kind at once."""
        measure = rule.measure
        if isinstance(measure, FieldMeasure):
            return self.field(measure)
        if isinstance(measure, RatioMeasure):
            return self.ratio(measure)
        assert not isinstance(measure, WorkingDaysMeasure)
        return self.calendar_days(measure, int(rule.require.limit))

    def field(self, measure: FieldMeasure) -> RuleMeasure:
        column = self.batch.columns[measure.field]
        absent = _absent(column)
        if measure.default is not None:
            # The default stands in where the field is absent, so no row misses it.
            if np.count_nonzero(absent):
                # A copy written in place: half the cost of a ``where`` that broadcasts the default.
                column = column.copy()
                np.putmask(column, absent, measure.default)
            return RuleMeasure(column, self.nones, self.no_rows)
        return RuleMeasure(column, self.named_where(absent, measure.field), self.no_rows)

    def ratio(self, measure: RatioMeasure) -> RuleMeasure:
        # Integer fen on both sides: a ratio that is exactly 5% as a fraction becomes exactly float(0.05).
        numerator_absent = _absent(self.batch.columns[measure.numerator])
        absent = numerator_absent | _absent(self.batch.columns[measure.denominator])
        numerator = self.batch.fen[measure.numerator].astype(np.float64)
        denominator = self.batch.fen[measure.denominator].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(absent | (denominator == 0), np.nan, numerator / denominator)
        missing = self.named_where(absent, measure.denominator)
        # Never a write into the shared ``nones``: that is only returned when ``absent``, a superset of
        # ``numerator_absent``, is all False, and then this mask is too.
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
            not_started = self.no_rows
            # The range check of the working-day windows, on the dates the cases carry, so that a date
            # outside the calendar is the same error whichever rule reads it (counting calendar days up
            # to as_of needs no calendar). Rows without a start are checked at the first day.
            both_valid = np.concatenate((valid, valid))
            days = np.where(both_valid, np.concatenate((start, np.where(is_open, start, end))), self.first)
            self.check_day_offsets(days.view(np.int64) - self.first_day)
            if np.count_nonzero(is_open):  # closed cases keep their own end; no substitution to make
                not_started = is_open & (start > self.as_of.day)
                end = np.where(is_open, np.where(not_started, start, self.as_of.day), end)
            missing = self.named_where(~valid, starts[0])
            self.windows[key] = _Window(start, end, is_open, not_started, valid, missing)
        return self.windows[key]

    def working_days(self, group: _WorkingDayGroup) -> list[RuleMeasure]:
        """Every working-day rule of the kind at once, as (rules, rows) arrays.

        The rules' windows are stacked, so a kind with k such rules costs the same NumPy calls as one:
        for a batch of one case, the calls (not the data) are the cost. Each rule's measure is a row view.
        """
        k, n = len(group.limits), self.batch.n
        windows = 2 * k * n
        pauses = self.batch.pauses
        pause_days = pauses.days
        if pause_days is None:
            pause_days = np.array([pauses.start.view(np.int64), pauses.end.view(np.int64)])
        # One flat int64 array of day numbers: the windows' bounds (start/end, rule, row), then the pauses'
        # starts and ends. One substitution and one range check serve both: an open case, like an open
        # pause, runs to as_of. ``concatenate`` copies, so the substitutions are safe.
        # Both raveled first: ``concatenate`` of 1-d arrays costs half its ``axis=None`` form (both are
        # contiguous, so the ravels are views).
        days = np.concatenate((self.batch.day_block(group.bounds).ravel(), pause_days.ravel()))
        nat = days == _NAT_ARRAY
        # Unconditionally: ``putmask`` costs less than testing the mask first, and is linear like the test.
        np.putmask(days, nat, self.as_of.counted_day)
        window_nat = nat[:windows].reshape(2, k, n)
        no_start = window_nat[0]
        # Open: the end is absent and the start is not. On bools, ``>`` is "and not" in one operation.
        is_open = window_nat[1] > no_start
        every = days - self.constants.first_day_array
        positions = every[:windows].reshape(2, k, n)  # a view: changing it changes ``every``
        # Rows without a start get position 0 for both ends (so an end outside the calendar raises nothing
        # there), which clips every pause away. Unconditionally, for the same reason as the ``putmask``;
        # a copy where the mask holds costs less than multiplying int64 positions by a bool mask.
        np.copyto(positions, 0, where=no_start)
        not_started = None
        if np.count_nonzero(is_open):
            # An open case that starts after as_of has nothing elapsed yet: its window ends at its start.
            not_started = is_open & (positions[1] < positions[0])
            np.copyto(positions[1], positions[0], where=not_started)
        self.check_day_offsets(every)
        tallies = self.paused_working_days(group, positions, every[windows:])
        excluded, not_excluded = tallies.astype(np.int64)
        # Then their start goes to position -1, NaN in ``cum_nan``: their count is NaN, and so is their
        # value, and their deadline search runs off the calendar (NaN sorts last) to NaT.
        np.putmask(positions[0], no_start, -1)
        constants = self.constants
        cums = constants.cum_nan.take(positions)
        # The deadline is the (limit + excluded)-th working day after the start. A search that runs off
        # the calendar finds len(cum), whose day is NaT. The start's count plus the excluded days is
        # shared by the search and the value (one addition).
        counted = cums[0] + tallies[0]
        position = constants.cum_float.searchsorted(counted + group.limits)
        deadline = constants.day_of.take(position).view(DAY_DTYPE)
        value = cums[1] - counted
        # Rows beyond the calendar (a start's NaN search aside) are rare, and so are rows without a
        # start: most batches share the measurer's all-None array for every rule's note and missing names
        # instead of a row view per rule of a block of their own.
        beyond = (position >= constants.end) > no_start
        nones = itertools.repeat(self.nones)
        note = self.beyond_note(beyond) if np.count_nonzero(beyond) else nones
        missing = np.where(no_start, group.start_names, _NONE) if np.count_nonzero(no_start) else nones
        open_note, counted_short = self.open_notes(is_open, not_started)
        # Positional (value, missing, open, allowance, deadline, excluded, not_excluded, deadline_note,
        # extended, open_note, beyond): keyword arguments cost a batch of one more than building the row
        # views. ``map`` stops at the rules' arrays (k rows each); the shared ones repeat.
        return list(
            map(
                RuleMeasure,
                *(value, missing, is_open, _NONES, deadline, excluded, not_excluded, note, _NONES),
                open_note,
                counted_short,
            )
        )

    def open_notes(self, is_open: np.ndarray, not_started: np.ndarray | None) -> tuple[Iterable, Iterable]:
        """The working-day rules' ``open_note`` and ``beyond`` rows (iterables over the rules)."""
        if self.as_of.beyond and np.count_nonzero(is_open):
            return self.named_where(is_open, self.as_of.counted_to), is_open
        if not_started is not None and np.count_nonzero(not_started):
            note = OpenNote("not_started", self.as_of.date)
            return self.named_where(not_started, note), _NONES
        return itertools.repeat(self.nones), _NONES

    def paused_working_days(
        self, group: _WorkingDayGroup, positions: np.ndarray, pause_positions: np.ndarray
    ) -> np.ndarray:
        """Working days inside excludable pauses within each (rule, case) window, overlaps merged, and
        the number of pauses in the window that the rule does not exclude: float64 (2, rules, rows).

        A pause covers working days d with date(start) < d ≤ date(end), like the case itself. Every pause
        is clipped to every rule's window of its case at once, (rules, pauses) arrays; the clipped start
        and end stay in order, so a pause outside the window is left empty (its end at or before its
        start) instead of being filtered out. Each pause falls in a group ``tally * n + row`` (see
        ``_WorkingDayGroup.by_reason``), so one weighted ``bincount`` gives both answers: an excludable pause
        weighs its working days, another pause 1 if it is not empty. Sorting the pauses by (group, start)
        and keeping a running maximum of the ends seen so far within the group makes each pause add only
        the part no earlier pause covered: the union's length without a loop. A batch without pauses in
        any window skips all of it.
        ``pause_positions`` are the pauses' starts then ends; ``positions`` the windows', (2, rule, row).
        """
        k, n = positions.shape[1:]
        pauses = self.batch.pauses
        rows = pauses.row
        p = len(rows)
        if p:
            # (start/end, rule, pause); a window without a start sits at position 0 at both ends, so it
            # leaves every pause empty. ``take`` is a fancy index without the index parsing.
            windows = positions.take(rows, axis=2)
            clipped = np.minimum(np.maximum(pause_positions.reshape(2, 1, p), windows[0]), windows[1])
            kept = clipped[1] > clipped[0]
        if not p or not np.count_nonzero(kept):
            return np.zeros((2, k, n))
        codes = pauses.reason_codes()
        groups = group.by_reason.take(codes, axis=1)
        excludable = group.excludes.take(codes, axis=1)
        if n > 1:  # a batch of one has one group per tally
            groups = groups * n + rows
        # Float64 counts, like the tallies ``bincount`` sums: int64 weights would be converted first.
        cum = self.constants.cum_float
        if p > 1 and np.count_nonzero(excludable) > 1:
            # Overlaps can only exist between two excluded pauses; a lone one is its own union (so a batch
            # with one pause, which one rule or many may exclude, need not even count them). (The
            # pauses that are only counted may be merged too: their weight does not depend on it. An
            # empty pause ends at or before its start, so it cuts nothing off the pauses after it.)
            lo, hi = clipped
            flat = [a.ravel() for a in (groups, lo, hi, kept, excludable)]
            order = np.lexsort((flat[1], flat[0]))
            groups, lo, hi, kept, excludable = (a[order] for a in flat)
            span = len(cum) + 1
            running = np.maximum.accumulate(groups * span + hi)
            previous_end = np.full(len(groups), -1, np.int64)
            same_group = np.r_[False, groups[1:] == groups[:-1]]
            previous_end[same_group] = (running[:-1] - groups[1:] * span)[same_group[1:]]
            begin = np.minimum(np.maximum(lo, previous_end), hi)
            worked = cum.take(hi) - cum.take(begin)
        else:
            ends = cum.take(clipped)
            worked = ends[1] - ends[0]
        # An open pause that starts after as_of ends before its start: not ``kept``, it weighs nothing.
        weight = np.where(excludable & kept, worked, kept)
        return np.bincount(groups.ravel(), weights=weight.ravel(), minlength=2 * k * n).reshape(2, k, n)

    def beyond_note(self, beyond: np.ndarray) -> np.ndarray:
        return self.named_where(beyond, _beyond_text(self.calendar))

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
        note = self.nones
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
            open_note=self.named_where(window.not_started, OpenNote("not_started", self.as_of.date)),
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
