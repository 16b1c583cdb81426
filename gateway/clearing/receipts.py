"""Inbound clearing messages: verify, then apply to the journal idempotently.

Every inbound message is verified against the configured clearing-system
certificates; one that fails is dropped, counted and logged, never acted on
(docs/clearing-link.md §3).  ``ccms.990`` marks the outbound message ACKED;
``ccms.900`` (pacs.002) settles or rejects its items.  Both may arrive more
than once (at-least-once delivery, docs/clearing-link.md §1): the store applies them
idempotently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway.clearing.envelope import engine_of_topic
from gateway.clearing.inbound_pipeline import Prepared
from gateway.clock import Clock
from gateway.correspondence.inbound import HANDLED, InboundCorrespondence
from gateway.desk import InboundClearing
from gateway.errors import GatewayError
from gateway.journal.ops_records import InboundMessage
from gateway.journal.schema import netting_detail
from gateway.journal.store import Store
from gateway.ops import metrics
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.clearing")

COMMUTING = frozenset({"ccms.990", "ccms.900"})
"""Inbound types whose journal steps may run together, in any order (idempotent)."""


class DraftInbound(Protocol):
    """The draft register's inbound side (``gateway.draftsvc.link.DraftLink``)."""

    async def on_presentment(self, msg: InboundClearing) -> bool: ...
    async def on_status(self, msg: InboundClearing) -> bool: ...


MSG_TP_DRAFT_PRESENT = "intra.draft.present"


class ReceiptHandler:
    """The clearing link's inbound handler."""

    def __init__(
        self,
        store: Store,
        pool: Callable[[], WorkerPool],
        clock: Clock,
        on_receipt: Iterable[Callable[[str], None]] = (),
        correspondence: InboundCorrespondence | None = None,
        topic_prefix: str = "clearing",
        drafts: DraftInbound | None = None,
    ) -> None:
        self._corr = correspondence
        self._drafts = drafts
        self._prefix = topic_prefix
        self._store = store
        self._pool = pool
        self._clock = clock
        self._on_receipt = tuple(on_receipt)

    async def __call__(self, topic: str, payload: bytes, props: dict[str, str]) -> None:
        """Both phases for one message (tests and callers outside the link)."""
        await self.apply(await self.prepare(topic, payload, props))

    async def prepare(self, topic: str, payload: bytes, props: dict[str, str]) -> Prepared:
        """Verify one message (concurrently with the rest of the link's window).

        Receipts and statuses commute (idempotent; a ``ccms.900`` implies its
        ``ccms.990``), so only they run unordered; every other type is a barrier.
        A refused message comes back with nothing to apply.
        """
        try:
            msg = await self._pool().open_inbound(payload, self._clock.now())
        except GatewayError as exc:
            metrics.INBOUND_DROPPED.labels("signature").inc()
            log.warning("inbound_dropped", reason="signature", topic=topic, detail=exc.detail)
            return Prepared(topic, props, ordered=False)
        except ValueError as exc:
            metrics.INBOUND_DROPPED.labels("malformed").inc()
            log.warning("inbound_dropped", reason="malformed", topic=topic, detail=str(exc)[:200])
            return Prepared(topic, props, ordered=False)
        return Prepared(
            topic, props, ordered=msg.msg_tp not in COMMUTING, work=_Verified(msg, payload)
        )

    async def apply(self, prepared: Prepared) -> None:
        """The journal step of one verified message (see :meth:`prepare`)."""
        verified: _Verified | None = prepared.work
        if verified is None:
            return
        msg, payload = verified.msg, verified.payload
        topic = prepared.topic
        now = self._clock.now()
        engine = engine_of_topic(self._prefix, topic)
        # kept with its exact signed bytes for ``gatewayctl messages show`` (re-deliveries
        # once); submitted with the apply, so that both share one group commit
        if msg.msg_tp == MSG_TP_DRAFT_PRESENT:
            payload = b""  # it carries a draft's Code, never stored (docs/bank-drafts.md §1)
        record = self._store.record_inbound(
            InboundMessage(msg.msg_id, msg.msg_tp, msg.sndr, topic, _ref(msg), payload, now)
        )
        if msg.msg_tp == "ccms.990" and msg.orgnl_msg_id:
            known, _ = await asyncio.gather(
                self._store.apply_receipt(msg.orgnl_msg_id, now), record
            )
            for cb in self._on_receipt:
                cb(msg.orgnl_msg_id)
            if not known:
                metrics.INBOUND_DROPPED.labels("unknown_msg_id").inc()
                log.warning("receipt_for_unknown_message", orgnl_msg_id=msg.orgnl_msg_id)
                return
        elif msg.msg_tp == "ccms.900" and msg.orgnl_msg_id:
            # apply_tx_status also counts as the message's ccms.990 when that was lost
            for cb in self._on_receipt:
                cb(msg.orgnl_msg_id)
            changed, _ = await asyncio.gather(
                self._store.apply_tx_status(msg.orgnl_msg_id, msg.results, now), record
            )
            if not changed and self._drafts is not None and await self._drafts.on_status(msg):
                metrics.INBOUND.labels(msg.msg_tp).inc()
                return  # a draft message's status (docs/bank-drafts.md §3)
            for r in msg.results:
                if r.status in ("ACSC", "RJCT"):
                    metrics.ITEM_FINAL.labels(
                        engine.value if engine is not None else "-",
                        "SETTLED" if r.status == "ACSC" else "REJECTED",
                    ).inc()
            log.info("status_applied", orgnl_msg_id=msg.orgnl_msg_id, changed=changed)
        elif self._drafts is not None and msg.msg_tp == MSG_TP_DRAFT_PRESENT:
            await record
            if not await self._drafts.on_presentment(msg):
                metrics.INBOUND_DROPPED.labels("malformed").inc()
                return
        elif self._corr is not None and msg.msg_tp in HANDLED:
            await record
            if not await self._corr.handle(msg, engine):
                metrics.INBOUND_DROPPED.labels("malformed").inc()
                log.warning("inbound_dropped", reason="incomplete", msg_tp=msg.msg_tp, topic=topic)
                return
        else:
            await record
            metrics.INBOUND_DROPPED.labels("unsupported").inc()
            log.info("inbound_ignored", msg_tp=msg.msg_tp, topic=topic)
            return
        metrics.INBOUND.labels(msg.msg_tp).inc()


@dataclass(frozen=True, slots=True)
class _Verified:
    """A verified inbound message with its exact signed bytes (kept for ``messages show``)."""

    msg: InboundClearing
    payload: bytes


def _ref(msg: InboundClearing) -> str | None:
    """What an inbound message is about, as ``messages show`` looks it up: the
    OrgnlMsgId of a ccms.990 / 900, the round (as NETTED / SETTLED transitions name it)
    of a beps.netting / settle."""
    round_ = msg.netting or msg.settlement
    if round_ is not None:
        return netting_detail(round_.work_date.isoformat(), round_.round_no)
    return msg.orgnl_msg_id
