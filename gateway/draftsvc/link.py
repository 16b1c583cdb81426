"""The draft messages on the INTRA link (docs/bank-drafts.md §3), and the settlement pass.

Outbound (``intra.draft.issue``, ``.settle``, ``.refund``): a pass asks the
journal which drafts need a message, builds and signs each, journals it as
the draft's message of that kind (unique per draft, so two passes or two
nodes send it once) and publishes it; the link's redelivery re-sends it
under the same MsgId until its ``ccms.990``.  The pass runs when woken (a
DRAFT, a DRAFTRFND, a presentment), every ``interval`` seconds, and so at
00:00 of each working day for the settlement of drafts PAID earlier.

Inbound ``intra.draft.present``: the register's checks in their order
(:func:`gateway.drafts.register.check_presentment`), then the one answer is
journaled with the draft's move to PAID (on ACCP) in one transaction, keyed
by (AgentBank, PrsntmtId).  A redelivered presentment re-sends the first
answer's message, whatever its Document now says.  When the draft changed
between the read and the write (a concurrent presentment, here or on
another node), the checks run again on the new state: that is how two
presentments of one draft give one ACCP and one PD.

A ``ccms.900`` for a draft message moves the draft (ISSUED, REJECTED,
SETTLED, REFUNDED, or back with the reason in its history).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog

from gateway.clearing.envelope import out_msg_id, out_sequence, out_topic
from gateway.clock import SHANGHAI, Clock
from gateway.correspondence.outbox import Publish
from gateway.desk import InboundClearing
from gateway.drafts import documents
from gateway.drafts.dates import working_days_after
from gateway.drafts.keystore import DraftKeyRing
from gateway.drafts.records import Answer, DraftState, Presentment
from gateway.drafts.register import agent_active, check_presentment, remainder
from gateway.journal.draft_records import DraftMessage, DraftOutboundNeed, PresentmentVerdict
from gateway.journal.records import NewOutbound, OutboundRecord
from gateway.journal.store import Store
from gateway.model import Engine
from gateway.ops import metrics
from gateway.routing.router import Router
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.drafts")

MSG_TP_ANSWER = "intra.draft.answer"
MSG_TP_PRESENT = "intra.draft.present"
_STALE_RETRIES = 5
_GAUGE_EVERY = 1.0
"""Seconds between refreshes of the drafts gauges (each a few journal reads): a burst of
statuses wakes the pass many times a second."""
_BATCH = 200


@dataclass(frozen=True)
class DraftLinkSettings:
    participant: str  # our 12-digit participant code (Sndr, the DraftNo prefix)
    centre: str  # the clearing centre's code (Rcvr of every draft message)
    topic_prefix: str
    province_areas: frozenset[str] | None = None  # drafts.province_areas; None: our own area
    interval: float = 5.0


class DraftLink:
    """Sends the drafts' messages, answers presentments, applies their statuses."""

    def __init__(
        self,
        settings: DraftLinkSettings,
        store: Store,
        pool: Callable[[], WorkerPool],
        clock: Clock,
        router: Callable[[], Router],
        keys: Callable[[], DraftKeyRing | None],
        publish: Publish,
        republish: Callable[[OutboundRecord], Awaitable[bool]] | None = None,
    ) -> None:
        self._republish = republish
        self.s = settings
        self._store = store
        self._pool = pool
        self._clock = clock
        self._router = router
        self._keys = keys
        self._publish = publish
        self._woken = asyncio.Event()
        self._gauged = -_GAUGE_EVERY  # the first pass refreshes the gauges
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Run the outbound pass soon (a DRAFT, DRAFTRFND or presentment was journaled)."""
        self._woken.set()

    # -- outbound --------------------------------------------------------------
    async def run(self) -> None:
        """The outbound pass, forever: on wake-up, every ``interval``, and at midnight."""
        while True:
            try:
                while await self.pass_once() >= _BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("draft_pass_failed")
            if time.monotonic() - self._gauged >= _GAUGE_EVERY:
                await self._refresh_gauges()
                self._gauged = time.monotonic()
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._sleep_for())

    def _sleep_for(self) -> float:
        """Until the next pass: ``interval``, or less when local midnight comes first."""
        now = self._clock.now().astimezone(SHANGHAI)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(0.05, min(self.s.interval, (midnight - now).total_seconds() + 0.05))

    async def pass_once(self) -> int:
        """Journal and publish the messages due now, a batch at a time; returns how many
        were due (a full batch: the caller asks again)."""
        now = self._clock.now()
        router = self._router()
        today = now.astimezone(SHANGHAI).date()
        needs = await self._store.drafts_needing_message(_pass_date(today, router), now, _BATCH)
        for need in needs:
            await self._send_need(need, now)
        return len(needs)

    async def _send_need(self, need: DraftOutboundNeed, now: datetime) -> None:
        entry = need.draft.entry
        doc: bytes
        if need.kind is DraftMessage.ISSUE:
            doc = documents.serialize(
                documents.build_issue(
                    documents.DraftIssue(
                        entry.draft_no, entry.amount, entry.payer_acct, entry.scope
                    )
                )
            )
        elif need.kind is DraftMessage.SETTLE:
            settle = need.draft.settle_amount
            assert settle is not None  # noqa: S101 - a PAID draft has its settle amount
            doc = documents.serialize(
                documents.build_settlement(
                    documents.DraftSettlement(
                        entry.draft_no, settle, remainder(entry, settle), entry.payer_acct
                    )
                )
            )
        else:
            doc = documents.serialize(
                documents.build_refund(
                    documents.DraftRefund(entry.draft_no, entry.amount, entry.payer_acct)
                )
            )
        out = await self._build(need.kind.msg_tp, doc, now)
        if not await self._store.add_draft_message(entry.draft_no, need.kind, need.attempt, out):
            log.info("draft_message_exists", draft_no=entry.draft_no, kind=need.kind.value)
            return
        log.info(
            "draft_message_journaled",
            draft_no=entry.draft_no,
            kind=need.kind.value,
            out_msg_id=out.msg_id,
        )
        self._send_soon(out)

    async def _build(self, msg_tp: str, document: bytes, now: datetime) -> NewOutbound:
        """Sign ``document`` in a fresh envelope; MsgIds from the engines' daily sequence."""
        wd = now.astimezone(SHANGHAI).date()
        seq = await self._store.next_sequence(out_sequence(wd))
        msg_id = out_msg_id(self.s.participant, wd, seq)
        payload = await self._pool().seal_document(
            msg_tp, msg_id, self.s.participant, self.s.centre, now, wd, document
        )
        return NewOutbound(
            msg_id=msg_id,
            engine=Engine.INTRA,
            msg_tp=msg_tp,
            topic=out_topic(self.s.topic_prefix, Engine.INTRA),
            receiver=self.s.centre,
            work_date=wd,
            payload=payload,
            item_ids=(),
            created_at=now,
        )

    def _send_soon(self, out: NewOutbound) -> None:
        task = asyncio.ensure_future(self._send(out))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, out: NewOutbound) -> None:
        try:
            await self._publish(out)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - journaled: the redelivery pass sends it later
            log.warning("draft_publish_deferred", out_msg_id=out.msg_id, msg_tp=out.msg_tp)

    async def _resend(self, msg_id: str) -> None:
        """Publish a journaled answer again under its own MsgId (a redelivered presentment:
        the agent bank did not get it, whatever the journal says of its first PUBACK)."""
        rec = await self._store.outbound_message(msg_id)
        if rec is None:
            log.warning("draft_answer_missing", out_msg_id=msg_id)
            return
        if self._republish is None:
            return
        try:
            sent = await self._republish(rec)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the agent bank asks again; nothing is lost
            sent = False
        if not sent:
            log.warning("draft_answer_not_resent", out_msg_id=msg_id)

    # -- inbound ---------------------------------------------------------------
    async def on_presentment(self, msg: InboundClearing) -> bool:
        """Answer one presentment exactly once (module docstring); False if it had none."""
        p = msg.presentment
        if p is None:
            return False
        now = self._clock.now()
        router = self._router()
        work_date = now.astimezone(SHANGHAI).date()
        active = agent_active(router.directory, p.agent_bank, work_date)
        ring = self._keys()
        for _ in range(_STALE_RETRIES):
            draft = await self._store.find_draft(p.draft_no)
            entry = draft.entry if draft is not None else None
            keys = ring.kept(now) if ring is not None else ()
            answer = check_presentment(entry, p, work_date, active, self.s.province_areas, keys)
            out = await self._build(MSG_TP_ANSWER, _answer_document(p, answer), now)
            outcome = await self._store.record_presentment(
                p, answer, entry.state if entry is not None else None, out, work_date, now
            )
            if outcome.verdict is PresentmentVerdict.EXISTING:
                assert outcome.msg_id is not None  # noqa: S101
                log.info(
                    "draft_presentment_redelivered",
                    prsntmt_id=p.prsntmt_id,
                    agent_bank=p.agent_bank,
                    out_msg_id=outcome.msg_id,
                )
                await self._resend(outcome.msg_id)
                return True
            if outcome.verdict is PresentmentVerdict.RECORDED:
                reason = answer.reason.value if answer.reason is not None else "-"
                metrics.DRAFT_PRESENTMENTS.labels(answer.result.value, reason).inc()
                log.info(
                    "draft_presentment_answered",
                    prsntmt_id=p.prsntmt_id,
                    agent_bank=p.agent_bank,
                    draft_no=p.draft_no,
                    result=answer.result.value,
                    reason=reason,
                    out_msg_id=out.msg_id,
                )
                self._send_soon(out)
                return True
            log.info("draft_presentment_stale", prsntmt_id=p.prsntmt_id, draft_no=p.draft_no)
        raise RuntimeError(f"presentment {p.prsntmt_id}: the draft kept changing")

    async def on_status(self, msg: InboundClearing) -> bool:
        """Apply a ``ccms.900`` to a draft message; False when it is not a draft's."""
        if msg.orgnl_msg_id is None:
            return False
        now = self._clock.now()
        done = False
        for r in msg.results:
            if r.status not in ("ACSC", "RJCT"):
                continue
            result = await self._store.apply_draft_status(
                msg.orgnl_msg_id, r.status, r.reason_code, r.reason_text, now
            )
            if result is None:
                continue
            done = True
            log.info(
                "draft_status_applied",
                draft_no=result.draft.draft_no,
                kind=result.kind.value,
                status=r.status,
                before=result.before.value,
                after=result.after.value,
                reason=r.reason_code,
            )
            if r.status == "RJCT" and result.kind is not DraftMessage.ISSUE:
                metrics.DRAFT_MESSAGE_RJCT.labels(result.kind.value).inc()
                log.error(
                    "draft_message_rejected",
                    draft_no=result.draft.draft_no,
                    kind=result.kind.value,
                    reason=r.reason_code,
                    text=r.reason_text,
                )
        if done:
            self.wake()
        return done

    # -- gauges ----------------------------------------------------------------
    async def _refresh_gauges(self) -> None:
        """Drafts by state, the outstanding total, and the overdue-settlement count."""
        try:
            counts = await self._store.draft_counts()
            for state in DraftState:
                metrics.DRAFTS.labels(state.value).set(counts.get(state, (0, 0))[0])
            _n, total = await self._store.outstanding_drafts()
            metrics.DRAFTS_OUTSTANDING.set(float(total))
            metrics.DRAFTS_UNSETTLED.set(await self._store.unsettled_paid(self._overdue_before()))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - gauges only; the next pass refreshes them
            log.warning("draft_gauges_failed")

    def _overdue_before(self) -> date:
        """A draft PAID before this date is two working days old or more (the alert)."""
        router = self._router()
        today = self._clock.now().astimezone(SHANGHAI).date()
        cal = router.calendar
        # the latest paid_on for which today >= working_days_after(paid_on, 2)
        day = today
        for _ in range(40):
            day = day - timedelta(days=1)
            if working_days_after(day, 2, cal) <= today:
                return day + timedelta(days=1)
        return today

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _pass_date(today: date, router: Router) -> date:
    """The work date a pass runs for: today on a working day, else the last working day.

    docs/bank-drafts.md §3: settlement belongs to working days, so on a weekend
    or holiday a draft PAID on the last working day waits for the next one
    (only drafts paid before that day, whose settlement the daemon missed, go
    out), and a draft HELD until the next working day is not issued early.
    """
    cal = router.calendar
    day = today
    for _ in range(60):
        if cal.is_working_day(day):
            return day
        day -= timedelta(days=1)
    return today


def _answer_document(p: Presentment, answer: Answer) -> bytes:
    return documents.serialize(
        documents.build_answer(documents.DraftAnswer(p.prsntmt_id, p.draft_no, answer))
    )


__all__ = ["MSG_TP_PRESENT", "DraftLink", "DraftLinkSettings"]
