"""The schema stage: read_head, validate (1003, 1004), corplink.md §2, §4, §8."""

from __future__ import annotations

import pytest
import xmlschema

from gateway.codec.corplink import CorpLinkCodec, PartialHead
from gateway.errors import GatewayError, RetCode
from gateway.paths import corplink_schema_path

from .builders import DS, SAMPLES, SIGNATURE, head, request, root_of, status_query, transfer

PAIN = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"


def refused(codec: CorpLinkCodec, text: str) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        codec.validate(root_of(text))
    return info.value


@pytest.mark.parametrize(
    "name",
    [
        "pay.xml",
        "status.xml",
        "pay-gb18030.xml",
        "ntfy.xml",
        "inq.xml",
        "rply-gb18030.xml",
        "bal.xml",
        "draft.xml",
        "draftrfnd-gbk.xml",
    ],
)
def test_samples_are_valid(codec: CorpLinkCodec, name: str) -> None:
    codec.validate(root_of((SAMPLES / name).read_bytes()))


def test_the_xsd_is_also_valid_for_an_independent_implementation() -> None:
    schema = xmlschema.XMLSchema(str(corplink_schema_path()))
    assert schema.is_valid(root_of((SAMPLES / "pay.xml").read_bytes()))
    assert not schema.is_valid(root_of(request(transfer(extra="<Foo/>"))))


@pytest.mark.parametrize(
    "body",
    [
        transfer(),
        transfer(extra="<Priority>URGT</Priority><BizType>DEBIT</BizType><Purpose></Purpose>"),
        transfer(amount="0", ccy="USD"),  # amount rules are 4004 in the decoder, not 1003
        transfer(PayeeBankCode="not-a-code"),  # 4002 from the router, not 1003
    ],
)
def test_valid_pay_bodies(codec: CorpLinkCodec, body: str) -> None:
    codec.validate(root_of(request(body)))


@pytest.mark.parametrize(
    ("trn", "body"),
    [
        ("STATUS", status_query(seq_no="7")),
        ("NTFY", "<NotifyPull><After>42</After><Max>500</Max></NotifyPull>"),
        ("INQ", "<Inquiry><OrigMsgId>M1</OrigMsgId><Text>where is it?</Text></Inquiry>"),
        ("RPLY", "<Reply><InqId>Q-1</InqId><Text>paid</Text></Reply>"),
        ("BAL", "<BalanceQuery><Acct>6222020200001234</Acct></BalanceQuery>"),
        ("MT101", "<MT><![CDATA[{1:F01BANKCNBJAXXX0000000000}{4:\n:20:REF\n-}]]></MT>"),
        ("PAIN001", f'<Document xmlns="{PAIN}"><CstmrCdtTrfInitn/></Document>'),
        (
            "PAYROLL",
            "<Batch><PayerAcct>1</PayerAcct><PayerName>A</PayerName>"
            + "".join(
                f"<Item><SeqNo>{n}</SeqNo><PayeeAcct>2</PayeeAcct><PayeeName>B</PayeeName>"
                f'<PayeeBankCode>102100099996</PayeeBankCode><Amount Ccy="CNY">1</Amount></Item>'
                for n in (1, 2)
            )
            + "</Batch>",
        ),
    ],
)
def test_every_trncode_with_its_body_is_valid(codec: CorpLinkCodec, trn: str, body: str) -> None:
    codec.validate(root_of(request(body, TrnCode=trn)))


# -- 1003, naming the first offending element ------------------------------------


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (
            request(transfer(extra="<Foo/>")),
            "Foo: unexpected element, expected Priority or BizType or Purpose",
        ),
        (request(head_xml=head().replace("</Head>", "<Extra/></Head>")), "Extra: unexpected"),
        (request().replace("</CorpLink>", "<Trailer/></CorpLink>"), "Trailer: unexpected"),
        (request(signature=""), "CorpLink: missing child element, expected Signature"),
        (request(signature=SIGNATURE + SIGNATURE), "Signature: unexpected element"),
        (request(transfer().replace(' Ccy="CNY"', "")), "Amount: missing attribute Ccy"),
        (
            request(head_xml=head().replace("<Head>", '<Head id="x">')),
            "Head: attribute id not allowed",
        ),
        (request(CorpId="c1-lowercase"), "CorpId: invalid value"),
        (request(OperId="op 01"), "OperId: invalid value"),
        (request(MsgId="M" * 36), "MsgId: invalid value"),
        (request(SendTime="2026-11-27T10:00:00"), "SendTime: invalid value"),
        (request(SendTime="2026-11-27T24:00:00+08:00"), "SendTime: invalid value"),
        (request(transfer(PayerAcct="6222-0202")), "PayerAcct: invalid value"),
        (request(transfer(PayeeName="N" * 61)), "PayeeName: invalid value"),
        (request(transfer(PayerName="")), "PayerName: invalid value"),
        (request(transfer(extra="<Priority>HIGH</Priority>")), "Priority: invalid value"),
        (request(transfer(extra="<Purpose>" + "p" * 141 + "</Purpose>")), "Purpose: invalid"),
        (
            request(status_query().replace("<OrigMsgId>", "text<OrigMsgId>"), TrnCode="STATUS"),
            "StatusQuery: unexpected content",
        ),
        (request(status_query(seq_no="0"), TrnCode="STATUS"), "SeqNo: invalid value"),
        (request(""), "Body: missing child element, expected Transfer or Batch"),
        (
            request(
                "<Batch><PayerAcct>1</PayerAcct><PayerName>A</PayerName>"
                + "<Item><SeqNo>1</SeqNo><PayeeAcct>2</PayeeAcct><PayeeName>B</PayeeName>"
                "<PayeeBankCode>1</PayeeBankCode><Amount Ccy='CNY'>1</Amount></Item>"
                * 2
                + "</Batch>",
                TrnCode="PAYROLL",
            ),
            "Item: duplicate SeqNo",
        ),
    ],
)
def test_schema_violations_name_the_element(codec: CorpLinkCodec, text: str, detail: str) -> None:
    error = refused(codec, text)
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)


def test_schema_details_never_echo_values(codec: CorpLinkCodec) -> None:
    error = refused(codec, request(transfer(PayerAcct="SECRET-6222")))
    assert "SECRET" not in (error.detail or "")
    assert "SECRET" not in error.ret_msg


def test_a_huge_unknown_element_name_is_shortened(codec: CorpLinkCodec) -> None:
    error = refused(codec, request(transfer(extra=f"<{'X' * 5000}/>")))
    assert len(error.detail or "") < 200


@pytest.mark.parametrize(
    ("root", "name"),
    [
        ('<CorpLinkRsp xmlns="urn:corplink:1"/>', "CorpLinkRsp"),
        ('<CorpLink xmlns="urn:corplink:2"/>', "CorpLink"),
        ("<CorpLink/>", "CorpLink"),
        ('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>', "Document"),
    ],
)
def test_wrong_root_is_1003(codec: CorpLinkCodec, root: str, name: str) -> None:
    error = refused(codec, root)
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(f"{name}: root must be CorpLink")


def test_another_ds_element_in_place_of_the_signature_is_1003(codec: CorpLinkCodec) -> None:
    error = refused(codec, request(signature=f'<ds:Object xmlns:ds="{DS}"/>'))
    assert error.code is RetCode.SCHEMA
    assert error.detail == "Object: expected Signature"


def test_signature_inside_is_left_to_the_signature_layer(codec: CorpLinkCodec) -> None:
    codec.validate(
        root_of(request(signature=f'<ds:Signature xmlns:ds="{DS}"><Any/></ds:Signature>'))
    )


@pytest.mark.parametrize(
    ("trn", "body", "child"),
    [
        ("PAY", status_query(), "StatusQuery"),
        ("STATUS", transfer(), "Transfer"),
        ("PAY", f'<Document xmlns="{PAIN}"/>', "Document"),
        ("PAIN001", f'<Other xmlns="{PAIN}"/>', "Other"),
    ],
)
def test_body_must_match_the_trncode(codec: CorpLinkCodec, trn: str, body: str, child: str) -> None:
    error = refused(codec, request(body, TrnCode=trn))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"{child}: does not match TrnCode {trn}"


# -- 1004 -----------------------------------------------------------------------


@pytest.mark.parametrize("trn", ["FXPAY", "pay", "PAY ", ""])
def test_unknown_trncode_is_1004_even_with_an_unknown_body(codec: CorpLinkCodec, trn: str) -> None:
    error = refused(codec, request("<FxTransfer/>", TrnCode=trn))
    assert error.code is RetCode.UNKNOWN_TRNCODE


def test_unknown_trncode_is_named_when_it_is_a_plain_token(codec: CorpLinkCodec) -> None:
    assert refused(codec, request(TrnCode="FXPAY")).detail == "TrnCode FXPAY unknown"
    assert refused(codec, request(TrnCode="PA-Y")).detail == "TrnCode unknown"


def test_older_pain001_version_is_an_unsupported_payload(codec: CorpLinkCodec) -> None:
    body = '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>'
    error = refused(codec, request(body, TrnCode="PAIN001"))
    assert error.code is RetCode.UNKNOWN_TRNCODE
    assert error.detail == "pain.001.001.03 not supported, expected pain.001.001.09"


def test_missing_trncode_is_a_schema_violation(codec: CorpLinkCodec) -> None:
    text = request(head_xml=head().replace("<TrnCode>PAY</TrnCode>", ""))
    error = refused(codec, text)
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith("CorpId: unexpected element, expected TrnCode")


# -- read_head: what a refusal can echo -------------------------------------------


def test_read_head_echoes_valid_fields_before_the_schema(codec: CorpLinkCodec) -> None:
    root = root_of(request(transfer(extra="<Foo/>")))
    assert codec.read_head(root) == PartialHead("PAY", "C100000001", "20261127-000001")


def test_read_head_blanks_what_does_not_match_the_spec(codec: CorpLinkCodec) -> None:
    root = root_of(request(CorpId="lower", MsgId="has space", TrnCode="FXPAY"))
    assert codec.read_head(root) == PartialHead("FXPAY", "", "")


@pytest.mark.parametrize(
    "text",
    [
        '<CorpLink xmlns="urn:other"><Head><CorpId>C1</CorpId></Head></CorpLink>',
        '<CorpLink xmlns="urn:corplink:1"><Body/></CorpLink>',
        "<x/>",
    ],
)
def test_read_head_is_empty_when_nothing_can_be_read(codec: CorpLinkCodec, text: str) -> None:
    assert codec.read_head(root_of(text)) == PartialHead("", "", "")
