"""Facts: a measured batch as the flat key → column mapping that every backend's predicates read."""

from __future__ import annotations

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


def fact_columns(plan: KindPlan, measured: Measured) -> dict[str, np.ndarray]:
    """Every key the plan's predicates read. Absent values are NaN (numbers) or None (text, booleans)."""
    batch = measured.batch
    columns: dict[str, np.ndarray] = {"anchor": _day_numbers(measured.anchor)}
    for name in plan.case_fields:
        column = batch.columns[name]
        columns[name] = _day_numbers(column) if column.dtype.kind == "M" else column
    for rule_plan, measure in zip(plan.rules, measured.measures, strict=True):
        i = rule_plan.index
        columns[f"v{i}"] = measure.value
        if measure.allowance is not None:
            columns[f"t{i}"] = measure.allowance
        columns[f"o{i}"] = _flag(measure.open)
        reasons = batch.exemptions.get(rule_plan.rule.id)
        columns[f"x{i}"] = _flag(
            np.not_equal(reasons, None) if reasons is not None else np.zeros(batch.n, bool)
        )
    return columns
