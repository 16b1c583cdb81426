"""Operating windows and work dates per engine (docs/routing-rules.md §4), as pure functions.

Every answer is a function of ``(now, calendar)``: the caller passes an aware
``now`` from the injected clock (docs/architecture.md §7, principle 5), and this module
works in Asia/Shanghai local time.  No clock is read here.

A schedule is a list of sessions.  Each session *belongs* to one work day D
(a working day, or any day for ``days="every"``) and covers the half-open
interval ``[open, close)``:

* ``open < close``: both on D (HVPS 09:00 ≤ t < 17:00);
* ``close == END_OF_DAY``: up to 24:00 of D, i.e. midnight of D + 1
  (INTRA and BEPS are open "all day");
* ``open > close``: the session starts on the evening of the calendar day
  before D and ends on D — the HVPS schedule since May 2018 (20:30 the
  evening before a working day → 17:15), whose evening part belongs to D's
  work date.

Sessions of consecutive days that touch (INTRA Mon 00:00-24:00 and Tue
00:00-24:00) form one open period: the "next opening" is the next instant at
which a closed engine becomes open, never a midnight in the middle of an open
period.

Windows are configuration (docs/routing-rules.md §4, "a list of sessions per engine"):
:func:`parse_schedule` builds an engine's schedule from its TOML table, either
a named profile (:data:`PROFILES`) or a list of sessions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import NamedTuple

from gateway.clock import SHANGHAI
from gateway.errors import ConfigError
from gateway.model import Engine
from gateway.routing.calendar import WorkCalendar

END_OF_DAY = time.max
"""A session ``close`` meaning 24:00 (midnight at the end of the work day)."""

SEARCH_DAYS = 40
"""How far ahead ``next_opening`` looks.  The longest Chinese public holiday
with its bridging weekends is about nine days; 40 covers any sane calendar
and bounds the work on a calendar that (wrongly) closes everything."""

_FIRST_LOOK_DAYS = 7
DAY_KINDS = frozenset({"working", "every"})
_ONE_DAY = timedelta(days=1)


class ScheduleError(LookupError):
    """No opening within ``SEARCH_DAYS``: the schedule or the calendar is wrong."""


def local(now: datetime) -> datetime:
    """``now`` as Asia/Shanghai local time; naive datetimes are refused."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("routing needs an aware datetime")
    return now.astimezone(SHANGHAI)


@dataclass(frozen=True, slots=True)
class Session:
    """One acceptance window, ``open ≤ t < close`` (docs/routing-rules.md §4)."""

    open: time
    close: time
    days: str = "working"  # "working": working days only; "every": every calendar day

    def __post_init__(self) -> None:
        if self.days not in DAY_KINDS:
            raise ValueError(f"session days must be one of {', '.join(sorted(DAY_KINDS))}")
        if self.open.tzinfo is not None or self.close.tzinfo is not None:
            raise ValueError("session times are Asia/Shanghai wall-clock times, without offset")
        if self.open == self.close:
            raise ValueError("session open and close are equal; use 00:00-24:00 for all day")

    @classmethod
    def parse(cls, text: str, days: str = "working") -> Session:
        """``"09:00-17:00"``, ``"00:00-24:00"``, ``"20:30-17:15"`` (evening before)."""
        try:
            first, second = (part.strip() for part in text.split("-"))
            opening = time.fromisoformat(first)
            closing = END_OF_DAY if second == "24:00" else time.fromisoformat(second)
        except ValueError:
            raise ValueError(f"session {text!r} must be HH:MM-HH:MM") from None
        return cls(opening, closing, days)

    @property
    def overnight(self) -> bool:
        """True when the session starts on the evening before its work day."""
        return self.open > self.close

    def on(self, day: date, cal: WorkCalendar) -> _Occurrence | None:
        """This session's interval for work day ``day``, or None if it does not run then."""
        if self.days == "working" and not cal.is_working_day(day):
            return None
        start_day = day - _ONE_DAY if self.overnight else day
        start = datetime.combine(start_day, self.open, SHANGHAI)
        if self.close == END_OF_DAY:
            end = datetime.combine(day + _ONE_DAY, time(0), SHANGHAI)
        else:
            end = datetime.combine(day, self.close, SHANGHAI)
        return _Occurrence(start, end, day)

    def __str__(self) -> str:
        close = "24:00" if self.close == END_OF_DAY else self.close.strftime("%H:%M")
        return f"{self.open.strftime('%H:%M')}-{close} ({self.days})"


class _Occurrence(NamedTuple):
    start: datetime
    end: datetime  # exclusive
    work_day: date


@dataclass(frozen=True, slots=True)
class Placement:
    """Where ``now`` falls in a schedule: open or not, the release time, the work date."""

    is_open: bool
    release_at: datetime | None  # the next opening when closed, else None
    work_date: date


@dataclass(frozen=True, slots=True)
class EngineSchedule:
    """An engine's sessions and, for BEPS, its work-day switch (docs/routing-rules.md §4)."""

    engine: Engine
    sessions: tuple[Session, ...]
    cutoff: time | None = None  # BEPS: the work day switches at 16:00

    def __post_init__(self) -> None:
        if not self.sessions:
            raise ValueError(f"{self.engine.value} schedule has no session")
        if self.cutoff is not None and self.cutoff.tzinfo is not None:
            raise ValueError("cutoff is an Asia/Shanghai wall-clock time, without offset")

    def is_open(self, now: datetime, cal: WorkCalendar) -> bool:
        """True when ``now`` lies inside one of the sessions."""
        return self._containing(local(now), cal) is not None

    def next_opening(self, now: datetime, cal: WorkCalendar) -> datetime:
        """The next instant strictly after ``now`` at which the engine goes from closed to open.

        Raises :class:`ScheduleError` when there is none within ``SEARCH_DAYS``
        (also for an engine that never closes, such as BEPS).
        """
        return self._next_opening(local(now), cal).start

    def work_date(self, now: datetime, cal: WorkCalendar) -> date:
        """The work date a message arriving at ``now`` carries (docs/routing-rules.md §4).

        See :meth:`place`.
        """
        return self.place(now, cal).work_date

    def place(self, now: datetime, cal: WorkCalendar) -> Placement:
        """Open or closed, release time and work date, in one pass.

        The work date is taken at the instant the message is handled: ``now``
        when open, else the next opening (a held message is cleared on the
        work date of the session that releases it, not on a weekend).  At
        that instant: with a ``cutoff`` (BEPS), D if t < cutoff else D + 1
        calendar day (15:59:59.999 → D, 16:00:00.000 → D + 1); without one
        (HVPS, INTRA), the work day the session belongs to — the calendar
        date, or the next working day for an evening session.
        """
        at = local(now)
        occurrence = self._containing(at, cal)
        if occurrence is not None:
            return Placement(True, None, self._work_date(at, occurrence))
        opening = self._next_opening(at, cal)
        return Placement(False, opening.start, self._work_date(opening.start, opening))

    # -- internals --------------------------------------------------------------

    def _work_date(self, at: datetime, occurrence: _Occurrence) -> date:
        if self.cutoff is None:
            return occurrence.work_day
        day = at.date()
        return day + _ONE_DAY if at.time() >= self.cutoff else day

    def _containing(self, at: datetime, cal: WorkCalendar) -> _Occurrence | None:
        # An instant on calendar day d lies in a session of work day d, or in
        # the evening part of an overnight session of work day d + 1.
        day = at.date()
        for work_day in (day, day + _ONE_DAY):
            for session in self.sessions:
                occurrence = session.on(work_day, cal)
                if occurrence is not None and occurrence.start <= at < occurrence.end:
                    return occurrence
        return None

    def _next_opening(self, at: datetime, cal: WorkCalendar) -> _Occurrence:
        # Look a week ahead first (nights, weekends, most holidays), then the
        # whole SEARCH_DAYS: a Saturday payroll of 50,000 items routes each
        # item on its own, so the common case must stay cheap.
        for horizon in (_FIRST_LOOK_DAYS, SEARCH_DAYS):
            found = self._opening_within(at, cal, horizon)
            if found is not None:
                return found
        raise ScheduleError(f"{self.engine.value} has no opening within {SEARCH_DAYS} days")

    def _opening_within(self, at: datetime, cal: WorkCalendar, days: int) -> _Occurrence | None:
        """The first closed-to-open change after ``at`` among work days up to ``days`` ahead.

        Sessions of later work days start no earlier than midnight of day
        ``days`` (an evening session starts the day before its work day), so
        an opening before that instant is final; a later one may not be.
        """
        day = at.date()
        occurrences = sorted(
            occurrence
            for offset in range(-1, days + 1)
            for session in self.sessions
            if (occurrence := session.on(day + timedelta(days=offset), cal)) is not None
        )
        complete_before = datetime.combine(day + timedelta(days=days), time(0), SHANGHAI)
        covered_until: datetime | None = None  # end of the open period seen so far
        for occurrence in occurrences:
            if occurrence.start >= complete_before and days < SEARCH_DAYS:
                return None
            gap = covered_until is None or occurrence.start > covered_until
            if occurrence.start > at and gap:
                return occurrence
            if covered_until is None or occurrence.end > covered_until:
                covered_until = occurrence.end
        return None


DEFAULT_SCHEDULES: Mapping[Engine, EngineSchedule] = MappingProxyType(
    {
        # docs/routing-rules.md §4 table: HVPS working days 09:00 ≤ t < 17:00.
        Engine.HVPS: EngineSchedule(Engine.HVPS, (Session(time(9), time(17)),)),
        # INTRA: working days, all day.
        Engine.INTRA: EngineSchedule(Engine.INTRA, (Session(time(0), END_OF_DAY),)),
        # BEPS: every day, holidays included, 24 h; the work day switches at 16:00.
        Engine.BEPS: EngineSchedule(
            Engine.BEPS, (Session(time(0), END_OF_DAY, "every"),), cutoff=time(16)
        ),
    }
)
"""The default schedules (docs/routing-rules.md §4).  Read-only; copy with ``dict(...)`` to
change."""

HVPS_2018_PROFILE = EngineSchedule(Engine.HVPS, (Session(time(20, 30), time(17, 15)),))
"""HVPS since 2018-05-02 (docs/routing-rules.md §4): 20:30 the evening before a working day to
17:15 (cut-off) on it; the evening part carries the working day's work date."""


# -- operating windows as configuration ----------------------------------------------

PROFILES: Mapping[str, Mapping[Engine, EngineSchedule]] = MappingProxyType(
    {
        "default": DEFAULT_SCHEDULES,
        "hvps-2018": MappingProxyType({Engine.HVPS: HVPS_2018_PROFILE}),
    }
)
"""Named schedules a configuration may choose instead of listing sessions (docs/routing-rules.md
§4).

``"default"`` is the table of docs/routing-rules.md §4 for each engine; ``"hvps-2018"``
is the HVPS schedule since May 2018 and exists for HVPS only.
"""

SCHEDULE_KEYS = frozenset({"profile", "sessions", "cutoff"})
SESSION_KEYS = frozenset({"open", "close", "days"})
_HHMM = re.compile(r"\A(?:[01][0-9]|2[0-3]):[0-5][0-9]\Z")
_CUTOFF_ENGINES = frozenset({Engine.BEPS})


def parse_schedule(
    engine: Engine, spec: Mapping[str, object], *, where: str = ""
) -> EngineSchedule:
    """One engine's schedule from its configuration table (docs/routing-rules.md §4).

    ``spec`` is a TOML table such as ``{profile = "hvps-2018"}`` or
    ``{sessions = [{open = "09:00", close = "17:00", days = "working"}]}``;
    ``profile`` and ``sessions`` exclude each other, and an empty table means
    ``profile = "default"``.  ``cutoff = "HH:MM"`` is the work-day switch and
    applies to BEPS only (docs/routing-rules.md §4: D if t < 16:00, else D + 1); BEPS
    keeps 16:00 when it is not given.  Times are Asia/Shanghai wall-clock
    ``HH:MM``; ``close = "24:00"`` means midnight at the end of the day, and a
    ``close`` earlier than ``open`` starts the session on the evening before.

    Raises ``ConfigError`` naming the key (``where`` prefixes it, e.g.
    ``"windows.hvps"``; the caller adds the file).  Unknown keys are errors.
    """
    prefix = where or f"windows.{engine.value.lower()}"
    for key in spec:
        if key not in SCHEDULE_KEYS:
            raise ConfigError(f"{prefix}.{key}: unknown key")
    profile = spec.get("profile")
    sessions = spec.get("sessions")
    if profile is not None and sessions is not None:
        raise ConfigError(f"{prefix}: give either profile or sessions, not both")
    cutoff = _cutoff(engine, spec.get("cutoff"), prefix)

    if sessions is None:
        name = "default" if profile is None else profile
        if not isinstance(name, str) or name not in PROFILES:
            raise ConfigError(f"{prefix}.profile: must be one of {', '.join(sorted(PROFILES))}")
        preset = PROFILES[name].get(engine)
        if preset is None:
            raise ConfigError(f"{prefix}.profile: {name} is not a schedule for {engine.value}")
        if cutoff is None:
            return preset
        return EngineSchedule(engine, preset.sessions, cutoff=cutoff)

    if not isinstance(sessions, list) or not sessions:
        raise ConfigError(f"{prefix}.sessions: must be a non-empty array of tables")
    parsed = tuple(
        _session(item, f"{prefix}.sessions[{index}]") for index, item in enumerate(sessions)
    )
    if cutoff is None and engine in _CUTOFF_ENGINES:
        cutoff = DEFAULT_SCHEDULES[engine].cutoff
    return EngineSchedule(engine, parsed, cutoff=cutoff)


def parse_schedules(
    spec: Mapping[str, object], *, where: str = "windows"
) -> dict[Engine, EngineSchedule]:
    """The ``[windows]`` table: one sub-table per engine (``hvps``, ``intra``, ``beps``).

    An engine that is not named keeps its default schedule; an unknown
    engine name is an error.
    """
    # SWIFT has no [windows] table: its window is the currency's cutoff
    # (docs/foreign-currency.md §2, ``routing.settlement_paths``).
    by_name = {engine.value.lower(): engine for engine in Engine if engine is not Engine.SWIFT}
    schedules = dict(DEFAULT_SCHEDULES)
    for name, table in spec.items():
        engine = by_name.get(name)
        if engine is None:
            raise ConfigError(f"{where}.{name}: unknown engine (hvps, intra or beps)")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}.{name}: must be a table")
        schedules[engine] = parse_schedule(engine, table, where=f"{where}.{name}")
    return schedules


def _cutoff(engine: Engine, value: object, prefix: str) -> time | None:
    if value is None:
        return None
    if engine not in _CUTOFF_ENGINES:
        raise ConfigError(f"{prefix}.cutoff: applies to BEPS only (docs/routing-rules.md §4)")
    if not isinstance(value, str) or _HHMM.match(value) is None:
        raise ConfigError(f"{prefix}.cutoff: must be HH:MM")
    return time.fromisoformat(value)


def _session(item: object, prefix: str) -> Session:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{prefix}: must be a table with open and close")
    for key in item:
        if key not in SESSION_KEYS:
            raise ConfigError(f"{prefix}.{key}: unknown key")
    opening = _clock_time(item.get("open"), f"{prefix}.open", allow_midnight_end=False)
    closing = _clock_time(item.get("close"), f"{prefix}.close", allow_midnight_end=True)
    days = item.get("days", "working")
    if not isinstance(days, str) or days not in DAY_KINDS:
        raise ConfigError(f"{prefix}.days: must be one of {', '.join(sorted(DAY_KINDS))}")
    if opening == closing:
        raise ConfigError(f"{prefix}: open and close are equal; use 00:00-24:00 for all day")
    return Session(opening, closing, days)


def _clock_time(value: object, key: str, *, allow_midnight_end: bool) -> time:
    if value is None:
        raise ConfigError(f"{key}: missing")
    if allow_midnight_end and value == "24:00":
        return END_OF_DAY
    if not isinstance(value, str) or _HHMM.match(value) is None:
        raise ConfigError(f"{key}: must be HH:MM" + (" or 24:00" if allow_midnight_end else ""))
    return time.fromisoformat(value)
