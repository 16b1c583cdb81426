"""The ClrMsg envelope, the ccms.990 receipt, MsgIds and topics (clearing.md §2-§4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

import gateway.clearing.envelope as envelope_module
from gateway.clearing.documents import (
    NS_CLR,
    NS_PACS008,
    Receipt,
    build_envelope,
    build_pacs008,
    build_receipt,
    engine_of_topic,
    in_topic,
    out_msg_id,
    out_topic,
    parse_envelope,
    parse_message,
    parse_pacs008,
    parse_receipt,
    serialize,
)
from gateway.errors import GatewayError, RetCode
from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.keys.xmldsig import SigningKey, load_signing_key, sign_enveloped, verify_pinned
from gateway.model import Engine
from tests.unit.clearing.pacs_samples import (
    CREATED,
    OUR_PARTICIPANT,
    PEER_PARTICIPANT,
    WORK_DATE,
    item,
)

MSG_ID = out_msg_id(OUR_PARTICIPANT, WORK_DATE, 42)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return generate_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def gateway_key(pki: DevPki) -> SigningKey:
    return load_signing_key(pki.clearing_key, pki.clearing_cert)


def envelope(msg_tp: str = "hvps.111") -> etree._Element:
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, [item()], OUR_PARTICIPANT)
    return build_envelope(
        msg_tp, MSG_ID, OUR_PARTICIPANT, PEER_PARTICIPANT, CREATED, WORK_DATE, doc
    )


# ---------------------------------------------------------------------- ids, topics


def test_out_msg_id_is_participant_date_and_ten_digit_sequence() -> None:
    assert MSG_ID == "103100000019202611270000000042"
    assert len(out_msg_id(OUR_PARTICIPANT, WORK_DATE, 9_999_999_999)) == 30


@pytest.mark.parametrize(
    ("participant", "seq"),
    [("10310000001", 1), ("10310000001X", 1), (OUR_PARTICIPANT, -1), (OUR_PARTICIPANT, 10**10)],
)
def test_out_msg_id_refuses_bad_input(participant: str, seq: int) -> None:
    with pytest.raises(ValueError, match=r"participant|sequence"):
        out_msg_id(participant, WORK_DATE, seq)


def test_topics_follow_the_table() -> None:
    assert out_topic("clearing", Engine.HVPS) == "clearing/hvps/out"
    assert in_topic("clearing", Engine.BEPS) == "clearing/beps/in"
    assert out_topic("bank/test", Engine.INTRA) == "bank/test/intra/out"
    assert engine_of_topic("clearing", "clearing/intra/in") is Engine.INTRA
    assert engine_of_topic("bank/test", "bank/test/hvps/out") is Engine.HVPS
    assert engine_of_topic("clearing", "clearing/other/in") is None
    assert engine_of_topic("clearing", "other/hvps/in") is None
    assert engine_of_topic("clearing", "clearing/hvps/sideways") is None


# ---------------------------------------------------------------------- envelope


def test_envelope_round_trips_through_bytes() -> None:
    raw = serialize(envelope())
    assert raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "上海示例贸易有限公司".encode() in raw
    env = parse_envelope(parse_message(raw))
    assert (env.msg_tp, env.msg_id, env.sndr, env.rcvr) == (
        "hvps.111",
        MSG_ID,
        OUR_PARTICIPANT,
        PEER_PARTICIPANT,
    )
    assert env.created == CREATED
    assert env.work_date == WORK_DATE
    assert env.document.tag == f"{{{NS_PACS008}}}Document"
    assert parse_pacs008(env.document)[0].msg_id == MSG_ID


def test_envelope_header_matches_the_spec_example() -> None:
    raw = serialize(envelope()).decode()
    assert (
        '<ClrMsg xmlns="urn:clearing:1"><Hdr><MsgTp>hvps.111</MsgTp>'
        "<MsgId>103100000019202611270000000042</MsgId><Sndr>103100000019</Sndr>"
        "<Rcvr>104100000004</Rcvr><CreDtTm>2026-11-27T10:00:00.120+08:00</CreDtTm>"
        "<WorkDt>2026-11-27</WorkDt></Hdr>"
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">'
    ) in raw


def test_signed_envelope_verifies_and_reads_back(pki: DevPki, gateway_key: SigningKey) -> None:
    root = envelope()
    sign_enveloped(root, gateway_key)
    received = parse_message(serialize(root))
    verified = verify_pinned(received, gateway_key.chain)
    env = parse_envelope(verified.signed_root)
    assert env.msg_id == MSG_ID
    assert parse_pacs008(env.document)[1][0].creditor_name == "北京某某科技股份有限公司"


def test_tampered_envelope_is_refused(gateway_key: SigningKey) -> None:
    root = envelope()
    sign_enveloped(root, gateway_key)
    raw = serialize(root).replace(b">49999.99<", b">94999.99<")
    with pytest.raises(GatewayError) as info:
        verify_pinned(parse_message(raw), gateway_key.chain)
    assert info.value.code is RetCode.SIGNATURE_INVALID


def test_envelope_signed_by_another_key_is_refused(pki: DevPki, gateway_key: SigningKey) -> None:
    other = load_signing_key(pki.clearing_system_key, pki.clearing_system_cert)
    root = envelope()
    sign_enveloped(root, other)
    with pytest.raises(GatewayError) as info:
        verify_pinned(parse_message(serialize(root)), gateway_key.chain)
    assert info.value.code is RetCode.CERT_UNTRUSTED


def _hdr_xml(fields: str, extra: str = "") -> bytes:
    return (
        f'<ClrMsg xmlns="{NS_CLR}"><Hdr>{fields}</Hdr><Rcpt><OrgnlMsgId>A</OrgnlMsgId></Rcpt>'
        f"{extra}</ClrMsg>"
    ).encode()


GOOD = {
    "MsgTp": "ccms.990",
    "MsgId": "000000000000202611270000000001",
    "Sndr": "000000000000",
    "Rcvr": "103100000019",
    "CreDtTm": "2026-11-27T10:00:00.120+08:00",
    "WorkDt": "2026-11-27",
}


def _fields(**override: str | None) -> str:
    values = {**GOOD, **override}
    return "".join(f"<{k}>{v}</{k}>" for k, v in values.items() if v is not None)


def test_well_formed_header_parses() -> None:
    env = parse_envelope(parse_message(_hdr_xml(_fields())))
    assert env.msg_tp == "ccms.990"
    assert env.created.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_hdr_xml(_fields(MsgId=None)), "Hdr must hold"),
        (_hdr_xml(_fields(MsgId="x" * 36)), "MsgId"),
        (_hdr_xml(_fields(MsgId="a b")), "MsgId"),
        (_hdr_xml(_fields(MsgId="")), "Hdr/MsgId is empty"),
        (_hdr_xml(_fields(MsgTp="HVPS 111")), "MsgTp"),
        (_hdr_xml(_fields(Sndr="1031000000190")), "Sndr"),
        (_hdr_xml(_fields(Rcvr="abc")), "Rcvr"),
        (_hdr_xml(_fields(CreDtTm="2026-11-27T10:00:00")), "offset"),
        (_hdr_xml(_fields(CreDtTm="yesterday")), "CreDtTm"),
        (_hdr_xml(_fields(WorkDt="2026-11-31")), "WorkDt"),
        (_hdr_xml(_fields(WorkDt="20261127")), "WorkDt"),
        (_hdr_xml(_fields(), extra="<Second/>"), "exactly one Document"),
        (_hdr_xml(_fields() + "<Extra/>"), "Hdr must hold"),
        (_hdr_xml(_fields(Sndr="<b>000000000000</b>")), "child elements"),
        (b'<ClrMsg xmlns="urn:other"><Hdr/></ClrMsg>', "not ClrMsg"),
        (f'<ClrMsg xmlns="{NS_CLR}"><Hdr>{_fields()}</Hdr></ClrMsg>'.encode(), "exactly one"),
        (_hdr_xml(_fields(), extra="<!-- hidden -->"), "comment"),
    ],
)
def test_malformed_envelopes_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_envelope(parse_message(raw))


def test_build_envelope_refuses_what_parse_would_refuse() -> None:
    doc = build_receipt("X", CREATED)
    with pytest.raises(ValueError, match="Sndr"):
        build_envelope("ccms.990", "M1", "bank", OUR_PARTICIPANT, CREATED, WORK_DATE, doc)
    with pytest.raises(ValueError, match="offset"):
        build_envelope(
            "ccms.990", "M1", OUR_PARTICIPANT, "011234", datetime(2026, 11, 27, 10), WORK_DATE, doc
        )


# ---------------------------------------------------------------------- hardened parse


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "DOCTYPE"),
        (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>', "DOCTYPE"),
        (b"<x><y></x>", "well-formed"),
        (b"", "well-formed"),
        ("<?xml version='1.0' encoding='ISO-8859-1'?><x>é</x>".encode("latin-1"), "UTF-8"),
    ],
)
def test_parse_message_refuses_hostile_or_ambiguous_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_message(raw)


def test_parse_message_refuses_oversized_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope_module, "MAX_MESSAGE_BYTES", 100)
    with pytest.raises(ValueError, match="too large"):
        parse_message(b"<x>" + b"a" * 100 + b"</x>")


# ---------------------------------------------------------------------- ccms.990


def test_receipt_round_trips_inside_a_signed_envelope(pki: DevPki) -> None:
    system_key = load_signing_key(pki.clearing_system_key, pki.clearing_system_cert)
    received = datetime(2026, 11, 27, 2, 0, 1, 5000, tzinfo=UTC)
    root = build_envelope(
        "ccms.990",
        "000000000000202611270000000001",
        "000000000000",
        OUR_PARTICIPANT,
        CREATED,
        WORK_DATE,
        build_receipt(MSG_ID, received),
    )
    sign_enveloped(root, system_key)
    raw = serialize(root)
    assert b"<Rcpt><OrgnlMsgId>103100000019202611270000000042</OrgnlMsgId>" in raw
    env = parse_envelope(verify_pinned(parse_message(raw), system_key.chain).signed_root)
    assert parse_receipt(env.document) == Receipt(MSG_ID, received)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (f'<Other xmlns="{NS_CLR}"/>', "not Rcpt"),
        (
            f'<Rcpt xmlns="{NS_CLR}"><RcvdDtTm>2026-11-27T10:00:00+08:00</RcvdDtTm></Rcpt>',
            "OrgnlMsgId missing",
        ),
        (f'<Rcpt xmlns="{NS_CLR}"><OrgnlMsgId>A</OrgnlMsgId></Rcpt>', "RcvdDtTm missing"),
        (
            f'<Rcpt xmlns="{NS_CLR}"><OrgnlMsgId>A</OrgnlMsgId>'
            "<RcvdDtTm>2026-11-27T10:00:00</RcvdDtTm></Rcpt>",
            "offset",
        ),
        (
            f'<Rcpt xmlns="{NS_CLR}"><OrgnlMsgId>{"A" * 36}</OrgnlMsgId>'
            "<RcvdDtTm>2026-11-27T10:00:00Z</RcvdDtTm></Rcpt>",
            "too long",
        ),
    ],
)
def test_malformed_receipts_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_receipt(etree.fromstring(raw.encode()))
