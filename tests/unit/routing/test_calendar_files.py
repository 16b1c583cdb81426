"""Calendar files and operating windows as configuration (routing.md §4).

The edges are tested with the shipped ``routing/calendar`` files and real
2026 dates: the State Council's 2026 holidays and make-up working days.
"""

from __future__ import annotations

import shutil
import tomllib
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from gateway.clock import SHANGHAI
from gateway.errors import ConfigError
from gateway.model import Engine
from gateway.paths import data_root
from gateway.routing.calendar import WorkCalendar
from gateway.routing.calendar_files import (
    CalendarError,
    load_calendar_year,
    load_calendars,
    parse_calendar_year,
)
from gateway.routing.windows import (
    DEFAULT_SCHEDULES,
    END_OF_DAY,
    HVPS_2018_PROFILE,
    EngineSchedule,
    Session,
    parse_schedule,
    parse_schedules,
)

CALENDARS = data_root() / "routing" / "calendar"
CAL = load_calendars(CALENDARS)

HVPS = parse_schedule(Engine.HVPS, {})
HVPS_2018 = parse_schedule(Engine.HVPS, {"profile": "hvps-2018"})
INTRA = parse_schedule(Engine.INTRA, {"profile": "default"})
BEPS = parse_schedule(Engine.BEPS, {})


def at(text: str) -> datetime:
    """A Shanghai local instant from 'YYYY-MM-DD HH:MM[:SS[.fff]]'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def d(text: str) -> date:
    return date.fromisoformat(text)


# -- the shipped files ---------------------------------------------------------------


def test_shipped_calendars_cover_2026_officially_and_2027_provisionally() -> None:
    assert CAL.years == {2026, 2027}
    assert CAL.covers(d("2026-06-01"))
    assert CAL.covers(d("2027-12-31"))
    assert not CAL.is_provisional(d("2026-10-01"))
    assert CAL.is_provisional(d("2027-10-01"))
    assert len(CAL.version) == 16
    assert int(CAL.version, 16) >= 0
    assert "2026-2027" in repr(CAL)
    assert "provisional [2027]" in repr(CAL)
    assert load_calendar_year(CALENDARS / "2027.toml").provisional
    assert not load_calendar_year(CALENDARS / "2026.toml").provisional


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2026-01-01", False),  # New Year, Thu
        ("2026-01-02", False),  # Fri off
        ("2026-01-04", True),  # make-up Sunday
        ("2026-02-13", True),  # Fri before the Spring Festival
        ("2026-02-14", True),  # make-up Saturday
        ("2026-02-15", False),  # 腊月廿八, Sun
        ("2026-02-17", False),  # 正月初一
        ("2026-02-23", False),  # 正月初七, Mon
        ("2026-02-24", True),
        ("2026-02-28", True),  # make-up Saturday
        ("2026-04-06", False),  # Qingming Monday
        ("2026-05-05", False),  # Labour Day Tuesday
        ("2026-05-09", True),  # make-up Saturday
        ("2026-06-19", False),  # Dragon Boat
        ("2026-09-20", True),  # make-up Sunday
        ("2026-09-25", False),  # Mid-Autumn
        ("2026-10-01", False),
        ("2026-10-07", False),
        ("2026-10-08", True),
        ("2026-10-10", True),  # make-up Saturday
        ("2026-10-11", False),  # an ordinary Sunday
        ("2026-11-30", True),  # an ordinary Monday
    ],
)
def test_2026_is_the_state_council_calendar(day: str, working: bool) -> None:
    assert CAL.is_working_day(d(day)) is working


def test_make_up_days_are_weekends_and_holidays_are_off() -> None:
    assert all(day.weekday() >= 5 for day in CAL.workdays)
    assert not any(CAL.is_working_day(day) for day in CAL.holidays)


@pytest.mark.parametrize("year", [2026, 2027])
def test_no_more_than_six_working_days_in_a_row(year: int) -> None:
    # The 2024 rules (and the 2027 estimate built on them): at most 6 in a row.
    run = longest = 0
    day = date(year, 1, 1)
    while day.year == year:
        run = run + 1 if CAL.is_working_day(day) else 0
        longest = max(longest, run)
        day += timedelta(days=1)
    assert longest <= 6


def test_beyond_the_loaded_years_the_weekday_rule_applies() -> None:
    assert not CAL.covers(d("2028-01-03"))
    assert not CAL.covers(d("2025-12-31"))
    assert not CAL.is_provisional(d("2028-01-03"))
    assert CAL.is_working_day(d("2028-01-03"))  # a Monday
    assert not CAL.is_working_day(d("2028-01-01"))  # a Saturday
    assert CAL.is_working_day(d("2025-10-01"))  # a Wednesday: no 2025 file, so "working"


# -- file validation -------------------------------------------------------------------

GOOD = """\
year = 2026
source = "test notice"
holidays = [2026-10-01, 2026-10-02]
workdays = [2026-10-10]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_parses() -> None:
    year = parse_calendar_year(GOOD, "<test>")
    assert year.year == 2026
    assert year.source == "test notice"
    assert not year.provisional
    assert year.holidays == {d("2026-10-01"), d("2026-10-02")}
    assert year.workdays == {d("2026-10-10")}


@pytest.mark.parametrize(
    ("text", "entry", "problem"),
    [
        (GOOD.replace("2026-10-02]", "2025-12-31]"), "holidays[1] = 2025-12-31", "outside the year 2026"),
        (GOOD.replace("[2026-10-10]", "[2027-01-02]"), "workdays[0] = 2027-01-02", "outside the year"),
        (GOOD.replace("2026-10-02]", "2026-10-01]"), "holidays[1] = 2026-10-01", "listed twice (also holidays[0])"),
        (GOOD.replace("[2026-10-10]", "[2026-10-10, 2026-10-10]"), "workdays[1] = 2026-10-10", "listed twice"),
        (GOOD.replace("[2026-10-10]", "[2026-10-03]").replace("2026-10-02]", "2026-10-03]"),
         "workdays[0] = 2026-10-03", "also listed as a holiday (holidays[1])"),
        (GOOD.replace("[2026-10-10]", "[2026-10-12]"), "workdays[0] = 2026-10-12", "a Monday"),
        (GOOD.replace("[2026-10-10]", '["2026-10-10"]'), "workdays[0]", "must be a TOML date"),
        (GOOD.replace("[2026-10-10]", "[2026-10-10T09:00:00]"), "workdays[0]", "must be a TOML date"),
        (GOOD.replace("[2026-10-10]", "2026-10-10"), "workdays", "must be an array"),
        (GOOD + "region = 'CN'\n", "region", "unknown key"),
        (GOOD.replace("workdays = [2026-10-10]\n", ""), "workdays", "missing"),
        (GOOD.replace('source = "test notice"', 'source = " "'), "source", "non-empty"),
        (GOOD.replace("year = 2026", "year = 20260"), "year", "must be a year"),
        (GOOD.replace("year = 2026", 'year = "2026"'), "year", "must be a year"),
        (GOOD + "provisional = 'yes'\n", "provisional", "true or false"),
    ],
)  # fmt: skip
def test_bad_entries_are_named_with_the_file(text: str, entry: str, problem: str) -> None:
    with pytest.raises(CalendarError) as caught:
        parse_calendar_year(text, "routing/calendar/2026.toml")
    message = str(caught.value)
    assert message.startswith(f"routing/calendar/2026.toml: {entry}")
    assert problem in message
    assert caught.value.source == "routing/calendar/2026.toml"


def test_not_toml_is_refused_with_its_position() -> None:
    with pytest.raises(CalendarError, match=r"2026\.toml: not valid TOML: .*line 2"):
        parse_calendar_year("year = 2026\nholidays = [2026-13-01]\n", "2026.toml")


def test_the_year_must_match_the_file_name(tmp_path: Path) -> None:
    write(tmp_path, "2027.toml", GOOD)
    with pytest.raises(CalendarError, match=r"2027\.toml: year: 2026 does not match"):
        load_calendars(tmp_path)


def test_a_toml_file_not_named_after_its_year_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "2026.toml", GOOD)
    write(tmp_path, "calendar-2027.toml", GOOD)
    with pytest.raises(CalendarError, match=r"calendar-2027\.toml: a calendar file is named"):
        load_calendars(tmp_path)


def test_other_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "2026.toml", GOOD)
    write(tmp_path, "README.md", "notes")
    write(tmp_path, "2026.toml~", "editor backup, not TOML at all")
    cal = load_calendars(tmp_path)
    assert cal.years == {2026}
    assert not cal.is_working_day(d("2026-10-01"))


def test_invalid_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "2026.toml").write_bytes(GOOD.encode() + b"# \xff\n")
    with pytest.raises(CalendarError, match=r"2026\.toml: not valid UTF-8 \(line 5\)"):
        load_calendars(tmp_path)


def test_an_empty_or_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="no calendar files"):
        load_calendars(tmp_path)
    with pytest.raises(CalendarError, match="not a folder"):
        load_calendars(tmp_path / "absent")


def test_reload_validates_every_file_before_anything_changes(tmp_path: Path) -> None:
    folder = tmp_path / "calendar"
    shutil.copytree(CALENDARS, folder)
    current = load_calendars(folder)
    assert current.version == CAL.version

    # One bad file refuses the whole folder; the caller keeps ``current``.
    good_2027 = (folder / "2027.toml").read_text(encoding="utf-8")
    write(folder, "2027.toml", good_2027.replace("2027-02-13,", "2027-02-15,"))  # a Monday
    with pytest.raises(CalendarError, match=r"2027\.toml: workdays\[1\] = 2027-02-15: a Monday"):
        load_calendars(folder)
    assert current.is_working_day(d("2027-02-13"))

    # A fixed file gives a new object with a new version; the old one is untouched.
    write(folder, "2027.toml", good_2027.replace("provisional = true", "provisional = false"))
    fresh = load_calendars(folder)
    assert fresh is not current
    assert fresh.version != current.version
    assert not fresh.is_provisional(d("2027-06-01"))
    assert current.is_provisional(d("2027-06-01"))

    # Removing a year's file stops covering it.
    (folder / "2027.toml").unlink()
    assert not load_calendars(folder).covers(d("2027-06-01"))


def test_calendar_refuses_a_provisional_year_it_does_not_cover() -> None:
    with pytest.raises(ValueError, match="provisional year 2027"):
        WorkCalendar(years=frozenset({2026}), provisional=frozenset({2027}))


# -- operating windows from configuration -----------------------------------------------


def test_profiles_are_the_shipped_schedules() -> None:
    assert DEFAULT_SCHEDULES[Engine.HVPS] == HVPS
    assert HVPS_2018 == HVPS_2018_PROFILE
    assert DEFAULT_SCHEDULES[Engine.INTRA] == INTRA
    assert DEFAULT_SCHEDULES[Engine.BEPS] == BEPS
    assert BEPS.cutoff == time(16)


def test_sessions_from_toml() -> None:
    table = tomllib.loads(
        """
        [windows.hvps]
        sessions = [
          { open = "08:30", close = "11:30" },
          { open = "13:30", close = "17:00", days = "working" },
        ]
        [windows.beps]
        sessions = [{ open = "00:00", close = "24:00", days = "every" }]
        cutoff = "16:30"
        [windows.intra]
        profile = "default"
        """
    )
    schedules = parse_schedules(table["windows"])
    assert schedules[Engine.HVPS] == EngineSchedule(
        Engine.HVPS, (Session(time(8, 30), time(11, 30)), Session(time(13, 30), time(17)))
    )
    assert schedules[Engine.BEPS] == EngineSchedule(
        Engine.BEPS, (Session(time(0), END_OF_DAY, "every"),), cutoff=time(16, 30)
    )
    assert schedules[Engine.INTRA] == DEFAULT_SCHEDULES[Engine.INTRA]
    assert schedules[Engine.HVPS].is_open(at("2026-11-30 08:30"), CAL)
    assert not schedules[Engine.HVPS].is_open(at("2026-11-30 12:00"), CAL)


def test_unnamed_engines_keep_their_defaults() -> None:
    assert parse_schedules({}) == dict(DEFAULT_SCHEDULES)
    only_hvps = parse_schedules({"hvps": {"profile": "hvps-2018"}})
    assert only_hvps[Engine.HVPS] == HVPS_2018_PROFILE
    assert only_hvps[Engine.BEPS] == DEFAULT_SCHEDULES[Engine.BEPS]


def test_beps_sessions_without_cutoff_keep_16_00_and_a_profile_takes_one() -> None:
    listed = parse_schedule(Engine.BEPS, {"sessions": [{"open": "00:00", "close": "24:00"}]})
    assert listed.cutoff == time(16)
    assert parse_schedule(Engine.BEPS, {"cutoff": "15:30"}).cutoff == time(15, 30)


@pytest.mark.parametrize(
    ("engine", "spec", "message"),
    [
        (Engine.HVPS, {"profil": "default"}, r"windows\.hvps\.profil: unknown key"),
        (Engine.HVPS, {"profile": "default", "sessions": []}, "either profile or sessions"),
        (Engine.HVPS, {"profile": "hvps-2019"}, r"windows\.hvps\.profile: must be one of default, hvps-2018"),
        (Engine.HVPS, {"profile": 2018}, r"profile: must be one of"),
        (Engine.INTRA, {"profile": "hvps-2018"}, r"windows\.intra\.profile: hvps-2018 is not a schedule for INTRA"),
        (Engine.HVPS, {"cutoff": "16:00"}, r"windows\.hvps\.cutoff: applies to BEPS only"),
        (Engine.BEPS, {"cutoff": "4pm"}, r"windows\.beps\.cutoff: must be HH:MM"),
        (Engine.BEPS, {"cutoff": "24:00"}, r"cutoff: must be HH:MM"),
        (Engine.HVPS, {"sessions": []}, r"sessions: must be a non-empty array"),
        (Engine.HVPS, {"sessions": "09:00-17:00"}, r"sessions: must be a non-empty array"),
        (Engine.HVPS, {"sessions": ["09:00-17:00"]}, r"sessions\[0\]: must be a table"),
        (Engine.HVPS, {"sessions": [{"close": "17:00"}]}, r"sessions\[0\]\.open: missing"),
        (Engine.HVPS, {"sessions": [{"open": "09:00"}]}, r"sessions\[0\]\.close: missing"),
        (Engine.HVPS, {"sessions": [{"open": "9:00", "close": "17:00"}]}, r"sessions\[0\]\.open: must be HH:MM$"),
        (Engine.HVPS, {"sessions": [{"open": "24:00", "close": "17:00"}]}, r"open: must be HH:MM$"),
        (Engine.HVPS, {"sessions": [{"open": "09:00", "close": "17:60"}]}, r"close: must be HH:MM or 24:00"),
        (Engine.HVPS, {"sessions": [{"open": "09:00", "close": 1700}]}, r"close: must be HH:MM or 24:00"),
        (Engine.HVPS, {"sessions": [{"open": "09:00", "close": "09:00"}]}, r"sessions\[0\]: open and close are equal"),
        (Engine.HVPS, {"sessions": [{"open": "09:00", "close": "17:00", "days": "weekdays"}]},
         r"sessions\[0\]\.days: must be one of every, working"),
        (Engine.HVPS, {"sessions": [{"open": "09:00", "close": "17:00", "tz": "UTC"}]},
         r"sessions\[0\]\.tz: unknown key"),
    ],
)  # fmt: skip
def test_schedule_configuration_errors_name_the_key(
    engine: Engine, spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_schedule(engine, spec)


def test_schedules_table_errors() -> None:
    with pytest.raises(ConfigError, match=r"windows\.cips: unknown engine"):
        parse_schedules({"cips": {}})
    with pytest.raises(ConfigError, match=r"windows\.hvps: must be a table"):
        parse_schedules({"hvps": "hvps-2018"})
    with pytest.raises(ConfigError, match=r"gw\.windows\.beps\.cutoff"):
        parse_schedules({"beps": {"cutoff": "x"}}, where="gw.windows")


# -- the edges, with the shipped calendar and real 2026 dates ---------------------------


@pytest.mark.parametrize(
    ("schedule", "now", "is_open", "release_at", "work_date"),
    [
        # HVPS 09:00-17:00 on working days
        (HVPS, "2026-11-30 08:59:59", False, "2026-11-30 09:00", "2026-11-30"),
        (HVPS, "2026-11-30 09:00:00", True, None, "2026-11-30"),
        (HVPS, "2026-11-30 16:59:59", True, None, "2026-11-30"),
        (HVPS, "2026-11-30 17:00:00", False, "2026-12-01 09:00", "2026-12-01"),
        # the 2018 profile: 20:30 the evening before a working day -> 17:15
        (HVPS_2018, "2026-11-29 20:29:59", False, "2026-11-29 20:30", "2026-11-30"),
        (HVPS_2018, "2026-11-29 20:30:00", True, None, "2026-11-30"),  # Sunday evening
        (HVPS_2018, "2026-11-30 17:14:59", True, None, "2026-11-30"),
        (HVPS_2018, "2026-11-30 17:15:00", False, "2026-11-30 20:30", "2026-12-01"),
        # a holiday: National Day
        (HVPS, "2026-10-01 10:00", False, "2026-10-08 09:00", "2026-10-08"),
        (HVPS, "2026-09-30 17:00", False, "2026-10-08 09:00", "2026-10-08"),
        (INTRA, "2026-10-01 10:00", False, "2026-10-08 00:00", "2026-10-08"),
        (INTRA, "2026-09-30 23:59:59", True, None, "2026-09-30"),
        (HVPS_2018, "2026-09-30 20:30", False, "2026-10-07 20:30", "2026-10-08"),
        # the Spring Festival, from its make-up Saturday
        (HVPS, "2026-02-14 17:00", False, "2026-02-24 09:00", "2026-02-24"),
        (INTRA, "2026-02-15 00:00", False, "2026-02-24 00:00", "2026-02-24"),
        # make-up Saturdays and a make-up Sunday are working days
        (HVPS, "2026-10-10 10:00", True, None, "2026-10-10"),
        (INTRA, "2026-10-10 10:00", True, None, "2026-10-10"),
        (HVPS, "2026-10-09 17:00", False, "2026-10-10 09:00", "2026-10-10"),
        (INTRA, "2026-10-10 00:00", True, None, "2026-10-10"),
        (INTRA, "2026-10-11 00:00", False, "2026-10-12 00:00", "2026-10-12"),
        (HVPS, "2026-02-28 09:00", True, None, "2026-02-28"),
        (HVPS_2018, "2026-10-09 20:30", True, None, "2026-10-10"),  # Fri evening -> make-up Sat
        (HVPS_2018, "2026-09-19 20:29:59", False, "2026-09-19 20:30", "2026-09-20"),
        (HVPS_2018, "2026-09-19 20:30", True, None, "2026-09-20"),  # Sat evening -> make-up Sun
        # into the provisional 2027 file
        (HVPS, "2026-12-31 17:00", False, "2027-01-04 09:00", "2027-01-04"),
    ],
)  # fmt: skip
def test_edges_on_the_real_calendar(
    schedule: EngineSchedule, now: str, is_open: bool, release_at: str | None, work_date: str
) -> None:
    place = schedule.place(at(now), CAL)
    assert place.is_open is is_open
    assert place.release_at == (at(release_at) if release_at else None)
    assert place.work_date == d(work_date)


@pytest.mark.parametrize(
    ("now", "work_date"),
    [
        ("2026-09-30 15:59:59.999", "2026-09-30"),
        ("2026-09-30 16:00:00.000", "2026-10-01"),  # a holiday: BEPS runs every day
        ("2026-10-01 15:59:59.999", "2026-10-01"),
        ("2026-10-01 16:00:00.000", "2026-10-02"),
        ("2026-10-10 15:59:59.999", "2026-10-10"),  # make-up Saturday
        ("2026-10-10 16:00:00.000", "2026-10-11"),
        ("2026-12-31 16:00:00.000", "2027-01-01"),
    ],
)
def test_beps_cutoff_on_the_real_calendar(now: str, work_date: str) -> None:
    place = BEPS.place(at(now), CAL)
    assert (place.is_open, place.release_at) == (True, None)
    assert place.work_date == d(work_date)


def test_a_configured_beps_cutoff_moves_the_switch() -> None:
    late = parse_schedule(Engine.BEPS, {"cutoff": "16:30"})
    assert late.work_date(at("2026-11-30 16:29:59.999"), CAL) == d("2026-11-30")
    assert late.work_date(at("2026-11-30 16:30:00.000"), CAL) == d("2026-12-01")
