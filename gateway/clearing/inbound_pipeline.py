"""Inbound clearing messages in a window: verify together, apply together, acknowledge in order.

Each HVPS or INTRA item brings two inbound messages (a ``ccms.990`` and a
``ccms.900``, docs/clearing-link.md §4), so the inbound side must keep pace
with acceptance.  Handled one at a time, every message waited for its own
journal commit (an fsync each): about a hundred messages a second.  Here a
window of messages is in flight at once:

- **prepare** (parse and verify the signature) runs concurrently for every
  message in the window, so the worker pool batches the verifications;
- **apply** (the journal write) of messages that commute runs concurrently,
  so the journal's group-commit writer puts many of them in one transaction
  and one fsync;
- **acknowledge**: the PUBACKs go back strictly in arrival order (MQTT 5
  §4.6), each only after its own message was applied, so nothing
  acknowledged is ever lost: a crash leaves the rest for the broker to
  redeliver, and the store applies redeliveries idempotently.

Which messages commute is the handler's verdict, made on the verified
message.  Receipts and statuses commute with each other (a ``ccms.900`` also
counts as its ``ccms.990``; both are idempotent).  Anything else (netting,
settlement, incoming credits, inquiries) is *ordered*: it waits until every
earlier message was applied, and every later one waits for it — a barrier,
so ``beps.settle`` never overtakes the ``beps.netting`` before it and a
netting round sees every receipt that came before it.

A plain callable handler is treated as ordered throughout: one at a time,
in arrival order, as the link always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import structlog

from gateway.ops.metrics import INBOUND_DROPPED

log = structlog.get_logger("gateway.clearing")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A verified (or refused) inbound message, ready for its journal step.

    ``ordered`` makes it a barrier (see the module docstring); ``work`` is the
    handler's own value for :meth:`TwoPhaseHandler.apply`.
    """

    topic: str
    props: dict[str, str]
    ordered: bool
    work: Any = None


@runtime_checkable
class TwoPhaseHandler(Protocol):
    """An inbound handler split into a concurrent check and a journal step."""

    async def prepare(self, topic: str, payload: bytes, props: dict[str, str]) -> Prepared:
        """Parse and verify; must not write the journal.  Refusals are values, not raises."""
        ...

    async def apply(self, prepared: Prepared) -> None:
        """Apply one prepared message to the journal; may raise for a retry."""
        ...


PlainHandler = Callable[[str, bytes, dict[str, str]], Awaitable[None]]


class _Plain:
    """Adapts a one-step handler: everything ordered, the whole call in ``apply``."""

    def __init__(self, fn: PlainHandler) -> None:
        self._fn = fn

    async def prepare(self, topic: str, payload: bytes, props: dict[str, str]) -> Prepared:
        return Prepared(topic, props, ordered=True, work=payload)

    async def apply(self, prepared: Prepared) -> None:
        await self._fn(prepared.topic, prepared.work, prepared.props)


def two_phase(handler: TwoPhaseHandler | PlainHandler) -> TwoPhaseHandler:
    """``handler`` as a :class:`TwoPhaseHandler`."""
    if isinstance(handler, TwoPhaseHandler):
        return handler
    return _Plain(handler)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing journal step is tried before the message is given up."""

    attempts: int = 3
    first_delay: float = 0.5


class InboundPipeline:
    """One connection's window of inbound messages (see the module docstring).

    ``feed`` blocks while ``window`` messages are in flight; ``ack`` is called
    for each message, in arrival order, once it was applied (or given up).
    ``drain`` waits until everything fed was acknowledged.
    """

    def __init__(
        self,
        handler: TwoPhaseHandler,
        ack: Callable[[Any], None],
        *,
        window: int,
        retry: RetryPolicy,
    ) -> None:
        if window < 1:
            raise ValueError("inbound window must be at least 1")
        self._handler = handler
        self._ack = ack
        self._retry = retry
        self._slots = asyncio.Semaphore(window)
        self._scheduled: asyncio.Queue[tuple[Any, asyncio.Task[Prepared | None]]] = asyncio.Queue()
        self._applying: asyncio.Queue[tuple[Any, asyncio.Task[None]]] = asyncio.Queue()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._barrier: asyncio.Task[None] | None = None
        self._since_barrier: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stages = [
            asyncio.create_task(self._schedule(), name="inbound-schedule"),
            asyncio.create_task(self._acknowledge(), name="inbound-ack"),
        ]

    @property
    def in_flight(self) -> int:
        """Messages fed and not yet acknowledged."""
        return self._in_flight

    async def feed(self, message: Any, topic: str, payload: bytes, props: dict[str, str]) -> None:
        """Start one message (waits for a free slot in the window)."""
        await self._slots.acquire()
        self._in_flight += 1
        self._idle.clear()
        task = self._track(self._prepare(topic, payload, props))
        self._scheduled.put_nowait((message, task))

    async def drain(self) -> None:
        """Return once every message fed so far was acknowledged."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop every stage and step; messages not yet acknowledged stay with the
        broker, which redelivers them to the next connection (applied idempotently)."""
        pending = [*self._stages, *self._tasks]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _track(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- stages ------------------------------------------------------------------

    async def _prepare(self, topic: str, payload: bytes, props: dict[str, str]) -> Prepared | None:
        try:
            return await self._handler.prepare(topic, payload, props)
        except Exception:  # a broken check must not stop the link
            INBOUND_DROPPED.labels(reason="handler_error").inc()
            log.exception(
                "inbound_handler_error",
                topic=topic,
                msg_tp=props.get("MsgTp"),
                msg_id=props.get("MsgId"),
                attempts=1,
            )
            return None

    async def _schedule(self) -> None:
        """In arrival order: once a message is prepared, start its journal step."""
        while True:
            message, preparing = await self._scheduled.get()
            prepared = await preparing
            self._applying.put_nowait((message, self._start_apply(prepared)))

    def _start_apply(self, prepared: Prepared | None) -> asyncio.Task[None]:
        if prepared is None:
            return self._track(_nothing())
        if prepared.ordered:
            before = {*self._since_barrier, *([self._barrier] if self._barrier else [])}
            task = self._track(self._apply_after(prepared, before))
            self._barrier, self._since_barrier = task, set()
            return task
        barrier = {self._barrier} if self._barrier is not None else set()
        task = self._track(self._apply_after(prepared, barrier))
        self._since_barrier.add(task)
        task.add_done_callback(self._since_barrier.discard)
        return task

    async def _apply_after(self, prepared: Prepared, before: set[asyncio.Task[None]]) -> None:
        if before:
            await asyncio.wait(before)
        await self._apply(prepared)

    async def _apply(self, prepared: Prepared) -> None:
        """The journal step, retried with a doubling delay: a journal blip (a
        PostgreSQL failover, a busy disk) must not lose a settlement notice or
        an incoming credit, which no one would send again.  After the last try
        the message is given up (acknowledged): holding it would bring the
        same poison message back on every reconnect."""
        props = prepared.props
        delay = self._retry.first_delay
        for attempt in range(1, self._retry.attempts + 1):
            try:
                await self._handler.apply(prepared)
            except Exception:  # any handler failure must not stop the link
                if attempt < self._retry.attempts:
                    log.warning(
                        "inbound_handler_retry",
                        topic=prepared.topic,
                        msg_tp=props.get("MsgTp"),
                        msg_id=props.get("MsgId"),
                        attempt=attempt,
                        exc_info=True,
                    )
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                INBOUND_DROPPED.labels(reason="handler_error").inc()
                log.exception(
                    "inbound_handler_error",
                    topic=prepared.topic,
                    msg_tp=props.get("MsgTp"),
                    msg_id=props.get("MsgId"),
                    attempts=attempt,
                )
            return

    async def _acknowledge(self) -> None:
        """Strictly in arrival order: acknowledge each message once it was applied."""
        while True:
            message, applying = await self._applying.get()
            await asyncio.wait({applying})
            try:
                self._ack(message)
            finally:
                self._in_flight -= 1
                self._slots.release()
                if self._in_flight == 0:
                    self._idle.set()


async def _nothing() -> None:
    """The journal step of a message its check refused."""
