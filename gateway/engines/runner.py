"""The engines: turn QUEUED journal items into signed clearing messages and publish them.

INTRA and HVPS send one message per payment (real time); BEPS packs items per
(receiving participant, business type, work date) and closes a package at
``max_items``, ``max_wait`` after its first item, or at the 16:00 work-day
cutoff (docs/routing-rules.md §5): credits travel as beps.121 packages, debits (truncated
cheques, ``BizType=DEBIT``) as beps.127 packages (docs/clearing-link.md §4), so one
package never mixes business types or work dates.  Engines work from the
journal (an outbox, docs/architecture.md §7, principle 1): a message is journaled (PENDING)
with its final signed bytes and MsgId *before* it is published, so a crash at
any point re-publishes the same bytes under the same MsgId, never a second
MsgId for one payment (docs/clearing-link.md §1).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from gateway.clearing import documents
from gateway.clearing.link import ClearingLink, PublishFailed
from gateway.clock import Clock
from gateway.engines.throttle import InflightWindow, TokenBucket
from gateway.journal.records import (
    NewOutbound,
    OutboundRecord,
    OutState,
    PendingGroup,
    QueuedItem,
)
from gateway.journal.store import Store
from gateway.model import BizType, Engine
from gateway.ops import metrics
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.engines")


def msg_tp_for(engine: Engine, biz_type: BizType) -> str:
    """The clearing message type that carries ``engine``'s items of ``biz_type``
    (docs/clearing-link.md §4).

    Only BEPS has a debit message (beps.127, docs/routing-rules.md §3); a debit on another
    engine raises ``ValueError`` rather than travel as a credit, which would
    move the money the wrong way.
    """
    if biz_type is BizType.DEBIT:
        if engine is not Engine.BEPS:
            raise ValueError(
                f"no debit message type on {engine.value} (docs/routing-rules.md §3: BEPS only)"
            )
        return documents.MSG_TP_BEPS_DEBIT
    return documents.MSG_TP_FOR_ENGINE[engine]


@dataclass(frozen=True)
class EngineSettings:
    engine: Engine
    participant: str  # our 12-digit participant: Sndr, DbtrAgt
    topic_prefix: str
    rate: float
    max_inflight: int
    max_items: int = 1  # BEPS package size
    max_wait: float = 0.0  # BEPS: seconds after the first item
    cutoff_hour: int = 16  # BEPS work-day switch
    cutoff_minute: int = 0
    batch: int = 200  # items claimed per pass (bounds memory)
    tick: float = 0.25  # seconds between time-driven checks while work is pending


class EngineRunner:
    """One engine's outbox loop."""

    def __init__(
        self,
        settings: EngineSettings,
        store: Store,
        pool: Callable[[], WorkerPool],
        link: ClearingLink,
        clock: Clock,
    ) -> None:
        self.s = settings
        self._store = store
        self._pool = pool
        self._link = link
        self._clock = clock
        self._wake = asyncio.Event()
        self._bucket = TokenBucket(settings.rate)
        self.inflight = InflightWindow(settings.max_inflight)
        self.publishing: set[str] = set()
        self._publishes: set[asyncio.Task[None]] = set()
        self.topic = f"{settings.topic_prefix}/{settings.engine.value.lower()}/out"

    def wake(self) -> None:
        self._wake.set()

    def receipted(self, msg_id: str) -> None:
        if self.inflight.discard(msg_id):
            metrics.OUTBOUND_INFLIGHT.labels(self.s.engine.value).set(len(self.inflight))

    async def run(self) -> None:
        """Loop until cancelled: package what is ready, publish it."""
        try:
            await self._loop()
        finally:
            for task in list(self._publishes):
                task.cancel()  # unPUBACKed: PENDING in the journal, re-published at start
            await asyncio.gather(*self._publishes, return_exceptions=True)

    async def _loop(self) -> None:
        failing: str | None = None
        while True:
            try:
                pending = await self._pass()
                if failing is not None:
                    log.info("engine_recovered", engine=self.s.engine.value)
                    failing = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the engine alive; its work stays journaled
                if repr(exc) != failing:  # once per distinct failure, not once per tick
                    log.exception("engine_pass_failed", engine=self.s.engine.value)
                    failing = repr(exc)
                pending = True
            timeout = self.s.tick if pending else 1.0
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancel that lands together with a wake-up, and the drain would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self) -> bool:
        """One round of ``run``: package what is ready and publish it (PUBACKs journaled).

        True when work remains that time will make ready (a BEPS package still
        filling, a full in-flight window, the link down).  ``run`` loops on it;
        tests drive it directly under a frozen clock.
        """
        pending = await self._pass()
        await self.settle_publishes()
        return pending

    async def _pass(self) -> bool:
        """One round; True when work remains that a timer will make ready."""
        if not self._link.is_connected:
            return True
        if self.s.engine is Engine.BEPS:
            return await self._pass_beps()
        return await self._pass_single()

    async def _pass_single(self) -> bool:
        """Claim, sign and journal batch after batch while earlier batches are
        still waiting for their PUBACKs: the in-flight window, not our own
        round trips, sets the pace (docs/routing-rules.md §6)."""
        while self.inflight.free > 0:
            items = await self._store.claim_queued(
                self.s.engine, min(self.s.batch, self.inflight.free)
            )
            if not items:
                return False
            now = self._clock.now()
            first = await self._store.next_sequence(documents.out_sequence(now.date()), len(items))
            outs = await asyncio.gather(
                *(
                    self._seal(
                        first + i, now, it.receiver, [it], msg_tp_for(self.s.engine, it.biz_type)
                    )
                    for i, it in enumerate(items)
                )
            )
            self._claim(outs)
            try:
                await self._store.create_outbound(outs)
            except BaseException:
                self.publishing.difference_update(o.msg_id for o in outs)
                raise
            self._spawn_publish(outs)
        return True

    async def _pass_beps(self) -> bool:
        now = self._clock.now()
        groups = await self._store.pending_groups(Engine.BEPS)
        waiting = False
        for g in groups:
            msg_tp = msg_tp_for(Engine.BEPS, g.biz_type)
            if not self._beps_ready(g, now):
                waiting = True
                continue
            while self.inflight.free > 0:
                items = await self._store.claim_queued(
                    Engine.BEPS,
                    self.s.max_items,
                    receiver=g.receiver,
                    biz_type=g.biz_type,
                    work_date=g.work_date,
                )
                if not items:
                    break
                sealed_at = self._clock.now()
                seq = await self._store.next_sequence(documents.out_sequence(sealed_at.date()), 1)
                out = await self._seal(seq, sealed_at, g.receiver, items, msg_tp)
                self._claim([out])
                try:
                    await self._store.create_outbound([out])
                except BaseException:
                    self.publishing.difference_update(o.msg_id for o in [out])
                    raise
                self._spawn_publish([out])
                if len(items) < self.s.max_items:
                    break
            else:
                waiting = True
        return waiting

    def _beps_ready(self, g: PendingGroup, now: datetime) -> bool:
        """docs/routing-rules.md §5: full, or max_wait after its first item, or past the cutoff."""
        if g.count >= self.s.max_items:
            return True
        if (now - g.oldest_queued_at).total_seconds() >= self.s.max_wait:
            return True
        cutoff = now.replace(
            hour=self.s.cutoff_hour, minute=self.s.cutoff_minute, second=0, microsecond=0
        )
        current = now.date() if now < cutoff else now.date() + timedelta(days=1)
        return g.work_date < current

    async def _seal(
        self, seq: int, now: datetime, receiver: str, items: list[QueuedItem], msg_tp: str
    ) -> NewOutbound:
        msg_id = documents.out_msg_id(self.s.participant, now.date(), seq)
        work_date = items[0].work_date
        payload = await self._pool().seal(
            msg_tp, msg_id, self.s.participant, receiver, now, work_date, items
        )
        return NewOutbound(
            msg_id=msg_id,
            engine=self.s.engine,
            msg_tp=msg_tp,
            topic=self.topic,
            receiver=receiver,
            work_date=work_date,
            payload=payload,
            item_ids=tuple(it.item_id for it in items),
            created_at=now,
        )

    def _claim(self, outs: list[NewOutbound]) -> None:
        """Mark ``outs`` as being published before they are journaled PENDING: the
        redelivery pass, which publishes PENDING messages, leaves them alone until
        their PUBACKs are journaled (else it could publish one a second time)."""
        self.publishing.update(o.msg_id for o in outs)

    def _spawn_publish(self, outs: list[NewOutbound]) -> None:
        """Publish claimed ``outs`` in the background; their window slots are taken now."""
        for o in outs:
            self._reserve(o.msg_id)
        task = asyncio.create_task(self._publish_all(outs))
        self._publishes.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("publish_batch_failed", engine=self.s.engine.value, exc_info=task.exception())
        self._wake.set()

    async def settle_publishes(self) -> None:
        """Wait for every background publish of this runner (tests, drain)."""
        while self._publishes:
            await asyncio.gather(*self._publishes, return_exceptions=True)

    async def _publish_all(self, outs: list[NewOutbound]) -> None:
        """Publish a claimed batch concurrently; journal its PUBACKs in one write, and
        only then release the claim (see :meth:`_claim`)."""
        try:
            sent = await asyncio.gather(
                *(self._publish_once(o.msg_id, o.msg_tp, o.topic, o.payload) for o in outs)
            )
            for o, ok in zip(outs, sent, strict=True):
                if not ok:
                    self._release(o.msg_id)  # stays PENDING: the redelivery pass sends it
            done = [o for o, ok in zip(outs, sent, strict=True) if ok]
            if not done:
                return
            await self._store.mark_sent_many([o.msg_id for o in done], self._clock.now())
            for o in done:
                self._count_sent(o.msg_id, o.msg_tp, resend=False)
        finally:
            self.publishing.difference_update(o.msg_id for o in outs)

    async def _publish_once(self, msg_id: str, msg_tp: str, topic: str, payload: bytes) -> bool:
        """One publish under the journaled MsgId (claimed by the caller); True on PUBACK."""
        await self._bucket.take()
        try:
            await self._link.publish(topic, payload, msg_tp=msg_tp, msg_id=msg_id)
        except PublishFailed as exc:
            log.warning("publish_failed", out_msg_id=msg_id, reason=str(exc))
            return False
        return True

    def _reserve(self, msg_id: str) -> None:
        """A window slot from the hand-off on: a receipt may beat the PUBACK's journal write."""
        self.inflight.add(msg_id)
        metrics.OUTBOUND_INFLIGHT.labels(self.s.engine.value).set(len(self.inflight))

    def _release(self, msg_id: str) -> None:
        if self.inflight.discard(msg_id):
            metrics.OUTBOUND_INFLIGHT.labels(self.s.engine.value).set(len(self.inflight))

    def _count_sent(self, msg_id: str, msg_tp: str, *, resend: bool) -> None:
        metrics.OUTBOUND.labels(self.s.engine.value, msg_tp, "resend" if resend else "first").inc()

    async def publish(
        self,
        msg_id: str,
        msg_tp: str,
        topic: str,
        payload: bytes,
        *,
        resend: bool,
        seen: OutState | None = None,
    ) -> bool:
        """Publish one journaled message (again) and journal its PUBACK.

        ``seen`` is the state the caller read the message in (default: PENDING
        for a first send, SENT for a re-send).  The caller's record may be stale:
        the redelivery pass reads a list once and publishes it one message after
        another, and meanwhile the engine's own publish of a listed message may
        have been PUBACKed, or a receipt may have come.  So, with the message
        claimed, the journal is asked again, and it goes out only while it is
        still in that state; else False, nothing published.
        """
        if msg_id in self.publishing:
            return False
        self.publishing.add(msg_id)
        try:
            expected = seen or (OutState.SENT if resend else OutState.PENDING)
            if not await self._still_in(msg_id, expected):
                return False
            self._reserve(msg_id)
            if not await self._publish_once(msg_id, msg_tp, topic, payload):
                self._release(msg_id)
                return False
            now = self._clock.now()
            if resend:
                await self._store.mark_resent(msg_id, now)
            else:
                await self._store.mark_sent(msg_id, now)
            self._count_sent(msg_id, msg_tp, resend=resend)
            return True
        finally:
            self.publishing.discard(msg_id)

    async def _still_in(self, msg_id: str, expected: OutState) -> bool:
        """True while the journal has ``msg_id`` in ``expected``.  Read after the claim:
        a publish of this runner that ended before it has its PUBACK journaled
        already (:meth:`_publish_all` releases its claims only after ``mark_sent_many``)."""
        rec = await self._store.outbound_message(msg_id)
        if rec is not None and rec.state is expected:
            return True
        log.info(
            "publish_skipped",
            out_msg_id=msg_id,
            seen=expected.value,
            state=None if rec is None else rec.state.value,
        )
        return False


class Redelivery:
    """Publishes what a crash or an outage left behind, and re-sends un-receipted messages.

    PENDING messages (journaled, never PUBACKed) are published at start and
    whenever the link comes back; SENT messages without a ccms.990 after
    ``receipt_timeout`` are published again under the same MsgId
    (docs/clearing-link.md §1).
    """

    def __init__(
        self,
        runners: dict[Engine, EngineRunner],
        store: Store,
        link: ClearingLink,
        clock: Clock,
        receipt_timeout: float,
    ) -> None:
        self._runners = runners
        self._store = store
        self._link = link
        self._clock = clock
        self._timeout = receipt_timeout
        self._first = True

    async def run(self) -> None:
        while True:
            await self._link.wait_connected()
            try:
                await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redelivery_pass_failed")
            await asyncio.sleep(min(5.0, max(0.2, self._timeout / 4)))

    async def _pass(self) -> None:
        # "now" before publishing: a message this pass publishes is not due for a re-send
        # in the same pass (it was SENT a moment ago, after this instant).
        now = self._clock.now()
        for rec in await self._store.unsent_outbound(1000):
            await self._send(rec, resend=False)
        # At start, everything SENT without a receipt is re-sent at once: the
        # crash may have lost it anywhere between us and the clearing system.
        before = now if self._first else now - timedelta(seconds=self._timeout)
        self._first = False
        for rec in await self._store.due_for_resend(before, 1000):
            await self._send(rec, resend=True)

    async def _send(self, rec: OutboundRecord, *, resend: bool) -> None:
        runner = self._runners.get(rec.engine)
        if runner is None:
            return
        await runner.publish(
            rec.msg_id, rec.msg_tp, rec.topic, rec.payload, resend=resend, seen=rec.state
        )
