"""Request documents for the codec tests, built as text the way a client would write them."""

from __future__ import annotations

from lxml import etree

from gateway.codec.xmlparse import parse_body
from gateway.paths import data_root

SAMPLES = data_root() / "codecs" / "samples"
DS = "http://www.w3.org/2000/09/xmldsig#"
SIGNATURE = f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo/></ds:Signature>'

HEAD_FIELDS = {
    "TrnCode": "PAY",
    "CorpId": "C100000001",
    "OperId": "op01",
    "MsgId": "20261127-000001",
    "SendTime": "2026-11-27T10:00:00+08:00",
}

TRANSFER_FIELDS = {
    "PayerAcct": "6222020200001234",
    "PayerName": "ACME Trading Co Ltd",
    "PayeeAcct": "6222020200005678",
    "PayeeName": "Beta Components Ltd",
    "PayeeBankCode": "102100099996",
}


def head(**overrides: str) -> str:
    fields = {**HEAD_FIELDS, **overrides}
    return "<Head>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</Head>"


def transfer(amount: str = "1234.50", ccy: str = "CNY", extra: str = "", **overrides: str) -> str:
    fields = {**TRANSFER_FIELDS, **overrides}
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return f'<Transfer>{inner}<Amount Ccy="{ccy}">{amount}</Amount>{extra}</Transfer>'


def status_query(orig: str = "20261127-000001", seq_no: str | None = None) -> str:
    seq = f"<SeqNo>{seq_no}</SeqNo>" if seq_no is not None else ""
    return f"<StatusQuery><OrigMsgId>{orig}</OrigMsgId>{seq}</StatusQuery>"


def request(
    body: str | None = None,
    *,
    head_xml: str | None = None,
    signature: str = SIGNATURE,
    decl: str = "",
    **head_overrides: str,
) -> str:
    """A whole CorpLink request as text (encode it yourself)."""
    return (
        f'{decl}<CorpLink xmlns="urn:corplink:1">'
        f"{head_xml if head_xml is not None else head(**head_overrides)}"
        f"<Body>{transfer() if body is None else body}</Body>"
        f"{signature}</CorpLink>"
    )


def root_of(text: str | bytes) -> etree._Element:
    data = text.encode() if isinstance(text, str) else text
    return parse_body(data).root


def without_signature(root: etree._Element) -> etree._Element:
    """What the signature layer hands to ``decode``: the signed content, Signature removed."""
    copy = etree.fromstring(etree.tostring(root))
    for sig in copy.findall(f"{{{DS}}}Signature"):
        copy.remove(sig)
    return copy
