"""The working-day calendar: named cases from the notices, input handling, overlays and properties.

The oracle comparison over every covered day lives in ``test_calendar_oracles.py``.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from workalendar.asia import China

from engine import calendar as cal_module
from engine.calendar import ChinaStateCouncilCalendar, WorkdayIndex, load_calendar, load_notices
from engine.errors import CalendarDataError, CalendarRangeError
from engine.resources import ENV_DATA

IDX = load_calendar()
FIRST = date(2004, 1, 1)
LAST = date(2026, 12, 31)
days_in_range = st.dates(min_value=FIRST, max_value=LAST)


def count_day_by_day(start: date, end: date) -> int:
    """Reference for working_days_between: walk the days of (min, max] one at a time."""
    lo, hi = sorted((start, end))
    total = sum(IDX.is_working_day(lo + timedelta(days=i)) for i in range(1, (hi - lo).days + 1))
    return total if end >= start else -total


def step_day_by_day(start: date, n: int) -> date:
    """Reference for add_working_days: step one day at a time until n working days have passed."""
    day, left, step = start, abs(n), 1 if n > 0 else -1
    while left:
        day += timedelta(days=step)
        if not FIRST <= day <= LAST:
            raise CalendarRangeError(day.year, (2004, 2026))
        left -= IDX.is_working_day(day)
    return day


# -- named cases ------------------------------------------------------------------------------------


def test_covered_range_and_version() -> None:
    assert (IDX.first, IDX.last) == (FIRST, LAST)
    assert re.fullmatch(r"cn@2004-2026:[0-9a-f]{12}", IDX.version)
    assert len(IDX.is_work) == len(IDX.cum) == (LAST - FIRST).days + 1
    assert IDX.cum.dtype == np.int32
    assert IDX.is_work.dtype == np.bool_


def test_2026_spring_festival_make_up_saturday() -> None:
    assert IDX.is_working_day(date(2026, 2, 14))
    assert IDX.is_working_day(date(2026, 2, 28))
    assert not any(IDX.is_working_day(date(2026, 2, d)) for d in range(15, 24))


def test_2026_national_day() -> None:
    assert not any(IDX.is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert IDX.is_working_day(date(2026, 10, 8))
    assert IDX.is_working_day(date(2026, 10, 10))  # Saturday, 调休上班
    assert IDX.is_working_day(date(2026, 9, 20))  # Sunday, 调休上班


def test_2020_spring_festival_extension() -> None:
    """国办发明电〔2020〕1号 extended the holiday to 2 February and cancelled the 1 February make-up day."""
    assert not IDX.is_working_day(date(2020, 2, 1))
    assert not IDX.is_working_day(date(2020, 1, 31))
    assert IDX.is_working_day(date(2020, 1, 19))
    # Working days after 23 January up to 4 February: only 3 and 4 February.
    assert IDX.working_days_between(date(2020, 1, 23), date(2020, 2, 4)) == 2
    assert IDX.working_days_between(date(2020, 2, 4), date(2020, 1, 23)) == -2
    # Stock workalendar 17 still has the original arrangement; ours must not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert China().is_working_day(date(2020, 2, 1))


def test_make_up_day_in_the_previous_year_belongs_to_the_notice_year() -> None:
    notices = {n.year: n for n in load_notices()}
    assert date(2011, 12, 31) in notices[2012].make_up_workdays()
    assert IDX.is_working_day(date(2011, 12, 31))  # Saturday worked for the 2012 New Year holiday
    assert not IDX.is_working_day(date(2018, 12, 31))  # Monday off, from the 2019 notice


def test_same_day_is_zero_and_deadline_semantics() -> None:
    d = date(2026, 3, 2)
    assert IDX.working_days_between(d, d) == 0
    assert IDX.add_working_days(d, 0) == d
    assert IDX.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert IDX.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    assert IDX.add_working_days(date(2026, 2, 24), -1) == date(2026, 2, 14)
    assert IDX.add_working_days(date(2026, 2, 22), 0) == date(2026, 2, 22)  # n = 0 even on a day off


def test_roll_forward() -> None:
    assert IDX.roll_forward(date(2026, 10, 1)) == date(2026, 10, 8)
    assert IDX.roll_forward(date(2026, 10, 10)) == date(2026, 10, 10)
    assert IDX.roll_forward(date(2026, 3, 7)) == date(2026, 3, 9)
    days = np.array(["2026-10-01", "2026-10-10", "2026-03-07"], dtype="datetime64[D]")
    expected = np.array(["2026-10-08", "2026-10-10", "2026-03-09"], dtype="datetime64[D]")
    assert (IDX.roll_forward(days) == expected).all()


# -- range errors ------------------------------------------------------------------------------------


def test_uncovered_year_raises_naming_it() -> None:
    with pytest.raises(CalendarRangeError, match="2027") as caught:
        IDX.is_working_day(date(2027, 1, 4))
    assert isinstance(caught.value, ValueError)
    assert "calendars/cn/2027.toml" in str(caught.value)
    with pytest.raises(CalendarRangeError, match="2003"):
        IDX.working_days_between(date(2003, 12, 31), date(2004, 1, 5))


def test_result_past_the_last_covered_day_raises() -> None:
    with pytest.raises(CalendarRangeError, match="2027"):
        IDX.add_working_days(date(2026, 12, 30), 5)
    with pytest.raises(CalendarRangeError, match="2003"):
        IDX.add_working_days(date(2004, 1, 5), -5)
    with pytest.raises(CalendarRangeError, match="2027"):
        IDX.add_working_days(np.array(["2026-12-30"], dtype="datetime64[D]"), 5)


def test_positions_names_the_first_offending_year() -> None:
    days = np.array(["2026-01-05", "2028-03-01", "2001-01-01"], dtype="datetime64[D]")
    with pytest.raises(CalendarRangeError, match="2028"):
        IDX.day_offsets(days)
    ok = np.array(["2004-01-01", "2026-12-31"], dtype="datetime64[D]")
    assert IDX.day_offsets(ok).tolist() == [0, len(IDX.cum) - 1]


def test_workalendar_class_refuses_uncovered_years() -> None:
    with pytest.raises(CalendarRangeError, match="2027"):
        ChinaStateCouncilCalendar().holidays(2027)
    with pytest.raises(CalendarRangeError, match="2027"):
        ChinaStateCouncilCalendar().is_working_day(date(2027, 1, 4))


# -- inputs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("2026-03-02T23:30:00+08:00", date(2026, 3, 2)),
        ("2026-03-02T15:30:00Z", date(2026, 3, 2)),  # the same instant as 23:30+08:00
        ("2026-03-02T16:30:00Z", date(2026, 3, 3)),  # 00:30 on 3 March in Shanghai
        ("2026-03-02T16:30:00-01:00", date(2026, 3, 3)),
        ("2026-03-02T23:30", date(2026, 3, 2)),
        ("2026-03-02", date(2026, 3, 2)),
    ],
)
def test_timestamps_map_to_the_shanghai_date(text: str, local: date) -> None:
    assert cal_module.to_local_date(text) == local
    assert IDX.working_days_between(local, text) == 0


def test_datetime_inputs() -> None:
    aware = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)  # 00:30 on 3 March in Shanghai
    naive = datetime(2026, 3, 2, 23, 30)
    assert cal_module.to_local_date(aware) == date(2026, 3, 3)
    assert cal_module.to_local_date(naive) == date(2026, 3, 2)
    assert IDX.working_days_between(naive, aware) == 1
    assert cal_module.to_local_date(np.datetime64("2026-03-02T23:30")) == date(2026, 3, 2)


@pytest.mark.parametrize("bad", ["2026-02-30", "2026-13-01", "yesterday", "2026-03-02T25:00:00"])
def test_invalid_dates_raise_a_clear_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))) as caught:
        IDX.is_working_day(bad)
    assert not isinstance(caught.value, CalendarRangeError)


def test_feb_30_message() -> None:
    with pytest.raises(ValueError, match=r"invalid ISO 8601 date.*day is out of range for month"):
        IDX.working_days_between("2026-02-30", "2026-03-02")


def test_wrong_type_and_nat() -> None:
    with pytest.raises(TypeError, match="int"):
        IDX.is_working_day(20260302)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaT"):
        IDX.day_offsets(np.array(["2026-03-02", "NaT"], dtype="datetime64[D]"))


# -- overlays ----------------------------------------------------------------------------------------


def write_overlay(path: Path, body: str) -> str:
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_overlay_closure_and_extra_workday(tmp_path: Path) -> None:
    overlay = write_overlay(
        tmp_path / "typhoon.toml",
        'description = "台风停工"\nclosures = [2026-03-03]\nextra_workdays = [2026-03-07]\n',
    )
    local = load_calendar(overlay)
    assert not local.is_working_day(date(2026, 3, 3))
    assert local.is_working_day(date(2026, 3, 7))
    assert local.version != IDX.version
    assert local.version.startswith("cn@2004-2026+typhoon:")
    # The national default is untouched (and still the cached instance).
    assert load_calendar() is IDX
    assert IDX.is_working_day(date(2026, 3, 3))
    assert not IDX.is_working_day(date(2026, 3, 7))
    assert local.working_days_between(date(2026, 3, 2), date(2026, 3, 9)) == 5
    assert IDX.working_days_between(date(2026, 3, 2), date(2026, 3, 9)) == 5
    assert local.working_days_between(date(2026, 3, 2), date(2026, 3, 4)) == 1
    wcal = ChinaStateCouncilCalendar(overlay)
    assert (date(2026, 3, 3), "台风停工") in wcal.holidays(2026)
    assert not wcal.is_working_day(date(2026, 3, 3))


def test_unknown_overlay_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown calendar overlay 'no-such-utility'.*available"):
        load_calendar("no-such-utility")


def test_roll_forward_past_the_last_covered_day(tmp_path: Path) -> None:
    local = load_calendar(
        write_overlay(tmp_path / "eve.toml", 'description = "x"\nclosures = [2026-12-31]\n')
    )
    with pytest.raises(CalendarRangeError, match="2027"):
        local.roll_forward(date(2026, 12, 31))
    with pytest.raises(CalendarRangeError, match="2027"):
        local.roll_forward(np.array(["2026-12-31"], dtype="datetime64[D]"))


def test_overlay_outside_the_covered_years(tmp_path: Path) -> None:
    overlay = write_overlay(tmp_path / "late.toml", 'description = "x"\nclosures = [2027-01-05]\n')
    with pytest.raises(CalendarRangeError, match="2027"):
        load_calendar(overlay)


def test_broken_overlay_names_file_and_field(tmp_path: Path) -> None:
    overlay = write_overlay(tmp_path / "broken.toml", 'description = "x"\nclosures = ["soon"]\n')
    with pytest.raises(CalendarDataError, match=r"broken\.toml: closures\.0"):
        load_calendar(overlay)


def test_broken_data_file_names_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "calendars" / "cn"
    folder.mkdir(parents=True)
    (folder / "2026.toml").write_text(
        'year = 2026\nnotice = "国务院办公厅关于2026年部分节假日安排的通知"\n'
        '[[holiday]]\nname = "春节"\ndays_off = [2026-02-15]\nmake_up_workdays = [2026-02-16]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(ENV_DATA, str(tmp_path))  # the data directory's 2026 replaces the shipped one
    with pytest.raises(CalendarDataError, match=r"2026\.toml: holiday\.0: .*Saturdays or Sundays"):
        load_notices()


# -- properties --------------------------------------------------------------------------------------

slow = settings(max_examples=2000, deadline=None)


@slow
@given(days_in_range, days_in_range)
def test_between_matches_a_day_by_day_count(start: date, end: date) -> None:
    assert IDX.working_days_between(start, end) == count_day_by_day(start, end)


@slow
@given(days_in_range, st.integers(min_value=-300, max_value=300))
def test_add_matches_stepping(start: date, n: int) -> None:
    try:
        expected = step_day_by_day(start, n)
    except CalendarRangeError as exc:
        with pytest.raises(CalendarRangeError, match=str(exc.year)):
            IDX.add_working_days(start, n)
        return
    result = IDX.add_working_days(start, n)
    assert result == expected
    if n > 0:  # n working days in (start, result], and result is one of them
        assert IDX.working_days_between(start, result) == n
        assert IDX.is_working_day(result)
    elif n < 0:  # |n| working days in [result, start)
        assert (
            IDX.working_days_between(result, start) + IDX.is_working_day(result) - IDX.is_working_day(start)
            == -n
        )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(days_in_range, days_in_range, st.integers(-50, 50)), min_size=1, max_size=60))
def test_vectorized_matches_scalar(rows: list[tuple[date, date, int]]) -> None:
    starts = np.array([r[0] for r in rows], dtype="datetime64[D]")
    ends = np.array([r[1] for r in rows], dtype="datetime64[D]")
    steps = np.array([r[2] for r in rows])
    between = IDX.working_days_between(starts, ends)
    assert between.tolist() == [IDX.working_days_between(s, e) for s, e, _ in rows]
    assert IDX.is_working_day(starts).tolist() == [IDX.is_working_day(s) for s, _, _ in rows]
    pos_s, pos_e = IDX.day_offsets(starts), IDX.day_offsets(ends)
    assert (IDX.cum[pos_e].astype(np.int64) - IDX.cum[pos_s] == between).all()
    inside = [(s, n) for s, _, n in rows if FIRST + timedelta(days=120) <= s <= LAST - timedelta(days=120)]
    if inside:
        days = np.array([s for s, _ in inside], dtype="datetime64[D]")
        added = IDX.add_working_days(days, np.array([n for _, n in inside]))
        assert added.dtype == np.dtype("datetime64[D]")
        assert [d.item() for d in added] == [IDX.add_working_days(s, n) for s, n in inside]
        # A scalar step broadcasts over an array of days, and a scalar day over an array of steps.
        assert [d.item() for d in IDX.add_working_days(days, 7)] == [
            IDX.add_working_days(s, 7) for s, _ in inside
        ]
        s0 = inside[0][0]
        steps_only = np.array([n for _, n in inside])
        assert [d.item() for d in IDX.add_working_days(s0, steps_only)] == [
            IDX.add_working_days(s0, int(n)) for n in steps_only
        ]
    assert len(steps) == len(rows)


WCAL = ChinaStateCouncilCalendar()


@settings(max_examples=500, deadline=None)
@given(days_in_range, st.integers(min_value=-400, max_value=400), st.integers(min_value=-40, max_value=40))
def test_workalendar_subclass_agrees_with_the_index(start: date, span: int, n: int) -> None:
    """get_working_days_delta is unsigned and counts (min, max]: index == sign(end - start) * delta."""
    end = min(max(start + timedelta(days=span), FIRST), LAST)
    sign = 1 if end >= start else -1
    assert IDX.working_days_between(start, end) == sign * WCAL.get_working_days_delta(start, end)
    assert WCAL.is_working_day(start) == IDX.is_working_day(start)
    if FIRST + timedelta(days=90) <= start <= LAST - timedelta(days=90):
        assert WCAL.add_working_days(start, n) == IDX.add_working_days(start, n)
        assert WCAL.sub_working_days(start, n) == IDX.add_working_days(start, -abs(n))


def test_workalendar_holidays_and_extras() -> None:
    holidays_2020 = dict(WCAL.holidays(2020))
    assert holidays_2020[date(2020, 2, 1)] == "春节"
    assert date(2020, 1, 19) not in holidays_2020
    # The 2019 notice's New Year block starts in December 2018: listed under the calendar year 2018.
    assert dict(WCAL.holidays(2018))[date(2018, 12, 31)] == "元旦"
    assert WCAL.is_holiday(date(2026, 10, 1))
    # workalendar precedence: extra working days first, then extra holidays, then the notices.
    assert WCAL.is_working_day(date(2026, 10, 1), extra_working_days=[date(2026, 10, 1)])
    assert not WCAL.is_working_day(date(2026, 3, 2), extra_holidays=[date(2026, 3, 2)])
    assert WCAL.is_working_day(date(2026, 2, 14), extra_working_days=[date(2026, 3, 7)])
    assert isinstance(WCAL.index, WorkdayIndex)
