"""The SWIFT simulator against a real mosquitto (docs/foreign-currency.md §4).

The test plays the gateway: it signs swift.008 envelopes with the dev PKI's
gateway clearing key, publishes them on ``swift/out`` and reads what the
simulator answers on ``swift/in``, verifying every answer against the
pinned certificate of the SWIFT interface (the dev PKI has no SWIFT key, so
the simulator signs with the clearing-system key) like the gateway would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import aiomqtt
import pytest

from gateway.clearing.documents import Envelope, parse_message, serialize
from gateway.clearing.swift import (
    SwiftPayment,
    build_swift_008,
    build_swift_envelope,
    is_uetr,
    new_uetr,
    parse_swift_envelope,
    read_swift_002,
    read_swift_008,
    read_swift_ack,
    swift_msg_id,
)
from gateway.cli.sim import main as sim_main
from gateway.clock import FrozenClock
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey, sign_enveloped, verify_pinned
from gateway.routing.settlement_paths import SettlementMethod, SettlementPath
from gateway.sim.clearing import REJECT_REASONS
from gateway.sim.swift import (
    FORMAT_NAK,
    NAK_REASONS,
    IncomingCredit,
    SwiftSimConfig,
    SwiftSimulator,
    incoming_credit_message,
    run_swift_sim,
)
from gateway.testing import Broker, running_simulator
from tests.unit.clearing.pacs_samples import CREATED, WORK_DATE, assert_valid, xsd_dir

WAIT = 10.0  # upper bound for any single wait; tests finish far sooner
OUR_BIC = "DEMOCNBJXXX"
PAYEE_BIC = "DEUTDEFFXXX"
SENDER_BIC = "BOFAUS3NXXX"
DIRECT = SettlementPath(SettlementMethod.INGA, OUR_BIC, PAYEE_BIC, PAYEE_BIC, None, None)


def sim_config(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, **kw: object
) -> SwiftSimConfig:
    return SwiftSimConfig(
        broker_url=broker.url,
        sign_key=system_key,
        gateway_certs=gateway_key.chain,
        gateway_bic=OUR_BIC,
        **kw,  # type: ignore[arg-type]
    )


def running(config: SwiftSimConfig) -> contextlib.AbstractAsyncContextManager[SwiftSimulator]:
    return running_simulator(SwiftSimulator(config), timeout=WAIT)


@dataclass
class Answer:
    topic: str
    payload: bytes
    user_properties: dict[str, str]
    env: Envelope


class Gateway:
    """The test's stand-in for the gateway's side of the SWIFT link."""

    def __init__(self, client: aiomqtt.Client, trusted: SigningKey) -> None:
        self.client = client
        self.trusted = trusted
        self.inbox: asyncio.Queue[Answer] = asyncio.Queue()

    async def pump(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            users = dict(getattr(message.properties, "UserProperty", []) or [])
            verified = verify_pinned(parse_message(message.payload), self.trusted.chain)
            env = parse_swift_envelope(verified.signed_root)
            await self.inbox.put(Answer(str(message.topic), message.payload, users, env))

    async def send(self, payload: bytes) -> None:
        await self.client.publish("swift/out", payload, qos=1)

    async def next(self) -> Answer:
        async with asyncio.timeout(WAIT):
            return await self.inbox.get()


@contextlib.asynccontextmanager
async def gateway_side(broker: Broker, system_key: SigningKey) -> AsyncIterator[Gateway]:
    client = aiomqtt.Client(
        broker.host, broker.port, identifier="test-gateway", protocol=aiomqtt.ProtocolVersion.V5
    )
    async with client:
        await client.subscribe("swift/in", qos=1)
        gw = Gateway(client, system_key)
        pump = asyncio.create_task(gw.pump())
        try:
            yield gw
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


def payment(seq: int, **changes: object) -> SwiftPayment:
    base = SwiftPayment(
        msg_id=swift_msg_id(OUR_BIC, WORK_DATE, seq),
        created=CREATED,
        settle_date=WORK_DATE,
        end_to_end_id=f"MSG{seq:04d}-1",
        tx_id=f"GW{seq:012d}",
        uetr=new_uetr(),
        amount=Decimal("250.00"),
        ccy="USD",
        minor_units=2,
        debtor_name="上海示例贸易有限公司",
        debtor_acct="31001234567890",
        creditor_name="Acme GmbH",
        creditor_acct="DE89370400440532013000",
        creditor_country="DE",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def signed(
    key: SigningKey, p: SwiftPayment, *, sndr: str = OUR_BIC, rcvr: str = PAYEE_BIC
) -> bytes:
    document = build_swift_008(p, DIRECT)
    root = build_swift_envelope("swift.008", p.msg_id, sndr, rcvr, CREATED, WORK_DATE, document)
    sign_enveloped(root, key)
    return serialize(root)


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- tests


async def test_ack_then_acsc_from_the_instructed_bank(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, tmp_path: Path
) -> None:
    record = tmp_path / "swift.jsonl"
    config = sim_config(broker, system_key, gateway_key, record_path=record)
    p = payment(1)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        await gw.send(signed(gateway_key, p))

        ack = await gw.next()
        assert ack.topic == "swift/in"
        assert ack.env.msg_tp == "swift.ack"
        assert (ack.env.sndr, ack.env.rcvr) == (PAYEE_BIC, OUR_BIC)
        assert ack.env.msg_id.startswith(f"DEUTDEFF{WORK_DATE:%Y%m%d}")
        assert len(ack.env.msg_id) <= 35
        assert ack.user_properties == {"MsgTp": "swift.ack", "MsgId": ack.env.msg_id}
        receipt = read_swift_ack(ack.env.document)
        assert (receipt.orgnl_msg_id, receipt.status, receipt.reason_code) == (
            p.msg_id,
            "ACK",
            None,
        )

        settled = await gw.next()
        assert settled.env.msg_tp == "swift.002"
        assert settled.user_properties == {"MsgTp": "swift.002", "MsgId": settled.env.msg_id}
        assert settled.env.msg_id != ack.env.msg_id
        status = read_swift_002(settled.env.document)
        assert (status.orgnl_msg_id, status.status, status.orgnl_uetr) == (p.msg_id, "ACSC", p.uetr)
        assert (status.orgnl_end_to_end_id, status.orgnl_tx_id) == (p.end_to_end_id, p.tx_id)
        assert sim.uetrs == {p.uetr: p.msg_id}
        assert (sim.stats["acks"], sim.stats["settled"], sim.stats["naks"]) == (1, 1, 0)
    (line,) = records(record)
    assert line == {
        "topic": "swift/out",
        "msg_id": p.msg_id,
        "msg_tp": "swift.008",
        "sndr": OUR_BIC,
        "rcvr": PAYEE_BIC,
        "dup": False,
        "valid": True,
        "reason": None,
        "uetr": p.uetr,
        "end_to_end_id": p.end_to_end_id,
        "tx_id": p.tx_id,
        "amount": "250.00",
        "ccy": "USD",
    }


async def test_nak_amount_gets_a_nak_with_reason_and_no_status(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, nak_amounts=frozenset({Decimal("13.13")}))
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        refused = payment(2, amount=Decimal("13.13"))
        await gw.send(signed(gateway_key, refused))
        nak = read_swift_ack((await gw.next()).env.document)
        assert (nak.orgnl_msg_id, nak.status) == (refused.msg_id, "NAK")
        assert (nak.reason_code, nak.reason_text) in NAK_REASONS
        # the next payment's answers come right after: nothing else was sent for the NAK
        fine = payment(3)
        await gw.send(signed(gateway_key, fine))
        assert read_swift_ack((await gw.next()).env.document).orgnl_msg_id == fine.msg_id
        assert read_swift_002((await gw.next()).env.document).orgnl_msg_id == fine.msg_id
        assert (sim.stats["naks"], sim.stats["statuses"]) == (1, 1)


async def test_nak_ratio_one_and_reject_amount(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(
        broker, system_key, gateway_key, reject_amounts=frozenset({Decimal("66.60")})
    )
    async with running(config), gateway_side(broker, system_key) as gw:
        p = payment(4, amount=Decimal("66.6"))
        await gw.send(signed(gateway_key, p))
        assert read_swift_ack((await gw.next()).env.document).status == "ACK"
        status = read_swift_002((await gw.next()).env.document)
        assert status.status == "RJCT"
        assert (status.reason_code, status.reason_text) in REJECT_REASONS
    config = sim_config(broker, system_key, gateway_key, nak_ratio=1.0, client_id="swift-sim-2")
    async with running(config), gateway_side(broker, system_key) as gw:
        await gw.send(signed(gateway_key, payment(5)))
        assert read_swift_ack((await gw.next()).env.document).status == "NAK"


async def test_resend_gets_the_same_answers_and_one_decision(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, tmp_path: Path
) -> None:
    record = tmp_path / "swift.jsonl"
    config = sim_config(broker, system_key, gateway_key, reject_ratio=0.5, record_path=record)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        payload = signed(gateway_key, payment(6))
        await gw.send(payload)
        first = [await gw.next(), await gw.next()]
        await gw.send(payload)
        again = [await gw.next(), await gw.next()]
        assert [a.payload for a in again] == [a.payload for a in first]
        assert (sim.stats["duplicates"], sim.stats["statuses"], sim.stats["uetr_reused"]) == (
            1,
            1,
            0,
        )
    assert [line["dup"] for line in records(record)] == [False, True]


async def test_one_uetr_under_two_msg_ids_is_counted(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    first = payment(7)
    second = payment(8, uetr=first.uetr)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        for p in (first, second):
            await gw.send(signed(gateway_key, p))
            await gw.next()
            await gw.next()
        assert sim.uetrs == {first.uetr: first.msg_id}
        assert sim.stats["uetr_reused"] == 1


async def test_unsigned_and_misaddressed_messages(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, tmp_path: Path
) -> None:
    record = tmp_path / "swift.jsonl"
    config = sim_config(broker, system_key, gateway_key, record_path=record)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        # signed by someone the simulator does not pin: dropped, never answered
        await gw.send(signed(system_key, payment(9)))
        # Rcvr is not the InstdAgt: a NAK for the format
        wrong = payment(10)
        await gw.send(signed(gateway_key, wrong, rcvr="CHASUS33XXX"))
        nak = read_swift_ack((await gw.next()).env.document)
        assert (nak.orgnl_msg_id, nak.status) == (wrong.msg_id, "NAK")
        assert (nak.reason_code, nak.reason_text) == FORMAT_NAK
        assert sim.stats["invalid"] == 1
    lines = records(record)
    assert [line["valid"] for line in lines] == [False, False]
    assert lines[1]["reason"] == "Sndr/Rcvr are not InstgAgt/InstdAgt"


async def test_injected_credit_is_well_formed_and_signed(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    credit = IncomingCredit(
        sender_bic=SENDER_BIC,
        debtor_name="Overseas Buyer Inc",
        debtor_acct="000123456789",
        creditor_acct="31009876543210",
        creditor_name="上海示例贸易有限公司",
        amount=Decimal("1500"),
        ccy="JPY",
        purpose="deposit",
        work_date=WORK_DATE,
    )
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        msg_id, uetr = await sim.inject_credit(credit)
        got = await gw.next()
    assert got.topic == "swift/in"
    assert (got.env.msg_tp, got.env.msg_id) == ("swift.008", msg_id)
    assert (got.env.sndr, got.env.rcvr) == (SENDER_BIC, OUR_BIC)
    assert got.user_properties == {"MsgTp": "swift.008", "MsgId": msg_id}
    incoming = read_swift_008(got.env.document)
    assert is_uetr(uetr)
    assert incoming.uetr == uetr
    assert (incoming.amount, incoming.ccy) == (Decimal("1500"), "JPY")
    assert (incoming.creditor_acct, incoming.creditor_name) == (
        credit.creditor_acct,
        credit.creditor_name,
    )
    assert (incoming.debtor_name, incoming.debtor_acct) == (credit.debtor_name, credit.debtor_acct)
    assert (incoming.sending_bic, incoming.creditor_agent) == (SENDER_BIC, OUR_BIC)
    assert incoming.settle_date == WORK_DATE
    assert sim.stats["credits_injected"] == 1


@pytest.mark.requires_xsd
async def test_with_the_official_schema_a_valid_payment_is_acked(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, xsd_dir=xsd_dir())
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        await gw.send(
            signed(gateway_key, payment(11, amount=Decimal("1500"), ccy="JPY", minor_units=0))
        )
        assert read_swift_ack((await gw.next()).env.document).status == "ACK"
        assert read_swift_002((await gw.next()).env.document).status == "ACSC"
        assert sim.stats["naks"] == 0


@pytest.mark.requires_xsd
def test_injected_credit_validates_against_the_official_schema(system_key: SigningKey) -> None:
    credit = IncomingCredit(
        sender_bic=SENDER_BIC,
        debtor_name="Overseas Buyer Inc",
        debtor_acct="000123456789",
        creditor_acct="31009876543210",
        creditor_name="张三",
        amount=Decimal("99.95"),
        ccy="USD",
        work_date=WORK_DATE,
    )
    reply, _uetr = incoming_credit_message(credit, OUR_BIC, system_key, 1, FrozenClock(CREATED))
    env = parse_swift_envelope(
        verify_pinned(parse_message(reply.payload), system_key.chain).signed_root
    )
    assert_valid(env.document, "pacs.008.001.08")


async def test_cli_inject_publishes_one_credit(
    broker: Broker, system_key: SigningKey, dev_pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "swift",
        "inject",
        "--broker",
        broker.url,
        "--key",
        str(dev_pki.clearing_system_key),
        "--cert",
        str(dev_pki.clearing_system_cert),
        "--gateway-bic",
        OUR_BIC,
        "--sender-bic",
        SENDER_BIC,
        "--amount",
        "2500.00",
        "--ccy",
        "USD",
        "--creditor-acct",
        "31009876543210",
        "--creditor-name",
        "上海示例贸易有限公司",
        "--work-date",
        WORK_DATE.isoformat(),
    ]
    async with gateway_side(broker, system_key) as gw:
        assert await asyncio.to_thread(sim_main, argv) == 0
        got = await gw.next()
    printed = json.loads(capsys.readouterr().out)
    assert got.env.msg_id == printed["msg_id"]
    incoming = read_swift_008(got.env.document)
    assert incoming.uetr == printed["uetr"]
    assert (incoming.amount, incoming.ccy) == (Decimal("2500.00"), "USD")


def test_cli_inject_refuses_a_bad_bic(dev_pki: DevPki, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["swift", "inject", "--broker", "mqtt://127.0.0.1:1", "--key"]
    argv += [str(dev_pki.clearing_system_key), "--cert", str(dev_pki.clearing_system_cert)]
    argv += ["--gateway-bic", "NOTABIC", "--sender-bic", SENDER_BIC, "--amount", "1", "--ccy"]
    argv += ["USD", "--creditor-acct", "1", "--creditor-name", "x"]
    assert sim_main(argv) == 2
    assert "BIC" in capsys.readouterr().err


async def test_cli_answers_until_sigterm(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, dev_pki: DevPki, tmp_path: Path
) -> None:
    record = tmp_path / "swift.jsonl"
    argv = ["--broker", broker.url, "--key", str(dev_pki.clearing_system_key)]
    argv += [
        "--cert",
        str(dev_pki.clearing_system_cert),
        "--gateway-cert",
        str(dev_pki.clearing_cert),
    ]
    argv += ["--record", str(record), "--nak-amount", "7.77"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli.sim", "swift", *argv
    )
    try:
        p = payment(12, amount=Decimal("7.77"))
        async with gateway_side(broker, system_key) as gw:
            # until the simulator has subscribed nothing reaches it: re-send under the same
            # MsgId, as the gateway does, and it deduplicates
            async with asyncio.timeout(60):
                while gw.inbox.empty():
                    await gw.send(signed(gateway_key, p))
                    await asyncio.sleep(0.2)
            nak = read_swift_ack((await gw.next()).env.document)
        assert (nak.orgnl_msg_id, nak.status) == (p.msg_id, "NAK")
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            code = await proc.wait()
    assert code == 0
    assert {line["msg_id"] for line in records(record)} == {p.msg_id}


def test_cli_refuses_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.pem")
    assert run_swift_sim(["--key", missing, "--cert", missing, "--gateway-cert", missing]) == 2
    assert "cannot read key file" in capsys.readouterr().err
