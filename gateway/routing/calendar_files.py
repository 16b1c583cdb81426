"""Calendar files: one TOML file per year of holidays and make-up working days.

docs/routing-rules.md §4: "Calendars are files per year (``holidays``, ``workdays``),
reloaded like the directory."  The format (``routing/README.md``)::

    year = 2026
    source = "国务院办公厅关于2026年部分节假日安排的通知"
    provisional = false            # optional; true while the notice is not out
    holidays = [2026-01-01, 2026-01-02, ...]
    workdays = [2026-01-04, ...]   # make-up working days (调休), weekends only

Dates are TOML local dates (not strings), so a typo is a parse error and not
a silently different day.

Reload semantics are those of the directory (docs/routing-rules.md §2, docs/architecture.md §7
principle 6): :func:`load_calendars` reads and validates *every* file of the
folder into a new :class:`WorkCalendar` before anyone sees it, and raises
:class:`CalendarError` naming the file and the entry on the first problem;
the caller swaps the reference on success and keeps the old calendar (and
logs and counts the reason) on failure.  Nothing here reads a clock or logs.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

from gateway.routing.calendar import WorkCalendar

FILE_NAME: Final = re.compile(r"\A([0-9]{4})\.toml\Z")
"""A calendar file is named after its year, ``YYYY.toml``.

Any other ``*.toml`` in the folder is refused rather than ignored (a file
named ``calendar-2027.toml`` would otherwise silently not count); files with
other suffixes (``README.md``, an editor's ``2026.toml~``) are ignored."""

REQUIRED_KEYS: Final = ("year", "source", "holidays", "workdays")
OPTIONAL_KEYS: Final = ("provisional",)
_KNOWN_KEYS: Final = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)

MIN_YEAR: Final = 2000
MAX_YEAR: Final = 2099
"""Plausible years: a calendar for 1026 or 20026 is a typo, not a plan."""

VERSION_HEX: Final = 16
"""Hex digits of the SHA-256 kept as the calendar version (logs, /healthz), as for the directory."""

_WEEKEND: Final = frozenset({5, 6})
_WEEKDAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


class CalendarError(ValueError):
    """A calendar file (or folder) was refused; the message names the file and the entry.

    Operator-facing only (logs, ``gatewayctl reload``): never sent to a client.
    """

    def __init__(self, source: str, problem: str, *, entry: str | None = None) -> None:
        self.source = source
        self.entry = entry
        self.problem = problem
        where = source if entry is None else f"{source}: {entry}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class CalendarYear:
    """One validated calendar file."""

    year: int
    source: str  # where the dates come from (the State Council notice)
    provisional: bool
    holidays: frozenset[date]
    workdays: frozenset[date]


def parse_calendar_year(text: str, source: str) -> CalendarYear:
    """Validate the text of one calendar file; ``source`` names it in errors.

    Refused, naming the entry: a date outside the file's year, a date listed
    twice, a date that is both holiday and working day, a make-up working day
    that is not a Saturday or Sunday (docs/routing-rules.md §4: make-up days are 调休
    weekends), a value that is not a TOML date, and unknown or missing keys.
    """
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(source, f"not valid TOML: {exc}") from None
    for key in table:
        if key not in _KNOWN_KEYS:
            raise CalendarError(source, "unknown key", entry=key)
    for key in REQUIRED_KEYS:
        if key not in table:
            raise CalendarError(source, "missing", entry=key)

    year = table["year"]
    if type(year) is not int or not MIN_YEAR <= year <= MAX_YEAR:
        raise CalendarError(source, f"must be a year {MIN_YEAR}-{MAX_YEAR}", entry="year")
    origin = table["source"]
    if not isinstance(origin, str) or not origin.strip():
        raise CalendarError(source, "must be a non-empty string", entry="source")
    provisional = table.get("provisional", False)
    if not isinstance(provisional, bool):
        raise CalendarError(source, "must be true or false", entry="provisional")

    holidays = _dates(table, "holidays", year, source)
    workdays = _dates(table, "workdays", year, source)
    holiday_entries = {d: name for name, d in holidays.items()}
    for name, d in workdays.items():
        if d in holiday_entries:
            raise CalendarError(
                source, f"also listed as a holiday ({holiday_entries[d]})", entry=_entry(name, d)
            )
        if d.weekday() not in _WEEKEND:
            raise CalendarError(
                source,
                f"a {_WEEKDAY_NAMES[d.weekday()]}; make-up working days are Saturdays or Sundays",
                entry=_entry(name, d),
            )
    return CalendarYear(
        year=year,
        source=origin.strip(),
        provisional=provisional,
        holidays=frozenset(holidays.values()),
        workdays=frozenset(workdays.values()),
    )


def load_calendar_year(path: Path) -> CalendarYear:
    """Read and validate one ``YYYY.toml`` file; its ``year`` must match the name."""
    cal, _ = _read(path)
    return cal


def load_calendars(folder: Path) -> WorkCalendar:
    """Every ``*.toml`` in ``folder`` (each named ``YYYY.toml``), validated, as one new calendar.

    The years covered are exactly those files (docs/routing-rules.md §4: beyond them the
    weekday rule applies and ``covers`` is False).  An empty or missing
    folder is refused rather than read as "weekday rule only": a wrong path
    must not silently drop every holiday.  ``version`` is a digest of the
    file names and bytes, so any change to any file changes it.
    """
    source = str(folder)
    if not folder.is_dir():
        raise CalendarError(source, "not a folder")
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix == ".toml")
    except OSError as exc:
        raise CalendarError(source, f"cannot list: {exc.strerror or exc}") from None
    if not paths:
        raise CalendarError(source, "no calendar files (YYYY.toml)")
    digest = hashlib.sha256()
    years: list[CalendarYear] = []
    for path in paths:
        cal, data = _read(path)
        years.append(cal)
        digest.update(path.name.encode("utf-8") + b"\0" + data + b"\0")
    return WorkCalendar(
        holidays=frozenset().union(*(y.holidays for y in years)),
        workdays=frozenset().union(*(y.workdays for y in years)),
        years=frozenset(y.year for y in years),
        provisional=frozenset(y.year for y in years if y.provisional),
        version=digest.hexdigest()[:VERSION_HEX],
    )


def _read(path: Path) -> tuple[CalendarYear, bytes]:
    source = str(path)
    named = FILE_NAME.match(path.name)
    if named is None:
        raise CalendarError(source, "a calendar file is named YYYY.toml")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalendarError(source, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CalendarError(source, f"not valid UTF-8 (line {line})") from None
    cal = parse_calendar_year(text, source)
    if cal.year != int(named.group(1)):
        raise CalendarError(source, f"{cal.year} does not match the file name", entry="year")
    return cal, data


def _dates(table: Mapping[str, object], key: str, year: int, source: str) -> dict[str, date]:
    """``key``'s dates by entry name (``holidays[3]``), each in ``year`` and listed once."""
    values = table[key]
    if not isinstance(values, list):
        raise CalendarError(source, "must be an array of dates", entry=key)
    found: dict[str, date] = {}
    seen: dict[date, str] = {}
    for index, value in enumerate(values):
        name = f"{key}[{index}]"
        # A TOML local date-time is a ``datetime``, which is also a ``date``.
        if not isinstance(value, date) or isinstance(value, datetime):
            raise CalendarError(source, "must be a TOML date (YYYY-MM-DD, unquoted)", entry=name)
        if value.year != year:
            raise CalendarError(source, f"outside the year {year}", entry=_entry(name, value))
        if value in seen:
            raise CalendarError(
                source, f"listed twice (also {seen[value]})", entry=_entry(name, value)
            )
        seen[value] = name
        found[name] = value
    return found


def _entry(name: str, d: date) -> str:
    return f"{name} = {d.isoformat()}"
