"""Rendering of CorpLink responses and their serialisation (corplink.md §1, §5).

``render_response`` builds the unsigned ``CorpLinkRsp`` tree; the caller signs
it (``gateway.keys.xmldsig.sign_enveloped`` appends ``ds:Signature``) and then
calls ``serialize`` with the request's encoding.  Every value that comes from
a client or from outside (echoed TrnCode/CorpId/MsgId, RetMsg details, reason
texts from clearing systems) is made schema-safe here, so rendering never
fails and the result always validates against ``codecs/corplink.xsd``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from lxml import etree

from gateway.clock import SHANGHAI
from gateway.codec.corplink_decode import NS, q
from gateway.codec.xmlparse import GB18030, GBK, UTF8
from gateway.model import Response, StatusView

CORPLINK_RSP: Final = q("CorpLinkRsp")
_HEAD: Final = q("Head")
_BODY: Final = q("Body")
_TRN_CODE: Final = q("TrnCode")
_CORP_ID: Final = q("CorpId")
_MSG_ID: Final = q("MsgId")
_RSP_TIME: Final = q("RspTime")
_RET_CODE: Final = q("RetCode")
_RET_MSG: Final = q("RetMsg")
_GW_REF: Final = q("GwRef")
_DUP: Final = q("Dup")
_RETRY_AFTER_MS: Final = q("RetryAfterMs")
_STATUS: Final = q("Status")
_ITEMS: Final = q("Items")
_SEQ_NO: Final = q("SeqNo")
_STATE: Final = q("State")
_ENGINE: Final = q("Engine")
_WORK_DATE: Final = q("WorkDate")
_RELEASE_AT: Final = q("ReleaseAt")
_REASON: Final = q("Reason")
_HISTORY: Final = q("History")
_STEP: Final = q("Step")

# What the response schema allows for echoed identifiers (corplink.md §2, §8):
# anything else is sent as empty rather than producing an invalid response.
_TRN_ECHO: Final = re.compile(r"[A-Za-z0-9_]{1,20}")
_CORP_ID_ECHO: Final = re.compile(r"[A-Z0-9]{1,20}")
_MSG_ID_ECHO: Final = re.compile(r"[A-Za-z0-9-]{1,35}")
_REF: Final = re.compile(r"[A-Za-z0-9-]{1,40}")
_RET_CODE_RE: Final = re.compile(r"[0-9]{4}")
#: A rejection reason: a RetCode or an ISO 20022 status reason code such as AC01.
_REASON_CODE_RE: Final = re.compile(r"[A-Z0-9]{4}")
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_RET_MSG: Final = 500
"""``RetMsg`` maxLength in the XSD; longer details are cut."""

_XML_DECL: Final[dict[str, bytes]] = {
    GBK: b'<?xml version="1.0" encoding="GBK"?>\n',
    GB18030: b'<?xml version="1.0" encoding="GB18030"?>\n',
}
_PY_CODEC: Final[dict[str, str]] = {GBK: "gbk", GB18030: "gb18030"}


def format_instant(at: datetime) -> str:
    """Wire time: ISO 8601 in Asia/Shanghai with milliseconds, e.g.
    ``2026-11-27T10:00:00.012+08:00`` (corplink.md §5).  A naive value is
    taken as Shanghai time (the gateway's clock zone, DESIGN.md principle 5).
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=SHANGHAI)
    return at.astimezone(SHANGHAI).isoformat(timespec="milliseconds")


def _echo(value: str, pattern: re.Pattern[str]) -> str:
    return value if pattern.fullmatch(value) else ""


def _text(value: str, limit: int | None = None) -> str:
    """XML-safe text: characters XML 1.0 forbids become '?', optionally cut."""
    cleaned = _NOT_XML_CHAR.sub("?", value)
    if limit is not None and len(cleaned) > limit:
        return cleaned[: limit - 3] + "..."
    return cleaned


def _leaf(parent: etree._Element, tag: str, text: str) -> None:
    etree.SubElement(parent, tag).text = text


def render_response(rsp: Response) -> etree._Element:
    """The unsigned ``CorpLinkRsp`` tree for ``rsp`` (corplink.md §5).

    ``Body`` carries ``Status`` when the response has one, or ``Items`` (one
    ``Status`` with ``SeqNo`` per batch item: PAYROLL, PAIN001, MT101 and a
    STATUS about a batch); Notifications and Balance bodies come with their
    TrnCodes.
    """
    root = etree.Element(CORPLINK_RSP, nsmap={None: NS})  # type: ignore[dict-item]  # stubs lack None
    head = etree.SubElement(root, _HEAD)
    _leaf(head, _TRN_CODE, _echo(rsp.trn_code, _TRN_ECHO))
    _leaf(head, _CORP_ID, _echo(rsp.corp_id, _CORP_ID_ECHO))
    _leaf(head, _MSG_ID, _echo(rsp.msg_id, _MSG_ID_ECHO))
    _leaf(head, _RSP_TIME, format_instant(rsp.rsp_time))
    _leaf(head, _RET_CODE, rsp.ret_code if _RET_CODE_RE.fullmatch(rsp.ret_code) else "9999")
    _leaf(head, _RET_MSG, _text(rsp.ret_msg, MAX_RET_MSG))
    if rsp.gw_ref is not None and _REF.fullmatch(rsp.gw_ref):
        _leaf(head, _GW_REF, rsp.gw_ref)
    _leaf(head, _DUP, "true" if rsp.dup else "false")
    if rsp.retry_after_ms is not None:
        _leaf(head, _RETRY_AFTER_MS, str(max(0, rsp.retry_after_ms)))
    listed = [view for view in rsp.items or () if view.seq_no is not None]
    if listed:
        render_items(etree.SubElement(root, _BODY), listed)
    elif rsp.status is not None:
        body = etree.SubElement(root, _BODY)
        render_status(body, rsp.status)
    return root


def render_items(parent: etree._Element, views: Sequence[StatusView]) -> etree._Element:
    """Append ``Items``: one ``Status`` per batch item, ``SeqNo`` first (corplink.md §4, §5).

    Every view must carry ``seq_no`` (the schema requires it inside ``Items``;
    ``render_response`` leaves out views without one).
    """
    items = etree.SubElement(parent, _ITEMS)
    for view in views:
        render_status(items, view)
    return items


def render_status(parent: etree._Element, view: StatusView) -> etree._Element:
    """Append one ``Status`` element (corplink.md §5) and return it.

    Public so that PAYROLL's ``Items`` can list one per item (with SeqNo).
    """
    status = etree.SubElement(parent, _STATUS)
    if view.seq_no is not None:
        _leaf(status, _SEQ_NO, str(view.seq_no))
    _leaf(status, _STATE, view.state.value)
    if view.engine is not None:
        _leaf(status, _ENGINE, view.engine.value)
    if view.work_date is not None:
        _leaf(status, _WORK_DATE, view.work_date.isoformat())
    if view.release_at is not None:
        _leaf(status, _RELEASE_AT, format_instant(view.release_at))
    if view.reason_code is not None and _REASON_CODE_RE.fullmatch(view.reason_code):
        reason = etree.SubElement(status, _REASON, Code=view.reason_code)
        reason.text = _text(view.reason_text or "")
    if view.history:
        history = etree.SubElement(status, _HISTORY)
        for step in view.history:
            etree.SubElement(history, _STEP, State=step.state.value, At=format_instant(step.at))
    return status


def serialize(root: etree._Element, encoding: str) -> bytes:
    """Bytes of a (signed) response in the request's encoding (corplink.md §1).

    UTF-8 is written without an XML declaration (the spec's default, as in
    its examples).  GBK and GB18030 get a declaration naming the encoding and
    are encoded with Python's codecs — the same ones ``parse_body`` decodes
    with — so a reply always round-trips; a character GBK lacks is written as
    a character reference, which leaves the canonical form, and so the
    signature, unchanged.
    """
    name = encoding.upper()
    if name == UTF8:
        return etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    try:
        codec = _PY_CODEC[name]
    except KeyError:
        raise ValueError(f"unsupported response encoding {encoding!r}") from None
    text = etree.tostring(root, encoding="unicode")
    return _XML_DECL[name] + text.encode(codec, "xmlcharrefreplace")
