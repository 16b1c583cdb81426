"""The injected clock (docs/architecture.md §7, principle 5).

Every rule that depends on time (operating windows, work dates, SendTime
freshness, certificate validity, receipt timeouts) reads ``Clock.now()``, so a
test can stand at 15:59:59.999 and the demo can run on a business clock
(docs/routing-rules.md §4: ``clock.start`` / ``clock.rate``, test environments only).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    """Gives the current instant as an aware datetime in Asia/Shanghai."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in Asia/Shanghai."""

    def __init__(self, tz: ZoneInfo = SHANGHAI) -> None:
        self._tz = tz

    def now(self) -> datetime:
        return datetime.now(self._tz)


class BusinessClock:
    """A clock that starts at ``start`` and runs at ``rate`` × real time.

    Anchored on the monotonic clock, so a wall-clock step does not move it.
    ``anchor_wall`` lets worker processes share the parent's anchor: pass the
    real UNIX time at which ``start`` was true.
    """

    def __init__(
        self, start: datetime, rate: float = 1.0, *, anchor_wall: float | None = None
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("clock start must carry a UTC offset")
        if rate <= 0:
            raise ValueError("clock rate must be positive")
        self.start = start.astimezone(SHANGHAI)
        self.rate = rate
        wall = time.time() if anchor_wall is None else anchor_wall
        # monotonic instant that corresponds to `start`
        self._anchor_mono = time.monotonic() - (time.time() - wall)
        self.anchor_wall = wall

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._anchor_mono) * self.rate
        return self.start + timedelta(seconds=elapsed)


class FrozenClock:
    """A clock for tests: stands still until ``set`` or ``advance`` moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("frozen clock needs an aware datetime")
        self._now = at.astimezone(SHANGHAI)

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at.astimezone(SHANGHAI)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
