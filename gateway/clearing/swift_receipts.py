"""Inbound SWIFT messages: verify, then apply to the journal (docs/foreign-currency.md §4).

Every message on ``swift/in`` is verified against the pinned ``swift_peer``
certificates; one that fails, or that is malformed, is dropped, counted and
logged, never acted on.  Both answers are keyed by ``OrgnlMsgId``, the MsgId of
our ``swift.008``:

- ``swift.ack`` ACK: the network took it → the message and its payment ACKED;
  NAK: it refused it → REJECTED with ``Reason Code`` = ``Rsn`` and text ``AddtlInf``;
- ``swift.002`` ACSC → SETTLED; RJCT → REJECTED with ``StsRsnInf/Rsn/Cd``.

They reuse the clearing link's journal steps (``apply_receipt``,
``apply_tx_status``), which are idempotent: at-least-once delivery may bring
either twice.  A swift.008 carries one payment, so an answer that does not name
the transaction (every NAK, a swift.002 without ``OrgnlTxId``) is matched to
the one ``TxId`` of the message it answers.  An incoming ``swift.008`` (a
credit from abroad) goes to ``credits`` (``gateway.correspondence.swift_credits``:
screened, then journaled once per sender and TxId); without it, it is kept and ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

import structlog
from lxml import etree

from gateway.clearing.envelope import hardened_parser
from gateway.clearing.pacs import NS_PACS008
from gateway.clearing.swift import MSG_TP_SWIFT_ACK, MSG_TP_SWIFT_STATUS
from gateway.clock import Clock
from gateway.desk import InboundClearing
from gateway.errors import GatewayError
from gateway.journal.ops_records import InboundMessage
from gateway.journal.records import TxResult
from gateway.journal.store import Store
from gateway.ops import metrics
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.swift")


class CreditIntake(Protocol):
    """Takes a verified incoming swift.008 (``gateway.correspondence.swift_credits``)."""

    async def handle(self, msg: InboundClearing, now: datetime) -> None: ...


class SwiftReceiptHandler:
    """The SWIFT link's inbound handler (module docstring)."""

    def __init__(
        self,
        store: Store,
        pool: Callable[[], WorkerPool],
        clock: Clock,
        on_receipt: Iterable[Callable[[str], None]] = (),
        credits: CreditIntake | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._clock = clock
        self._on_receipt = tuple(on_receipt)
        self._credits = credits

    async def __call__(self, topic: str, payload: bytes, props: dict[str, str]) -> None:
        now = self._clock.now()
        try:
            msg = await self._pool().open_swift(payload, now)
        except GatewayError as exc:
            metrics.INBOUND_DROPPED.labels("signature").inc()
            log.warning("swift_inbound_dropped", reason="signature", detail=exc.detail)
            return
        except ValueError as exc:
            metrics.INBOUND_DROPPED.labels("malformed").inc()
            log.warning("swift_inbound_dropped", reason="malformed", detail=str(exc)[:200])
            return
        await self._store.record_inbound(
            InboundMessage(msg.msg_id, msg.msg_tp, msg.sndr, topic, msg.orgnl_msg_id, payload, now)
        )
        if msg.swift_credit is not None and self._credits is not None:
            await self._credits.handle(msg, now)
            metrics.INBOUND.labels(msg.msg_tp).inc()
            return
        orgnl = msg.orgnl_msg_id
        if msg.msg_tp not in (MSG_TP_SWIFT_ACK, MSG_TP_SWIFT_STATUS) or orgnl is None:
            metrics.INBOUND_DROPPED.labels("unsupported").inc()
            log.info("swift_inbound_ignored", msg_tp=msg.msg_tp)
            return
        for cb in self._on_receipt:
            cb(orgnl)
        if not msg.results:  # an ACK
            if not await self._store.apply_receipt(orgnl, now):
                metrics.INBOUND_DROPPED.labels("unknown_msg_id").inc()
                log.warning("swift_ack_for_unknown_message", orgnl_msg_id=orgnl)
                return
        else:
            results = await self._named(orgnl, msg.results)
            changed = await self._store.apply_tx_status(orgnl, results, now)
            for r in results:
                final = "SETTLED" if r.status == "ACSC" else "REJECTED"
                metrics.ITEM_FINAL.labels("SWIFT", final).inc()
            log.info("swift_status_applied", orgnl_msg_id=orgnl, changed=changed)
        metrics.INBOUND.labels(msg.msg_tp).inc()

    async def _named(self, orgnl_msg_id: str, results: Sequence[TxResult]) -> list[TxResult]:
        """Results that name no transaction get the one ``TxId`` of our swift.008."""
        if all(r.tx_id is not None or r.end_to_end_id is not None for r in results):
            return list(results)
        out = await self._store.outbound_message(orgnl_msg_id)
        tx_id = None if out is None else _tx_id(out.payload)
        return [r if r.tx_id or r.end_to_end_id else replace(r, tx_id=tx_id) for r in results]


def _tx_id(payload: bytes) -> str | None:
    """The ``PmtId/TxId`` of our own (journaled) swift.008."""
    root = etree.fromstring(payload, hardened_parser())
    found = root.find(f".//{{{NS_PACS008}}}PmtId/{{{NS_PACS008}}}TxId")
    return None if found is None else found.text
