"""Bank drafts' edge cases through the real daemon (docs/bank-drafts.md, docs/protocol.md
§4.10-§4.11, §6), each as a user sees it: RetCode and RetMsg on CorpLink, NTFY and STATUS,
the answer an agent bank gets, /metrics, and ``gatewayctl drafts``.

In-process daemon (tests/integration/harness.py) on a ``FrozenClock`` moved by hand, the
clearing simulator answering the draft messages, a real mosquitto and a real SQLite
journal, on a private copy of the test PKI whose enrolment file a test may change.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from lxml import etree
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.documents import build_envelope, serialize
from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.clock import FrozenClock
from gateway.drafts.dates import one_month_after, working_days_after
from gateway.drafts.documents import MSG_TP_PRESENT, build_presentment
from gateway.drafts.records import Presentment
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import sign_enveloped
from gateway.sim.cli_options import broker_address
from gateway.sim.present import CentreLink, new_msg_id
from gateway.testing import Broker
from tests.business_dates import suite_today
from tests.integration.drafts_support import (
    AGENT,
    CAL,
    PARTICIPANT,
    PASSPHRASE,
    PASSPHRASE_ENV,
    PAYER_MASKED,
    Teller,
    application,
    at,
    edit_enrolment,
    latest_day,
    metric,
    metric_reaches,
    private_pki,
    running_teller,
)
from tests.integration.harness import Erp, payment

BEPS_BANK = "105100000017"
UNKNOWN_DRAFT = PARTICIPANT + "99999999"  # our prefix, a sequence never issued


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)


@pytest.fixture
def pki(dev_pki: DevPki, tmp_path: Path) -> DevPki:
    return private_pki(dev_pki, tmp_path / "pki")


def day_with_room(working_days: int) -> date:
    """The latest working day whose ``working_days``-th next working day is not after today:
    every instant the test moves to is then in the past."""
    today = suite_today()
    return latest_day(
        lambda d: working_days_after(d, working_days, CAL) <= today,
        f"working day with {working_days} working days after it",
    )


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """``gatewayctl ARGV`` in-process: exit code, its JSON answer (None if none), stderr."""
    capsys.readouterr()
    code = gatewayctl_main(list(argv))
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else None, out.err


def steps(reply: Any) -> list[tuple[str, str | None]]:
    return [(s.state, s.reason_code) for s in reply.draft.history]


# --------------------------------------------------------------------- permissions


async def test_permissions_file_certificate_limits_enrolment_and_trn_codes(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None
) -> None:
    """corplink §6 as for PAY: USBKey only, the operator's item limit, a daily limit shared
    with PAY, enrolled payer accounts, the CorpId's TrnCodes (docs/protocol.md §6)."""

    def rules(corp: dict[str, Any]) -> None:
        if corp["corp_id"] == "C100000002":
            corp["operator"][0]["max_item"] = "5000.00"
            corp["operator"][0]["daily_limit"] = "8000.00"
        if corp["corp_id"] == "C100000003":
            corp["trn_codes"] = ["PAY", "STATUS", "NTFY"]

    edit_enrolment(pki, rules)
    day = day_with_room(1)
    clock = FrozenClock(at(day, 10))
    # no clearing centre: every draft stays PENDING (its issue is never answered)
    async with running_teller(tmp_path, pki, broker, clock, clearing=False) as t:
        now = clock.now
        mine = await t.apply("P-1", "100.00")
        assert mine.draft is not None and mine.draft.state == "PENDING"

        # a file certificate (op02) may neither apply nor refund: 2006, nothing journaled
        filecert = await Erp(t.gw, t.pki).client("C100000001", "op02")
        try:
            r = await filecert.apply_draft("F-1", now(), application("10.00"))
            assert r.ret_code == "2006" and "file certificate" in r.ret_msg
            r = await filecert.refund_draft("F-2", now(), mine.draft.draft_no, "退回")
            assert r.ret_code == "2006" and "file certificate" in r.ret_msg
            assert (await filecert.status("F-3", now(), "F-1")).state is None
        finally:
            await filecert.close()

        # a payer account not enrolled for the CorpId: 4006
        r = await t.erp.apply_draft("P-2", now(), application("10.00", payer="6222000000009999"))
        assert r.ret_code == "4006", r.ret_msg
        # a DRAFTRFND of a PENDING draft: 1004 saying why
        r = await t.erp.refund_draft("P-3", now(), mine.draft.draft_no, "退回")
        assert r.ret_code == "1004" and "PENDING" in r.ret_msg and "ISSUED" in r.ret_msg

        # C100000002 op01: item limit 5,000.00, daily limit 8,000.00 for PAY and DRAFT together
        limited = await Erp(t.gw, t.pki).client("C100000002", "op01")
        payer = "6222000000000101"
        try:
            r = await limited.apply_draft("L-1", now(), application("5000.01", payer=payer))
            assert r.ret_code == "2006" and "item limit" in r.ret_msg
            pay = payment(BEPS_BANK, "5000.00", payer_acct=payer)
            assert (await limited.pay("L-2", now(), pay)).ret_code == "0000"
            r = await limited.apply_draft("L-3", now(), application("3000.01", payer=payer))
            assert (r.ret_code, r.gw_ref) == ("2006", None)
            assert "daily limit" in r.ret_msg
            r = await limited.apply_draft("L-4", now(), application("3000.00", payer=payer))
            assert r.ret_code == "0000", r.ret_msg  # exactly the cap
            over = await limited.pay("L-5", now(), payment(BEPS_BANK, "0.01", payer_acct=payer))
            assert over.ret_code == "2006" and "daily limit" in over.ret_msg
        finally:
            await limited.close()

        # C100000003 may PAY but its TrnCodes do not include DRAFT: 2006
        other = await Erp(t.gw, t.pki).client("C100000003", "op01")
        try:
            r = await other.apply_draft(
                "T-1", now(), application("10.00", payer="6222000000000201")
            )
            assert r.ret_code == "2006" and "TrnCode DRAFT" in r.ret_msg
        finally:
            await other.close()


# --------------------------------------------------------------------- EX


async def test_a_presentment_on_the_expiry_date_is_in_time_and_after_it_is_ex(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None
) -> None:
    today = suite_today()

    def fits(d: date) -> bool:
        month = one_month_after(d)
        return CAL.is_working_day(month) and CAL.next_working_day(month) <= today

    day = latest_day(fits, "draft whose ExpiryDate is a working day before today")
    expiry = one_month_after(day)
    clock = FrozenClock(at(day, 10))
    async with running_teller(tmp_path, pki, broker, clock) as t:
        a = (await t.apply("X-1", "100.00")).draft
        b = (await t.apply("X-2", "200.00")).draft
        assert a is not None and b is not None
        assert (a.issue_date, a.expiry_date) == (day, expiry)
        await t.state(a.draft_no, "ISSUED")
        await t.state(b.draft_no, "ISSUED")

        t.move(at(expiry, 16))  # on ExpiryDate itself: in time
        assert await t.present(a) == ("ACCP", None)
        assert await t.present(b, amount=Decimal("200.01")) == ("RJCT", "AM")  # past EX
        ex_before = await metric(
            t.gw, 'gateway_draft_presentments_total{reason="EX",result="RJCT"}'
        )

        after = CAL.next_working_day(expiry)
        t.move(at(after, 9))
        assert await t.present(b) == ("RJCT", "EX")
        # EX comes before the Code check: an expired draft is refused as expired
        assert await t.present(b, code="0" * 16) == ("RJCT", "EX")
        assert await t.present(a) == ("RJCT", "PD")  # paid before: PD, not EX
        ex_now = await metric(t.gw, 'gateway_draft_presentments_total{reason="EX",result="RJCT"}')
        assert ex_now - ex_before == 2
        assert (await t.status("X-2")).draft.state == "ISSUED"  # type: ignore[union-attr]


async def test_an_expiry_date_on_a_holiday_moves_to_the_next_working_day(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None
) -> None:
    today = suite_today()

    def on_holiday(d: date) -> bool:
        month = one_month_after(d)
        return (
            month in CAL.holidays
            and month.weekday() < 5
            and CAL.next_working_day(CAL.next_working_day(month)) <= today
        )

    day = latest_day(on_holiday, "draft whose month ends on a weekday holiday")
    holiday = one_month_after(day)
    expiry = CAL.next_working_day(holiday)
    clock = FrozenClock(at(day, 10))
    async with running_teller(tmp_path, pki, broker, clock) as t:
        a = (await t.apply("H-1", "100.00")).draft
        b = (await t.apply("H-2", "200.00")).draft
        assert a is not None and b is not None
        assert a.expiry_date == expiry > holiday
        await t.state(a.draft_no, "ISSUED")
        await t.state(b.draft_no, "ISSUED")
        # the day after the holiday, still no later than ExpiryDate: in time
        t.move(at(holiday + timedelta(days=1), 11))
        assert await t.present(a) == ("ACCP", None)
        t.move(at(CAL.next_working_day(expiry), 9))
        assert await t.present(b) == ("RJCT", "EX")


# --------------------------------------------------------------------- settlement


async def test_a_zero_remainder_is_still_settled_and_each_notice_carries_its_fields(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None
) -> None:
    day = day_with_room(1)
    clock = FrozenClock(at(day, 10))
    async with running_teller(tmp_path, pki, broker, clock) as t:
        d = (await t.apply("Z-1", "1000.00")).draft
        assert d is not None
        issued = await t.state(d.draft_no, "ISSUED")
        assert await t.present(d, settle_amount=Decimal("1000.00")) == ("ACCP", None)
        await t.state(d.draft_no, "PAID")
        settle_day = CAL.next_working_day(day)
        t.move(at(settle_day, 0, 5))
        settled = await t.state(d.draft_no, "SETTLED")
        assert settled.remainder == Decimal("0.00")

        notes = await t.notices(d.draft_no)
        assert [n.state for n in notes] == ["ISSUED", "PAID", "SETTLED"]
        assert [n.ntfy_id for n in notes] == sorted({n.ntfy_id for n in notes})
        assert notes[0] == issued
        for n in notes:
            assert (n.kind, n.orig_msg_id, n.draft_no) == ("DRAFT", "Z-1", d.draft_no)
            assert n.at is not None
        paid = notes[1]
        assert paid.settle_amount == Decimal("1000.00") and paid.remainder is None
        assert paid.at is not None and paid.at.date() == day
        assert settled.at is not None and settled.at.date() == settle_day
        assert settled.settle_amount is None and settled.reason_code is None
        assert issued.settle_amount is None and issued.remainder is None

        status = await t.status("Z-1")
        assert steps(status) == [
            ("PENDING", None), ("ISSUED", None), ("PAID", None), ("SETTLED", None)
        ]  # fmt: skip
        assert status.draft is not None and status.draft.state == "SETTLED"
        assert t.sim is not None and t.sim.stats.get("draft_rejected", 0) == 0


async def test_a_rejected_settle_keeps_the_draft_paid_and_two_working_days_on_it_is_overdue(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None
) -> None:
    day = day_with_room(2)
    clock = FrozenClock(at(day, 10))
    rejected = 'gateway_draft_message_rejected_total{kind="settle"}'
    async with running_teller(
        tmp_path, pki, broker, clock, draft_reject_fen={"intra.draft.settle": 13}
    ) as t:
        d = (await t.apply("J-1", "1000.00")).draft
        assert d is not None
        await t.state(d.draft_no, "ISSUED")
        assert await t.present(d, settle_amount=Decimal("800.13")) == ("ACCP", None)
        await t.state(d.draft_no, "PAID")
        before = await metric(t.gw, rejected)

        t.move(at(working_days_after(day, 1, CAL), 0, 5))
        status = await t.history_until("J-1", lambda d: len(d.history) >= 4)
        assert status.draft is not None and status.draft.state == "PAID"
        # the centre's reason is in the history; the state stays PAID, no notification
        assert steps(status) == [
            ("PENDING", None), ("ISSUED", None), ("PAID", None), ("PAID", "AC04")
        ]  # fmt: skip
        assert [n.state for n in await t.notices(d.draft_no)] == ["ISSUED", "PAID"]
        assert await metric_reaches(t.gw, rejected, before + 1) == before + 1
        # one working day after it was paid: not yet overdue
        assert await metric_reaches(t.gw, "gateway_drafts_paid_unsettled", 0.0) == 0.0

        t.move(at(working_days_after(day, 2, CAL), 0, 5))
        assert await metric_reaches(t.gw, "gateway_drafts_paid_unsettled", 1.0) == 1.0
        assert await metric(t.gw, 'gateway_drafts{state="PAID"}') == 1.0
        # the settle went once: it is not sent again on the next day
        assert await metric(t.gw, rejected) == before + 1
        status = await t.status("J-1")
        assert status.draft is not None and status.draft.state == "PAID"


async def test_a_rejected_refund_returns_the_draft_to_issued_and_refunding_is_not_notified(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None
) -> None:
    day = day_with_room(1)
    clock = FrozenClock(at(day, 10))
    refused = 'gateway_draft_message_rejected_total{kind="refund"}'
    async with running_teller(
        tmp_path,
        pki,
        broker,
        clock,
        draft_reject_fen={"intra.draft.refund": 31, "intra.draft.issue": 77},
    ) as t:
        kept = (await t.apply("R-1", "500.31")).draft
        gone = (await t.apply("R-2", "500.00")).draft
        bad = (await t.apply("R-3", "500.77")).draft
        assert kept is not None and gone is not None and bad is not None
        await t.state(kept.draft_no, "ISSUED")
        await t.state(gone.draft_no, "ISSUED")
        before = await metric(t.gw, refused)

        r = await t.erp.refund_draft("RF-1", clock.now(), kept.draft_no, "不再需要")
        assert r.ret_code == "0000" and r.draft is not None and r.draft.state == "REFUNDING"
        status = await t.history_until("R-1", lambda d: d.state == "ISSUED" and len(d.history) == 4)
        assert steps(status) == [
            ("PENDING", None), ("ISSUED", None), ("REFUNDING", None), ("ISSUED", "AC04")
        ]  # fmt: skip
        assert await metric_reaches(t.gw, refused, before + 1) == before + 1
        # back to ISSUED is a change to ISSUED, so notified again (the reason: STATUS)
        assert [n.state for n in await t.notices(kept.draft_no)] == ["ISSUED", "ISSUED"]
        assert await t.present(kept, prsntmt_id="RF-KEPT") == ("ACCP", None)  # still payable

        r = await t.erp.refund_draft("RF-2", clock.now(), gone.draft_no, "退回")
        assert r.ret_code == "0000"
        await t.state(gone.draft_no, "REFUNDED")
        # REFUNDING is history, never news
        assert [n.state for n in await t.notices(gone.draft_no)] == ["ISSUED", "REFUNDED"]
        assert steps(await t.status("R-2")) == [
            ("PENDING", None), ("ISSUED", None), ("REFUNDING", None), ("REFUNDED", None)
        ]  # fmt: skip

        # a rejected issue: REJECTED, notified with the centre's Reason
        note = await t.state(bad.draft_no, "REJECTED")
        assert (note.orig_msg_id, note.reason_code) == ("R-3", "AM04")
        assert note.settle_amount is None and note.remainder is None
        assert steps(await t.status("R-3")) == [("PENDING", None), ("REJECTED", "AM04")]


# --------------------------------------------------------------------- gatewayctl


async def test_gatewayctl_drafts_views_through_the_daemon_and_with_it_stopped(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    day = day_with_room(1)
    settle_day = CAL.next_working_day(day)
    clock = FrozenClock(at(day, 10))
    async with running_teller(tmp_path, pki, broker, clock) as t:
        sock = str(t.cfg.admin_socket)
        state = t.cfg.state_path
        a = (await t.apply("G-1", "100.00")).draft
        b = (await t.apply("G-2", "200.50")).draft
        c = (await t.apply("G-3", "300.00")).draft
        r = (await t.apply("G-4", "400.00")).draft
        assert a is not None and b is not None and c is not None and r is not None
        codes = [x.code for x in (a, b, c, r)]
        for x in (a, b, c, r):
            await t.state(x.draft_no, "ISSUED")
        assert await t.present(c, settle_amount=Decimal("250.00")) == ("ACCP", None)
        await t.state(c.draft_no, "PAID")
        assert (
            await t.erp.refund_draft("GR-1", clock.now(), r.draft_no, "退回")
        ).ret_code == "0000"
        await t.state(r.draft_no, "REFUNDED")

        async def view(*argv: str) -> Any:
            code, out, err = await asyncio.to_thread(ctl, capsys, "--socket", sock, *argv)
            assert code == 0, err
            assert not any(k in json.dumps(out) for k in codes), "a Code in gatewayctl output"
            return out

        # the day's auto-settlement list before the pass: C, due on the next working day
        due = await view("drafts", "settle-list", "--date", settle_day.isoformat())
        assert [d["draft_no"] for d in due["drafts"]] == [c.draft_no]
        assert (due["count"], due["remainders"]) == (1, "50.00")
        none_today = await view("drafts", "settle-list", "--date", day.isoformat())
        assert none_today["drafts"] == []

        t.move(at(settle_day, 0, 5))
        await t.state(c.draft_no, "SETTLED")

        listed = await view("drafts", "list")
        assert listed["outstanding"] == {"count": 2, "amount": "300.50"}
        assert {d["draft_no"]: d["state"] for d in listed["drafts"]} == {
            a.draft_no: "ISSUED", b.draft_no: "ISSUED",
            c.draft_no: "SETTLED", r.draft_no: "REFUNDED",
        }  # fmt: skip
        issued = await view("drafts", "list", "--state", "ISSUED")
        assert [d["draft_no"] for d in issued["drafts"]] == [b.draft_no, a.draft_no]
        expiry = a.expiry_date
        assert (await view("drafts", "list", "--expiring-before", expiry.isoformat()))[
            "drafts"
        ] == []
        later = (expiry + timedelta(days=1)).isoformat()
        both = await view("drafts", "list", "--state", "ISSUED", "--expiring-before", later)
        assert [d["draft_no"] for d in both["drafts"]] == [b.draft_no, a.draft_no]

        shown = (await view("drafts", "show", c.draft_no))["draft"]
        assert shown["payer_acct"] == PAYER_MASKED
        assert (shown["state"], shown["amount"], shown["settle_amount"]) == (
            "SETTLED", "300.00", "250.00"
        )  # fmt: skip
        assert [h["state"] for h in shown["history"]] == ["PENDING", "ISSUED", "PAID", "SETTLED"]
        assert shown["paid_on"] == day.isoformat() and shown["msg_id"] == "G-3"
        assert "6222000000000001" not in json.dumps(shown)
        settled_list = await view("drafts", "settle-list", "--date", settle_day.isoformat())
        assert [d["draft_no"] for d in settled_list["drafts"]] == [c.draft_no]
        assert settled_list["remainders"] == "50.00"

        code, missing, _ = await asyncio.to_thread(
            ctl, capsys, "--socket", sock, "drafts", "show", UNKNOWN_DRAFT
        )
        assert code == 1 and "no draft" in missing["reason"]
        outstanding = "gateway_drafts_outstanding_yuan"
        assert await metric_reaches(t.gw, outstanding, 300.5) == 300.5

    # the daemon is stopped: the same views read from the journal
    overlay = tmp_path / "gatewayctl.toml"
    overlay.write_text(f'environment = "test"\nstate_dir = {json.dumps(str(state))}\n')
    base = ["--config", str(overlay)]
    for argv, live in (
        (["drafts", "list"], listed),
        (["drafts", "list", "--state", "ISSUED"], issued),
        (["drafts", "show", c.draft_no], {"ok": True, "draft": shown}),
        (["drafts", "settle-list", "--date", settle_day.isoformat()], settled_list),
    ):
        code, offline, err = await asyncio.to_thread(ctl, capsys, *base, *argv)
        assert code == 0, err
        assert "reading the journal read-only" in err
        assert offline == live, argv
        assert not any(k in json.dumps(offline) for k in codes)


# --------------------------------------------------------------------- hostile


def malformed_presentments(t: Teller, draft: Any) -> list[tuple[str, bytes]]:
    """Signed ``intra.draft.present`` messages whose Document does not read: a missing
    child, an unknown one, an amount with a separator (docs/bank-drafts.md §3)."""
    assert t.link is not None
    link: CentreLink = t.link
    day = t.clock.now().date()
    out: list[tuple[str, bytes]] = []
    for n, spoil in enumerate(("drop AgentBank", "add Extra", "Amount 1,000.00")):
        pid = f"BAD-{n}"
        doc = build_presentment(
            Presentment(pid, draft.draft_no, draft.code, draft.issue_date, draft.amount,
                        draft.amount, AGENT, "6222020200000000017", "持票人")
        )  # fmt: skip
        ns = doc.nsmap[None]
        if spoil == "drop AgentBank":
            agent = doc.find(f"{{{ns}}}AgentBank")
            assert agent is not None
            doc.remove(agent)
        elif spoil == "add Extra":
            etree.SubElement(doc, f"{{{ns}}}Extra").text = "1"
        else:
            doc.find(f"{{{ns}}}Amount").text = "1,000.00"  # type: ignore[union-attr]
        msg_id = new_msg_id(link.centre, day)
        env = build_envelope(
            MSG_TP_PRESENT, msg_id, link.centre, link.bank, t.clock.now(), day, doc
        )
        sign_enveloped(env, link.sign_key)
        out.append((msg_id, serialize(env)))
    return out


async def publish_inbound(t: Teller, messages: list[tuple[str, bytes]]) -> None:
    """Publish signed messages on the gateway's INTRA inbound topic, as the centre does."""
    assert t.link is not None
    host, port = broker_address(t.link.broker_url, None)
    async with aiomqtt.Client(
        host, port, identifier=f"hostile-{secrets.token_hex(4)}",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:  # fmt: skip
        for msg_id, payload in messages:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = [("MsgTp", MSG_TP_PRESENT), ("MsgId", msg_id)]
            await client.publish(
                f"{t.link.topic_prefix}/intra/in", payload, qos=1, properties=props
            )


async def test_hostile_presentments_dropped_or_answered_once(
    tmp_path: Path, pki: DevPki, broker: Broker, passphrase: None
) -> None:
    day = day_with_room(1)
    clock = FrozenClock(at(day, 10))
    dropped = 'gateway_inbound_dropped_total{reason="malformed"}'
    async with running_teller(tmp_path, pki, broker, clock) as t:
        d = (await t.apply("Y-1", "1000.00")).draft
        assert d is not None
        await t.state(d.draft_no, "ISSUED")
        assert t.sim is not None

        # malformed Documents: dropped and counted, never answered
        before = await metric(t.gw, dropped)
        await publish_inbound(t, malformed_presentments(t, d))
        assert await metric_reaches(t.gw, dropped, before + 3) == before + 3
        assert await t.present(d, amount=Decimal("999.00"), prsntmt_id="PR-A") == ("RJCT", "AM")
        assert not any(pid.startswith("BAD-") for pid in t.sim.draft_answers)

        # PR-A was answered AM: delivered again, now correct, it gets the same answer
        assert await t.present(d, prsntmt_id="PR-A") == ("RJCT", "AM")
        assert await t.present(d, prsntmt_id="PR-A", settle_amount=Decimal("1.00")) == (
            "RJCT",
            "AM",
        )
        assert t.sim.stats.get("draft_answers_repeated", 0) == 0  # under its first MsgId
        assert (await t.status("Y-1")).draft.state == "ISSUED"  # type: ignore[union-attr]
        # another PrsntmtId pays it, and that answer too is kept
        assert await t.present(d, prsntmt_id="PR-B") == ("ACCP", None)
        assert await t.present(d, prsntmt_id="PR-B", amount=Decimal("1.00")) == ("ACCP", None)
        assert await t.present(d, prsntmt_id="PR-C") == ("RJCT", "PD")
        assert t.sim.stats.get("draft_answers_repeated", 0) == 0
        paid = await t.state(d.draft_no, "PAID")
        assert paid.settle_amount == Decimal("1000.00")
