"""Facts: a measured batch as the flat key → column mapping that every backend's predicates read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.executors.plan import KindPlan
from engine.measures import Measured

# Facts carry dates as day numbers since 1970-01-01 (``plan.EPOCH``), which is exactly the int64 behind
# ``datetime64[D]``: the conversion is a view, with NaT (the smallest int64) turned into NaN.
_NAT_DAY = int(np.datetime64("NaT", "D").view(np.int64))


def fact_sources(plan: KindPlan, measured: Measured) -> list[tuple[str, np.ndarray | None]]:
    """Every key the plan's predicates read, with its column as the batch and the measures hold it.

    Dates are ``datetime64[D]`` (NaT absent), numbers float64 (NaN absent), text and booleans object
    arrays (None absent); the open and exemption flags are bool masks (True: the key is present). A
    rule's exemption flag is None when no row carries an exemption for it, so that no backend pays to
    build or read a column of False.
    """
    batch = measured.batch
    columns = batch.columns
    sources: list[tuple[str, np.ndarray | None]] = [("anchor", measured.anchor)]
    sources += [(name, columns[name]) for name in plan.case_fields]
    exemptions = batch.exemptions  # mostly empty: then no rule's id needs looking up
    for rule_plan, (value_key, allowance_key, open_key, exempt_key), measure in zip(
        plan.rules, plan.measure_keys, measured.measures, strict=True
    ):
        sources.append((value_key, measure.value))
        if measure.allowance is not None:
            sources.append((allowance_key, measure.allowance))
        reasons = exemptions.get(rule_plan.rule.id) if exemptions else None
        sources += (
            (open_key, measure.open),
            (exempt_key, None if reasons is None else np.not_equal(reasons, None)),
        )
    return sources


@dataclass
class FactBlocks:
    """A batch's facts grouped so that each group is converted by one NumPy call, whatever its size.

    ``numbers`` is float64 (keys, rows), NaN where absent: dates as day numbers, numbers, and the
    presence flags (1.0 present, NaN absent). ``objects`` are the text and boolean columns, None where
    absent.
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
    n = measured.batch.n
    day_keys: list[str] = []
    days: list[np.ndarray] = []
    number_keys: list[str] = []
    numbers: list[np.ndarray] = []
    flag_keys: list[str] = []
    flags: list[np.ndarray] = []
    object_keys: list[str] = []
    objects: list[np.ndarray] = []
    never = np.zeros(n, bool)
    for key, column in fact_sources(plan, measured):
        kind = "b" if column is None else column.dtype.kind
        if kind == "M":
            day_keys.append(key)
            days.append(column.view(np.int64))  # type: ignore[union-attr]
        elif kind == "f":
            number_keys.append(key)
            numbers.append(column)  # type: ignore[arg-type]
        elif kind == "b":
            flag_keys.append(key)
            flags.append(never if column is None else column)
        else:
            object_keys.append(key)
            objects.append(column)  # type: ignore[arg-type]
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
