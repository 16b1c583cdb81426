"""The path of one request, in order (docs/architecture.md §7 "The path of one payment").

frame → [admission] → decode/verify (worker) → replay (3001/Dup) → freshness
(3002) → business rules (4001–4006) → journal (fsync) → 0000 → engine wake-up.

This is the one boundary where a ``GatewayError`` becomes a response (docs/architecture.md §8
habit 7): every refusal is rendered, signed and counted here with its reason
word, and an unexpected exception becomes 9999 with nothing journaled and
nothing internal sent to the client.

Batches (PAYROLL, PAIN001, MT101; docs/protocol.md §4) follow the same order as a
PAY, admitted or refused as a whole up to the business rules: amounts (4004)
and payer enrolment (4006) refuse the batch, so does the daily limit (2006,
checked by the journal over the non-rejected items).  Routing is per item
(docs/routing-rules.md §3): an item whose bank code is malformed, unknown or inactive,
given only as a BIC (the directory has no BIC column, docs/routing-rules.md §2), or
whose engine is closed under policy ``reject`` is journaled REJECTED with that
code, and the others QUEUED or HELD; the 0000 answer lists every item in
``Items``.  When *no* item can be routed, nothing is journaled: the batch is
refused with the first item's code and every item's reason, and the MsgId
stays free for a corrected batch — as a PAY with a bad bank code is.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

import structlog

from gateway.clock import Clock
from gateway.codec.corplink_decode import MAX_BATCH_ITEMS
from gateway.correspondence.corplink import CorplinkCorrespondence
from gateway.desk import Inspection, Refusal
from gateway.draftsvc.corplink import DRAFT_TRN_CODES, DraftCorplink
from gateway.errors import GatewayError, RetCode
from gateway.journal.ops_records import Exchange
from gateway.journal.records import DailyLimit, NewItem, RequestRecord, new_request
from gateway.journal.store import Store
from gateway.model import (
    BalanceQuery,
    Batch,
    BatchItem,
    BizType,
    DraftApply,
    DraftRefundRequest,
    Engine,
    Head,
    Inquiry,
    NotifyPull,
    Reply,
    Request,
    Response,
    Route,
    State,
    StatusQuery,
    StatusView,
    Transfer,
    Transition,
    TrnCode,
    ok_response,
)
from gateway.net.admission import Decision
from gateway.net.listener import ConnInfo
from gateway.net.session import CloseConnection
from gateway.ops import metrics
from gateway.ops.logs import mask_account
from gateway.routing.currencies import HOME_CURRENCY
from gateway.routing.fx import FxEngine
from gateway.routing.router import Router
from gateway.screening.gate import Screener
from gateway.screening.screen import Decision as Screening
from gateway.screening.screen import decision_json
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.pipeline")

BATCHES = frozenset({TrnCode.PAYROLL.value, TrnCode.PAIN001.value, TrnCode.MT101.value})
"""TrnCodes carrying many transfers, answered with ``Items`` (docs/protocol.md §4, §5)."""
CORRESPONDENCE = frozenset({TrnCode.INQ.value, TrnCode.RPLY.value})
JOURNALED = frozenset({TrnCode.PAY.value}) | BATCHES | CORRESPONDENCE | DRAFT_TRN_CODES
"""TrnCodes whose 0000 means "durably journaled" (docs/protocol.md §5): replay applies."""

MAX_STATUS_ITEMS = 1_000
"""Most items a STATUS without SeqNo lists for a batch (docs/protocol.md §4 allows
50,000): the first ones by SeqNo, with the count in RetMsg; the others are
asked for one by one with SeqNo.  Keeps a routine poll cheap to read and sign."""

_ROUTE_SLICE = 2_000
"""Batch items routed between yields to the event loop (~3.5 µs each, so a
50,000-item PAYROLL never holds the loop for more than a few milliseconds)."""

_READ_CHUNK = 64
"""Item status reads in flight at once when listing a batch's items."""


#: The CorpId of a request, found in the raw bytes without parsing, for the
#: per-CorpId rate check that must come before signature verification (§8).
#: The worker re-reads the real Head; a spoofed match can only charge a bucket,
#: which anyone can do anyway by sending that CorpId unsigned.
_CORP_ID = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?CorpId>([A-Z0-9]{1,20})</")

#: Refusals that count as a strike towards an address ban.
STRIKE_CODES = frozenset({RetCode.BAD_FRAME, RetCode.MALFORMED_XML, RetCode.SIGNATURE_INVALID})


@dataclass(frozen=True)
class PipelineSettings:
    send_time_window: float = 300.0  # docs/protocol.md §7
    max_pending: int = 2_000  # requests in the pipeline before 5002 (nothing journaled)
    max_journal_backlog: int = 5_000  # queued journal writes before 5002


class Admission(Protocol):
    """The per-address and per-CorpId policies: ``gateway.net.admission.Admission`` in
    one process, or a front's proxy asking the core (``gateway.procs.front``), so
    that the limits hold for the daemon as a whole (docs/architecture.md §1)."""

    async def check(
        self, ip: str, corp_id: str | None, now: float
    ) -> tuple[Decision, Decision | None]: ...
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
        correspondence: CorplinkCorrespondence | None = None,
        keep: Callable[[Exchange], None] | None = None,
        drafts: DraftCorplink | None = None,
        swift: bool = False,
        screener: Screener | None = None,
    ) -> None:
        self._swift = swift  # the SWIFT link runs: foreign currency may go to other banks
        # docs/foreign-currency.md §5: without lists, a payment that must be screened is refused
        self._screener = screener or Screener.unloaded()
        self._corr = correspondence
        self._drafts = drafts
        self._keep_exchange = keep
        self._clock = clock
        self._pool = pool
        self._store = store
        self._router = router
        self._wake = wake
        self._settings = settings
        self._admission = admission
        self._pending = 0
        self._keeping: set[asyncio.Task[None]] = set()

    # -- entry points (the listener's Handler and BadFrameResponder) -------
    async def handle(self, body: bytes, conn: ConnInfo) -> bytes:
        t0 = time.perf_counter()
        now = self._clock.now()
        pool = self._pool()
        self._pending += 1
        inspection: Inspection | None = None
        try:
            rsp, corp_retry = await self._admit(body, conn, now)
            if rsp is None:
                inspection = await pool.inspect(body, conn.peer_ip, now, corp_retry)
                self._strike(conn, inspection.refusal)
                rsp = await self._respond(inspection, now, conn)
        except CloseConnection:
            raise
        except Exception:  # the one boundary: never leak internals (docs/protocol.md §8)
            log.exception("internal_error", stage="pipeline", listener=conn.listener)
            rsp = self._refusal_response(_internal(inspection), now)
        finally:
            self._pending -= 1
        out = await pool.render(rsp)
        kept = rsp.ret_code == RetCode.OK.value and rsp.trn_code in JOURNALED and not rsp.dup
        if kept and rsp.gw_ref:
            # a DRAFT's answer carries the Code, which is never stored (docs/bank-drafts.md §1):
            # its signed request is kept, its response not
            self._keep(Exchange(rsp.gw_ref, body, out if rsp.draft is None else b"", now))
        elapsed = time.perf_counter() - t0
        metrics.REQUESTS.labels(rsp.trn_code or "-", rsp.ret_code).inc()
        if rsp.ret_code == RetCode.OK.value and rsp.trn_code == TrnCode.PAY.value:
            # single transfers only: a 50,000-item batch would swamp the 50 ms budget
            metrics.ACK_LATENCY.observe(elapsed)
        return out

    def _keep(self, ex: Exchange) -> None:
        """Journal the signed request and response for ``gatewayctl messages show``.

        After the answer, off the 0000 path: the request's content is journaled
        already (the 0000 promise); these are its exact bytes, the evidence an
        operator hands to xmlsec1.  A crash in between loses only them.
        """
        if self._keep_exchange is not None:  # written in bursts (gateway/journal/deferred.py)
            self._keep_exchange(ex)
            return
        task = asyncio.get_running_loop().create_task(self._store.record_exchange(ex))
        self._keeping.add(task)
        task.add_done_callback(self._kept)

    def _kept(self, task: asyncio.Task[None]) -> None:
        self._keeping.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("exchange_not_kept", error=str(task.exception())[:200])

    # -- admission: cheapest first (docs/architecture.md §7, principle 4) -------
    async def _admit(
        self, body: bytes, conn: ConnInfo, now: datetime
    ) -> tuple[Response | None, int | None]:
        """Global load (5002) and the per-address rate (5001), before any parsing; with
        them the per-CorpId rate, whose retry-after the desk turns into 5001 only
        once the body is known to be well-formed (docs/protocol.md §8)."""
        s = self._settings
        backlog = getattr(self._store, "pending_writes", 0)
        if self._pending > s.max_pending or backlog > s.max_journal_backlog:
            rsp = self._refuse(
                Refusal(RetCode.OVERLOADED, None, stage="admission"), now, reason="overloaded"
            )
            return rsp, None
        if self._admission is None:
            return None, None
        m = _CORP_ID.search(body, 0, 4096)
        corp_id = m.group(1).decode("ascii") if m is not None else None
        d, corp = await self._admission.check(conn.peer_ip, corp_id, time.monotonic())
        if d.ok:
            if corp is None or corp.ok:
                return None, None
            return None, corp.retry_after_ms if corp.retry_after_ms is not None else 1000
        if d.reason == "banned":
            # A banned address gets no more answers: each would cost a signature
            # and hold its body in memory. Its connections just close.
            metrics.REFUSALS.labels("admission", "banned").inc()
            raise CloseConnection("banned")
        rsp = self._refuse(
            Refusal(
                RetCode.RATE_LIMITED,
                "request rate of this address",
                stage="admission",
                retry_after_ms=d.retry_after_ms,
            ),
            now,
            reason=d.reason or "ip_rate",
        )
        return rsp, None

    def _strike(self, conn: ConnInfo, refusal: Refusal | None) -> None:
        if self._admission is None or refusal is None or refusal.code not in STRIKE_CODES:
            return
        if self._admission.strike(conn.peer_ip, time.monotonic(), refusal.code.reason):
            metrics.BANS.inc()
            log.warning("address_banned", peer=conn.peer_ip, reason=refusal.code.reason)

    async def bad_frame(self, conn: ConnInfo, reason: str) -> bytes | None:
        """The one 1001 response sent before closing a connection (docs/protocol.md §1)."""
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
            if isinstance(req.body, Batch):
                return await self._batch(req, req.body, ins, now)
            if isinstance(req.body, StatusQuery):
                self._check_fresh(req, now)
                return await self._status(req, req.body, now)
            if isinstance(req.body, DraftApply | DraftRefundRequest):
                return await self._draft(req, ins, now)
            if self._corr is not None:
                return await self._correspondence(req, self._corr, now)
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"TrnCode {head.trn_code}")
        except GatewayError as exc:
            return self._refuse(_refusal_for(exc, head, req.encoding), now)
        finally:
            structlog.contextvars.unbind_contextvars("corp_id", "msg_id")

    async def _correspondence(
        self, req: Request, corr: CorplinkCorrespondence, now: datetime
    ) -> Response:
        """NTFY, BAL (read-only) and INQ, RPLY (journaled: replay before freshness)."""
        body = req.body
        if isinstance(body, (Inquiry, Reply)):
            try:
                self._check_fresh(req, now)
            except GatewayError:
                existing = await self._store.find_request(req.head.corp_id, req.head.msg_id)
                if existing is not None:
                    return await self._replay(req, existing, now)
                raise
            if isinstance(body, Inquiry):
                return await corr.inquire(req, body, now)
            return await corr.reply(req, body, now)
        self._check_fresh(req, now)
        if isinstance(body, NotifyPull):
            return await corr.notify(req, body, now)
        if isinstance(body, BalanceQuery):
            return await corr.balance(req, body, now)
        raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"TrnCode {req.head.trn_code}")

    async def _draft(self, req: Request, ins: Inspection, now: datetime) -> Response:
        """DRAFT and DRAFTRFND (docs/bank-drafts.md §2): journaled, so replay before freshness
        and the business rules, as for PAY (docs/protocol.md §8)."""
        body = req.body
        drafts = self._drafts
        try:
            self._check_fresh(req, now)
            if ins.deferred is not None:  # 4006: the payer is not enrolled
                raise GatewayError(ins.deferred.code, ins.deferred.detail)
            if drafts is None:
                raise GatewayError(RetCode.UNKNOWN_TRNCODE, "bank drafts are not enabled")
            if isinstance(body, DraftApply):
                return await drafts.apply(req, body, ins.daily_cap, now)
            assert isinstance(body, DraftRefundRequest)  # noqa: S101 - the caller's dispatch
            return await drafts.refund(req, body, now)
        except GatewayError:
            existing = await self._store.find_request(req.head.corp_id, req.head.msg_id)
            if existing is not None:
                return await self._replay(req, existing, now)
            raise

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
            route = route_transfer(router, body, now, swift=self._swift)
            # docs/foreign-currency.md §5: after routing, before the journal and the answer
            screening = self._screener.check(body, foreign=body.ccy != HOME_CURRENCY)
            if body.biz_type is BizType.DEBIT and route.engine is not Engine.BEPS:
                # docs/routing-rules.md §3 rule 1 sends own branches to INTRA, which has no
                # debit message (docs/clearing-link.md §4); a debit sent as a credit would
                # move the money the wrong way.
                raise GatewayError(
                    RetCode.UNKNOWN_TRNCODE, "BizType DEBIT to an own branch: no intra-bank debit"
                )
            if not router.calendar.covers(now.date()):
                metrics.CALENDAR_UNCOVERED.inc()  # docs/routing-rules.md §4: weekday rule, alert
        except GatewayError:
            # docs/protocol.md §8: replay (3001/Dup) answers before freshness and business
            # rules. Looked up only on this refusal path: on the hot path the
            # journal's accept detects a replay itself, saving a read per request.
            existing = await self._store.find_request(head.corp_id, head.msg_id)
            if existing is not None:
                return await self._replay(req, existing, now)
            raise
        item = _new_item(None, body, route, screening)
        state = item.state
        journaled = await self._journal(req, ins, now, (item,))
        if isinstance(journaled, Response):
            return journaled
        metrics.ITEMS_ROUTED.labels(route.engine.value, state.value).inc()
        if state is not State.REVIEW:  # a screening hit waits for the reviewers
            self._wake(route.engine)
        log.info(
            "accepted",
            gw_ref=journaled.gw_ref,
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
        return ok_response(req, now, journaled.gw_ref, status=status)

    async def _batch(self, req: Request, batch: Batch, ins: Inspection, now: datetime) -> Response:
        """PAYROLL, PAIN001, MT101: whole-batch admission, per-item routing (module docstring)."""
        head = req.head
        try:
            self._check_fresh(req, now)
            if ins.deferred is not None:  # 4006 for the batch (4004 came as _deferred_only)
                raise GatewayError(ins.deferred.code, ins.deferred.detail)
        except GatewayError:
            existing = await self._store.find_request(head.corp_id, head.msg_id)
            if existing is not None:
                return await self._replay(req, existing, now)
            raise
        t = time.perf_counter()
        items = await self._route_items(batch, now)
        metrics.STAGE_SECONDS.labels("route").observe(time.perf_counter() - t)
        routed = [item for item in items if item.state is not State.REJECTED]
        if not routed:
            existing = await self._store.find_request(head.corp_id, head.msg_id)
            if existing is not None:
                return await self._replay(req, existing, now)
            return self._unroutable(req, items, now)
        journaled = await self._journal(req, ins, now, items)
        if isinstance(journaled, Response):
            return journaled
        counts = Counter(
            (item.engine.value if item.engine is not None else "-", item.state.value)
            for item in items
        )
        for (engine, state), n in counts.items():
            metrics.ITEMS_ROUTED.labels(engine, state).inc(n)
        for engine in {
            item.engine
            for item in routed
            if item.engine is not None and item.state is not State.REVIEW
        }:
            self._wake(engine)
        rejected = len(items) - len(routed)
        log.info(
            "accepted",
            gw_ref=journaled.gw_ref,
            items=len(items),
            rejected=rejected,
            amount=str(sum(item.amount for item in routed)),
            payer_acct=mask_account(items[0].payer_acct),
            **{f"{k}_ms": round(v * 1000, 3) for k, v in ins.timings.items()},
        )
        note = f"{len(items)} items, {rejected} rejected" if rejected else f"{len(items)} items"
        rsp = ok_response(req, now, journaled.gw_ref, ret_msg=f"{RetCode.OK.text}: {note}")
        return replace(rsp, items=tuple(_item_view(item) for item in items))

    async def _route_items(self, batch: Batch, now: datetime) -> tuple[NewItem, ...]:
        """Each item on its own against one router version (docs/routing-rules.md §2, §3)."""
        router = self._router()
        if not router.calendar.covers(now.date()):
            metrics.CALENDAR_UNCOVERED.inc()  # docs/routing-rules.md §4: weekday rule, alert
        out: list[NewItem] = []
        for n, item in enumerate(batch.items, start=1):
            out.append(_route_item(router, item, now, self._swift, self._screener))
            if n % _ROUTE_SLICE == 0:
                await asyncio.sleep(0)  # let other connections' frames through
        return tuple(out)

    def _unroutable(self, req: Request, items: Sequence[NewItem], now: datetime) -> Response:
        """No item of a batch can be routed: refuse it whole with the first item's code,
        listing every item's reason; nothing is journaled (module docstring)."""
        first = items[0]
        code = RetCode(first.reason_code)
        detail = f"no item can be routed; SeqNo {first.seq_no}: {first.reason_text}"
        refusal = _refusal_for(GatewayError(code, detail), req.head, req.encoding)
        return replace(self._refuse(refusal, now), items=tuple(_item_view(i) for i in items))

    async def _journal(
        self, req: Request, ins: Inspection, now: datetime, items: tuple[NewItem, ...]
    ) -> RequestRecord | Response:
        """Journal durably (the 0000 promise, docs/protocol.md §5); a lost race answers as replay.

        The operator's daily limit is checked in the same transaction over the
        non-rejected items (2006, docs/protocol.md §6: a batch as a whole).
        """
        t = time.perf_counter()
        limit = DailyLimit(now.date(), ins.daily_cap) if ins.daily_cap is not None else None
        outcome = await self._store.accept(new_request(req, now, items, limit))
        metrics.STAGE_SECONDS.labels("journal").observe(time.perf_counter() - t)
        if outcome.over_limit:
            raise GatewayError(RetCode.NOT_PERMITTED, "daily limit of this operator reached")
        if not outcome.created:  # lost a race with a concurrent resend
            assert outcome.record is not None  # noqa: S101 - set whenever not over_limit
            return await self._replay(req, outcome.record, now)
        assert outcome.record is not None  # noqa: S101 - created implies a record
        return outcome.record

    async def _replay(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        """docs/protocol.md §7: same digest → the original answer with Dup=true; else 3001.

        A batch is answered with every item's current status in ``Items``, as
        compact as the original answer (no History).
        """
        if existing.trn_code in CORRESPONDENCE and self._corr is not None:
            return await self._corr.replay(req, existing, now)
        if existing.trn_code in DRAFT_TRN_CODES and self._drafts is not None:
            return await self._drafts.replay(req, existing, now)
        if existing.digest != req.digest:
            raise GatewayError(RetCode.DUPLICATE_MSGID, f"MsgId {req.head.msg_id}")
        metrics.DUPLICATES.inc()
        corp, msg = req.head.corp_id, req.head.msg_id
        if existing.trn_code in BATCHES:
            views = await self._item_views(corp, msg, None)
            rsp = ok_response(req, now, existing.gw_ref, dup=True)
            return replace(rsp, items=tuple(replace(v, history=()) for v in views))
        status = await self._store.item_status(corp, msg)
        return ok_response(req, now, existing.gw_ref, status=status, dup=True)

    async def _item_views(self, corp_id: str, msg_id: str, limit: int | None) -> list[StatusView]:
        """Status of a batch's items SeqNo 1, 2, … (they are exactly 1..n, docs/protocol.md §4),
        at most ``limit``; read a chunk at a time."""
        views: list[StatusView] = []
        seq = 1
        while limit is None or len(views) < limit:
            size = _READ_CHUNK if limit is None else min(_READ_CHUNK, limit - len(views))
            found = await asyncio.gather(
                *(self._store.item_status(corp_id, msg_id, s) for s in range(seq, seq + size))
            )
            for view in found:
                if view is None:
                    return views
                views.append(view)
            seq += size
        return views

    async def _item_count(self, corp_id: str, msg_id: str, known: int) -> int:
        """How many items a batch has, knowing item ``known`` exists: a binary search
        over SeqNo (items are 1..n), about 16 reads for 50,000."""
        lo, hi = known, MAX_BATCH_ITEMS
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if await self._store.item_status(corp_id, msg_id, mid) is None:
                hi = mid - 1
            else:
                lo = mid
        return lo

    async def _status(self, req: Request, query: StatusQuery, now: datetime) -> Response:
        """One item's status, or for a batch asked without SeqNo its items (docs/protocol.md §4,
        §5).

        A batch lists at most ``MAX_STATUS_ITEMS`` items (SeqNo 1..1,000), each
        with its History; RetMsg then gives the count and asks for the others by
        SeqNo.
        """
        corp, orig = req.head.corp_id, query.orig_msg_id
        view = await self._store.item_status(corp, orig, query.seq_no)
        rec = await self._store.find_request(corp, orig)
        drafts = self._drafts
        if view is None and rec is not None and rec.trn_code in DRAFT_TRN_CODES and drafts:
            return await drafts.status(req, rec, now)  # docs/bank-drafts.md §2: with History
        if view is None or rec is None:
            missing = f"no request with OrigMsgId {orig}"
            if rec is not None:
                missing = f"no item SeqNo {query.seq_no} in OrigMsgId {orig}"
            return ok_response(req, now, None, ret_msg=missing)
        if query.seq_no is not None or view.seq_no is None:
            return ok_response(req, now, rec.gw_ref, ret_msg="found", status=view)
        views = await self._item_views(corp, orig, MAX_STATUS_ITEMS)
        found = f"found: {len(views)} items"
        if len(views) == MAX_STATUS_ITEMS and await self._store.item_status(
            corp, orig, MAX_STATUS_ITEMS + 1
        ):
            total = await self._item_count(corp, orig, MAX_STATUS_ITEMS + 1)
            found = (
                f"found: {total} items, SeqNo 1-{MAX_STATUS_ITEMS} listed;"
                " ask with SeqNo for the others"
            )
        return replace(ok_response(req, now, rec.gw_ref, ret_msg=found), items=tuple(views))

    # -- responses -------------------------------------------------------
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


def _new_item(
    seq_no: int | None,
    transfer: Transfer,
    outcome: Route | GatewayError,
    screening: Screening | None = None,
) -> NewItem:
    """The journal item of a routed transfer (QUEUED, or HELD until ``release_at``; REVIEW,
    keeping that route, when screening found a possible match, docs/foreign-currency.md §5),
    or of a batch item that routing refused (REJECTED with the code, docs/protocol.md §4)."""
    route = outcome if isinstance(outcome, Route) else None
    error = outcome if isinstance(outcome, GatewayError) else None
    foreign = transfer.ccy != HOME_CURRENCY
    if route is None:
        state = State.REJECTED
    elif screening is not None and screening.hit:
        state = State.REVIEW
    else:
        state = State.HELD if route.release_at is not None else State.QUEUED
    return NewItem(
        seq_no=seq_no,
        payer_acct=transfer.payer_acct,
        payer_name=transfer.payer_name,
        payee_acct=transfer.payee_acct,
        payee_name=transfer.payee_name,
        payee_bank_code=transfer.payee_bank_code
        or ("" if route is None else route.payee_bank_code),
        amount=transfer.amount,
        ccy=transfer.ccy,
        priority=transfer.priority,
        biz_type=transfer.biz_type,
        purpose=transfer.purpose,
        state=state,
        engine=None if route is None else route.engine,
        receiver=None if route is None else route.receiver,
        work_date=None if route is None else route.work_date,
        release_at=None if route is None else route.release_at,
        reason_code=None if error is None else error.code.value,
        reason_text=None if error is None else error.detail or error.code.text,
        payee_bic=transfer.payee_bic if foreign else None,
        payee_country=transfer.payee_country if foreign else None,
        chrg_br=transfer.chrg_br if foreign else None,
        screening=None if route is None or screening is None else decision_json(screening),
    )


SWIFT_NOT_ENABLED = "foreign-currency payments to other banks need the SWIFT link, not enabled"


def route_transfer(router: Router, transfer: Transfer, now: datetime, *, swift: bool) -> Route:
    """The engine of one transfer: CNY by docs/routing-rules.md §3, any other currency by
    docs/foreign-currency.md §2 (INTRA to our own bank, SWIFT to any other).

    Without the SWIFT link (``swift`` false) a foreign-currency payment to another
    bank is refused 4001 rather than journaled for an engine that does not run.
    """
    if transfer.ccy == HOME_CURRENCY:
        return router.route(transfer, now)
    fx = router.route_fx(
        transfer.ccy, transfer.amount, transfer.payee_bank_code or None, transfer.payee_bic, now
    )
    if fx.engine is FxEngine.SWIFT and not swift:
        raise GatewayError(RetCode.BANK_CODE_UNKNOWN, SWIFT_NOT_ENABLED)
    return Route(
        engine=Engine(fx.engine.value),
        receiver=fx.receiver,
        # INTRA to the head office, named by our BIC only: the head office is the payee bank
        payee_bank_code=fx.payee_bank_code or (fx.receiver if fx.engine is FxEngine.INTRA else ""),
        work_date=fx.work_date,
        release_at=fx.release_at,
    )


def _route_item(
    router: Router,
    item: BatchItem,
    now: datetime,
    swift: bool = False,
    screener: Screener | None = None,
) -> NewItem:
    """One batch item routed on its own (docs/routing-rules.md §3); its refusal is its own (§4).

    A payee bank given only as a BIC is mapped through the directory's optional
    ``bic`` column (docs/protocol.md §4); a BIC it does not list is 4001.  A
    foreign-currency item is routed by its BIC (docs/foreign-currency.md §2), then
    screened like a PAY (§5): an item that cannot be screened is refused on its own.
    """
    gate = screener or Screener.unloaded()
    try:
        transfer = item.transfer
        if transfer.ccy != HOME_CURRENCY:
            if transfer.payee_bic is None and item.bic is not None:
                transfer = replace(transfer, payee_bic=item.bic)
            route = route_transfer(router, transfer, now, swift=swift)
            return _new_item(item.seq_no, transfer, route, gate.check(transfer, foreign=True))
        if not transfer.payee_bank_code:
            entry = router.directory.by_bic(item.bic) if item.bic else None
            if entry is None:
                raise GatewayError(RetCode.BANK_CODE_UNKNOWN, "BIC not in the directory")
            transfer = replace(transfer, payee_bank_code=entry.code)
        route = router.route(transfer, now)
        return _new_item(item.seq_no, transfer, route, gate.check(transfer, foreign=False))
    except GatewayError as exc:
        return _new_item(item.seq_no, item.transfer, exc)


def _item_view(item: NewItem) -> StatusView:
    """A batch item's status as journaled, for the answer's ``Items`` (no History:
    ACCEPTED and the first state share the request's instant)."""
    return StatusView(
        state=item.state,
        engine=item.engine,
        work_date=item.work_date,
        release_at=item.release_at,
        reason_code=item.reason_code,
        reason_text=item.reason_text,
        seq_no=item.seq_no,
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
