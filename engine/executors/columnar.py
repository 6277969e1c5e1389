"""The columnar executor: the plan compiled into Polars expressions over a whole batch at once.

Every rule becomes one ``when/then`` chain choosing its outcome code; Polars evaluates all rules of a
kind over all rows in one ``select``, with no Python per row. A comparison on an absent (null) value is
false, as in durable_rules, so both executors read the same plan the same way.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import numpy as np
import polars as pl

from engine.executors.facts import fact_columns
from engine.executors.plan import And, Cmp, Has, KindPlan, Lacks, Or, Predicate, Ref
from engine.measures import Measured

COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def compile_predicate(predicate: Predicate) -> pl.Expr:
    """A plan predicate as a Polars boolean expression that is never null."""
    if isinstance(predicate, And):
        return functools.reduce(operator.and_, (compile_predicate(p) for p in predicate.parts))
    if isinstance(predicate, Or):
        return functools.reduce(operator.or_, (compile_predicate(p) for p in predicate.parts))
    if isinstance(predicate, Has):
        return pl.col(predicate.key).is_not_null()
    if isinstance(predicate, Lacks):
        return pl.col(predicate.key).is_null()
    assert isinstance(predicate, Cmp)
    right = pl.col(predicate.value.key) if isinstance(predicate.value, Ref) else pl.lit(predicate.value)
    return COMPARE[predicate.op](pl.col(predicate.key), right).fill_null(False)


def compile_plan(plan: KindPlan) -> list[pl.Expr]:
    """One expression per rule, named by its index, giving the outcome code of every row."""
    expressions = []
    for rule_plan in plan.rules:
        chain: Any = pl
        # The outcome's position, not its code: a small integer per row is far cheaper to produce than a
        # string, and the codes are looked up once per column afterwards.
        for position, outcome in enumerate(rule_plan.outcomes):
            chain = chain.when(compile_predicate(outcome.predicate)).then(pl.lit(position, pl.UInt8))
        expressions.append(chain.otherwise(pl.lit(None, pl.UInt8)).alias(str(rule_plan.index)))
    return expressions


def _series(name: str, column: np.ndarray) -> pl.Series:
    if column.dtype.kind == "f":
        return pl.Series(name, column, nan_to_null=True)
    return pl.Series(name, column.tolist(), strict=False)


def fact_frame(plan: KindPlan, measured: Measured) -> pl.DataFrame:
    return pl.DataFrame([_series(key, column) for key, column in fact_columns(plan, measured).items()])


class ColumnarExecutor:
    """Matches a whole batch in Polars; the path for scans and batch checks."""

    name = "columnar"

    def __init__(self, plans: dict[str, KindPlan]) -> None:
        self._plans = plans
        self._compiled = {kind: compile_plan(plan) for kind, plan in plans.items()}

    def outcome_frame(self, plan: KindPlan, measured: Measured) -> pl.DataFrame:
        """One column per rule (named by rule index), one row per case: the position of the outcome
        that holds in the rule's ``outcomes``."""
        frame = fact_frame(plan, measured)
        outcomes = frame.lazy().select(self._compiled[plan.kind]).collect()
        unmatched = [plan.rules[int(c)].rule.id for c in outcomes.columns if outcomes[c].null_count()]
        if unmatched:
            raise RuntimeError(f"no outcome matched for rules {', '.join(unmatched)}")
        return outcomes

    def match(self, plan: KindPlan, measured: Measured) -> list[list[str]]:
        if not plan.rules:
            return [[] for _ in range(measured.batch.n)]
        positions = self.outcome_frame(plan, measured)
        columns = [
            np.array([o.code for o in rule_plan.outcomes], object)[positions[str(rule_plan.index)].to_numpy()]
            for rule_plan in plan.rules
        ]
        return np.stack(columns, axis=1).tolist()
