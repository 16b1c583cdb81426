"""The demo's second half: correspondence as a corporate treasury sees it.

After the morning's payments have settled (BEPS through netting rounds), the
ERP clients ask the core for a balance (BAL), inquire about a payment (INQ →
ccms.314 → ccms.315 → a REPLY notification), receive an incoming credit that
matches and one that does not (suspense and an automatic ccms.314), and
answer another bank's inquiry (INQUIRY notification → RPLY → ccms.315).
Everything goes through the real daemon; only the counterparties are simulated.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from gateway.clock import BusinessClock
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import ErpClient, Reply

ClientFor = Callable[[str, str], Awaitable[ErpClient]]


def _say(msg: str) -> None:
    print(msg, flush=True)


@dataclass(frozen=True)
class DemoCredit:
    """An incoming credit from another bank (docs/clearing-link.md §6), injected at the clearing
    simulator; ``creditor_name`` decides the core's account check (``gateway-sim core``'s
    demo accounts name 6222000000000101 "Demo Manufacturing Ltd.")."""

    engine: str
    sender: str  # the sending participant, also the debtor's bank
    debtor_acct: str
    debtor_name: str
    creditor_name: str
    amount: Decimal
    purpose: str | None = None
    creditor_acct: str = "6222000000000101"  # C100000002's account

    async def inject(self, sim: ClearingSimulator) -> str:
        """Publish it to the gateway; returns its TxId."""
        _, tx_id = await sim.inject_credit(
            engine=self.engine, sender=self.sender, debtor_acct=self.debtor_acct,
            debtor_name=self.debtor_name, debtor_bank=self.sender,
            creditor_acct=self.creditor_acct, creditor_name=self.creditor_name,
            amount=self.amount, purpose=self.purpose,
        )  # fmt: skip
        return tx_id


MATCHING_CREDIT: Final = DemoCredit(
    "BEPS", "105100000017", "6228480000000001", "汇款贸易公司", "Demo Manufacturing Ltd.",
    Decimal("8888.88"), "货款",
)  # fmt: skip
"""The account check says MATCH: posted, and a CREDIT notification for C100000002."""
MISMATCHED_CREDIT: Final = DemoCredit(
    "HVPS", "104100000004", "6228480000000002", "另一汇款公司", "Wrong Name Ltd.",
    Decimal("60000.00"),
)  # fmt: skip
"""The account check says MISMATCH: suspense and an automatic ccms.314 (有疑必查)."""


async def _within(waiting: Awaitable[None], timeout: float = 30.0) -> bool:
    """True if ``waiting`` finished within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await waiting
    except TimeoutError:
        return False
    return True


async def correspondence_tour(
    client_for: ClientFor,
    clock: BusinessClock,
    sim: ClearingSimulator,
    inquire_about: Reply,
    answered_payment: Reply,
    run: str,
) -> int:
    """Run the tour; returns the number of steps that did not work out (0: all did)."""
    failures = 0
    ids = (f"{run}-N{n:05d}" for n in itertools.count(1))
    c1 = await client_for("C100000001", "op01")
    c2 = await client_for("C100000002", "op01")
    _say("")
    _say("demo: correspondence")

    bal = await c1.query_balance(f"{run}-BAL1", clock.now(), "6222000000000001")
    if bal.balance is not None:
        b = bal.balance
        _say(f"  BAL 6222****0001 -> {bal.ret_code} balance {b.balance} available {b.available}")
    else:
        failures += 1
        _say(f"  BAL 6222****0001 -> {bal.ret_code} {bal.ret_msg}")

    inq = await c1.inquire(
        f"{run}-INQ1", clock.now(), inquire_about.msg_id, "请确认收款人是否已入账"
    )
    _say(
        f"  INQ about {inquire_about.msg_id} -> {inq.ret_code} InqId {inq.gw_ref}"
        f" (ccms.314 to the payee's bank; payment {inq.state})"
    )
    reply = await c1.wait_notice(
        ids, clock.now, lambda n: n.kind == "REPLY" and n.inq_id == inq.gw_ref, timeout=30.0
    )
    if reply is None:
        failures += 1
        _say("  no REPLY notification arrived")
    else:
        _say(f"  NTFY #{reply.ntfy_id} REPLY {reply.inq_id}: {reply.text} (from ccms.315)")

    await MATCHING_CREDIT.inject(sim)
    bad = await MISMATCHED_CREDIT.inject(sim)
    credit = await c2.wait_notice(ids, clock.now, lambda n: n.kind == "CREDIT", timeout=30.0)
    if credit is None:
        failures += 1
        _say("  no CREDIT notification arrived")
    else:
        _say(
            f"  incoming BEPS credit {credit.amount} from {credit.cpty_name}: account check MATCH"
            f" -> posted, NTFY #{credit.ntfy_id} CREDIT {credit.gw_ref} for C100000002"
        )
    asked_back = sim.rounds.wait_until(
        lambda: any(d.orgnl_tx_id == bad for d in sim.inquiries_received.values())
    )
    if await _within(asked_back):
        _say(
            "  incoming HVPS credit 60000.00 with a wrong name: MISMATCH -> suspense (暂收款),"
            " automatic ccms.314 to the sending bank (有疑必查)"
        )
    else:
        failures += 1
        _say("  the mismatched credit produced no automatic inquiry")

    assert answered_payment.gw_ref is not None  # noqa: S101 - an accepted payment
    inq_id = await sim.inject_inquiry(
        orgnl_msg_id="-", orgnl_tx_id=answered_payment.gw_ref, text="收款人户名不符，请核实"
    )
    asked = await c1.wait_notice(
        ids, clock.now, lambda n: n.kind == "INQUIRY" and n.inq_id == inq_id, timeout=30.0
    )
    if asked is None:
        failures += 1
        _say("  no INQUIRY notification arrived")
    else:
        _say(f"  NTFY #{asked.ntfy_id} INQUIRY {inq_id} about {asked.orig_msg_id}: {asked.text}")
        ans = await c1.reply_inquiry(f"{run}-RPLY1", clock.now(), inq_id, "户名无误，请入账")
        got = await _within(sim.rounds.wait_until(lambda: inq_id in sim.replies_received))
        _say(
            f"  RPLY {inq_id} -> {ans.ret_code}; ccms.315 "
            + ("received by the other bank" if got else "NOT received")
        )
        failures += 0 if got else 1
    return failures
