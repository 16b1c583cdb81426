"""CorpLink NTFY, INQ, RPLY and BAL (docs/protocol.md §4).

- ``NTFY`` pulls notifications after a cursor: incoming credits, final
  payment states, inquiries received and replies to the corporate's own
  inquiries.  Nothing is journaled; the cursor is the client's.
- ``INQ`` journals the request, the inquiry and its ``ccms.314`` in one
  transaction, then publishes it.  The response's ``GwRef`` is the InqId the
  ``REPLY`` notification will quote; its Body is the payment's Status.
- ``RPLY`` answers an inquiry this corporate received (an ``INQUIRY``
  notification's InqId) with a ``ccms.315``, journaled the same way and
  sent back on the clearing link the ``ccms.314`` arrived on (docs/clearing-link.md §2).
- ``BAL`` asks the core banking system; no answer within ``core.timeout``
  is 6001 (docs/clearing-link.md §5).

INQ and RPLY are journaled requests, so (CorpId, MsgId) replay rules hold
for them as for payments (docs/protocol.md §7): Dup with the original GwRef, or 3001.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

import structlog

from gateway.clearing.ccms import MSG_TP_INQUIRY, MSG_TP_REPLY
from gateway.correspondence.outbox import CcmsOutbox
from gateway.errors import GatewayError, RetCode
from gateway.journal.records import (
    AcceptOutcome,
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    NewInquiry,
    RequestRecord,
    new_request,
)
from gateway.journal.store import Store
from gateway.keys.enrolment import Registry
from gateway.model import (
    Balance,
    BalanceQuery,
    Engine,
    Inquiry,
    Notices,
    NotifyPull,
    Reply,
    Request,
    Response,
    StatusView,
    TrnCode,
    ok_response,
)
from gateway.ops import metrics
from gateway.ops.logs import mask_account

log = structlog.get_logger("gateway.correspondence")

#: docs/protocol.md §4: ``Max`` ≤ 500.
MAX_PULL = 500


class CoreUnavailable(Exception):
    """The core banking system did not answer in time (or answered nonsense)."""


BalanceAsk = Callable[[str], Awaitable[Balance | None]]
"""Asks the core for an account's balance; None: the core does not know the account."""


class CorplinkCorrespondence:
    """The pipeline's handler for NTFY, INQ, RPLY and BAL."""

    def __init__(
        self,
        store: Store,
        outbox: CcmsOutbox,
        registry: Callable[[], Registry],
        balance: BalanceAsk | None,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._registry = registry
        self._balance = balance

    # -- NTFY ---------------------------------------------------------------
    async def notify(self, req: Request, pull: NotifyPull, now: datetime) -> Response:
        limit = max(1, min(pull.max, MAX_PULL))
        rows = await self._store.pull_notices(req.head.corp_id, pull.after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1].ntfy_id if rows else pull.after
        metrics.NOTICES_PULLED.inc(len(rows))
        found = f"{len(rows)} notifications" + (", more waiting" if more else "")
        rsp = ok_response(req, now, None, ret_msg=found)
        return replace(rsp, notices=Notices(tuple(rows), last, more))

    # -- INQ ----------------------------------------------------------------
    async def inquire(self, req: Request, inq: Inquiry, now: datetime) -> Response:
        head = req.head
        existing = await self._store.find_request(head.corp_id, head.msg_id)
        if existing is not None:
            return await self.replay(req, existing, now)
        ref = await self._store.item_ref(head.corp_id, inq.orig_msg_id, inq.seq_no)
        what = inq.orig_msg_id + ("" if inq.seq_no is None else f" SeqNo {inq.seq_no}")
        if ref is None:
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"no payment {what} to inquire about")
        if ref.out_msg_id is None or ref.engine is None or ref.receiver is None:
            raise GatewayError(
                RetCode.UNKNOWN_TRNCODE,
                f"payment {what} is {ref.state.value}: not sent to clearing, ask STATUS",
            )
        inq_id = await self._outbox.new_inq_id(now)
        out = await self._outbox.build(
            MSG_TP_INQUIRY,
            ref.engine,
            ref.receiver,
            (inq_id, ref.out_msg_id, ref.tx_id, inq.text),
            now,
        )
        inquiry = NewInquiry(
            inq_id=inq_id,
            direction=InquiryDirection.OUT,
            counterparty=ref.receiver,
            text=inq.text,
            created_at=now,
            orgnl_msg_id=ref.out_msg_id,
            orgnl_tx_id=ref.tx_id,
            corp_id=head.corp_id,
            msg_id=inq.orig_msg_id,
            seq_no=ref.seq_no,
            engine=ref.engine,
        )
        outcome = await self._store.open_inquiry(new_request(req, now), inquiry, out)
        if not outcome.created:
            return await self._lost_race(req, outcome, now)
        self._outbox.send_soon(out)
        metrics.INQUIRIES.labels("out", "inquiry").inc()
        log.info("inquiry_sent", inq_id=inq_id, out_msg_id=out.msg_id, engine=ref.engine.value)
        status = await self._store.item_status(head.corp_id, inq.orig_msg_id, inq.seq_no)
        return ok_response(req, now, inq_id, ret_msg="inquiry sent", status=status)

    # -- RPLY ---------------------------------------------------------------
    async def reply(self, req: Request, rp: Reply, now: datetime) -> Response:
        head = req.head
        existing = await self._store.find_request(head.corp_id, head.msg_id)
        if existing is not None:
            return await self.replay(req, existing, now)
        found = await self._store.find_inquiry(rp.inq_id, InquiryDirection.IN)
        if found is None or found.corp_id != head.corp_id:
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"no inquiry {rp.inq_id} for this CorpId")
        if found.state is InquiryState.REPLIED:
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"inquiry {rp.inq_id} already answered")
        out = await self._outbox.build(
            MSG_TP_REPLY,
            await self._reply_engine(head.corp_id, found),
            found.counterparty,
            (rp.inq_id, rp.text),
            now,
        )
        try:
            outcome = await self._store.answer_inquiry(
                new_request(req, now), rp.inq_id, rp.text, out
            )
        except LookupError:
            raise GatewayError(
                RetCode.UNKNOWN_TRNCODE, f"no inquiry {rp.inq_id} for this CorpId"
            ) from None
        except ValueError:
            raise GatewayError(
                RetCode.UNKNOWN_TRNCODE, f"inquiry {rp.inq_id} already answered"
            ) from None
        if not outcome.created:
            return await self._lost_race(req, outcome, now)
        self._outbox.send_soon(out)
        metrics.INQUIRIES.labels("out", "reply").inc()
        log.info("reply_sent", inq_id=rp.inq_id, out_msg_id=out.msg_id)
        assert outcome.record is not None  # noqa: S101 - created implies a record
        return ok_response(req, now, outcome.record.gw_ref, ret_msg="reply sent")

    async def _reply_engine(self, corp_id: str, found: InquiryRecord) -> Engine:
        """The link a ccms.315 goes out on: the one its ccms.314 arrived on (docs/clearing-link.md
        §2).

        An inquiry journaled before migration 6 has no engine: then the link of
        the payment it asks about, else :func:`found_engine`.
        """
        if found.engine is not None:
            return found.engine
        if found.msg_id is not None:
            ref = await self._store.item_ref(corp_id, found.msg_id, found.seq_no)
            if ref is not None and ref.engine is not None:
                return ref.engine
        return found_engine(found.counterparty)

    # -- BAL ----------------------------------------------------------------
    async def balance(self, req: Request, q: BalanceQuery, now: datetime) -> Response:
        corp = self._registry().corporate(req.head.corp_id)
        if corp is None or q.acct not in corp.accounts:
            raise GatewayError(RetCode.PAYER_NOT_ENROLLED, "Acct not enrolled for CorpId")
        if self._balance is None:
            metrics.CORE_REQUESTS.labels("balance", "disabled").inc()
            raise GatewayError(RetCode.CORE_TIMEOUT, "core banking link not configured")
        try:
            balance = await self._balance(q.acct)
        except CoreUnavailable as exc:
            metrics.CORE_REQUESTS.labels("balance", "timeout").inc()
            log.warning("core_no_answer", kind="balance", acct=mask_account(q.acct))
            raise GatewayError(RetCode.CORE_TIMEOUT, str(exc) or "no answer in time") from None
        if balance is None:
            metrics.CORE_REQUESTS.labels("balance", "unknown").inc()
            raise GatewayError(
                RetCode.PAYER_NOT_ENROLLED, "Acct unknown to the core banking system"
            )
        metrics.CORE_REQUESTS.labels("balance", "ok").inc()
        return replace(ok_response(req, now, None, ret_msg="balance"), balance=balance)

    # -- replay (docs/protocol.md §7) -------------------------------------------
    async def replay(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        """Same digest: the original answer with Dup=true; different: 3001."""
        if existing.digest != req.digest:
            raise GatewayError(RetCode.DUPLICATE_MSGID, f"MsgId {req.head.msg_id}")
        metrics.DUPLICATES.inc()
        head = req.head
        if existing.trn_code == TrnCode.INQ.value:
            inq = await self._store.inquiry_for_request(head.corp_id, head.msg_id)
            status: StatusView | None = None
            if inq is not None and inq.msg_id is not None:
                status = await self._store.item_status(head.corp_id, inq.msg_id, inq.seq_no)
            ref = inq.inq_id if inq is not None else existing.gw_ref
            return ok_response(req, now, ref, status=status, dup=True)
        return ok_response(req, now, existing.gw_ref, dup=True)

    async def _lost_race(self, req: Request, outcome: AcceptOutcome, now: datetime) -> Response:
        """Another request with this MsgId was journaled between our lookup and our write."""
        assert outcome.record is not None  # noqa: S101
        return await self.replay(req, outcome.record, now)


def found_engine(counterparty: str) -> Engine:
    """The link for a reply when the inquiry names no payment of ours: a 6-digit
    internal code is our own clearing centre, anything else BEPS (docs/clearing-link.md §2)."""
    return Engine.INTRA if len(counterparty) == 6 else Engine.BEPS
