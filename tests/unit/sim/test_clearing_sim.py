"""The clearing simulator against a real mosquitto (clearing.md §1-§4).

The test plays the gateway: it signs envelopes with the dev PKI's gateway
clearing key, publishes them to ``clearing/<engine>/out`` and reads what the
simulator answers on ``clearing/<engine>/in``, verifying every answer
against the pinned clearing-system certificate like the gateway would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from lxml import etree

from gateway.clearing.documents import (
    NS_CLR,
    Envelope,
    TxResult,
    build_envelope,
    build_pacs008,
    out_msg_id,
    parse_envelope,
    parse_message,
    parse_pacs002,
    parse_receipt,
    serialize,
)
from gateway.journal.records import QueuedItem
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey, sign_enveloped, verify_pinned
from gateway.sim.clearing import (
    REJECT_REASONS,
    ClearingSimConfig,
    ClearingSimulator,
    run_clearing_sim,
)
from gateway.testing import Broker, running_simulator
from tests.unit.clearing.pacs_samples import (
    CREATED,
    OUR_PARTICIPANT,
    PEER_PARTICIPANT,
    WORK_DATE,
    item,
    package,
    xsd_dir,
)

WAIT = 10.0  # upper bound for any single wait; tests finish far sooner
SIM_PARTICIPANT = "000000000000"


def sim_config(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, **kw: object
) -> ClearingSimConfig:
    return ClearingSimConfig(
        broker_url=broker.url,
        sign_key=system_key,
        gateway_certs=gateway_key.chain,
        **kw,  # type: ignore[arg-type]
    )


def running(
    config: ClearingSimConfig, ready: asyncio.Event | None = None
) -> contextlib.AbstractAsyncContextManager[ClearingSimulator]:
    return running_simulator(ClearingSimulator(config), ready=ready, timeout=WAIT)


@dataclass
class Answer:
    topic: str
    payload: bytes
    user_properties: dict[str, str]
    env: Envelope


class Gateway:
    """The test's stand-in for the gateway side of the link."""

    def __init__(self, client: aiomqtt.Client, trusted: SigningKey) -> None:
        self.client = client
        self.trusted = trusted
        self.inbox: asyncio.Queue[Answer] = asyncio.Queue()

    async def pump(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            props = message.properties
            users = dict(getattr(props, "UserProperty", []) or [])
            verified = verify_pinned(parse_message(message.payload), self.trusted.chain)
            env = parse_envelope(verified.signed_root)
            await self.inbox.put(Answer(str(message.topic), message.payload, users, env))

    async def send(self, payload: bytes, topic: str = "clearing/hvps/out") -> None:
        await self.client.publish(topic, payload, qos=1)

    async def next(self) -> Answer:
        async with asyncio.timeout(WAIT):
            return await self.inbox.get()


@contextlib.asynccontextmanager
async def gateway_side(broker: Broker, system_key: SigningKey) -> AsyncIterator[Gateway]:
    client = aiomqtt.Client(
        broker.host, broker.port, identifier="test-gateway", protocol=aiomqtt.ProtocolVersion.V5
    )
    async with client:
        await client.subscribe("clearing/+/in", qos=1)
        gw = Gateway(client, system_key)
        pump = asyncio.create_task(gw.pump())
        try:
            yield gw
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


def signed_message(
    key: SigningKey,
    seq: int = 1,
    *,
    msg_tp: str = "hvps.111",
    items: list[QueuedItem] | None = None,
    document: etree._Element | None = None,
) -> tuple[str, bytes]:
    msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, seq)
    if document is None:
        document = build_pacs008(msg_id, CREATED, WORK_DATE, items or [item(seq)], OUR_PARTICIPANT)
    root = build_envelope(
        msg_tp, msg_id, OUR_PARTICIPANT, PEER_PARTICIPANT, CREATED, WORK_DATE, document
    )
    sign_enveloped(root, key)
    return msg_id, serialize(root)


# --------------------------------------------------------------------------- tests


async def test_receipt_then_settlement(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    config = sim_config(broker, system_key, gateway_key, record_path=record)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        msg_id, payload = signed_message(gateway_key)
        await gw.send(payload)

        receipt = await gw.next()
        assert receipt.topic == "clearing/hvps/in"
        assert receipt.env.msg_tp == "ccms.990"
        assert (receipt.env.sndr, receipt.env.rcvr) == (SIM_PARTICIPANT, OUR_PARTICIPANT)
        assert receipt.env.work_date == WORK_DATE
        assert receipt.user_properties == {"MsgTp": "ccms.990", "MsgId": receipt.env.msg_id}
        assert parse_receipt(receipt.env.document).orgnl_msg_id == msg_id

        status = await gw.next()
        assert status.env.msg_tp == "ccms.900"
        assert status.user_properties == {"MsgTp": "ccms.900", "MsgId": status.env.msg_id}
        assert status.env.msg_id != receipt.env.msg_id
        assert len(status.env.msg_id) <= 35
        orgnl, results = parse_pacs002(status.env.document)
        assert orgnl == msg_id
        it = item(1)
        assert results == [TxResult(it.tx_id, it.end_to_end_id, "ACSC")]

        assert sim.stats["received"] == 1
        assert sim.stats["settled"] == 1
        assert sim.msg_ids.seen(msg_id) == "recent"
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {
            "msg_id": msg_id,
            "msg_tp": "hvps.111",
            "topic": "clearing/hvps/out",
            "end_to_end_ids": [it.end_to_end_id],
            "tx_ids": [it.tx_id],
            "dup": False,
            "valid": True,
            "reason": None,
        }
    ]


async def test_reject_ratio_one_rejects_with_a_reason(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, reject_ratio=1.0, seed=7)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        _, payload = signed_message(gateway_key, 5, msg_tp="intra.111")
        await gw.send(payload, "clearing/intra/out")
        assert (await gw.next()).env.msg_tp == "ccms.990"
        status = await gw.next()
        assert status.topic == "clearing/intra/in"
        (result,) = parse_pacs002(status.env.document)[1]
        assert result.status == "RJCT"
        assert (result.reason_code, result.reason_text) in REJECT_REASONS
        assert sim.stats["rejected"] == 1


async def test_package_decisions_are_reproducible_per_seed(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    items = package(200)
    _, payload = signed_message(gateway_key, 9, msg_tp="beps.121", items=items)
    decisions = []
    for client_id in ("sim-a", "sim-b"):
        config = sim_config(
            broker, system_key, gateway_key, reject_ratio=0.5, seed=3, client_id=client_id
        )
        async with running(config), gateway_side(broker, system_key) as gw:
            await gw.send(payload, "clearing/beps/out")
            assert (await gw.next()).env.msg_tp == "ccms.990"
            status = await gw.next()
            decisions.append(parse_pacs002(status.env.document)[1])
    assert decisions[0] == decisions[1]
    statuses = [r.status for r in decisions[0]]
    assert len(statuses) == 200
    assert 40 < statuses.count("RJCT") < 160  # a ratio, not all-or-nothing
    assert [r.tx_id for r in decisions[0]] == [i.tx_id for i in items]


async def test_resend_gets_the_same_answers_never_a_second_decision(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    config = sim_config(broker, system_key, gateway_key, reject_ratio=0.5, record_path=record)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        _, payload = signed_message(gateway_key, 11, items=[item(11), item(12)])
        await gw.send(payload)
        first = [await gw.next(), await gw.next()]
        await gw.send(payload)
        again = [await gw.next(), await gw.next()]
        assert [a.payload for a in again] == [a.payload for a in first]
        assert sim.stats["duplicates"] == 1
        assert sim.stats["statuses"] == 1
        assert sim.stats["late_duplicates"] == 0
    dups = [json.loads(line)["dup"] for line in record.read_text(encoding="utf-8").splitlines()]
    assert dups == [False, True]


async def test_resend_after_answers_were_forgotten_gets_the_same_decision(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, reject_ratio=0.5, remember=1)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        _, first = signed_message(gateway_key, 13, items=package(20))
        _, second = signed_message(gateway_key, 14, items=[item(99)])
        decided = []
        for payload in (first, second, first):
            await gw.send(payload)
            assert (await gw.next()).env.msg_tp == "ccms.990"
            decided.append(parse_pacs002((await gw.next()).env.document)[1])
        assert decided[2] == decided[0]
        assert sim.stats["duplicates"] == 1
        assert sim.stats["late_duplicates"] == 1  # past its answers: decided again, the same


async def test_delays_keep_receipt_before_status(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, receipt_delay=0.05, settle_delay=0.05)
    async with running(config), gateway_side(broker, system_key) as gw:
        for seq in (71, 72, 73):
            await gw.send(signed_message(gateway_key, seq)[1])
        answers = [await gw.next() for _ in range(6)]
        by_original: dict[str, list[str]] = {}
        for a in answers:
            orgnl = (
                parse_receipt(a.env.document).orgnl_msg_id
                if a.env.msg_tp == "ccms.990"
                else parse_pacs002(a.env.document)[0]
            )
            by_original.setdefault(orgnl, []).append(a.env.msg_tp)
        assert list(by_original.values()) == [["ccms.990", "ccms.900"]] * 3
        assert len({a.env.msg_id for a in answers}) == 6


async def test_message_signed_by_an_unpinned_key_gets_no_receipt(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    config = sim_config(broker, system_key, gateway_key, record_path=record)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        _, forged = signed_message(system_key, 21)  # valid signature, wrong signer
        _, tampered = signed_message(gateway_key, 22)
        tampered = tampered.replace(b">49999.99<", b">94999.99<")
        good_id, good = signed_message(gateway_key, 23)
        for payload in (forged, tampered, b"<not-xml", good):
            await gw.send(payload)
        # the broker keeps order per publisher: once the good one is answered,
        # the three before it were handled, and none of them was answered
        receipt = await gw.next()
        assert parse_receipt(receipt.env.document).orgnl_msg_id == good_id
        assert (await gw.next()).env.msg_tp == "ccms.900"
        assert gw.inbox.empty()
        assert sim.stats["invalid"] == 3
        assert sim.msg_ids.seen(good_id) == "recent"
        assert sim.msg_ids.recent_count == 1  # the refused ones were never taken in
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert [line["valid"] for line in lines] == [False, False, False, True]
    assert lines[0]["msg_id"] is None


@pytest.mark.requires_xsd
async def test_invalid_document_is_rejected_ff01_with_xsd(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, xsd_dir=xsd_dir())
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, 31)
        doc = build_pacs008(msg_id, CREATED, WORK_DATE, [item(31), item(32)], OUR_PARTICIPANT)
        for charge in doc.iter("{*}ChrgBr"):
            charge.text = "FREE"  # not in ChargeBearerType1Code
        _, payload = signed_message(gateway_key, 31, document=doc)
        await gw.send(payload)
        assert (await gw.next()).env.msg_tp == "ccms.990"
        orgnl, results = parse_pacs002((await gw.next()).env.document)
        assert orgnl == msg_id
        assert [(r.end_to_end_id, r.status, r.reason_code) for r in results] == [
            (item(31).end_to_end_id, "RJCT", "FF01"),
            (item(32).end_to_end_id, "RJCT", "FF01"),
        ]
        assert sim.stats["schema_invalid"] == 1


async def test_wrong_document_for_the_message_type_is_rejected_without_xsd(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    async with running(config), gateway_side(broker, system_key) as gw:
        msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, 41)
        doc = build_pacs008(msg_id, CREATED, WORK_DATE, [item(41)], OUR_PARTICIPANT)
        for nb in doc.iter("{*}NbOfTxs"):
            nb.text = "2"  # disagrees with the one transaction
        _, payload = signed_message(gateway_key, 41, document=doc)
        await gw.send(payload)
        await gw.next()
        (result,) = parse_pacs002((await gw.next()).env.document)[1]
        assert (result.status, result.reason_code) == ("RJCT", "FF01")


async def test_non_payment_message_gets_a_receipt_only(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        inquiry = etree.fromstring(
            f'<Inqry xmlns="{NS_CLR}"><InqId>Q1</InqId><OrgnlMsgId>X</OrgnlMsgId>'
            "<OrgnlTxId>T</OrgnlTxId><Text>请核实</Text></Inqry>".encode()
        )
        inq_id, inq = signed_message(gateway_key, 51, msg_tp="ccms.314", document=inquiry)
        pay_id, pay = signed_message(gateway_key, 52)
        await gw.send(inq)
        await gw.send(pay)
        answers = [await gw.next() for _ in range(3)]
        assert [a.env.msg_tp for a in answers] == ["ccms.990", "ccms.990", "ccms.900"]
        assert parse_receipt(answers[0].env.document).orgnl_msg_id == inq_id
        assert parse_pacs002(answers[2].env.document)[0] == pay_id
        # The simulator counts a status once its PUBACK is back, which can come after
        # the subscriber here has the message: wait for the count, bounded.
        async with asyncio.timeout(WAIT):
            while sim.stats["statuses"] < 1:
                await asyncio.sleep(0.01)
        assert sim.stats["statuses"] == 1


async def test_simulator_survives_a_broker_restart(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    ready = asyncio.Event()
    async with running(config, ready) as sim:
        ready.clear()
        broker.restart()
        async with asyncio.timeout(WAIT):
            await ready.wait()  # set again once the simulator has re-subscribed
        async with gateway_side(broker, system_key) as gw:
            msg_id, payload = signed_message(gateway_key, 61)
            await gw.send(payload)
            receipt = await gw.next()
            assert parse_receipt(receipt.env.document).orgnl_msg_id == msg_id
            assert (await gw.next()).env.msg_tp == "ccms.900"
        assert sim.stats["received"] == 1


def test_cli_refuses_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.pem"
    code = run_clearing_sim(
        ["--key", str(missing), "--cert", str(missing), "--gateway-cert", str(missing)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot read key file" in err
    assert "BEGIN" not in err


def test_cli_refuses_a_bad_broker_url(dev_pki: DevPki, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_clearing_sim(
        [
            "--broker", "http://127.0.0.1:1",
            "--key", str(dev_pki.clearing_system_key),
            "--cert", str(dev_pki.clearing_system_cert),
            "--gateway-cert", str(dev_pki.clearing_cert),
        ]
    )  # fmt: skip
    assert code == 2
    assert "mqtt://" in capsys.readouterr().err
