"""Rendering the NTFY, INQ, RPLY and BAL responses (corplink.md §4, §5) against codecs/corplink.xsd."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal

import pytest
import xmlschema
from lxml import etree

from gateway.codec.corplink import CorpLinkCodec, serialize
from gateway.codec.corplink_render import MAX_NTFY
from gateway.codec.xmlparse import parse_body
from gateway.model import (
    Balance,
    Engine,
    Notice,
    NoticeKind,
    Notices,
    Response,
    State,
    StatusView,
)
from gateway.paths import corplink_schema_path

from .builders import (
    ALL,
    CREDIT,
    DAY,
    INQUIRY,
    INQUIRY_ABOUT_CREDIT,
    REJECTED,
    REPLY,
    SAMPLES,
    SETTLED,
    T0,
    assert_valid,
    response,
    signed_placeholder,
)

NS = "{urn:corplink:1}"


def ntfy_response(notices: tuple[Notice, ...], last: int, *, more: bool = False) -> Response:
    return response(
        trn_code="NTFY",
        msg_id="20261127-000010",
        notices=Notices(notices=notices, last=last, more=more),
    )


def children(el: etree._Element) -> list[tuple[str, str | None, dict[str, str]]]:
    return [(etree.QName(c).localname, c.text, dict(c.attrib)) for c in el]


# -- Notifications ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notice", "expected"),
    [
        (
            CREDIT,
            [
                ("NtfyId", "42", {}),
                ("Kind", "CREDIT", {}),
                ("Time", "2026-11-27T10:00:00.012+08:00", {}),
                ("GwRef", "GI20261127000001", {}),
                ("Engine", "HVPS", {}),
                ("WorkDate", "2026-11-27", {}),
                ("Acct", "6222020200001234", {}),
                ("Amount", "88000.00", {"Ccy": "CNY"}),
                ("CptyAcct", "31050161393600000123", {}),
                ("CptyName", "上海贝塔零部件有限公司", {}),
                ("CptyBankCode", "105290036005", {}),
                ("Text", "货款 发票号 2026-1127", {}),
            ],
        ),
        (
            SETTLED,
            [
                ("NtfyId", "43", {}),
                ("Kind", "STATUS", {}),
                ("Time", "2026-11-27T10:00:01.012+08:00", {}),
                ("OrigMsgId", "20261127-000001", {}),
                ("State", "SETTLED", {}),
                ("Engine", "HVPS", {}),
                ("WorkDate", "2026-11-27", {}),
            ],
        ),
        (
            REJECTED,
            [
                ("NtfyId", "44", {}),
                ("Kind", "STATUS", {}),
                ("Time", "2026-11-27T10:00:02.012+08:00", {}),
                ("OrigMsgId", "20261127-000004", {}),
                ("SeqNo", "3", {}),
                ("State", "REJECTED", {}),
                ("Reason", "incorrect account number", {"Code": "AC01"}),
                ("Engine", "BEPS", {}),
                ("WorkDate", "2026-11-27", {}),
            ],
        ),
        (
            INQUIRY,
            [
                ("NtfyId", "45", {}),
                ("Kind", "INQUIRY", {}),
                ("Time", "2026-11-27T10:00:03.012+08:00", {}),
                ("OrigMsgId", "20261127-000001", {}),
                ("InqId", "IQ20261127000007", {}),
                ("Text", "请核实收款人户名。", {}),
            ],
        ),
        (
            INQUIRY_ABOUT_CREDIT,
            [
                ("NtfyId", "46", {}),
                ("Kind", "INQUIRY", {}),
                ("Time", "2026-11-27T10:00:04.012+08:00", {}),
                ("GwRef", "GI20261127000001", {}),
                ("InqId", "Q-FROM-OTHER-BANK", {}),
                ("Text", "Was this credit posted?", {}),
            ],
        ),
        (
            REPLY,
            [
                ("NtfyId", "47", {}),
                ("Kind", "REPLY", {}),
                ("Time", "2026-11-27T10:00:05.012+08:00", {}),
                ("OrigMsgId", "20261126-000042", {}),
                ("SeqNo", "12", {}),
                ("InqId", "IQ20261127000003", {}),
                ("Text", "Credited to the payee on 2026-11-27.", {}),
            ],
        ),
    ],
    ids=["credit", "settled", "rejected", "inquiry", "inquiry-about-credit", "reply"],
)
def test_each_kind_renders_what_the_notice_holds_in_schema_order(
    codec: CorpLinkCodec, schema: etree.XMLSchema, notice: Notice, expected: list[object]
) -> None:
    root = codec.render(ntfy_response((notice,), notice.ntfy_id))
    ntfy = root.find(f"{NS}Body/{NS}Notifications/{NS}Ntfy")
    assert ntfy is not None
    assert children(ntfy) == expected
    assert_valid(schema, root)


def test_a_page_lists_notices_oldest_first_then_last_and_more(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    root = codec.render(ntfy_response(ALL, 47, more=True))
    page = root.find(f"{NS}Body/{NS}Notifications")
    assert page is not None
    assert [etree.QName(c).localname for c in page] == ["Ntfy"] * 6 + ["Last", "More"]
    assert [n.findtext(f"{NS}NtfyId") for n in page.iterfind(f"{NS}Ntfy")] == [
        "42",
        "43",
        "44",
        "45",
        "46",
        "47",
    ]
    assert (page.findtext(f"{NS}Last"), page.findtext(f"{NS}More")) == ("47", "true")
    assert root.findtext(f"{NS}Head/{NS}TrnCode") == "NTFY"
    assert_valid(schema, root)


def test_nothing_new_is_an_empty_page_at_the_same_cursor(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    root = codec.render(ntfy_response((), 41))
    page = root.find(f"{NS}Body/{NS}Notifications")
    assert page is not None
    assert children(page) == [("Last", "41", {}), ("More", "false", {})]
    assert_valid(schema, root)
    root = codec.render(ntfy_response((), 0))
    assert root.findtext(f"{NS}Body/{NS}Notifications/{NS}Last") == "0"
    assert_valid(schema, root)


def test_more_than_max_notices_are_cut_and_the_cursor_stops_at_the_last_sent(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    many = tuple(
        Notice(ntfy_id=1000 + i, kind=NoticeKind.STATUS, at=T0, state=State.SETTLED)
        for i in range(MAX_NTFY + 3)
    )
    root = codec.render(ntfy_response(many, 1000 + MAX_NTFY + 2))
    page = root.find(f"{NS}Body/{NS}Notifications")
    assert page is not None
    assert len(page.findall(f"{NS}Ntfy")) == MAX_NTFY
    assert page.findtext(f"{NS}Last") == str(1000 + MAX_NTFY - 1)
    assert page.findtext(f"{NS}More") == "true"
    assert_valid(schema, root)


def test_a_reason_without_a_valid_code_keeps_its_text_as_text(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    notice = Notice(
        ntfy_id=9,
        kind=NoticeKind.STATUS,
        at=T0,
        state=State.REJECTED,
        reason_code="not a code",
        text="refused by the receiving bank",
    )
    root = codec.render(ntfy_response((notice,), 9))
    ntfy = root.find(f"{NS}Body/{NS}Notifications/{NS}Ntfy")
    assert ntfy is not None
    assert ntfy.find(f"{NS}Reason") is None
    assert ntfy.findtext(f"{NS}Text") == "refused by the receiving bank"
    assert_valid(schema, root)


def test_values_from_outside_never_make_an_invalid_response(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    hostile = Notice(
        ntfy_id=5,
        kind=NoticeKind.CREDIT,
        at=T0,
        orig_msg_id="has space",
        seq_no=0,
        gw_ref="x" * 41,
        inq_id="I" * 36,
        acct="6222-0202",
        amount=Decimal("0.001"),
        counterparty_acct="A" * 35,
        counterparty_name="\x00evil\ud800 " + "n" * 500,
        counterparty_bank="10210009999",
        text="line\x01" + "t" * 1000,
    )
    negative = Notice(ntfy_id=6, kind=NoticeKind.CREDIT, at=T0, amount=Decimal("-5.00"))
    repeated = Notice(ntfy_id=6, kind=NoticeKind.CREDIT, at=T0, text="again")
    invalid_id = Notice(ntfy_id=0, kind=NoticeKind.CREDIT, at=T0)
    root = codec.render(ntfy_response((invalid_id, hostile, negative, repeated), -3))
    page = root.find(f"{NS}Body/{NS}Notifications")
    assert page is not None
    ntfys = page.findall(f"{NS}Ntfy")
    assert [n.findtext(f"{NS}NtfyId") for n in ntfys] == ["5", "6"]
    assert [etree.QName(c).localname for c in ntfys[0]] == [
        "NtfyId",
        "Kind",
        "Time",
        "CptyName",
        "Text",
    ]
    name = ntfys[0].findtext(f"{NS}CptyName") or ""
    assert name.startswith("?evil? ")
    assert len(name) == 140
    text = ntfys[0].findtext(f"{NS}Text") or ""
    assert text.startswith("line?")
    assert len(text) == 500
    assert ntfys[1].find(f"{NS}Amount") is None  # a credit is never negative
    assert page.findtext(f"{NS}Last") == "0"
    assert_valid(schema, root)


# -- Balance ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bal", "avail", "bal_text", "avail_text"),
    [
        (Decimal("-1234.56"), Decimal("1000"), "-1234.56", "1000.00"),
        (Decimal("0"), Decimal("-0.00"), "0.00", "0.00"),
        (Decimal("-0.01"), Decimal("0.1"), "-0.01", "0.10"),
        (
            Decimal("999999999999999.99"),
            Decimal("-999999999999999.99"),
            "999999999999999.99",
            "-999999999999999.99",
        ),
    ],
)
def test_balance_amounts_may_be_negative(
    codec: CorpLinkCodec,
    schema: etree.XMLSchema,
    bal: Decimal,
    avail: Decimal,
    bal_text: str,
    avail_text: str,
) -> None:
    rsp = response(
        trn_code="BAL", balance=Balance("6222020200001234", "CNY", balance=bal, available=avail)
    )
    root = codec.render(rsp)
    balance = root.find(f"{NS}Body/{NS}Balance")
    assert balance is not None
    assert children(balance) == [
        ("Acct", "6222020200001234", {}),
        ("Bal", bal_text, {"Ccy": "CNY"}),
        ("Avail", avail_text, {"Ccy": "CNY"}),
    ]
    assert_valid(schema, root)


@pytest.mark.parametrize(
    "balance",
    [
        Balance("6222020200001234", "CNY", Decimal("1.234"), Decimal("1")),
        Balance("6222020200001234", "CNY", Decimal("1"), Decimal("NaN")),
        Balance("6222020200001234", "CNY", Decimal("1E+16"), Decimal("1")),
        Balance("6222020200001234", "cny", Decimal("1"), Decimal("1")),
        Balance("6222-0202", "CNY", Decimal("1"), Decimal("1")),
    ],
)
def test_a_balance_the_contract_cannot_carry_is_an_honest_9999(
    codec: CorpLinkCodec, schema: etree.XMLSchema, balance: Balance
) -> None:
    root = codec.render(response(trn_code="BAL", balance=balance))
    assert root.findtext(f"{NS}Head/{NS}RetCode") == "9999"
    assert root.find(f"{NS}Body") is None
    assert_valid(schema, root)


# -- INQ, RPLY and refusals: nothing new to render ---------------------------------------


def test_inq_response_carries_the_inqid_and_the_payments_status(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    view = StatusView(state=State.SETTLED, engine=Engine.HVPS, work_date=DAY)
    root = codec.render(response(trn_code="INQ", gw_ref="IQ20261127000008", status=view))
    assert root.findtext(f"{NS}Head/{NS}GwRef") == "IQ20261127000008"
    assert root.findtext(f"{NS}Body/{NS}Status/{NS}State") == "SETTLED"
    assert_valid(schema, root)


@pytest.mark.parametrize(
    ("trn", "code"),
    [("RPLY", "0000"), ("RPLY", "4007"), ("BAL", "6001"), ("BAL", "4006"), ("NTFY", "5001")],
)
def test_responses_without_a_body_are_valid(
    codec: CorpLinkCodec, schema: etree.XMLSchema, trn: str, code: str
) -> None:
    root = codec.render(response(trn_code=trn, ret_code=code, ret_msg="whatever"))
    assert [etree.QName(c).localname for c in root] == ["Head"]
    assert_valid(schema, root)


# -- legacy encodings (corplink.md §1) ---------------------------------------------------


@pytest.mark.parametrize("encoding", ["GB18030", "GBK"])
def test_chinese_notifications_round_trip_in_gb_encodings(
    codec: CorpLinkCodec, schema: etree.XMLSchema, encoding: str
) -> None:
    rsp = response(
        trn_code="NTFY",
        encoding=encoding,
        notices=Notices(notices=(CREDIT, INQUIRY), last=45, more=False),
    )
    root = signed_placeholder(codec.render(rsp))
    data = serialize(root, encoding)
    assert data.startswith(f'<?xml version="1.0" encoding="{encoding}"?>'.encode())
    assert "请核实收款人户名。".encode(encoding) in data
    parsed = parse_body(data)
    assert parsed.encoding == encoding
    assert schema.validate(parsed.root), schema.error_log
    texts = [t.text for t in parsed.root.iter(f"{NS}Text")]
    assert texts == ["货款 发票号 2026-1127", "请核实收款人户名。"]


# -- the schema itself: strict for what the gateway writes --------------------------------


def _mutated(codec: CorpLinkCodec, path: str, text: str | None, **attrs: str) -> etree._Element:
    rsp = response(trn_code="NTFY", notices=Notices(notices=(CREDIT,), last=42, more=False))
    if path.startswith("Body/Balance"):
        rsp = response(
            trn_code="BAL",
            balance=Balance("6222020200001234", "CNY", Decimal("1.00"), Decimal("1.00")),
        )
    root = copy.deepcopy(codec.render(rsp))
    el = root.find("/".join(f"{NS}{p}" for p in path.split("/")))
    assert el is not None
    if text is not None:
        el.text = text
    for name, value in attrs.items():
        el.set(name, value)
    return root


@pytest.mark.parametrize(
    ("path", "text", "attrs"),
    [
        ("Body/Balance/Bal", "-0.00", {}),
        ("Body/Balance/Bal", "1.5", {}),
        ("Body/Balance/Bal", "01.50", {}),
        ("Body/Balance/Bal", "+1.50", {}),
        ("Body/Balance/Bal", "1" * 16 + ".00", {}),
        ("Body/Balance/Avail", None, {"Ccy": "cny"}),
        ("Body/Notifications/Ntfy/Amount", "0.00", {}),
        ("Body/Notifications/Ntfy/Amount", "-1.00", {}),
        ("Body/Notifications/Ntfy/Amount", None, {"Ccy": "usd"}),
        ("Body/Notifications/Ntfy/Amount", "1.12345", {}),
        ("Body/Notifications/Ntfy/Amount", "1500.", {}),
        ("Body/Notifications/Ntfy/Kind", "DEBIT", {}),
        ("Body/Notifications/Ntfy/NtfyId", "0", {}),
        ("Body/Notifications/Ntfy/CptyBankCode", "1021", {}),
        ("Body/Notifications/Ntfy/Time", "2026-11-27T10:00:00", {}),
        ("Body/Notifications/Last", "-1", {}),
        ("Body/Notifications/More", "maybe", {}),
    ],
)
def test_the_xsd_refuses_what_the_gateway_never_writes(
    codec: CorpLinkCodec,
    schema: etree.XMLSchema,
    path: str,
    text: str | None,
    attrs: dict[str, str],
) -> None:
    root = signed_placeholder(_mutated(codec, path, text, **attrs))
    assert not schema.validate(root)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("Body/Balance/Bal", "-1.00"),
        ("Body/Balance/Bal", "-0.10"),
        ("Body/Balance/Avail", "0.00"),
        ("Body/Notifications/Ntfy/Amount", "0.01"),
        ("Body/Notifications/Ntfy/Amount", "1500"),
        ("Body/Notifications/Ntfy/CptyBankCode", "102100"),
        ("Body/Notifications/Ntfy/NtfyId", str(2**63 - 1)),
    ],
)
def test_the_same_mutations_with_good_values_stay_valid(
    codec: CorpLinkCodec, schema: etree.XMLSchema, path: str, text: str
) -> None:
    assert_valid(schema, _mutated(codec, path, text))


@pytest.mark.parametrize(
    ("ccy", "amount", "written"),
    [("USD", "250.50", "250.50"), ("JPY", "1500", "1500"), (None, "88000.00", "88000.00")],
)
def test_a_credit_shows_its_currency_with_its_minor_units(
    codec: CorpLinkCodec, schema: etree.XMLSchema, ccy: str | None, amount: str, written: str
) -> None:
    """docs/foreign-currency.md §4: a SWIFT credit's NTFY names its currency; the amount
    keeps exactly the currency's minor units (1500 yen, never 1500.00)."""
    notice = replace(CREDIT, engine=Engine.SWIFT, amount=Decimal(amount), ccy=ccy)
    root = codec.render(response(trn_code="NTFY", notices=Notices((notice,), 42, more=False)))
    el = root.find(f"{NS}Body/{NS}Notifications/{NS}Ntfy/{NS}Amount")
    assert el is not None
    assert (el.get("Ccy"), el.text) == (ccy or "CNY", written)
    assert_valid(schema, root)


def test_the_xsd_refuses_a_repeated_ntfy_id(codec: CorpLinkCodec, schema: etree.XMLSchema) -> None:
    root = codec.render(response(trn_code="NTFY", notices=Notices((CREDIT,), 42, more=False)))
    page = root.find(f"{NS}Body/{NS}Notifications")
    assert page is not None
    page.insert(0, copy.deepcopy(page[0]))
    assert not schema.validate(signed_placeholder(root))


@pytest.mark.parametrize("name", ["rsp-ntfy.xml", "rsp-bal.xml", "rsp-inq.xml"])
def test_response_samples_are_valid_for_both_validators(schema: etree.XMLSchema, name: str) -> None:
    doc = parse_body((SAMPLES / name).read_bytes()).root
    assert schema.validate(doc), schema.error_log
    assert xmlschema.XMLSchema(str(corplink_schema_path())).is_valid(doc)


def test_xmlschema_agrees_on_rendered_notifications_and_balance(codec: CorpLinkCodec) -> None:
    other = xmlschema.XMLSchema(str(corplink_schema_path()))
    ntfy = codec.render(response(trn_code="NTFY", notices=Notices(ALL, 47, more=False)))
    assert other.is_valid(signed_placeholder(ntfy))
    bal = Balance("6222020200001234", "CNY", Decimal("-1234.56"), Decimal("0"))
    assert other.is_valid(signed_placeholder(codec.render(response(trn_code="BAL", balance=bal))))
