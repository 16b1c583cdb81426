"""pacs.008 / pacs.002 Documents against the official ISO 20022 schemas (clearing.md §4)."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.clearing.documents import (
    NS_PACS002,
    NS_PACS008,
    PACS008_NAME,
    CreditTx,
    TxResult,
    build_pacs002,
    build_pacs008,
    parse_pacs002,
    parse_pacs008,
    transaction_ids,
)
from gateway.journal.records import QueuedItem
from tests.unit.clearing.pacs_samples import (
    AMOUNTS,
    CREATED,
    OUR_PARTICIPANT,
    WORK_DATE,
    XML_TEXT,
    assert_valid,
    item,
    package,
    set_text,
    xpath_text,
)

MSG_ID = "103100000019202611270000000042"
P8 = {"p": NS_PACS008}
P2 = {"p": NS_PACS002}


def expected_tx(it: QueuedItem) -> CreditTx:
    return CreditTx(
        end_to_end_id=it.end_to_end_id,
        tx_id=it.tx_id,
        amount=it.amount,
        ccy="CNY",
        debtor_name=it.payer_name,
        debtor_acct=it.payer_acct,
        debtor_agent=OUR_PARTICIPANT,
        creditor_name=it.payee_name,
        creditor_acct=it.payee_acct,
        creditor_agent=it.payee_bank_code,
        purpose=it.purpose,
    )


def text(doc: etree._Element, path: str) -> str:
    return xpath_text(doc, path, P8)


# ---------------------------------------------------------------------- pacs.008


@pytest.mark.requires_xsd
def test_single_transfer_follows_the_field_mapping_and_validates() -> None:
    it = item()
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, [it], OUR_PARTICIPANT)
    assert_valid(doc, "pacs.008.001.08")
    hdr = "/p:Document/p:FIToFICstmrCdtTrf/p:GrpHdr"
    tx = "/p:Document/p:FIToFICstmrCdtTrf/p:CdtTrfTxInf"
    assert text(doc, f"{hdr}/p:MsgId") == MSG_ID
    assert text(doc, f"{hdr}/p:CreDtTm") == "2026-11-27T10:00:00.120+08:00"
    assert text(doc, f"{hdr}/p:NbOfTxs") == "1"
    assert text(doc, f"{hdr}/p:CtrlSum") == "49999.99"
    assert text(doc, f"{hdr}/p:TtlIntrBkSttlmAmt/@Ccy") == "CNY"
    assert text(doc, f"{hdr}/p:IntrBkSttlmDt") == "2026-11-27"
    assert text(doc, f"{hdr}/p:SttlmInf/p:SttlmMtd") == "CLRG"
    assert text(doc, f"{tx}/p:PmtId/p:EndToEndId") == it.end_to_end_id
    assert text(doc, f"{tx}/p:PmtId/p:TxId") == it.tx_id
    assert text(doc, f"{tx}/p:IntrBkSttlmAmt") == "49999.99"
    assert text(doc, f"{tx}/p:IntrBkSttlmAmt/@Ccy") == "CNY"
    assert text(doc, f"{tx}/p:Dbtr/p:Nm") == it.payer_name
    assert text(doc, f"{tx}/p:DbtrAcct/p:Id/p:Othr/p:Id") == it.payer_acct
    agent = "p:FinInstnId/p:ClrSysMmbId"
    assert text(doc, f"{tx}/p:DbtrAgt/{agent}/p:ClrSysId/p:Cd") == "CNAPS"
    assert text(doc, f"{tx}/p:DbtrAgt/{agent}/p:MmbId") == OUR_PARTICIPANT
    assert text(doc, f"{tx}/p:CdtrAgt/{agent}/p:ClrSysId/p:Cd") == "CNAPS"
    assert text(doc, f"{tx}/p:CdtrAgt/{agent}/p:MmbId") == it.payee_bank_code
    assert text(doc, f"{tx}/p:Cdtr/p:Nm") == it.payee_name
    assert text(doc, f"{tx}/p:CdtrAcct/p:Id/p:Othr/p:Id") == it.payee_acct
    assert text(doc, f"{tx}/p:RmtInf/p:Ustrd") == "货款"


@pytest.mark.requires_xsd
def test_package_of_1000_validates_with_exact_control_sum() -> None:
    items = package(1000)
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
    assert_valid(doc, "pacs.008.001.08")
    total = sum((i.amount for i in items), Decimal(0))
    hdr = "/p:Document/p:FIToFICstmrCdtTrf/p:GrpHdr"
    assert text(doc, f"{hdr}/p:NbOfTxs") == "1000"
    assert Decimal(text(doc, f"{hdr}/p:CtrlSum")) == total
    assert text(doc, f"{hdr}/p:TtlIntrBkSttlmAmt") == f"{total:.2f}"
    amounts = doc.xpath("//p:CdtTrfTxInf/p:IntrBkSttlmAmt/text()", namespaces=P8)
    assert isinstance(amounts, list)
    assert {"49999.99", "0.01", "1234.50", "100.00"} == set(map(str, amounts))

    header, txs = parse_pacs008(doc)
    assert header.nb_of_txs == 1000
    assert header.ctrl_sum == total
    assert header.total == total
    assert txs == [expected_tx(i) for i in items]


def test_round_trip_through_bytes_keeps_chinese_names() -> None:
    items = [item(1, payee_name="收款人 & <公司>", purpose=None), item(2, amount=Decimal("0.01"))]
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
    raw = etree.tostring(doc, encoding="UTF-8")
    assert "收款人".encode() in raw
    header, txs = parse_pacs008(etree.fromstring(raw))
    assert header.msg_id == MSG_ID
    assert header.created == CREATED
    assert header.settle_date == WORK_DATE
    assert txs == [expected_tx(i) for i in items]
    assert txs[0].purpose is None
    assert not doc.xpath("//p:CdtTrfTxInf[1]/p:RmtInf", namespaces=P8)


@pytest.mark.requires_xsd
def test_intra_creditor_agent_may_be_a_six_digit_internal_code() -> None:
    doc = build_pacs008(
        MSG_ID, CREATED, WORK_DATE, [item(payee_bank_code="011234")], OUR_PARTICIPANT
    )
    assert_valid(doc, "pacs.008.001.08")
    assert parse_pacs008(doc)[1][0].creditor_agent == "011234"


@pytest.mark.requires_xsd
def test_longest_fields_still_validate() -> None:
    long_name = "名" * 60
    it = replace(
        item(purpose="用" * 140, payer_name=long_name, payee_name=long_name),
        end_to_end_id="A" * 35,
        tx_id="B" * 35,
        payee_acct="9" * 32,
        amount=Decimal("9999999999999999.99"),
    )
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, [it], OUR_PARTICIPANT)
    assert_valid(doc, "pacs.008.001.08")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": Decimal("0.001")}, "fractions of a fen"),
        ({"amount": Decimal("0")}, "positive"),
        ({"amount": Decimal("-1.00")}, "positive"),
        ({"amount": Decimal("NaN")}, "positive"),
        ({"amount": Decimal("12345678901234567.00")}, "digits"),
        ({"ccy": "USD"}, "CNY"),
        ({"end_to_end_id": "E" * 36}, "EndToEndId"),
        ({"tx_id": ""}, "TxId"),
        ({"payee_acct": "1" * 35}, "CdtrAcct"),
        ({"payee_name": ""}, "Cdtr/Nm"),
        ({"purpose": "x" * 141}, "Ustrd"),
    ],
)
def test_builder_refuses_what_would_not_validate(change: dict[str, object], reason: str) -> None:
    it = replace(item(), **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=reason):
        build_pacs008(MSG_ID, CREATED, WORK_DATE, [it], OUR_PARTICIPANT)


def test_builder_refuses_an_empty_package_and_a_naive_time() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_pacs008(MSG_ID, CREATED, WORK_DATE, [], OUR_PARTICIPANT)
    with pytest.raises(ValueError, match="offset"):
        build_pacs008(MSG_ID, CREATED.replace(tzinfo=None), WORK_DATE, [item()], OUR_PARTICIPANT)


def _mutated(path: str, value: str | None) -> etree._Element:
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, [item(1), item(2)], OUR_PARTICIPANT)
    set_text(doc, path, P8, value)
    return doc


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("//p:GrpHdr/p:NbOfTxs", "3", "NbOfTxs"),
        ("//p:GrpHdr/p:NbOfTxs", "two", "NbOfTxs"),
        ("//p:GrpHdr/p:CtrlSum", "1.00", "CtrlSum"),
        ("//p:GrpHdr/p:TtlIntrBkSttlmAmt", "1.00", "TtlIntrBkSttlmAmt"),
        ("//p:CdtTrfTxInf[1]/p:IntrBkSttlmAmt", "1.005", "IntrBkSttlmAmt"),
        ("//p:CdtTrfTxInf[1]/p:IntrBkSttlmAmt", "-5", "IntrBkSttlmAmt"),
        ("//p:CdtTrfTxInf[1]/p:Cdtr/p:Nm", None, "Cdtr/Nm"),
        ("//p:CdtTrfTxInf[2]/p:CdtrAcct", None, "CdtrAcct"),
        ("//p:CdtTrfTxInf[1]/p:PmtId/p:EndToEndId", None, "EndToEndId"),
        ("//p:GrpHdr/p:CreDtTm", "2026-11-27T10:00:00", "CreDtTm"),
        ("//p:GrpHdr/p:IntrBkSttlmDt", "27/11/2026", "IntrBkSttlmDt"),
        ("//p:GrpHdr/p:MsgId", "", "MsgId"),
    ],
)
def test_parser_refuses_malformed_documents(path: str, value: str | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_pacs008(_mutated(path, value))


def test_parser_refuses_another_document_type() -> None:
    doc = build_pacs002(MSG_ID, CREATED, MSG_ID, PACS008_NAME, [])
    with pytest.raises(ValueError, match=r"pacs\.008"):
        parse_pacs008(doc)


def test_transaction_ids_survive_a_broken_document() -> None:
    doc = _mutated("//p:CdtTrfTxInf[1]/p:IntrBkSttlmAmt", "lots")
    list(doc.iter(f"{{{NS_PACS008}}}TxId"))[1].text = "T" * 36
    assert transaction_ids(doc) == [
        ("20261127-000001", "GW20261127A000000001"),
        ("20261127-000002", None),
    ]


@pytest.mark.requires_xsd
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amounts=AMOUNTS,
    payee=XML_TEXT,
    purpose=st.none() | XML_TEXT,
)
def test_any_valid_items_round_trip_and_validate(
    amounts: list[Decimal], payee: str, purpose: str | None
) -> None:
    items = [
        item(n, amount=amount, payee_name=payee, purpose=purpose)
        for n, amount in enumerate(amounts, start=1)
    ]
    doc = build_pacs008(MSG_ID, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
    assert_valid(doc, "pacs.008.001.08")
    header, txs = parse_pacs008(etree.fromstring(etree.tostring(doc)))
    assert header.ctrl_sum == sum(amounts)
    assert txs == [expected_tx(i) for i in items]


# ---------------------------------------------------------------------- pacs.002

RESULTS = [
    TxResult(tx_id="GW20261127A000000001", end_to_end_id="20261127-000001", status="ACSC"),
    TxResult(tx_id="GW20261127A000000002", end_to_end_id="20261127-000002", status="ACSP"),
    TxResult(
        tx_id="GW20261127A000000003",
        end_to_end_id="20261127-000003",
        status="RJCT",
        reason_code="AC01",
        reason_text="incorrect account number 账号错误",
    ),
    TxResult(tx_id=None, end_to_end_id="20261127-000004", status="RJCT", reason_code="AM04"),
    TxResult(tx_id="GW20261127A000000005", end_to_end_id=None, status="ACSC"),
]


@pytest.mark.requires_xsd
def test_status_report_validates_and_round_trips() -> None:
    doc = build_pacs002("000000000000202611270000000001", CREATED, MSG_ID, PACS008_NAME, RESULTS)
    assert_valid(doc, "pacs.002.001.10")
    assert parse_pacs002(etree.fromstring(etree.tostring(doc))) == (MSG_ID, RESULTS)
    codes = doc.xpath("//p:TxInfAndSts/p:StsRsnInf/p:Rsn/p:Cd/text()", namespaces=P2)
    assert codes == ["AC01", "AM04"]


@pytest.mark.requires_xsd
def test_long_reason_text_is_cut_to_the_schema_limit() -> None:
    result = TxResult("T1", "E1", "RJCT", "AC01", "长" * 300)
    doc = build_pacs002("M1", CREATED, MSG_ID, PACS008_NAME, [result])
    assert_valid(doc, "pacs.002.001.10")
    (_, (back,)) = parse_pacs002(doc)
    assert back.reason_text == "长" * 105


@pytest.mark.requires_xsd
def test_group_status_reject_validates() -> None:
    doc = build_pacs002(
        "M1", CREATED, MSG_ID, PACS008_NAME, [], group_status="RJCT", group_reason_code="FF01"
    )
    assert_valid(doc, "pacs.002.001.10")
    assert parse_pacs002(doc) == (MSG_ID, [])


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (TxResult("T", "E", "RJCT"), "RJCT needs"),
        (TxResult("T", "E", "PDNG"), "TxSts"),
        (TxResult(None, None, "ACSC"), "OrgnlEndToEndId or OrgnlTxId"),
        (TxResult("T", "E", "RJCT", "TOOLONG"), "Rsn/Cd"),
        (TxResult("T" * 36, "E", "ACSC"), "OrgnlTxId"),
    ],
)
def test_status_builder_refuses_invalid_results(result: TxResult, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        build_pacs002("M1", CREATED, MSG_ID, PACS008_NAME, [result])


def test_status_parser_refuses_malformed_reports() -> None:
    doc = build_pacs002("M1", CREATED, MSG_ID, PACS008_NAME, RESULTS[:1])
    body = doc[0]
    body.insert(2, copy.deepcopy(body[1]))  # a second OrgnlGrpInfAndSts
    with pytest.raises(ValueError, match="exactly one"):
        parse_pacs002(doc)

    doc = build_pacs002("M1", CREATED, MSG_ID, PACS008_NAME, RESULTS[:1])
    next(doc.iter(f"{{{NS_PACS002}}}TxSts")).text = "ACCP"
    with pytest.raises(ValueError, match="TxSts"):
        parse_pacs002(doc)

    with pytest.raises(ValueError, match=r"pacs\.002"):
        parse_pacs002(build_pacs008(MSG_ID, CREATED, WORK_DATE, [item()], OUR_PARTICIPANT))


def test_rjct_without_reason_from_a_peer_is_still_a_rejection() -> None:
    doc = build_pacs002("M1", CREATED, MSG_ID, PACS008_NAME, [RESULTS[2]])
    info = next(doc.iter(f"{{{NS_PACS002}}}StsRsnInf"))
    parent = info.getparent()
    assert parent is not None
    parent.remove(info)
    assert parse_pacs002(doc)[1] == [replace(RESULTS[2], reason_code=None, reason_text=None)]
