"""Working days (工作日): the seam the operating windows and engine rules read.

docs/routing-rules.md §4: a working day is a Monday-Friday that is not a listed holiday,
or any date listed as a make-up working day (调休, a weekend worked in place
of a holiday).  Calendars are files per year, reloaded like the directory:
``gateway.routing.calendar_files`` reads and validates them into one
``WorkCalendar``; this module only holds the sets and answers questions, so
the windows and the router can be tested at any date.

A date beyond the loaded years is answered by the weekday rule alone
(docs/routing-rules.md §4); :meth:`WorkCalendar.covers` lets the caller notice and raise
the alert metric, so this module stays free of side effects.  Likewise
:meth:`WorkCalendar.is_provisional` tells a date whose year was loaded from a
file marked provisional (the State Council's notice for that year was not
published yet), so the caller can warn about it.
"""

from __future__ import annotations

from datetime import date, timedelta

_SATURDAY = 5
_ONE_DAY = timedelta(days=1)


class WorkCalendar:
    """An immutable set of holidays and make-up working days.

    ``years`` are the calendar years the loaded files cover; a date outside
    them still gets an answer (the weekday rule) but ``covers`` says False.
    ``provisional`` are the covered years whose files are estimates, and
    ``version`` identifies the loaded files (logs, ``/healthz``), empty for a
    calendar built in code.
    """

    __slots__ = ("holidays", "provisional", "version", "workdays", "years")

    def __init__(
        self,
        holidays: frozenset[date] = frozenset(),
        workdays: frozenset[date] = frozenset(),
        years: frozenset[int] = frozenset(),
        *,
        provisional: frozenset[int] = frozenset(),
        version: str = "",
    ) -> None:
        both = holidays & workdays
        if both:
            first = min(both).isoformat()
            raise ValueError(f"{first} is listed both as a holiday and as a working day")
        stray = provisional - years
        if stray:
            raise ValueError(f"provisional year {min(stray)} is not a covered year")
        self.holidays = frozenset(holidays)
        self.workdays = frozenset(workdays)
        self.years = frozenset(years)
        self.provisional = frozenset(provisional)
        self.version = version

    def is_working_day(self, d: date) -> bool:
        """Mon-Fri and not a holiday, or a listed make-up working day (docs/routing-rules.md §4)."""
        if d in self.workdays:
            return True
        return d.weekday() < _SATURDAY and d not in self.holidays

    def next_working_day(self, d: date) -> date:
        """The first working day strictly after ``d``.

        Terminates: holidays are a finite set, so past the last of them the
        weekday rule finds a Monday within a week.
        """
        day = d + _ONE_DAY
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day

    def covers(self, d: date) -> bool:
        """True when ``d`` falls in a year the loaded calendar files describe."""
        return d.year in self.years

    def is_provisional(self, d: date) -> bool:
        """True when ``d``'s year comes from a file marked provisional (an estimate)."""
        return d.year in self.provisional

    def __repr__(self) -> str:
        span = f"{min(self.years)}-{max(self.years)}" if self.years else "weekday rule only"
        marks = f", provisional {sorted(self.provisional)}" if self.provisional else ""
        version = f" version {self.version}" if self.version else ""
        return (
            f"<WorkCalendar {span}{version}: {len(self.holidays)} holidays, "
            f"{len(self.workdays)} make-up days{marks}>"
        )
