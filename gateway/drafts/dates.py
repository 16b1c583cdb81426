"""Draft dates: ExpiryDate, settlement due and overdue days (docs/bank-drafts.md §1, §3, §4).

Pure functions of a date and the working-day calendar (``WorkCalendar``,
docs/routing-rules.md §4), so the register, the settlement pass and the alert
can be tested on any day.  No clock is read here.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from gateway.routing.calendar import WorkCalendar
from gateway.routing.windows import EngineSchedule

_DECEMBER = 12
_INSTANT = timedelta(microseconds=1)


def one_month_after(d: date) -> date:
    """The same day of the next calendar month, or that month's last day if it has none.

    docs/bank-drafts.md §1: 31 January → 28 February (29 in a leap year),
    31 March → 30 April, 31 December → 31 January of the next year.
    """
    year, month = (d.year + 1, 1) if d.month == _DECEMBER else (d.year, d.month + 1)
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(d.day, last))


def expiry_date(issue_date: date, cal: WorkCalendar) -> date:
    """docs/bank-drafts.md §1: one calendar month after ``issue_date``, then the next working day.

    The month step comes first (a missing day becomes the month's last day),
    then a day that is not a working day moves forward to the next one.  On
    ExpiryDate itself a presentment is still in time (docs/bank-drafts.md §3).
    """
    target = one_month_after(issue_date)
    return target if cal.is_working_day(target) else cal.next_working_day(target)


def is_expired(expiry: date, work_date: date) -> bool:
    """docs/bank-drafts.md §3 ``EX``: expired only on a work date *after* ExpiryDate."""
    return work_date > expiry


def working_days_after(d: date, n: int, cal: WorkCalendar) -> date:
    """The ``n``-th working day strictly after ``d`` (``n >= 1``)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    day = d
    for _ in range(n):
        day = cal.next_working_day(day)
    return day


def settlement_due(paid_on: date, today: date, cal: WorkCalendar) -> bool:
    """docs/bank-drafts.md §3: on a working day, drafts PAID on an earlier date are settled.

    The pass runs at 00:00 of each working day (or at start-up if later), so
    on a non-working day nothing is due: the drafts wait for the next one.
    """
    return cal.is_working_day(today) and paid_on < today


def settlement_overdue(paid_on: date, today: date, cal: WorkCalendar) -> bool:
    """docs/bank-drafts.md §4 alert: still PAID on the second working day after ``paid_on``."""
    return today >= working_days_after(paid_on, 2, cal)


def last_expiry_under(
    successor_activate: datetime, intra: EngineSchedule, cal: WorkCalendar
) -> date:
    """The latest ExpiryDate of a draft whose key stops signing at ``successor_activate``.

    A Code is made when the DRAFT is journaled, with the key current then; its
    IssueDate is the INTRA work date of that instant, which for a request held
    on a non-working day is the next working day (docs/bank-drafts.md §1).  So
    the last draft under the outgoing key has, at most, the IssueDate of the
    instant just before its successor activates, and this key must be kept
    until that draft's ExpiryDate (docs/bank-drafts.md §5).
    """
    last_issue = intra.work_date(successor_activate - _INSTANT, cal)
    return expiry_date(last_issue, cal)


__all__ = [
    "expiry_date",
    "is_expired",
    "last_expiry_under",
    "one_month_after",
    "settlement_due",
    "settlement_overdue",
    "working_days_after",
]
