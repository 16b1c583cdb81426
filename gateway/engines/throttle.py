"""Outbound throttling towards the clearing systems (docs/routing-rules.md §6).

A token bucket per engine bounds the message rate; the in-flight window
(sent, not yet receipted) is tracked by ``InflightWindow``.  Both make the
engine wait *before* it claims more work, so waiting messages stay in the
journal, never in unbounded memory.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """``rate`` tokens per second, bursts up to ``burst``.  Real (monotonic) time."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.burst
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    async def take(self, n: float = 1.0) -> None:
        """Wait until ``n`` tokens are available, then take them."""
        while not self.try_take(n):
            await asyncio.sleep(max(0.001, (n - self._tokens) / self.rate))


class InflightWindow:
    """Message ids sent and not yet receipted, bounded by ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: set[str] = set()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def free(self) -> int:
        return max(0, self.limit - len(self._ids))

    def add(self, msg_id: str) -> None:
        self._ids.add(msg_id)
        if len(self._ids) >= self.limit:
            self._room.clear()

    def discard(self, msg_id: str) -> bool:
        if msg_id in self._ids:
            self._ids.discard(msg_id)
            if len(self._ids) < self.limit:
                self._room.set()
            return True
        return False

    async def wait_room(self) -> None:
        await self._room.wait()
