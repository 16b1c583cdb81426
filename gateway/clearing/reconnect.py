"""Keeping one MQTT connection up: reconnect with capped, jittered exponential backoff.

aiomqtt does not reconnect by itself (docs/architecture.md §9 "MQTT"), so every long-lived
MQTT client here runs the same loop: the clearing link (docs/clearing-link.md §1), the
core link (docs/clearing-link.md §5) and the simulators that stand in for their peers.
A connection that came up resets the backoff; each failed attempt after it
doubles the wait, from ``low`` up to ``high``.  The jitter (a delay drawn
between half and all of it) keeps gateway nodes that lost the same broker
from coming back in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

Connection = Callable[[bool], Awaitable[str | None]]
"""One connection's life, told whether to stay quiet about a failure to connect (a
streak is logged once); returns why it could not connect, or None once it was up."""


def backoff_delay(attempt: int, low: float, high: float) -> float:
    """The wait before attempt ``attempt + 1``: ``low·2^(attempt-1)`` capped at ``high``,
    jittered down to half."""
    delay = min(high, low * 2 ** min(max(attempt, 1) - 1, 30))
    return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not a secret


async def wait_or_closed(closing: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds, or less if ``closing`` is set; True if it is."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await closing.wait()
    return closing.is_set()


async def keep_connected(
    connection: Connection,
    closing: asyncio.Event,
    low: float,
    high: float,
    *,
    on_retry: Callable[[], object] | None = None,
) -> None:
    """Run ``connection`` again and again, backing off between runs, until ``closing``.

    ``on_retry`` is called before every run but the first (e.g. to count
    reconnects).  Returns once ``closing`` is set; a caller that is never
    closed (a simulator) is cancelled instead.
    """
    attempt = 0
    while not closing.is_set():
        if attempt and on_retry is not None:
            on_retry()
        error = await connection(attempt > 0)
        if closing.is_set():
            return
        attempt = 1 if error is None else attempt + 1
        if await wait_or_closed(closing, backoff_delay(attempt, low, high)):
            return


__all__ = ["Connection", "backoff_delay", "keep_connected", "wait_or_closed"]
