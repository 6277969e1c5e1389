"""Facts: a measured batch as the flat key → column mapping that every backend's predicates read."""

from __future__ import annotations

import numpy as np

from engine.executors.plan import KindPlan
from engine.measures import Measured


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
