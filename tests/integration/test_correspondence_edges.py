"""Correspondence at its edges, through the real daemon (corplink.md §4, §7-§8;
clearing.md §1, §3-§6): what test_correspondence.py's happy paths leave out.

- an incoming credit while the core banking system does not answer waits
  (CHECKING) and is posted, notified once, when the core answers; the same
  signed credit delivered again (at-least-once, clearing.md §1) is one credit;
- hostile or stray inbound correspondence changes nothing: a ``beps.netting``
  signed by a key nobody pinned, a ``beps.settle`` for a round never netted,
  a ``ccms.314`` about a payment we do not know, a ``ccms.315`` for an
  inquiry we never sent;
- the NTFY cursor: ``After`` past the end, ``Max=1`` paging, one corporate's
  notices never shown to another, a file-certificate operator's NTFY/INQ/BAL;
- INQ about a HELD payment, in GB18030, with a stale SendTime, and the replay
  of a journaled INQ whose SendTime has gone stale (replay answers first, §8).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from gateway.clearing.ccms import (
    CptyPosition,
    NettingNotice,
    ReplyDoc,
    SettlementNotice,
    build_netting,
    build_reply,
    build_settlement,
)
from gateway.clock import BusinessClock, Clock
from gateway.journal.records import Figures
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.sim.erp import (
    ErpClient,
    Notification,
    Notifications,
    Payment,
    build_request,
    inquiry_body,
    notify_body,
)
from gateway.testing import Broker
from tests.integration.correspondence_support import (
    StepClock,
    clearing_tap,
    ids,
    journal_rows,
    metric,
    signed_message,
    unknown_signer,
    wait_metric,
    wait_notice,
    wait_until,
)
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_core_sim,
    running_gateway,
    wait_for_state,
)

FRIDAY_10 = recent_friday_10()
OTHER_BANK = "104100000004"  # a direct participant of another bank: HVPS from 50,000.00
BEPS_BANK = "105100000017"
CREDITOR = "6222000000000101"  # C100000002's account in the dev PKI
CREDITOR_NAME = "Demo Manufacturing Ltd."
CREDITS = "gateway_incoming_credits_total"
INBOUND = "gateway_inbound_messages_total"
DROPPED = "gateway_inbound_dropped_total"
INQUIRIES = "gateway_inquiries_total"
MISMATCH = "gateway_netting_mismatch"


def pay(code: str, amount: str, payer: str = "6222000000000001") -> Payment:
    return Payment(payer, "示范贸易有限公司", "6217000000000099", "收款公司", code,
                   Decimal(amount), purpose="货款")  # fmt: skip


def journal(tmp_path: Path) -> Path:
    return tmp_path / "gw" / "journal.sqlite3"


def kinds(notices: list[Notification], kind: str) -> list[Notification]:
    return [n for n in notices if n.kind == kind]


async def settled_payment(erp: ErpClient, clock: Clock, msg_id: str) -> str:
    """An HVPS payment to another bank, followed to SETTLED; its GwRef (= TxId)."""
    r = await erp.pay(msg_id, clock.now(), pay(OTHER_BANK, "88000.00"))
    assert r.ret_code == "0000" and r.gw_ref, r.ret_msg
    await wait_for_state(erp, clock.now(), msg_id, ["SETTLED"])
    return r.gw_ref


# -- 1. incoming credits while the core does not answer -----------------------------------------


async def test_incoming_credit_waits_for_a_silent_core_then_is_posted_and_notified_once(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(
        tmp_path / "gw", dev_pki, broker.url, {"core": {"timeout": 0.5, "recheck_interval": 1.0}}
    )
    before = {k: metric(CREDITS, outcome=k) for k in ("received", "check_timeout", "posted")}
    inbound0 = metric(INBOUND, msg_tp="hvps.111")
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        clearing_tap(broker, ["clearing/hvps/in"]) as tap,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client("C100000002")
        async with running_core_sim(broker.url, silent_accounts=frozenset({CREDITOR})) as core:
            _, tx_id = await sim.inject_credit(
                engine="HVPS", sender=OTHER_BANK, debtor_acct="6228480000000009",
                debtor_name="汇款公司", debtor_bank=OTHER_BANK, creditor_acct=CREDITOR,
                creditor_name=CREDITOR_NAME, amount=Decimal("66000.00"), purpose="货款",
            )  # fmt: skip
            # two account checks went unanswered: the credit waits and is checked again
            await wait_metric(CREDITS, before["check_timeout"] + 2, outcome="check_timeout")
            assert core.stats["silent"] >= 2
            await wait_until(lambda: len(tap.of_type("hvps.111")) >= 1, "the credit on the wire")
            original = tap.of_type("hvps.111")[0]
            assert original.msg_id is not None
            # the very same signed message again while the credit waits (clearing.md §1)
            await tap.publish(original.topic, original.payload, "hvps.111", original.msg_id)
            await wait_metric(INBOUND, inbound0 + 2, msg_tp="hvps.111")
            rows = journal_rows(
                journal(tmp_path),
                "SELECT state, check_attempts FROM incoming_credits WHERE tx_id = ?",
                (tx_id,),
            )
            assert len(rows) == 1, rows
            assert rows[0][0] == "CHECKING" and rows[0][1] >= 2
            assert not kinds(await erp.pull_all(ids("N1"), clock.now()), "CREDIT")

        async with running_core_sim(broker.url):  # the core is back: MATCH
            credit = await wait_notice(erp, clock.now, ids("N2"), lambda n: n.kind == "CREDIT")
            assert (credit.acct, credit.amount, credit.engine) == (
                CREDITOR,
                Decimal("66000.00"),
                "HVPS",
            )
            assert credit.gw_ref and credit.gw_ref.startswith("GI")
            # and once more after posting: still one credit, one notification
            await tap.publish(original.topic, original.payload, "hvps.111", original.msg_id)
            await wait_metric(INBOUND, inbound0 + 3, msg_tp="hvps.111")
            assert kinds(await erp.pull_all(ids("N3"), clock.now()), "CREDIT") == [credit]
            rows = journal_rows(journal(tmp_path), "SELECT gw_ref, state FROM incoming_credits")
            assert rows == [(credit.gw_ref, "POSTED")]
        assert metric(CREDITS, outcome="received") == before["received"] + 1
        assert metric(CREDITS, outcome="posted") == before["posted"] + 1
        await erp.close()


# -- 2. hostile and stray inbound correspondence ---------------------------------------------------


async def test_netting_signed_by_an_unknown_key_and_settlement_of_an_unknown_round_move_nothing(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    clearing = load_signing_key(dev_pki.clearing_system_key, dev_pki.clearing_system_cert)
    async with (
        # the simulator's own settlement never comes: the test sends the settlements
        running_clearing_sim(
            dev_pki, broker.url, tmp_path / "rec.jsonl", netting=True, settle_delay_rounds=3600
        ) as sim,
        clearing_tap(broker) as tap,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        for n, amount in ((1, "100.00"), (2, "250.50")):
            r = await erp.pay(f"NB-{n}", clock.now(), pay(BEPS_BANK, amount))
            assert r.ret_code == "0000" and r.engine == "BEPS", r.ret_msg
        for n in (1, 2):
            await wait_for_state(erp, clock.now(), f"NB-{n}", ["ACKED"])
        await sim.rounds.wait_netted(2)
        ((cpty, work_date),) = journal_rows(
            journal(tmp_path), "SELECT DISTINCT receiver, work_date FROM outbound"
        )
        day = date.fromisoformat(work_date)
        ours = NettingNotice(day, 1, (CptyPosition(cpty, Figures(2, Decimal("350.50"), 0,
                                                                 Decimal(0))),))  # fmt: skip

        # figures that match, signed by a key the gateway does not pin: dropped
        dropped0 = metric(DROPPED, reason="signature")
        msg_id, rogue = signed_message(
            "beps.netting", build_netting(ours), unknown_signer(), now=clock.now(), work_date=day
        )
        await tap.publish("clearing/beps/in", rogue, "beps.netting", msg_id)
        await wait_metric(DROPPED, dropped0 + 1, reason="signature")
        assert journal_rows(journal(tmp_path), "SELECT count(*) FROM netting_rounds") == [(0,)]
        for n in (1, 2):
            assert await wait_for_state(erp, clock.now(), f"NB-{n}", ["ACKED"]) == "ACKED"

        # the genuine round with the same figures nets them: the rogue one would have
        notices = await sim.run_netting_round()
        assert [n.positions for n in notices] == [ours.positions]
        for n in (1, 2):
            await wait_for_state(erp, clock.now(), f"NB-{n}", ["NETTED"])
        assert metric(MISMATCH) == 0

        # a settlement for round 7, never netted: alert, nothing settles
        settles0 = metric(INBOUND, msg_tp="beps.settle")
        msg_id, stray = signed_message(
            "beps.settle", build_settlement(SettlementNotice(day, 7, ours.net)), clearing,
            now=clock.now(), work_date=day,
        )  # fmt: skip
        await tap.publish("clearing/beps/in", stray, "beps.settle", msg_id)
        await wait_metric(INBOUND, settles0 + 1, msg_tp="beps.settle")
        assert metric(MISMATCH) == 1
        states = journal_rows(journal(tmp_path), "SELECT state, netting_round FROM items")
        assert states == [("NETTED", 1), ("NETTED", 1)]
        assert not kinds(await erp.pull_all(ids("N1"), clock.now()), "STATUS")

        # round 1's own settlement still settles both
        msg_id, good = signed_message(
            "beps.settle", build_settlement(SettlementNotice(day, 1, ours.net)), clearing,
            now=clock.now(), work_date=day,
        )  # fmt: skip
        await tap.publish("clearing/beps/in", good, "beps.settle", msg_id)
        for n in (1, 2):
            await wait_for_state(erp, clock.now(), f"NB-{n}", ["SETTLED"])
        await erp.close()


async def test_inquiry_about_an_unknown_payment_and_reply_to_an_unknown_inquiry_notify_nobody(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    clearing = load_signing_key(dev_pki.clearing_system_key, dev_pki.clearing_system_cert)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        clearing_tap(broker) as tap,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        other = await Erp(gw, dev_pki).client("C100000002")
        tx_id = await settled_payment(erp, clock, "P-1")

        # ccms.314 about a TxId that is not ours: counted, journaled nowhere, notified to nobody
        unknown0 = metric(INQUIRIES, direction="in", kind="inquiry_unknown")
        await sim.inject_inquiry(
            orgnl_msg_id="NOSUCHMSG", orgnl_tx_id="SI209901010000000001", text="是否收到？",
            sender=OTHER_BANK,
        )  # fmt: skip
        await wait_metric(INQUIRIES, unknown0 + 1, direction="in", kind="inquiry_unknown")

        # a real inquiry about P-1 from another bank: one INQUIRY notification
        known = await sim.inject_inquiry(
            orgnl_msg_id="UNUSED", orgnl_tx_id=tx_id, text="请核实", sender=OTHER_BANK
        )
        await wait_notice(erp, clock.now, ids("N1"), lambda n: n.inq_id == known)

        # ccms.315 for an InqId we never sent, and one quoting the inquiry we received
        # (a reply can only answer one of *our* inquiries)
        replies0 = metric(INQUIRIES, direction="in", kind="reply_unknown")
        for n, inq_id in enumerate(("IQ209901010000000001", known), 1):
            msg_id, payload = signed_message(
                "ccms.315", build_reply(ReplyDoc(inq_id, "款项已入账")), clearing,
                now=clock.now(), work_date=clock.now().date(), sndr=OTHER_BANK,
            )  # fmt: skip
            await tap.publish("clearing/hvps/in", payload, "ccms.315", msg_id)
            await wait_metric(INQUIRIES, replies0 + n, direction="in", kind="reply_unknown")

        mine = await erp.pull_all(ids("N2"), clock.now())
        assert [n.inq_id for n in kinds(mine, "INQUIRY")] == [known]
        assert not kinds(mine, "REPLY")
        assert not [n for n in await other.pull_all(ids("N3"), clock.now()) if n.inq_id]
        rows = journal_rows(journal(tmp_path), "SELECT direction, inq_id, state FROM inquiries")
        assert rows == [("IN", known, "OPEN")]
        # the stray ccms.315 did not close it: the corporate can still answer
        ans = await erp.reply_inquiry("A-1", clock.now(), known, "户名正确")
        assert ans.ret_code == "0000", ans.ret_msg
        await other.close()
        await erp.close()


# -- 3. the NTFY cursor ----------------------------------------------------------------------------


async def test_ntfy_cursor_paging_isolation_and_a_file_certificate_operator(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_core_sim(broker.url),
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        other = await Erp(gw, dev_pki).client("C100000002")
        for n in (1, 2, 3):
            await settled_payment(erp, clock, f"N-{n}")
        r = await other.pay("M-1", clock.now(), pay(OTHER_BANK, "51000.00", "6222000000000101"))
        assert r.ret_code == "0000", r.ret_msg
        await wait_for_state(other, clock.now(), "M-1", ["SETTLED"])

        everything = await erp.pull_all(ids("A"), clock.now())
        assert sorted(n.orig_msg_id or "" for n in everything) == ["N-1", "N-2", "N-3"]
        assert {n.kind for n in everything} == {"STATUS"}
        ntfy_ids = [n.ntfy_id for n in everything]
        assert ntfy_ids == sorted(set(ntfy_ids))
        last = ntfy_ids[-1]

        # After at or beyond the last id: an empty page that keeps the cursor
        for k, after in enumerate((last, last + 1000)):
            page = (await erp.notify_pull(f"B-{k}", clock.now(), after, 10)).notifications
            assert page == Notifications((), after, False)

        # Max=1: one notice per page, More until the last
        pages: list[Notification] = []
        after = 0
        for k, more in enumerate((True, True, False)):
            reply = await erp.notify_pull(f"C-{k}", clock.now(), after, 1)
            page = reply.notifications
            assert reply.ret_code == "0000" and page is not None, reply.ret_msg
            assert (len(page.items), page.more, page.last) == (1, more, page.items[0].ntfy_id)
            pages.extend(page.items)
            after = page.last
        assert pages == list(everything)

        # another corporate sees its own notice only, whatever cursor it sends
        theirs = await other.pull_all(ids("D"), clock.now())
        assert [n.orig_msg_id for n in theirs] == ["M-1"]
        first = (await other.notify_pull("E-1", clock.now(), 0, 500)).notifications
        assert first is not None and [n.orig_msg_id for n in first.items] == ["M-1"]

        # a file-certificate operator (corplink.md §6) of the same corporate
        op02 = await Erp(gw, dev_pki).client("C100000001", "op02")
        assert await op02.pull_all(ids("F"), clock.now()) == everything
        inq = await op02.inquire("F-Q1", clock.now(), "N-2", "请确认是否入账")
        assert inq.ret_code == "0000" and inq.gw_ref, inq.ret_msg
        bal = await op02.query_balance("F-B1", clock.now(), "6222000000000001")
        assert bal.ret_code == "0000" and bal.balance is not None, bal.ret_msg
        answered = await wait_notice(
            op02, clock.now, ids("G"), lambda n: n.kind == "REPLY" and n.inq_id == inq.gw_ref
        )
        assert answered.orig_msg_id == "N-2"
        assert inq.gw_ref in sim.inquiries_received
        assert not [n for n in await other.pull_all(ids("H"), clock.now()) if n.kind == "REPLY"]
        for c in (op02, other, erp):
            await c.close()


# -- 4. INQ edge cases --------------------------------------------------------------------------------


async def test_inq_about_a_held_payment_is_refused_as_not_sent(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10.replace(hour=8, minute=0))  # HVPS opens at 09:00
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("H-1", clock.now(), pay(OTHER_BANK, "88000.00"))
        assert (r.ret_code, r.state, r.engine) == ("0000", "HELD", "HVPS"), r.ret_msg
        for _ in range(2):  # refused, so nothing journaled: the same MsgId is refused again
            inq = await erp.inquire("HQ-1", clock.now(), "H-1", "何时发出？")
            assert (inq.ret_code, inq.gw_ref, inq.dup) == ("1004", None, False)
            assert "HELD" in inq.ret_msg and "not sent" in inq.ret_msg, inq.ret_msg
        assert journal_rows(journal(tmp_path), "SELECT count(*) FROM inquiries") == [(0,)]
        assert journal_rows(journal(tmp_path), "SELECT count(*) FROM outbound") == [(0,)]
        assert sim.stats["inquiries_received"] == 0
        await erp.close()


async def test_inq_in_gb18030_is_answered_in_gb18030_and_its_text_reaches_clearing_intact(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    text = "请确认收款人𠀀是否入账"  # U+20000: four bytes in GB18030, not in GBK at all
    answer = "已入账𠀀 credited"
    declaration = b'<?xml version="1.0" encoding="GB18030"?>'
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl", reply_text=answer) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        await settled_payment(erp, clock, "P-G")
        inq = await erp.inquire("GQ-1", clock.now(), "P-G", text, encoding="GB18030")
        assert inq.ret_code == "0000" and inq.gw_ref, inq.ret_msg
        assert inq.raw.startswith(declaration)
        assert inq.state == "SETTLED"
        inq_id = inq.gw_ref
        await wait_until(lambda: inq_id in sim.inquiries_received, "the ccms.314")
        assert sim.inquiries_received[inq_id].text == text

        # the REPLY, pulled in GB18030, carries the four-byte character as itself
        await wait_notice(erp, clock.now, ids("N1"), lambda n: n.kind == "REPLY")
        got = await erp.request("NTFY", "GN-1", clock.now(), notify_body(0, 500),
                                encoding="GB18030")  # fmt: skip
        assert got.ret_code == "0000" and got.notifications is not None, got.ret_msg
        replies = kinds(list(got.notifications.items), "REPLY")
        assert got.raw.startswith(declaration)
        assert "𠀀".encode("gb18030") in got.raw
        assert [r.text for r in replies] == [answer]
        await erp.close()


async def test_inq_with_a_stale_sendtime_is_3002_but_a_stale_replay_is_answered_as_dup(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = StepClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        await settled_payment(erp, clock, "P-S")
        stale = await erp.inquire("SQ-0", clock.now() - timedelta(seconds=301), "P-S", "到账？")
        assert (stale.ret_code, stale.gw_ref) == ("3002", None), stale.ret_msg

        sent_at = clock.now()
        body = erp.sign(
            build_request("INQ", erp.corp_id, erp.oper_id, "SQ-1", sent_at,
                          inquiry_body("P-S", "请确认是否到账"))
        )  # fmt: skip
        first = await erp.send_raw(body, "SQ-1")
        assert first.ret_code == "0000" and first.gw_ref and not first.dup, first.ret_msg
        reply = await wait_notice(
            erp, clock.now, ids("N1"), lambda n: n.kind == "REPLY" and n.inq_id == first.gw_ref
        )

        clock.jump(600)  # the ERP resends the same bytes ten minutes later
        again = await erp.send_raw(body, "SQ-1")
        assert (again.ret_code, again.gw_ref, again.dup) == ("0000", first.gw_ref, True)
        assert again.state == "SETTLED"
        # the replay check answers before freshness: different content is 3001, not 3002
        changed = await erp.inquire("SQ-1", sent_at, "P-S", "another text")
        assert changed.ret_code == "3001", changed.ret_msg
        fresh_id_stale_time = await erp.inquire("SQ-2", sent_at, "P-S", "请确认是否到账")
        assert fresh_id_stale_time.ret_code == "3002", fresh_id_stale_time.ret_msg

        assert kinds(await erp.pull_all(ids("N2"), clock.now()), "REPLY") == [reply]
        assert sim.stats["inquiries_received"] == 1  # one ccms.314 in all
        await erp.close()
