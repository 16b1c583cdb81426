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
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal

from gateway.clock import BusinessClock
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import ErpClient, Notification, Reply

ClientFor = Callable[[str, str], Awaitable[ErpClient]]


def _say(msg: str) -> None:
    print(msg, flush=True)


async def _notice(
    client: ErpClient,
    clock: BusinessClock,
    ids: Iterator[str],
    match: Callable[[Notification], bool],
    timeout: float = 30.0,
) -> Notification | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n in await client.pull_all(ids, clock.now()):
            if match(n):
                return n
        await asyncio.sleep(0.3)
    return None


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.2)
    return False


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
    reply = await _notice(c1, clock, ids, lambda n: n.kind == "REPLY" and n.inq_id == inq.gw_ref)
    if reply is None:
        failures += 1
        _say("  no REPLY notification arrived")
    else:
        _say(f"  NTFY #{reply.ntfy_id} REPLY {reply.inq_id}: {reply.text} (from ccms.315)")

    _, good = await sim.inject_credit(
        engine="BEPS",
        sender="105100000017",
        debtor_acct="6228480000000001",
        debtor_name="汇款贸易公司",
        debtor_bank="105100000017",
        creditor_acct="6222000000000101",
        creditor_name="Demo Manufacturing Ltd.",
        amount=Decimal("8888.88"),
        purpose="货款",
    )
    _, bad = await sim.inject_credit(
        engine="HVPS",
        sender="104100000004",
        debtor_acct="6228480000000002",
        debtor_name="另一汇款公司",
        debtor_bank="104100000004",
        creditor_acct="6222000000000101",
        creditor_name="Wrong Name Ltd.",
        amount=Decimal("60000.00"),
    )
    credit = await _notice(c2, clock, ids, lambda n: n.kind == "CREDIT")
    if credit is None:
        failures += 1
        _say("  no CREDIT notification arrived")
    else:
        _say(
            f"  incoming BEPS credit {credit.amount} from {credit.cpty_name}: account check MATCH"
            f" -> posted, NTFY #{credit.ntfy_id} CREDIT {credit.gw_ref} for C100000002"
        )
    if await _until(lambda: any(d.orgnl_tx_id == bad for d in sim.inquiries_received.values())):
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
    asked = await _notice(c1, clock, ids, lambda n: n.kind == "INQUIRY" and n.inq_id == inq_id)
    if asked is None:
        failures += 1
        _say("  no INQUIRY notification arrived")
    else:
        _say(f"  NTFY #{asked.ntfy_id} INQUIRY {inq_id} about {asked.orig_msg_id}: {asked.text}")
        ans = await c1.reply_inquiry(f"{run}-RPLY1", clock.now(), inq_id, "户名无误，请入账")
        got = await _until(lambda: inq_id in sim.replies_received)
        _say(
            f"  RPLY {inq_id} -> {ans.ret_code}; ccms.315 "
            + ("received by the other bank" if got else "NOT received")
        )
        failures += 0 if got else 1
    del good
    return failures
