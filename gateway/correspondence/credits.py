"""The account check of incoming credits (docs/clearing-link.md §5-§6, 有疑必查).

Each CHECKING credit is checked with the core (``AcctCheck``): MATCH posts it
and notifies the enrolled corporate; MISMATCH or UNKNOWN books it to
suspense (the core does that) and sends an automatic ``ccms.314`` to the
sending bank — except for a SWIFT credit, which goes to suspense with no
inquiry: there is none over SWIFT (docs/foreign-currency.md §4).  No answer
in time: the credit waits in the journal and is checked again after
``core.recheck_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from gateway.clearing.ccms import MSG_TP_INQUIRY
from gateway.clock import Clock
from gateway.correspondence.corplink import CoreUnavailable
from gateway.correspondence.outbox import CcmsOutbox
from gateway.journal.records import IncomingCredit, InquiryDirection, NewInquiry
from gateway.journal.store import Store
from gateway.model import Engine
from gateway.ops import metrics
from gateway.ops.logs import mask_account

log = structlog.get_logger("gateway.correspondence")

AccountCheck = Callable[[str, str], Awaitable[str]]

#: The automatic inquiry's text, by AcctCheck result (docs/clearing-link.md §6).
INQUIRY_TEXT = {
    "MISMATCH": "收款人户名与账号不符，款项已挂暂收，请核实 / creditor name does not match the"
    " account; funds held in suspense, please confirm",
    "UNKNOWN": "收款人账号不存在，款项已挂暂收，请核实 / creditor account unknown; funds held in"
    " suspense, please confirm",
}


class CreditChecker:
    """Checks CHECKING credits with the core, ``max_checks`` at a time."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        check: AccountCheck | None,
        outbox: CcmsOutbox,
        *,
        recheck_interval: float,
        max_checks: int,
    ) -> None:
        self._store = store
        self._clock = clock
        self._check = check
        self._outbox = outbox
        self._recheck = recheck_interval
        self._max = max_checks
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        if self._check is None:
            log.warning("credit_checks_disabled", reason="core link not enabled")
            return
        while True:
            try:
                due = await self._store.credits_to_check(self._clock.now(), self._max)
                await asyncio.gather(*(self.check_one(c) for c in due))
            except asyncio.CancelledError:
                raise
            except Exception:  # the credits stay CHECKING in the journal; next pass retries
                log.exception("credit_check_pass_failed")
                due = []
            if len(due) >= self._max:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            self._wake.clear()

    async def check_one(self, c: IncomingCredit) -> None:
        assert self._check is not None  # noqa: S101 - run() returns early without a check
        try:
            result = await self._check(c.creditor_acct, c.creditor_name)
        except CoreUnavailable:
            later = self._clock.now() + timedelta(seconds=self._recheck)
            await self._store.postpone_credit_check(c.gw_ref, later)
            metrics.INCOMING_CREDITS.labels("check_timeout").inc()
            log.warning("credit_check_no_answer", gw_ref=c.gw_ref, attempts=c.check_attempts + 1)
            return
        now = self._clock.now()
        if result == "MATCH":
            if await self._store.post_credit(c.gw_ref, now):
                metrics.INCOMING_CREDITS.labels("posted").inc()
                log.info("credit_posted", gw_ref=c.gw_ref, notified=c.corp_id is not None)
            return
        if c.engine is Engine.SWIFT:
            if await self._store.suspend_credit_unasked(c.gw_ref, now):
                metrics.INCOMING_CREDITS.labels("suspense").inc()
                log.warning(
                    "credit_suspense", gw_ref=c.gw_ref, result=result,
                    acct=mask_account(c.creditor_acct), inq_id=None,
                )  # fmt: skip
            return
        text = INQUIRY_TEXT.get(result, INQUIRY_TEXT["UNKNOWN"])
        inq_id = await self._outbox.new_inq_id(now)
        out = await self._outbox.build(
            MSG_TP_INQUIRY, c.engine, c.sender, (inq_id, c.msg_id, c.tx_id, text), now
        )
        inquiry = NewInquiry(
            inq_id=inq_id,
            direction=InquiryDirection.OUT,
            counterparty=c.sender,
            text=text,
            created_at=now,
            orgnl_msg_id=c.msg_id,
            orgnl_tx_id=c.tx_id,
            credit_ref=c.gw_ref,
            engine=c.engine,
        )
        if await self._store.suspend_credit(c.gw_ref, now, inquiry, out):
            self._outbox.send_soon(out)
            metrics.INCOMING_CREDITS.labels("suspense").inc()
            metrics.INQUIRIES.labels("out", "auto_inquiry").inc()
            log.warning(
                "credit_suspense",
                gw_ref=c.gw_ref,
                result=result,
                acct=mask_account(c.creditor_acct),
                inq_id=inq_id,
            )
