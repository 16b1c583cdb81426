"""Rendering of CorpLink responses and their serialisation (docs/protocol.md §1, §5).

``render_response`` builds the unsigned ``CorpLinkRsp`` tree; the caller signs
it (``gateway.keys.xmldsig.sign_enveloped`` appends ``ds:Signature``) and then
calls ``serialize`` with the request's encoding.  Every value that comes from
a client or from outside (echoed TrnCode/CorpId/MsgId, RetMsg details, reason
texts from clearing systems, names and texts of incoming credits and
inquiries, the core's balances) is made schema-safe here, so rendering never
fails and the result always validates against ``codecs/corplink.xsd``: an
optional element whose value the schema would refuse is left out, text is
cleaned and cut to the schema's length.  A required body the schema cannot
carry (a ``Balance`` or a ``Draft`` with a field out of its pattern) turns
the answer into 9999 without a Body rather than an invalid document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Final

from lxml import etree

from gateway.clock import SHANGHAI
from gateway.codec.corplink_decode import NS, q
from gateway.codec.xmlparse import GB18030, GBK, UTF8
from gateway.errors import RetCode
from gateway.model import (
    Balance,
    DraftStep,
    DraftView,
    Notice,
    NoticeKind,
    Notices,
    Response,
    StatusView,
    state_changes,
)

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
_UETR: Final = q("Uetr")
_UETR_RE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
"""The XSD's ``UetrType``: a UUID v4 in lower case."""
_NOTIFICATIONS: Final = q("Notifications")
_NTFY: Final = q("Ntfy")
_NTFY_ID: Final = q("NtfyId")
_KIND: Final = q("Kind")
_TIME: Final = q("Time")
_ORIG_MSG_ID: Final = q("OrigMsgId")
_INQ_ID: Final = q("InqId")
_ACCT: Final = q("Acct")
_AMOUNT: Final = q("Amount")
_CPTY_ACCT: Final = q("CptyAcct")
_CPTY_NAME: Final = q("CptyName")
_CPTY_BANK_CODE: Final = q("CptyBankCode")
_TEXT: Final = q("Text")
_LAST: Final = q("Last")
_MORE: Final = q("More")
_BALANCE: Final = q("Balance")
_BAL: Final = q("Bal")
_AVAIL: Final = q("Avail")
_DRAFT: Final = q("Draft")
_DRAFT_NO: Final = q("DraftNo")
_ISSUE_DATE: Final = q("IssueDate")
_EXPIRY_DATE: Final = q("ExpiryDate")
_CODE: Final = q("Code")
_AT: Final = q("At")
_SETTLE_AMOUNT: Final = q("SettleAmount")
_REMAINDER: Final = q("Remainder")

# What the response schema allows for echoed identifiers (docs/protocol.md §2, §8):
# anything else is sent as empty rather than producing an invalid response.
_TRN_ECHO: Final = re.compile(r"[A-Za-z0-9_]{1,20}")
_CORP_ID_ECHO: Final = re.compile(r"[A-Z0-9]{1,20}")
_MSG_ID_ECHO: Final = re.compile(r"[A-Za-z0-9-]{1,35}")
_REF: Final = re.compile(r"[A-Za-z0-9-]{1,40}")
_RET_CODE_RE: Final = re.compile(r"[0-9]{4}")
#: A rejection reason: a RetCode, an ISO 20022 status reason code such as AC01, or a
#: SWIFT network refusal of one to four characters such as T26 (docs/foreign-currency.md §4).
_REASON_CODE_RE: Final = re.compile(r"[A-Z0-9]{1,4}")
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_RET_MSG: Final = 500
"""``RetMsg`` maxLength in the XSD; longer details are cut."""
_ACCT_RE: Final = re.compile(r"[0-9A-Za-z]{1,32}")
_BANK_CODE_RE: Final = re.compile(r"[0-9]{12}|[0-9]{6}")
_CCY_RE: Final = re.compile(r"[A-Z]{3}")
_MAX_SEQ_NO: Final = 50_000
MAX_NTFY: Final = 500
"""Notifications in one NTFY response: ``Max`` is at most 500 (docs/protocol.md §4)."""
_MAX_NTFY_ID: Final = 2**63 - 1
"""NtfyId and cursor range in the XSD (a signed 64-bit column)."""
_MAX_CPTY_ACCT: Final = 34
_MAX_CPTY_NAME: Final = 140
_MAX_TEXT: Final = 500
_CENT: Final = Decimal("0.01")
_MAX_AMOUNT: Final = Decimal("999999999999999.99")
_CREDIT_AMOUNT_RE: Final = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?")
"""``CreditAmountTextType`` (codecs/corplink.xsd)."""
_DRAFT_NO_RE: Final = re.compile(r"[0-9]{20}")
_DRAFT_CODE_RE: Final = re.compile(r"[0-9]{16}")
DRAFT_STATES: Final = frozenset(
    {"PENDING", "ISSUED", "PAID", "SETTLED", "REFUNDING", "REFUNDED", "REJECTED"}
)
"""The register states a ``Draft`` or a DRAFT notification may carry (docs/bank-drafts.md §1)."""

_XML_DECL: Final[dict[str, bytes]] = {
    GBK: b'<?xml version="1.0" encoding="GBK"?>\n',
    GB18030: b'<?xml version="1.0" encoding="GB18030"?>\n',
}
_PY_CODEC: Final[dict[str, str]] = {GBK: "gbk", GB18030: "gb18030"}


def format_instant(at: datetime) -> str:
    """Wire time: ISO 8601 in Asia/Shanghai with milliseconds, e.g.
    ``2026-11-27T10:00:00.012+08:00`` (docs/protocol.md §5).  A naive value is
    taken as Shanghai time (the gateway's clock zone, docs/architecture.md §7, principle 5).
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
    """The unsigned ``CorpLinkRsp`` tree for ``rsp`` (docs/protocol.md §5).

    ``Body`` carries one of, in this precedence: ``Items`` (one ``Status``
    with ``SeqNo`` per batch item: PAYROLL, PAIN001, MT101 and a STATUS about
    a batch), ``Draft`` (DRAFT, and STATUS about a DRAFT), ``Status`` (PAY,
    STATUS, and INQ about the payment asked about), ``Notifications`` (NTFY)
    or ``Balance`` (BAL).  Without any of them there is no Body (refusals,
    RPLY).  A ``balance`` or ``draft`` that the schema cannot carry turns the
    response into 9999 without a Body.
    """
    ret_code = rsp.ret_code if _RET_CODE_RE.fullmatch(rsp.ret_code) else RetCode.INTERNAL.value
    ret_msg = rsp.ret_msg
    balance, draft = rsp.balance, rsp.draft
    if (balance is not None and _balance_fields(balance) is None) or (
        draft is not None and not draft_renderable(draft)
    ):
        balance = draft = None
        # Something the contract cannot carry (the core's balance, docs/clearing-link.md §5,
        # or a register entry out of pattern): better an honest 9999 than a 0000 without
        # its Body.
        ret_code, ret_msg = RetCode.INTERNAL.value, RetCode.INTERNAL.text
    root = etree.Element(CORPLINK_RSP, nsmap={None: NS})  # type: ignore[dict-item]  # stubs lack None
    head = etree.SubElement(root, _HEAD)
    _leaf(head, _TRN_CODE, _echo(rsp.trn_code, _TRN_ECHO))
    _leaf(head, _CORP_ID, _echo(rsp.corp_id, _CORP_ID_ECHO))
    _leaf(head, _MSG_ID, _echo(rsp.msg_id, _MSG_ID_ECHO))
    _leaf(head, _RSP_TIME, format_instant(rsp.rsp_time))
    _leaf(head, _RET_CODE, ret_code)
    _leaf(head, _RET_MSG, _text(ret_msg, MAX_RET_MSG))
    if rsp.gw_ref is not None and _REF.fullmatch(rsp.gw_ref):
        _leaf(head, _GW_REF, rsp.gw_ref)
    _leaf(head, _DUP, "true" if rsp.dup else "false")
    if rsp.retry_after_ms is not None:
        _leaf(head, _RETRY_AFTER_MS, str(max(0, rsp.retry_after_ms)))
    listed = [view for view in rsp.items or () if view.seq_no is not None]
    if listed:
        render_items(etree.SubElement(root, _BODY), listed)
    elif draft is not None:
        render_draft(etree.SubElement(root, _BODY), draft)
    elif rsp.status is not None:
        render_status(etree.SubElement(root, _BODY), rsp.status)
    elif rsp.notices is not None:
        render_notifications(etree.SubElement(root, _BODY), rsp.notices)
    elif balance is not None:
        render_balance(etree.SubElement(root, _BODY), balance)
    return root


def render_items(parent: etree._Element, views: Sequence[StatusView]) -> etree._Element:
    """Append ``Items``: one ``Status`` per batch item, ``SeqNo`` first (docs/protocol.md §4, §5).

    Every view must carry ``seq_no`` (the schema requires it inside ``Items``;
    ``render_response`` leaves out views without one).
    """
    items = etree.SubElement(parent, _ITEMS)
    for view in views:
        render_status(items, view)
    return items


def render_status(parent: etree._Element, view: StatusView) -> etree._Element:
    """Append one ``Status`` element (docs/protocol.md §5) and return it.

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
    steps = state_changes(view.history)  # a step into the same state is the audit's
    if steps:
        history = etree.SubElement(status, _HISTORY)
        for step in steps:
            etree.SubElement(history, _STEP, State=step.state.value, At=format_instant(step.at))
    # SWIFT payments (docs/foreign-currency.md §1); a malformed value is left out, never sent.
    _optional(status, _UETR, view.uetr, _UETR_RE)
    return status


def render_notifications(parent: etree._Element, notices: Notices) -> etree._Element:
    """Append ``Notifications`` (docs/protocol.md §4 NTFY): ``Ntfy`` oldest first, ``Last``,
    ``More``.

    At most ``MAX_NTFY``: were more given, the rest is left for the next pull
    (``Last`` is then the last one sent, ``More`` true).  A notice whose
    NtfyId the schema cannot carry (not 1..2^63-1, or repeated) is skipped.
    """
    out = etree.SubElement(parent, _NOTIFICATIONS)
    last, more = notices.last, notices.more
    sent: set[int] = set()
    for notice in notices.notices:
        if not 1 <= notice.ntfy_id <= _MAX_NTFY_ID or notice.ntfy_id in sent:
            continue
        if len(sent) == MAX_NTFY:  # cut: the next pull starts after the last one sent
            last, more = max(sent), True
            break
        sent.add(notice.ntfy_id)
        render_notice(out, notice)
    _leaf(out, _LAST, str(min(max(last, 0), _MAX_NTFY_ID)))
    _leaf(out, _MORE, "true" if more else "false")
    return out


def render_notice(parent: etree._Element, notice: Notice) -> etree._Element:
    """Append one ``Ntfy``: every field the notice holds, in the XSD's order.

    ``reason_code`` with ``text`` becomes ``<Reason Code="...">text</Reason>``,
    as in ``Status``; ``Text`` then does not repeat it.  Without a (valid)
    reason code the text is ``Text``.  A DRAFT notice has its own elements
    (``render_draft_notice``).
    """
    if notice.kind is NoticeKind.DRAFT:
        return render_draft_notice(parent, notice)
    ntfy = _notice_head(parent, notice)
    _optional(ntfy, _ORIG_MSG_ID, notice.orig_msg_id, _MSG_ID_ECHO)
    if notice.seq_no is not None and 1 <= notice.seq_no <= _MAX_SEQ_NO:
        _leaf(ntfy, _SEQ_NO, str(notice.seq_no))
    _optional(ntfy, _GW_REF, notice.gw_ref, _REF)
    _optional(ntfy, _INQ_ID, notice.inq_id, _MSG_ID_ECHO)  # InqIdType: like a MsgId
    if notice.state is not None:
        _leaf(ntfy, _STATE, notice.state.value)
    text = notice.text
    if notice.reason_code is not None and _REASON_CODE_RE.fullmatch(notice.reason_code):
        reason = etree.SubElement(ntfy, _REASON, Code=notice.reason_code)
        reason.text = _text(text or "")
        text = None
    if notice.engine is not None:
        _leaf(ntfy, _ENGINE, notice.engine.value)
    if notice.work_date is not None:
        _leaf(ntfy, _WORK_DATE, notice.work_date.isoformat())
    _optional(ntfy, _ACCT, notice.acct, _ACCT_RE)
    amount = None if notice.amount is None else credit_amount(notice.amount, notice.ccy)
    if amount is not None and notice.amount is not None and notice.amount > 0:
        etree.SubElement(ntfy, _AMOUNT, Ccy=notice.ccy or "CNY").text = amount
    cpty_acct = notice.counterparty_acct
    if cpty_acct and len(cpty_acct) <= _MAX_CPTY_ACCT and not _NOT_XML_CHAR.search(cpty_acct):
        _leaf(ntfy, _CPTY_ACCT, cpty_acct)  # an account number is never cut or altered
    if notice.counterparty_name:
        _leaf(ntfy, _CPTY_NAME, _text(notice.counterparty_name, _MAX_CPTY_NAME))
    _optional(ntfy, _CPTY_BANK_CODE, notice.counterparty_bank, _BANK_CODE_RE)
    if text:
        _leaf(ntfy, _TEXT, _text(text, _MAX_TEXT))
    return ntfy


def _notice_head(parent: etree._Element, notice: Notice) -> etree._Element:
    """Append an ``Ntfy`` with what every kind has: ``NtfyId``, ``Kind``, ``Time``."""
    ntfy = etree.SubElement(parent, _NTFY)
    _leaf(ntfy, _NTFY_ID, str(notice.ntfy_id))
    _leaf(ntfy, _KIND, notice.kind.value)
    _leaf(ntfy, _TIME, format_instant(notice.at))
    return ntfy


def render_draft_notice(parent: etree._Element, notice: Notice) -> etree._Element:
    """Append one ``Ntfy`` of kind DRAFT (docs/bank-drafts.md §2), in the XSD's order.

    After ``NtfyId``, ``Kind`` and ``Time``: ``OrigMsgId`` (the DRAFT request),
    ``DraftNo``, ``State`` (the draft state reached) and ``At`` (when; the
    notice's time, since the register writes the notice with the step), then
    by state: ``Reason`` (REJECTED, the centre's code and text),
    ``SettleAmount`` (PAID, more than zero) or ``Remainder`` (SETTLED, zero
    or more), each with ``Ccy="CNY"``.  The payment fields (``state``,
    ``engine``, the credit's ``Amount``) never appear; a value out of
    pattern is left out, as for every notice.
    """
    ntfy = _notice_head(parent, notice)
    _optional(ntfy, _ORIG_MSG_ID, notice.orig_msg_id, _MSG_ID_ECHO)
    _optional(ntfy, _DRAFT_NO, notice.draft_no, _DRAFT_NO_RE)
    state = notice.draft_state if notice.draft_state in DRAFT_STATES else None
    if state is not None:
        _leaf(ntfy, _STATE, state)
    _leaf(ntfy, _AT, format_instant(notice.at))
    text = notice.text
    if (
        state == "REJECTED"
        and notice.reason_code is not None
        and _REASON_CODE_RE.fullmatch(notice.reason_code)
    ):
        reason = etree.SubElement(ntfy, _REASON, Code=notice.reason_code)
        reason.text = _text(text or "")
        text = None
    amount = None if notice.amount is None else format_amount(notice.amount)
    if amount is not None and notice.amount is not None:
        if state == "PAID" and notice.amount > 0:
            etree.SubElement(ntfy, _SETTLE_AMOUNT, Ccy="CNY").text = amount
        elif state == "SETTLED" and notice.amount >= 0:
            etree.SubElement(ntfy, _REMAINDER, Ccy="CNY").text = amount
    if text:
        _leaf(ntfy, _TEXT, _text(text, _MAX_TEXT))
    return ntfy


def _optional(
    parent: etree._Element, tag: str, value: str | None, pattern: re.Pattern[str]
) -> None:
    if value is not None and pattern.fullmatch(value):
        _leaf(parent, tag, value)


def format_amount(value: Decimal) -> str | None:
    """Wire amount with exactly two decimals (``-1234.50``, never ``-0.00``), or None
    when the schema cannot carry it: not finite, not whole cents, or more than
    15 integer digits (docs/protocol.md §4)."""
    if not value.is_finite() or abs(value) > _MAX_AMOUNT:
        return None
    cents = value.quantize(_CENT)
    if cents != value:
        return None
    return f"{abs(cents) if cents == 0 else cents:f}"


def credit_amount(value: Decimal, ccy: str | None) -> str | None:
    """A CREDIT's ``Amount`` text: CNY (``ccy`` None) as :func:`format_amount`; another
    currency exactly as journaled, with its minor units (``1500`` JPY, ``250.50`` USD,
    docs/foreign-currency.md §2), or None when the schema cannot carry it."""
    if ccy is None:
        return format_amount(value)
    if not _CCY_RE.fullmatch(ccy) or not value.is_finite():
        return None
    text = f"{value:f}"
    return text if _CREDIT_AMOUNT_RE.fullmatch(text) else None


def _balance_fields(balance: Balance) -> tuple[str, str, str, str] | None:
    """(Acct, Ccy, Bal, Avail) as written, or None when one cannot be (docs/clearing-link.md §5)."""
    bal, avail = format_amount(balance.balance), format_amount(balance.available)
    if (
        bal is None
        or avail is None
        or not _ACCT_RE.fullmatch(balance.acct)
        or not _CCY_RE.fullmatch(balance.ccy)
    ):
        return None
    return balance.acct, balance.ccy, bal, avail


def render_balance(parent: etree._Element, balance: Balance) -> etree._Element:
    """Append ``Balance``: ``Acct``, ``Bal`` and ``Avail`` with the account's ``Ccy``.

    ``ValueError`` when the schema cannot carry the balance (an account or
    currency out of pattern, an amount not in whole cents or beyond 15
    digits); ``render_response`` answers 9999 instead of calling this then.
    """
    fields = _balance_fields(balance)
    if fields is None:
        raise ValueError("balance cannot be rendered")
    acct, ccy, bal, avail = fields
    out = etree.SubElement(parent, _BALANCE)
    _leaf(out, _ACCT, acct)
    etree.SubElement(out, _BAL, Ccy=ccy).text = bal
    etree.SubElement(out, _AVAIL, Ccy=ccy).text = avail
    return out


def draft_renderable(view: DraftView) -> bool:
    """Whether the schema can carry ``view``'s required fields (docs/bank-drafts.md §1):
    a 20-digit DraftNo, a 16-digit Code, a register state, a positive amount in
    whole fen.  History steps it cannot carry are left out instead."""
    amount = format_amount(view.amount)
    return (
        _DRAFT_NO_RE.fullmatch(view.draft_no) is not None
        and _DRAFT_CODE_RE.fullmatch(view.code) is not None
        and view.state in DRAFT_STATES
        and amount is not None
        and view.amount > 0
    )


def render_draft(parent: etree._Element, view: DraftView) -> etree._Element:
    """Append ``Draft`` (DRAFT responses and STATUS about a DRAFT, docs/bank-drafts.md §2).

    ``DraftNo``, ``IssueDate``, ``ExpiryDate``, ``Amount`` (``Ccy="CNY"``),
    ``Code``, ``State``; then ``History``, one ``Step`` per state reached with
    its time and, where there is one, ``<Reason Code="..."/>`` — only when
    ``view.history`` has a step the schema can carry.  ``ValueError`` when a
    required field cannot be written (``render_response`` answers 9999 then).
    """
    amount = format_amount(view.amount)
    if amount is None or not draft_renderable(view):
        raise ValueError("draft cannot be rendered")
    out = etree.SubElement(parent, _DRAFT)
    _leaf(out, _DRAFT_NO, view.draft_no)
    _leaf(out, _ISSUE_DATE, view.issue_date.isoformat())
    _leaf(out, _EXPIRY_DATE, view.expiry_date.isoformat())
    etree.SubElement(out, _AMOUNT, Ccy="CNY").text = amount
    _leaf(out, _CODE, view.code)
    _leaf(out, _STATE, view.state)
    steps = [step for step in view.history if step.state in DRAFT_STATES]
    if steps:
        history = etree.SubElement(out, _HISTORY)
        for step in steps:
            _render_draft_step(history, step)
    return out


def _render_draft_step(history: etree._Element, step: DraftStep) -> None:
    el = etree.SubElement(history, _STEP, State=step.state, At=format_instant(step.at))
    if step.reason_code is not None and _REASON_CODE_RE.fullmatch(step.reason_code):
        etree.SubElement(el, _REASON, Code=step.reason_code)


def serialize(root: etree._Element, encoding: str) -> bytes:
    """Bytes of a (signed) response in the request's encoding (docs/protocol.md §1).

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
