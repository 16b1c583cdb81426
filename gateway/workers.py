"""The process model: decode/verify/sign in worker processes (DESIGN.md, "uses every core").

One asyncio process owns the sockets, the journal writer, the engines and the
clearing link; the CPU-heavy stages (parse, XSD, XMLDSig verify, response and
clearing-message signing) run in ``processes`` worker processes, each holding
its own ``Desk``.  This keeps a single journal writer (group commit, one
fsync for many requests) while the per-message CPU cost spreads over every
core.  ``processes = 0`` runs the desk inline in the event loop: the tests'
default and the single-process floor that ``bench/`` compares against.

Reload (SIGHUP) builds a new pool from a new ``DeskSetup`` and swaps it in
once every new worker has built its desk; the old pool finishes its queued
work and shuts down, so no request sees half a reload.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime
from typing import Any

from gateway import desk as _d
from gateway.desk import Desk, DeskSetup, InboundClearing, Inspection
from gateway.journal.records import QueuedItem
from gateway.model import Response
from gateway.ops import metrics


class WorkerPool:
    """Runs desk functions inline or in a process pool, behind one async API."""

    def __init__(self, setup: DeskSetup, processes: int) -> None:
        self.setup = setup
        self.processes = processes
        self._inline: Desk | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._depth = 0

    async def start(self) -> None:
        """Build the desk(s); raises if the key material or schema cannot be loaded."""
        if self.processes == 0:
            self._inline = Desk(self.setup)
            return
        ctx = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=ctx,
            initializer=_d.init_worker,
            initargs=(self.setup,),
        )
        loop = asyncio.get_running_loop()
        # Make every worker build its desk now, so errors surface at start.
        await asyncio.gather(
            *(loop.run_in_executor(pool, _d.w_ping) for _ in range(self.processes * 2))
        )
        self._pool = pool

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self._inline is not None:
            return getattr(self._inline, fn.__name__.removeprefix("w_"))(*args)
        if self._pool is None:
            raise RuntimeError("worker pool not started")
        self._depth += 1
        metrics.WORKER_QUEUE.set(self._depth)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._depth -= 1
            metrics.WORKER_QUEUE.set(self._depth)

    async def inspect(
        self, body: bytes, peer_ip: str, now: datetime, corp_retry_after_ms: int | None = None
    ) -> Inspection:
        result: Inspection = await self._call(_d.w_inspect, body, peer_ip, now, corp_retry_after_ms)
        return result

    async def render(self, rsp: Response) -> bytes:
        result: bytes = await self._call(_d.w_render, rsp)
        return result

    async def seal(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        items: Sequence[QueuedItem],
    ) -> bytes:
        result: bytes = await self._call(
            _d.w_seal, msg_tp, msg_id, sender, receiver, created, work_date, tuple(items)
        )
        return result

    async def open_inbound(self, payload: bytes) -> InboundClearing:
        result: InboundClearing = await self._call(_d.w_open_inbound, payload)
        return result

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)
        self._inline = None
