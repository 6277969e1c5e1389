"""A batch: the cases of one kind as columns (NumPy arrays), their pauses as one flat table, their
exemptions as columns, built from case models (``Batch.from_cases``) or from validated frame columns
(``engine.ingest``). The measures read batches; nothing here judges a case.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.cases import CASE_MODELS, field_type
from engine.domain import EPOCH_ORDINAL, PAUSE_REASONS

__all__ = ["DAY_DTYPE", "NAT", "NAT_DAY", "Batch", "Pauses", "date_rows", "exemption_columns"]

NAT = np.datetime64("NaT", "D")
# An absent date in a block of day numbers (the int64 behind ``datetime64[D]``): both batch builders, this
# module's from case models and ``engine.ingest``'s from columns, write it.
NAT_DAY = int(NAT.view(np.int64))
# Viewing as a dtype object skips parsing the dtype's name, which costs as much as the view itself.
DAY_DTYPE = np.dtype("datetime64[D]")

_NAN_FLOAT = float("nan")
_PAUSE_CODE = {reason: code for code, reason in enumerate(PAUSE_REASONS)}
_PAUSE_REASON_ARRAY = np.array(PAUSE_REASONS, object)  # code → reason
# A column to compare a pause table's reasons against: row r is True where the reason is the r-th.
_PAUSE_REASON_COLUMN = _PAUSE_REASON_ARRAY.reshape(-1, 1)


@dataclass
class Pauses:
    """Every pause of a batch as one flat table (暂停计时), rows pointing back at their case."""

    row: np.ndarray  # int64
    reason: np.ndarray  # object (str)
    start: np.ndarray  # datetime64[D]
    end: np.ndarray  # datetime64[D], NaT while the pause is still running
    # The reason as its position in ``PauseReason``, so a rule's excluded reasons are one lookup.
    code: np.ndarray | None = None  # int64
    # int64 (2, pauses): the day numbers behind ``start`` and ``end``, one block for the measures to read.
    days: np.ndarray | None = None

    @classmethod
    def of_table(cls, table: np.ndarray) -> Pauses:
        """The pauses of an int64 (4, pauses) table whose rows are the columns: case row, reason code,
        start and end day numbers (``NAT_DAY`` while running).

        Both batch builders (``Batch.from_cases`` from models, ``engine.ingest`` from columns) lay their
        pauses out so, and build them here: the reasons come from the codes and the dates are views of
        the day numbers, the same arrays whatever the source.
        """
        bounds = table[2:].view(DAY_DTYPE)
        # The reasons' one string each, by code: no list to build.
        return cls(table[0], _PAUSE_REASON_ARRAY.take(table[1]), bounds[0], bounds[1], table[1], table[2:])

    def reason_codes(self) -> np.ndarray:
        """Each pause's reason as its position in ``PauseReason``."""
        return self.code if self.code is not None else (self.reason == _PAUSE_REASON_COLUMN).argmax(0)


def exemption_columns(n: int, exemptions: Iterable[tuple[int, str, str]]) -> dict[str, np.ndarray]:
    """``Batch.exemptions`` of a batch of ``n`` rows from its exemptions as (row, rule, reason): rule id
    → the reason per row (None where the row is not exempted from it).

    Shared by both batch builders (``Batch.from_cases``, ``engine.ingest``), so a rule's column exists
    exactly when one of the batch's cases is exempted from it, whatever the source.
    """
    columns: dict[str, np.ndarray] = {}
    for row, rule, reason in exemptions:
        columns.setdefault(rule, np.full(n, None, object))[row] = reason
    return columns


@dataclass
class Batch:
    """Cases of one kind as columns: what the measures and both executors work on.

    Dates and timestamps are local dates (``datetime64[D]``, NaT when absent); numbers are float64 (NaN
    when absent); money is float64 yuan plus exact integer fen in ``fen``; strings and booleans are object
    arrays with None when absent.

    The date columns are rows of one int64 block of day numbers (``days``, row ``day_row[path]``), each
    viewed as ``datetime64[D]`` in ``columns``: the measures pick every window's starts and ends out of
    it with one fancy index, whatever the number of rules.
    """

    kind: str
    case_id: np.ndarray
    columns: dict[str, np.ndarray]
    fen: dict[str, np.ndarray]
    pauses: Pauses
    exemptions: dict[str, np.ndarray]  # rule id → the exemption's reason per row (object, None if none)
    days: np.ndarray | None = None  # int64 (date fields, rows): the date columns as epoch day numbers
    day_row: dict[str, int] = field(default_factory=dict)  # date field → its row in ``days``

    @property
    def n(self) -> int:
        return len(self.case_id)

    def day_block(self, names: tuple[str, ...]) -> np.ndarray:
        """The named date columns as one int64 (len(names), n) array of day numbers (NaT: NATDAY_DTYPE)."""
        if self.days is not None:
            rows = self.day_row.pick(names) if isinstance(self.day_row, _DayRows) else None
            if rows is not None:
                return self.days.take(rows, axis=0)  # a fancy index without the index parsing
        return np.array([self.columns[name].view(np.int64) for name in names], np.int64).reshape(
            len(names), self.n
        )

    def take(self, rows: np.ndarray) -> Batch:
        """The batch of the given rows (int64 positions, ascending), pauses renumbered to match."""
        number = np.full(self.n, -1, np.int64)
        number[rows] = np.arange(len(rows))
        pauses = self.pauses
        kept = number[pauses.row] >= 0
        table = np.array(
            [
                number[pauses.row[kept]],
                pauses.reason_codes()[kept],
                pauses.start.view(np.int64)[kept],
                pauses.end.view(np.int64)[kept],
            ],
            np.int64,
        ).reshape(4, -1)
        days = None if self.days is None else self.days[:, rows]
        columns = {name: column[rows] for name, column in self.columns.items()}
        if days is not None:
            dates = days.view(DAY_DTYPE)
            columns.update((name, dates[row]) for name, row in self.day_row.items())
        return Batch(
            self.kind,
            self.case_id[rows],
            columns,
            {name: column[rows] for name, column in self.fen.items()},
            Pauses.of_table(table),
            {rule: column[rows] for rule, column in self.exemptions.items()},
            days,
            self.day_row,
        )

    @classmethod
    def from_cases(cls, kind: str, cases: Sequence[Any], fields: Sequence[str]) -> Batch:
        """Columns of the named fields (dotted paths) from validated case models of one kind.

        Fields are grouped by dtype (``_layout``, once per field list), so all date fields become one
        array and all number fields another: two ``np.array`` calls instead of one per field.
        """
        layout = _layout(kind, tuple(fields))
        n = len(cases)
        # Filled group by group; ``fromkeys`` keeps the caller's field order without a second pass.
        columns: dict[str, np.ndarray] = dict.fromkeys(fields)  # type: ignore[arg-type]
        fen: dict[str, np.ndarray] = {}
        days = None
        if layout.dates:
            # Day numbers (days since 1970-01-01 of the local date, the int64 behind ``datetime64[D]``),
            # written out inline: a function call per value costs as much as the conversion. A datetime's
            # ``toordinal`` is that of its own (local) date, so timestamps need no ``.date()`` first.
            days = np.array(
                [
                    NAT_DAY if (day := get(case)) is None else day.toordinal() - EPOCH_ORDINAL
                    for get in layout.date_getters
                    for case in cases
                ],
                np.int64,
            ).reshape(len(layout.dates), n)
            dates = days.view(DAY_DTYPE)
            for i, path in enumerate(layout.dates):
                columns[path] = dates[i]
        if layout.numbers:
            numbers = np.array(
                [
                    _NAN_FLOAT if (x := get(case)) is None else float(x)
                    for get in layout.number_getters
                    for case in cases
                ],
                np.float64,
            ).reshape(len(layout.numbers), n)
            for i, path in enumerate(layout.numbers):
                columns[path] = numbers[i]
        for path, get in zip(layout.money, layout.money_getters, strict=True):
            values = [get(case) for case in cases]
            columns[path] = np.array([np.nan if v is None else float(v) for v in values], np.float64)
            fen[path] = np.array([0 if v is None else int(v * 100) for v in values], np.int64)
        if layout.others:
            # ``fromiter`` takes each value as one cell: a value NumPy would read as a sequence (a list, a
            # tuple) needs no second attempt, and the flat list needs no shape discovery.
            others = np.fromiter(
                [get(case) for get in layout.other_getters for case in cases], object, len(layout.others) * n
            ).reshape(len(layout.others), n)
            for i, path in enumerate(layout.others):
                columns[path] = others[i]
        rows, codes, starts, ends = [], [], [], []
        exempted: list[tuple[int, str, str]] = []
        for i, case in enumerate(cases):
            for pause in case.pauses:
                rows.append(i)
                codes.append(_PAUSE_CODE[pause.reason])
                # Day numbers as for the date columns (a pause always has a start).
                starts.append(pause.start.toordinal() - EPOCH_ORDINAL)
                ends.append(NAT_DAY if (end := pause.end) is None else end.toordinal() - EPOCH_ORDINAL)
            # Collected in this pass: a second pass over the cases (a generator) would cost every batch.
            for exemption in case.exemptions:
                exempted.append((i, exemption.rule, exemption.reason))
        # Rows, reason codes and bounds are all int64: one array, whose rows are the table's columns (from
        # one flat list: nested lists make NumPy discover the shape first).
        table = np.array(rows + codes + starts + ends, np.int64).reshape(4, len(rows))
        case_id = np.fromiter([case.case_id for case in cases], object, n)
        pauses = Pauses.of_table(table)
        return cls(kind, case_id, columns, fen, pauses, exemption_columns(n, exempted), days, layout.day_row)


_UNKNOWN = object()  # a key not looked up yet, where None is a cached answer


class _DayRows(dict[str, int]):
    """Date field → its row in ``Batch.days``, remembering the index array of each field tuple asked for.

    A kind's working-day rules always ask for the same fields: the index is built once per layout, not
    per batch.
    """

    def __init__(self, rows: dict[str, int]) -> None:
        super().__init__(rows)
        self.picks: dict[tuple[str, ...], np.ndarray | None] = {}

    def pick(self, names: tuple[str, ...]) -> np.ndarray | None:
        """The rows of ``names``; None when one is not a date field of the layout."""
        rows = self.picks.get(names, _UNKNOWN)
        if rows is _UNKNOWN:
            found = all(name in self for name in names)
            rows = self.picks[names] = np.array([self[name] for name in names], np.intp) if found else None
        return rows


@dataclass(frozen=True)
class _Layout:
    """A field list split by dtype, with a getter per field: computed once per (kind, fields)."""

    dates: tuple[str, ...]
    date_getters: tuple[Callable[[Any], Any], ...]
    numbers: tuple[str, ...]
    number_getters: tuple[Callable[[Any], Any], ...]
    money: tuple[str, ...]
    money_getters: tuple[Callable[[Any], Any], ...]
    others: tuple[str, ...]
    other_getters: tuple[Callable[[Any], Any], ...]
    day_row: dict[str, int]


@functools.lru_cache(maxsize=256)
def _layout(kind: str, fields: tuple[str, ...]) -> _Layout:
    groups: dict[str, list[str]] = {"date": [], "number": [], "money": [], "other": []}
    for path in fields:
        groups[field_type(kind, path)].append(path)
    model_fields = CASE_MODELS[kind].model_fields  # type: ignore[index]

    def getter(path: str) -> Callable[[Any], Any]:
        # A field of the case model itself is always an attribute: ``attrgetter`` reads it in C. A
        # dotted path may cross an absent (None) sub-record, which ``_path_getter`` turns into None.
        if "." not in path and path in model_fields:
            return operator.attrgetter(path)
        return _path_getter(tuple(path.split(".")))

    def parts(paths: list[str]) -> tuple[Callable[[Any], Any], ...]:
        return tuple(getter(path) for path in paths)

    return _Layout(
        tuple(groups["date"]),
        parts(groups["date"]),
        tuple(groups["number"]),
        parts(groups["number"]),
        tuple(groups["money"]),
        parts(groups["money"]),
        tuple(groups["other"]),
        parts(groups["other"]),
        _DayRows({path: i for i, path in enumerate(groups["date"])}),
    )


def date_rows(kind: str, fields: tuple[str, ...]) -> dict[str, int]:
    """Date field → its row in ``Batch.days``, as ``Batch.from_cases`` lays out a batch of ``fields``;
    for builders of batches from other sources (the column checks of ``engine.ingest``)."""
    return _layout(kind, fields).day_row


def _path_getter(parts: tuple[str, ...]) -> Callable[[Any], Any]:
    """The value at a dotted path, None where a record on the way is absent.

    A closure over the parts rather than a ``partial`` with them as a keyword: a keyword argument costs
    the call twice the instructions of the walk itself, and it runs per case and dotted field.
    """

    def get(obj: Any) -> Any:
        for part in parts:
            if obj is None:
                return None
            obj = getattr(obj, part, None)
        return obj

    return get
