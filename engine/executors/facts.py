"""Facts: a measured batch as the flat key → column mapping that every backend's predicates read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.executors.plan import KindPlan
from engine.measures import Measured

# Facts carry dates as day numbers since 1970-01-01 (``plan.EPOCH``), which is exactly the int64 behind
# ``datetime64[D]``: the conversion is a view, with NaT (the smallest int64) turned into NaN.
_NAT_DAY = int(np.datetime64("NaT", "D").view(np.int64))


@dataclass
class FactBlocks:
    """A batch's facts grouped so that each group is converted by one NumPy call, whatever its size.

    ``numbers`` is float64 (keys, rows), NaN where absent: dates as day numbers, numbers, and the
    presence flags (1.0 present, NaN absent). ``objects`` are the text and boolean columns, None where
    absent. The durable executor reads the blocks directly (one ``tolist`` for all numbers); everything
    else reads :func:`fact_columns`.
    """

    number_keys: list[str]
    numbers: np.ndarray
    object_keys: list[str]
    objects: list[np.ndarray]


def fact_blocks(plan: KindPlan, measured: Measured) -> FactBlocks:
    """Every key the plan's predicates read; all numeric keys converted by one ``np.array`` call.

    Days (as their int64 day numbers), numbers and presence masks (bool) are stacked into one float64
    block in that order; then NaT day numbers and false flags become NaN, each by one masked assignment
    on its own rows.
    """
    batch = measured.batch
    n = batch.n
    day_keys, days = ["anchor"], [measured.anchor.view(np.int64)]
    number_keys: list[str] = []
    numbers: list[np.ndarray] = []
    object_keys: list[str] = []
    objects: list[np.ndarray] = []

    def put(key: str, column: np.ndarray) -> None:
        kind = column.dtype.kind
        if kind == "M":
            day_keys.append(key)
            days.append(column.view(np.int64))
        elif kind == "f":
            number_keys.append(key)
            numbers.append(column)
        else:
            object_keys.append(key)
            objects.append(column)

    for name in plan.case_fields:
        put(name, batch.columns[name])
    flag_keys: list[str] = []
    flags: list[np.ndarray] = []
    never: np.ndarray | None = None
    for rule_plan, (value_key, allowance_key, open_key, exempt_key), measure in zip(
        plan.rules, plan.measure_keys, measured.measures, strict=True
    ):
        put(value_key, measure.value)
        if measure.allowance is not None:
            put(allowance_key, measure.allowance)
        # Flags are tested for presence: 1.0 where the mask holds, NaN elsewhere.
        reasons = batch.exemptions.get(rule_plan.rule.id)
        if reasons is not None:
            exempt = np.not_equal(reasons, None)
        else:
            if never is None:
                never = np.zeros(n, bool)
            exempt = never
        flag_keys += (open_key, exempt_key)
        flags += (measure.open, exempt)
    block = np.array([*days, *numbers, *flags], np.float64).reshape(len(days) + len(numbers) + len(flags), n)
    day_rows = block[: len(days)]
    day_rows[day_rows == _NAT_DAY] = np.nan
    flag_rows = block[len(days) + len(numbers) :]
    flag_rows[flag_rows == 0] = np.nan
    return FactBlocks([*day_keys, *number_keys, *flag_keys], block, object_keys, objects)


def fact_columns(plan: KindPlan, measured: Measured) -> dict[str, np.ndarray]:
    """Every key the plan's predicates read. Absent values are NaN (numbers) or None (text, booleans)."""
    blocks = fact_blocks(plan, measured)
    columns = dict(zip(blocks.number_keys, blocks.numbers, strict=True))
    columns.update(zip(blocks.object_keys, blocks.objects, strict=True))
    return columns
