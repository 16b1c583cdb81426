"""ExpiryDate and the settlement days (docs/bank-drafts.md §1, §3, §4).

Cases that depend on a year's holidays take their dates from the shipped
calendar files (routing/calendar), so the tests stay true when the files
change; cases that only need the weekday rule use a calendar built in code.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import SHANGHAI
from gateway.drafts.dates import (
    expiry_date,
    is_expired,
    last_expiry_under,
    one_month_after,
    settlement_due,
    settlement_overdue,
    working_days_after,
)
from gateway.model import Engine
from gateway.routing.calendar import WorkCalendar
from gateway.routing.windows import DEFAULT_SCHEDULES
from tests.unit.drafts.helpers import shipped_calendar, working_days

WEEKDAYS = WorkCalendar()  # the weekday rule alone: year-independent cases
ONE_DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("issue", "month_later"),
    [
        (date(2027, 1, 31), date(2027, 2, 28)),  # 31 January, common year
        (date(2028, 1, 31), date(2028, 2, 29)),  # 31 January, leap year
        (date(2028, 1, 30), date(2028, 2, 29)),
        (date(2028, 1, 29), date(2028, 2, 29)),  # 29 February exists in a leap year
        (date(2028, 2, 29), date(2028, 3, 29)),  # issued on 29 February
        (date(2026, 3, 31), date(2026, 4, 30)),  # month end → the shorter month's end
        (date(2026, 8, 31), date(2026, 9, 30)),
        (date(2026, 4, 30), date(2026, 5, 30)),  # not the month's end: same day
        (date(2026, 12, 31), date(2027, 1, 31)),  # over the year boundary
        (date(2026, 12, 15), date(2027, 1, 15)),
    ],
)
def test_one_month_after(issue: date, month_later: date) -> None:
    assert one_month_after(issue) == month_later


def test_expiry_on_a_working_day_is_that_day() -> None:
    assert expiry_date(date(2028, 1, 31), WEEKDAYS) == date(2028, 2, 29)  # a Tuesday


def test_expiry_on_a_weekend_moves_to_monday() -> None:
    # 28 February 2027 is a Sunday: the next working day by the weekday rule is 1 March.
    assert expiry_date(date(2027, 1, 31), WEEKDAYS) == date(2027, 3, 1)
    # 30 April 2028 is a Sunday too.
    assert expiry_date(date(2028, 3, 31), WEEKDAYS) == date(2028, 5, 1)


def _expected(target: date, cal: WorkCalendar) -> date:
    """The rule, stated differently: the first working day on or after ``target``."""
    d = target
    while not cal.is_working_day(d):
        d += ONE_DAY
    return d


def test_31_january_of_every_shipped_year() -> None:
    cal = shipped_calendar()
    for year in sorted(cal.years):
        last_feb = date(year, 2, calendar.monthrange(year, 2)[1])
        got = expiry_date(date(year, 1, 31), cal)
        assert got == _expected(last_feb, cal), year
        assert got >= last_feb
        assert cal.is_working_day(got)


def test_every_month_end_of_the_shipped_years() -> None:
    cal = shipped_calendar()
    for year in sorted(cal.years):
        for month in range(1, 13):
            issue = date(year, month, calendar.monthrange(year, month)[1])
            got = expiry_date(issue, cal)
            target = one_month_after(issue)
            assert got == _expected(target, cal), issue
            # nothing between the month step and the expiry is a working day
            assert all(
                not cal.is_working_day(target + i * ONE_DAY) for i in range((got - target).days)
            )


def test_an_expiry_on_a_holiday_moves_past_the_holiday() -> None:
    cal = shipped_calendar()
    found = 0
    for holiday in sorted(cal.holidays):
        if holiday.day > 28 or holiday.month == 1:
            continue  # one month before must be the same day number
        issue = holiday.replace(month=holiday.month - 1)
        got = expiry_date(issue, cal)
        assert got == cal.next_working_day(holiday), holiday
        assert got > holiday and cal.is_working_day(got)
        found += 1
    assert found, "the shipped calendars list holidays"


def test_an_expiry_on_a_make_up_day_stays() -> None:
    cal = shipped_calendar()
    makeups = [d for d in sorted(cal.workdays) if d.day <= 28 and d.month > 1]
    assert makeups, "the shipped calendars list make-up working days"
    for workday in makeups:  # a Saturday or Sunday worked in place of a holiday
        issue = workday.replace(month=workday.month - 1)
        assert expiry_date(issue, cal) == workday


@pytest.mark.parametrize(
    ("work_date", "expired"),
    [(date(2026, 12, 1), False), (date(2026, 12, 2), False), (date(2026, 12, 3), True)],
)
def test_on_expiry_date_itself_in_time(work_date: date, expired: bool) -> None:
    assert is_expired(date(2026, 12, 2), work_date) is expired


def test_working_days_after_skips_holidays() -> None:
    cal = shipped_calendar()
    holiday = min(d for d in cal.holidays if cal.is_working_day(d - ONE_DAY))
    before = holiday - ONE_DAY
    first = working_days_after(before, 1, cal)
    assert first > holiday and cal.is_working_day(first)
    assert working_days_after(before, 2, cal) == cal.next_working_day(first)
    with pytest.raises(ValueError, match="at least 1"):
        working_days_after(before, 0, cal)


def test_settlement_due_on_the_next_working_day_only() -> None:
    cal = shipped_calendar()
    # a Friday that is a working day, followed by a weekend that is not
    friday = next(
        d
        for d in sorted(w for w in _all_days(cal) if w.weekday() == 4)
        if cal.is_working_day(d) and not cal.is_working_day(d + ONE_DAY)
    )
    saturday = friday + ONE_DAY
    assert not settlement_due(friday, friday, cal)  # PAID today: not yet
    assert not settlement_due(friday, saturday, cal)  # not a working day: wait
    monday = cal.next_working_day(friday)
    assert settlement_due(friday, monday, cal)
    assert settlement_due(saturday, monday, cal)  # PAID on a weekend


def test_unsettled_alert_two_working_days_later() -> None:
    cal = shipped_calendar()
    paid = next(d for d in sorted(_all_days(cal)) if cal.is_working_day(d))
    first = cal.next_working_day(paid)
    second = cal.next_working_day(first)
    assert not settlement_overdue(paid, first, cal)
    assert not settlement_overdue(paid, second - ONE_DAY, cal)
    assert settlement_overdue(paid, second, cal)


def test_last_expiry_under_a_retiring_key() -> None:
    cal = shipped_calendar()
    intra = DEFAULT_SCHEDULES[Engine.INTRA]
    # A successor activating at 00:00 of the working day after a holiday: the last
    # Code under the old key was made on the holiday, for a draft held to that
    # working day, which is therefore its IssueDate (docs/bank-drafts.md §1).
    holiday = min(cal.holidays)
    resume = cal.next_working_day(holiday)
    activate = datetime.combine(resume, time(0), SHANGHAI)
    assert last_expiry_under(activate, intra, cal) == expiry_date(resume, cal)
    # At 00:00 of a working day that follows a working day: the day before.
    day = next(d for d in working_days(cal) if cal.is_working_day(d - ONE_DAY))
    at = datetime.combine(day, time(0), SHANGHAI)
    assert last_expiry_under(at, intra, cal) == expiry_date(day - ONE_DAY, cal)
    # At noon of a working day: that day.
    noon = datetime.combine(resume, time(12), SHANGHAI)
    assert last_expiry_under(noon, intra, cal) == expiry_date(resume, cal)


def _all_days(cal: WorkCalendar) -> list[date]:
    out = []
    for year in sorted(cal.years):
        d = date(year, 1, 1)
        while d.year == year:
            out.append(d)
            d += ONE_DAY
    return out


@settings(max_examples=300, deadline=None, database=None)
@given(issue=st.dates(min_value=date(2025, 12, 1), max_value=date(2028, 12, 31)))
def test_expiry_is_the_first_working_day_from_one_month_later(issue: date) -> None:
    cal = shipped_calendar()
    got = expiry_date(issue, cal)
    target = one_month_after(issue)
    assert cal.is_working_day(got)
    assert target <= got
    assert all(not cal.is_working_day(target + i * ONE_DAY) for i in range((got - target).days))
    assert target.month == issue.month % 12 + 1
    assert target.day == min(issue.day, calendar.monthrange(target.year, target.month)[1])
