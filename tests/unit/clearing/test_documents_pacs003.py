"""pacs.003 debit packages (beps.127) against the official ISO 20022 schema (clearing.md §4).

A truncated-cheque debit (routing.md §3, ``BizType=DEBIT``) is collected by
our corporate: the Transfer's payer is the pacs.003 creditor, its payee the
debtor.  Every Document built here must validate against pacs.003.001.08.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.clearing.documents import (
    NS_PACS003,
    NS_PACS008,
    DebitTx,
    build_pacs003,
    build_pacs008,
    build_payment_document,
    parse_pacs003,
    transaction_ids,
)
from gateway.journal.records import QueuedItem
from gateway.model import BizType
from tests.unit.clearing.pacs_samples import (
    AMOUNTS,
    CREATED,
    OUR_PARTICIPANT,
    PEER_PARTICIPANT,
    WORK_DATE,
    XML_TEXT,
    assert_valid,
    item,
    package,
    set_text,
    xpath_text,
)

MSG_ID = "103100000019202611270000000043"
PACS003 = "pacs.003.001.08"
P3 = {"p": NS_PACS003}
TX = "/p:Document/p:FIToFICstmrDrctDbt/p:DrctDbtTxInf"
HDR = "/p:Document/p:FIToFICstmrDrctDbt/p:GrpHdr"
AGENT = "p:FinInstnId/p:ClrSysMmbId"


def debit(n: int = 1, **kw: object) -> QueuedItem:
    """A queued BEPS debit: the corporate (payer fields) collects from a cheque drawer."""
    base = replace(package(n)[-1], biz_type=BizType.DEBIT, payee_acct=f"6217{n:012d}")
    return replace(base, **kw)  # type: ignore[arg-type]


def debits(count: int) -> list[QueuedItem]:
    return [
        replace(it, biz_type=BizType.DEBIT, payee_acct=f"6217{n:012d}")
        for n, it in enumerate(package(count), start=1)
    ]


def text(doc: etree._Element, path: str) -> str:
    return xpath_text(doc, path, P3)


def expected(it: QueuedItem) -> DebitTx:
    """What a reader of the package sees: our corporate as creditor, the drawer as debtor."""
    return DebitTx(
        end_to_end_id=it.end_to_end_id,
        tx_id=it.tx_id,
        amount=it.amount,
        ccy="CNY",
        debtor_name=it.payee_name,
        debtor_acct=it.payee_acct,
        debtor_agent=it.payee_bank_code,
        creditor_name=it.payer_name,
        creditor_acct=it.payer_acct,
        creditor_agent=OUR_PARTICIPANT,
        purpose=it.purpose,
    )


@pytest.mark.requires_xsd
def test_one_debit_follows_the_mapping_and_validates() -> None:
    it = debit(1, purpose="支票截留 No.12345678")
    doc = build_pacs003(MSG_ID, CREATED, WORK_DATE, [it], OUR_PARTICIPANT)
    assert_valid(doc, PACS003)
    assert text(doc, f"{HDR}/p:MsgId") == MSG_ID
    assert text(doc, f"{HDR}/p:CreDtTm") == "2026-11-27T10:00:00.120+08:00"
    assert text(doc, f"{HDR}/p:NbOfTxs") == "1"
    assert text(doc, f"{HDR}/p:CtrlSum") == f"{it.amount:.2f}"
    assert text(doc, f"{HDR}/p:TtlIntrBkSttlmAmt/@Ccy") == "CNY"
    assert text(doc, f"{HDR}/p:IntrBkSttlmDt") == "2026-11-27"  # the work date
    assert text(doc, f"{HDR}/p:SttlmInf/p:SttlmMtd") == "CLRG"
    assert text(doc, f"{TX}/p:PmtId/p:EndToEndId") == it.end_to_end_id
    assert text(doc, f"{TX}/p:PmtId/p:TxId") == it.tx_id
    assert text(doc, f"{TX}/p:IntrBkSttlmAmt/@Ccy") == "CNY"
    assert text(doc, f"{TX}/p:ChrgBr") == "SLEV"
    # the corporate collects: its enrolled account is credited, through us
    assert text(doc, f"{TX}/p:Cdtr/p:Nm") == it.payer_name
    assert text(doc, f"{TX}/p:CdtrAcct/p:Id/p:Othr/p:Id") == it.payer_acct
    assert text(doc, f"{TX}/p:CdtrAgt/{AGENT}/p:ClrSysId/p:Cd") == "CNAPS"
    assert text(doc, f"{TX}/p:CdtrAgt/{AGENT}/p:MmbId") == OUR_PARTICIPANT
    # the drawer is debited at its bank
    assert text(doc, f"{TX}/p:Dbtr/p:Nm") == it.payee_name
    assert text(doc, f"{TX}/p:DbtrAcct/p:Id/p:Othr/p:Id") == it.payee_acct
    assert text(doc, f"{TX}/p:DbtrAgt/{AGENT}/p:ClrSysId/p:Cd") == "CNAPS"
    assert text(doc, f"{TX}/p:DbtrAgt/{AGENT}/p:MmbId") == PEER_PARTICIPANT
    assert text(doc, f"{TX}/p:RmtInf/p:Ustrd") == "支票截留 No.12345678"
    # the schema's order, and no mandate block: a cheque carries none
    (tx,) = doc.iterfind(".//p:DrctDbtTxInf", P3)
    assert [etree.QName(c).localname for c in tx] == [
        "PmtId",
        "IntrBkSttlmAmt",
        "ChrgBr",
        "Cdtr",
        "CdtrAcct",
        "CdtrAgt",
        "Dbtr",
        "DbtrAcct",
        "DbtrAgt",
        "RmtInf",
    ]


@pytest.mark.requires_xsd
def test_package_of_1000_validates_and_reads_back_with_exact_sums() -> None:
    items = debits(1000)
    doc = build_pacs003(MSG_ID, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
    assert_valid(doc, PACS003)
    total = sum((i.amount for i in items), Decimal(0))
    assert text(doc, f"{HDR}/p:NbOfTxs") == "1000"
    assert text(doc, f"{HDR}/p:TtlIntrBkSttlmAmt") == f"{total:.2f}"
    header, txs = parse_pacs003(etree.fromstring(etree.tostring(doc)))
    assert (header.msg_id, header.nb_of_txs, header.ctrl_sum, header.total) == (
        MSG_ID,
        1000,
        total,
        total,
    )
    assert (header.created, header.settle_date) == (CREATED, WORK_DATE)
    assert txs == [expected(i) for i in items]
    assert txs[1].purpose is None  # no Purpose, no RmtInf
    assert transaction_ids(doc)[:2] == [(i.end_to_end_id, i.tx_id) for i in items[:2]]


@pytest.mark.requires_xsd
@pytest.mark.parametrize(
    ("msg_tp", "ns"),
    [
        ("beps.127", NS_PACS003),
        ("beps.121", NS_PACS008),
        ("hvps.111", NS_PACS008),
        ("intra.111", NS_PACS008),
    ],
)
def test_payment_document_follows_the_message_type(msg_tp: str, ns: str) -> None:
    items = debits(2) if msg_tp == "beps.127" else package(2)
    doc = build_payment_document(msg_tp, MSG_ID, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
    assert doc.tag == f"{{{ns}}}Document"
    assert_valid(doc, PACS003 if ns == NS_PACS003 else "pacs.008.001.08")
    if ns == NS_PACS008:  # unchanged: the credit types still build what build_pacs008 builds
        same = build_pacs008(MSG_ID, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
        assert etree.tostring(doc) == etree.tostring(same)


@pytest.mark.parametrize("msg_tp", ["ccms.990", "ccms.900", "beps.128", "beps.netting", ""])
def test_payment_document_refuses_a_type_that_carries_no_payment(msg_tp: str) -> None:
    with pytest.raises(ValueError, match="not a payment message type"):
        build_payment_document(msg_tp, MSG_ID, CREATED, WORK_DATE, debits(1), OUR_PARTICIPANT)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": Decimal("0.001")}, "fractions of a fen"),
        ({"amount": Decimal("0")}, "positive"),
        ({"ccy": "USD"}, "CNY"),
        ({"end_to_end_id": "E" * 36}, "EndToEndId"),
        ({"tx_id": ""}, "TxId"),
        ({"payer_acct": "1" * 35}, "CdtrAcct"),
        ({"payee_acct": "1" * 35}, "DbtrAcct"),
        ({"payer_name": ""}, "Cdtr/Nm"),
        ({"payee_name": "x" * 141}, "Dbtr/Nm"),
        ({"payee_bank_code": "1" * 36}, "DbtrAgt"),
        ({"purpose": "x" * 141}, "Ustrd"),
    ],
)
def test_builder_refuses_what_would_not_validate(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        build_pacs003(MSG_ID, CREATED, WORK_DATE, [debit(1, **change)], OUR_PARTICIPANT)


def test_builder_refuses_an_empty_package() -> None:
    with pytest.raises(ValueError, match=r"pacs\.003 needs at least one"):
        build_pacs003(MSG_ID, CREATED, WORK_DATE, [], OUR_PARTICIPANT)


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("//p:GrpHdr/p:NbOfTxs", "3", "NbOfTxs"),
        ("//p:GrpHdr/p:CtrlSum", "1.00", "CtrlSum"),
        ("//p:GrpHdr/p:TtlIntrBkSttlmAmt", "1.00", "TtlIntrBkSttlmAmt"),
        ("//p:DrctDbtTxInf[2]/p:IntrBkSttlmAmt", "1.005", "IntrBkSttlmAmt"),
        ("//p:DrctDbtTxInf[1]/p:Dbtr/p:Nm", None, "Dbtr/Nm"),
        ("//p:DrctDbtTxInf[2]/p:CdtrAgt", None, "CdtrAgt"),
    ],
)
def test_parser_refuses_inconsistent_packages(path: str, value: str | None, reason: str) -> None:
    doc = build_pacs003(MSG_ID, CREATED, WORK_DATE, debits(2), OUR_PARTICIPANT)
    set_text(doc, path, P3, value)
    with pytest.raises(ValueError, match=reason):
        parse_pacs003(doc)


def test_parser_refuses_a_credit_document() -> None:
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, [item()], OUR_PARTICIPANT)
    with pytest.raises(ValueError, match=r"pacs\.003"):
        parse_pacs003(doc)


@pytest.mark.requires_xsd
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amounts=AMOUNTS,
    drawer=XML_TEXT,
    purpose=st.none() | XML_TEXT,
)
def test_any_valid_debits_validate_and_round_trip(
    amounts: list[Decimal], drawer: str, purpose: str | None
) -> None:
    items = [
        debit(n, amount=amount, payee_name=drawer, purpose=purpose)
        for n, amount in enumerate(amounts, start=1)
    ]
    doc = build_pacs003(MSG_ID, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
    assert_valid(doc, PACS003)
    header, txs = parse_pacs003(etree.fromstring(etree.tostring(doc)))
    assert header.ctrl_sum == sum(amounts)
    assert txs == [expected(i) for i in items]
