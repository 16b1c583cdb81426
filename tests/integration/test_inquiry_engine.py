"""A corporate's RPLY goes back on the clearing link the inquiry arrived on (clearing.md §2).

An inbound ``ccms.314`` comes on ``clearing/{engine}/in``; the ``ccms.315``
answering it goes out on the same engine's ``clearing/{engine}/out``.  The
gateway journals that link with the inquiry (journal migration 6) instead of
guessing it when the corporate answers: an inquiry about an incoming HVPS
credit names no payment of ours, and the guess (BEPS for a 12-digit
participant) sent its reply on the wrong link.  Through the real daemon,
the clearing and core simulators and a raw MQTT subscriber on the outbound
topics.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from tests.integration.correspondence_support import (
    ClearingTap,
    clearing_tap,
    ids,
    journal_rows,
    wait_notice,
    wait_until,
)
from tests.integration.harness import (
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_core_sim,
    running_gateway,
    wait_for_state,
)

FRIDAY_10 = recent_friday_10()
OTHER_BANK = "104100000004"  # a direct participant of another bank: HVPS from 50,000.00
CREDITOR = "6222000000000101"  # C100000002's account in the dev PKI
CREDITOR_NAME = "Demo Manufacturing Ltd."
OUT_TOPICS = ["clearing/hvps/out", "clearing/beps/out", "clearing/intra/out"]
WAIT = 20.0


def journal(tmp_path: Path) -> Path:
    return tmp_path / "gw" / "journal.sqlite3"


async def the_reply(tap: ClearingTap, journal_path: Path, inq_id: str) -> tuple[str, str]:
    """(topic, MsgId) of the one ccms.315 published, once the tap saw it; it is the
    ccms.315 the journal holds for ``inq_id``."""
    await wait_until(lambda: bool(tap.of_type("ccms.315")), "the ccms.315 on the wire", WAIT)
    (seen,) = tap.of_type("ccms.315")
    assert seen.msg_id is not None
    rows = journal_rows(
        journal_path,
        "SELECT o.msg_id, o.topic FROM inquiries i JOIN outbound o ON o.msg_id = i.out_msg_id"
        " WHERE i.direction = 'IN' AND i.inq_id = ?",
        (inq_id,),
    )
    assert rows == [(seen.msg_id, seen.topic)]
    return seen.topic, seen.msg_id


async def test_reply_about_an_incoming_hvps_credit_goes_out_on_hvps(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_core_sim(broker.url),
        clearing_tap(broker, OUT_TOPICS) as tap,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client("C100000002")
        credit_msg_id, tx_id = await sim.inject_credit(
            engine="HVPS", sender=OTHER_BANK, debtor_acct="6228480000000009",
            debtor_name="汇款公司", debtor_bank=OTHER_BANK, creditor_acct=CREDITOR,
            creditor_name=CREDITOR_NAME, amount=Decimal("66000.00"), purpose="货款",
        )  # fmt: skip
        credit = await wait_notice(erp, clock.now, ids("N1"), lambda n: n.kind == "CREDIT")
        assert (credit.engine, credit.amount) == ("HVPS", Decimal("66000.00"))

        # the remitting bank asks about its credit over HVPS
        inq_id = await sim.inject_inquiry(
            orgnl_msg_id=credit_msg_id, orgnl_tx_id=tx_id, text="请核实收款人户名",
            engine="HVPS", sender=OTHER_BANK,
        )  # fmt: skip
        seen = await wait_notice(erp, clock.now, ids("N2"), lambda n: n.inq_id == inq_id)
        assert (seen.kind, seen.gw_ref, seen.text) == ("INQUIRY", credit.gw_ref, "请核实收款人户名")
        assert journal_rows(
            journal(tmp_path), "SELECT engine FROM inquiries WHERE inq_id = ?", (inq_id,)
        ) == [("HVPS",)]

        ans = await erp.reply_inquiry("A-1", clock.now(), inq_id, "户名正确")
        assert ans.ret_code == "0000", ans.ret_msg
        topic, _ = await the_reply(tap, journal(tmp_path), inq_id)
        assert topic == "clearing/hvps/out"
        async with asyncio.timeout(WAIT):
            await sim.rounds.wait_until(lambda: inq_id in sim.replies_received)
        assert sim.replies_received[inq_id] == "户名正确"
        await erp.close()


async def test_reply_goes_back_on_the_link_the_inquiry_came_by_not_the_payments(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """Our HVPS payment, asked about over BEPS: the answer goes where the question came from."""
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("P-1", clock.now(), payment(OTHER_BANK, "70000.00"))
        assert r.ret_code == "0000" and r.engine == "HVPS" and r.gw_ref, r.ret_msg
        await wait_for_state(erp, clock.now(), "P-1", ["SETTLED"])
        # subscribed only now: the payment's own hvps.111 is not in the way
        async with clearing_tap(broker, OUT_TOPICS) as tap:
            inq_id = await sim.inject_inquiry(
                orgnl_msg_id="UNUSED", orgnl_tx_id=r.gw_ref, text="是否已入账？",
                engine="BEPS", sender=OTHER_BANK,
            )  # fmt: skip
            seen = await wait_notice(erp, clock.now, ids("N1"), lambda n: n.inq_id == inq_id)
            assert (seen.kind, seen.orig_msg_id) == ("INQUIRY", "P-1")
            ans = await erp.reply_inquiry("A-1", clock.now(), inq_id, "已入账")
            assert ans.ret_code == "0000", ans.ret_msg
            topic, _ = await the_reply(tap, journal(tmp_path), inq_id)
            assert topic == "clearing/beps/out"
        await erp.close()
