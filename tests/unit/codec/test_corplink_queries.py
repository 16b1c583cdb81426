"""Decoding NTFY, INQ, RPLY and BAL requests (corplink.md §4), with their 1003 refusals."""

from __future__ import annotations

import pytest

from gateway.codec.corplink import CorpLinkCodec
from gateway.errors import GatewayError, RetCode
from gateway.model import BalanceQuery, Inquiry, NotifyPull, Reply

from .builders import (
    SAMPLES,
    balance_query,
    decode,
    inquiry,
    notify_pull,
    reply,
    request,
)


def refused(codec: CorpLinkCodec, text: str | bytes) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        decode(codec, text)
    return info.value


# -- the samples a corporate developer starts from (codecs/samples) ----------------


def test_samples_decode() -> None:
    codec = CorpLinkCodec()
    ntfy = decode(codec, (SAMPLES / "ntfy.xml").read_bytes())
    assert (ntfy.head.trn_code, ntfy.body) == ("NTFY", NotifyPull(after=41, max=100))
    inq = decode(codec, (SAMPLES / "inq.xml").read_bytes())
    assert inq.head.trn_code == "INQ"
    assert inq.body == Inquiry(
        orig_msg_id="20261127-000001",
        text="Payee says the funds have not arrived; please confirm the credit.",
    )
    rply = decode(codec, (SAMPLES / "rply-gb18030.xml").read_bytes())
    assert rply.encoding == "GB18030"
    assert rply.body == Reply(
        inq_id="IQ20261127000007",
        text="款项已于2026-11-27入账，收款人：北京艾克美贸易有限公司。",
    )
    bal = decode(codec, (SAMPLES / "bal.xml").read_bytes())
    assert bal.body == BalanceQuery(acct="6222020200001234")


# -- NTFY ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (notify_pull(), NotifyPull(after=0, max=100)),
        ("<NotifyPull></NotifyPull>", NotifyPull(after=0, max=100)),
        (notify_pull(after="0"), NotifyPull(after=0, max=100)),
        (notify_pull(after="41"), NotifyPull(after=41, max=100)),
        (notify_pull(after=" 0041 "), NotifyPull(after=41, max=100)),
        (notify_pull(after=str(2**63 - 1)), NotifyPull(after=2**63 - 1, max=100)),
        (notify_pull(max_="1"), NotifyPull(after=0, max=1)),
        (notify_pull(after="7", max_="500"), NotifyPull(after=7, max=500)),
    ],
)
def test_notify_pull(codec: CorpLinkCodec, body: str, expected: NotifyPull) -> None:
    req = decode(codec, request(body, TrnCode="NTFY"))
    assert req.body == expected
    assert isinstance(req.body.after, int)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (notify_pull(after="-1"), "After: invalid value"),
        (notify_pull(after=str(2**63)), "After: invalid value"),
        (notify_pull(after="N-42"), "After: invalid value"),
        (notify_pull(after="4.0"), "After: invalid value"),
        (notify_pull(after=""), "After: invalid value"),
        (notify_pull(max_="0"), "Max: invalid value"),
        (notify_pull(max_="501"), "Max: invalid value"),
        (notify_pull(max_="ten"), "Max: invalid value"),
        ("<NotifyPull><Max>5</Max><After>1</After></NotifyPull>", "After: unexpected element"),
        ("<NotifyPull><Limit>5</Limit></NotifyPull>", "Limit: unexpected element"),
    ],
)
def test_notify_pull_violations_name_the_element(
    codec: CorpLinkCodec, body: str, detail: str
) -> None:
    error = refused(codec, request(body, TrnCode="NTFY"))
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)


# -- INQ -----------------------------------------------------------------------------


def test_inquiry_with_and_without_seq_no(codec: CorpLinkCodec) -> None:
    req = decode(codec, request(inquiry("where is it?"), TrnCode="INQ"))
    assert req.body == Inquiry(orig_msg_id="20261127-000001", text="where is it?")
    req = decode(codec, request(inquiry("item 3?", seq_no="3"), TrnCode="INQ"))
    assert req.body == Inquiry(orig_msg_id="20261127-000001", text="item 3?", seq_no=3)


@pytest.mark.parametrize("text", ["x", "  padded and\nmulti-line  ", "查" * 500, "q" * 500])
def test_inquiry_text_boundaries_are_kept_as_sent(codec: CorpLinkCodec, text: str) -> None:
    body = decode(codec, request(inquiry(text), TrnCode="INQ")).body
    assert isinstance(body, Inquiry)
    assert body.text == text


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (inquiry(""), "Text: invalid value"),
        (inquiry("   \n\t "), "Text: invalid value"),
        (inquiry("q" * 501), "Text: invalid value"),
        (inquiry("查" * 501), "Text: invalid value"),
        (inquiry(orig="M" * 36), "OrigMsgId: invalid value"),
        (inquiry(orig="has space"), "OrigMsgId: invalid value"),
        (inquiry(seq_no="0"), "SeqNo: invalid value"),
        (inquiry(seq_no="50001"), "SeqNo: invalid value"),
        ("<Inquiry><OrigMsgId>M1</OrigMsgId></Inquiry>", "Inquiry: missing child element"),
        (
            "<Inquiry><Text>t</Text><OrigMsgId>M1</OrigMsgId></Inquiry>",
            "Text: unexpected element, expected OrigMsgId",
        ),
        (inquiry().replace("<Text>", "<Text lang='en'>"), "Text: attribute lang not allowed"),
    ],
)
def test_inquiry_violations_name_the_element(codec: CorpLinkCodec, body: str, detail: str) -> None:
    error = refused(codec, request(body, TrnCode="INQ"))
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)


# -- RPLY ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inq_id", "text"),
    [("IQ20261127000007", "paid"), ("Q", "r" * 500), ("A-" + "9" * 33, "好")],
)
def test_reply(codec: CorpLinkCodec, inq_id: str, text: str) -> None:
    req = decode(codec, request(reply(text, inq_id=inq_id), TrnCode="RPLY"))
    assert req.body == Reply(inq_id=inq_id, text=text)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (reply(inq_id=""), "InqId: invalid value"),
        (reply(inq_id="I" * 36), "InqId: invalid value"),
        (reply(inq_id="IQ_1"), "InqId: invalid value"),
        (reply(""), "Text: invalid value"),
        (reply(" "), "Text: invalid value"),
        (reply("r" * 501), "Text: invalid value"),
        ("<Reply><Text>t</Text></Reply>", "Text: unexpected element, expected InqId"),
        (reply().replace("</Reply>", "<Extra/></Reply>"), "Extra: unexpected element"),
    ],
)
def test_reply_violations_name_the_element(codec: CorpLinkCodec, body: str, detail: str) -> None:
    error = refused(codec, request(body, TrnCode="RPLY"))
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)


# -- BAL -----------------------------------------------------------------------------


@pytest.mark.parametrize("acct", ["1", "A" * 32, "6222020200001234", "abcXYZ019"])
def test_balance_query(codec: CorpLinkCodec, acct: str) -> None:
    assert decode(codec, request(balance_query(acct), TrnCode="BAL")).body == BalanceQuery(acct)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (balance_query(""), "Acct: invalid value"),
        (balance_query("A" * 33), "Acct: invalid value"),
        (balance_query("6222-0202"), "Acct: invalid value"),
        (balance_query("六二二二"), "Acct: invalid value"),
        ("<BalanceQuery/>", "BalanceQuery: missing child element, expected Acct"),
        (
            "<BalanceQuery><Acct>6222020200001234</Acct><Acct>1</Acct></BalanceQuery>",
            "Acct: unexpected element",
        ),
    ],
)
def test_balance_query_violations_name_the_element(
    codec: CorpLinkCodec, body: str, detail: str
) -> None:
    error = refused(codec, request(body, TrnCode="BAL"))
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)
    assert "6222" not in (error.detail or "")  # an account number is never echoed


@pytest.mark.parametrize(
    ("trn", "body", "child"),
    [
        ("BAL", notify_pull(), "NotifyPull"),
        ("NTFY", balance_query(), "BalanceQuery"),
        ("INQ", reply(), "Reply"),
        ("RPLY", inquiry(), "Inquiry"),
    ],
)
def test_body_must_match_the_trncode(codec: CorpLinkCodec, trn: str, body: str, child: str) -> None:
    error = refused(codec, request(body, TrnCode=trn))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"{child}: does not match TrnCode {trn}"


# -- legacy encodings (corplink.md §1) -------------------------------------------------


@pytest.mark.parametrize("encoding", ["GB18030", "GBK"])
def test_chinese_inquiry_and_reply_in_gb_encodings(codec: CorpLinkCodec, encoding: str) -> None:
    decl = f'<?xml version="1.0" encoding="{encoding}"?>'
    question = "收款人称未收到款项，请核实。"
    inq = decode(codec, (decl + request(inquiry(question), TrnCode="INQ")).encode(encoding))
    assert inq.body == Inquiry(orig_msg_id="20261127-000001", text=question)
    assert inq.encoding == encoding
    answer = "已入账，请查收。"
    rply = decode(codec, (decl + request(reply(answer), TrnCode="RPLY")).encode(encoding))
    assert rply.body == Reply(inq_id="IQ20261127000007", text=answer)
    utf8 = decode(codec, request(reply(answer), TrnCode="RPLY"))
    assert rply.digest == utf8.digest  # the idempotency digest ignores the encoding (§7)
