"""The SWIFT link's Documents (docs/foreign-currency.md §3-§4).

Built swift.008 and swift.002 Documents validate against the official schemas
(when the folder is present); the direct and the correspondent paths put
the agents where §3 says; amounts carry the currency's own decimals; and the
readers refuse what a careless peer might send, naming the field.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.clearing.pacs import NS_PACS002, NS_PACS008
from gateway.clearing.swift import (
    IncomingSwiftCredit,
    SwiftAck,
    SwiftDocumentError,
    SwiftPayment,
    SwiftStatus,
    build_swift_002,
    build_swift_008,
    build_swift_ack,
    build_swift_envelope,
    format_swift_amount,
    is_uetr,
    new_uetr,
    parse_swift_envelope,
    read_swift_002,
    read_swift_008,
    read_swift_ack,
    swift_msg_id,
)
from gateway.routing.settlement_paths import SettlementMethod, SettlementPath
from tests.unit.clearing.pacs_samples import (
    CREATED,
    WORK_DATE,
    XML_TEXT,
    assert_valid,
    set_text,
    xpath_text,
)

OUR_BIC = "DEMOCNBJXXX"
PAYEE_BIC = "DEUTDEFFXXX"
CORRESPONDENT = "CHASUS33XXX"
NOSTRO = "001-1234567"
P8 = {"p": NS_PACS008}
P2 = {"p": NS_PACS002}

DIRECT = SettlementPath(SettlementMethod.INGA, OUR_BIC, PAYEE_BIC, PAYEE_BIC, None, None)
VIA_CORRESPONDENT = SettlementPath(
    SettlementMethod.INDA, OUR_BIC, CORRESPONDENT, PAYEE_BIC, CORRESPONDENT, NOSTRO
)


def payment(**changes: object) -> SwiftPayment:
    base = SwiftPayment(
        msg_id=swift_msg_id(OUR_BIC, WORK_DATE, 42),
        created=CREATED,
        settle_date=WORK_DATE,
        end_to_end_id="MSG0001-1",
        tx_id="GW2026112700000042",
        uetr="3f2b1c9e-6a4d-4b8e-9f1a-2c3d4e5f6a7b",
        amount=Decimal("12500.50"),
        ccy="USD",
        minor_units=2,
        debtor_name="上海示例贸易有限公司",
        debtor_acct="31001234567890",
        creditor_name="Acme & <Sons> GmbH",
        creditor_acct="DE89370400440532013000",
        creditor_country="DE",
        charge_bearer="SHAR",
        purpose="invoice 2026-118 货款",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def texts(doc: etree._Element, path: str, ns: dict[str, str] = P8) -> list[str]:
    found = doc.xpath(path, namespaces=ns)
    assert isinstance(found, list)
    return [str(e.text if isinstance(e, etree._Element) else e) for e in found]


def first(doc: etree._Element, path: str) -> etree._Element:
    found = doc.xpath(path, namespaces=P8)
    assert isinstance(found, list)
    assert isinstance(found[0], etree._Element)
    return found[0]


# ------------------------------------------------------------------ swift.008 out


@pytest.mark.requires_xsd
@pytest.mark.parametrize("path", [DIRECT, VIA_CORRESPONDENT], ids=["direct", "correspondent"])
def test_swift_008_validates_against_the_official_schema(path: SettlementPath) -> None:
    assert_valid(build_swift_008(payment(), path), "pacs.008.001.08")


def test_direct_path_goes_straight_to_the_payee_bank() -> None:
    doc = build_swift_008(payment(), DIRECT)
    tx = "/p:Document/p:FIToFICstmrCdtTrf/p:CdtTrfTxInf"
    assert texts(doc, "//p:GrpHdr/p:SttlmInf/p:SttlmMtd") == ["INGA"]
    assert texts(doc, "//p:SttlmAcct") == []
    assert texts(doc, "//p:IntrmyAgt1") == []
    assert texts(doc, f"{tx}/p:InstgAgt/p:FinInstnId/p:BICFI") == [OUR_BIC]
    assert texts(doc, f"{tx}/p:DbtrAgt/p:FinInstnId/p:BICFI") == [OUR_BIC]
    assert texts(doc, f"{tx}/p:InstdAgt/p:FinInstnId/p:BICFI") == [PAYEE_BIC]
    assert texts(doc, f"{tx}/p:CdtrAgt/p:FinInstnId/p:BICFI") == [PAYEE_BIC]


def test_correspondent_path_settles_on_our_nostro_account() -> None:
    doc = build_swift_008(payment(), VIA_CORRESPONDENT)
    tx = "/p:Document/p:FIToFICstmrCdtTrf/p:CdtTrfTxInf"
    assert texts(doc, "//p:GrpHdr/p:SttlmInf/p:SttlmMtd") == ["INDA"]
    assert texts(doc, "//p:GrpHdr/p:SttlmInf/p:SttlmAcct/p:Id/p:Othr/p:Id") == [NOSTRO]
    assert texts(doc, f"{tx}/p:InstdAgt/p:FinInstnId/p:BICFI") == [CORRESPONDENT]
    assert texts(doc, f"{tx}/p:IntrmyAgt1/p:FinInstnId/p:BICFI") == [CORRESPONDENT]
    assert texts(doc, f"{tx}/p:CdtrAgt/p:FinInstnId/p:BICFI") == [PAYEE_BIC]
    assert texts(doc, f"{tx}/p:InstgAgt/p:FinInstnId/p:BICFI") == [OUR_BIC]


def test_swift_008_carries_one_transaction_with_every_field_of_the_mapping() -> None:
    p = payment(instr_id="INSTR-1", charge_bearer="DEBT")
    doc = build_swift_008(p, DIRECT)
    tx = "/p:Document/p:FIToFICstmrCdtTrf/p:CdtTrfTxInf"
    assert texts(doc, "//p:GrpHdr/p:MsgId") == [p.msg_id] == ["DEMOCNBJ202611270000000042"]
    assert texts(doc, "//p:GrpHdr/p:NbOfTxs") == ["1"]
    assert len(texts(doc, tx)) == 1
    assert texts(doc, f"{tx}/p:PmtId/*") == ["INSTR-1", p.end_to_end_id, p.tx_id, p.uetr]
    assert xpath_text(doc, f"{tx}/p:IntrBkSttlmAmt", P8) == "12500.50"
    assert xpath_text(doc, f"{tx}/p:IntrBkSttlmAmt/@Ccy", P8) == "USD"
    assert texts(doc, f"{tx}/p:IntrBkSttlmDt") == [WORK_DATE.isoformat()]
    assert texts(doc, f"{tx}/p:ChrgBr") == ["DEBT"]
    assert texts(doc, f"{tx}/p:Dbtr/p:Nm") == [p.debtor_name]
    assert texts(doc, f"{tx}/p:Dbtr/p:PstlAdr/p:Ctry") == ["CN"]
    assert texts(doc, f"{tx}/p:DbtrAcct/p:Id/p:Othr/p:Id") == [p.debtor_acct]
    assert texts(doc, f"{tx}/p:Cdtr/p:Nm") == [p.creditor_name]
    assert texts(doc, f"{tx}/p:Cdtr/p:PstlAdr/p:Ctry") == ["DE"]
    assert texts(doc, f"{tx}/p:CdtrAcct/p:Id/p:Othr/p:Id") == [p.creditor_acct]
    assert texts(doc, f"{tx}/p:RmtInf/p:Ustrd") == [p.purpose]


@pytest.mark.requires_xsd
def test_jpy_is_written_without_decimals_and_validates() -> None:
    doc = build_swift_008(payment(amount=Decimal("1500"), ccy="JPY", minor_units=0), DIRECT)
    assert xpath_text(doc, "//p:CdtTrfTxInf/p:IntrBkSttlmAmt", P8) == "1500"
    assert_valid(doc, "pacs.008.001.08")


def test_amounts_keep_the_currency_decimals_and_never_round() -> None:
    assert format_swift_amount(Decimal("1500"), 0) == "1500"
    assert format_swift_amount(Decimal("1500.5"), 2) == "1500.50"
    assert format_swift_amount(Decimal("1500.00"), 0) == "1500"  # same value, yen written plain
    with pytest.raises(ValueError, match="more than 0 decimals"):
        format_swift_amount(Decimal("1500.5"), 0)
    with pytest.raises(ValueError, match="more than 2 decimals"):
        format_swift_amount(Decimal("1.005"), 2)
    for bad in (Decimal(0), Decimal(-1), Decimal("NaN")):
        with pytest.raises(ValueError, match="positive"):
            format_swift_amount(bad, 2)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"uetr": "not-a-uuid"}, "UETR"),
        ({"uetr": str(uuid.uuid1())}, "UETR"),  # a UUID, but not version 4
        ({"ccy": "usd"}, "Ccy"),
        ({"charge_bearer": "SLEV"}, "ChrgBr"),
        ({"creditor_country": "Germany"}, "Cdtr/PstlAdr/Ctry"),
        ({"end_to_end_id": "E" * 36}, "EndToEndId"),
        ({"creditor_name": "x" * 141}, "Cdtr/Nm"),
        ({"creditor_acct": "1" * 35}, "CdtrAcct"),
        ({"purpose": "line\x01break"}, "RmtInf/Ustrd"),
        ({"debtor_name": "   "}, "Dbtr/Nm"),
    ],
)
def test_builder_refuses_what_would_make_an_invalid_document(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        build_swift_008(payment(**changes), DIRECT)


def test_builder_refuses_a_path_that_mixes_the_two_methods() -> None:
    half = replace(DIRECT, settlement_account=NOSTRO)
    with pytest.raises(ValueError, match="INGA"):
        build_swift_008(payment(), half)
    bare = replace(VIA_CORRESPONDENT, intermediary_agent=None)
    with pytest.raises(ValueError, match="INDA"):
        build_swift_008(payment(), bare)
    bad_bic = replace(DIRECT, creditor_agent="DEUTDEFF1")
    with pytest.raises(ValueError, match="CdtrAgt/BICFI"):
        build_swift_008(payment(), bad_bic)


NAMES = XML_TEXT.filter(lambda text: text.strip() != "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    units=st.integers(min_value=0, max_value=3),
    minor=st.integers(min_value=1, max_value=10**12),
    debtor=NAMES,
    creditor=NAMES,
    purpose=st.none() | NAMES,
    direct=st.booleans(),
)
def test_any_payment_reads_back_exactly(
    units: int, minor: int, debtor: str, creditor: str, purpose: str | None, direct: bool
) -> None:
    amount = Decimal(minor).scaleb(-units)
    p = payment(
        amount=amount,
        minor_units=units,
        debtor_name=debtor,
        creditor_name=creditor,
        purpose=purpose,
    )
    doc = build_swift_008(p, DIRECT if direct else VIA_CORRESPONDENT)
    credit = read_swift_008(etree.fromstring(etree.tostring(doc)))
    assert (credit.amount, credit.debtor_name, credit.creditor_name) == (amount, debtor, creditor)
    assert credit.purpose == purpose
    assert credit.instructed_agent == (PAYEE_BIC if direct else CORRESPONDENT)


def test_uetr_and_msg_id() -> None:
    uetrs = {new_uetr() for _ in range(100)}
    assert len(uetrs) == 100
    assert all(is_uetr(u) for u in uetrs)
    assert swift_msg_id("DEMOCNBJ", date(2026, 1, 2), 7) == "DEMOCNBJ202601020000000007"
    assert len(swift_msg_id(OUR_BIC, date(2026, 1, 2), 10**10 - 1)) == 26
    with pytest.raises(ValueError, match="BIC"):
        swift_msg_id("DEMO", date(2026, 1, 2), 1)
    with pytest.raises(ValueError, match="sequence"):
        swift_msg_id(OUR_BIC, date(2026, 1, 2), 10**10)


# ------------------------------------------------------------------ envelope


def test_envelope_carries_bics_and_reads_back() -> None:
    doc = build_swift_008(payment(), DIRECT)
    msg_id = payment().msg_id
    root = build_swift_envelope("swift.008", msg_id, OUR_BIC, PAYEE_BIC, CREATED, WORK_DATE, doc)
    env = parse_swift_envelope(etree.fromstring(etree.tostring(root)))
    assert (env.msg_tp, env.msg_id, env.sndr, env.rcvr) == ("swift.008", msg_id, OUR_BIC, PAYEE_BIC)
    assert env.work_date == WORK_DATE
    with pytest.raises(ValueError, match="Sndr must be a BIC"):
        build_swift_envelope(
            "swift.008", msg_id, "103100000019", PAYEE_BIC, CREATED, WORK_DATE, doc
        )
    hdr = root[0]
    hdr[3].text = "104100000004"
    with pytest.raises(SwiftDocumentError, match="Rcvr must be a BIC"):
        parse_swift_envelope(root)


# ------------------------------------------------------------------ incoming swift.008


def test_incoming_credit_reads_back_what_was_built() -> None:
    p = payment(amount=Decimal("1500"), ccy="JPY", minor_units=0)
    credit = read_swift_008(build_swift_008(p, VIA_CORRESPONDENT))
    assert credit == IncomingSwiftCredit(
        msg_id=p.msg_id,
        uetr=p.uetr,
        end_to_end_id=p.end_to_end_id,
        tx_id=p.tx_id,
        amount=Decimal("1500"),
        ccy="JPY",
        settle_date=WORK_DATE,
        sending_bic=OUR_BIC,
        instructed_agent=CORRESPONDENT,
        debtor_agent=OUR_BIC,
        creditor_agent=PAYEE_BIC,
        debtor_name=p.debtor_name,
        debtor_acct=p.debtor_acct,
        debtor_country="CN",
        creditor_name=p.creditor_name,
        creditor_acct=p.creditor_acct,
        creditor_country="DE",
        purpose=p.purpose,
    )


TX = "//p:CdtTrfTxInf"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (f"{TX}/p:PmtId/p:UETR", None, "PmtId/UETR missing"),
        (f"{TX}/p:PmtId/p:UETR", "3F2B1C9E-6A4D-4B8E-9F1A-2C3D4E5F6A7B", "PmtId/UETR"),
        (f"{TX}/p:IntrBkSttlmAmt", "-5", "IntrBkSttlmAmt"),
        (f"{TX}/p:IntrBkSttlmAmt", "1e3", "IntrBkSttlmAmt"),
        (f"{TX}/p:IntrBkSttlmAmt", "0", "IntrBkSttlmAmt must be positive"),
        (f"{TX}/p:CdtrAcct/p:Id/p:Othr/p:Id", None, "CdtrAcct/Id/Othr/Id missing"),
        (f"{TX}/p:Cdtr/p:Nm", None, "Cdtr/Nm missing"),
        (f"{TX}/p:Cdtr/p:Nm", "   ", "Cdtr/Nm is empty"),
        (f"{TX}/p:InstgAgt/p:FinInstnId/p:BICFI", "12345678", "InstgAgt/FinInstnId/BICFI"),
        (f"{TX}/p:Cdtr/p:PstlAdr/p:Ctry", "deu", "Cdtr/PstlAdr/Ctry"),
        ("//p:GrpHdr/p:NbOfTxs", "2", "NbOfTxs must be 1"),
        ("//p:GrpHdr/p:SttlmInf/p:SttlmMtd", "XXXX", "SttlmMtd"),
        (f"{TX}/p:PmtId/p:EndToEndId", "E" * 36, "PmtId/EndToEndId longer"),
        (f"{TX}/p:IntrBkSttlmDt", "27.11.2026", "IntrBkSttlmDt"),
    ],
)
def test_incoming_credit_refuses_a_careless_document_naming_the_field(
    path: str, value: str | None, field: str
) -> None:
    doc = build_swift_008(payment(), DIRECT)
    set_text(doc, path, P8, value)
    with pytest.raises(SwiftDocumentError, match=field):
        read_swift_008(doc)


def test_incoming_credit_refuses_two_transactions_and_foreign_documents() -> None:
    doc = build_swift_008(payment(), DIRECT)
    body = doc[0]
    body.append(copy.deepcopy(body[1]))
    with pytest.raises(SwiftDocumentError, match="exactly one CdtTrfTxInf"):
        read_swift_008(doc)
    status = build_swift_002(SwiftStatus("A1", CREATED, "M1", "ACSC"))
    with pytest.raises(SwiftDocumentError, match=r"not pacs\.008"):
        read_swift_008(status)
    doc = build_swift_008(payment(), DIRECT)
    bad = first(doc, f"{TX}/p:IntrBkSttlmAmt")
    bad.set("Ccy", "US$")
    with pytest.raises(SwiftDocumentError, match="Ccy"):
        read_swift_008(doc)


def test_incoming_credit_refuses_a_nested_element_where_a_name_belongs() -> None:
    doc = build_swift_008(payment(), DIRECT)
    name = first(doc, f"{TX}/p:Cdtr/p:Nm")
    etree.SubElement(name, f"{{{NS_PACS008}}}Nm").text = "inner"
    with pytest.raises(SwiftDocumentError, match="Cdtr/Nm must not have child elements"):
        read_swift_008(doc)


# ------------------------------------------------------------------ swift.ack


def test_ack_and_nak_read_back() -> None:
    ack = SwiftAck("DEMOCNBJ202611270000000042", CREATED, "ACK")
    assert read_swift_ack(build_swift_ack(ack)) == ack
    assert ack.accepted
    nak = SwiftAck("DEMOCNBJ202611270000000042", CREATED, "NAK", "T26", "field 59 not allowed")
    assert read_swift_ack(build_swift_ack(nak)) == nak
    short = replace(nak, reason_text=None)
    assert read_swift_ack(build_swift_ack(short)) == short
    assert not short.accepted


def _rcpt(*fields: tuple[str, str]) -> etree._Element:
    root = etree.fromstring(b'<Rcpt xmlns="urn:clearing:1"/>')
    for name, text in fields:
        etree.SubElement(root, f"{{urn:clearing:1}}{name}").text = text
    return root


ORG = ("OrgnlMsgId", "DEMOCNBJ202611270000000042")
RCVD = ("RcvdDtTm", "2026-11-27T10:00:01.000+08:00")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ((ORG, RCVD), "Rcpt/Sts missing"),
        ((ORG, RCVD, ("Sts", "OK")), "Rcpt/Sts must be ACK or NAK"),
        ((ORG, RCVD, ("Sts", "NAK")), "Rcpt/Rsn missing"),
        ((ORG, RCVD, ("Sts", "NAK"), ("Rsn", "t26")), "Rcpt/Rsn must be"),
        ((ORG, RCVD, ("Sts", "NAK"), ("Rsn", "TOOLONG")), "Rcpt/Rsn must be"),
        ((ORG, RCVD, ("Sts", "ACK"), ("Rsn", "T26")), "an ACK carries no Rsn"),
        ((ORG, ("Sts", "ACK"), RCVD), "Rcpt/RcvdDtTm missing or out of order"),
        ((RCVD, ("Sts", "ACK")), "Rcpt/OrgnlMsgId missing"),
        ((ORG, RCVD, ("Sts", "ACK"), ("Sts", "ACK")), "Rcpt/Sts repeated"),
        ((ORG, RCVD, ("Sts", "ACK"), ("Extra", "1")), "Rcpt/Extra: unknown element"),
        ((ORG, ("RcvdDtTm", "2026-11-27T10:00:01"), ("Sts", "ACK")), "RcvdDtTm has no UTC offset"),
        ((("OrgnlMsgId", "A" * 36), RCVD, ("Sts", "ACK")), "Rcpt/OrgnlMsgId"),
        (
            (ORG, RCVD, ("Sts", "NAK"), ("Rsn", "T26"), ("AddtlInf", "x" * 141)),
            "Rcpt/AddtlInf",
        ),
    ],
)
def test_ack_reader_refuses_a_careless_receipt_naming_the_field(
    fields: tuple[tuple[str, str], ...], field: str
) -> None:
    with pytest.raises(SwiftDocumentError, match=field):
        read_swift_ack(_rcpt(*fields))


def test_ack_reader_refuses_other_roots_and_stray_content() -> None:
    with pytest.raises(SwiftDocumentError, match="not Rcpt"):
        read_swift_ack(etree.fromstring(b'<Rply xmlns="urn:clearing:1"/>'))
    doc = _rcpt(ORG, RCVD, ("Sts", "ACK"))
    doc[2].set("x", "1")
    with pytest.raises(SwiftDocumentError, match="Rcpt/Sts: attributes"):
        read_swift_ack(doc)
    doc = _rcpt(ORG, RCVD, ("Sts", "ACK"))
    doc.append(etree.Comment("hi"))
    with pytest.raises(SwiftDocumentError, match="comment"):
        read_swift_ack(doc)


def test_ack_builder_refuses_a_nak_without_reason() -> None:
    with pytest.raises(ValueError, match="NAK needs Rsn"):
        build_swift_ack(SwiftAck("M1", CREATED, "NAK"))
    with pytest.raises(ValueError, match="ACK carries no Rsn"):
        build_swift_ack(SwiftAck("M1", CREATED, "ACK", "T26"))


# ------------------------------------------------------------------ swift.002


def status(**changes: object) -> SwiftStatus:
    base = SwiftStatus(
        msg_id="DEUTDEFF202611270000000001",
        created=CREATED,
        orgnl_msg_id="DEMOCNBJ202611270000000042",
        status="ACSC",
        orgnl_uetr="3f2b1c9e-6a4d-4b8e-9f1a-2c3d4e5f6a7b",
        orgnl_end_to_end_id="MSG0001-1",
        orgnl_tx_id="GW2026112700000042",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.requires_xsd
@pytest.mark.parametrize(
    "changes",
    [{}, {"status": "RJCT", "reason_code": "AC01", "reason_text": "x" * 200}, {"orgnl_uetr": None}],
    ids=["acsc", "rjct", "no-uetr"],
)
def test_swift_002_validates_against_the_official_schema(changes: dict[str, object]) -> None:
    assert_valid(build_swift_002(status(**changes)), "pacs.002.001.10")


def test_swift_002_reads_back() -> None:
    acsc = status()
    assert read_swift_002(build_swift_002(acsc)) == acsc
    rjct = status(status="RJCT", reason_code="AC04", reason_text="closed account number")
    assert read_swift_002(build_swift_002(rjct)) == rjct
    bare = status(orgnl_uetr=None, orgnl_end_to_end_id=None)
    assert read_swift_002(build_swift_002(bare)) == bare


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("//p:TxInfAndSts/p:TxSts", "ACSP", "TxSts must be ACSC or RJCT"),
        ("//p:TxInfAndSts/p:TxSts", None, "TxSts missing"),
        ("//p:OrgnlGrpInfAndSts/p:OrgnlMsgId", None, "OrgnlMsgId missing"),
        ("//p:OrgnlGrpInfAndSts/p:OrgnlMsgId", "A" * 36, "OrgnlMsgId"),
        ("//p:TxInfAndSts/p:OrgnlUETR", "1234", "OrgnlUETR is not a UUID v4"),
        ("//p:GrpHdr/p:CreDtTm", "yesterday", "GrpHdr/CreDtTm"),
        ("//p:StsRsnInf/p:Rsn/p:Cd", None, "an RJCT needs a reason code"),
        ("//p:StsRsnInf/p:Rsn/p:Cd", "ac01", "Rsn/Cd must be"),
    ],
)
def test_swift_002_reader_refuses_a_careless_report_naming_the_field(
    path: str, value: str | None, field: str
) -> None:
    doc = build_swift_002(status(status="RJCT", reason_code="AC01"))
    set_text(doc, path, P2, value)
    with pytest.raises(SwiftDocumentError, match=field):
        read_swift_002(doc)


def test_swift_002_reader_wants_exactly_one_payment() -> None:
    doc = build_swift_002(status())
    body = doc[0]
    body.append(copy.deepcopy(body[2]))
    with pytest.raises(SwiftDocumentError, match="exactly one TxInfAndSts"):
        read_swift_002(doc)
    doc = build_swift_002(status())
    doc[0].remove(doc[0][2])
    with pytest.raises(SwiftDocumentError, match="exactly one TxInfAndSts"):
        read_swift_002(doc)
    with pytest.raises(SwiftDocumentError, match=r"not pacs\.002"):
        read_swift_002(build_swift_008(payment(), DIRECT))
