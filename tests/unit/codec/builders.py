"""Request documents for the codec tests, built as text the way a client would write them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from lxml import etree

from gateway.clock import SHANGHAI
from gateway.codec.corplink import CorpLinkCodec
from gateway.codec.xmlparse import parse_body
from gateway.keys.xmldsig import SigningKey
from gateway.model import Engine, Notice, NoticeKind, Request, Response, State
from gateway.paths import data_root
from tests.certs import self_signed_key

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


def _optional(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{value}</{name}>"


def notify_pull(after: str | None = None, max_: str | None = None) -> str:
    return f"<NotifyPull>{_optional('After', after)}{_optional('Max', max_)}</NotifyPull>"


def inquiry(
    text: str = "where is it?", orig: str = "20261127-000001", seq_no: str | None = None
) -> str:
    return (
        f"<Inquiry><OrigMsgId>{orig}</OrigMsgId>{_optional('SeqNo', seq_no)}"
        f"<Text>{text}</Text></Inquiry>"
    )


def reply(text: str = "credited on 27 Nov", inq_id: str = "IQ20261127000007") -> str:
    return f"<Reply><InqId>{inq_id}</InqId><Text>{text}</Text></Reply>"


def balance_query(acct: str = "6222020200001234") -> str:
    return f"<BalanceQuery><Acct>{acct}</Acct></BalanceQuery>"


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


def decode(codec: CorpLinkCodec, body: str | bytes) -> Request:
    """parse → validate → (signature layer) → decode, as the pipeline runs them."""
    parsed = parse_body(body.encode() if isinstance(body, str) else body)
    codec.validate(parsed.root)
    return codec.decode(without_signature(parsed.root), parsed.encoding)


# -- responses -------------------------------------------------------------------------

T0 = datetime(2026, 11, 27, 10, 0, 0, 12_000, tzinfo=SHANGHAI)


def response(**fields: object) -> Response:
    """A PAY 0000 response at ``T0``, with ``fields`` replaced or added."""
    base: dict[str, object] = {
        "trn_code": "PAY",
        "corp_id": "C100000001",
        "msg_id": "20261127-000001",
        "rsp_time": T0,
        "ret_code": "0000",
        "ret_msg": "accepted",
    }
    base.update(fields)
    return Response(**base)  # type: ignore[arg-type]


# -- notices: one of each kind an NTFY page carries (corplink.md §4) ---------------------

DAY = date(2026, 11, 27)

CREDIT = Notice(
    ntfy_id=42,
    kind=NoticeKind.CREDIT,
    at=T0,
    gw_ref="GI20261127000001",
    engine=Engine.HVPS,
    work_date=DAY,
    acct="6222020200001234",
    amount=Decimal("88000.00"),
    counterparty_acct="31050161393600000123",
    counterparty_name="上海贝塔零部件有限公司",
    counterparty_bank="105290036005",
    text="货款 发票号 2026-1127",
)
SETTLED = Notice(
    ntfy_id=43,
    kind=NoticeKind.STATUS,
    at=T0 + timedelta(seconds=1),
    orig_msg_id="20261127-000001",
    state=State.SETTLED,
    engine=Engine.HVPS,
    work_date=DAY,
)
REJECTED = Notice(
    ntfy_id=44,
    kind=NoticeKind.STATUS,
    at=T0 + timedelta(seconds=2),
    orig_msg_id="20261127-000004",
    seq_no=3,
    state=State.REJECTED,
    reason_code="AC01",
    text="incorrect account number",
    engine=Engine.BEPS,
    work_date=DAY,
)
INQUIRY = Notice(
    ntfy_id=45,
    kind=NoticeKind.INQUIRY,
    at=T0 + timedelta(seconds=3),
    inq_id="IQ20261127000007",
    orig_msg_id="20261127-000001",
    text="请核实收款人户名。",
)
INQUIRY_ABOUT_CREDIT = Notice(
    ntfy_id=46,
    kind=NoticeKind.INQUIRY,
    at=T0 + timedelta(seconds=4),
    inq_id="Q-FROM-OTHER-BANK",
    gw_ref="GI20261127000001",
    text="Was this credit posted?",
)
REPLY = Notice(
    ntfy_id=47,
    kind=NoticeKind.REPLY,
    at=T0 + timedelta(seconds=5),
    inq_id="IQ20261127000003",
    orig_msg_id="20261126-000042",
    seq_no=12,
    text="Credited to the payee on 2026-11-27.",
)
ALL = (CREDIT, SETTLED, REJECTED, INQUIRY, INQUIRY_ABOUT_CREDIT, REPLY)


def signed_placeholder(root: etree._Element) -> etree._Element:
    """The XSD wants the gateway's ds:Signature last; its inside is not the schema's business."""
    etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS})
    return root


def assert_valid(schema: etree.XMLSchema, root: etree._Element) -> None:
    assert schema.validate(signed_placeholder(root)), schema.error_log


def self_signed(common_name: str = "gateway") -> SigningKey:
    """A P-256 key with a self-signed certificate valid around now, for signing in tests."""
    return self_signed_key(common_name, valid=timedelta(hours=1))
