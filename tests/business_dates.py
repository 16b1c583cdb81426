"""Today" for the test suite, and nothing else.

Integration tests pick their business dates from the shipped calendars,
counting back from today. ``GATEWAY_TEST_DATE=YYYY-MM-DD`` pins that "today"
so a run can stand on any date: CI sweeps the date-sensitive tests over
weekdays, a make-up Saturday, the days around a holiday and a year boundary
(``.ci/run``). Only the harness reads the variable; the daemon never does —
its business clock is ``clock.start`` under ``environment = "test"``
(docs/operations.md, the clock section).
"""

from __future__ import annotations

import os
from datetime import date, datetime

from gateway.clock import SHANGHAI

TEST_DATE_ENV = "GATEWAY_TEST_DATE"


def suite_today() -> date:
    """The pinned date, or today in Asia/Shanghai."""
    pinned = os.environ.get(TEST_DATE_ENV, "").strip()
    if not pinned:
        return datetime.now(SHANGHAI).date()
    try:
        return date.fromisoformat(pinned)
    except ValueError as exc:
        raise SystemExit(f"{TEST_DATE_ENV}={pinned!r} is not an ISO date (YYYY-MM-DD)") from exc


def suite_now() -> datetime:
    """The current time of day on :func:`suite_today` (Asia/Shanghai): the instant
    the session's dev PKI is issued at, so its validity and CRL fit the pinned date."""
    wall = datetime.now(SHANGHAI)
    return datetime.combine(suite_today(), wall.time(), SHANGHAI) if _pinned() else wall


def _pinned() -> bool:
    return bool(os.environ.get(TEST_DATE_ENV, "").strip())
