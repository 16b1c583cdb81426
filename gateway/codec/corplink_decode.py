"""Typed decoding of a verified CorpLink request (docs/protocol.md §2, §4, §7).

Input is the root that the signature layer handed over: the re-parsed signed
content with the Signature removed (docs/architecture.md §9: business logic sees only the
signed bytes).  It already passed ``CorpLinkCodec.validate`` in its received
form, so the structure is known; the lookups here still fail closed with 1003
instead of an ``IndexError`` should that ever not hold.

Amount and currency rules are business rules (4004, docs/protocol.md §4 and §8)
and run here because this is where the text becomes a ``Decimal``; a currency
other than CNY is judged by the ``AmountCheck`` the codec was given
(``gateway.codec.foreign``, docs/foreign-currency.md §1).  §8 puts
replay and freshness (3001, 3002) *before* business rules, so a 4004 is
raised as ``BusinessRuleError`` carrying the decoded Head and the digest: the
pipeline can answer 3001/3002 first and send the 4004 only if those pass.

A PAYROLL ``Batch`` (docs/protocol.md §4) is one request: its structural rules
that the XSD cannot say cheaply — at most 50,000 items, ``SeqNo`` exactly
1..n — are schema rules (1003, ``check_batch``, run in the schema stage
before the signature), and an amount error in any item refuses the whole
batch with 4004 naming the item's ``SeqNo``.

The bodies of STATUS, NTFY, INQ, RPLY and BAL hold no business rule: the
XSD says all there is (lengths, patterns, ``After`` 0..2^63-1, ``Max``
1..500, 1003 in the schema stage), so they decode without Head or digest.

The draft bodies (docs/bank-drafts.md §2): ``DraftApply``'s amount follows
``Transfer``'s rules (4004 as ``BusinessRuleError``), but its currency is
kept as sent, for the business rules to refuse a non-CNY draft with 4004
after the credential and replay checks; ``DraftRefund`` holds no business
rule.  Scope and DraftNo are the XSD's (1003); the decoder checks them again
so that a root that skipped the schema still fails closed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Final, TypeVar

from lxml import etree

from gateway.codec.foreign import (
    DEFAULT_CHARGE_BEARER,
    AmountCheck,
    check_payee_fields,
    cny_only,
    foreign_amount,
)
from gateway.codec.xmlparse import local_name
from gateway.errors import GatewayError, RetCode
from gateway.model import (
    BalanceQuery,
    Batch,
    BatchItem,
    BizType,
    Body,
    DraftApply,
    DraftRefundRequest,
    Head,
    Inquiry,
    NotifyPull,
    Priority,
    Reply,
    Request,
    StatusQuery,
    Transfer,
    TrnCode,
)

NS: Final = "urn:corplink:1"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
PAIN001_NS: Final = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"


def q(name: str) -> str:
    """Clark-notation tag of a CorpLink element."""
    return f"{{{NS}}}{name}"


CORPLINK: Final = q("CorpLink")
DS_SIGNATURE: Final = f"{{{DS_NS}}}Signature"

#: The Body element each TrnCode requires (docs/protocol.md §4).
BODY_ELEMENT: Final[dict[str, str]] = {
    TrnCode.PAY.value: q("Transfer"),
    TrnCode.PAYROLL.value: q("Batch"),
    TrnCode.STATUS.value: q("StatusQuery"),
    TrnCode.NTFY.value: q("NotifyPull"),
    TrnCode.INQ.value: q("Inquiry"),
    TrnCode.RPLY.value: q("Reply"),
    TrnCode.BAL.value: q("BalanceQuery"),
    TrnCode.PAIN001.value: f"{{{PAIN001_NS}}}Document",
    TrnCode.MT101.value: q("MT"),
    TrnCode.DRAFT.value: q("DraftApply"),
    TrnCode.DRAFTRFND.value: q("DraftRefund"),
}

_AMOUNT_TEXT: Final = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,2})?")
"""docs/protocol.md §4 ``Amount``: ``^[0-9]{1,15}(\\.[0-9]{1,2})?$`` (ASCII digits only)."""

_E = TypeVar("_E", bound=Enum)

MAX_BATCH_ITEMS: Final = 50_000
"""docs/protocol.md §4: a ``Batch`` holds 1-50,000 ``Item`` elements (the XSD says
``unbounded``: a maxOccurs of 50,000 would compile a huge automaton)."""

_CENT: Final = Decimal("0.01")
_CCY: Final = "CNY"
_DRAFT_SCOPES: Final = frozenset({"NATIONAL", "PROVINCIAL"})
"""docs/bank-drafts.md §1 ``Scope``: national (全国) or provincial (省辖)."""
_DRAFT_NO: Final = re.compile(r"[0-9]{20}")
"""docs/bank-drafts.md §1 ``DraftNo``: 20 ASCII digits."""


class BusinessRuleError(GatewayError):
    """A 4xxx refusal found while decoding, with what replay checks need.

    docs/protocol.md §8 orders replay and freshness (3001, 3002) before business
    rules (4001-4006).  The pipeline catches this, runs those checks with
    ``head`` and ``digest``, and answers this error only if they pass.  Code
    that does not care still sees a plain ``GatewayError``.
    """

    def __init__(
        self,
        code: RetCode,
        detail: str,
        *,
        head: Head,
        digest: str,
        amounts: tuple[Decimal, ...] = (),
        currencies: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(code, detail)
        self.head = head
        self.digest = digest
        # The amounts that did decode: the credential checks (2006, docs/protocol.md
        # §6) still see every valid item of a batch, since §8 puts them first.
        self.amounts = amounts
        # Every Ccy as written, decoded or not: a file certificate may not send a
        # foreign currency (2006, docs/foreign-currency.md §1), also judged first.
        self.currencies = currencies


def content_digest(head: etree._Element, body: etree._Element) -> str:
    """SHA-256 hex of exclusive-c14n(Head) ‖ exclusive-c14n(Body) (docs/protocol.md §7).

    Canonical form makes the digest independent of the wire encoding,
    attribute order and quoting, empty-element syntax, character references
    and where the namespace is declared; text and whitespace inside Head and
    Body count, as they do for the signature.
    """
    try:
        data = _c14n(head) + _c14n(body)
    except etree.C14NError:
        # Relative namespace URIs cannot be canonicalised; the signature
        # layer fails the same way first (2001).
        raise GatewayError(RetCode.SIGNATURE_INVALID, "document cannot be canonicalised") from None
    return hashlib.sha256(data).hexdigest()


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def decode_request(
    root: etree._Element, encoding: str, *, amount_check: AmountCheck = cny_only
) -> Request:
    """Build the typed ``Request`` for a TrnCode with a CorpLink Body (docs/protocol.md §4).

    PAIN001 and MT101 bodies are decoded by ``CorpLinkCodec`` with their own
    codecs; here they are 1004.  ``amount_check`` judges a foreign currency
    (``gateway.codec.foreign``).
    """
    head, payload, digest = decode_parts(root)
    return Request(head, decode_body(head, payload, digest, amount_check), digest, encoding)


def decode_parts(root: etree._Element) -> tuple[Head, etree._Element, str]:
    """The typed Head, the Body's element and the idempotency digest (docs/protocol.md §2, §7)."""
    if root.tag != CORPLINK:
        raise GatewayError(RetCode.SCHEMA, f"{local_name(root.tag)}: expected CorpLink")
    parts = children(root)
    head_el = _element(parts, "Head", "CorpLink")
    body_el = _element(parts, "Body", "CorpLink")
    digest = content_digest(head_el, body_el)
    head = _decode_head(head_el)
    payload = next(body_el.iterchildren(etree.Element), None)
    expected = BODY_ELEMENT.get(head.trn_code)
    if payload is None or expected is None or payload.tag != expected:
        raise GatewayError(
            RetCode.SCHEMA,
            f"{local_name(None if payload is None else payload.tag)}: "
            f"does not match TrnCode {head.trn_code}",
        )
    return head, payload, digest


def decode_body(
    head: Head, payload: etree._Element, digest: str, amount_check: AmountCheck = cny_only
) -> Body:
    """The typed Body of every TrnCode but PAIN001 and MT101 (1004 here, docs/protocol.md §4)."""
    trn = head.trn_code
    if trn == TrnCode.PAY:
        return _decode_transfer(payload, head, digest, amount_check)
    if trn == TrnCode.PAYROLL:
        return _decode_batch(payload, head, digest, amount_check)
    if trn == TrnCode.DRAFT:
        return _decode_draft_apply(payload, head, digest)
    simple = _SIMPLE_BODIES.get(trn)
    if simple is None:
        raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"TrnCode {trn} not supported here")
    return simple(payload)


_NS_PREFIX: Final = f"{{{NS}}}"
_CUT: Final = len(_NS_PREFIX)


def children(parent: etree._Element) -> dict[str, etree._Element]:
    """CorpLink child elements by local name, the first of each name.

    One pass; comments, PIs and elements of other namespaces are skipped.
    """
    found: dict[str, etree._Element] = {}
    for child in parent:
        tag = child.tag
        if type(tag) is str and tag.startswith(_NS_PREFIX):
            found.setdefault(tag[_CUT:], child)
    return found


def _element(children: dict[str, etree._Element], name: str, parent: str) -> etree._Element:
    try:
        return children[name]
    except KeyError:
        raise GatewayError(RetCode.SCHEMA, f"{parent}: missing {name}") from None


def _text(children: dict[str, etree._Element], name: str, parent: str) -> str:
    """Text of a required simple element (schema-valid content: no mixed text)."""
    return _element(children, name, parent).text or ""


def optional_text(children: dict[str, etree._Element], name: str) -> str | None:
    child = children.get(name)
    return None if child is None else child.text or ""


def _decode_head(head_el: etree._Element) -> Head:
    fields = children(head_el)
    send_time_text = _text(fields, "SendTime", "Head").strip()
    try:
        send_time = datetime.fromisoformat(send_time_text)
    except ValueError:
        raise GatewayError(RetCode.SCHEMA, "SendTime: invalid value") from None
    if send_time.tzinfo is None:
        raise GatewayError(RetCode.SCHEMA, "SendTime: offset required")
    return Head(
        trn_code=_text(fields, "TrnCode", "Head"),
        corp_id=_text(fields, "CorpId", "Head"),
        oper_id=_text(fields, "OperId", "Head"),
        msg_id=_text(fields, "MsgId", "Head"),
        send_time=send_time,
    )


def _decode_transfer(
    el: etree._Element, head: Head, digest: str, amount_check: AmountCheck
) -> Transfer:
    fields = children(el)
    payee = payee_fields(fields)  # 1003 before any 4004 (docs/protocol.md §8)
    amount_el = _element(fields, "Amount", "Transfer")
    ccy = amount_el.get("Ccy") or ""
    try:
        amount = _amount(amount_el.text or "", ccy, head, digest, amount_check)
    except BusinessRuleError as exc:
        exc.currencies = frozenset({ccy})
        raise
    return Transfer(
        payer_acct=_text(fields, "PayerAcct", "Transfer"),
        payer_name=_text(fields, "PayerName", "Transfer"),
        payee_acct=_text(fields, "PayeeAcct", "Transfer"),
        payee_name=_text(fields, "PayeeName", "Transfer"),
        payee_bank_code=payee.bank_code,
        amount=amount,
        ccy=ccy,
        priority=_enum(Priority, optional_text(fields, "Priority"), Priority.NORM, "Priority"),
        biz_type=_enum(BizType, optional_text(fields, "BizType"), BizType.CREDIT, "BizType"),
        purpose=optional_text(fields, "Purpose") or None,
        payee_bic=payee.bic,
        payee_country=payee.country,
        chrg_br=payee.chrg_br,
    )


@dataclass(frozen=True, slots=True)
class PayeeFields:
    """``PayeeBankCode`` ("" when only the BIC is given), ``PayeeBIC``, ``PayeeCountry``,
    ``ChrgBr`` (default SHAR) of a ``Transfer`` or ``Item`` (docs/foreign-currency.md §1)."""

    bank_code: str
    bic: str | None
    country: str | None
    chrg_br: str


def payee_fields(fields: dict[str, etree._Element]) -> PayeeFields:
    """The payee-bank fields of a ``Transfer`` or ``Item``, or 1003 naming the element.

    The XSD has checked the shapes already; the rules that span elements (one
    of ``PayeeBankCode`` and ``PayeeBIC``; ``PayeeCountry`` with ``PayeeBIC``)
    are here, run in the schema stage by ``check_payees`` and again on decode.
    """
    bank_code = optional_text(fields, "PayeeBankCode")
    bic = optional_text(fields, "PayeeBIC")
    country = optional_text(fields, "PayeeCountry")
    chrg_br = optional_text(fields, "ChrgBr")
    check_payee_fields(bank_code, bic, country, chrg_br)
    return PayeeFields(bank_code or "", bic, country, chrg_br or DEFAULT_CHARGE_BEARER)


def check_payees(trn_code: str, payload: etree._Element) -> None:
    """Schema-stage payee rules of PAY and PAYROLL (1003, docs/foreign-currency.md §1).

    A PAYROLL refusal names the item's ``SeqNo``; the items' numbering is
    ``check_batch``'s, run first.
    """
    if trn_code == TrnCode.PAY:
        payee_fields(children(payload))
        return
    for child in payload:
        if child.tag == _ITEM:
            try:
                payee_fields(children(child))
            except GatewayError as exc:
                raise GatewayError(exc.code, f"{exc.detail} (SeqNo {_seq_no(child)})") from None


def _enum(kind: type[_E], text: str | None, default: _E, name: str) -> _E:
    if text is None:
        return default
    try:
        return kind(text)
    except ValueError:
        raise GatewayError(RetCode.SCHEMA, f"{name}: invalid value") from None


def _amount(
    text: str, ccy: str, head: Head, digest: str, amount_check: AmountCheck = cny_only
) -> Decimal:
    """docs/protocol.md §4 ``Amount``: the text pattern and > 0, else 4004.

    CNY as ever: two places.  Another currency is judged by ``amount_check``
    (docs/foreign-currency.md §1) and keeps its decimals as written.
    """
    if ccy == _CCY:
        return _amount_value(text, head, digest)
    try:
        return foreign_amount(text, ccy, amount_check)
    except GatewayError as exc:
        raise BusinessRuleError(
            RetCode.AMOUNT_INVALID, f"Amount: {exc.detail}", head=head, digest=digest
        ) from None


def _amount_value(text: str, head: Head, digest: str) -> Decimal:
    """The ``Amount`` text as a two-place ``Decimal``: the pattern and > 0, else 4004."""
    if _AMOUNT_TEXT.fullmatch(text) is None:
        raise BusinessRuleError(
            RetCode.AMOUNT_INVALID,
            "Amount: up to 15 digits and at most 2 decimals",
            head=head,
            digest=digest,
        )
    value = Decimal(text).quantize(_CENT)
    if value <= 0:
        raise BusinessRuleError(
            RetCode.AMOUNT_INVALID, "Amount: must be greater than zero", head=head, digest=digest
        )
    return value


def check_batch(batch: etree._Element) -> list[tuple[int, etree._Element]]:
    """PAYROLL's schema rules beyond the XSD (1003, docs/protocol.md §4); returns (SeqNo, Item).

    1-50,000 ``Item`` elements whose ``SeqNo`` are exactly 1..n: the XSD
    already makes each ``SeqNo`` an int in 1..50,000 and unique, so every
    one being ≤ n is enough.  The refusal names the first offending item.
    """
    items = [child for child in batch if child.tag == _ITEM]
    n = len(items)
    if n > MAX_BATCH_ITEMS:
        raise GatewayError(RetCode.SCHEMA, f"Batch: more than {MAX_BATCH_ITEMS} items")
    numbered = []
    for item in items:
        seq = _seq_no(item)
        if not 1 <= seq <= n:
            raise GatewayError(
                RetCode.SCHEMA, f"SeqNo: {seq} outside 1..{n} (items are numbered 1..n)"
            )
        numbered.append((seq, item))
    return numbered


_ITEM: Final = q("Item")
_SEQ_NO: Final = q("SeqNo")


def _seq_no(item: etree._Element) -> int:
    seq_el = item.find(_SEQ_NO)
    try:
        return int((seq_el.text if seq_el is not None else None) or "")
    except ValueError:
        raise GatewayError(RetCode.SCHEMA, "SeqNo: invalid value") from None


def _decode_batch(
    el: etree._Element, head: Head, digest: str, amount_check: AmountCheck = cny_only
) -> Batch:
    """A PAYROLL ``Batch``: one transfer per ``Item`` from the batch's payer (docs/protocol.md §4).

    Amounts are judged for every item; the first error (in document order)
    refuses the batch with 4004 naming its ``SeqNo``, carrying the amounts
    of the items that decoded so the credential checks still see them.
    """
    fields = children(el)
    payer_acct = _text(fields, "PayerAcct", "Batch")
    payer_name = _text(fields, "PayerName", "Batch")
    items: list[BatchItem] = []
    amounts: list[Decimal] = []
    currencies: set[str] = set()
    failure: str | None = None
    for seq, item_el in check_batch(el):
        item = children(item_el)
        try:
            payee = payee_fields(item)
        except GatewayError as exc:
            raise GatewayError(exc.code, f"{exc.detail} (SeqNo {seq})") from None
        amount_el = _element(item, "Amount", "Item")
        ccy = amount_el.get("Ccy") or ""
        currencies.add(ccy)
        try:
            amount = _amount(amount_el.text or "", ccy, head, digest, amount_check)
        except BusinessRuleError as exc:
            failure = failure or f"{exc.detail} (SeqNo {seq})"
            continue
        amounts.append(amount)
        transfer = Transfer(
            payer_acct=payer_acct,
            payer_name=payer_name,
            payee_acct=_text(item, "PayeeAcct", "Item"),
            payee_name=_text(item, "PayeeName", "Item"),
            payee_bank_code=payee.bank_code,
            amount=amount,
            ccy=ccy,
            purpose=optional_text(item, "Purpose") or None,
            payee_bic=payee.bic,
            payee_country=payee.country,
            chrg_br=payee.chrg_br,
        )
        items.append(BatchItem(seq_no=seq, transfer=transfer))
    if failure is not None:
        raise BusinessRuleError(
            RetCode.AMOUNT_INVALID,
            failure,
            head=head,
            digest=digest,
            amounts=tuple(amounts),
            currencies=frozenset(currencies),
        )
    items.sort(key=lambda item: item.seq_no)  # per-item status and journal order by SeqNo
    return Batch(items=tuple(items))


def _optional_int(fields: dict[str, etree._Element], name: str) -> int | None:
    """An optional integer element; the XSD already fixed its range (1003 otherwise)."""
    text = optional_text(fields, name)
    try:
        return None if text is None else int(text)
    except ValueError:
        raise GatewayError(RetCode.SCHEMA, f"{name}: invalid value") from None


def _decode_status_query(el: etree._Element) -> StatusQuery:
    fields = children(el)
    return StatusQuery(
        orig_msg_id=_text(fields, "OrigMsgId", "StatusQuery"),
        seq_no=_optional_int(fields, "SeqNo"),
    )


DEFAULT_NTFY_MAX: Final = 100
"""``NotifyPull/Max`` when absent (docs/protocol.md §4 says only "≤ 500")."""


def _decode_notify_pull(el: etree._Element) -> NotifyPull:
    """NTFY ``NotifyPull``: ``After`` (a NtfyId, 0 when absent) and ``Max`` (1..500,
    default 100); the XSD bounds both (docs/protocol.md §4)."""
    fields = children(el)
    after = _optional_int(fields, "After")
    limit = _optional_int(fields, "Max")
    return NotifyPull(
        after=0 if after is None else after,
        max=DEFAULT_NTFY_MAX if limit is None else limit,
    )


def _decode_inquiry(el: etree._Element) -> Inquiry:
    """INQ ``Inquiry``: the payment asked about and the question, 1-500 characters."""
    fields = children(el)
    return Inquiry(
        orig_msg_id=_text(fields, "OrigMsgId", "Inquiry"),
        text=_text(fields, "Text", "Inquiry"),
        seq_no=_optional_int(fields, "SeqNo"),
    )


def _decode_reply(el: etree._Element) -> Reply:
    """RPLY ``Reply``: the ``InqId`` of an INQUIRY notification and the answer."""
    fields = children(el)
    return Reply(inq_id=_text(fields, "InqId", "Reply"), text=_text(fields, "Text", "Reply"))


def _decode_balance_query(el: etree._Element) -> BalanceQuery:
    """BAL ``BalanceQuery``: one account; enrolment is the pipeline's check (4006)."""
    return BalanceQuery(acct=_text(children(el), "Acct", "BalanceQuery"))


def _decode_draft_apply(el: etree._Element, head: Head, digest: str) -> DraftApply:
    """DRAFT ``DraftApply`` (docs/bank-drafts.md §2): the amount as in ``Transfer`` (4004),
    the currency as sent (a non-CNY one is the business rules' 4004), Scope 1003."""
    fields = children(el)
    amount_el = _element(fields, "Amount", "DraftApply")
    ccy = amount_el.get("Ccy")
    if ccy is None:
        raise GatewayError(RetCode.SCHEMA, "Amount: missing attribute Ccy")
    amount = _amount_value(amount_el.text or "", head, digest)
    scope = _text(fields, "Scope", "DraftApply")
    if scope not in _DRAFT_SCOPES:
        raise GatewayError(RetCode.SCHEMA, "Scope: invalid value, expected NATIONAL or PROVINCIAL")
    return DraftApply(
        payer_acct=_text(fields, "PayerAcct", "DraftApply"),
        payer_name=_text(fields, "PayerName", "DraftApply"),
        payee_name=_text(fields, "PayeeName", "DraftApply"),
        amount=amount,
        scope=scope,
        ccy=ccy,
        purpose=optional_text(fields, "Purpose") or None,
    )


def _decode_draft_refund(el: etree._Element) -> DraftRefundRequest:
    """DRAFTRFND ``DraftRefund``: which draft, and why (1-500 characters)."""
    fields = children(el)
    draft_no = _text(fields, "DraftNo", "DraftRefund")
    if _DRAFT_NO.fullmatch(draft_no) is None:
        raise GatewayError(RetCode.SCHEMA, "DraftNo: invalid value, expected 20 digits")
    return DraftRefundRequest(draft_no=draft_no, text=_text(fields, "Text", "DraftRefund"))


_SIMPLE_BODIES: Final[dict[str, Callable[[etree._Element], Body]]] = {
    TrnCode.STATUS.value: _decode_status_query,
    TrnCode.NTFY.value: _decode_notify_pull,
    TrnCode.INQ.value: _decode_inquiry,
    TrnCode.RPLY.value: _decode_reply,
    TrnCode.BAL.value: _decode_balance_query,
    TrnCode.DRAFTRFND.value: _decode_draft_refund,
}
"""The bodies that need neither the Head nor the digest (no business rule inside)."""
