"""Rendering and serialising responses (corplink.md §1, §5), checked against codecs/corplink.xsd."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import xmlschema
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import (  # type: ignore[attr-defined]
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
    methods,
)

from gateway.clock import SHANGHAI
from gateway.codec.corplink import CorpLinkCodec, serialize
from gateway.codec.xmlparse import parse_body
from gateway.model import Engine, State, StatusView, Transition
from gateway.paths import corplink_schema_path

from .builders import T0, assert_valid, response, self_signed, signed_placeholder

NS = "{urn:corplink:1}"


HELD = StatusView(
    state=State.HELD,
    engine=Engine.HVPS,
    work_date=date(2026, 11, 27),
    release_at=datetime(2026, 11, 28, 8, 30, tzinfo=SHANGHAI),
    history=(
        Transition(State.ACCEPTED, T0),
        Transition(State.HELD, T0 + timedelta(milliseconds=3)),
    ),
)


def test_pay_response_with_status_matches_the_spec_and_the_xsd(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    root = codec.render(response(gw_ref="GW20261127A000000042", status=HELD))
    head = root.find(f"{NS}Head")
    assert head is not None
    assert [etree.QName(el).localname for el in head] == [
        "TrnCode",
        "CorpId",
        "MsgId",
        "RspTime",
        "RetCode",
        "RetMsg",
        "GwRef",
        "Dup",
    ]
    assert head.findtext(f"{NS}RspTime") == "2026-11-27T10:00:00.012+08:00"
    assert head.findtext(f"{NS}Dup") == "false"
    status = root.find(f"{NS}Body/{NS}Status")
    assert status is not None
    assert status.findtext(f"{NS}State") == "HELD"
    assert status.findtext(f"{NS}Engine") == "HVPS"
    assert status.findtext(f"{NS}WorkDate") == "2026-11-27"
    assert status.findtext(f"{NS}ReleaseAt") == "2026-11-28T08:30:00.000+08:00"
    steps = status.findall(f"{NS}History/{NS}Step")
    assert [(s.get("State"), s.get("At")) for s in steps] == [
        ("ACCEPTED", "2026-11-27T10:00:00.012+08:00"),
        ("HELD", "2026-11-27T10:00:00.015+08:00"),
    ]
    assert_valid(schema, root)


def test_times_are_written_in_shanghai_with_milliseconds(codec: CorpLinkCodec) -> None:
    root = codec.render(response(rsp_time=datetime(2026, 11, 27, 2, 0, 0, 999_999, tzinfo=UTC)))
    assert root.findtext(f"{NS}Head/{NS}RspTime") == "2026-11-27T10:00:00.999+08:00"


def test_rejected_status_carries_reason_code_and_text(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    view = StatusView(
        state=State.REJECTED,
        engine=None,
        work_date=None,
        reason_code="4001",
        reason_text="payee bank code not in the directory",
        seq_no=3,
    )
    root = codec.render(response(trn_code="STATUS", status=view))
    reason = root.find(f"{NS}Body/{NS}Status/{NS}Reason")
    assert reason is not None
    assert (reason.get("Code"), reason.text) == ("4001", "payee bank code not in the directory")
    assert root.findtext(f"{NS}Body/{NS}Status/{NS}SeqNo") == "3"
    assert root.find(f"{NS}Body/{NS}Status/{NS}History") is None
    assert_valid(schema, root)


def test_refusal_before_parsing_has_empty_ids(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    root = codec.render(
        response(
            trn_code="", corp_id="", msg_id="", ret_code="1002", ret_msg="body is not well-formed"
        )
    )
    head = root.find(f"{NS}Head")
    assert head is not None
    assert [head.findtext(f"{NS}{n}") for n in ("TrnCode", "CorpId", "MsgId")] == ["", "", ""]
    assert root.find(f"{NS}Body") is None
    assert_valid(schema, root)


def test_rate_limit_and_duplicate_fields(codec: CorpLinkCodec, schema: etree.XMLSchema) -> None:
    root = codec.render(response(ret_code="5001", ret_msg="rate limit", retry_after_ms=250))
    assert root.findtext(f"{NS}Head/{NS}RetryAfterMs") == "250"
    assert_valid(schema, root)
    root = codec.render(response(dup=True, gw_ref="GW1"))
    assert root.findtext(f"{NS}Head/{NS}Dup") == "true"
    assert_valid(schema, root)


def test_hostile_values_never_make_an_invalid_response(
    codec: CorpLinkCodec, schema: etree.XMLSchema
) -> None:
    root = codec.render(
        response(
            trn_code="<script>",
            corp_id="lower-case",
            msg_id="x" * 36,
            ret_code="12",
            ret_msg="bad \x00\x01\ud800 value " + "z" * 10_000,
            gw_ref="not a ref!",
            retry_after_ms=-5,
        )
    )
    head = root.find(f"{NS}Head")
    assert head is not None
    assert [head.findtext(f"{NS}{n}") for n in ("TrnCode", "CorpId", "MsgId")] == ["", "", ""]
    assert head.findtext(f"{NS}RetCode") == "9999"
    ret_msg = head.findtext(f"{NS}RetMsg") or ""
    assert ret_msg.startswith("bad ??? value ")
    assert len(ret_msg) <= 500
    assert head.find(f"{NS}GwRef") is None
    assert_valid(schema, root)


def test_xmlschema_agrees_that_responses_are_valid(codec: CorpLinkCodec) -> None:
    other = xmlschema.XMLSchema(str(corplink_schema_path()))
    assert other.is_valid(signed_placeholder(codec.render(response(status=HELD))))


# -- serialisation in the request's encoding (corplink.md §1) -----------------------


def test_utf8_has_no_declaration_and_round_trips(codec: CorpLinkCodec) -> None:
    root = codec.render(response(ret_msg="已受理"))
    data = serialize(root, "UTF-8")
    assert data.startswith(b"<CorpLinkRsp")
    parsed = parse_body(data)
    assert parsed.encoding == "UTF-8"
    assert parsed.root.findtext(f"{NS}Head/{NS}RetMsg") == "已受理"


@pytest.mark.parametrize("encoding", ["GB18030", "GBK", "gbk"])
def test_gb_replies_declare_their_encoding_and_round_trip(
    codec: CorpLinkCodec, encoding: str
) -> None:
    text = "已受理 €𠀀"  # € and U+20000 are not in GBK: written as character references
    root = codec.render(response(ret_msg=text, encoding=encoding.upper()))
    data = serialize(root, encoding)
    assert data.startswith(f'<?xml version="1.0" encoding="{encoding.upper()}"?>'.encode())
    assert "已受理".encode(encoding) in data
    parsed = parse_body(data)
    assert parsed.encoding == encoding.upper()
    assert parsed.root.findtext(f"{NS}Head/{NS}RetMsg") == text
    c14n = etree.tostring(parsed.root, method="c14n", exclusive=True)
    assert c14n == etree.tostring(root, method="c14n", exclusive=True)


def test_serialize_refuses_other_encodings(codec: CorpLinkCodec) -> None:
    with pytest.raises(ValueError, match="unsupported response encoding"):
        serialize(codec.render(response()), "UTF-16")


@pytest.mark.parametrize("encoding", ["UTF-8", "GB18030"])
def test_signed_response_validates_and_verifies_after_serialisation(
    codec: CorpLinkCodec, schema: etree.XMLSchema, encoding: str
) -> None:
    gateway_key = self_signed()
    key, cert = gateway_key.key, gateway_key.chain[0]
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        codec.render(response(ret_msg="已受理", status=HELD)), key=key, cert=[cert]
    )
    data = serialize(signed, encoding)
    parsed = parse_body(data)
    assert schema.validate(parsed.root), schema.error_log
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    XMLVerifier().verify(data, x509_cert=pem)
