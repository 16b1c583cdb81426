"""The journal's single writer: one thread, one connection, group commit.

SQLite allows one writer at a time and a commit costs one fsync (the 0000
promise, docs/protocol.md §5).  Instead of one transaction per request, callers on
the event loop hand the writer small functions; the writer takes everything
queued (up to ``max_batch``), runs each function inside its own SAVEPOINT of
ONE transaction, commits once, and only then resolves the callers' futures.
Under load that is many requests per fsync; when idle a lone request is
committed at once (no artificial delay).  docs/architecture.md §7 "Storage".

Failure rules, so that nothing unjournaled is ever acknowledged:

- a function that raises has its savepoint rolled back; the others of the
  batch still commit, and that caller gets its own exception;
- if SQLite rolled the whole transaction back by itself (SQLITE_FULL, I/O
  errors do), or COMMIT fails, every caller of the batch gets the error —
  none of their writes are on disk;
- the thread survives either way and serves the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import structlog

from gateway.ops.metrics import JOURNAL_COMMIT_SECONDS, JOURNAL_COMMIT_SIZE, JOURNAL_COMMITS

T = TypeVar("T")

_log = structlog.get_logger(__name__)

_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP: Final = object()


class GroupCommitWriter:
    """Runs write functions on a dedicated thread, many per transaction.

    ``connect`` is called on the writer thread; the connection never leaves
    it.  ``start()`` returns a thread future that completes once the
    connection is open (or carries the error that prevented it).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int = 512,
        name: str = "journal-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._connect = connect
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._accepting = False
        self._ready: ThreadFuture[None] = ThreadFuture()
        # A daemon thread: a forgotten close() must not hang interpreter exit.
        # SQLite makes an interrupted transaction roll back, and nothing
        # uncommitted was acknowledged.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> ThreadFuture[None]:
        with self._lock:
            self._accepting = True
        self._thread.start()
        return self._ready

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the next group commit; returns after the commit.

        The result is delivered only once the transaction holding ``fn``'s
        writes is committed (fsynced).  ``RuntimeError`` once stopping.
        Cancelling the caller skips ``fn`` if the writer has not taken it yet;
        once taken it may still commit (so a timed-out request is "unknown",
        never "not journaled").
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if not self._accepting:
                raise RuntimeError("journal writer is not running")
            self._queue.put(_Op(fn, future, loop))
        return cast("T", await future)

    @property
    def pending(self) -> int:
        """Write operations waiting for the writer (approximate): for load shedding."""
        return self._queue.qsize()

    def stop(self) -> None:
        """Refuse new work, finish everything already queued, close the connection.

        Blocking (joins the thread): call it from a worker thread, not the loop.
        """
        with self._lock:
            if self._accepting:
                self._accepting = False
                self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join()

    # -- the writer thread -----------------------------------------------
    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 (handed to start()'s caller, not swallowed)
            self._ready.set_exception(exc)
            self._fail_remaining(RuntimeError("journal writer could not open the journal"))
            return
        self._ready.set_result(None)
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._take()
                if batch:
                    self._commit_batch(conn, batch)
        finally:
            conn.close()

    def _take(self) -> tuple[list[_Op], bool]:
        """Block for one op, then take what else is queued, up to ``max_batch``."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [cast("_Op", first)]
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(cast("_Op", nxt))
        return batch, False

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        started = time.perf_counter()
        # A caller that gave up (cancelled) before its turn is not written.
        live = [op for op in batch if not op.future.cancelled()]
        if not live:
            return
        try:
            outcomes, committed = self._run_ops(conn, live)
        except Exception as exc:  # noqa: BLE001 (the batch failed as a whole: each caller gets it)
            _log.warning("journal_batch_failed", ops=len(live), error=str(exc))
            self._rollback(conn)
            outcomes = [(op.future, None, exc) for op in live]
        else:
            if committed:
                JOURNAL_COMMITS.inc()
                JOURNAL_COMMIT_SIZE.observe(len(live))
                JOURNAL_COMMIT_SECONDS.observe(time.perf_counter() - started)
        self._resolve(live, outcomes)

    def _run_ops(self, conn: sqlite3.Connection, ops: list[_Op]) -> tuple[list[_Outcome], bool]:
        """One transaction, a savepoint per op, one commit (none if every op failed).

        Returns the outcomes and whether a commit happened; raises if the batch is lost.
        """
        conn.execute("BEGIN IMMEDIATE")
        outcomes: list[_Outcome] = []
        any_ok = False
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result = op.fn(conn)
            except Exception as exc:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O
                    # error): the earlier ops' writes are gone too.
                    raise
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((op.future, None, exc))
            else:
                conn.execute("RELEASE op")
                outcomes.append((op.future, result, None))
                any_ok = True
        conn.execute("COMMIT" if any_ok else "ROLLBACK")
        return outcomes, any_ok

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                _log.warning("journal_rollback_failed", error=str(exc))

    @staticmethod
    def _resolve(ops: list[_Op], outcomes: list[_Outcome]) -> None:
        """Hand results back with one wake-up per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for op, outcome in zip(ops, outcomes, strict=True):
            by_loop.setdefault(op.loop, []).append(outcome)
        for loop, items in by_loop.items():
            # RuntimeError: the loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)

    def _fail_remaining(self, exc: BaseException) -> None:
        with self._lock:
            self._accepting = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Op):
                self._resolve([item], [(item.future, None, exc)])


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, exc in outcomes:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
