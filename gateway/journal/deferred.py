"""Evidence rows written together: one commit for many, off the 0000 path.

The exact bytes of a request and its signed response (``gatewayctl messages
show``) are kept after the answer; the 0000 promise rests on the request's
own journal row, written before it.  Writing each exchange as it comes costs
a commit of its own whenever the journal is not busy — at low load, one fsync
more per payment.  Collected here and written every ``interval`` seconds (or
at ``max_pending``), they go to the writer as **one** write of all the rows (one
statement, one future, one hand-off to the writer thread; row by row, a burst
cost the core's event loop a task, a future and a queue hand-off per row).  If
that write fails, each row is tried alone, so one bad row does not lose the
others.  A crash loses at most the last interval's exchanges, as it could lose
one exchange before (docs/architecture.md §3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("gateway.journal")

T = TypeVar("T")


class DeferredWrites(Generic[T]):
    """Hands the added rows to ``write_many`` in bursts; ``write`` (one row) is the
    fallback when a burst fails."""

    def __init__(
        self,
        write_many: Callable[[Sequence[T]], Awaitable[None]],
        write: Callable[[T], Awaitable[None]],
        *,
        interval: float = 0.2,
        max_pending: int = 256,
        what: str = "exchange",
    ) -> None:
        self._write_many = write_many
        self._write = write
        self._interval = interval
        self._max_pending = max_pending
        self._what = what
        self._pending: list[T] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, row: T) -> None:
        self._pending.append(row)
        if len(self._pending) >= self._max_pending:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Start writing everything pending now (all submitted in one loop turn)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._burst(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _burst(self, batch: list[T]) -> None:
        try:
            await self._write_many(batch)
        except Exception as exc:  # noqa: BLE001 - find the bad row; keep the good ones
            log.info(f"{self._what}_burst_failed", rows=len(batch), error=str(exc)[:200])
        else:
            return
        results = await asyncio.gather(*(self._write(r) for r in batch), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning(f"{self._what}_not_kept", count=len(failed), error=str(failed[0])[:200])

    async def close(self) -> None:
        """Write what is pending and wait for it (the drain, before the journal closes)."""
        self.flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
