"""The path of one request, in order (DESIGN.md "The path of one payment").

frame → [admission] → decode/verify (worker) → replay (3001/Dup) → freshness
(3002) → business rules (4001–4006) → journal (fsync) → 0000 → engine wake-up.

This is the one boundary where a ``GatewayError`` becomes a response (STYLE.md
habit 7): every refusal is rendered, signed and counted here with its reason
word, and an unexpected exception becomes 9999 with nothing journaled and
nothing internal sent to the client.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from gateway.clock import Clock
from gateway.desk import Inspection, Refusal
from gateway.errors import GatewayError, RetCode
from gateway.journal.records import DailyLimit, NewItem, NewRequest, RequestRecord
from gateway.journal.store import Store
from gateway.model import (
    Engine,
    Head,
    Request,
    Response,
    State,
    StatusQuery,
    StatusView,
    Transfer,
    Transition,
    TrnCode,
)
from gateway.net.admission import Decision
from gateway.net.listener import ConnInfo
from gateway.net.session import CloseConnection
from gateway.ops import metrics
from gateway.ops.logs import mask_account
from gateway.routing.router import Router
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.pipeline")

JOURNALED = frozenset({TrnCode.PAY.value})


#: The CorpId of a request, found in the raw bytes without parsing, for the
#: per-CorpId rate check that must come before signature verification (§8).
#: The worker re-reads the real Head; a spoofed match can only charge a bucket,
#: which anyone can do anyway by sending that CorpId unsigned.
_CORP_ID = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?CorpId>([A-Z0-9]{1,20})</")

#: Refusals that count as a strike towards an address ban (issue 5).
STRIKE_CODES = frozenset({RetCode.BAD_FRAME, RetCode.MALFORMED_XML, RetCode.SIGNATURE_INVALID})


@dataclass(frozen=True)
class PipelineSettings:
    send_time_window: float = 300.0  # corplink.md §7
    max_pending: int = 2_000  # requests in the pipeline before 5002 (nothing journaled)
    max_journal_backlog: int = 5_000  # queued journal writes before 5002


class Admission(Protocol):
    """The per-address and per-CorpId policies (gateway.net.admission)."""

    def on_frame(self, ip: str, now: float) -> Decision: ...
    def on_corp(self, corp_id: str, now: float) -> Decision: ...
    def strike(self, ip: str, now: float, reason: str) -> bool: ...


class Pipeline:
    """Handles one frame body and returns the signed response body."""

    def __init__(
        self,
        clock: Clock,
        pool: Callable[[], WorkerPool],
        store: Store,
        router: Callable[[], Router],
        wake: Callable[[Engine], None],
        settings: PipelineSettings,
        admission: Admission | None = None,
    ) -> None:
        self._clock = clock
        self._pool = pool
        self._store = store
        self._router = router
        self._wake = wake
        self._settings = settings
        self._admission = admission
        self._pending = 0

    # -- entry points (the listener's Handler and BadFrameResponder) -------
    async def handle(self, body: bytes, conn: ConnInfo) -> bytes:
        t0 = time.perf_counter()
        now = self._clock.now()
        pool = self._pool()
        self._pending += 1
        inspection: Inspection | None = None
        try:
            rsp = self._admit(body, conn, now)
            if rsp is None:
                corp_retry = self._corp_retry(body)
                inspection = await pool.inspect(body, conn.peer_ip, now, corp_retry)
                self._strike(conn, inspection.refusal)
                rsp = await self._respond(inspection, now, conn)
        except CloseConnection:
            raise
        except Exception:  # the one boundary: never leak internals (corplink.md §8)
            log.exception("internal_error", stage="pipeline", listener=conn.listener)
            rsp = self._refusal_response(_internal(inspection), now)
        finally:
            self._pending -= 1
        out = await pool.render(rsp)
        elapsed = time.perf_counter() - t0
        metrics.REQUESTS.labels(rsp.trn_code or "-", rsp.ret_code).inc()
        if rsp.ret_code == RetCode.OK.value and rsp.trn_code in JOURNALED:
            metrics.ACK_LATENCY.observe(elapsed)
        return out

    # -- admission: cheapest first (DESIGN.md principle 4, issue 5) -------
    def _admit(self, body: bytes, conn: ConnInfo, now: datetime) -> Response | None:
        """Global load (5002) and the per-address rate (5001), before any parsing."""
        s = self._settings
        backlog = getattr(self._store, "pending_writes", 0)
        if self._pending > s.max_pending or backlog > s.max_journal_backlog:
            return self._refuse(
                Refusal(RetCode.OVERLOADED, None, stage="admission"), now, reason="overloaded"
            )
        if self._admission is None:
            return None
        d = self._admission.on_frame(conn.peer_ip, time.monotonic())
        if d.ok:
            return None
        if d.reason == "banned":
            # A banned address gets no more answers: each would cost a signature
            # and hold its body in memory (issue 5). Its connections just close.
            metrics.REFUSALS.labels("admission", "banned").inc()
            raise CloseConnection("banned")
        return self._refuse(
            Refusal(
                RetCode.RATE_LIMITED,
                "request rate of this address",
                stage="admission",
                retry_after_ms=d.retry_after_ms,
            ),
            now,
            reason=d.reason or "ip_rate",
        )

    def _corp_retry(self, body: bytes) -> int | None:
        if self._admission is None:
            return None
        m = _CORP_ID.search(body, 0, 4096)
        if m is None:
            return None
        d = self._admission.on_corp(m.group(1).decode("ascii"), time.monotonic())
        if d.ok:
            return None
        return d.retry_after_ms if d.retry_after_ms is not None else 1000

    def _strike(self, conn: ConnInfo, refusal: Refusal | None) -> None:
        if self._admission is None or refusal is None or refusal.code not in STRIKE_CODES:
            return
        if self._admission.strike(conn.peer_ip, time.monotonic(), refusal.code.reason):
            metrics.BANS.inc()
            log.warning("address_banned", peer=conn.peer_ip, reason=refusal.code.reason)

    async def bad_frame(self, conn: ConnInfo, reason: str) -> bytes | None:
        """The one 1001 response sent before closing a connection (corplink.md §1)."""
        self._strike(conn, Refusal(RetCode.BAD_FRAME, reason, stage="frame"))
        metrics.REFUSALS.labels("frame", reason).inc()
        rsp = self._refusal_response(
            Refusal(RetCode.BAD_FRAME, reason, stage="frame"), self._clock.now()
        )
        return await self._pool().render(rsp)

    # -- the stages after decode/verify ----------------------------------
    async def _respond(self, ins: Inspection, now: datetime, conn: ConnInfo) -> Response:
        if ins.refusal is not None:
            return self._refuse(ins.refusal, now)
        if ins.request is None and ins.deferred is not None and ins.head is not None:
            return await self._deferred_only(ins, now)
        req = ins.request
        assert req is not None  # noqa: S101 - Inspection carries one of the three
        head = req.head
        structlog.contextvars.bind_contextvars(corp_id=head.corp_id, msg_id=head.msg_id)
        try:
            if isinstance(req.body, Transfer):
                return await self._pay(req, ins, now)
            if isinstance(req.body, StatusQuery):
                self._check_fresh(req, now)
                return await self._status(req, req.body, now)
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"TrnCode {head.trn_code}")
        except GatewayError as exc:
            return self._refuse(_refusal_for(exc, head, req.encoding), now)
        finally:
            structlog.contextvars.unbind_contextvars("corp_id", "msg_id")

    async def _deferred_only(self, ins: Inspection, now: datetime) -> Response:
        """A request whose body broke a business rule in decode (4004): §8 order still holds."""
        head, deferred = ins.head, ins.deferred
        assert head is not None  # noqa: S101
        assert deferred is not None  # noqa: S101
        req = Request(
            head=head,
            body=StatusQuery(orig_msg_id=""),
            digest=ins.digest,
            encoding=deferred.encoding,
        )
        try:
            if head.trn_code in JOURNALED:
                existing = await self._store.find_request(head.corp_id, head.msg_id)
                if existing is not None:
                    return await self._replay(req, existing, now)
            self._check_fresh(req, now)
        except GatewayError as exc:
            return self._refuse(_refusal_for(exc, head, deferred.encoding), now)
        return self._refuse(deferred, now)

    def _check_fresh(self, req: Request, now: datetime) -> None:
        skew = abs((req.head.send_time - now).total_seconds())
        if skew > self._settings.send_time_window:
            raise GatewayError(RetCode.STALE_SENDTIME, f"SendTime differs by {int(skew)} s")

    async def _pay(self, req: Request, ins: Inspection, now: datetime) -> Response:
        head = req.head
        body = req.body
        assert isinstance(body, Transfer)  # noqa: S101
        try:
            self._check_fresh(req, now)
            if ins.deferred is not None:
                raise GatewayError(ins.deferred.code, ins.deferred.detail)
            router = self._router()
            route = router.route(body, now)
            if not router.calendar.covers(now.date()):
                metrics.CALENDAR_UNCOVERED.inc()  # routing.md §4: weekday rule, alert
        except GatewayError:
            # corplink.md §8: replay (3001/Dup) answers before freshness and business
            # rules. Looked up only on this refusal path: on the hot path the
            # journal's accept detects a replay itself, saving a read per request.
            existing = await self._store.find_request(head.corp_id, head.msg_id)
            if existing is not None:
                return await self._replay(req, existing, now)
            raise
        state = State.HELD if route.release_at is not None else State.QUEUED
        item = NewItem(
            seq_no=None,
            payer_acct=body.payer_acct,
            payer_name=body.payer_name,
            payee_acct=body.payee_acct,
            payee_name=body.payee_name,
            payee_bank_code=body.payee_bank_code,
            amount=body.amount,
            ccy=body.ccy,
            priority=body.priority,
            biz_type=body.biz_type,
            purpose=body.purpose,
            state=state,
            engine=route.engine,
            receiver=route.receiver,
            work_date=route.work_date,
            release_at=route.release_at,
        )
        t = time.perf_counter()
        outcome = await self._store.accept(
            NewRequest(
                corp_id=head.corp_id,
                msg_id=head.msg_id,
                oper_id=head.oper_id,
                trn_code=head.trn_code,
                digest=req.digest,
                received_at=now,
                items=(item,),
                daily_limit=(
                    DailyLimit(now.date(), ins.daily_cap) if ins.daily_cap is not None else None
                ),
            )
        )
        metrics.STAGE_SECONDS.labels("journal").observe(time.perf_counter() - t)
        if outcome.over_limit:
            raise GatewayError(RetCode.NOT_PERMITTED, "daily limit of this operator reached")
        if not outcome.created:  # lost a race with a concurrent resend
            assert outcome.record is not None  # noqa: S101 - set whenever not over_limit
            return await self._replay(req, outcome.record, now)
        assert outcome.record is not None  # noqa: S101 - created implies a record
        metrics.ITEMS_ROUTED.labels(route.engine.value, state.value).inc()
        self._wake(route.engine)
        log.info(
            "accepted",
            gw_ref=outcome.record.gw_ref,
            engine=route.engine.value,
            state=state.value,
            amount=str(body.amount),
            payer_acct=mask_account(body.payer_acct),
            payee_acct=mask_account(body.payee_acct),
            **{f"{k}_ms": round(v * 1000, 3) for k, v in ins.timings.items()},
        )
        status = StatusView(
            state=state,
            engine=route.engine,
            work_date=route.work_date,
            release_at=route.release_at,
            history=(Transition(State.ACCEPTED, now), Transition(state, now)),
        )
        return self._ok(req, now, outcome.record.gw_ref, status, dup=False)

    async def _replay(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        """corplink.md §7: same digest → the original answer with Dup=true; else 3001."""
        if existing.digest != req.digest:
            raise GatewayError(RetCode.DUPLICATE_MSGID, f"MsgId {req.head.msg_id}")
        metrics.DUPLICATES.inc()
        status = await self._store.item_status(req.head.corp_id, req.head.msg_id)
        return self._ok(req, now, existing.gw_ref, status, dup=True)

    async def _status(self, req: Request, query: StatusQuery, now: datetime) -> Response:
        view = await self._store.item_status(req.head.corp_id, query.orig_msg_id, query.seq_no)
        rec = await self._store.find_request(req.head.corp_id, query.orig_msg_id)
        if view is None or rec is None:
            return Response(
                trn_code=req.head.trn_code,
                corp_id=req.head.corp_id,
                msg_id=req.head.msg_id,
                rsp_time=now,
                ret_code=RetCode.OK.value,
                ret_msg=f"no request with OrigMsgId {query.orig_msg_id}",
                encoding=req.encoding,
            )
        return self._ok(req, now, rec.gw_ref, view, dup=False, ret_msg="found")

    # -- responses -------------------------------------------------------
    def _ok(
        self,
        req: Request,
        now: datetime,
        gw_ref: str | None,
        status: StatusView | None,
        *,
        dup: bool,
        ret_msg: str | None = None,
    ) -> Response:
        return Response(
            trn_code=req.head.trn_code,
            corp_id=req.head.corp_id,
            msg_id=req.head.msg_id,
            rsp_time=now,
            ret_code=RetCode.OK.value,
            ret_msg=ret_msg or ("duplicate of an accepted request" if dup else RetCode.OK.text),
            gw_ref=gw_ref,
            dup=dup,
            status=status,
            encoding=req.encoding,
        )

    def _refuse(self, refusal: Refusal, now: datetime, reason: str | None = None) -> Response:
        word = reason or refusal.code.reason
        metrics.REFUSALS.labels(refusal.stage, word).inc()
        log.info(
            "refused",
            ret_code=refusal.code.value,
            reason=word,
            stage=refusal.stage,
            detail=refusal.detail,
            trn_code=refusal.trn_code,
            corp_id=refusal.corp_id,
            msg_id=refusal.msg_id,
        )
        return self._refusal_response(refusal, now)

    @staticmethod
    def _refusal_response(refusal: Refusal, now: datetime) -> Response:
        return Response(
            trn_code=refusal.trn_code,
            corp_id=refusal.corp_id,
            msg_id=refusal.msg_id,
            rsp_time=now,
            ret_code=refusal.code.value,
            ret_msg=refusal.ret_msg,
            encoding=refusal.encoding,
            retry_after_ms=refusal.retry_after_ms,
        )


def _internal(ins: Inspection | None) -> Refusal:
    """9999 echoing what was read of the Head, so the client can match it by MsgId."""
    head = ins.request.head if ins is not None and ins.request is not None else None
    head = head or (ins.head if ins is not None else None)
    if head is None:
        return Refusal(RetCode.INTERNAL, None, stage="internal")
    enc = ins.request.encoding if ins is not None and ins.request is not None else "UTF-8"
    return Refusal(
        RetCode.INTERNAL, None, head.trn_code, head.corp_id, head.msg_id, enc, "internal"
    )


def _refusal_for(exc: GatewayError, head: Head, encoding: str) -> Refusal:
    """A refusal after decode: echoes the Head so the client matches it by MsgId."""
    return Refusal(
        exc.code, exc.detail, head.trn_code, head.corp_id, head.msg_id, encoding, _stage(exc.code)
    )


def _stage(code: RetCode) -> str:
    if code in (RetCode.DUPLICATE_MSGID, RetCode.STALE_SENDTIME):
        return "replay"
    if code.value.startswith("4"):
        return "business"
    return "pipeline"
