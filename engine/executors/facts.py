"""Facts: a measured batch as the flat key → column mapping that every backend's predicates read."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from engine.executors.plan import KindPlan
from engine.measures import Measured

__all__ = [
    "FactLayout",
    "fact_sources",
]


@dataclass(frozen=True)
class FactLayout:
    """Where each fact key comes from, worked out once per kind (and set of keys read), not per batch.

    A layout holds only the keys asked for (by default ``KindPlan.read_keys``, those some predicate
    reads; no outcome tests the open flag of a field measure), so a batch does not look up, convert and
    then ignore the others. Each executor builds its layouts when it compiles the plan.
    """

    anchor: bool  # ``anchor`` is read
    fields: tuple[str, ...]  # case fields read, each its own key
    # Per rule with any key read: (rule index, rule id, value key, allowance key, open key, exemption
    # key), None for a key not read.
    rules: tuple[tuple[int, str, str | None, str | None, str | None, str | None], ...]

    @classmethod
    def of(cls, plan: KindPlan, keys: Collection[str] | None = None) -> FactLayout:
        """The layout of those of ``keys`` (default: every key read) that are the plan's: its anchor,
        case fields or measure keys."""
        keys = frozenset(plan.read_keys if keys is None else keys)

        def read(key: str) -> str | None:
            return key if key in keys else None

        rules = []
        for rule_plan, measure_keys in zip(plan.rules, plan.measure_keys, strict=True):
            value, allowance, is_open, exempt = (read(key) for key in measure_keys)
            if value or allowance or is_open or exempt:
                rules.append((rule_plan.index, rule_plan.rule.id, value, allowance, is_open, exempt))
        return cls(
            read("anchor") is not None,
            tuple(name for name in plan.case_fields if read(name)),
            tuple(rules),
        )

    def sources(self, measured: Measured) -> list[tuple[str, np.ndarray | None]]:
        """Each key of the layout with its column, in the order of ``fact_sources``."""
        batch = measured.batch
        columns = batch.columns
        sources: list[tuple[str, np.ndarray | None]] = [("anchor", measured.anchor)] if self.anchor else []
        sources += [(name, columns[name]) for name in self.fields]
        measures = measured.measures
        exemptions = batch.exemptions  # mostly empty: then no rule's id needs looking up
        for index, rule_id, value_key, allowance_key, open_key, exempt_key in self.rules:
            measure = measures[index]
            if value_key:
                sources.append((value_key, measure.value))
            if allowance_key and measure.allowance is not None:
                sources.append((allowance_key, measure.allowance))
            if open_key:
                sources.append((open_key, measure.open))
            if exempt_key:
                reasons = exemptions.get(rule_id) if exemptions else None
                sources.append((exempt_key, None if reasons is None else np.not_equal(reasons, None)))
        return sources


def fact_sources(plan: KindPlan, measured: Measured) -> list[tuple[str, np.ndarray | None]]:
    """Every key the plan's predicates read, with its column as the batch and the measures hold it.

    Dates are ``datetime64[D]`` (NaT absent), numbers float64 (NaN absent), text and booleans object
    arrays (None absent); the open and exemption flags are bool masks (True: the key is present). A
    rule's exemption flag is None when no row carries an exemption for it, so that no backend pays to
    build or read a column of False.
    """
    return FactLayout.of(plan).sources(measured)
