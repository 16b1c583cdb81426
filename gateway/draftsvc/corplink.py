"""DRAFT and DRAFTRFND on CorpLink, and STATUS of them (docs/bank-drafts.md §2).

Runs where the journal is (the core): the pipeline of a front asks for it
over its channel, as for INQ and RPLY.  The checks before it (USBKey only,
the operator's limits, the payer's enrolment, TrnCode permissions) are the
desk's, as for PAY; what is left here is what needs the register:

- DRAFT: CNY only (4004); the INTRA window decides the IssueDate, or HELD
  until the next working day (4005 under ``reject``); the DraftNo and the
  request are journaled in one transaction, so a replay gets the same DraftNo;
  the Code is computed for the answer and never stored.
- DRAFTRFND: only the applicant's CorpId and only an ISSUED draft (1004
  otherwise, the reason in RetMsg); journaled with the move to REFUNDING.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import structlog

from gateway.clock import SHANGHAI
from gateway.drafts.code import make_code
from gateway.drafts.dates import expiry_date
from gateway.drafts.keystore import DraftKeyRing
from gateway.drafts.records import DraftState, Scope
from gateway.errors import GatewayError, RetCode
from gateway.journal.draft_records import DraftRecord, NewDraft, RefundOutcome, RefundRefusal
from gateway.journal.records import DailyLimit, RequestRecord, new_request
from gateway.journal.store import Store
from gateway.model import (
    DraftApply,
    DraftRefundRequest,
    DraftStep,
    DraftView,
    Engine,
    Request,
    Response,
    ok_response,
)
from gateway.ops import metrics
from gateway.routing.router import Router
from gateway.routing.windows import ScheduleError

log = structlog.get_logger("gateway.drafts")

DRAFT_TRN_CODES = frozenset({"DRAFT", "DRAFTRFND"})
"""TrnCodes whose journaled request belongs to a draft (replay and STATUS come here)."""

_NOT_ENABLED = "bank drafts are not enabled on this gateway (no draft key)"


class DraftCorplink:
    """The register's side of DRAFT, DRAFTRFND and their STATUS (module docstring)."""

    def __init__(
        self,
        store: Store,
        router: Callable[[], Router],
        keys: Callable[[], DraftKeyRing | None],
        wake: Callable[[], None],
    ) -> None:
        self._store = store
        self._router = router
        self._keys = keys
        self._wake = wake

    async def apply(
        self, req: Request, body: DraftApply, daily_cap: Decimal | None, now: datetime
    ) -> Response:
        """Journal a DRAFT: 0000 with its ``Draft`` (DraftNo, dates, Code, State)."""
        if body.ccy != "CNY":
            raise GatewayError(RetCode.AMOUNT_INVALID, f"Ccy {body.ccy}: a bank draft is in CNY")
        ring = self._keys()
        if ring is None:
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, _NOT_ENABLED)
        router = self._router()
        try:
            placement = router.schedules[Engine.INTRA].place(now, router.calendar)
        except ScheduleError:
            raise GatewayError(
                RetCode.ENGINE_CLOSED, "INTRA has no opening in the calendar"
            ) from None
        if not placement.is_open and not router.policy.holds(Engine.INTRA):
            raise GatewayError(RetCode.ENGINE_CLOSED, "INTRA closed: no draft is issued now")
        key = ring.current(now)
        issue = placement.work_date
        new = NewDraft(
            participant=router.bank.participant,
            scope=Scope(body.scope),
            amount=body.amount,
            payer_acct=body.payer_acct,
            payer_name=body.payer_name,
            payee_name=body.payee_name,
            purpose=body.purpose,
            issue_date=issue,
            expiry_date=expiry_date(issue, router.calendar),
            code_key=key.key_id,
            release_at=placement.release_at,
        )
        limit = DailyLimit(now.date(), daily_cap) if daily_cap is not None else None
        outcome = await self._store.open_draft(new_request(req, now, (), limit), new)
        if outcome.over_limit:
            raise GatewayError(RetCode.NOT_PERMITTED, "daily limit of this operator reached")
        if not outcome.created:
            assert outcome.record is not None  # noqa: S101 - set whenever not over_limit
            return await self.replay(req, outcome.record, now)
        assert outcome.record is not None  # noqa: S101 - created implies both
        assert outcome.draft is not None  # noqa: S101
        draft = outcome.draft
        metrics.DRAFTS_APPLIED.inc()
        self._wake()
        log.info(
            "draft_accepted",
            gw_ref=outcome.record.gw_ref,
            draft_no=draft.draft_no,
            amount=str(draft.entry.amount),
            issue_date=draft.entry.issue_date.isoformat(),
            held=draft.release_at is not None,
        )
        text = RetCode.OK.text
        if draft.release_at is not None:
            text = f"{text}: HELD until {draft.release_at.astimezone(SHANGHAI).isoformat()}"
        rsp = ok_response(req, now, outcome.record.gw_ref, ret_msg=text)
        return replace(rsp, draft=self._view(draft, with_history=False))

    async def refund(self, req: Request, body: DraftRefundRequest, now: datetime) -> Response:
        """Journal a DRAFTRFND: the draft goes REFUNDING and its refund message follows."""
        if self._keys() is None:
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, _NOT_ENABLED)
        outcome = await self._store.open_refund(new_request(req, now), body.draft_no)
        if outcome.refused is not None:
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, _refusal_text(body.draft_no, outcome))
        if not outcome.created:
            assert outcome.record is not None  # noqa: S101
            return await self.replay(req, outcome.record, now)
        assert outcome.record is not None  # noqa: S101 - created implies both
        assert outcome.draft is not None  # noqa: S101
        self._wake()
        log.info("draft_refund_requested", gw_ref=outcome.record.gw_ref, draft_no=body.draft_no)
        rsp = ok_response(req, now, outcome.record.gw_ref)
        return replace(rsp, draft=self._view(outcome.draft, with_history=False))

    async def replay(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        """docs/protocol.md §7: the same digest gets the original answer (its DraftNo) with Dup."""
        if existing.digest != req.digest:
            raise GatewayError(RetCode.DUPLICATE_MSGID, f"MsgId {req.head.msg_id}")
        metrics.DUPLICATES.inc()
        draft = await self._store.draft_for_request(existing.corp_id, existing.msg_id)
        rsp = ok_response(req, now, existing.gw_ref, dup=True)
        if draft is None:
            return rsp
        return replace(rsp, draft=self._view(draft, with_history=False))

    async def status(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        """STATUS on a DRAFT (or DRAFTRFND) MsgId: the ``Draft`` with its ``History``."""
        draft = await self._store.draft_for_request(existing.corp_id, existing.msg_id)
        rsp = ok_response(req, now, existing.gw_ref, ret_msg="found")
        if draft is None:
            return rsp
        return replace(rsp, draft=self._view(draft, with_history=True))

    def _view(self, draft: DraftRecord, *, with_history: bool) -> DraftView:
        """The applicant's view: the Code recomputed under the key it was made with."""
        entry = draft.entry
        ring = self._keys()
        key = ring.by_id(entry.code_key) if ring is not None else None
        code = make_code(key, entry) if key is not None else ""
        history = (
            tuple(DraftStep(s.state.value, s.at, s.reason_code) for s in draft.history)
            if with_history
            else ()
        )
        return DraftView(
            draft_no=entry.draft_no,
            issue_date=entry.issue_date,
            expiry_date=entry.expiry_date,
            amount=entry.amount,
            code=code,
            state=entry.state.value,
            history=history,
        )


def _refusal_text(draft_no: str, outcome: RefundOutcome) -> str:
    """RetMsg of a refused DRAFTRFND; another CorpId's draft reads as unknown (no oracle)."""
    if outcome.refused is RefundRefusal.NOT_ISSUED:
        draft = outcome.draft
        if draft is None:
            return f"draft {draft_no} is not ISSUED: only an ISSUED draft can be refunded"
        if draft.state is DraftState.REFUNDING:
            return f"draft {draft_no} is already being refunded"
        return f"draft {draft_no} is {draft.state.value}: only an ISSUED draft can be refunded"
    return f"no draft {draft_no} applied for by this CorpId"
