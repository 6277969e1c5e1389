"""Facts: a measured batch as the flat key → column mapping that every backend's predicates read."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.executors.plan import KindPlan
from engine.measures import Measured

# Facts carry dates as day numbers since 1970-01-01 (``plan.EPOCH``), which is exactly the int64 behind
# ``datetime64[D]``: the conversion is a view, with NaT (the smallest int64) read as absent.
_NAT_DAY = int(np.datetime64("NaT", "D").view(np.int64))


def fact_sources(plan: KindPlan, measured: Measured) -> list[tuple[str, np.ndarray | None]]:
    """Every key the plan's predicates read, with its column as the batch and the measures hold it.

    Dates are ``datetime64[D]`` (NaT absent), numbers float64 (NaN absent), text and booleans object
    arrays (None absent); the open and exemption flags are bool masks (True: the key is present). A
    rule's exemption flag is None when no row carries an exemption for it, so that no backend pays to
    build or read a column of False.
    """
    batch = measured.batch
    sources: list[tuple[str, np.ndarray | None]] = [("anchor", measured.anchor)]
    sources += [(name, batch.columns[name]) for name in plan.case_fields]
    for rule_plan, (value_key, allowance_key, open_key, exempt_key), measure in zip(
        plan.rules, plan.measure_keys, measured.measures, strict=True
    ):
        sources.append((value_key, measure.value))
        if measure.allowance is not None:
            sources.append((allowance_key, measure.allowance))
        reasons = batch.exemptions.get(rule_plan.rule.id)
        sources += (
            (open_key, measure.open),
            (exempt_key, None if reasons is None else np.not_equal(reasons, None)),
        )
    return sources


def fact_values(column: np.ndarray) -> list[Any]:
    """A fact column as Python values (one ``tolist``), None where absent; dates as day numbers.

    The path of the durable executor, which asserts one row at a time as a dict.
    """
    kind = column.dtype.kind
    if kind == "M":
        return [None if day == _NAT_DAY else day for day in column.view(np.int64).tolist()]
    if kind == "f":
        return [None if value != value else value for value in column.tolist()]  # NaN != NaN
    if kind == "b":
        return [True if flag else None for flag in column.tolist()]
    return column.tolist()
