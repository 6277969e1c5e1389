"""Every covered day against two independent oracles: chinese_calendar and holidays.China.

The oracles are test-only (SPEC: never runtime data sources). Where one disagrees with the State
Council notice, the data file records a ``[[decision]]`` with the reason; these tests require the
disagreements to be exactly the recorded decisions, so a new disagreement (or a stale decision) fails.
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import holidays
import pytest

from engine.calendar import NoticeFile, load_calendar, load_notices

IDX = load_calendar()
ALL_DAYS = [IDX.first + timedelta(days=i) for i in range((IDX.last - IDX.first).days + 1)]


def recorded(oracle: str) -> dict[date, str]:
    return {d.date: d.notice_says for n in load_notices() for d in n.decision if d.oracle == oracle}


def disagreements(oracle_is_workday: dict[date, bool]) -> dict[date, str]:
    return {
        day: "workday" if IDX.is_working_day(day) else "day_off"
        for day, theirs in oracle_is_workday.items()
        if IDX.is_working_day(day) != theirs
    }


def test_covers_2004_to_2026() -> None:
    assert (ALL_DAYS[0], ALL_DAYS[-1]) == (date(2004, 1, 1), date(2026, 12, 31))
    assert [n.year for n in load_notices()] == list(range(2004, 2027))


def test_against_chinese_calendar() -> None:
    theirs = {day: chinese_calendar.is_workday(day) for day in ALL_DAYS}
    assert disagreements(theirs) == recorded("chinese_calendar")


def test_against_holidays_china() -> None:
    # Years after the last covered one too: a notice can put a make-up day in late December.
    cn = holidays.China(years=range(2004, 2028))
    theirs = {day: cn.is_working_day(day) for day in ALL_DAYS}
    assert disagreements(theirs) == recorded("holidays")


@pytest.mark.parametrize("notice", load_notices(), ids=lambda n: str(n.year))
def test_every_decision_has_a_reason_and_matches_the_data(notice: NoticeFile) -> None:
    for decision in notice.decision:
        assert len(decision.reason) >= 20
        ours = "workday" if IDX.is_working_day(decision.date) else "day_off"
        assert ours == decision.notice_says


def test_2020_extension_is_in_the_2020_file() -> None:
    notice = next(n for n in load_notices() if n.year == 2020)
    assert any(a.number == "国办发明电〔2020〕1号" for a in notice.amendment)
    spring = next(h for h in notice.holiday if h.name == "春节")
    assert spring.days_off[-1] == date(2020, 2, 2)
    assert date(2020, 2, 1) not in spring.make_up_workdays
