"""Case builders for the tests: each returns a case that passes (or is not applicable to) every rule of
its kind, so a test changes only the fields it is about. Expected values in the tests are worked out by
hand from SPEC.md / RULES.md and the State Council holiday notices, never read back from the engine.
"""

from __future__ import annotations

from typing import Any

from engine import Engine

AS_OF = "2026-11-24"  # a Tuesday; open cases are judged as of this day unless a test says otherwise


def _build(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    case = {**base, **overrides}
    # ``None`` removes a field, so a test can make a case open or drop an optional field.
    return {k: v for k, v in case.items() if v is not None}


def water(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "W-1",
        "kind": "water_connection",
        "customer_type": "non_residential",
        "applied_at": "2026-03-02T09:00:00+08:00",  # Monday
        "connected_at": "2026-03-03T10:00:00+08:00",  # 1 working day
        "external_works_m": 0,
        "steps": 2,
        "materials": 1,
    }
    return _build(base, overrides)


def gas(**overrides: Any) -> dict[str, Any]:
    return water(**{"case_id": "G-1", "kind": "gas_connection", **overrides})


def power(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "P-1",
        "kind": "power_connection",
        "voltage": "low",
        "applied_at": "2026-03-02T09:00:00+08:00",
        "connected_at": "2026-03-03T10:00:00+08:00",
        "external_works_m": 0,
        "steps": 2,
    }
    return _build(base, overrides)


def procurement(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "C-1",
        "kind": "procurement_contract",
        "procurement_method": "tender",
        "category": "goods",
        "contract_amount": "1000000.00",
        "bid_deposit": 0,
        "performance_bond": 0,
        "performance_period_days": 30,
        "advance_payment": 0,
        "contract_effective_at": "2026-03-02",
        "electronic": True,
        "documents_fee": 0,
    }
    return _build(base, overrides)


def deregistration(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "D-1",
        "kind": "deregistration",
        "procedure": "simplified",
        "entity_type": "company",
        "commitment": False,
        "notice_start": "2026-03-01",
        "applied_at": "2026-03-23",  # 22 calendar days after the notice started
    }
    return _build(base, overrides)


def startup(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "S-1",
        "kind": "company_startup",
        "applied_at": "2026-03-02T09:00:00+08:00",
        "completed_at": "2026-03-03T09:00:00+08:00",
        "steps": 1,
        "fees": 0,
    }
    return _build(base, overrides)


def construction(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "K-1",
        "kind": "construction_project",
        "project_type": "general_enterprise_investment",
        "use": "industrial",
        "floor_area_m2": 3000,
        "civil_air_defense_fee": 0,
        "code_assigned_at": "2026-01-05",
        "completion_accepted_at": "2026-03-20",  # 74 calendar days
    }
    return _build(base, overrides)


def property_registration(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "R-1",
        "kind": "property_registration",
        "registration_type": "non_residential_transfer",
        "object_unchanged": True,
        "applied_at": "2026-03-02T09:00:00+08:00",
        "completed_at": "2026-03-02T16:00:00+08:00",
        "steps": 1,
    }
    return _build(base, overrides)


def loan(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "L-1",
        "kind": "loan",
        "applied_at": "2026-03-02",
        "decided_at": "2026-03-04",
        "steps": 2,
        "materials": 3,
    }
    return _build(base, overrides)


def ccc(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "X-1",
        "kind": "ccc_exemption",
        "applied_at": "2026-03-02T09:00:00+08:00",
        "concluded_at": "2026-03-03T09:00:00+08:00",
        "urgent": False,
    }
    return _build(base, overrides)


def customs(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "U-1",
        "kind": "customs_declaration",
        "direction": "import",
        "advance_declared": True,
        "declared_at": "2026-03-02",
    }
    return _build(base, overrides)


def bankruptcy(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "B-1",
        "kind": "bankruptcy_case",
        "procedure": "simplified",
        "accepted_at": "2026-01-05",
        "concluded_at": "2026-05-06",
    }
    return _build(base, overrides)


def review(**overrides: Any) -> dict[str, Any]:
    base = {
        "case_id": "V-1",
        "kind": "service_review",
        "rating": "negative",
        "reviewed_at": "2026-03-02",
        "revisited": True,
        "rectified": True,
    }
    return _build(base, overrides)


def check(engine: Engine, case: dict[str, Any], as_of: str = AS_OF, lang: str = "zh"):
    return engine.check(case, as_of=as_of, lang=lang)


def result(verdict, rule: str):
    matches = [r for r in verdict.results if r.rule == rule]
    assert len(matches) == 1, f"{rule} appears {len(matches)} times in {[r.rule for r in verdict.results]}"
    return matches[0]


def status(engine: Engine, case: dict[str, Any], rule: str, as_of: str = AS_OF) -> str:
    return result(check(engine, case, as_of), rule).status


# Per-case rules of every kind, as catalogued in RULES.md ("Per-case rules"); loan and customs have only
# aggregate rules, judged by ``scan``. Written out by hand so that the shipped pack is checked against it.
PER_CASE_RULES: dict[str, set[str]] = {
    "water_connection": {
        "water.steps",
        "water.materials",
        "water.no_external.2wd",
        "water.within150.7wd",
        "water.within150.filing",
        "water.over150.approval_10wd",
    },
    "gas_connection": {
        "gas.steps",
        "gas.materials",
        "gas.no_external.2wd",
        "gas.within150.15wd",
        "gas.within150.filing",
        "gas.over150.approval_10wd",
        "gas.internal_works.10d",
    },
    "power_connection": {
        "power.low.steps",
        "power.high.steps",
        "power.high630.steps",
        "power.low.no_external.3wd",
        "power.high.no_external.15wd",
        "power.within160.filing",
        "power.over160.approval_5wd",
        "power.le160kw.low_voltage",
    },
    "procurement_contract": {
        "procurement.no_bid_deposit",
        "procurement.bond_cap_5pct",
        "procurement.free_documents",
        "procurement.advance_30pct",
        "procurement.advance_within_15d",
    },
    "deregistration": {"deregistration.notice_20d"},
    "company_startup": {"startup.one_step", "startup.one_day", "startup.zero_fee"},
    "construction_project": {"construction.80_days", "construction.small_no_air_defense_fee"},
    "property_registration": {"property.same_day", "property.one_step"},
    "loan": set(),
    "ccc_exemption": {"ccc.2wd", "ccc.urgent_same_day"},
    "customs_declaration": set(),
    "bankruptcy_case": {"bankruptcy.6_months"},
    "service_review": {"review.negative_revisited", "review.negative_rectified"},
}
