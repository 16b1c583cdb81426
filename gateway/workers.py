"""Desk calls inline or in a process pool (docs/architecture.md §1).

The desk (parse, XSD, XMLDSig verify, response and clearing-message signing)
runs where its caller is: inline in a front process's loop for client
requests, inline in the core for its clearing messages, or — with
``workers.processes`` > 0 — in a micro-batched ``ProcessPoolExecutor``, the
model before front processes and still the single-process mode's way to use
more than one core.  ``processes = 0`` runs the desk inline: the tests'
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
from concurrent.futures.process import BrokenProcessPool
from datetime import date, datetime
from typing import Any

from gateway import desk as _d
from gateway.desk import Desk, DeskSetup, InboundClearing, Inspection
from gateway.errors import ConfigError
from gateway.journal.records import QueuedItem
from gateway.model import Response
from gateway.ops import metrics
from gateway.ops.deathsig import die_with_forkserver


def _init_worker(setup: DeskSetup) -> None:
    """Worker initializer: die with the forkserver (and so with gatewayd), then build the desk."""
    die_with_forkserver()
    _d.init_worker(setup)


class WorkerStartError(RuntimeError):
    """A worker process died before its desk answered (killed, out of memory)."""


class WorkerPool:
    """Runs desk calls inline or in a process pool, behind one async API.

    With processes, calls are micro-batched: at most ``2 × processes`` batches
    are in the pool at once and everything that arrives meanwhile rides in
    the next batch.  Idle, a batch is one call (no added latency); under
    load, batches grow, so the per-call cost of the executor's hand-off
    (pickling, its feeder and manager threads) is shared by many frames.
    Measured: that hand-off, one call per frame, capped two workers at about
    a third of their CPU (bench/README.md).
    """

    def __init__(self, setup: DeskSetup, processes: int, max_batch: int = 64) -> None:
        self.setup = setup
        self.processes = processes
        self.max_batch = max_batch
        self._inline: Desk | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._queue: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._inflight = 0
        self._scheduled = False

    async def start(self) -> None:
        """Build the desk(s); raises if the key material or schema cannot be loaded."""
        if self.processes == 0:
            self._inline = _d.open_desk(self.setup)
            return
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["gateway.ops.deathsig"])  # the forkserver dies with us
        pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.setup,),
        )
        loop = asyncio.get_running_loop()
        # Make every worker build its desk now, so errors surface at start: a
        # desk that cannot be built comes back as its ConfigError (one line);
        # every answer is collected, so no failed future is left unread.
        answers = await asyncio.gather(
            *(loop.run_in_executor(pool, _d.w_ping) for _ in range(self.processes * 2)),
            return_exceptions=True,
        )
        failures = [a for a in answers if isinstance(a, BaseException)]
        if failures:
            await loop.run_in_executor(None, lambda: pool.shutdown(wait=True, cancel_futures=True))
            first = next((f for f in failures if isinstance(f, ConfigError)), failures[0])
            if isinstance(first, BrokenProcessPool):
                raise WorkerStartError(
                    f"workers.processes: a worker process died while starting ({first})"
                )
            raise first
        self._pool = pool

    async def _call(self, op: str, *args: Any) -> Any:
        if self._inline is not None:
            return getattr(self._inline, op)(*args)
        if self._pool is None:
            raise RuntimeError("worker pool not started")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((op, args, fut))
        metrics.WORKER_QUEUE.set(len(self._queue))
        if not self._scheduled:
            # flush after the current loop iteration: calls made in it share a batch
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        result = await fut
        if isinstance(result, _d.WorkerFailure):
            raise RuntimeError(f"worker call {op} failed: {result.error}")  # noqa: TRY004
        if isinstance(result, BaseException):
            raise result
        return result

    def _flush(self) -> None:
        self._scheduled = False
        pool = self._pool
        while self._queue and self._inflight < 2 * self.processes and pool is not None:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._inflight += 1
            job = asyncio.get_running_loop().run_in_executor(
                pool, _d.w_many, [(op, args) for op, args, _ in batch]
            )
            job.add_done_callback(lambda f, b=batch: self._done(f, b))  # type: ignore[misc]
        metrics.WORKER_QUEUE.set(len(self._queue))

    def _done(
        self,
        job: asyncio.Future[list[object]],
        batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]],
    ) -> None:
        self._inflight -= 1
        if job.cancelled() or job.exception() is not None:
            err = job.exception() if not job.cancelled() else RuntimeError("batch cancelled")
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(err or RuntimeError("batch failed"))
        else:
            for (_, _, fut), result in zip(batch, job.result(), strict=True):
                if not fut.done():
                    fut.set_result(result)
        self._flush()

    async def inspect(
        self, body: bytes, peer_ip: str, now: datetime, corp_retry_after_ms: int | None = None
    ) -> Inspection:
        result: Inspection = await self._call("inspect", body, peer_ip, now, corp_retry_after_ms)
        return result

    async def render(self, rsp: Response) -> bytes:
        result: bytes = await self._call("render", rsp)
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
            "seal", msg_tp, msg_id, sender, receiver, created, work_date, tuple(items)
        )
        return result

    async def seal_ccms(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        fields: tuple[str, ...],
    ) -> bytes:
        """Sign a ccms.314 inquiry (fields: InqId, OrgnlMsgId, OrgnlTxId, Text) or a
        ccms.315 reply (fields: InqId, Text) in a worker (docs/clearing-link.md §4)."""
        result: bytes = await self._call(
            "seal_ccms", msg_tp, msg_id, sender, receiver, created, work_date, fields
        )
        return result

    async def seal_document(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        document: bytes,
    ) -> bytes:
        """Sign a draft message (docs/bank-drafts.md §3) around its serialised Document."""
        result: bytes = await self._call(
            "seal_document", msg_tp, msg_id, sender, receiver, created, work_date, document
        )
        return result

    async def seal_swift(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        document: bytes,
    ) -> bytes:
        """Sign a SWIFT message (docs/foreign-currency.md §4) around its serialised Document."""
        result: bytes = await self._call(
            "seal_swift", msg_tp, msg_id, sender, receiver, created, work_date, document
        )
        return result

    async def open_swift(self, payload: bytes, now: datetime) -> InboundClearing:
        result: InboundClearing = await self._call("open_swift", payload, now)
        return result

    async def open_inbound(self, payload: bytes, now: datetime) -> InboundClearing:
        result: InboundClearing = await self._call("open_inbound", payload, now)
        return result

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)
        for _, _, fut in self._queue:
            if not fut.done():
                fut.set_exception(RuntimeError("worker pool closed"))
        self._queue.clear()
        self._inline = None
