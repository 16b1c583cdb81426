"""The demo's bank-draft tour (docs/bank-drafts.md), as an applicant and an agent bank see it.

Day one: C100000001 applies for two drafts (DRAFT); the clearing centre
moves the money and both become ISSUED.  An agent bank presents the first
for less than its face amount (the holder is paid: PAID), and a second
presentment of the same draft is refused with PD.  The second draft is
refunded (DRAFTRFND → REFUNDED).  Day two: the demo restarts ``gatewayd``
at 00:05 of the next working day, and the settlement pass returns the
remainder of the first draft (SETTLED).  Every step is read back from NTFY,
as the applicant's ERP would.  The Code the ERP received is what the holder
hands the agent bank; the demo passes it on as they would.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from gateway.clock import BusinessClock
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import DraftApplication, DraftInfo, ErpClient
from gateway.sim.present import CentreLink, PresentTimeout, present

ClientFor = Callable[[str, str], Awaitable[ErpClient]]

AGENT_BANK: Final = "104100000004"
"""The agent paying bank of the demo: another bank's branch in our own area."""
FACE: Final = Decimal("50000.00")
PAID_OUT: Final = Decimal("48600.00")
WAIT: Final = 30.0


def _say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class DraftTour:
    """What day one leaves for day two, and how many steps did not work out."""

    run: str
    draft: DraftInfo | None = None
    failures: int = 0

    def ids(self, tag: str) -> Iterator[str]:
        return (f"{self.run}-{tag}{n:04d}" for n in itertools.count(1))


def _check(tour: DraftTour, ok: bool, line: str) -> None:
    _say(f"  {line}{'' if ok else '  <- not as expected'}")
    if not ok:
        tour.failures += 1


async def drafts_day_one(
    client_for: ClientFor, clock: BusinessClock, sim: ClearingSimulator, run: str
) -> DraftTour:
    """Issue two drafts, pay one (once) through an agent bank, refund the other."""
    tour = DraftTour(run)
    notes = tour.ids("DN")
    c1 = await client_for("C100000001", "op01")
    _say("")
    _say("demo: bank drafts (银行汇票)")
    apply = DraftApplication(
        payer_acct="6222000000000001",
        payer_name="示范贸易有限公司",
        payee_name="远方建材有限公司",
        amount=FACE,
        purpose="预付货款",
    )
    r1 = await c1.apply_draft(f"{run}-DRAFT1", clock.now(), apply)
    r2 = await c1.apply_draft(
        f"{run}-DRAFT2",
        clock.now(),
        DraftApplication(**{**apply.__dict__, "amount": Decimal("3000.00")}),
    )
    if r1.draft is None or r2.draft is None:
        _check(tour, False, f"DRAFT -> {r1.ret_code} {r1.ret_msg}; {r2.ret_code} {r2.ret_msg}")
        return tour
    d1, d2 = r1.draft, r2.draft
    tour.draft = d1
    _say(
        f"  DRAFT {FACE} -> {r1.ret_code} DraftNo {d1.draft_no} IssueDate {d1.issue_date}"
        f" ExpiryDate {d1.expiry_date} Code {d1.code[:4]}…{d1.code[-2:]} {d1.state}"
    )
    for d in (d1, d2):
        seen = await c1.wait_draft_state(notes, clock.now, d.draft_no, "ISSUED", timeout=WAIT)
        _check(
            tour, seen is not None, f"NTFY DRAFT {d.draft_no} ISSUED (the centre moved the money)"
        )

    link = CentreLink.of_simulator(sim.config)

    async def present_d1(prsntmt_id: str) -> tuple[str, str | None]:
        try:
            return await present(
                link,
                draft_no=d1.draft_no,
                code=d1.code,
                amount=d1.amount,
                settle_amount=PAID_OUT,
                agent_bank=AGENT_BANK,
                issue_date=d1.issue_date,
                prsntmt_id=prsntmt_id,
                work_date=clock.now().date(),
                timeout=WAIT,
            )
        except PresentTimeout:
            return ("no answer", None)

    first = await present_d1(f"{run}-PR1")
    _check(
        tour,
        first == ("ACCP", None),
        f"agent bank {AGENT_BANK} presents it for {PAID_OUT} -> {' '.join(filter(None, first))}",
    )
    paid = await c1.wait_draft_state(notes, clock.now, d1.draft_no, "PAID", timeout=WAIT)
    _check(
        tour,
        paid is not None and paid.settle_amount == PAID_OUT,
        f"NTFY DRAFT {d1.draft_no} PAID SettleAmount {paid.settle_amount if paid else '-'}",
    )
    second = await present_d1(f"{run}-PR2")
    _check(
        tour,
        second == ("RJCT", "PD"),
        f"a second presentment of the same draft -> {' '.join(filter(None, second))}",
    )
    rf = await c1.refund_draft(f"{run}-RFND1", clock.now(), d2.draft_no, "合同取消，申请退回")
    _check(tour, rf.ret_code == "0000", f"DRAFTRFND {d2.draft_no} -> {rf.ret_code} {rf.ret_msg}")
    refunded = await c1.wait_draft_state(notes, clock.now, d2.draft_no, "REFUNDED", timeout=WAIT)
    _check(tour, refunded is not None, f"NTFY DRAFT {d2.draft_no} REFUNDED")
    return tour


async def drafts_day_two(client_for: ClientFor, clock: BusinessClock, tour: DraftTour) -> int:
    """After the restart on the next working day: the remainder of the paid draft returns."""
    d1 = tour.draft
    if d1 is None:
        return tour.failures + 1
    c1 = await client_for("C100000001", "op01")
    notes = tour.ids("DS")
    settled = await c1.wait_draft_state(notes, clock.now, d1.draft_no, "SETTLED", timeout=WAIT)
    expected = d1.amount - PAID_OUT
    _check(
        tour,
        settled is not None and settled.remainder == expected,
        f"NTFY DRAFT {d1.draft_no} SETTLED Remainder"
        f" {settled.remainder if settled else '-'} (back to 6222****0001)",
    )
    status = await c1.status(f"{tour.run}-DSTAT", clock.now(), f"{tour.run}-DRAFT1")
    steps = [s.state for s in status.draft.history] if status.draft else []
    _check(
        tour,
        steps == ["PENDING", "ISSUED", "PAID", "SETTLED"],
        f"STATUS {tour.run}-DRAFT1 History {' -> '.join(steps) or '-'}",
    )
    return tour.failures
