"""Operating windows, next openings and work dates (routing.md §4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import SHANGHAI
from gateway.model import Engine
from gateway.routing.calendar import WorkCalendar
from gateway.routing.windows import (
    DEFAULT_SCHEDULES,
    END_OF_DAY,
    HVPS_2018_PROFILE,
    EngineSchedule,
    ScheduleError,
    Session,
)

CAL = WorkCalendar(
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
    workdays=frozenset({date(2026, 9, 27), date(2026, 10, 10)}),
    years=frozenset({2026}),
)
HVPS = DEFAULT_SCHEDULES[Engine.HVPS]
INTRA = DEFAULT_SCHEDULES[Engine.INTRA]
BEPS = DEFAULT_SCHEDULES[Engine.BEPS]
US = timedelta(microseconds=1)


def at(text: str) -> datetime:
    """A Shanghai local instant from 'YYYY-MM-DD HH:MM[:SS[.ffffff]]'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# -- HVPS 09:00-17:00 working days -----------------------------------------------------


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        ("2026-11-30 08:59:59.999999", False),
        ("2026-11-30 09:00", True),
        ("2026-11-30 16:59:59.999999", True),
        ("2026-11-30 17:00", False),
        ("2026-11-28 10:00", False),  # Saturday
        ("2026-10-01 10:00", False),  # holiday
        ("2026-10-10 10:00", True),  # make-up Saturday
    ],
)
def test_hvps_window(now: str, is_open: bool) -> None:
    assert HVPS.is_open(at(now), CAL) is is_open


@pytest.mark.parametrize(
    ("now", "opening", "work_date"),
    [
        ("2026-11-30 08:59:59", "2026-11-30 09:00", "2026-11-30"),
        ("2026-11-30 00:00", "2026-11-30 09:00", "2026-11-30"),
        ("2026-11-30 17:00", "2026-12-01 09:00", "2026-12-01"),
        ("2026-11-27 17:00", "2026-11-30 09:00", "2026-11-30"),  # Friday -> Monday
        ("2026-11-28 12:00", "2026-11-30 09:00", "2026-11-30"),
        ("2026-09-30 17:00", "2026-10-08 09:00", "2026-10-08"),  # over National Day
        ("2026-10-09 18:00", "2026-10-10 09:00", "2026-10-10"),  # make-up Saturday
    ],
)
def test_hvps_closed_releases_at_the_next_opening(now: str, opening: str, work_date: str) -> None:
    place = HVPS.place(at(now), CAL)
    assert not place.is_open
    assert place.release_at == at(opening)
    assert place.release_at is not None
    assert place.release_at.tzinfo is SHANGHAI
    assert place.work_date == date.fromisoformat(work_date)
    assert HVPS.next_opening(at(now), CAL) == at(opening)
    assert HVPS.work_date(at(now), CAL) == date.fromisoformat(work_date)


def test_hvps_open_work_date_is_the_calendar_date() -> None:
    place = HVPS.place(at("2026-11-27 16:59:59"), CAL)
    assert (place.is_open, place.release_at, place.work_date) == (True, None, date(2026, 11, 27))


def test_next_opening_while_open_is_the_next_session() -> None:
    assert HVPS.next_opening(at("2026-11-27 09:00"), CAL) == at("2026-11-30 09:00")


def test_instants_in_other_zones_are_read_in_shanghai() -> None:
    utc = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert HVPS.is_open(utc, CAL)
    assert not HVPS.is_open(utc - US, CAL)
    assert HVPS.next_opening(utc - US, CAL) == utc


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        HVPS.is_open(datetime(2026, 11, 30, 10, 0), CAL)


# -- INTRA: working days, all day ----------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        ("2026-11-30 00:00", True),
        ("2026-11-27 23:59:59.999999", True),  # Friday's last microsecond
        ("2026-11-28 00:00", False),
        ("2026-11-29 23:59:59.999999", False),
        ("2026-10-01 12:00", False),
    ],
)
def test_intra_window(now: str, is_open: bool) -> None:
    assert INTRA.is_open(at(now), CAL) is is_open


def test_intra_on_saturday_is_held_to_monday_midnight() -> None:
    place = INTRA.place(at("2026-11-28 10:00"), CAL)
    assert place.release_at == at("2026-11-30 00:00")
    assert place.work_date == date(2026, 11, 30)


def test_intra_next_opening_skips_midnights_inside_an_open_period() -> None:
    # Open Monday to Friday without a break: the next closed-to-open change
    # is the Monday after the weekend, not Tuesday 00:00.
    assert INTRA.next_opening(at("2026-11-24 10:00"), CAL) == at("2026-11-30 00:00")
    assert INTRA.next_opening(at("2026-11-30 00:00"), CAL) == at("2026-12-07 00:00")


# -- BEPS: every day, 24 h, work day switches at 16:00 ---------------------------------------


@pytest.mark.parametrize(
    ("now", "work_date"),
    [
        ("2026-11-27 15:59:59.999", "2026-11-27"),
        ("2026-11-27 16:00:00.000", "2026-11-28"),
        ("2026-11-27 00:00", "2026-11-27"),
        ("2026-11-27 23:59:59.999999", "2026-11-28"),
        ("2026-11-28 15:00", "2026-11-28"),  # Saturday: BEPS runs on holidays too
        ("2026-10-01 16:30", "2026-10-02"),
        ("2026-12-31 16:00", "2027-01-01"),
    ],
)
def test_beps_work_date_switches_at_16(now: str, work_date: str) -> None:
    place = BEPS.place(at(now), CAL)
    assert (place.is_open, place.release_at) == (True, None)
    assert place.work_date == date.fromisoformat(work_date)


def test_beps_never_closes_so_it_has_no_next_opening() -> None:
    with pytest.raises(ScheduleError, match="BEPS"):
        BEPS.next_opening(at("2026-11-27 10:00"), CAL)


def test_a_calendar_that_closes_everything_has_no_opening() -> None:
    start = date(2026, 11, 1)
    closed = WorkCalendar(holidays=frozenset(start + timedelta(days=i) for i in range(60)))
    with pytest.raises(ScheduleError, match="HVPS has no opening within 40 days"):
        HVPS.place(at("2026-11-02 10:00"), closed)


# -- the 2018 HVPS profile: 20:30 the evening before a working day -> 17:15 ----------------


@pytest.mark.parametrize(
    ("now", "is_open", "release_at", "work_date"),
    [
        ("2026-11-29 20:29:59.999999", False, "2026-11-29 20:30", "2026-11-30"),  # Sun
        ("2026-11-29 20:30", True, None, "2026-11-30"),  # Sunday evening -> Monday
        ("2026-11-30 00:00", True, None, "2026-11-30"),
        ("2026-11-30 17:14:59.999999", True, None, "2026-11-30"),
        ("2026-11-30 17:15", False, "2026-11-30 20:30", "2026-12-01"),
        ("2026-11-30 20:30", True, None, "2026-12-01"),  # Monday evening -> Tuesday
        ("2026-11-27 20:30", False, "2026-11-29 20:30", "2026-11-30"),  # Friday evening
        ("2026-09-30 20:30", False, "2026-10-07 20:30", "2026-10-08"),  # before a holiday
        ("2026-10-09 21:00", True, None, "2026-10-10"),  # before a make-up Saturday
    ],
)
def test_hvps_2018_profile(now: str, is_open: bool, release_at: str | None, work_date: str) -> None:
    place = HVPS_2018_PROFILE.place(at(now), CAL)
    assert place.is_open is is_open
    assert place.release_at == (at(release_at) if release_at else None)
    assert place.work_date == date.fromisoformat(work_date)


# -- sessions ------------------------------------------------------------------------


def test_session_parse() -> None:
    assert Session.parse("09:00-17:00") == Session(time(9), time(17))
    assert Session.parse("00:00 - 24:00", "every") == Session(time(0), END_OF_DAY, "every")
    overnight = Session.parse("20:30-17:15")
    assert overnight.overnight
    assert str(overnight) == "20:30-17:15 (working)"
    assert str(Session.parse("00:00-24:00")) == "00:00-24:00 (working)"


@pytest.mark.parametrize("text", ["", "09:00", "9-17", "09:00-17:00-18:00", "25:00-26:00"])
def test_session_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        Session.parse(text)


def test_session_validation() -> None:
    with pytest.raises(ValueError, match="equal"):
        Session(time(9), time(9))
    with pytest.raises(ValueError, match="days"):
        Session(time(9), time(17), "weekdays")
    with pytest.raises(ValueError, match="offset"):
        Session(time(9, tzinfo=UTC), time(17))
    with pytest.raises(ValueError, match="no session"):
        EngineSchedule(Engine.HVPS, ())


def test_several_sessions_per_day() -> None:
    split = EngineSchedule(
        Engine.HVPS, (Session.parse("13:30-17:00"), Session.parse("08:30-11:30"))
    )
    assert split.next_opening(at("2026-11-30 12:00"), CAL) == at("2026-11-30 13:30")
    assert split.next_opening(at("2026-11-30 07:00"), CAL) == at("2026-11-30 08:30")
    assert not split.is_open(at("2026-11-30 11:30"), CAL)


def test_default_schedules_are_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_SCHEDULES[Engine.HVPS] = HVPS_2018_PROFILE  # type: ignore[index]


# -- properties over random instants -----------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2026, 9, 1),
    max_value=datetime(2027, 3, 1),
).map(lambda d: d.replace(tzinfo=SHANGHAI))


@settings(max_examples=200, deadline=None)
@given(now=instants, schedule=st.sampled_from([HVPS, INTRA, HVPS_2018_PROFILE]))
def test_a_held_message_is_released_exactly_when_the_engine_opens(
    now: datetime, schedule: EngineSchedule
) -> None:
    place = schedule.place(now, CAL)
    if place.is_open:
        assert place.release_at is None
        assert CAL.is_working_day(place.work_date)
        return
    assert place.release_at is not None
    assert place.release_at > now
    assert schedule.is_open(place.release_at, CAL)
    assert not schedule.is_open(place.release_at - US, CAL)
    assert not schedule.is_open(now + (place.release_at - now) / 2, CAL)
    assert CAL.is_working_day(place.work_date)
    assert place.work_date >= now.date()


@settings(max_examples=200, deadline=None)
@given(now=instants)
def test_beps_work_date_is_today_or_tomorrow(now: datetime) -> None:
    expected = now.date() + timedelta(days=1 if now.time() >= time(16) else 0)
    assert BEPS.work_date(now, CAL) == expected
