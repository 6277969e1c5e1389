"""The durable executor: the plan compiled into durable_rules rulesets, one per case kind.

Each case is asserted as a fact in a session (``sid``) of its own; durable_rules' matcher fires exactly
one rule per (rule, outcome) whose conditions hold, and the action only records the name of the rule that
fired. The session is deleted straight after, so two cases with the same case_id never meet and nothing
accumulates over a long run. durable_rules keeps global state in its C engine and treats ``id`` and
``sid`` specially, so case fields never travel under those names: keys are ``f_``-prefixed.
"""

from __future__ import annotations

import itertools
import math
import threading
from typing import Any

import numpy as np
from durable.engine import Host, MessageNotHandledException

from engine.executors.facts import fact_columns
from engine.executors.plan import And, Cmp, Has, KindPlan, Lacks, Or, Predicate, Ref
from engine.measures import Measured

_OPERATORS = {"ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


def _key(key: str) -> str:
    return "f_" + key.replace(".", "__")


def compile_predicate(predicate: Predicate) -> dict[str, Any]:
    """A plan predicate in durable_rules' JSON condition language."""
    if isinstance(predicate, And | Or):
        return {
            "$and" if isinstance(predicate, And) else "$or": [compile_predicate(p) for p in predicate.parts]
        }
    if isinstance(predicate, Has):
        return {"$ex": {_key(predicate.key): 1}}
    if isinstance(predicate, Lacks):
        return {"$nex": {_key(predicate.key): 1}}
    assert isinstance(predicate, Cmp)
    value = {"$m": _key(predicate.value.key)} if isinstance(predicate.value, Ref) else predicate.value
    if predicate.op == "eq":
        return {_key(predicate.key): value}
    return {_OPERATORS[predicate.op]: {_key(predicate.key): value}}


def _plain(value: Any) -> Any:
    """A fact value as JSON-able Python, or None when absent."""
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class DurableExecutor:
    """Matches one case at a time in durable_rules; the path for single checks."""

    name = "durable"

    def __init__(self, plans: dict[str, KindPlan]) -> None:
        self._plans = plans
        self._host = Host()
        self._fired: list[str] = []
        self._lock = threading.Lock()
        self._sessions = itertools.count()
        definitions = {}
        for kind, plan in plans.items():
            ruleset: dict[str, Any] = {}
            for rule_plan in plan.rules:
                for outcome in rule_plan.outcomes:
                    name = f"{rule_plan.index}|{outcome.code}"
                    condition = compile_predicate(And((outcome.predicate,)))
                    ruleset[name] = {"all": [{"m": condition}], "run": self._recorder(name)}
            if ruleset:
                definitions[kind] = ruleset
        self._host.register_rulesets(definitions)

    def _recorder(self, name: str) -> Any:
        fired = self._fired

        def record(_context: Any) -> None:
            fired.append(name)

        return record

    def match(self, plan: KindPlan, measured: Measured) -> list[list[str]]:
        """The outcome code of every rule for every row, in the plan's rule order."""
        if not plan.rules:
            return [[] for _ in range(measured.batch.n)]
        columns = {_key(k): v for k, v in fact_columns(plan, measured).items()}
        outcomes = []
        for row in range(measured.batch.n):
            fact = {}
            for key, column in columns.items():
                value = _plain(column[row])
                if value is not None:
                    fact[key] = value
            outcomes.append(self._match_fact(plan, fact))
        return outcomes

    def _match_fact(self, plan: KindPlan, fact: dict[str, Any]) -> list[str]:
        with self._lock:
            sid = str(next(self._sessions))
            fact["sid"] = sid
            fact["id"] = sid
            self._fired.clear()
            try:
                self._host.assert_fact(plan.kind, fact)
            except MessageNotHandledException:
                pass
            finally:
                self._host.delete_state(plan.kind, sid)
            fired = list(self._fired)
        codes = [""] * len(plan.rules)
        for name in fired:
            index, code = name.split("|", 1)
            if codes[int(index)]:
                raise RuntimeError(f"rule {plan.rules[int(index)].rule.id}: two outcomes matched ({code})")
            codes[int(index)] = code
        for rule_plan, code in zip(plan.rules, codes, strict=True):
            if not code:
                raise RuntimeError(f"rule {rule_plan.rule.id}: no outcome matched")
        return codes
