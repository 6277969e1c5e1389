"""Aggregate rules: means and shares per group (kind, period of the anchor date, optional --by key).

A scan feeds batches in as it goes; only per-group sums are kept (n, sum, open), so memory does not
grow with the number of cases. A group with fewer cases than the rule's ``min_cases`` is
``insufficient_data``. Open cases (no end yet) are counted but not averaged (SPEC "Aggregate rules").
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from engine.batch import Batch
from engine.calendar import WorkdayIndex
from engine.domain import NO_GROUP, Period
from engine.executors.columnar import COMPARE, compile_predicate, fact_series
from engine.executors.plan import lower
from engine.packs import RulePack
from engine.rules import AggregateRule, FieldMeasure, WorkingDaysMeasure, iter_leaves, measure_fields

__all__ = [
    "PERIOD_MONTHS",
    "AggregateAccumulator",
    "period_code",
    "period_codes",
    "period_label",
]

PERIOD_MONTHS: dict[Period, int] = {"month": 1, "quarter": 3, "year": 12}


def period_codes(days: np.ndarray, period: Period) -> np.ndarray:
    """Each anchor date's period as a number (months, quarters or years since 1970): cases are grouped
    by number, and only the groups' labels are ever written out."""
    months = days.astype("datetime64[M]").astype(np.int64)
    return months // PERIOD_MONTHS[period]


def period_label(code: int, period: Period) -> str:
    """``2026-03``, ``2026-Q1`` or ``2026`` for a code of ``period_codes``."""
    if period == "year":
        return str(1970 + code)
    if period == "quarter":
        return f"{1970 + code // 4}-Q{code % 4 + 1}"
    return f"{1970 + code // 12}-{code % 12 + 1:02d}"


def period_code(label: str, period: Period) -> int:
    """The code of a ``period_label``: ``period_code(period_label(c, p), p) == c``."""
    year, _, part = label.partition("-")
    if period == "year":
        return int(year) - 1970
    if period == "quarter":
        return (int(year) - 1970) * 4 + int(part.removeprefix("Q")) - 1
    return (int(year) - 1970) * 12 + int(part) - 1


def _frame(batch: Batch, names: list[str]) -> pl.DataFrame:
    """The named case fields as Polars columns, converted as the columnar executor converts facts (dates
    as day numbers), since the same compiled predicates read them."""
    return pl.DataFrame([fact_series(batch.columns[name], batch.n).alias(name) for name in names])


def _holds(condition: Any, frame: pl.DataFrame) -> np.ndarray:
    if condition is None:
        return np.ones(frame.height, bool)
    return frame.select(compile_predicate(lower(condition)).alias("holds"))["holds"].to_numpy()


class AggregateAccumulator:
    """Running per-group sums of every aggregate rule over the batches of a scan."""

    def __init__(
        self, pack: RulePack, calendar: WorkdayIndex, as_of: date, period: Period, by: str | None
    ) -> None:
        self.pack = pack
        self.calendar = calendar
        self.as_of = as_of
        self.period = period
        self.by = by
        # (rule id, period, group) → [cases in scope, values averaged or cases counted, sum, open]
        self.groups: dict[tuple[str, str, str | None], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0])

    def rules_for(self, kind: str) -> list[AggregateRule]:
        return [rule for rule in self.pack.aggregates if rule.kind in (kind, "*")]

    def fields(self, kind: str) -> list[str]:
        """Case fields the kind's aggregate rules read, so the scan's batches carry them."""
        found: dict[str, None] = {}
        for rule in self.rules_for(kind):
            for condition in (rule.scope, rule.share_of):
                if condition is not None:
                    found.update(dict.fromkeys(leaf.field for leaf in iter_leaves(condition)))
            if rule.measure is not None:
                found.update(dict.fromkeys(measure_fields(rule.measure)))
        if self.by:
            found[self.by] = None
        return list(found)

    def add(self, kind: str, batch: Batch, calendar: WorkdayIndex | None = None) -> None:
        """Add a batch's cases to the sums of each group and rule: one ``group_by`` for all the kind's
        rules, since a Polars query costs far more to plan than to run on a batch. Working days are
        counted on ``calendar`` (the cases' own overlay), by default the accumulator's."""
        rules = self.rules_for(kind)
        if not rules or batch.n == 0:
            return
        anchor = batch.columns[self.pack.anchor(kind)]
        columns: dict[str, Any] = {"period": period_codes(anchor, self.period)}
        if self.by:
            keys = batch.columns[self.by]
            columns["group"] = pl.Series(
                np.where(np.equal(keys, None), NO_GROUP, keys).tolist(), dtype=pl.String
            )
        else:
            columns["group"] = pl.repeat(None, batch.n, dtype=pl.String, eager=True)
        frame = _frame(batch, self.fields(kind))
        for r, rule in enumerate(rules):
            # 自生效之日起: a case counts when its anchor date is on or after the rule's from date (and until its end).
            in_force = anchor >= np.datetime64(rule.effective_from, "D")
            if rule.effective_until is not None:
                in_force &= anchor <= np.datetime64(rule.effective_until, "D")
            eligible = in_force & _holds(rule.scope, frame)
            counted, values, opened = self._values(
                rule, batch, frame, in_force, eligible, calendar or self.calendar
            )
            columns |= {
                f"scope{r}": eligible,
                f"counted{r}": counted,
                f"value{r}": np.where(counted, values, 0.0),
                f"open{r}": opened,
            }
        sums = pl.DataFrame(columns).group_by("period", "group").sum()
        for period, group, *totals in sums.iter_rows():
            label = period_label(period, self.period)
            for r, rule in enumerate(rules):
                scope, counted_n, total, open_n = totals[4 * r : 4 * r + 4]
                if scope or open_n:  # the group has cases in this rule's scope, closed or open
                    entry = self.groups[(rule.id, label, group)]
                    entry[0] += scope
                    entry[1] += counted_n
                    entry[2] += total
                    entry[3] += open_n

    def _values(
        self,
        rule: AggregateRule,
        batch: Batch,
        frame: pl.DataFrame,
        in_force: np.ndarray,
        eligible: np.ndarray,
        calendar: WorkdayIndex,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per case: whether it enters the statistic, its value there, and whether it is open."""
        if rule.statistic == "share":
            hits = _holds(rule.share_of, frame).astype(np.float64)
            return eligible, hits, np.zeros(batch.n, bool)
        measure = rule.measure
        if isinstance(measure, FieldMeasure):
            values = batch.columns[measure.field].astype(np.float64)
            present = ~np.isnan(values)
            return eligible & present, np.where(present, values, 0.0), np.zeros(batch.n, bool)
        assert isinstance(measure, WorkingDaysMeasure)
        start, end = batch.columns[measure.start], batch.columns[measure.end]
        closed = ~np.isnat(start) & ~np.isnat(end)
        safe_start = np.where(closed, start, np.datetime64(calendar.first, "D"))
        safe_end = np.where(closed, end, safe_start)
        values = np.asarray(calendar.working_days_between(safe_start, safe_end), np.float64)
        # An open case fails the scope only for lack of its end: counted, not averaged.
        if_closed = _holds(rule.scope, frame.with_columns(pl.col(measure.end).fill_null(0.0)))
        opened = in_force & if_closed & np.isnat(end) & ~eligible
        return eligible & closed, values, opened

    def merge(self, groups: dict[tuple[str, str, str | None], list[float]]) -> None:
        """Add another accumulator's sums (a chunk checked in a worker process)."""
        for key, sums in groups.items():
            entry = self.groups[key]
            for i, value in enumerate(sums):
                entry[i] += value

    def results(self) -> list[dict[str, Any]]:
        """One entry per aggregate rule and group, in rule, period and group order."""
        entries = []
        for (rule_id, period, group), (scope, counted, total, opened) in sorted(
            self.groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        ):
            rule = self.pack.by_id[rule_id]
            assert isinstance(rule, AggregateRule)
            value = round(total / counted, 4) if counted else None
            if counted < rule.min_cases or value is None:
                status = "insufficient_data"
            else:
                status = "pass" if COMPARE[rule.require.op](value, float(rule.require.limit)) else "fail"
            entries.append(
                {
                    "rule": rule_id,
                    "kind": rule.kind,
                    "statistic": rule.statistic,
                    "period": period,
                    "group": group,
                    "by": self.by,
                    "n": int(counted),
                    "in_scope": int(scope),
                    "open": int(opened),
                    "value": value,
                    "op": rule.require.op,
                    "limit": rule.require.limit,
                    "status": status,
                }
            )
        return entries
