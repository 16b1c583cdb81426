"""Typed decode of PAY and STATUS, amount rules (4004), the digest (corplink.md §4, §7)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.codec.corplink import BusinessRuleError, CorpLinkCodec
from gateway.codec.corplink_decode import content_digest, decode_request
from gateway.codec.xmlparse import parse_body
from gateway.errors import GatewayError, RetCode
from gateway.model import BizType, Priority, StatusQuery, Transfer

from .builders import (
    SAMPLES,
    decode,
    request,
    root_of,
    self_signed,
    status_query,
    transfer,
    without_signature,
)


def test_pay_sample_decodes_to_a_typed_transfer(codec: CorpLinkCodec) -> None:
    req = decode(codec, (SAMPLES / "pay.xml").read_bytes())
    assert req.head.trn_code == "PAY"
    assert req.head.corp_id == "C100000001"
    assert req.head.oper_id == "op01"
    assert req.head.msg_id == "20261127-000001"
    assert req.head.send_time == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert req.body == Transfer(
        payer_acct="6222020200001234",
        payer_name="ACME Trading Co Ltd",
        payee_acct="6222020200005678",
        payee_name="Beta Components Ltd",
        payee_bank_code="102100099996",
        amount=Decimal("1234.50"),
        ccy="CNY",
        priority=Priority.NORM,
        biz_type=BizType.CREDIT,
        purpose="invoice 2026-1127",
    )
    assert req.encoding == "UTF-8"
    assert len(req.digest) == 64
    assert req.signer is None  # the signature layer fills it in


def test_gb18030_sample_decodes_chinese_names(codec: CorpLinkCodec) -> None:
    req = decode(codec, (SAMPLES / "pay-gb18030.xml").read_bytes())
    assert isinstance(req.body, Transfer)
    assert req.body.payer_name == "北京艾克美贸易有限公司"
    assert req.body.payee_name == "上海贝塔零部件有限公司"
    assert req.body.purpose == "货款 发票号 2026-1127"
    assert req.body.priority is Priority.URGT
    assert req.encoding == "GB18030"


def test_defaults_and_optional_fields(codec: CorpLinkCodec) -> None:
    req = decode(codec, request(transfer(amount="7", extra="<BizType>DEBIT</BizType><Purpose/>")))
    assert isinstance(req.body, Transfer)
    assert req.body.amount == Decimal("7.00")
    assert req.body.priority is Priority.NORM
    assert req.body.biz_type is BizType.DEBIT
    assert req.body.purpose is None


@pytest.mark.parametrize(
    ("send_time", "expected"),
    [
        ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, 0, tzinfo=UTC)),
        ("2026-11-27T10:00:00.123456789+08:00", datetime(2026, 11, 27, 2, 0, 0, 123456, UTC)),
        ("2026-11-27T10:00:00-05:00", datetime(2026, 11, 27, 15, 0, tzinfo=UTC)),
    ],
)
def test_send_time_keeps_its_offset(
    codec: CorpLinkCodec, send_time: str, expected: datetime
) -> None:
    assert decode(codec, request(SendTime=send_time)).head.send_time == expected


def test_status_sample_and_seq_no(codec: CorpLinkCodec) -> None:
    req = decode(codec, (SAMPLES / "status.xml").read_bytes())
    assert req.body == StatusQuery(orig_msg_id="20261127-000001", seq_no=None)
    req = decode(codec, request(status_query(seq_no=" 42 "), TrnCode="STATUS"))
    assert req.body == StatusQuery(orig_msg_id="20261127-000001", seq_no=42)


def test_pain001_and_mt101_are_left_to_their_own_codecs() -> None:
    """``decode_request`` alone handles CorpLink bodies; the codec routes the others."""
    root = without_signature(root_of(request("<MT>x</MT>", TrnCode="MT101")))
    with pytest.raises(GatewayError) as info:
        decode_request(root, "UTF-8")
    assert info.value.code is RetCode.UNKNOWN_TRNCODE
    assert info.value.detail == "TrnCode MT101 not supported here"


# -- amount rules, 4004 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "ccy"),
    [
        ("0", "CNY"),
        ("0.00", "CNY"),
        ("1.234", "CNY"),
        ("100", "USD"),
        ("100", "cny"),
        ("100", ""),
        ("1,000.00", "CNY"),
        (" 100", "CNY"),
        ("100 ", "CNY"),
        ("", "CNY"),
        ("1.", "CNY"),
        (".5", "CNY"),
        ("-1", "CNY"),
        ("+1", "CNY"),
        ("1e3", "CNY"),
        ("NaN", "CNY"),
        ("Infinity", "CNY"),
        ("1" * 16, "CNY"),
        ("\uff11\uff12\uff13", "CNY"),  # full-width digits: Decimal() would take them
    ],
)
def test_invalid_amount_or_currency_is_4004(codec: CorpLinkCodec, amount: str, ccy: str) -> None:
    with pytest.raises(BusinessRuleError) as info:
        decode(codec, request(transfer(amount=amount, ccy=ccy)))
    error = info.value
    assert error.code is RetCode.AMOUNT_INVALID
    assert (error.detail or "").startswith("Amount: ")
    # what the pipeline needs to answer 3001/3002 first (corplink.md §8)
    assert error.head.msg_id == "20261127-000001"
    assert len(error.digest) == 64


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.01", "0.01"), ("1234.5", "1234.50"), ("999999999999999.99", "999999999999999.99")],
)
def test_valid_amounts(codec: CorpLinkCodec, text: str, value: str) -> None:
    body = decode(codec, request(transfer(amount=text))).body
    assert isinstance(body, Transfer)
    assert body.amount == Decimal(value)
    assert str(body.amount) == value


def test_amount_error_digest_equals_the_digest_of_the_same_request(codec: CorpLinkCodec) -> None:
    text = request(transfer(amount="0"))
    with pytest.raises(BusinessRuleError) as info:
        decode(codec, text)
    root = without_signature(parse_body(text.encode()).root)
    head, body = root[0], root[1]
    assert info.value.digest == content_digest(head, body)


# -- digest, corplink.md §7 -----------------------------------------------------------

BASE = request(transfer(extra="<Purpose/>"))

SAME_CONTENT = {
    "declaration": '<?xml version="1.0" encoding="UTF-8"?>\n' + BASE,
    "single-quotes": BASE.replace('Ccy="CNY"', "Ccy='CNY'"),
    "empty-element-form": BASE.replace("<Purpose/>", "<Purpose></Purpose>"),
    "character-references": BASE.replace("Beta Components", "&#x42;eta&#32;Components"),
    "prefixed-root": BASE.replace(
        '<CorpLink xmlns="urn:corplink:1">',
        '<cl:CorpLink xmlns:cl="urn:corplink:1" xmlns="urn:corplink:1" xmlns:u="urn:unused">',
    ).replace("</CorpLink>", "</cl:CorpLink>"),
    "namespace-on-children": BASE.replace(
        '<CorpLink xmlns="urn:corplink:1">', '<c:CorpLink xmlns:c="urn:corplink:1">'
    )
    .replace("</CorpLink>", "</c:CorpLink>")
    .replace("<Head>", '<Head xmlns="urn:corplink:1">')
    .replace("<Body>", '<Body xmlns="urn:corplink:1">'),
    "whitespace-outside-head-and-body": BASE.replace("<Head>", "\n  <Head>").replace(
        "</Body>", "</Body>\n  "
    ),
    "other-signature": BASE.replace("<ds:SignedInfo/>", "<ds:SignedInfo>x</ds:SignedInfo>"),
}


@pytest.mark.parametrize("variant", sorted(SAME_CONTENT))
def test_digest_is_the_same_for_other_serialisations(codec: CorpLinkCodec, variant: str) -> None:
    assert decode(codec, SAME_CONTENT[variant]).digest == decode(codec, BASE).digest


def test_digest_does_not_depend_on_the_encoding(codec: CorpLinkCodec) -> None:
    text = request(transfer(PayeeName="上海贝塔零部件有限公司"))
    utf8 = decode(codec, text)
    gbk = decode(codec, ('<?xml version="1.0" encoding="GBK"?>' + text).encode("gbk"))
    gb18030 = decode(codec, ('<?xml version="1.0" encoding="GB18030"?>' + text).encode("gb18030"))
    assert utf8.digest == gbk.digest == gb18030.digest
    assert (gbk.encoding, gb18030.encoding) == ("GBK", "GB18030")


DIFFERENT_CONTENT = {
    "CorpId": request(transfer(extra="<Purpose/>"), CorpId="C100000002"),
    "OperId": request(transfer(extra="<Purpose/>"), OperId="op02"),
    "MsgId": request(transfer(extra="<Purpose/>"), MsgId="20261127-000002"),
    "SendTime": request(transfer(extra="<Purpose/>"), SendTime="2026-11-27T10:00:01+08:00"),
    "SendTime-same-instant": request(transfer(extra="<Purpose/>"), SendTime="2026-11-27T02:00:00Z"),
    "PayerAcct": request(transfer(extra="<Purpose/>", PayerAcct="6222020200001235")),
    "PayerName": request(transfer(extra="<Purpose/>", PayerName="ACME Trading Co Ltd.")),
    "PayeeAcct": request(transfer(extra="<Purpose/>", PayeeAcct="6222020200005679")),
    "PayeeName": request(transfer(extra="<Purpose/>", PayeeName="Beta Components Ltd ")),
    "PayeeBankCode": request(transfer(extra="<Purpose/>", PayeeBankCode="102100099997")),
    "Amount": request(transfer(amount="1234.51", extra="<Purpose/>")),
    "Amount-text": request(transfer(amount="1234.5", extra="<Purpose/>")),
    "Priority": request(transfer(extra="<Priority>NORM</Priority><Purpose/>")),
    "Purpose": request(transfer(extra="<Purpose>x</Purpose>")),
    "whitespace-inside-body": BASE.replace("<Transfer>", "<Transfer>\n"),
}


@pytest.mark.parametrize("field", sorted(DIFFERENT_CONTENT))
def test_digest_differs_when_any_field_differs(codec: CorpLinkCodec, field: str) -> None:
    assert decode(codec, DIFFERENT_CONTENT[field]).digest != decode(codec, BASE).digest


# -- a request signed by a client's off-the-shelf tool (corplink.md §3) ---------------


def write_client_key(directory: Path) -> tuple[Path, Path]:
    signing = self_signed("op01")
    key, (cert,) = signing.key, signing.chain
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 not installed")
@pytest.mark.parametrize(
    "name",
    [
        "pay.xml",
        "pay-gb18030.xml",
        "ntfy.xml",
        "bal.xml",
        "rply-gb18030.xml",
        "draft.xml",
        "draftrfnd-gbk.xml",
    ],
)
def test_sample_signed_with_xmlsec1_validates_and_keeps_its_digest(
    codec: CorpLinkCodec, tmp_path: Path, name: str
) -> None:
    key, cert = write_client_key(tmp_path)
    signed = tmp_path / "signed.xml"
    subprocess.run(
        [
            "xmlsec1",
            "--sign",
            "--privkey-pem",
            f"{key},{cert}",
            "--output",
            str(signed),
            str(SAMPLES / name),
        ],
        check=True,
        capture_output=True,
    )
    parsed = parse_body(signed.read_bytes())
    sig = parsed.root[-1]
    assert etree.QName(sig).localname == "Signature"
    assert sig.findtext(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    assert (
        decode(codec, signed.read_bytes()).digest
        == decode(codec, (SAMPLES / name).read_bytes()).digest
    )
