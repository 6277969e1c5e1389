"""Per-rule boundaries on values (lengths, amounts, ratios, capacities), exemptions, roll-up and wording.

Boundaries follow 民法典 第1259条: 以上/以下/以内/内 include the number, 超过/不满 exclude it.
"""

from __future__ import annotations

import re

import pytest

from tests.builders import (
    PER_CASE_RULES,
    bankruptcy,
    ccc,
    check,
    construction,
    customs,
    deregistration,
    gas,
    loan,
    power,
    procurement,
    property_registration,
    result,
    review,
    startup,
    status,
    water,
)

NA = "not_applicable"
CJK = re.compile(r"[\u4e00-\u9fff]")

# ---------------------------------------------------------------------------------------------------------
# External works: 0 / 0.5 m, 150 / 151 m (water, gas), 160 / 161 m (power)
# ---------------------------------------------------------------------------------------------------------

# An approval that itself is within every approval limit (3 working days: Tue, Wed, Thu).
FILING = {"mode": "commitment_filing", "submitted_at": "2026-03-02", "approved_at": "2026-03-05"}
APPROVAL = {"mode": "administrative_approval", "submitted_at": "2026-03-02", "approved_at": "2026-03-05"}


@pytest.mark.parametrize(
    ("build", "area", "within_wd"),
    [(water, "water", "water.within150.7wd"), (gas, "gas", "gas.within150.15wd")],
)
@pytest.mark.parametrize(
    ("metres", "no_external", "within", "over"),
    [
        (0, "pass", NA, NA),  # 0 = no external works
        (0.5, NA, "pass", NA),  # any external works at all
        (150, NA, "pass", NA),  # "150米内" includes 150
        (150.5, NA, NA, "pass"),  # "超过150米"
        (151, NA, NA, "pass"),
    ],
)
def test_water_gas_external_works_length(engine, build, area, within_wd, metres, no_external, within, over):
    case = build(external_works_m=metres, approval=FILING if metres <= 150 else APPROVAL)
    v = check(engine, case)
    assert result(v, f"{area}.no_external.2wd").status == no_external
    assert result(v, within_wd).status == within
    assert result(v, f"{area}.within150.filing").status == within
    assert result(v, f"{area}.over150.approval_10wd").status == over


@pytest.mark.parametrize("build", [water, gas])
@pytest.mark.parametrize(
    ("approval", "expected"),
    [(None, "pass"), (FILING, "pass"), (APPROVAL, "fail")],  # an absent approval counts as filing
)
def test_within150_filing_mode(engine, build, approval, expected):
    case = build(external_works_m=100, approval=approval)
    rule = f"{'water' if build is water else 'gas'}.within150.filing"
    assert status(engine, case, rule) == expected


@pytest.mark.parametrize("build", [water, gas])
def test_special_project_is_outside_within150_rules(engine, build):
    area = "water" if build is water else "gas"
    v = check(engine, build(external_works_m=100, special_project=True, approval=APPROVAL))
    assert result(v, f"{area}.within150.filing").status == NA
    assert result(v, f"{area}.over150.approval_10wd").status == NA


@pytest.mark.parametrize("build", [water, gas])
def test_residential_customers_are_out_of_scope(engine, build):
    v = check(engine, build(customer_type="residential", steps=5, materials=4))
    assert {r.status for r in v.results} == {NA}
    assert v.verdict == "pass"


@pytest.mark.parametrize(
    ("metres", "no_external", "filing", "approval"),
    [
        (0, "pass", NA, NA),
        (0.5, NA, "pass", NA),
        (160, NA, "pass", NA),  # "160米内" includes 160
        (160.5, NA, NA, "pass"),
        (161, NA, NA, "pass"),  # "超过160米"
    ],
)
def test_power_external_works_length(engine, metres, no_external, filing, approval):
    case = power(external_works_m=metres, approval=FILING if metres <= 160 else APPROVAL)
    v = check(engine, case)
    assert result(v, "power.low.no_external.3wd").status == no_external
    assert result(v, "power.within160.filing").status == filing
    assert result(v, "power.over160.approval_5wd").status == approval


def test_power_within160_administrative_approval_fails(engine):
    assert status(engine, power(external_works_m=80, approval=APPROVAL), "power.within160.filing") == "fail"


# ---------------------------------------------------------------------------------------------------------
# Power capacities: 160 / 161 kW, 630 / 631 kVA
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "voltage", "expected"),
    [
        (160, "low", "pass"),
        (160, "high", "fail"),  # "160千瓦及以下" includes 160: must go low voltage
        (160.5, "high", NA),
        (161, "high", NA),
        (None, "high", NA),  # field absent: condition false
    ],
)
def test_power_le160kw_low_voltage(engine, kw, voltage, expected):
    case = power(capacity_kw=kw, voltage=voltage, steps=2)
    r = result(check(engine, case), "power.le160kw.low_voltage")
    assert r.status == expected
    if kw is None:
        assert "capacity_kw" in r.reason


@pytest.mark.parametrize(
    ("kva", "steps", "expected"),
    [(630, 2, "pass"), (630, 3, "fail"), (630.5, 3, NA), (631, 3, NA)],  # "不大于630千伏安" is ≤ 630
)
def test_power_high630_steps(engine, kva, steps, expected):
    case = power(voltage="high", capacity_kva=kva, steps=steps)
    assert status(engine, case, "power.high630.steps") == expected


@pytest.mark.parametrize(
    ("voltage", "steps", "low", "high"),
    [("low", 2, "pass", NA), ("low", 3, "fail", NA), ("high", 3, NA, "pass"), ("high", 4, NA, "fail")],
)
def test_power_steps(engine, voltage, steps, low, high):
    v = check(engine, power(voltage=voltage, steps=steps))
    assert result(v, "power.low.steps").status == low
    assert result(v, "power.high.steps").status == high


# ---------------------------------------------------------------------------------------------------------
# Steps and materials
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "rule", "field", "ok", "bad"),
    [
        (water, "water.steps", "steps", 2, 3),
        (water, "water.materials", "materials", 1, 2),
        (gas, "gas.steps", "steps", 2, 3),
        (gas, "gas.materials", "materials", 1, 2),
        (startup, "startup.one_step", "steps", 1, 2),
        (property_registration, "property.one_step", "steps", 1, 2),
    ],
)
def test_count_limits(engine, build, rule, field, ok, bad):
    assert status(engine, build(**{field: ok}), rule) == "pass"
    r = result(check(engine, build(**{field: bad})), rule)
    assert (r.status, r.value, r.limit) == ("fail", bad, ok)


# ---------------------------------------------------------------------------------------------------------
# Procurement: deposits, bond cap 5 %, free documents, advance ≥ 30 %
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "category", "deposit", "expected"),
    [
        ("tender", "goods", 0, "pass"),
        ("tender", "goods", 100, "fail"),
        ("tender", "services", "0.01", "fail"),
        ("tender", "works", 100, NA),  # works tenders may still take a deposit
        ("non_tender", "works", 100, "fail"),
    ],
)
def test_procurement_no_bid_deposit(engine, method, category, deposit, expected):
    case = procurement(procurement_method=method, category=category, bid_deposit=deposit)
    assert status(engine, case, "procurement.no_bid_deposit") == expected


@pytest.mark.parametrize(
    ("bond", "expected"),
    [
        (0, NA),  # no bond charged
        ("0.01", "pass"),
        ("50000.00", "pass"),  # exactly 5 % of 1,000,000
        (50000, "pass"),
        ("50000.01", "fail"),  # 5 % + 1 fen
        (50000.01, "fail"),
    ],
)
def test_procurement_bond_cap_5pct(engine, bond, expected):
    assert status(engine, procurement(performance_bond=bond), "procurement.bond_cap_5pct") == expected


def test_procurement_bond_cap_exact_on_awkward_amount(engine):
    # 5 % of 333,333.33 is 16,666.6665: 16,666.66 is within it, 16,666.67 is not.
    case = procurement(contract_amount="333333.33")
    assert status(engine, {**case, "performance_bond": "16666.66"}, "procurement.bond_cap_5pct") == "pass"
    assert status(engine, {**case, "performance_bond": "16666.67"}, "procurement.bond_cap_5pct") == "fail"


@pytest.mark.parametrize(("fee", "expected"), [(0, "pass"), ("0.01", "fail"), (200, "fail")])
def test_procurement_free_documents(engine, fee, expected):
    assert status(engine, procurement(documents_fee=fee), "procurement.free_documents") == expected


@pytest.mark.parametrize(
    ("period", "advance", "expected"),
    [
        (30, 0, NA),  # "超过30日" excludes 30
        (31, "300000.00", "pass"),  # exactly 30 %
        (31, 300000, "pass"),
        (31, "299999.99", "fail"),  # 30 % − 1 fen
        (31, 0, "fail"),
        (31, "0.01", "fail"),  # a tiny ratio (1e-8) must still be judged
        (365, "1000000.00", "pass"),
    ],
)
def test_procurement_advance_30pct(engine, period, advance, expected):
    # The advance is paid on the day the contract takes effect, so advance_within_15d never interferes.
    case = procurement(performance_period_days=period, advance_payment=advance, advance_paid_at="2026-03-02")
    assert status(engine, case, "procurement.advance_30pct") == expected


def test_procurement_advance_within_15d_needs_an_advance(engine):
    assert status(engine, procurement(), "procurement.advance_within_15d") == NA


# ---------------------------------------------------------------------------------------------------------
# Gas internal works (max flow ≤ 40 m³/h), construction (≤ 5000 m²)
# ---------------------------------------------------------------------------------------------------------

INTERNAL_10D = {"started_at": "2026-03-02", "accepted_at": "2026-03-12"}  # 10 calendar days
INTERNAL_11D = {"started_at": "2026-03-02", "accepted_at": "2026-03-13"}  # 11 calendar days


@pytest.mark.parametrize(
    ("flow", "works", "expected"),
    [
        (40, INTERNAL_10D, "pass"),  # "不大于40" includes 40
        (40, INTERNAL_11D, "fail"),
        (40.5, INTERNAL_11D, NA),
        (41, INTERNAL_11D, NA),
        (40, None, NA),  # internal works not given
        (None, INTERNAL_11D, NA),  # flow not given
    ],
)
def test_gas_internal_works_10d(engine, flow, works, expected):
    case = gas(max_flow_m3h=flow, internal_works=works)
    r = result(check(engine, case), "gas.internal_works.10d")
    assert r.status == expected
    if expected != NA:
        assert r.value == (10 if works is INTERNAL_10D else 11)


@pytest.mark.parametrize(
    ("use", "area", "fee", "expected"),
    [
        ("industrial", 5000, 0, "pass"),
        ("industrial", 5000, 10000, "fail"),  # "5000平方米以下" includes 5000
        ("warehouse", 5000, "0.01", "fail"),
        ("industrial", 5000.5, 10000, NA),
        ("warehouse", 5001, 10000, NA),
        ("other", 1000, 10000, NA),
        ("industrial", None, 10000, NA),
    ],
)
def test_construction_small_no_air_defense_fee(engine, use, area, fee, expected):
    case = construction(use=use, floor_area_m2=area, civil_air_defense_fee=fee)
    assert status(engine, case, "construction.small_no_air_defense_fee") == expected


# ---------------------------------------------------------------------------------------------------------
# Deregistration: 20-day notice and 承诺即办
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notice_start", "applied_at", "value", "expected"),
    [
        ("2026-03-01", "2026-03-21", 20, "pass"),
        ("2026-03-01", "2026-03-20", 19, "fail"),
        ("2026-03-01T08:00:00+08:00", "2026-03-21T08:00:00+08:00", 20, "pass"),
        # 2026-02-28T17:30Z is 03-01 01:30 in Shanghai: 19 calendar days to 03-20.
        ("2026-02-28T17:30:00Z", "2026-03-20", 19, "fail"),
        (None, "2026-03-23", None, "fail"),  # no notice published at all
    ],
)
def test_deregistration_notice_20d(engine, notice_start, applied_at, value, expected):
    r = result(
        check(engine, deregistration(notice_start=notice_start, applied_at=applied_at)),
        "deregistration.notice_20d",
    )
    assert r.status == expected
    if value is not None:
        assert r.value == value


@pytest.mark.parametrize(
    "entity", ["non_company_legal_person", "sole_proprietorship", "farmer_cooperative", "branch"]
)
def test_deregistration_commitment_entities_skip_notice(engine, entity):
    v = check(engine, deregistration(entity_type=entity, commitment=True, notice_start=None))
    r = result(v, "deregistration.notice_20d")
    assert r.status == NA
    assert "承诺即办" in r.reason
    # without the commitment the notice period applies (and a missing notice fails)
    v = check(engine, deregistration(entity_type=entity, commitment=False, notice_start=None))
    assert result(v, "deregistration.notice_20d").status == "fail"


@pytest.mark.parametrize("entity", ["company", "individual_business"])
def test_deregistration_commitment_does_not_help_other_entities(engine, entity):
    v = check(engine, deregistration(entity_type=entity, commitment=True, notice_start=None))
    assert result(v, "deregistration.notice_20d").status == "fail"


def test_deregistration_general_procedure_not_applicable(engine):
    case = deregistration(procedure="general", notice_start=None)
    assert status(engine, case, "deregistration.notice_20d") == NA


# ---------------------------------------------------------------------------------------------------------
# Fees, booleans
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fees", "expected"), [(0, "pass"), ("0.01", "fail")])
def test_startup_zero_fee(engine, fees, expected):
    assert status(engine, startup(fees=fees), "startup.zero_fee") == expected


@pytest.mark.parametrize(
    ("rating", "revisited", "rectified", "rv", "rr"),
    [
        ("negative", True, True, "pass", "pass"),
        ("negative", False, True, "fail", "pass"),
        ("negative", True, False, "pass", "fail"),
        ("neutral", False, False, NA, NA),
        ("positive", False, False, NA, NA),
    ],
)
def test_review_negative(engine, rating, revisited, rectified, rv, rr):
    v = check(engine, review(rating=rating, revisited=revisited, rectified=rectified))
    assert result(v, "review.negative_revisited").status == rv
    assert result(v, "review.negative_rectified").status == rr


@pytest.mark.parametrize(
    ("registration_type", "unchanged", "expected"),
    [
        ("non_residential_transfer", True, "fail"),
        ("non_residential_transfer", False, NA),
        ("other", True, NA),
    ],
)
def test_property_scope(engine, registration_type, unchanged, expected):
    case = property_registration(
        registration_type=registration_type, object_unchanged=unchanged, completed_at="2026-03-03", steps=2
    )
    v = check(engine, case)
    assert result(v, "property.same_day").status == expected
    assert result(v, "property.one_step").status == expected


# ---------------------------------------------------------------------------------------------------------
# Exemptions
# ---------------------------------------------------------------------------------------------------------

REASON = "经财政部门批准的特殊情形"


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        (procurement(performance_period_days=90, advance_payment=0), "procurement.advance_30pct"),
        (power(voltage="high", capacity_kw=100, steps=3), "power.le160kw.low_voltage"),
        (bankruptcy(accepted_at="2026-01-05", concluded_at="2026-09-30"), "bankruptcy.6_months"),
        (
            procurement(
                advance_payment="300000", contract_effective_at="2026-03-02", advance_paid_at="2026-05-04"
            ),
            "procurement.advance_within_15d",
        ),
    ],
)
def test_exemption_on_exemptible_rule(engine, case, rule):
    assert status(engine, case, rule) == "fail"  # the case fails without the exemption
    v = check(engine, {**case, "exemptions": [{"rule": rule, "reason": REASON}]})
    r = result(v, rule)
    assert r.status == "exempt"
    assert REASON in r.reason
    assert v.verdict == "pass"


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        (water(steps=3), "water.steps"),
        (procurement(bid_deposit=1000), "procurement.no_bid_deposit"),
        (procurement(performance_bond="60000"), "procurement.bond_cap_5pct"),
        (deregistration(notice_start=None), "deregistration.notice_20d"),
        (water(connected_at="2026-03-05"), "water.no_external.2wd"),
    ],
)
def test_exemption_on_non_exemptible_rule_is_ignored(engine, case, rule):
    v = check(engine, {**case, "exemptions": [{"rule": rule, "reason": REASON}]})
    assert result(v, rule).status == "fail"
    assert v.verdict == "fail"


def test_exemption_for_another_rule_does_not_apply(engine):
    case = procurement(performance_period_days=90, advance_payment=0)
    case["exemptions"] = [{"rule": "power.le160kw.low_voltage", "reason": REASON}]
    assert status(engine, case, "procurement.advance_30pct") == "fail"


# ---------------------------------------------------------------------------------------------------------
# Case verdict roll-up
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "verdict"),
    [
        (water(), "pass"),
        (water(steps=3), "fail"),  # mandatory fail
        (startup(fees=100), "warn"),  # only advisory startup.zero_fee fails
        (startup(fees=100, steps=2), "fail"),  # mandatory beats advisory
        (construction(completion_accepted_at="2026-04-05"), "warn"),  # 90 days > 80, advisory
        (construction(completion_accepted_at="2026-03-26"), "pass"),  # exactly 80 days
        (power(voltage="high", capacity_kva=500, steps=3), "warn"),  # only power.high630.steps fails
        (water(connected_at=None, applied_at="2026-11-23"), "pending"),
        (startup(fees=100, completed_at=None, applied_at="2026-11-24"), "warn"),  # warn beats pending
        (water(steps=3, connected_at=None, applied_at="2026-11-23"), "fail"),  # fail beats pending
        (loan(), "not_checked"),  # only aggregate rules: nothing per case is checked
        (customs(), "not_checked"),
    ],
)
def test_case_verdict_roll_up(engine, case, verdict):
    assert check(engine, case).verdict == verdict


def test_advisory_rules_are_advisory(engine):
    for case, rule in [
        (startup(fees=100), "startup.zero_fee"),
        (construction(completion_accepted_at="2026-04-05"), "construction.80_days"),
        (power(voltage="high", capacity_kva=500, steps=3), "power.high630.steps"),
    ]:
        r = result(check(engine, case), rule)
        assert (r.status, r.severity) == ("fail", "advisory")


# ---------------------------------------------------------------------------------------------------------
# Completeness, language, sources
# ---------------------------------------------------------------------------------------------------------


SAMPLES = [
    water(),
    gas(),
    power(),
    procurement(),
    deregistration(),
    startup(),
    construction(),
    property_registration(),
    loan(),
    ccc(),
    customs(),
    bankruptcy(),
    review(),
]

# Task number of every per-case rule (RULES.md "source" column).
TASKS = {
    "water.steps": 29, "water.materials": 29, "water.no_external.2wd": 29, "water.within150.7wd": 30,
    "water.within150.filing": 31, "water.over150.approval_10wd": 31,
    "gas.steps": 29, "gas.materials": 29, "gas.no_external.2wd": 29, "gas.within150.15wd": 30,
    "gas.within150.filing": 31, "gas.over150.approval_10wd": 31, "gas.internal_works.10d": 32,
    "power.low.steps": 25, "power.high.steps": 25, "power.high630.steps": 25,
    "power.low.no_external.3wd": 26, "power.high.no_external.15wd": 26, "power.within160.filing": 27,
    "power.over160.approval_5wd": 27, "power.le160kw.low_voltage": 28,
    "procurement.no_bid_deposit": 16, "procurement.bond_cap_5pct": 16, "procurement.free_documents": 17,
    "procurement.advance_30pct": 18, "procurement.advance_within_15d": 18,
    "deregistration.notice_20d": 51,
    "startup.one_step": 20, "startup.one_day": 20, "startup.zero_fee": 23,
    "construction.80_days": 33, "construction.small_no_air_defense_fee": 34,
    "property.same_day": 43, "property.one_step": 43,
    "ccc.2wd": 55, "ccc.urgent_same_day": 55,
    "bankruptcy.6_months": 85,
    "review.negative_revisited": 12, "review.negative_rectified": 12,
}  # fmt: skip


def test_catalogue_is_complete():
    assert set(TASKS) == set().union(*PER_CASE_RULES.values())


@pytest.mark.parametrize("case", SAMPLES, ids=lambda c: c["kind"])
def test_every_per_case_rule_appears_once(engine, case):
    v = check(engine, case)
    rules = [r.rule for r in v.results]
    assert len(rules) == len(set(rules))
    assert set(rules) == PER_CASE_RULES[case["kind"]]
    assert v.kind == case["kind"]
    assert str(v.as_of) == "2026-11-24"


@pytest.mark.parametrize("case", SAMPLES, ids=lambda c: c["kind"])
def test_sources_name_the_document_and_task(engine, case):
    for r in check(engine, case).results:
        assert "甬政办发〔2020〕36号" in r.source
        assert f"({TASKS[r.rule]})" in r.source, (r.rule, r.source)


def test_paragraph_six_is_cited_for_pause_rules(engine):
    # water.no_external.2wd also rests on §6 of the main text (pauses not counted)
    assert "第6条" in result(check(engine, water()), "water.no_external.2wd").source


@pytest.mark.parametrize(
    "case",
    [
        *SAMPLES,
        water(steps=3),
        water(connected_at=None, applied_at="2026-11-23"),
        deregistration(entity_type="branch", commitment=True),
        procurement(
            performance_period_days=90, exemptions=[{"rule": "procurement.advance_30pct", "reason": "x"}]
        ),
    ],
    ids=lambda c: c["kind"],
)
def test_messages_chinese_by_default_english_on_request(engine, case):
    zh = check(engine, case)
    en = check(engine, case, lang="en")
    assert [r.status for r in zh.results] == [r.status for r in en.results]
    for r_zh, r_en in zip(zh.results, en.results, strict=True):
        assert CJK.search(r_zh.message), r_zh.message
        assert not CJK.search(r_en.message), r_en.message
        if r_en.reason is not None:
            assert not CJK.search(r_en.reason), r_en.reason


@pytest.mark.parametrize("case", [ccc(), ccc(concluded_at="2026-03-05")], ids=["pass", "fail"])
def test_messages_say_pass_or_fail(engine, case):
    zh = result(check(engine, case), "ccc.2wd")
    en = result(check(engine, case, lang="en"), "ccc.2wd")
    if zh.status == "pass":
        assert "符合" in zh.message and "不符合" not in zh.message
    else:
        assert "不符合" in zh.message
        assert zh.status == "fail"
    assert str(zh.value) in en.message
