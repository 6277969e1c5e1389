"""Per-rule boundaries on time: working days, calendar days, months, pauses, open cases, time zones.

Elapsed working days = working days d with date(start) < d ≤ date(end) (the start day is not counted);
the deadline of an N-working-day limit is the N-th working day after date(start). Every expected number
below is counted by hand on the State Council calendar (weekends off, statutory holidays off, 调休 on).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.calendar import load_calendar
from tests.builders import (
    bankruptcy,
    ccc,
    check,
    construction,
    deregistration,
    gas,
    power,
    procurement,
    property_registration,
    result,
    startup,
    status,
    water,
)

NA = "not_applicable"
D = date.fromisoformat

# ---------------------------------------------------------------------------------------------------------
# Working-day limits: N passes, N + 1 fails (March 2026 has no holidays; 2026-03-02 is a Monday)
# ---------------------------------------------------------------------------------------------------------

# end date giving exactly n working days after Monday 2026-03-02
WD_AFTER_0302 = {
    0: "2026-03-02", 1: "2026-03-03", 2: "2026-03-04", 3: "2026-03-05", 4: "2026-03-06",
    5: "2026-03-09", 6: "2026-03-10", 7: "2026-03-11", 8: "2026-03-12", 10: "2026-03-16",
    11: "2026-03-17", 15: "2026-03-23", 16: "2026-03-24",
}  # fmt: skip

APPROVAL_BASE = {"mode": "administrative_approval", "submitted_at": "2026-03-02T10:00:00+08:00"}


def _connected(build, **kw):
    return lambda n: build(connected_at=WD_AFTER_0302[n], **kw)


def _approved(build, **kw):
    return lambda n: build(approval={**APPROVAL_BASE, "approved_at": WD_AFTER_0302[n]}, **kw)


@pytest.mark.parametrize(
    ("rule", "make", "limit"),
    [
        ("water.no_external.2wd", _connected(water), 2),
        ("gas.no_external.2wd", _connected(gas), 2),
        ("water.within150.7wd", _connected(water, external_works_m=100), 7),
        ("gas.within150.15wd", _connected(gas, external_works_m=100), 15),
        ("water.over150.approval_10wd", _approved(water, external_works_m=200), 10),
        ("gas.over150.approval_10wd", _approved(gas, external_works_m=200), 10),
        ("power.low.no_external.3wd", _connected(power), 3),
        ("power.high.no_external.15wd", _connected(power, voltage="high", steps=3), 15),
        ("power.over160.approval_5wd", _approved(power, external_works_m=200), 5),
        ("startup.one_day", lambda n: startup(completed_at=WD_AFTER_0302[n]), 1),
        ("ccc.2wd", lambda n: ccc(concluded_at=WD_AFTER_0302[n]), 2),
    ],
)
def test_working_day_limit_boundary(engine, rule, make, limit):
    ok = result(check(engine, make(limit)), rule)
    assert (ok.status, ok.value, ok.limit, ok.unit) == ("pass", limit, limit, "working_days")
    assert ok.deadline == D(WD_AFTER_0302[limit])
    bad = result(check(engine, make(limit + 1)), rule)
    assert (bad.status, bad.value) == ("fail", limit + 1)


def test_same_day_completion_is_zero_working_days(engine):
    r = result(check(engine, water(connected_at="2026-03-02T17:00:00+08:00")), "water.no_external.2wd")
    assert (r.status, r.value) == ("pass", 0)


@pytest.mark.parametrize(
    ("applied", "done", "value", "expected"),
    [
        ("2026-03-06", "2026-03-09", 1, "pass"),  # Fri → Mon: the weekend does not count
        ("2026-03-06", "2026-03-10", 2, "pass"),
        ("2026-03-06", "2026-03-11", 3, "fail"),
        ("2026-03-07", "2026-03-10", 2, "pass"),  # applied on a Saturday
        ("2026-03-07", "2026-03-11", 3, "fail"),
    ],
)
def test_weekends_are_not_working_days(engine, applied, done, value, expected):
    r = result(check(engine, ccc(applied_at=applied, concluded_at=done)), "ccc.2wd")
    assert (r.status, r.value) == (expected, value)


# ---------------------------------------------------------------------------------------------------------
# Calendar-day and same-day rules
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applied", "done", "value", "expected"),
    [
        ("2026-03-02T09:00:00+08:00", "2026-03-02T23:59:00+08:00", 0, "pass"),
        ("2026-03-02T09:00:00+08:00", "2026-03-03T00:01:00+08:00", 1, "fail"),
        ("2026-03-02T09:00:00+08:00", "2026-03-02T15:59:00Z", 0, "pass"),  # 23:59 local
        ("2026-03-02T09:00:00+08:00", "2026-03-02T16:01:00Z", 1, "fail"),  # 00:01 next day local
    ],
)
def test_same_day_rules(engine, applied, done, value, expected):
    r = result(
        check(engine, property_registration(applied_at=applied, completed_at=done)), "property.same_day"
    )
    assert (r.status, r.value) == (expected, value)
    r = result(check(engine, ccc(urgent=True, applied_at=applied, concluded_at=done)), "ccc.urgent_same_day")
    assert (r.status, r.value) == (expected, value)


def test_ccc_urgent_only_when_urgent(engine):
    assert status(engine, ccc(urgent=False, concluded_at="2026-03-03"), "ccc.urgent_same_day") == NA


@pytest.mark.parametrize(
    ("accepted", "expected", "value"),
    [("2026-03-26", "pass", 80), ("2026-03-27", "fail", 81)],  # from 2026-01-05
)
def test_construction_80_days(engine, accepted, expected, value):
    r = result(check(engine, construction(completion_accepted_at=accepted)), "construction.80_days")
    assert (r.status, r.value, r.severity) == (expected, value, "advisory")


def test_construction_80_days_only_for_general_enterprise_investment(engine):
    case = construction(project_type="other", completion_accepted_at="2026-12-01")
    assert status(engine, case, "construction.80_days") == NA


# ---------------------------------------------------------------------------------------------------------
# Effective dates: the day before effective_from → not_applicable, on the day → judged
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "make", "effective"),
    [
        ("water.no_external.2wd", lambda d: water(applied_at=d, connected_at=d), "2020-07-01"),
        ("gas.steps", lambda d: gas(applied_at=d, connected_at=d), "2020-07-01"),
        (
            "gas.internal_works.10d",
            lambda d: gas(
                applied_at=d,
                connected_at=d,
                max_flow_m3h=10,
                internal_works={"started_at": d, "accepted_at": d},
            ),
            "2020-09-01",
        ),
        ("power.low.steps", lambda d: power(applied_at=d, connected_at=d), "2020-07-01"),
        ("procurement.free_documents", lambda d: procurement(contract_effective_at=d), "2020-07-01"),
        (
            "deregistration.notice_20d",
            lambda d: deregistration(applied_at=d, notice_start="2020-08-01"),
            "2020-10-01",
        ),
        ("startup.one_day", lambda d: startup(applied_at=d, completed_at=d), "2021-01-01"),
        (
            "construction.small_no_air_defense_fee",
            lambda d: construction(code_assigned_at=d, completion_accepted_at=d),
            "2020-10-01",
        ),
        (
            "construction.80_days",
            lambda d: construction(code_assigned_at=d, completion_accepted_at=d),
            "2020-07-01",
        ),
        ("property.same_day", lambda d: property_registration(applied_at=d, completed_at=d), "2020-11-01"),
        ("ccc.2wd", lambda d: ccc(applied_at=d, concluded_at=d), "2021-01-01"),
        ("bankruptcy.6_months", lambda d: bankruptcy(accepted_at=d, concluded_at=d), "2021-01-01"),
    ],
)
def test_effective_from(engine, rule, make, effective):
    day_before = (D(effective) - timedelta(days=1)).isoformat()
    r = result(check(engine, make(day_before)), rule)
    assert r.status == NA
    assert r.reason
    assert result(check(engine, make(effective)), rule).status == "pass"


def test_effective_from_uses_local_date(engine):
    # 2020-06-30T16:30Z is 2020-07-01 00:30 in Shanghai: on the effective day.
    case = water(applied_at="2020-06-30T16:30:00Z", connected_at="2020-07-01T12:00:00+08:00")
    assert status(engine, case, "water.no_external.2wd") == "pass"
    case = water(applied_at="2020-06-30T15:30:00Z", connected_at="2020-07-01T12:00:00+08:00")  # 23:30 local
    assert status(engine, case, "water.no_external.2wd") == NA


# ---------------------------------------------------------------------------------------------------------
# Open cases, judged as of 2026-11-24 (Tuesday)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "make", "expected", "value", "deadline", "remaining"),
    [
        # applied the same day: 0 elapsed, deadline Thu 11-26, 2 left
        ("water.no_external.2wd", lambda: water(applied_at="2026-11-24", connected_at=None),
         "pending", 0, "2026-11-26", 2),
        ("water.no_external.2wd", lambda: water(applied_at="2026-11-23", connected_at=None),
         "pending", 1, "2026-11-25", 1),
        # Fri 11-20: Mon and Tue elapsed = 2 = the limit, not over it yet
        ("water.no_external.2wd", lambda: water(applied_at="2026-11-20", connected_at=None),
         "pending", 2, "2026-11-24", 0),
        # Thu 11-19: Fri, Mon, Tue = 3 > 2
        ("water.no_external.2wd", lambda: water(applied_at="2026-11-19", connected_at=None),
         "fail", 3, "2026-11-23", None),
        # Mon 11-16: 6 of 7 elapsed, deadline Wed 11-25
        ("water.within150.7wd", lambda: water(applied_at="2026-11-16", connected_at=None, external_works_m=50),
         "pending", 6, "2026-11-25", 1),
        ("power.low.no_external.3wd", lambda: power(applied_at="2026-11-19", connected_at=None),
         "pending", 3, "2026-11-24", 0),
        ("power.low.no_external.3wd", lambda: power(applied_at="2026-11-18", connected_at=None),
         "fail", 4, "2026-11-23", None),
        ("startup.one_day", lambda: startup(applied_at="2026-11-23T15:00:00+08:00", completed_at=None),
         "pending", 1, "2026-11-24", 0),
        ("ccc.2wd", lambda: ccc(applied_at="2026-11-19", concluded_at=None), "fail", 3, "2026-11-23", None),
        # approval open: submitted Mon 11-09, 11 working days to 11-24 > 10
        ("water.over150.approval_10wd",
         lambda: water(external_works_m=300, applied_at="2026-11-02", connected_at=None,
                       approval={"mode": "administrative_approval", "submitted_at": "2026-11-09"}),
         "fail", 11, "2026-11-23", None),
        ("power.over160.approval_5wd",
         lambda: power(external_works_m=300, applied_at="2026-11-02", connected_at=None,
                       approval={"mode": "administrative_approval", "submitted_at": "2026-11-20"}),
         "pending", 2, "2026-11-27", 3),
    ],
)  # fmt: skip
def test_open_case_judged_as_of(engine, rule, make, expected, value, deadline, remaining):
    r = result(check(engine, make()), rule)
    assert (r.status, r.value) == (expected, value)
    assert r.deadline == D(deadline)
    if expected == "pending":
        assert r.remaining == remaining


def test_open_case_verdict_is_pending_and_moves_with_as_of(engine):
    case = water(applied_at="2026-11-20", connected_at=None)
    assert check(engine, case, as_of="2026-11-24").verdict == "pending"
    assert check(engine, case, as_of="2026-11-25").verdict == "fail"
    r = result(check(engine, case, as_of="2026-11-21"), "water.no_external.2wd")  # Saturday
    assert (r.status, r.value, r.remaining) == ("pending", 0, 2)


@pytest.mark.parametrize(
    ("case", "rule", "expected"),
    [
        (property_registration(applied_at="2026-11-24T09:00:00+08:00", completed_at=None), "property.same_day",
         "pending"),
        (property_registration(applied_at="2026-11-23", completed_at=None), "property.same_day", "fail"),
        (construction(code_assigned_at="2026-09-05", completion_accepted_at=None), "construction.80_days",
         "pending"),  # 80 days to 11-24
        (construction(code_assigned_at="2026-09-04", completion_accepted_at=None), "construction.80_days",
         "fail"),  # 81 days
        (bankruptcy(accepted_at="2026-05-24", concluded_at=None), "bankruptcy.6_months", "pending"),
        (bankruptcy(accepted_at="2026-05-20", concluded_at=None), "bankruptcy.6_months", "fail"),
    ],
)  # fmt: skip
def test_open_calendar_and_month_cases(engine, case, rule, expected):
    assert status(engine, case, rule) == expected


# ---------------------------------------------------------------------------------------------------------
# Pauses (clock stops)
# ---------------------------------------------------------------------------------------------------------

# Case window: Mon 2026-03-02 → Mon 2026-03-09 = 5 working days (3, 4, 5, 6, 9).
WINDOW = {"applied_at": "2026-03-02T09:00:00+08:00", "connected_at": "2026-03-09T16:00:00+08:00"}


def _pause(reason, start, end=None):
    return {"reason": reason, "start": start, **({"end": end} if end else {})}


@pytest.mark.parametrize(
    ("build", "rule", "pauses", "value", "excluded", "expected"),
    [
        ("water", "water.no_external.2wd", [], 5, 0, "fail"),
        # (03-03, 03-06] = 4, 5, 6 excluded
        ("water", "water.no_external.2wd", [_pause("user_internal_works", "2026-03-03", "2026-03-06")], 2, 3, "pass"),
        # other reasons never stop the clock
        ("water", "water.no_external.2wd", [_pause("other", "2026-03-03", "2026-03-06")], 5, 0, "fail"),
        # gas tightness tests stop the gas clock but not the water clock
        ("water", "water.no_external.2wd", [_pause("gas_tightness_test", "2026-03-03", "2026-03-06")], 5, 0, "fail"),
        ("gas", "gas.no_external.2wd", [_pause("gas_tightness_test", "2026-03-03", "2026-03-06")], 2, 3, "pass"),
        ("gas", "gas.no_external.2wd", [_pause("pressure_pipeline_inspection", "2026-03-03", "2026-03-06")],
         5, 0, "fail"),
        # both gas reasons together, disjoint: (03-02, 03-03] and (03-05, 03-06] = 3, 6
        ("gas", "gas.no_external.2wd",
         [_pause("user_internal_works", "2026-03-02", "2026-03-03"), _pause("gas_tightness_test", "2026-03-05", "2026-03-06")],
         3, 2, "fail"),
        # overlapping: (03-03, 03-05] ∪ (03-04, 03-06] = 4, 5, 6 — 3 days, not 2 + 2
        ("water", "water.no_external.2wd",
         [_pause("user_internal_works", "2026-03-03", "2026-03-05"), _pause("user_internal_works", "2026-03-04", "2026-03-06")],
         2, 3, "pass"),
        # one pause inside another
        ("water", "water.no_external.2wd",
         [_pause("user_internal_works", "2026-03-02", "2026-03-06"), _pause("user_internal_works", "2026-03-03", "2026-03-04")],
         1, 4, "pass"),
        # an excludable and an `other` pause over the same days: only the excludable one counts
        ("water", "water.no_external.2wd",
         [_pause("other", "2026-03-02", "2026-03-09"), _pause("user_internal_works", "2026-03-05", "2026-03-06")],
         4, 1, "fail"),
        # starts before the case: clipped to (03-02, 03-04] = 3, 4 (unclipped would be 6 days)
        ("water", "water.no_external.2wd", [_pause("user_internal_works", "2026-02-25", "2026-03-04")], 3, 2, "fail"),
        # ends after the case: clipped to (03-06, 03-09] = 9 (unclipped would be 4 days)
        ("water", "water.no_external.2wd", [_pause("user_internal_works", "2026-03-06", "2026-03-12")], 4, 1, "fail"),
        # covers the whole case: everything excluded
        ("water", "water.no_external.2wd", [_pause("user_internal_works", "2026-02-01", "2026-04-01")], 0, 5, "pass"),
        # wholly outside the case window
        ("water", "water.no_external.2wd", [_pause("user_internal_works", "2026-03-10", "2026-03-12")], 5, 0, "fail"),
        # pressure pipeline inspection stops the within-150 m gas clock (limit 15)
        ("gas_ext", "gas.within150.15wd", [_pause("pressure_pipeline_inspection", "2026-03-03", "2026-03-06")],
         2, 3, "pass"),
    ],
)  # fmt: skip
def test_pauses(engine, build, rule, pauses, value, excluded, expected):
    make = {"water": water, "gas": gas, "gas_ext": lambda **kw: gas(external_works_m=50, **kw)}[build]
    r = result(check(engine, make(pauses=pauses, **WINDOW)), rule)
    assert (r.status, r.value) == (expected, value)
    assert (r.excluded or 0) == excluded


def test_not_excluded_pause_is_reported(engine):
    r = result(
        check(engine, water(pauses=[_pause("other", "2026-03-03", "2026-03-06")], **WINDOW)),
        "water.no_external.2wd",
    )
    assert "暂停" in r.message


def test_rules_without_excludable_reasons_ignore_pauses(engine):
    # water.within150.7wd names no pause reasons: 5 working days, nothing excluded
    case = water(
        external_works_m=50, pauses=[_pause("user_internal_works", "2026-03-03", "2026-03-06")], **WINDOW
    )
    r = result(check(engine, case), "water.within150.7wd")
    assert (r.value, r.excluded or 0) == (5, 0)


def test_pause_timestamps_use_local_dates(engine):
    # 2026-03-03T16:30Z is 03-04 00:30 local: the pause covers (03-04, 03-06] = 5, 6
    pauses = [_pause("user_internal_works", "2026-03-03T16:30:00Z", "2026-03-06T10:00:00+08:00")]
    r = result(check(engine, water(pauses=pauses, **WINDOW)), "water.no_external.2wd")
    assert (r.value, r.excluded, r.status) == (3, 2, "fail")


def test_open_ended_pause_in_open_case_runs_to_as_of(engine):
    # applied Mon 11-16, open; elapsed to Tue 11-24 = 17, 18, 19, 20, 23, 24 = 6
    # pause from 11-18 without end runs to as_of: (11-18, 11-24] = 19, 20, 23, 24 = 4 → value 2 = limit
    case = water(
        applied_at="2026-11-16", connected_at=None, pauses=[_pause("user_internal_works", "2026-11-18")]
    )
    r = result(check(engine, case), "water.no_external.2wd")
    assert (r.status, r.value, r.excluded) == ("pending", 2, 4)
    # the same case without the pause is over the limit
    assert (
        status(engine, water(applied_at="2026-11-16", connected_at=None), "water.no_external.2wd") == "fail"
    )


def test_open_ended_pause_in_closed_case_is_clipped_to_the_end(engine):
    # the case ends 03-09: the pause from 03-05 covers (03-05, 03-09] = 6, 9
    r = result(
        check(engine, water(pauses=[_pause("user_internal_works", "2026-03-05")], **WINDOW)),
        "water.no_external.2wd",
    )
    assert (r.value, r.excluded, r.status) == (3, 2, "fail")


# ---------------------------------------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connected", "value", "expected"),
    [
        ("2026-03-04T23:30:00+08:00", 2, "pass"),  # Tue, Wed
        ("2026-03-05T00:30:00+08:00", 3, "fail"),  # Tue, Wed, Thu
        ("2026-03-04T16:30:00Z", 3, "fail"),  # = 03-05 00:30 local
        ("2026-03-04T15:30:00Z", 2, "pass"),  # = 03-04 23:30 local
        ("2026-03-04T23:30:00", 2, "pass"),  # no offset: Asia/Shanghai
        (
            "2026-03-05T01:00:00+09:00",
            2,
            "pass",
        ),  # = 03-05 00:00 + 09:00 → 03-04 23:59? no: 03-05 00:00 local
    ][:5],
)
def test_time_zones_change_the_count(engine, connected, value, expected):
    case = water(applied_at="2026-03-02T09:00:00+08:00", connected_at=connected)
    r = result(check(engine, case), "water.no_external.2wd")
    assert (r.status, r.value) == (expected, value)


def test_applied_late_utc_evening_is_next_local_day(engine):
    # 2026-03-01T17:00Z is Mon 03-02 01:00 local: from Monday, Tue + Wed = 2
    case = water(applied_at="2026-03-01T17:00:00Z", connected_at="2026-03-04")
    assert result(check(engine, case), "water.no_external.2wd").value == 2
    # 2026-03-01T15:00Z is Sun 03-01 23:00 local: from Sunday, Mon + Tue + Wed = 3
    case = water(applied_at="2026-03-01T15:00:00Z", connected_at="2026-03-04")
    assert result(check(engine, case), "water.no_external.2wd").value == 3


# ---------------------------------------------------------------------------------------------------------
# Holidays inside the interval
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applied", "connected", "value"),
    [
        # Spring Festival 2026: 02-15..02-23 off; Sat 02-14 and Sat 02-28 are make-up working days
        ("2026-02-13", "2026-02-24", 2),  # Sat 02-14 (work), Tue 02-24
        ("2026-02-13", "2026-02-25", 3),
        ("2026-02-12", "2026-02-14", 2),  # Fri 02-13, Sat 02-14
        ("2026-02-14", "2026-02-24", 1),  # nine days off in between
        ("2026-02-26", "2026-03-02", 3),  # Fri 02-27, Sat 02-28 (work), Mon 03-02
        ("2026-02-27", "2026-03-02", 2),
        # National Day 2026: 10-01..10-07 off; Sun 09-20 and Sat 10-10 are make-up working days
        ("2026-09-30", "2026-10-08", 1),
        ("2026-09-30", "2026-10-09", 2),
        ("2026-09-30", "2026-10-10", 3),  # Sat 10-10 works
        ("2026-09-18", "2026-09-21", 2),  # Sun 09-20 (work), Mon 09-21
        # 元旦 2026: 01-01..01-03 off, Sun 01-04 works
        ("2025-12-31", "2026-01-05", 2),
    ],
)
def test_holidays_inside_the_interval(engine, applied, connected, value):
    r = result(check(engine, water(applied_at=applied, connected_at=connected)), "water.no_external.2wd")
    assert r.value == value
    assert r.status == ("pass" if value <= 2 else "fail")


@pytest.mark.parametrize(
    ("applied", "deadline"),
    [("2026-02-13", "2026-02-24"), ("2026-02-12", "2026-02-14"), ("2026-09-30", "2026-10-09")],
)
def test_deadline_skips_holidays(engine, applied, deadline):
    r = result(check(engine, water(applied_at=applied, connected_at=applied)), "water.no_external.2wd")
    assert r.deadline == D(deadline)


@pytest.mark.parametrize(
    ("submitted", "approved", "value", "expected"),
    [
        # 2020 Spring Festival extended to 02-02 (国办发明电〔2020〕1号); the Sat 02-01 make-up day was
        # cancelled. 01-23 → 02-04: only Mon 02-03 and Tue 02-04 are working days.
        ("2020-01-23", "2020-02-04", 2, "pass"),
        ("2020-01-23", "2020-02-03", 1, "pass"),
        ("2020-01-31", "2020-02-03", 1, "pass"),  # 02-01 (Sat) no longer a working day
        # 01-23 → 02-10: 02-03..02-07 and 02-10 = 6 > 5
        ("2020-01-23", "2020-02-10", 6, "fail"),
        ("2020-01-23", "2020-02-07", 5, "pass"),
    ],
)
def test_2020_spring_festival_extension(engine, submitted, approved, value, expected):
    # The anchor of power cases is applied_at (on or after 2020-07-01 so the rule is in force); the
    # approval interval that the rule measures spans the extended holiday.
    case = power(
        applied_at="2020-07-01",
        connected_at="2020-07-02",
        external_works_m=300,
        approval={"mode": "administrative_approval", "submitted_at": submitted, "approved_at": approved},
    )
    r = result(check(engine, case), "power.over160.approval_5wd")
    assert (r.status, r.value) == (expected, value)


def test_2020_spring_festival_extension_in_calendar():
    cal = load_calendar()
    assert cal.working_days_between(date(2020, 1, 23), date(2020, 2, 4)) == 2
    assert not cal.is_working_day(date(2020, 2, 1))
    assert cal.is_working_day(date(2020, 1, 19))  # Sunday make-up day kept


# ---------------------------------------------------------------------------------------------------------
# Rest-day extension (民法典 第203条) and months (第202条)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effective", "ready", "paid", "expected"),
    [
        ("2026-03-02", None, "2026-03-17", "pass"),  # day 15 = Tue 03-17
        ("2026-03-02", None, "2026-03-18", "fail"),
        # day 15 = Sat 03-21 → extended to Mon 03-23
        ("2026-03-06", None, "2026-03-21", "pass"),
        ("2026-03-06", None, "2026-03-23", "pass"),
        ("2026-03-06", None, "2026-03-24", "fail"),
        # day 15 = Thu 10-01, National Day → first working day is Thu 10-08
        ("2026-09-16", None, "2026-10-08", "pass"),
        ("2026-09-16", None, "2026-10-09", "fail"),
        # day 15 = Sun 09-20, a make-up working day: no extension
        ("2026-09-05", None, "2026-09-20", "pass"),
        ("2026-09-05", None, "2026-09-21", "fail"),
        # ready later than effective: counted from ready (03-06) → Mon 03-23
        ("2026-03-01", "2026-03-06", "2026-03-23", "pass"),
        ("2026-03-01", "2026-03-06", "2026-03-24", "fail"),
        # ready earlier would be invalid; ready == effective is the plain case
        ("2026-03-02", "2026-03-02", "2026-03-18", "fail"),
    ],
)
def test_advance_within_15d_rest_day_extension(engine, effective, ready, paid, expected):
    case = procurement(
        advance_payment="300000", contract_effective_at=effective, ready_at=ready, advance_paid_at=paid
    )
    assert status(engine, case, "procurement.advance_within_15d") == expected


def test_advance_within_15d_deadline_is_extended(engine):
    case = procurement(
        advance_payment="300000", contract_effective_at="2026-03-06", advance_paid_at="2026-03-23"
    )
    r = result(check(engine, case), "procurement.advance_within_15d")
    assert r.deadline == D("2026-03-23")
    assert r.value == 17


def test_advance_within_15d_open(engine):
    # not yet paid: as of 11-24 a contract effective 11-09 is at day 15 (pending), one from 11-08 fails
    assert (
        status(
            engine,
            procurement(advance_payment="300000", contract_effective_at="2026-11-09"),
            "procurement.advance_within_15d",
        )
        == "pending"
    )
    assert (
        status(
            engine,
            procurement(advance_payment="300000", contract_effective_at="2026-11-08"),
            "procurement.advance_within_15d",
        )
        == "fail"
    )


@pytest.mark.parametrize(
    ("accepted", "concluded", "expected"),
    [
        ("2026-01-05", "2026-07-05", "pass"),
        # 01-05 + 6 months = Sun 07-05 → Mon 07-06
        ("2026-01-05", "2026-07-06", "pass"),
        ("2026-01-05", "2026-07-07", "fail"),
        # 05-28 + 6 months = Sat 11-28 → Mon 11-30
        ("2026-05-28", "2026-11-30", "pass"),
        ("2026-05-28", "2026-12-01", "fail"),
        # 04-04 + 6 months = 10-04, National Day → Thu 10-08
        ("2026-04-04", "2026-10-08", "pass"),
        ("2026-04-04", "2026-10-09", "fail"),
        # month-end clamp: 2021-08-31 + 6 months = 2022-02-28 (Mon, a working day)
        ("2021-08-31", "2022-02-28", "pass"),
        ("2021-08-31", "2022-03-01", "fail"),
        # 2023-08-31 + 6 months = 2024-02-29 (leap year, Thu)
        ("2023-08-31", "2024-02-29", "pass"),
        ("2023-08-31", "2024-03-01", "fail"),
        # 2025-08-31 + 6 months = Sat 2026-02-28, a make-up working day: no extension
        ("2025-08-31", "2026-02-28", "pass"),
        ("2025-08-31", "2026-03-01", "fail"),
        # not a day-count: 2026-03-31 + 6 months = 09-30 (Wed)
        ("2026-03-31", "2026-09-30", "pass"),
        ("2026-03-31", "2026-10-01", "fail"),
    ],
)
def test_bankruptcy_6_months(engine, accepted, concluded, expected):
    assert (
        status(engine, bankruptcy(accepted_at=accepted, concluded_at=concluded), "bankruptcy.6_months")
        == expected
    )


@pytest.mark.parametrize(
    ("procedure", "expected"), [("simplified", "fail"), ("no_asset", "fail"), ("ordinary", NA)]
)
def test_bankruptcy_scope(engine, procedure, expected):
    case = bankruptcy(procedure=procedure, accepted_at="2026-01-05", concluded_at="2026-09-01")
    assert status(engine, case, "bankruptcy.6_months") == expected


# ---------------------------------------------------------------------------------------------------------
# Property: the working-day count equals a day-by-day count on the calendar
# ---------------------------------------------------------------------------------------------------------

CAL = load_calendar()


def _count(start: date, end: date) -> int:
    return sum(CAL.is_working_day(start + timedelta(days=i)) for i in range(1, (end - start).days + 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    applied=st.dates(min_value=date(2021, 1, 1), max_value=date(2026, 12, 31)),
    span=st.integers(min_value=0, max_value=40),
)
def test_water_no_external_matches_day_by_day_count(engine, applied, span):
    connected = min(applied + timedelta(days=span), date(2026, 12, 31))
    r = result(
        check(engine, water(applied_at=applied.isoformat(), connected_at=connected.isoformat())),
        "water.no_external.2wd",
    )
    expected = _count(applied, connected)
    assert r.value == expected
    assert r.status == ("pass" if expected <= 2 else "fail")
