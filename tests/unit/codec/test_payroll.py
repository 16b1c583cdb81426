"""Batches in the codec (corplink.md §4, §5, §8): PAYROLL decode and its schema-stage
rules, PAIN001 and MT101 as batches, and the ``Items`` response body against our XSD."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

import pytest
from lxml import etree

from gateway.clock import SHANGHAI
from gateway.codec.corplink import BusinessRuleError, CorpLinkCodec
from gateway.codec.corplink_decode import MAX_BATCH_ITEMS, check_batch
from gateway.codec.xmlparse import parse_body
from gateway.errors import GatewayError, RetCode
from gateway.model import (
    Batch,
    BatchItem,
    Engine,
    Request,
    Response,
    State,
    StatusView,
    Transfer,
    Transition,
)
from tests.conftest import shared_xsd_dir

from .builders import SAMPLES, request, without_signature
from .test_corplink_render import T0, response, signed_placeholder

NS = "urn:corplink:1"


def item(seq: object, amount: str = "100.00", code: str = "105100000017", extra: str = "") -> str:
    return (
        f"<Item><SeqNo>{seq}</SeqNo><PayeeAcct>6217000011112222</PayeeAcct>"
        f"<PayeeName>员工</PayeeName><PayeeBankCode>{code}</PayeeBankCode>"
        f'<Amount Ccy="CNY">{amount}</Amount>{extra}</Item>'
    )


def batch(*items: str) -> str:
    return (
        "<Batch><PayerAcct>6222000000000001</PayerAcct><PayerName>示范贸易</PayerName>"
        + "".join(items)
        + "</Batch>"
    )


def admit(codec: CorpLinkCodec, text: str | bytes, trn: str = "PAYROLL") -> etree._Element:
    """The schema stage as the desk runs it: validate, then the payload's own rules."""
    data = text.encode() if isinstance(text, str) else text
    root = parse_body(data).root
    codec.validate(root)
    codec.check_payload(root)
    return root


def decode(codec: CorpLinkCodec, body: str, trn: str = "PAYROLL") -> Request:
    root = admit(codec, request(body, TrnCode=trn))
    return codec.decode(without_signature(root), "UTF-8")


def refused(codec: CorpLinkCodec, body: str, trn: str = "PAYROLL") -> GatewayError:
    with pytest.raises(GatewayError) as info:
        decode(codec, body, trn)
    return info.value


# -- PAYROLL decode ---------------------------------------------------------------------


def test_payroll_decodes_to_a_batch_in_seqno_order(codec: CorpLinkCodec) -> None:
    body = batch(
        item(2, "0.01", "104100000004"), item(1, "49999.99", extra="<Purpose>工资</Purpose>")
    )
    req = decode(codec, body)
    assert req.head.trn_code == "PAYROLL"
    assert isinstance(req.body, Batch)
    payer = {"payer_acct": "6222000000000001", "payer_name": "示范贸易"}
    payee = {"payee_acct": "6217000011112222", "payee_name": "员工"}
    first = Transfer(**payer, **payee, payee_bank_code="105100000017", amount=Decimal("49999.99"))
    second = Transfer(**payer, **payee, payee_bank_code="104100000004", amount=Decimal("0.01"))
    assert req.body.items == (
        BatchItem(1, replace(first, purpose="工资")),
        BatchItem(2, second),
    )
    assert req.body.amounts() == (Decimal("49999.99"), Decimal("0.01"))
    assert req.body.payer_accounts() == (("6222000000000001", 1),)
    assert len(req.digest) == 64


def test_an_amount_error_refuses_the_batch_naming_the_item(codec: CorpLinkCodec) -> None:
    body = batch(item(1, "5.00"), item(2, "7.00"), item(3, "1.005"), item(4, "0"))
    with pytest.raises(BusinessRuleError) as info:
        decode(codec, body)
    err = info.value
    assert err.code is RetCode.AMOUNT_INVALID
    assert err.detail == "Amount: up to 15 digits and at most 2 decimals (SeqNo 3)"
    assert err.head.msg_id == "20261127-000001"
    assert len(err.digest) == 64
    # the items that did decode still reach the credential checks (§8: 2006 before 4004)
    assert err.amounts == (Decimal("5.00"), Decimal("7.00"))


def test_an_amount_error_in_another_currency_is_4004(codec: CorpLinkCodec) -> None:
    body = batch(item(1), item(2).replace('Ccy="CNY"', 'Ccy="USD"'))
    err = refused(codec, body)
    assert (err.code, err.detail) == (
        RetCode.AMOUNT_INVALID,
        "Amount: currency must be CNY (SeqNo 2)",
    )


@pytest.mark.parametrize(
    ("items", "detail"),
    [
        ((item(1), item(3)), "SeqNo: 3 outside 1..2 (items are numbered 1..n)"),
        ((item(2),), "SeqNo: 2 outside 1..1 (items are numbered 1..n)"),
        ((item(1), item(" 2 ")), None),  # xs:int collapses whitespace: valid
        ((item(1), item(1)), "Item: duplicate SeqNo"),
        ((item(0),), "SeqNo: invalid value"),
        ((item(50_001),), "SeqNo: invalid value"),
        ((item("x"),), "SeqNo: invalid value"),
        ((), "Batch: missing child element, expected Item"),
    ],
)
def test_seqno_must_be_1_to_n(
    codec: CorpLinkCodec, items: tuple[str, ...], detail: str | None
) -> None:
    text = request(batch(*items), TrnCode="PAYROLL")
    if detail is None:
        admit(codec, text)
        return
    with pytest.raises(GatewayError) as info:
        admit(codec, text)
    assert (info.value.code, info.value.detail) == (RetCode.SCHEMA, detail)


def test_seqno_and_schema_errors_come_before_amount_errors(codec: CorpLinkCodec) -> None:
    """corplink.md §8: schema (1003) in the schema stage, before the signature; 4004 later."""
    text = request(batch(item(1, "-1"), item(5)), TrnCode="PAYROLL")
    with pytest.raises(GatewayError) as info:
        admit(codec, text)
    assert info.value.code is RetCode.SCHEMA
    admit(codec, request(batch(item(1, "-1"), item(2)), TrnCode="PAYROLL"))  # 4004 waits


def test_more_than_50000_items_is_a_schema_violation() -> None:
    big = etree.Element(f"{{{NS}}}Batch")
    for n in range(1, MAX_BATCH_ITEMS + 2):
        etree.SubElement(etree.SubElement(big, f"{{{NS}}}Item"), f"{{{NS}}}SeqNo").text = str(n)
    with pytest.raises(GatewayError) as info:
        check_batch(big)
    assert (info.value.code, info.value.detail) == (RetCode.SCHEMA, "Batch: more than 50000 items")
    del big[-1]
    assert [seq for seq, _ in check_batch(big)][-3:] == [49_998, 49_999, 50_000]


def test_comments_in_an_item_do_not_hide_its_seqno(codec: CorpLinkCodec) -> None:
    # the schema stage runs before the signature layer refuses comments (2001)
    admit(codec, request(batch(item(1).replace("<SeqNo>", "<!-- x --><SeqNo>")), TrnCode="PAYROLL"))


# -- PAIN001 and MT101 as batches -------------------------------------------------------


def pain001(change: tuple[bytes, bytes] | None = None) -> str:
    doc = (SAMPLES / "pain001.xml").read_bytes()
    if change is not None:
        doc = doc.replace(*change)
    root = etree.fromstring(doc)
    return etree.tostring(root, encoding="unicode")


def test_pain001_transactions_become_items(codec: CorpLinkCodec) -> None:
    req = decode(codec, pain001(), "PAIN001")
    assert isinstance(req.body, Batch)
    assert [(i.seq_no, i.transfer.payee_bank_code, i.bic) for i in req.body.items] == [
        (1, "102100099996", None),
        (2, "103100000027", None),
        (3, "", "ICBKCNBJ"),  # only a BIC: the router's business (4001 for the item)
    ]
    assert req.body.amounts() == (Decimal("1234.50"), Decimal("80000.00"), Decimal("500.00"))


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ((b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>"), RetCode.SCHEMA, "NbOfTxs"),
        ((b"<PmtMtd>TRF</PmtMtd>", b"<PmtMtd>CHK</PmtMtd>"), RetCode.UNKNOWN_TRNCODE, "PmtMtd"),
    ],
)
def test_pain001_structure_is_judged_in_the_schema_stage(
    codec: CorpLinkCodec, change: tuple[bytes, bytes], code: RetCode, words: str
) -> None:
    with pytest.raises(GatewayError) as info:
        admit(codec, request(pain001(change), TrnCode="PAIN001"))
    assert info.value.code is code
    assert words in (info.value.detail or "")


def test_pain001_amount_error_waits_for_the_decode_stage(codec: CorpLinkCodec) -> None:
    text = pain001((b">80000.00<", b">-5<"))  # not a number: CtrlSum cannot judge it
    admit(codec, request(text, TrnCode="PAIN001"))  # the schema stage lets it pass
    err = refused(codec, text, "PAIN001")
    assert isinstance(err, BusinessRuleError)
    assert err.code is RetCode.AMOUNT_INVALID
    assert "transaction 2" in (err.detail or "")


@pytest.mark.requires_xsd
def test_pain001_against_the_official_schema_when_configured() -> None:
    strict = CorpLinkCodec(pain001_xsd_dir=shared_xsd_dir())
    admit(strict, request(pain001(), TrnCode="PAIN001"))
    # our own rules accept a Ccy of three lower-case letters in DbtrAcct; ISO does not
    text = request(pain001((b"<Ccy>CNY</Ccy>", b"<Ccy>cny</Ccy>")), TrnCode="PAIN001")
    admit(CorpLinkCodec(), text)
    with pytest.raises(GatewayError) as info:
        admit(strict, text)
    assert (info.value.code, info.value.detail) == (RetCode.SCHEMA, "Ccy: invalid value")


def mt(text: str) -> str:
    return f"<MT><![CDATA[{text}]]></MT>"


def test_mt101_sequences_become_items(codec: CorpLinkCodec) -> None:
    req = decode(codec, mt((SAMPLES / "mt101.txt").read_text()), "MT101")
    assert isinstance(req.body, Batch)
    assert [(i.seq_no, i.transfer.payee_bank_code, i.bic) for i in req.body.items] == [
        (1, "102100099996", None),
        (2, "103100000027", None),
        (3, "", "ICBKCNBJ"),
    ]
    assert req.body.items[1].transfer.priority.value == "URGT"  # 23E URGP


def test_mt101_malformed_is_1003_naming_the_field(codec: CorpLinkCodec) -> None:
    text = (SAMPLES / "mt101.txt").read_text().replace(":32B:CNY1234,50", ":32B:CNY1234.50")
    with pytest.raises(GatewayError) as info:
        admit(codec, request(mt(text), TrnCode="MT101"))
    assert info.value.code is RetCode.SCHEMA
    assert (info.value.detail or "").startswith("field 32B:")


def test_mt101_amount_error_is_a_business_rule(codec: CorpLinkCodec) -> None:
    text = (SAMPLES / "mt101.txt").read_text().replace(":32B:CNY500,00", ":32B:USD500,00")
    err = refused(codec, mt(text), "MT101")
    assert isinstance(err, BusinessRuleError)
    assert err.detail == "field 32B: currency must be CNY (transaction 3)"


# -- the Items response body --------------------------------------------------------------


def items_response(views: tuple[StatusView, ...], **fields: object) -> Response:
    base: dict[str, object] = {
        "trn_code": "PAYROLL",
        "msg_id": "PR-1",
        "ret_msg": "accepted: 3 items, 1 rejected",
        "gw_ref": "GW20261127A000000042",
        "items": views,
    }
    base.update(fields)
    return response(**base)


def valid(schema: etree.XMLSchema, root: etree._Element) -> bool:
    return schema.validate(signed_placeholder(root))


VIEWS = (
    StatusView(State.QUEUED, Engine.BEPS, date(2026, 11, 27), seq_no=1),
    StatusView(
        State.HELD,
        Engine.HVPS,
        date(2026, 11, 27),
        release_at=datetime(2026, 11, 27, 9, 0, tzinfo=SHANGHAI),
        seq_no=2,
    ),
    StatusView(
        State.REJECTED,
        None,
        None,
        reason_code="4001",
        reason_text="PayeeBankCode not in the directory",
        seq_no=3,
        history=(Transition(State.ACCEPTED, T0), Transition(State.REJECTED, T0)),
    ),
)


def test_items_render_one_status_per_item_with_seqno_first(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    root = codec.render(items_response(VIEWS))
    statuses = root.findall(f"{{{NS}}}Body/{{{NS}}}Items/{{{NS}}}Status")
    assert [etree.QName(s[0]).localname for s in statuses] == ["SeqNo"] * 3
    assert [s.findtext(f"{{{NS}}}SeqNo") for s in statuses] == ["1", "2", "3"]
    assert statuses[1].findtext(f"{{{NS}}}ReleaseAt") == "2026-11-27T09:00:00.000+08:00"
    reason = statuses[2].find(f"{{{NS}}}Reason")
    assert reason is not None and reason.get("Code") == "4001"
    assert len(statuses[2].findall(f"{{{NS}}}History/{{{NS}}}Step")) == 2
    assert valid(schema, root), schema.error_log


def test_a_refusal_may_list_items_and_stays_valid(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    rsp = items_response(VIEWS[2:], ret_code="4001", gw_ref=None, ret_msg="no item can be routed")
    assert valid(schema, codec.render(rsp)), schema.error_log


def test_views_without_seqno_are_left_out_and_items_never_empty(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    single = StatusView(State.QUEUED, Engine.BEPS, date(2026, 11, 27))
    root = codec.render(items_response((single, VIEWS[0])))
    assert len(root.findall(f"{{{NS}}}Body/{{{NS}}}Items/{{{NS}}}Status")) == 1
    assert valid(schema, root), schema.error_log
    root = codec.render(items_response((single,)))
    assert root.find(f"{{{NS}}}Body") is None
    assert valid(schema, root), schema.error_log


@pytest.mark.parametrize(
    "tamper",
    [
        lambda items: items[0].remove(items[0][0]),  # an item without SeqNo
        lambda items: items[1].find(f"{{{NS}}}SeqNo").__setattr__("text", "1"),  # twice SeqNo 1
        lambda items: [items.remove(s) for s in list(items)],  # empty Items
    ],
)
def test_the_xsd_defines_items_strictly(
    codec: CorpLinkCodec, schema: etree.XMLSchema, tamper: object
) -> None:
    root = codec.render(items_response(VIEWS))
    tamper(root.find(f"{{{NS}}}Body/{{{NS}}}Items"))  # type: ignore[operator]
    assert not valid(schema, root)


def test_a_50000_item_answer_renders_and_validates(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    views = tuple(
        StatusView(State.QUEUED, Engine.BEPS, date(2026, 11, 27), seq_no=n)
        for n in range(1, MAX_BATCH_ITEMS + 1)
    )
    root = codec.render(items_response(views))
    assert len(root[1][0]) == MAX_BATCH_ITEMS
    assert valid(schema, root), schema.error_log
