"""Facts: a measured batch as the flat key → column mapping that every backend's predicates read."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.executors.plan import EPOCH, KindPlan
from engine.measures import Measured

_EPOCH_DAY = np.datetime64(EPOCH, "D")


def _day_numbers(days: np.ndarray) -> np.ndarray:
    numbers = (days - _EPOCH_DAY).astype(np.float64)
    numbers[np.isnat(days)] = np.nan
    return numbers


def _flag(mask: np.ndarray) -> np.ndarray:
    """Present (1.0) where the mask holds, absent (NaN) elsewhere: flags are tested for presence."""
    return np.where(mask, 1.0, np.nan)


def _day_column(column: np.ndarray) -> np.ndarray:
    return _day_numbers(column) if column.dtype.kind == "M" else column


def fact_columns(plan: KindPlan, measured: Measured) -> dict[str, np.ndarray]:
    """Every key the plan's predicates read. Absent values are NaN (numbers) or None (text, booleans)."""
    batch = measured.batch
    # Columns shared between keys (the anchor is usually a case field too; rules sharing a window
    # share their ``open`` mask) are converted once; rules without exemptions share one absent flag.
    converted: dict[int, np.ndarray] = {}

    def once(column: np.ndarray, convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        if id(column) not in converted:
            converted[id(column)] = convert(column)
        return converted[id(column)]

    columns: dict[str, np.ndarray] = {"anchor": once(measured.anchor, _day_column)}
    for name in plan.case_fields:
        columns[name] = once(batch.columns[name], _day_column)
    never: np.ndarray | None = None
    for rule_plan, measure in zip(plan.rules, measured.measures, strict=True):
        i = rule_plan.index
        columns[f"v{i}"] = measure.value
        if measure.allowance is not None:
            columns[f"t{i}"] = measure.allowance
        columns[f"o{i}"] = once(measure.open, _flag)
        reasons = batch.exemptions.get(rule_plan.rule.id)
        if reasons is not None:
            columns[f"x{i}"] = _flag(np.not_equal(reasons, None))
        else:
            if never is None:
                never = np.full(batch.n, np.nan)
            columns[f"x{i}"] = never
    return columns
