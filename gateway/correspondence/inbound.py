"""Inbound correspondence from the clearing systems (docs/clearing-link.md §4, §6;
docs/routing-rules.md §5).

- ``beps.netting``: each counterparty position is reconciled against the
  gateway's bilateral ledger; matching items become NETTED.  A mismatch is
  never "fixed": it raises the alert gauge and is logged with both figures,
  and the items wait (ACKED) for a later round or for operations.
- ``beps.settle``: the round's NETTED items become SETTLED; the announced net
  is compared with the sum of the round's reconciled positions.
- ``ccms.314`` from another bank becomes an INQUIRY notification for the
  corporate concerned; ``ccms.315`` answering one of ours a REPLY notification.
- an incoming ``hvps.111`` / ``beps.121`` / ``intra.111`` credit is journaled
  (CHECKING) and handed to the account check (:mod:`.credits`).

Every handler is idempotent: the link delivers at least once (docs/clearing-link.md §1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import structlog

from gateway.clearing.ccms import (
    MSG_TP_INQUIRY,
    MSG_TP_NETTING,
    MSG_TP_REPLY,
    MSG_TP_SETTLE,
    NettingNotice,
    SettlementNotice,
)
from gateway.clearing.envelope import CREDIT_MSG_TPS
from gateway.clock import SHANGHAI, Clock
from gateway.correspondence.outbox import dated_ref
from gateway.desk import InboundClearing
from gateway.journal.records import Figures, InquiryDirection, NewIncomingCredit, NewInquiry
from gateway.journal.store import Store
from gateway.keys.enrolment import Registry
from gateway.model import Engine
from gateway.ops import metrics
from gateway.ops.logs import mask_account

log = structlog.get_logger("gateway.correspondence")

CORPLINK_INQ_ID = re.compile(r"[A-Za-z0-9-]{1,35}")
HANDLED = CREDIT_MSG_TPS | {MSG_TP_NETTING, MSG_TP_SETTLE, MSG_TP_INQUIRY, MSG_TP_REPLY}


class AccountIndex:
    """Enrolled account → CorpId, rebuilt when the registry object changes (hot reload)."""

    def __init__(self, registry: Callable[[], Registry]) -> None:
        self._registry = registry
        self._built_for: Registry | None = None
        self._index: dict[str, str] = {}

    def corp_for(self, acct: str) -> str | None:
        reg = self._registry()
        if reg is not self._built_for:
            self._index = {a: c.corp_id for c in reg.corporates for a in c.accounts}
            self._built_for = reg
        return self._index.get(acct)


def _figures_text(f: Figures) -> str:
    return f"dbt {f.dbt_cnt}/{f.dbt_sum:.2f} cdt {f.cdt_cnt}/{f.cdt_sum:.2f} net {f.net:.2f}"


class InboundCorrespondence:
    """Applies verified inbound correspondence to the journal."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        accounts: AccountIndex,
        wake_credits: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._accounts = accounts
        self._wake_credits = wake_credits

    async def handle(self, msg: InboundClearing, engine: Engine | None) -> bool:
        """Apply ``msg``; False when it is not correspondence (the caller counts it)."""
        now = self._clock.now()
        if msg.netting is not None:
            await self._netting(msg.netting, now)
        elif msg.settlement is not None:
            await self._settlement(msg.settlement, now)
        elif msg.inquiry is not None:
            await self._inquiry(msg, engine, now)
        elif msg.reply is not None:
            rec = await self._store.receive_reply(msg.reply.inq_id, msg.reply.text, now)
            metrics.INQUIRIES.labels("in", "reply" if rec is not None else "reply_unknown").inc()
            log.info("reply_received", inq_id=msg.reply.inq_id, known=rec is not None)
        elif msg.msg_tp in CREDIT_MSG_TPS and msg.credits and engine is not None:
            await self._credits(msg, engine, now)
        else:
            return False
        return True

    async def _netting(self, n: NettingNotice, now: datetime) -> None:
        mismatches = 0
        for pos in n.positions:
            out = await self._store.apply_netting(
                n.work_date, n.round_no, pos.cpty, pos.figures, now
            )
            if out.already_applied:
                continue
            if out.matched:
                metrics.NETTING_POSITIONS.labels("matched").inc()
                log.info(
                    "netting_matched",
                    work_date=str(n.work_date),
                    round=n.round_no,
                    cpty=pos.cpty,
                    items=out.items_netted,
                    net=str(out.ours.net),
                )
            else:
                mismatches += 1
                metrics.NETTING_POSITIONS.labels("mismatch").inc()
                log.warning(
                    "netting_mismatch",
                    work_date=str(n.work_date),
                    round=n.round_no,
                    cpty=pos.cpty,
                    ours=_figures_text(out.ours),
                    theirs=_figures_text(out.theirs),
                )
        metrics.NETTING_MISMATCH.set(1 if mismatches else 0)

    async def _settlement(self, s: SettlementNotice, now: datetime) -> None:
        out = await self._store.apply_settlement(s.work_date, s.round_no, now)
        if not out.rounds_known or out.our_net != s.net:
            metrics.NETTING_MISMATCH.set(1)
            log.warning(
                "settlement_mismatch",
                work_date=str(s.work_date),
                round=s.round_no,
                ours=str(out.our_net) if out.rounds_known else "no reconciled round",
                theirs=str(s.net),
                items_settled=out.items_settled,
            )
            return
        log.info(
            "round_settled",
            work_date=str(s.work_date),
            round=s.round_no,
            net=str(s.net),
            items=out.items_settled,
        )

    async def _inquiry(self, msg: InboundClearing, engine: Engine | None, now: datetime) -> None:
        """Journal a ccms.314 with the link it arrived on: the ccms.315 answering it goes
        back on that link (docs/clearing-link.md §2), whatever the payment or credit asked about."""
        doc = msg.inquiry
        assert doc is not None  # noqa: S101
        if not CORPLINK_INQ_ID.fullmatch(doc.inq_id):
            # A corporate quotes the InqId in RPLY, whose schema allows only
            # [A-Za-z0-9-]{1,35} (codecs/corplink.xsd): such an inquiry could never be
            # answered through CorpLink, so operations answer it by hand.
            metrics.INQUIRIES.labels("in", "inquiry_unusable_id").inc()
            log.warning("inquiry_id_not_representable", inq_id=doc.inq_id[:35], sndr=msg.sndr)
            return
        rec = await self._store.receive_inquiry(
            NewInquiry(
                inq_id=doc.inq_id,
                direction=InquiryDirection.IN,
                counterparty=msg.sndr,
                text=doc.text,
                created_at=now,
                orgnl_msg_id=doc.orgnl_msg_id,
                orgnl_tx_id=doc.orgnl_tx_id,
                engine=engine,
            )
        )
        if rec is None:
            metrics.INQUIRIES.labels("in", "inquiry_unknown").inc()
            log.warning(
                "inquiry_about_unknown_payment", inq_id=doc.inq_id, orgnl_tx_id=doc.orgnl_tx_id
            )
            return
        metrics.INQUIRIES.labels("in", "inquiry").inc()
        log.info("inquiry_received", inq_id=doc.inq_id, notified=rec.corp_id is not None)

    async def _credits(self, msg: InboundClearing, engine: Engine, now: datetime) -> None:
        work_date = msg.work_date or now.astimezone(SHANGHAI).date()
        for tx in msg.credits:
            gw_ref = await dated_ref(self._store, "GI", "credit", now)
            credit = await self._store.receive_credit(
                NewIncomingCredit(
                    gw_ref=gw_ref,
                    engine=engine,
                    msg_id=msg.msg_id,
                    tx_id=tx.tx_id or tx.end_to_end_id,
                    end_to_end_id=tx.end_to_end_id,
                    sender=msg.sndr,
                    work_date=work_date,
                    debtor_acct=tx.debtor_acct,
                    debtor_name=tx.debtor_name,
                    debtor_bank=tx.debtor_agent,
                    creditor_acct=tx.creditor_acct,
                    creditor_name=tx.creditor_name,
                    amount=tx.amount,
                    purpose=tx.purpose,
                    received_at=now,
                    corp_id=self._accounts.corp_for(tx.creditor_acct),
                )
            )
            if credit.gw_ref == gw_ref:
                metrics.INCOMING_CREDITS.labels("received").inc()
                log.info(
                    "credit_received",
                    gw_ref=gw_ref,
                    engine=engine.value,
                    acct=mask_account(tx.creditor_acct),
                    amount=str(tx.amount),
                    enrolled=credit.corp_id is not None,
                )
        self._wake_credits()
