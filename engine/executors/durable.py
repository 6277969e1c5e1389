"""The durable executor: the plan compiled into durable_rules rulesets, one per case kind.

Each case is asserted as a fact (with an ``id`` of its own) in the executor's one session (``sid``);
durable_rules' matcher selects the (rule, outcome) entries whose conditions hold, and their names are the
outcomes (an outcome that several rules of a kind share word for word is one entry, named after all of
them). The fact is retracted straight after, so two cases (even with the same case_id) never meet and
nothing accumulates over a long run.
durable_rules keeps global state in its C engine and treats ``id`` and ``sid`` specially, so case fields
never travel under those names: keys are ``f_``-prefixed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import threading
from typing import Any

import durable_rules_engine
import numpy as np
import orjson

from engine.batch import NAT_DAY
from engine.executors.facts import FactLayout
from engine.executors.plan import And, Cmp, Has, KindPlan, Lacks, Or, Predicate, Ref, RulePlan, keys_of
from engine.measures import Measured

__all__ = [
    "DurableExecutor",
    "compile_predicate",
]

_HANDLED = 0  # durable_rules_engine.assert_fact status: 1 = no rule matched, 2 = already observed
_SESSION = "0"  # each ruleset's one session (rulesets are per executor: their sessions are never shared)
_OPERATORS = {"ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
# durable_rules refuses a ruleset of ~480 rules (error 107; 400 crashed its matcher, 200 ran fine) and a fact
# of over 255 properties (ours, sid and id): a large kind's rules are split into rulesets within both, each
# asserted only the keys it reads.
_MAX_DURABLE_RULES = 200
_MAX_FACT_KEYS = 240


def _split(plan: KindPlan) -> list[list[RulePlan]]:
    """The kind's rules in plan order, cut into groups within the outcome and key limits."""
    groups: list[list[RulePlan]] = []
    group: list[RulePlan] = []
    keys: set[str] = set()
    outcomes = 0
    for rule_plan in plan.rules:
        own = {key for o in rule_plan.outcomes for key in keys_of(o.predicate)}
        if group and (
            len(keys | own) > _MAX_FACT_KEYS or outcomes + len(rule_plan.outcomes) > _MAX_DURABLE_RULES
        ):
            groups.append(group)
            group, keys, outcomes = [], set(), 0
        group.append(rule_plan)
        keys |= own
        outcomes += len(rule_plan.outcomes)
    if group:
        groups.append(group)
    return groups


@functools.cache
def _key(key: str) -> str:
    """Cached: the same few dozen keys are renamed for every outcome compiled."""
    return "f_" + key.replace(".", "__")


# Dates travel as day numbers (the int64 behind ``datetime64[D]``), NaT (``NAT_DAY``) being the smallest.
# The Python types a fact value may have as it is; NumPy scalars (from object columns) go through ``_plain``.
_NATIVE = frozenset((int, str, bool))


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
        if math.isnan(value):
            return None
        # durable_rules' JSON reader refuses exponents (1e-08 → error 204), and JSON writers use one
        # exactly below 1e-4 or from 1e16 up: a 0.01 CNY bond on a 1,000,000 contract must still be
        # judged, so such numbers go in positional notation.
        if value == 0 or 1e-4 <= abs(value) < 1e16:
            return float(value)
        return orjson.Fragment(np.format_float_positional(value, trim="-").encode())
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class DurableExecutor:
    """Matches one case at a time in durable_rules; the path for single checks.

    The rulesets are driven through durable_rules' engine API (``durable_rules_engine``): assert the
    fact, then take the matched rules one by one (``start_action_for_state`` /
    ``complete_and_start_action``). The names of the rules that fired are the outcomes. Going round the
    ``Host`` class skips its per-action Python machinery (a state JSON round trip per fired rule), which
    cost more than the match; the matching itself is the same C engine either way.
    """

    name = "durable"
    _instances = itertools.count()

    def __init__(self, plans: dict[str, KindPlan]) -> None:
        self._lock = threading.Lock()
        self._facts = itertools.count()
        self._handles: dict[str, int] = {}
        # Durable rule name → the (rule index, outcome code) pairs it decides.
        self._decides: dict[str, dict[str, tuple[tuple[int, str], ...]]] = {}
        # Fact key → its durable name, for the keys some predicate of the kind reads (``plan.read_keys``,
        # the keys of its layout): a measure's open flag that no outcome tests (a field measure
        # is never open) is not converted nor asserted.
        self._fact_keys: dict[str, dict[str, str]] = {}
        self._layouts = {kind: FactLayout.of(plan) for kind, plan in plans.items()}
        # Per kind, per rule: outcome code → its position in the rule's outcomes, built once instead of
        # on every call to ``outcome_indices`` (which, for a check of one case, cost more than the lookups).
        self._outcome_index: dict[str, list[dict[str, int]]] = {
            kind: [{o.code: i for i, o in enumerate(rp.outcomes)} for rp in plan.rules]
            for kind, plan in plans.items()
        }
        instance = next(self._instances)
        for kind, plan in plans.items():
            if not plan.rules:
                continue
            self._fact_keys[kind] = {key: _key(key) for key in plan.read_keys}
            self._handles[kind] = []
            for part, group in enumerate(_split(plan)):
                self._handles[kind].append(self._ruleset(f"{kind}#{instance}.{part}", group))
            self._decides[kind] = {
                name: d for _, decides, _ in self._handles[kind] for name, d in decides.items()
            }

    @staticmethod
    def _ruleset(
        name: str, group: list[RulePlan]
    ) -> tuple[int, dict[str, tuple[tuple[int, str], ...]], frozenset[str] | None]:
        """One durable ruleset for a group of rules: its handle, what each of its rules decides, and the
        durable keys it reads (None for the whole of a kind that needed no split)."""
        # Rules of a kind often share an outcome word for word (the same effective date, the same
        # first condition): such an outcome becomes one durable rule deciding it for all of them.
        # The C engine's cost grows with its rules and with the actions it fires, so a water case
        # asserts into 32 rules instead of 55 and fires 5 actions instead of 6; every code is kept.
        # Keyed by the predicate's repr: dataclass equality would merge False with 0 and 1 with 1.0.
        shared: dict[tuple[str, str], tuple[Predicate, list[int]]] = {}
        for rule_plan in group:
            for outcome in rule_plan.outcomes:
                key = (outcome.code, repr(outcome.predicate))
                shared.setdefault(key, (outcome.predicate, []))[1].append(rule_plan.index)
        ruleset = {}
        decides = {}
        for (code, _), (predicate, indices) in shared.items():
            rule_name = f"{','.join(map(str, indices))}|{code}"
            ruleset[rule_name] = {"all": [{"m": compile_predicate(And((predicate,)))}]}
            decides[rule_name] = tuple((index, code) for index in indices)
        # Ruleset names are global inside the C engine: keep each executor's own.
        handle = durable_rules_engine.create_ruleset(name, json.dumps(ruleset, ensure_ascii=False))
        keys = frozenset(_key(k) for rp in group for o in rp.outcomes for k in keys_of(o.predicate))
        return handle, decides, keys

    def match(self, plan: KindPlan, measured: Measured) -> list[list[str]]:
        """The outcome code of every rule for every row, in the plan's rule order."""
        if not plan.rules:
            return [[] for _ in range(measured.batch.n)]
        # Each column turned into Python values by one ``tolist`` (in C), instead of boxing a NumPy scalar
        # per key and row, with the value that marks one absent: dates are day numbers (NaT: the smallest
        # int64), flags are absent when False, text and booleans when None, and numbers when NaN, which
        # no marker equals (``_plain`` finds it absent). Absent values are skipped row by row: a pass per
        # column to convert them would cost more than the ``tolist`` for a batch of one.
        names = self._fact_keys[plan.kind]
        columns = []
        for key, column in self._layouts[plan.kind].sources(measured):
            if column is None:  # a flag no row carries
                continue
            name = names[key]
            kind = column.dtype.kind
            if kind == "M":
                columns.append((name, column.view(np.int64).tolist(), NAT_DAY))
            else:
                columns.append((name, column.tolist(), False if kind == "b" else None))
        outcomes = []
        for row in range(measured.batch.n):
            fact = {}
            for key, values, absent in columns:
                value = values[row]
                # Day numbers, text and booleans go in as they are, and so do floats of the common
                # magnitudes; anything else is rewritten by ``_plain`` (which may find it absent).
                if type(value) is float:
                    if value == 0 or 1e-4 <= abs(value) < 1e16:
                        fact[key] = value
                        continue
                    if value != value:  # NaN: absent
                        continue
                elif value is absent or value == absent:
                    continue
                elif type(value) in _NATIVE:
                    fact[key] = value
                    continue
                value = _plain(value)
                if value is not None:
                    fact[key] = value
            outcomes.append(self._codes(plan, fact))
        return outcomes

    def outcome_indices(self, plan: KindPlan, measured: Measured) -> np.ndarray:
        """The matched codes as positions in each rule's outcomes (codes are unique within a rule)."""
        index = self._outcome_index[plan.kind]
        codes = self.match(plan, measured)
        rows = [[index[r][code] for r, code in enumerate(row)] for row in codes]
        return np.array(rows, np.int64).reshape(measured.batch.n, len(plan.rules))

    def _codes(self, plan: KindPlan, fact: dict[str, Any]) -> list[str]:
        """Each rule's outcome code, from the durable rules that match the fact (asserted, then retracted).

        The session stays: creating and deleting one per case cost more than the matching
        (figures in commit c759872). Our rules each match one fact on its own fields, so the facts asserted before
        (all retracted) could not take part anyway.
        """
        codes = [""] * len(plan.rules)
        groups = self._handles[plan.kind]
        with self._lock:
            fact["sid"] = _SESSION
            fact["id"] = str(next(self._facts))
            for handle, decides, keys in groups:
                part = fact if len(groups) == 1 else {k: v for k, v in fact.items() if k in keys}
                if part is not fact:
                    part["sid"], part["id"] = fact["sid"], fact["id"]
                self._assert(plan, handle, decides, orjson.dumps(part).decode(), codes)
        if "" in codes:
            raise RuntimeError(f"rule {plan.rules[codes.index('')].rule.id}: no outcome matched")
        return codes

    @staticmethod
    def _assert(
        plan: KindPlan,
        handle: int,
        decides: dict[str, tuple[tuple[int, str], ...]],
        text: str,
        codes: list[str],
    ) -> None:
        """Assert one fact into one ruleset, record the codes its fired rules decide, retract it."""
        try:
            status, state = durable_rules_engine.assert_fact(handle, text)
            started = (
                durable_rules_engine.start_action_for_state(handle, state) if status == _HANDLED else None
            )
            message = started[1] if started else None
            while message:
                # An action message is ``{"<rule name>":{"m":<fact>}}``. Our names need no JSON escaping,
                # so the name is read off the front instead of parsing the whole fact back; anything
                # else is parsed, and, as durable_rules' own ``Host`` does, its first key taken.
                name = message[2 : message.find('"', 2)]
                if name not in decides:
                    name = next(iter(orjson.loads(message)))
                # durable_rules expands an ``$or`` into alternatives and fires once per alternative that
                # holds, so one outcome may fire twice; two different outcomes of one rule would be a
                # planning error.
                for index, code in decides[name]:
                    if codes[index] and codes[index] != code:
                        raise RuntimeError(f"rule {plan.rules[index].rule.id}: two outcomes matched ({code})")
                    codes[index] = code
                message = durable_rules_engine.complete_and_start_action(handle, state)
        except BaseException:
            # Whatever of the case is left (the fact, actions not taken) goes with the session; a
            # refused fact leaves none behind, so don't let the clean-up hide the real error.
            with contextlib.suppress(durable_rules_engine.error):
                durable_rules_engine.delete_state(handle, _SESSION)
            raise
        durable_rules_engine.retract_fact(handle, text)
