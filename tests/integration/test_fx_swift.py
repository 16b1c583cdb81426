"""Foreign-currency payments to other banks through the real daemon, over the SWIFT link to
the SWIFT simulator (docs/foreign-currency.md §3-§4): ACK → ACSC → SETTLED with the UETR
in STATUS, the direct and the correspondent path, a NAK → REJECTED with its reason."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from lxml import etree

from gateway.clearing.documents import serialize
from gateway.clearing.swift import (
    SwiftAck,
    SwiftStatus,
    build_swift_002,
    build_swift_ack,
    build_swift_envelope,
)
from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key, sign_enveloped
from gateway.sim.clearing import REJECT_REASONS
from gateway.sim.swift import NAK_REASONS, SwiftSimConfig, SwiftSimulator
from gateway.testing import Broker, running_simulator
from tests.conftest import shared_xsd_dir
from tests.integration.harness import (
    FX_SCREENED,
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)
from tests.integration.test_batches import item_state, items_of, mt101, mt_body, send

FRIDAY_10 = recent_friday_10()
UETR_IN_STATUS = re.compile(rb"<Uetr>([0-9a-f-]{36})</Uetr>")


FX_ON = FX_SCREENED
"""Foreign currency is on as shipped but refused without lists; these tests add the demo list."""


@contextlib.asynccontextmanager
async def running_swift_sim(
    pki: DevPki, broker_url: str, record: Path, **kw: Any
) -> AsyncIterator[SwiftSimulator]:
    """The SWIFT simulator, signing with the dev PKI's clearing-system key (which the
    gateway pins as its ``swift_peer`` too) and pinning the gateway's clearing certificate."""
    sim = SwiftSimulator(
        SwiftSimConfig(
            broker_url=broker_url,
            sign_key=load_signing_key(pki.clearing_system_key, pki.clearing_system_cert),
            gateway_certs=tuple(x509.load_pem_x509_certificates(pki.clearing_cert.read_bytes())),
            record_path=record,
            client_id=f"swift-sim-{record.stem}",
            **kw,
        )
    )
    async with running_simulator(sim):
        yield sim


def records(path: Path) -> dict[str, dict[str, Any]]:
    """The simulator's record of each swift.008, by EndToEndId (the corporate's MsgId)."""
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {str(line["end_to_end_id"]): line for line in lines if "end_to_end_id" in line}


def usd(bic: str, amount: str, **kw: Any) -> Any:
    return payment("", amount, ccy="USD", payee_bic=bic, payee_country="US", **kw)


async def test_swift_payments_settle_with_their_uetr(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    record = tmp_path / "swift.jsonl"
    async with (
        running_swift_sim(
            dev_pki,
            broker.url,
            record,
            nak_amounts=frozenset({Decimal("13.13")}),
            reject_amounts=frozenset({Decimal("14.14")}),
        ) as sim,
        running_gateway(cfg, clock) as gw,
    ):  # fmt: skip
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        cases = {
            # Citibank is not in rma.csv: through our USD correspondent
            "SW-USD": usd("CITIUS33", "250.50", chrg_br="DEBT"),
            # Banque du Lion is in rma.csv: straight to it
            "SW-EUR": payment("", "99.00", ccy="EUR", payee_bic="LIONFRPPXXX", payee_country="FR"),
            "SW-JPY": payment("", "1500", ccy="JPY", payee_bic="MIZUJPJT", payee_country="JP"),
        }
        for msg_id, p in cases.items():
            r = await erp.pay(msg_id, now, p)
            assert (r.ret_code, r.engine, r.state) == ("0000", "SWIFT", "QUEUED"), r.ret_msg
        uetrs = {}
        for msg_id in cases:
            assert await wait_for_state(erp, clock.now(), msg_id, ["SETTLED"]) == "SETTLED"
            st = await erp.status(f"Q-{msg_id}", clock.now(), msg_id)
            found = UETR_IN_STATUS.search(st.raw)
            assert found is not None, st.raw
            uetrs[msg_id] = found.group(1).decode()
        # the NAKed amount: REJECTED with the network's reason, and no swift.002 needed
        nak = await erp.pay("SW-NAK", now, usd("CITIUS33", "13.13"))
        assert (nak.ret_code, nak.engine) == ("0000", "SWIFT")
        assert await wait_for_state(erp, clock.now(), "SW-NAK", ["REJECTED"]) == "REJECTED"
        st = await erp.status("Q-SW-NAK", clock.now(), "SW-NAK")
        assert st.reason in {f"{code} {text}" for code, text in NAK_REASONS}
        # ACKed, then rejected by the receiving bank in its swift.002
        rjct = await erp.pay("SW-RJCT", now, usd("CITIUS33", "14.14"))
        assert rjct.ret_code == "0000"
        assert await wait_for_state(erp, clock.now(), "SW-RJCT", ["REJECTED"]) == "REJECTED"
        st = await erp.status("Q-SW-RJCT", clock.now(), "SW-RJCT")
        assert st.reason is not None
        assert st.reason.split()[0] in {code for code, _ in REJECT_REASONS}
        await erp.close()
    seen = records(record)
    assert sim.stats["invalid"] == 0 and sim.stats["uetr_reused"] == 0
    # one UETR per payment, the one STATUS shows
    assert len(set(sim.uetrs)) == 5
    for msg_id, uetr in uetrs.items():
        assert seen[msg_id]["uetr"] == uetr
        assert seen[msg_id]["sndr"] == "DEMOCNBJ"
        assert re.fullmatch(r"DEMOCNBJ\d{8}\d{10}", seen[msg_id]["msg_id"])
    assert seen["SW-USD"]["rcvr"] == "HUDSUS33"  # the correspondent
    assert seen["SW-EUR"]["rcvr"] == "LIONFRPPXXX"  # the payee's bank itself
    assert seen["SW-JPY"]["rcvr"] == "SUMDJPJT"
    assert (seen["SW-USD"]["amount"], seen["SW-USD"]["ccy"]) == ("250.50", "USD")
    assert (seen["SW-JPY"]["amount"], seen["SW-JPY"]["ccy"]) == ("1500", "JPY")


async def test_without_the_swift_link_other_banks_are_refused(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(
        tmp_path / "gw", dev_pki, broker.url, {**FX_ON, "swift": {"enabled": False}}
    )
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("OFF-1", clock.now(), usd("CITIUS33", "10.00"))
        assert (r.ret_code, r.gw_ref) == ("4001", None)
        assert "SWIFT link" in r.ret_msg
        # our own bank still takes foreign currency on INTRA
        own = await erp.pay("OFF-2", clock.now(), payment("103290000018", "10.00", ccy="USD"))
        assert (own.ret_code, own.engine) == ("0000", "INTRA")
        await erp.close()


def signed_answer(
    key_cert: tuple[Path, Path], msg_tp: str, msg_id: str, document: etree._Element, when: Any
) -> bytes:
    """A swift.ack / swift.002 from the correspondent to us, signed with ``key_cert``."""
    root = build_swift_envelope(msg_tp, msg_id, "HUDSUS33", "DEMOCNBJ", when, when.date(), document)
    sign_enveloped(root, load_signing_key(*key_cert))
    return serialize(root)


async def test_answers_not_signed_by_the_swift_interface_are_dropped(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """No simulator: the test plays the interface.  A swift.002 ACSC signed with a key the
    gateway does not pin as ``swift_peer``, and one that is not XML, change nothing; the
    genuine NAK behind them, on the same topic and so applied after them, rejects."""
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    peer = (dev_pki.clearing_system_key, dev_pki.clearing_system_cert)
    stranger = (dev_pki.response_key, dev_pki.response_cert)  # ours, but not the peer's
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("HOST-1", clock.now(), usd("CITIUS33", "10.00"))
        assert (r.ret_code, r.engine) == ("0000", "SWIFT")
        assert await wait_for_state(erp, clock.now(), "HOST-1", ["SENT"]) == "SENT"
        with sqlite3.connect(cfg.journal_path) as conn:
            ((out_id,),) = conn.execute("SELECT msg_id FROM outbound WHERE msg_tp = 'swift.008'")
        now = clock.now()
        forged = build_swift_002(SwiftStatus("HUDSUS33202612040000000001", now, out_id, "ACSC"))
        nak = build_swift_ack(SwiftAck(out_id, now, "NAK", "T26", "field content not allowed"))
        async with aiomqtt.Client(
            broker.host, broker.port, identifier="swift-tap", protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            for payload in (
                signed_answer(stranger, "swift.002", "HUDSUS33202612040000000001", forged, now),
                b"<not-xml",
                signed_answer(peer, "swift.ack", "HUDSUS33202612040000000002", nak, now),
            ):
                await client.publish("swift/in", payload, qos=1)
        assert await wait_for_state(erp, clock.now(), "HOST-1", ["REJECTED", "SETTLED"]) == (
            "REJECTED"
        )
        st = await erp.status("Q-HOST-1", clock.now(), "HOST-1")
        assert st.reason == "T26 field content not allowed"
        await erp.close()


async def test_the_swift_window_holds_a_currency_past_its_cutoff(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """docs/foreign-currency.md §2: at 14:30 the yen (cutoff 14:00) waits for the next
    opening, the dollar (16:00) goes at once."""
    clock = BusinessClock(FRIDAY_10 + timedelta(hours=4, minutes=30))
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        jpy = payment("", "1500", ccy="JPY", payee_bic="MIZUJPJT", payee_country="JP")
        held = await erp.pay("WIN-JPY", clock.now(), jpy)
        assert (held.ret_code, held.engine, held.state) == ("0000", "SWIFT", "HELD")
        assert b"T09:00:00" in held.raw  # ReleaseAt: 09:00 of the next working day
        sent = await erp.pay("WIN-USD", clock.now(), usd("CITIUS33", "10.00"))
        assert (sent.ret_code, sent.engine, sent.state) == ("0000", "SWIFT", "QUEUED")
        await erp.close()


@pytest.mark.requires_xsd
async def test_swift_008_validates_and_carries_its_settlement_path(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """The simulator checks every swift.008 against the official pacs.008.001.08 schema
    (it NAKs FF01 otherwise); the journaled Documents carry the path of §3."""
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    async with (
        running_swift_sim(dev_pki, broker.url, tmp_path / "s.jsonl", xsd_dir=shared_xsd_dir())
        as sim,
        running_gateway(cfg, clock) as gw,
    ):  # fmt: skip
        erp = await Erp(gw, dev_pki).client()
        cases = {
            "X-USD": usd("CITIUS33", "250.50", purpose="invoice 7"),
            "X-EUR": payment("", "99.00", ccy="EUR", payee_bic="LIONFRPP", payee_country="FR"),
            "X-JPY": payment("", "1500", ccy="JPY", payee_bic="MIZUJPJT", payee_country="JP"),
        }
        for msg_id, p in cases.items():
            assert (await erp.pay(msg_id, clock.now(), p)).ret_code == "0000"
        for msg_id in cases:
            assert await wait_for_state(erp, clock.now(), msg_id, ["SETTLED"]) == "SETTLED"
        await erp.close()
    assert sim.stats["invalid"] == 0
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"}
    docs = {}
    with sqlite3.connect(cfg.journal_path) as conn:
        for (payload,) in conn.execute("SELECT payload FROM outbound WHERE msg_tp = 'swift.008'"):
            root = etree.fromstring(bytes(payload))
            e2e = root.findtext(".//p:PmtId/p:EndToEndId", namespaces=ns)
            docs[e2e] = root
    usd_doc, eur_doc = docs["X-USD"], docs["X-EUR"]
    assert usd_doc.findtext(".//p:SttlmMtd", namespaces=ns) == "INDA"
    assert usd_doc.findtext(".//p:SttlmAcct/p:Id/p:Othr/p:Id", namespaces=ns) == "36070012345001"
    assert usd_doc.findtext(".//p:IntrmyAgt1/p:FinInstnId/p:BICFI", namespaces=ns) == "HUDSUS33"
    assert usd_doc.findtext(".//p:CdtrAgt/p:FinInstnId/p:BICFI", namespaces=ns) == "CITIUS33"
    assert usd_doc.findtext(".//p:Cdtr/p:PstlAdr/p:Ctry", namespaces=ns) == "US"
    assert usd_doc.findtext(".//p:Dbtr/p:PstlAdr/p:Ctry", namespaces=ns) == "CN"
    assert usd_doc.findtext(".//p:ChrgBr", namespaces=ns) == "SHAR"
    assert usd_doc.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns) == "invoice 7"
    assert eur_doc.findtext(".//p:SttlmMtd", namespaces=ns) == "INGA"
    assert eur_doc.find(".//p:IntrmyAgt1", namespaces=ns) is None
    assert eur_doc.findtext(".//p:InstdAgt/p:FinInstnId/p:BICFI", namespaces=ns) == "LIONFRPP"
    assert docs["X-JPY"].findtext(".//p:IntrBkSttlmAmt", namespaces=ns) == "1500"


async def test_an_unanswered_swift_008_is_sent_again_under_its_msgid(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """docs/foreign-currency.md §4: no swift.ack within ``swift.receipt_timeout`` → the
    same bytes again, same MsgId and UETR.  The interface is away at the first send."""
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(
        tmp_path / "gw", dev_pki, broker.url, {**FX_ON, "swift": {"receipt_timeout": 0.5}}
    )
    record = tmp_path / "late.jsonl"
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        assert (await erp.pay("LATE-1", clock.now(), usd("CITIUS33", "10.00"))).ret_code == "0000"
        assert await wait_for_state(erp, clock.now(), "LATE-1", ["SENT"]) == "SENT"
        async with running_swift_sim(dev_pki, broker.url, record) as sim:
            assert await wait_for_state(erp, clock.now(), "LATE-1", ["SETTLED"]) == "SETTLED"
        await erp.close()
    with sqlite3.connect(cfg.journal_path) as conn:
        ((msg_id, attempts),) = conn.execute(
            "SELECT msg_id, attempts FROM outbound WHERE msg_tp = 'swift.008'"
        )
    assert attempts >= 2
    assert list(sim.uetrs.values()) == [msg_id]  # one UETR, under the one MsgId
    assert sim.stats["uetr_reused"] == 0


async def test_an_mt101_routes_each_foreign_currency_item_on_its_own(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """A batch item in a foreign currency is routed by its BIC (57A): another bank → SWIFT,
    our own BIC → INTRA to the head office; a BIC-less foreign item to another bank is
    refused on its own (1003), the others go."""
    to_citi = (
        ":21:TX-1\r\n:32B:USD250,50\r\n:57A:CITIUS33\r\n"
        ":59:/6217000011112222\r\nBETA LTD\r\nUS/NEW YORK\r\n:71A:OUR\r\n"
    )
    to_us = ":21:TX-2\r\n:32B:JPY1500,\r\n:57A:DEMOCNBJ\r\n:59:/6217000011112222\r\nGAMMA LTD\r\n:71A:SHA\r\n"
    no_bic = ":21:TX-3\r\n:32B:EUR10,\r\n:57D://CN104100000004\r\n:59:/6217000011112222\r\nX\r\n:71A:SHA\r\n"
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    async with (
        running_swift_sim(dev_pki, broker.url, tmp_path / "mt.jsonl") as sim,
        running_clearing_sim(dev_pki, broker.url, tmp_path / "clr.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):  # fmt: skip
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        body = mt_body(mt101(to_citi, to_us, no_bic))
        r = await send(erp, "MT101", "MT-FX", now, body)
        assert (r.ret_code, r.ret_msg) == ("0000", "accepted: 3 items, 1 rejected"), r.ret_msg
        assert [(i.seq_no, i.state, i.engine, i.reason) for i in items_of(r)] == [
            (1, "QUEUED", "SWIFT", None),
            (2, "QUEUED", "INTRA", None),
            (3, "REJECTED", None, "1003"),
        ]
        for seq in (1, 2):
            assert (await item_state(erp, now, "MT-FX", seq, ["SETTLED"])).state == "SETTLED"
        await erp.close()
    (line,) = [x for x in records(tmp_path / "mt.jsonl").values()]
    assert (line["amount"], line["ccy"], line["rcvr"]) == ("250.50", "USD", "HUDSUS33")
    assert len(sim.uetrs) == 1
    with sqlite3.connect(cfg.journal_path) as conn:
        rows = conn.execute(
            "SELECT seq_no, payee_bic, payee_country, chrg_br FROM items ORDER BY seq_no"
        ).fetchall()
    assert rows[:2] == [(1, "CITIUS33", "US", "DEBT"), (2, "DEMOCNBJ", "CN", "SHAR")]
