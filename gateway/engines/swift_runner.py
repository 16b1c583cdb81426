"""The SWIFT engine: QUEUED SWIFT items → one signed ``swift.008`` each (docs/foreign-currency.md
§4).

It is an :class:`EngineRunner` with its own link (the bank's SWIFT interface)
and its own way to seal a message; claiming, the in-flight window, the
outbox discipline (journaled PENDING with its final bytes before the
publish) and the re-send under the same MsgId (:class:`Redelivery` with the
link's own ``receipt_timeout``) are the clearing engines'.

Per payment: a fresh UETR, journaled on the item in the same transaction as
the outbound message, so a crash can never send one payment under two UETRs;
MsgId = our BIC8 + date + a 10-digit sequence of its own; ``Sndr`` our first
BIC, ``Rcvr`` the settlement path's instructed agent.  The path is asked of the
routing data in force when the message is built (the engines may not import
``gateway.routing``: the server hands in ``path_for``).  A HELD payment is
released to QUEUED at the window's opening by the server's release pass, like
the other engines'; its work date, fixed at routing, is its ``IntrBkSttlmDt``.

A reload can take a path away after a payment was routed on it (its
currency's correspondent row removed, say).  Such a payment can never be
built, so waiting would only retry it forever: it becomes REJECTED with 4001
("the settlement path is no longer configured", docs/foreign-currency.md §3),
reported to the corporate like any rejection, and the rest of the pass goes out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import structlog

from gateway.clearing import swift
from gateway.clearing.documents import serialize
from gateway.clearing.link import ClearingLink
from gateway.clock import Clock
from gateway.engines.runner import EngineRunner, EngineSettings
from gateway.journal.records import NewOutbound, QueuedItem
from gateway.journal.store import Store
from gateway.model import Engine
from gateway.workers import WorkerPool

PathFor = Callable[[str, str], swift.SettlementRoute]
"""``(ccy, payee BIC) → settlement path`` (docs/foreign-currency.md §3); raises a
refusal whose ``code`` is 4001 when there is none."""

NO_PATH = "4001"
"""RetCode of "no settlement path" (docs/foreign-currency.md §2).  The engines may not
import ``gateway.errors`` (docs/architecture.md §4), so the refusal ``path_for`` raises
is recognised by its ``code`` (a ``str`` enum: equal to its wire value)."""

log = structlog.get_logger("gateway.engines")

PATH_GONE = "the settlement path for {ccy} is no longer configured"
"""The reason text of a payment whose path a reload removed (module docstring)."""


def swift_sequence(d: date) -> str:
    """The journal sequence of SWIFT MsgIds, one per calendar day (apart from the
    clearing link's: another sender, another MsgId space)."""
    return f"swift-{d:%Y%m%d}"


@dataclass(frozen=True)
class SwiftEngineSettings:
    """What the SWIFT engine adds to :class:`EngineSettings`."""

    our_bic: str  # bank.bics[0]: Sndr, InstgAgt, DbtrAgt
    minor_units: Mapping[str, int]  # fx.currencies
    topic_prefix: str = swift.SWIFT_PREFIX


class SwiftRunner(EngineRunner):
    """The SWIFT engine's outbox loop (module docstring)."""

    def __init__(
        self,
        settings: EngineSettings,
        fx: SwiftEngineSettings,
        store: Store,
        pool: Callable[[], WorkerPool],
        link: ClearingLink,
        clock: Clock,
        path_for: PathFor,
    ) -> None:
        if settings.engine is not Engine.SWIFT:
            raise ValueError("SwiftRunner runs the SWIFT engine")
        super().__init__(settings, store, pool, link, clock)
        self.fx = fx
        self._path_for = path_for
        self.topic = swift.swift_out_topic(fx.topic_prefix)

    async def _pass(self) -> bool:
        if not self._link.is_connected:
            return True
        while self.inflight.free > 0:
            items = await self._store.claim_queued(
                Engine.SWIFT, min(self.s.batch, self.inflight.free)
            )
            if not items:
                return False
            now = self._clock.now()
            routed = await self._paths(items, now)
            if not routed:
                return True  # all rejected: claim again next tick (never a tight loop)
            first = await self._store.next_sequence(swift_sequence(now.date()), len(routed))
            outs = await asyncio.gather(
                *(self._seal_one(first + i, now, it, p) for i, (it, p) in enumerate(routed))
            )
            self._claim(outs)
            try:
                await self._store.create_outbound(outs)
            except BaseException:
                self.publishing.difference_update(o.msg_id for o in outs)
                raise
            self._spawn_publish(outs)
        return True

    async def _paths(
        self, items: Sequence[QueuedItem], now: datetime
    ) -> list[tuple[QueuedItem, swift.SettlementRoute]]:
        """Each claimed item with its settlement path in force now; an item whose
        path is gone is rejected (4001, module docstring) and left out."""
        routed: list[tuple[QueuedItem, swift.SettlementRoute]] = []
        for item in items:
            if item.payee_bic is None or item.payee_country is None:
                raise ValueError(f"SWIFT item {item.tx_id} has no PayeeBIC / PayeeCountry")
            try:
                routed.append((item, self._path_for(item.ccy, item.payee_bic)))
            except Exception as exc:
                if getattr(exc, "code", None) != NO_PATH:
                    raise
                await self._reject_pathless(item, now)
        return routed

    async def _reject_pathless(self, item: QueuedItem, now: datetime) -> None:
        rejected = await self._store.reject_queued(
            item.item_id, Engine.SWIFT, NO_PATH, PATH_GONE.format(ccy=item.ccy), now
        )
        log.warning(
            "swift_path_gone",
            tx_id=item.tx_id,
            ccy=item.ccy,
            payee_bic=item.payee_bic,
            reason_code=NO_PATH,
            rejected=rejected,
        )

    async def _seal_one(
        self, seq: int, now: datetime, item: QueuedItem, path: swift.SettlementRoute
    ) -> NewOutbound:
        if item.payee_country is None:
            raise ValueError(f"SWIFT item {item.tx_id} has no PayeeCountry")
        msg_id = swift.swift_msg_id(self.fx.our_bic, now.date(), seq)
        uetr = swift.new_uetr()
        payment = swift.SwiftPayment(
            msg_id=msg_id,
            created=now,
            settle_date=item.work_date,
            end_to_end_id=item.end_to_end_id,
            tx_id=item.tx_id,
            uetr=uetr,
            amount=item.amount,
            ccy=item.ccy,
            minor_units=self.fx.minor_units[item.ccy],
            debtor_name=item.payer_name,
            debtor_acct=item.payer_acct,
            creditor_name=item.payee_name,
            creditor_acct=item.payee_acct,
            creditor_country=item.payee_country,
            charge_bearer=item.chrg_br or "SHAR",
            purpose=item.purpose,
        )
        document = serialize(swift.build_swift_008(payment, path))
        payload = await self._pool().seal_swift(
            swift.MSG_TP_SWIFT_CREDIT,
            msg_id,
            self.fx.our_bic,
            path.instructed_agent,
            now,
            item.work_date,
            document,
        )
        return NewOutbound(
            msg_id=msg_id,
            engine=Engine.SWIFT,
            msg_tp=swift.MSG_TP_SWIFT_CREDIT,
            topic=self.topic,
            receiver=path.instructed_agent,
            work_date=item.work_date,
            payload=payload,
            item_ids=(item.item_id,),
            created_at=now,
            uetr=uetr,
        )
