"""The clearing simulator's netting rounds, incoming credits and inquiries (clearing.md §4, §6).

As in test_clearing_sim, the test plays the gateway against a real
mosquitto: it signs with the dev PKI's gateway clearing key, publishes to
``clearing/<engine>/out`` and verifies everything the simulator sends on
``clearing/<engine>/in`` against the pinned clearing-system certificate.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest
from lxml import etree

from gateway.clearing.ccms import (
    CptyPosition,
    InquiryDoc,
    ReplyDoc,
    build_inquiry,
    build_reply,
    parse_inquiry,
    parse_netting,
    parse_reply,
    parse_settlement,
)
from gateway.clearing.envelope import build_envelope, out_msg_id, serialize
from gateway.clearing.pacs import build_pacs003, build_pacs008, parse_pacs002, parse_pacs008
from gateway.journal.records import Figures, QueuedItem, TxResult
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey, sign_enveloped
from gateway.model import Engine
from gateway.sim.clearing import ClearingSimConfig, ClearingSimulator, _config, _parser
from gateway.testing import Broker
from tests.unit.clearing.pacs_samples import (
    CREATED,
    OUR_PARTICIPANT,
    PEER_PARTICIPANT,
    WORK_DATE,
    item,
    package,
    schema,
)
from tests.unit.sim.test_clearing_sim import (
    SIM_PARTICIPANT,
    Answer,
    Gateway,
    gateway_side,
    running,
    sim_config,
)

OTHER_PARTICIPANT = "105100000017"
CREDIT_SENDER = "102100099996"


def config(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, **kw: object
) -> ClearingSimConfig:
    """Netting on, no artificial delays: every wait below is for a message, never a timer."""
    base: dict[str, object] = {"netting": True, "settle_delay_rounds": 0.0, "reply_delay": 0.0}
    return sim_config(broker, system_key, gateway_key, **(base | kw))


@contextlib.asynccontextmanager
async def both_sides(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, **kw: object
) -> AsyncIterator[tuple[ClearingSimulator, Gateway]]:
    """The simulator (``config(**kw)``) and the test's gateway side, both connected."""
    sim_cfg = config(broker, system_key, gateway_key, **kw)
    async with running(sim_cfg) as sim, gateway_side(broker, system_key) as gw:
        yield sim, gw


def signed(
    key: SigningKey,
    msg_tp: str,
    seq: int,
    document: etree._Element,
    rcvr: str = PEER_PARTICIPANT,
) -> tuple[str, bytes]:
    msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, seq)
    root = build_envelope(msg_tp, msg_id, OUR_PARTICIPANT, rcvr, CREATED, WORK_DATE, document)
    sign_enveloped(root, key)
    return msg_id, serialize(root)


async def send_package(
    gw: Gateway,
    key: SigningKey,
    seq: int,
    items: Sequence[QueuedItem],
    *,
    msg_tp: str = "beps.121",
    rcvr: str = PEER_PARTICIPANT,
) -> list[TxResult]:
    """Publish one package as the gateway would; return the ccms.900's per-item results."""
    msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, seq)
    build = build_pacs003 if msg_tp == "beps.127" else build_pacs008
    document = build(msg_id, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
    _, payload = signed(key, msg_tp, seq, document, rcvr)
    engine = "hvps" if msg_tp == "hvps.111" else "beps"
    await gw.send(payload, f"clearing/{engine}/out")
    assert (await gw.next()).env.msg_tp == "ccms.990"
    status = await gw.next()
    assert status.env.msg_tp == "ccms.900"
    orgnl, results = parse_pacs002(status.env.document)
    assert orgnl == msg_id
    return results


def accepted_sum(items: Sequence[QueuedItem], results: Sequence[TxResult]) -> tuple[int, Decimal]:
    amounts = {i.tx_id: i.amount for i in items}
    taken = [amounts[r.tx_id] for r in results if r.status == "ACSP" and r.tx_id is not None]
    return len(taken), sum(taken, Decimal(0))


async def next_of(gw: Gateway, msg_tp: str) -> Answer:
    answer = await gw.next()
    assert answer.env.msg_tp == msg_tp, answer.env.msg_tp
    assert answer.user_properties == {"MsgTp": msg_tp, "MsgId": answer.env.msg_id}
    return answer


# ------------------------------------------------------------------ netting


async def test_round_nets_accepted_package_items_per_counterparty_then_settles(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    cfg = config(broker, system_key, gateway_key, reject_ratio=0.4, seed=13)
    credits_peer = package(8)
    credits_other = [item(n, engine=Engine.BEPS) for n in range(101, 104)]
    debits_peer = [item(n, amount=Decimal("300.25")) for n in range(201, 205)]
    async with running(cfg) as sim, gateway_side(broker, system_key) as gw:
        res_peer = await send_package(gw, gateway_key, 1, credits_peer)
        res_other = await send_package(gw, gateway_key, 2, credits_other, rcvr=OTHER_PARTICIPANT)
        res_debit = await send_package(gw, gateway_key, 3, debits_peer, msg_tp="beps.127")
        hvps_items = [item(n) for n in range(301, 306)]
        res_hvps = await send_package(gw, gateway_key, 4, hvps_items, msg_tp="hvps.111")

        beps = res_peer + res_other + res_debit
        assert {r.status for r in beps} == {"ACSP", "RJCT"}  # netted, never settled gross
        assert "ACSC" in {r.status for r in res_hvps}  # HVPS stays real-time gross
        assert "ACSP" not in {r.status for r in res_hvps}
        await sim.rounds.wait_netted(sum(r.status == "ACSP" for r in beps))

        notices = await sim.run_netting_round()
        message = await next_of(gw, "beps.netting")
        settle = await next_of(gw, "beps.settle")

    assert message.topic == settle.topic == "clearing/beps/in"
    assert (message.env.sndr, message.env.rcvr) == (SIM_PARTICIPANT, OUR_PARTICIPANT)
    assert message.env.work_date == WORK_DATE
    notice = parse_netting(message.env.document)
    assert notices == [notice]
    assert (notice.work_date, notice.round_no) == (WORK_DATE, 1)
    dbt_peer, cdt_peer = accepted_sum(credits_peer, res_peer), accepted_sum(debits_peer, res_debit)
    dbt_other = accepted_sum(credits_other, res_other)
    assert notice.positions == (
        CptyPosition(PEER_PARTICIPANT, Figures(*dbt_peer, *cdt_peer)),
        CptyPosition(OTHER_PARTICIPANT, Figures(*dbt_other, 0, Decimal(0))),
    )
    settled = parse_settlement(settle.env.document)
    assert (settled.work_date, settled.round_no) == (WORK_DATE, 1)
    assert settled.net == cdt_peer[1] - dbt_peer[1] - dbt_other[1]
    assert sim.stats["netting_rounds"] == 1
    assert sim.stats["settlements"] == 1


async def test_rounds_count_only_what_is_new_and_number_from_one(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    # remember=1: a re-sent package is decided again, and must still be netted only once
    async with running(config(broker, system_key, gateway_key, remember=1)) as sim:
        async with gateway_side(broker, system_key) as gw:
            await send_package(gw, gateway_key, 1, [item(1, amount=Decimal(10))])
            await sim.rounds.wait_netted(1)
            (first,) = await sim.run_netting_round(WORK_DATE)
            await next_of(gw, "beps.netting")
            await next_of(gw, "beps.settle")
            assert await sim.run_netting_round() == []  # nothing since: no message

            await send_package(gw, gateway_key, 2, [item(2, amount=Decimal(7))])
            await send_package(gw, gateway_key, 9, [item(9)], msg_tp="hvps.111")  # evicts
            await send_package(gw, gateway_key, 2, [item(2, amount=Decimal(7))])
            await send_package(
                gw, gateway_key, 3, [item(3, amount=Decimal(5))], rcvr=OTHER_PARTICIPANT
            )
            await sim.rounds.wait_netted(3)
            (second,) = await sim.run_netting_round()
            notice = parse_netting((await next_of(gw, "beps.netting")).env.document)
            assert parse_settlement((await next_of(gw, "beps.settle")).env.document).round_no == 2
        assert sim.stats["duplicates"] == 1
    assert first.positions[0].figures == Figures(1, Decimal(10), 0, Decimal(0))
    assert notice == second
    assert second.round_no == 2
    assert second.positions == (
        CptyPosition(PEER_PARTICIPANT, Figures(1, Decimal(7), 0, Decimal(0))),
        CptyPosition(OTHER_PARTICIPANT, Figures(1, Decimal(5), 0, Decimal(0))),
    )


async def test_skew_makes_a_consistent_but_disagreeing_notice(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    cfg = config(broker, system_key, gateway_key, netting_skew=Decimal("0.01"))
    async with running(cfg) as sim, gateway_side(broker, system_key) as gw:
        await send_package(gw, gateway_key, 1, [item(1, amount=Decimal("100.00"))])
        await send_package(gw, gateway_key, 2, [item(2)], rcvr=OTHER_PARTICIPANT)
        await sim.rounds.wait_netted(2)
        await sim.run_netting_round()  # the configured skew
        by_config = parse_netting((await next_of(gw, "beps.netting")).env.document)
        settled = parse_settlement((await next_of(gw, "beps.settle")).env.document)

        await send_package(gw, gateway_key, 3, [item(3, amount=Decimal("5.00"))])
        await sim.rounds.wait_netted(3)
        await sim.run_netting_round(skew=Decimal("-1.00"))  # the call's skew wins
        by_call = parse_netting((await next_of(gw, "beps.netting")).env.document)

    first, second = by_config.positions
    assert first.cpty == PEER_PARTICIPANT  # the first position is the one skewed
    assert first.figures == Figures(1, Decimal("100.01"), 0, Decimal(0))
    assert second.figures == Figures(1, item(2).amount, 0, Decimal(0))
    assert settled.net == Decimal("-100.01") - item(2).amount  # what the notice said
    assert by_call.positions[0].figures == Figures(1, Decimal("4.00"), 0, Decimal(0))


async def test_skew_below_zero_is_refused_and_the_round_is_kept(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    async with both_sides(broker, system_key, gateway_key) as (sim, gw):
        await send_package(gw, gateway_key, 1, [item(1, amount=Decimal("1.00"))])
        await sim.rounds.wait_netted(1)
        with pytest.raises(ValueError, match="DbtSum must not be negative"):
            await sim.run_netting_round(skew=Decimal("-2.00"))
        (notice,) = await sim.run_netting_round()
    assert notice.round_no == 1
    assert notice.positions[0].figures == Figures(1, Decimal("1.00"), 0, Decimal(0))


async def test_scheduled_rounds_publish_without_being_asked(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    cfg = config(broker, system_key, gateway_key, netting_interval=0.05)
    async with running(cfg) as sim, gateway_side(broker, system_key) as gw:
        await sim.inject_credit(
            engine="BEPS", sender=CREDIT_SENDER, debtor_acct="6217000000000009",
            debtor_name="李四", debtor_bank=CREDIT_SENDER, creditor_acct="6222000000000001",
            creditor_name="上海示例贸易有限公司", amount=Decimal("88.00"),
            work_date=WORK_DATE,
        )  # fmt: skip
        assert (await gw.next()).env.msg_tp == "beps.121"
        notice = parse_netting((await next_of(gw, "beps.netting")).env.document)
        await next_of(gw, "beps.settle")
    assert notice.positions == (
        CptyPosition(CREDIT_SENDER, Figures(0, Decimal(0), 1, Decimal("88.00"))),
    )


# ------------------------------------------------------------------ incoming credits


@pytest.mark.requires_xsd
@pytest.mark.parametrize(
    ("engine", "msg_tp", "topic"),
    [
        ("HVPS", "hvps.111", "clearing/hvps/in"),
        ("BEPS", "beps.121", "clearing/beps/in"),
        ("INTRA", "intra.111", "clearing/intra/in"),
    ],
)
async def test_injected_credit_is_a_valid_signed_pacs008_to_the_gateway(
    broker: Broker,
    system_key: SigningKey,
    gateway_key: SigningKey,
    engine: str,
    msg_tp: str,
    topic: str,
) -> None:
    async with both_sides(broker, system_key, gateway_key) as (sim, gw):
        kwargs = {
            "engine": engine, "sender": CREDIT_SENDER, "debtor_acct": "6217000000000009",
            "debtor_name": "北京某某科技股份有限公司", "debtor_bank": "102100000072",
            "creditor_acct": "6222000000000001", "creditor_name": "上海示例贸易有限公司",
            "amount": Decimal("12345.67"), "purpose": "货款", "work_date": WORK_DATE,
        }  # fmt: skip
        msg_id, tx_id = await sim.inject_credit(**kwargs)  # type: ignore[arg-type]
        again = await sim.inject_credit(**kwargs)  # type: ignore[arg-type]
        first = await gw.next()
        await gw.next()
    assert first.topic == topic
    assert first.env.msg_tp == msg_tp
    assert first.user_properties == {"MsgTp": msg_tp, "MsgId": msg_id}
    assert (first.env.msg_id, first.env.sndr, first.env.rcvr) == (
        msg_id, CREDIT_SENDER, OUR_PARTICIPANT,
    )  # fmt: skip
    assert first.env.work_date == WORK_DATE
    schema("pacs.008.001.08").assertValid(etree.ElementTree(first.env.document))
    header, (tx,) = parse_pacs008(first.env.document)
    assert header.msg_id == msg_id
    assert (tx.tx_id, tx.amount, tx.ccy) == (tx_id, Decimal("12345.67"), "CNY")
    assert (tx.debtor_acct, tx.debtor_name, tx.debtor_agent) == (
        "6217000000000009", "北京某某科技股份有限公司", "102100000072",
    )  # fmt: skip
    assert (tx.creditor_acct, tx.creditor_name) == ("6222000000000001", "上海示例贸易有限公司")
    assert (tx.creditor_agent, tx.purpose) == (OUR_PARTICIPANT, "货款")
    assert len(msg_id) <= 35
    assert again[0] != msg_id
    assert again[1] != tx_id  # unique per injection
    assert sim.stats["credits_injected"] == 2


async def test_injected_credit_refuses_an_unknown_engine_or_sender(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    sim_cfg = config(broker, system_key, gateway_key)
    async with running(sim_cfg) as sim:
        base = {
            "debtor_acct": "1", "debtor_name": "n", "debtor_bank": CREDIT_SENDER,
            "creditor_acct": "2", "creditor_name": "m", "amount": Decimal(1),
        }  # fmt: skip
        with pytest.raises(ValueError, match="SWIFT"):
            await sim.inject_credit(engine="SWIFT", sender=CREDIT_SENDER, **base)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="12 digits"):
            await sim.inject_credit(engine="BEPS", sender="10210", **base)  # type: ignore[arg-type]
        assert sim.stats["credits_injected"] == 0


# ------------------------------------------------------------------ inquiries


async def test_injected_inquiry_comes_from_the_bank_the_payment_went_to(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    async with both_sides(broker, system_key, gateway_key) as (sim, gw):
        sent = item(1)
        await send_package(gw, gateway_key, 1, [sent], rcvr=OTHER_PARTICIPANT)
        orgnl = out_msg_id(OUR_PARTICIPANT, WORK_DATE, 1)
        inq_id = await sim.inject_inquiry(
            orgnl_msg_id=orgnl, orgnl_tx_id=sent.tx_id, text="收款人名称不符，请核实"
        )
        message = await next_of(gw, "ccms.314")
        other = await sim.inject_inquiry(
            orgnl_msg_id="X1", orgnl_tx_id="T1", text="?", engine="HVPS", sender=CREDIT_SENDER
        )
        second = await next_of(gw, "ccms.314")
    assert message.topic == "clearing/beps/in"
    assert (message.env.sndr, message.env.rcvr) == (OTHER_PARTICIPANT, OUR_PARTICIPANT)
    assert message.env.work_date == WORK_DATE
    assert parse_inquiry(message.env.document) == InquiryDoc(
        inq_id, orgnl, sent.tx_id, "收款人名称不符，请核实"
    )
    assert 1 <= len(inq_id) <= 35
    assert second.topic == "clearing/hvps/in"
    assert second.env.sndr == CREDIT_SENDER
    assert parse_inquiry(second.env.document).inq_id == other != inq_id
    assert sim.stats["inquiries_injected"] == 2


async def test_gateway_inquiry_gets_a_receipt_then_a_reply_once(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    cfg = config(broker, system_key, gateway_key, remember=1)
    inquiry = InquiryDoc("IQ202611270000000007", "104100000004202611270000000009", "T9", "请查复")
    async with running(cfg) as sim, gateway_side(broker, system_key) as gw:
        _, payload = signed(gateway_key, "ccms.314", 1, build_inquiry(inquiry))
        await gw.send(payload, "clearing/hvps/out")
        receipt = await next_of(gw, "ccms.990")
        reply = await next_of(gw, "ccms.315")
        assert sim.inquiries_received == {inquiry.inq_id: inquiry}

        # the simulator forgets its answers (remember=1), then the inquiry is re-sent:
        # a receipt again, but never a second reply (deduplicated by MsgId)
        await send_package(gw, gateway_key, 2, [item(2)], msg_tp="hvps.111")
        await gw.send(payload, "clearing/hvps/out")
        again = await next_of(gw, "ccms.990")
        assert sim.stats["ccms_duplicates"] == 1
        assert sim.stats["replies_sent"] == 1
    assert receipt.topic == reply.topic == "clearing/hvps/in"
    assert again.env.msg_id != receipt.env.msg_id
    assert (reply.env.sndr, reply.env.rcvr) == (PEER_PARTICIPANT, OUR_PARTICIPANT)
    assert parse_reply(reply.env.document) == ReplyDoc(inquiry.inq_id, cfg.reply_text)
    assert sim.stats["inquiries_received"] == 1


async def test_gateway_reply_is_recorded_once_and_a_malformed_one_is_not(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    async with both_sides(broker, system_key, gateway_key) as (sim, gw):
        inq_id = await sim.inject_inquiry(orgnl_msg_id="M1", orgnl_tx_id="T1", text="请核实")
        await next_of(gw, "ccms.314")
        _, good = signed(gateway_key, "ccms.315", 1, build_reply(ReplyDoc(inq_id, "已核实")))
        bad_doc = build_reply(ReplyDoc("Q2", "x"))
        bad_doc[1].text = "x" * 501
        _, bad = signed(gateway_key, "ccms.315", 2, bad_doc)
        for payload in (good, good, bad):
            await gw.send(payload, "clearing/beps/out")
            await next_of(gw, "ccms.990")
    assert sim.replies_received == {inq_id: "已核实"}
    assert sim.stats["replies_received"] == 1
    assert sim.stats["duplicates"] == 1
    assert sim.stats["ccms_invalid"] == 1


# ------------------------------------------------------------------ CLI


def test_cli_flags_reach_the_config(dev_pki: DevPki) -> None:
    keys = [
        "--key", str(dev_pki.clearing_system_key), "--cert", str(dev_pki.clearing_system_cert),
        "--gateway-cert", str(dev_pki.clearing_cert),
    ]  # fmt: skip
    default = _config(_parser().parse_args(keys))
    assert (default.netting, default.netting_interval, default.reply_delay) == (False, 0.0, 0.2)
    flags = ["--netting", "--netting-interval", "30", "--reply-delay", "1.5"]
    cfg = _config(_parser().parse_args([*keys, *flags]))
    assert (cfg.netting, cfg.netting_interval, cfg.reply_delay) == (True, 30.0, 1.5)


@pytest.mark.parametrize(
    "bad", [{"netting_interval": -1.0}, {"gateway_participant": "1031"}, {"reply_text": ""}]
)
def test_bad_round_settings_are_refused(
    system_key: SigningKey, gateway_key: SigningKey, bad: dict[str, object]
) -> None:
    cfg = ClearingSimConfig(
        broker_url="mqtt://127.0.0.1:1", sign_key=system_key, gateway_certs=gateway_key.chain
    )
    for name, value in bad.items():
        setattr(cfg, name, value)
    with pytest.raises(ValueError, match=next(iter(bad))):
        ClearingSimulator(cfg)
