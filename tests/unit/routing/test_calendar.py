"""Working days: weekday rule, holidays, make-up days (routing.md §4)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.routing.calendar import WorkCalendar

# A National Day week like the ones the State Council publishes:
# Thu 1 Oct - Wed 7 Oct 2026 off, Sun 27 Sep and Sat 10 Oct worked instead.
NATIONAL_DAY = WorkCalendar(
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
    workdays=frozenset({date(2026, 9, 27), date(2026, 10, 10)}),
    years=frozenset({2026}),
)


@pytest.mark.parametrize(
    ("d", "working"),
    [
        (date(2026, 11, 27), True),  # Friday
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 11, 29), False),  # Sunday
        (date(2026, 10, 1), False),  # holiday on a Thursday
        (date(2026, 10, 3), False),  # holiday on a Saturday
        (date(2026, 9, 27), True),  # make-up Sunday
        (date(2026, 10, 10), True),  # make-up Saturday
        (date(2026, 10, 8), True),
    ],
)
def test_is_working_day(d: date, working: bool) -> None:
    assert NATIONAL_DAY.is_working_day(d) is working


def test_weekday_rule_only_without_files() -> None:
    cal = WorkCalendar()
    assert [cal.is_working_day(date(2026, 11, 23 + i)) for i in range(7)] == [
        True, True, True, True, True, False, False,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (date(2026, 11, 27), date(2026, 11, 30)),  # Friday -> Monday
        (date(2026, 11, 28), date(2026, 11, 30)),
        (date(2026, 11, 30), date(2026, 12, 1)),  # strictly after
        (date(2026, 9, 26), date(2026, 9, 27)),  # Saturday -> make-up Sunday
        (date(2026, 9, 30), date(2026, 10, 8)),  # over the holiday week
        (date(2026, 10, 9), date(2026, 10, 10)),  # Friday -> make-up Saturday
    ],
)
def test_next_working_day(d: date, expected: date) -> None:
    assert NATIONAL_DAY.next_working_day(d) == expected


def test_covers_only_the_loaded_years() -> None:
    assert NATIONAL_DAY.covers(date(2026, 1, 1))
    assert not NATIONAL_DAY.covers(date(2027, 1, 1))
    assert not WorkCalendar().covers(date(2026, 1, 1))
    # beyond the files the weekday rule still answers
    assert NATIONAL_DAY.is_working_day(date(2027, 10, 1))


def test_a_date_both_holiday_and_workday_is_refused() -> None:
    with pytest.raises(ValueError, match="2026-10-10"):
        WorkCalendar(
            holidays=frozenset({date(2026, 10, 10)}), workdays=frozenset({date(2026, 10, 10)})
        )
