"""DRAFT and DRAFTRFND in the CorpLink codec (docs/bank-drafts.md §2, docs/protocol.md §4):
the request bodies through the schema and the decoder, the digest, and the ``Draft``
response and DRAFT notifications rendered against codecs/corplink.xsd."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.codec.corplink import BusinessRuleError, CorpLinkCodec, serialize
from gateway.codec.corplink_decode import content_digest, decode_request
from gateway.codec.xmlparse import parse_body
from gateway.errors import GatewayError, RetCode
from gateway.model import (
    DraftApply,
    DraftRefundRequest,
    DraftStep,
    DraftView,
    Engine,
    Notice,
    NoticeKind,
    Notices,
    Request,
    State,
    StatusView,
)
from gateway.paths import corplink_schema_path

from .builders import (
    ALL,
    SAMPLES,
    T0,
    assert_valid,
    decode,
    request,
    response,
    root_of,
    signed_placeholder,
    without_signature,
)

NS = "{urn:corplink:1}"
DRAFT_NO = "10310000001900000042"

APPLY_FIELDS = {
    "PayerAcct": "6222020200001234",
    "PayerName": "ACME Trading Co Ltd",
    "PayeeName": "Beta Components Ltd",
}


def draft_apply(
    amount: str = "150000.00",
    ccy: str = "CNY",
    scope: str = "NATIONAL",
    purpose: str | None = None,
    **overrides: str,
) -> str:
    fields = {**APPLY_FIELDS, **overrides}
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    tail = "" if purpose is None else f"<Purpose>{purpose}</Purpose>"
    return (
        f'<DraftApply>{inner}<Amount Ccy="{ccy}">{amount}</Amount>'
        f"<Scope>{scope}</Scope>{tail}</DraftApply>"
    )


def draft_refund(draft_no: str = DRAFT_NO, text: str = "contract cancelled") -> str:
    return f"<DraftRefund><DraftNo>{draft_no}</DraftNo><Text>{text}</Text></DraftRefund>"


def apply_request(body: str | None = None, **head: str) -> str:
    return request(draft_apply() if body is None else body, TrnCode="DRAFT", **head)


def refund_request(body: str | None = None, **head: str) -> str:
    return request(draft_refund() if body is None else body, TrnCode="DRAFTRFND", **head)


def refused(codec: CorpLinkCodec, text: str | bytes) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        decode(codec, text)
    return info.value


# -- the samples (codecs/samples) ------------------------------------------------------


def test_draft_sample_decodes_to_a_draft_apply(codec: CorpLinkCodec) -> None:
    req = decode(codec, (SAMPLES / "draft.xml").read_bytes())
    assert req.head.trn_code == "DRAFT"
    assert req.body == DraftApply(
        payer_acct="6222020200001234",
        payer_name="ACME Trading Co Ltd",
        payee_name="Beta Components Ltd",
        amount=Decimal("150000.00"),
        scope="NATIONAL",
        ccy="CNY",
        purpose="deposit, contract 2026-118",
    )
    assert len(req.digest) == 64


def test_gbk_refund_sample_decodes_its_chinese_text(codec: CorpLinkCodec) -> None:
    req = decode(codec, (SAMPLES / "draftrfnd-gbk.xml").read_bytes())
    assert req.encoding == "GBK"
    assert req.body == DraftRefundRequest(DRAFT_NO, "合同取消，汇票未使用，申请退回。")


@pytest.mark.parametrize("name", ["rsp-draft.xml", "rsp-status-draft.xml"])
def test_draft_response_samples_are_valid_for_both_validators(
    schema: etree.XMLSchema, name: str
) -> None:
    doc = parse_body((SAMPLES / name).read_bytes()).root
    assert schema.validate(doc), schema.error_log
    assert xmlschema.XMLSchema(str(corplink_schema_path())).is_valid(doc)


# -- DraftApply -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            draft_apply(),
            DraftApply(
                "6222020200001234",
                "ACME Trading Co Ltd",
                "Beta Components Ltd",
                Decimal("150000.00"),
                "NATIONAL",
            ),
        ),
        (
            draft_apply("7.5", scope="PROVINCIAL", purpose="保证金"),
            DraftApply(
                "6222020200001234",
                "ACME Trading Co Ltd",
                "Beta Components Ltd",
                Decimal("7.50"),
                "PROVINCIAL",
                purpose="保证金",
            ),
        ),
        (
            draft_apply("0.01", purpose="", PayeeName="B" * 60),
            DraftApply(
                "6222020200001234", "ACME Trading Co Ltd", "B" * 60, Decimal("0.01"), "NATIONAL"
            ),
        ),
    ],
)
def test_draft_apply_decodes(codec: CorpLinkCodec, body: str, expected: DraftApply) -> None:
    req = decode(codec, apply_request(body))
    assert req.body == expected
    assert isinstance(req.body, DraftApply)
    assert str(req.body.amount) == f"{expected.amount:.2f}"


@pytest.mark.parametrize("ccy", ["USD", "cny", "EUR", "人民币"])
def test_another_currency_decodes_for_the_business_rules_to_refuse(
    codec: CorpLinkCodec, ccy: str
) -> None:
    """The spec's 4004 for a non-CNY draft comes after credentials and replay (§8)."""
    body = decode(codec, apply_request(draft_apply("100.00", ccy=ccy))).body
    assert isinstance(body, DraftApply)
    assert (body.ccy, body.amount) == (ccy, Decimal("100.00"))


@pytest.mark.parametrize(
    "amount",
    [
        "0",
        "0.00",
        "-1",
        "-100.00",
        "1.234",
        "100.001",
        "",
        " 100",
        "1,000.00",
        "1e3",
        "NaN",
        "1" * 16,
        "\uff11\uff12\uff13",
    ],
)
def test_a_bad_amount_is_4004_as_for_a_transfer(codec: CorpLinkCodec, amount: str) -> None:
    text = apply_request(draft_apply(amount))
    with pytest.raises(BusinessRuleError) as info:
        decode(codec, text)
    error = info.value
    assert error.code is RetCode.AMOUNT_INVALID
    assert (error.detail or "").startswith("Amount: ")
    assert error.head.trn_code == "DRAFT"
    assert error.head.msg_id == "20261127-000001"
    root = without_signature(parse_body(text.encode()).root)
    assert error.digest == content_digest(root[0], root[1])


def test_a_bad_amount_in_another_currency_is_still_4004(codec: CorpLinkCodec) -> None:
    with pytest.raises(BusinessRuleError) as info:
        decode(codec, apply_request(draft_apply("1.234", ccy="USD")))
    assert info.value.code is RetCode.AMOUNT_INVALID


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (draft_apply(scope="national"), "Scope: invalid value"),
        (draft_apply(scope="LOCAL"), "Scope: invalid value"),
        (draft_apply(scope=" NATIONAL"), "Scope: invalid value"),
        (draft_apply(scope=""), "Scope: invalid value"),
        (
            draft_apply().replace("<Scope>NATIONAL</Scope>", ""),
            "DraftApply: missing child element, expected Scope",
        ),
        (
            draft_apply().replace("<PayeeName>Beta Components Ltd</PayeeName>", ""),
            "Amount: unexpected element, expected PayeeName",
        ),
        (draft_apply(PayeeName=""), "PayeeName: invalid value"),
        (draft_apply(PayeeName="B" * 61), "PayeeName: invalid value"),
        (draft_apply(PayerAcct="6222-0202"), "PayerAcct: invalid value"),
        (draft_apply(purpose="p" * 141), "Purpose: invalid value"),
        (draft_apply().replace(' Ccy="CNY"', ""), "Amount: missing attribute Ccy"),
        (
            draft_apply().replace("</DraftApply>", "<PayeeAcct>1</PayeeAcct></DraftApply>"),
            "PayeeAcct: unexpected element",
        ),
        (
            draft_apply().replace("<Scope>", "<Scope lang='en'>"),
            "Scope: attribute lang not allowed",
        ),
    ],
)
def test_draft_apply_violations_are_1003_naming_the_element(
    codec: CorpLinkCodec, body: str, detail: str
) -> None:
    error = refused(codec, apply_request(body))
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)
    assert "6222" not in (error.detail or "")  # an account number is never echoed


# -- DraftRefund ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draft_no", "text"),
    [(DRAFT_NO, "contract cancelled"), ("0" * 20, "t" * 500), ("9" * 20, " 不要了 ")],
)
def test_draft_refund_decodes(codec: CorpLinkCodec, draft_no: str, text: str) -> None:
    req = decode(codec, refund_request(draft_refund(draft_no, text)))
    assert req.body == DraftRefundRequest(draft_no=draft_no, text=text)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (draft_refund(DRAFT_NO + "1"), "DraftNo: invalid value"),  # 21 digits
        (draft_refund(DRAFT_NO[:-1]), "DraftNo: invalid value"),  # 19 digits
        (draft_refund("1031000000190000004A"), "DraftNo: invalid value"),
        (draft_refund(" " + DRAFT_NO[1:]), "DraftNo: invalid value"),
        (draft_refund("\uff11" * 20), "DraftNo: invalid value"),  # full-width digits
        (draft_refund(""), "DraftNo: invalid value"),
        (draft_refund(text=""), "Text: invalid value"),
        (draft_refund(text=" \n "), "Text: invalid value"),
        (draft_refund(text="t" * 501), "Text: invalid value"),
        (draft_refund(text="长" * 200_000), "Text: invalid value"),
        (f"<DraftRefund><DraftNo>{DRAFT_NO}</DraftNo></DraftRefund>", "DraftRefund: missing"),
        ("<DraftRefund><Text>t</Text></DraftRefund>", "Text: unexpected element"),
        (
            draft_refund().replace("</DraftRefund>", "<Amount Ccy='CNY'>1</Amount></DraftRefund>"),
            "Amount: unexpected element",
        ),
    ],
)
def test_draft_refund_violations_are_1003_naming_the_element(
    codec: CorpLinkCodec, body: str, detail: str
) -> None:
    error = refused(codec, refund_request(body))
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)


@pytest.mark.parametrize(
    ("trn", "body", "child"),
    [
        ("DRAFT", draft_refund(), "DraftRefund"),
        ("DRAFTRFND", draft_apply(), "DraftApply"),
        ("DRAFT", "<BalanceQuery><Acct>1</Acct></BalanceQuery>", "BalanceQuery"),
        ("PAY", draft_apply(), "DraftApply"),
    ],
)
def test_the_body_must_match_the_trncode(
    codec: CorpLinkCodec, trn: str, body: str, child: str
) -> None:
    error = refused(codec, request(body, TrnCode=trn))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"{child}: does not match TrnCode {trn}"


@pytest.mark.parametrize(
    ("body", "trn", "detail"),
    [
        (draft_apply(scope="LOCAL"), "DRAFT", "Scope: invalid value"),
        (draft_refund("1" * 21), "DRAFTRFND", "DraftNo: invalid value"),
        (draft_refund("１" * 20), "DRAFTRFND", "DraftNo: invalid value"),
        (draft_apply().replace(' Ccy="CNY"', ""), "DRAFT", "Amount: missing attribute Ccy"),
    ],
)
def test_the_decoder_fails_closed_without_the_schema(body: str, trn: str, detail: str) -> None:
    """Should a root ever skip ``validate``, the decoder still refuses with 1003."""
    root = without_signature(root_of(request(body, TrnCode=trn)))
    with pytest.raises(GatewayError) as info:
        decode_request(root, "UTF-8")
    assert info.value.code is RetCode.SCHEMA
    assert (info.value.detail or "").startswith(detail)


# -- the idempotency digest covers the draft bodies (docs/protocol.md §7) ---------------

APPLY = apply_request(draft_apply(purpose="x"))
REFUND = refund_request()


@pytest.mark.parametrize(
    "changed",
    [
        apply_request(draft_apply(purpose="y")),
        apply_request(draft_apply("150000.01", purpose="x")),
        apply_request(draft_apply("150000.0", purpose="x")),
        apply_request(draft_apply(ccy="USD", purpose="x")),
        apply_request(draft_apply(scope="PROVINCIAL", purpose="x")),
        apply_request(draft_apply(purpose="x", PayeeName="Beta Components Ltd.")),
        apply_request(draft_apply(purpose="x", PayerName="ACME")),
        apply_request(draft_apply(purpose="x", PayerAcct="6222020200001235")),
        apply_request(draft_apply()),
        apply_request(draft_apply(purpose="x"), MsgId="20261127-000002"),
    ],
)
def test_apply_digest_differs_when_any_field_differs(codec: CorpLinkCodec, changed: str) -> None:
    assert decode(codec, changed).digest != decode(codec, APPLY).digest


@pytest.mark.parametrize(
    "changed",
    [
        refund_request(draft_refund("10310000001900000043")),
        refund_request(draft_refund(text="contract cancelled.")),
        refund_request(OperId="op02"),
    ],
)
def test_refund_digest_differs_when_any_field_differs(codec: CorpLinkCodec, changed: str) -> None:
    assert decode(codec, changed).digest != decode(codec, REFUND).digest


@pytest.mark.parametrize("encoding", ["GBK", "GB18030"])
def test_digest_of_a_chinese_application_ignores_the_encoding(
    codec: CorpLinkCodec, encoding: str
) -> None:
    text = apply_request(draft_apply(purpose="工程款保证金", PayeeName="上海贝塔零部件有限公司"))
    utf8 = decode(codec, text)
    legacy = decode(codec, (f'<?xml version="1.0" encoding="{encoding}"?>' + text).encode(encoding))
    assert legacy.body == utf8.body
    assert isinstance(legacy.body, DraftApply)
    assert legacy.body.payee_name == "上海贝塔零部件有限公司"
    assert (legacy.digest, legacy.encoding) == (utf8.digest, encoding)


# -- the Draft response body ------------------------------------------------------------

VIEW = DraftView(
    draft_no=DRAFT_NO,
    issue_date=date(2026, 11, 27),
    expiry_date=date(2026, 12, 28),
    amount=Decimal("150000.00"),
    code="0481730592661184",
    state="PENDING",
)
HISTORY = (
    DraftStep("PENDING", T0),
    DraftStep("ISSUED", T0 + timedelta(seconds=3)),
    DraftStep("REFUNDING", T0 + timedelta(days=1)),
    DraftStep("ISSUED", T0 + timedelta(days=1, seconds=4), reason_code="AC04"),
)


def leaves(el: etree._Element) -> list[tuple[str, str | None, dict[str, str]]]:
    return [(etree.QName(c).localname, c.text, dict(c.attrib)) for c in el]


def draft_of(root: etree._Element) -> etree._Element:
    found = root.find(f"{NS}Body/{NS}Draft")
    assert found is not None
    return found


def test_draft_response_carries_the_draft_without_history(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    root = codec.render(response(trn_code="DRAFT", gw_ref="GW20261127A000000021", draft=VIEW))
    assert leaves(draft_of(root)) == [
        ("DraftNo", DRAFT_NO, {}),
        ("IssueDate", "2026-11-27", {}),
        ("ExpiryDate", "2026-12-28", {}),
        ("Amount", "150000.00", {"Ccy": "CNY"}),
        ("Code", "0481730592661184", {}),
        ("State", "PENDING", {}),
    ]
    assert root.findtext(f"{NS}Head/{NS}RetCode") == "0000"
    assert_valid(schema, root)


def test_status_of_a_draft_lists_its_history_with_reasons(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    view = replace(VIEW, state="ISSUED", history=HISTORY)
    root = codec.render(response(trn_code="STATUS", draft=view))
    draft = draft_of(root)
    assert draft.findtext(f"{NS}State") == "ISSUED"
    steps = draft.findall(f"{NS}History/{NS}Step")
    assert [(s.get("State"), s.get("At")) for s in steps] == [
        ("PENDING", "2026-11-27T10:00:00.012+08:00"),
        ("ISSUED", "2026-11-27T10:00:03.012+08:00"),
        ("REFUNDING", "2026-11-28T10:00:00.012+08:00"),
        ("ISSUED", "2026-11-28T10:00:04.012+08:00"),
    ]
    assert [leaves(s) for s in steps][-1] == [("Reason", None, {"Code": "AC04"})]
    assert all(leaves(s) == [] for s in steps[:-1])
    assert_valid(schema, root)


def test_the_draft_wins_over_a_status_given_with_it(codec: CorpLinkCodec) -> None:
    view = StatusView(state=State.ACCEPTED, engine=Engine.INTRA, work_date=None)
    root = codec.render(response(trn_code="STATUS", draft=VIEW, status=view))
    body = root.find(f"{NS}Body")
    assert body is not None
    assert [etree.QName(c).localname for c in body] == ["Draft"]


def test_history_steps_the_schema_cannot_carry_are_left_out(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    history = (
        DraftStep("PENDING", T0),
        DraftStep("LOST", T0),
        DraftStep("REJECTED", T0, reason_code="not a code"),
    )
    root = codec.render(response(draft=replace(VIEW, history=history)))
    steps = draft_of(root).findall(f"{NS}History/{NS}Step")
    assert [(s.get("State"), leaves(s)) for s in steps] == [("PENDING", []), ("REJECTED", [])]
    assert_valid(schema, root)
    only_bad = replace(VIEW, history=(DraftStep("lost", T0),))
    assert draft_of(codec.render(response(draft=only_bad))).find(f"{NS}History") is None


@pytest.mark.parametrize(
    "change",
    [
        {"draft_no": DRAFT_NO[:-1]},
        {"draft_no": DRAFT_NO + "0"},
        {"draft_no": "１" * 20},
        {"code": "123456789012345"},
        {"code": "12345678901234567"},
        {"code": "12345678901234a6"},
        {"state": "pending"},
        {"state": "ACCEPTED"},
        {"amount": Decimal("0")},
        {"amount": Decimal("-1.00")},
        {"amount": Decimal("1.234")},
        {"amount": Decimal("NaN")},
        {"amount": Decimal("1E+15")},
    ],
)
def test_a_draft_the_schema_cannot_carry_turns_into_9999_without_body(
    codec: CorpLinkCodec, schema: etree.XMLSchema, change: dict[str, object]
) -> None:
    bad = replace(VIEW, **change)
    root = codec.render(response(trn_code="DRAFT", draft=bad))
    assert root.findtext(f"{NS}Head/{NS}RetCode") == "9999"
    assert root.find(f"{NS}Body") is None
    assert_valid(schema, root)


# -- DRAFT notifications ----------------------------------------------------------------


def draft_notice(ntfy_id: int, draft_state: str, **fields: object) -> Notice:
    base: dict[str, object] = {
        "ntfy_id": ntfy_id,
        "kind": NoticeKind.DRAFT,
        "at": T0 + timedelta(minutes=ntfy_id),
        "orig_msg_id": "20261127-000021",
        "draft_no": DRAFT_NO,
        "draft_state": draft_state,
    }
    return Notice(**{**base, **fields})  # type: ignore[arg-type]


ISSUED = draft_notice(60, "ISSUED")
PAID = draft_notice(61, "PAID", amount=Decimal("149000.00"))
SETTLED = draft_notice(62, "SETTLED", amount=Decimal("1000.00"))
SETTLED_IN_FULL = draft_notice(63, "SETTLED", amount=Decimal("0"))
REFUNDED = draft_notice(64, "REFUNDED")
REJECTED = draft_notice(65, "REJECTED", reason_code="AM04", text="insufficient funds")
DRAFT_NOTICES = (ISSUED, PAID, SETTLED, SETTLED_IN_FULL, REFUNDED, REJECTED)

HEAD_OF: list[tuple[str, str | None, dict[str, str]]] = [
    ("NtfyId", None, {}),
    ("Kind", "DRAFT", {}),
    ("Time", None, {}),
    ("OrigMsgId", "20261127-000021", {}),
    ("DraftNo", DRAFT_NO, {}),
]


def rendered(codec: CorpLinkCodec, *notices: Notice) -> list[etree._Element]:
    last = max(n.ntfy_id for n in notices)
    root = codec.render(response(trn_code="NTFY", notices=Notices(notices, last, more=False)))
    return root.findall(f"{NS}Body/{NS}Notifications/{NS}Ntfy")


@pytest.mark.parametrize(
    ("notice", "tail"),
    [
        (ISSUED, []),
        (PAID, [("SettleAmount", "149000.00", {"Ccy": "CNY"})]),
        (SETTLED, [("Remainder", "1000.00", {"Ccy": "CNY"})]),
        (SETTLED_IN_FULL, [("Remainder", "0.00", {"Ccy": "CNY"})]),
        (REFUNDED, []),
        (REJECTED, [("Reason", "insufficient funds", {"Code": "AM04"})]),
    ],
)
def test_each_draft_notification_has_its_elements_in_order(
    codec: CorpLinkCodec, notice: Notice, tail: list[tuple[str, str | None, dict[str, str]]]
) -> None:
    (ntfy,) = rendered(codec, notice)
    at = notice.at.isoformat(timespec="milliseconds")
    expected = [
        (name, str(notice.ntfy_id) if name == "NtfyId" else at if name == "Time" else text, a)
        for name, text, a in HEAD_OF
    ]
    assert leaves(ntfy) == [
        *expected,
        ("State", notice.draft_state, {}),
        ("At", at, {}),
        *tail,
    ]


def test_a_page_mixing_every_kind_is_valid_for_both_validators(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    notices = tuple(sorted((*ALL, *DRAFT_NOTICES), key=lambda n: n.ntfy_id))
    root = codec.render(response(trn_code="NTFY", notices=Notices(notices, 65, more=False)))
    kinds = [n.findtext(f"{NS}Kind") for n in root.iterfind(f".//{NS}Ntfy")]
    assert kinds.count("DRAFT") == len(DRAFT_NOTICES)
    assert_valid(schema, root)
    assert xmlschema.XMLSchema(str(corplink_schema_path())).is_valid(root)


@pytest.mark.parametrize(
    ("notice", "absent", "text"),
    [
        (draft_notice(70, "PAID", draft_no="1" * 21), "DraftNo", None),
        (draft_notice(71, "GONE"), "State", None),
        (draft_notice(72, "PENDING", amount=Decimal("5.00")), "SettleAmount", None),
        (draft_notice(73, "PAID", amount=Decimal("0")), "SettleAmount", None),
        (draft_notice(74, "PAID", amount=Decimal("1.001")), "SettleAmount", None),
        (draft_notice(75, "SETTLED", amount=Decimal("-0.01")), "Remainder", None),
        (draft_notice(76, "REJECTED", reason_code="bad", text="why"), "Reason", "why"),
        (draft_notice(77, "ISSUED", reason_code="AC01", text="x"), "Reason", "x"),
        (draft_notice(78, "PAID", orig_msg_id="has space", amount=Decimal(1)), "OrigMsgId", None),
    ],
)
def test_draft_fields_the_schema_cannot_carry_are_left_out(
    codec: CorpLinkCodec, schema: etree.XMLSchema, notice: Notice, absent: str, text: str | None
) -> None:
    (ntfy,) = rendered(codec, notice)
    assert ntfy.find(f"{NS}{absent}") is None
    assert ntfy.findtext(f"{NS}Text") == text
    assert_valid(schema, ntfy.getroottree().getroot())


def test_payment_fields_never_leak_into_a_draft_notification(codec: CorpLinkCodec) -> None:
    notice = draft_notice(
        80,
        "PAID",
        amount=Decimal("10.00"),
        state=State.SETTLED,
        engine=Engine.INTRA,
        work_date=date(2026, 11, 27),
        acct="6222020200001234",
        gw_ref="GW1",
        counterparty_name="someone",
    )
    (ntfy,) = rendered(codec, notice)
    names = [etree.QName(c).localname for c in ntfy]
    assert names == [
        "NtfyId",
        "Kind",
        "Time",
        "OrigMsgId",
        "DraftNo",
        "State",
        "At",
        "SettleAmount",
    ]
    assert ntfy.findtext(f"{NS}State") == "PAID"


def test_the_old_kinds_still_render_as_before(codec: CorpLinkCodec) -> None:
    """The DRAFT branch leaves the other kinds alone: no DraftNo, At or draft amounts."""
    for ntfy in rendered(codec, *ALL):
        names = {etree.QName(c).localname for c in ntfy}
        assert names.isdisjoint({"DraftNo", "At", "SettleAmount", "Remainder"})


@pytest.mark.parametrize("encoding", ["GBK", "GB18030", "UTF-8"])
def test_draft_answers_serialise_in_the_request_encoding(
    codec: CorpLinkCodec, schema: etree.XMLSchema, encoding: str
) -> None:
    rejected = draft_notice(90, "REJECTED", reason_code="AC04", text="账户已销户")
    for rsp in (
        response(trn_code="DRAFT", draft=VIEW, encoding=encoding),
        response(trn_code="NTFY", notices=Notices((rejected,), 90, more=False), encoding=encoding),
    ):
        data = serialize(signed_placeholder(codec.render(rsp)), encoding)
        parsed = parse_body(data)
        assert parsed.encoding == encoding
        assert schema.validate(parsed.root), schema.error_log
    assert parsed.root.findtext(f".//{NS}Reason") == "账户已销户"


# -- any text in any field: a typed body or a GatewayError, nothing else ----------------

_XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
).map(lambda t: "".join(c for c in t if c in "\t\n\r" or ord(c) >= 0x20).replace("\r", ""))


FUZZ_CODEC = CorpLinkCodec()  # hypothesis calls the tests many times: one compiled XSD
FUZZ = settings(max_examples=300, deadline=None, database=None)


def _escaped(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;")


def _outcome(text: str) -> Request | GatewayError:
    """The decoded request, or the refusal; any other exception fails the test."""
    try:
        return decode(FUZZ_CODEC, text)
    except GatewayError as exc:
        return exc


@FUZZ
@given(
    field=st.sampled_from(["PayerAcct", "PayerName", "PayeeName", "Amount", "Scope", "Purpose"]),
    value=_XML_TEXT,
)
def test_any_text_in_a_draft_apply_field_decodes_or_is_refused(field: str, value: str) -> None:
    body = draft_apply(purpose="p")
    start = body.index(f"<{field}")
    open_end = body.index(">", start) + 1
    close = body.index(f"</{field}>", open_end)
    body = body[:open_end] + _escaped(value) + body[close:]
    req = _outcome(apply_request(body))
    if isinstance(req, GatewayError):
        assert req.code in (RetCode.SCHEMA, RetCode.AMOUNT_INVALID)
        return
    assert isinstance(req.body, DraftApply)
    assert req.body.scope in ("NATIONAL", "PROVINCIAL")
    assert req.body.amount > 0


@FUZZ
@given(draft_no=_XML_TEXT, text=_XML_TEXT)
def test_any_refund_decodes_or_is_refused(draft_no: str, text: str) -> None:
    body = draft_refund(_escaped(draft_no), _escaped(text))
    req = _outcome(refund_request(body))
    if isinstance(req, GatewayError):
        assert req.code is RetCode.SCHEMA
        return
    assert isinstance(req.body, DraftRefundRequest)
    assert len(req.body.draft_no) == 20
    assert req.body.draft_no.isascii()
    assert req.body.draft_no.isdigit()
