"""The INTRA link's draft Documents (docs/bank-drafts.md §3), sans-IO.

``DrftIsse``, ``DrftPrsntmt``, ``DrftAnswr``, ``DrftSttlm`` and ``DrftRfnd``
travel inside signed ``ClrMsg`` envelopes (docs/clearing-link.md §3).  Like the
clearing link's own Documents, each is a root element named after the
Document, in namespace ``urn:clearing:1`` declared as the default namespace,
with leaf children in the fixed order of the contract's table; amounts are
``[0-9]{1,15}.[0-9]{2}`` without a currency attribute.

Builders return the Document element for the envelope and refuse
(``ValueError``) anything that would put a malformed Document on the link.
Readers take the Document element of a verified envelope and refuse
(:class:`DraftDocumentError` naming the field) whatever a careless or hostile
peer might send: another root, a missing, repeated, reordered or unknown
child, attributes, nested elements, comments, text outside the fields, or a
field out of its format.  The gateway, the clearing simulator and the tests
use these same functions, so every side reads the contract the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, TypeVar, cast

from lxml import etree

from gateway.codec.xmlparse import UTF8, parse_body
from gateway.drafts.code import is_code_text
from gateway.drafts.numbers import (
    check_draft_no,
    check_participant,
    check_prsntmt_id,
    format_amount,
    parse_amount,
)
from gateway.drafts.records import Answer, Presentment, Reason, Result, Scope
from gateway.errors import GatewayError

NS_CLR: Final = "urn:clearing:1"
"""docs/bank-drafts.md §3: the namespace of every draft Document."""

MSG_TP_ISSUE: Final = "intra.draft.issue"
MSG_TP_PRESENT: Final = "intra.draft.present"
MSG_TP_ANSWER: Final = "intra.draft.answer"
MSG_TP_SETTLE: Final = "intra.draft.settle"
MSG_TP_REFUND: Final = "intra.draft.refund"
OUTBOUND_MSG_TPS: Final = frozenset({MSG_TP_ISSUE, MSG_TP_ANSWER, MSG_TP_SETTLE, MSG_TP_REFUND})
STATUS_MSG_TPS: Final = frozenset({MSG_TP_ISSUE, MSG_TP_SETTLE, MSG_TP_REFUND})
"""docs/bank-drafts.md §3: these get a ccms.900 after their ccms.990; an answer gets none."""

MAX_DOCUMENT_BYTES: Final = 16 * 1024
"""A draft Document is a few hundred bytes; a standalone one far bigger is refused."""

MAX_NAME_CHARS: Final = 140
"""A holder's name as another bank sends it (like an incoming credit's ``Nm``, Max140Text)."""

_ACCT = re.compile(r"[0-9A-Za-z]{1,32}")  # docs/protocol.md §4: account numbers
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

ISSUE_FIELDS: Final = ("DraftNo", "Amount", "PayerAcct", "Scope")
PRESENT_FIELDS: Final = (
    "PrsntmtId",
    "DraftNo",
    "Code",
    "IssueDate",
    "Amount",
    "SettleAmount",
    "AgentBank",
    "HolderAcct",
    "HolderName",
)
ANSWER_FIELDS: Final = ("PrsntmtId", "DraftNo", "Result", "Rsn")
SETTLE_FIELDS: Final = ("DraftNo", "SettleAmount", "Remainder", "PayerAcct")
REFUND_FIELDS: Final = ("DraftNo", "Amount", "PayerAcct")


class DraftDocumentError(ValueError):
    """A draft Document was refused; the message names the Document and the field."""


@dataclass(frozen=True, slots=True)
class DraftIssue:
    """``DrftIsse``: move the amount to the remittance account (docs/bank-drafts.md §3)."""

    draft_no: str
    amount: Decimal
    payer_acct: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class DraftAnswer:
    """``DrftAnswr``: our answer to presentment ``prsntmt_id`` (docs/bank-drafts.md §3)."""

    prsntmt_id: str
    draft_no: str
    answer: Answer


@dataclass(frozen=True, slots=True)
class DraftSettlement:
    """``DrftSttlm``: return the remainder (zero included) to the applicant."""

    draft_no: str
    settle_amount: Decimal
    remainder: Decimal
    payer_acct: str


@dataclass(frozen=True, slots=True)
class DraftRefund:
    """``DrftRfnd``: return the whole amount to the applicant."""

    draft_no: str
    amount: Decimal
    payer_acct: str


# ------------------------------------------------------------------ field checks


def check_acct(acct: str, name: str) -> str:
    """``acct`` if it is ``[0-9A-Za-z]{1,32}`` (docs/protocol.md §4), else ``ValueError``."""
    if not _ACCT.fullmatch(acct):
        raise ValueError(f"{name} must be an account number [0-9A-Za-z]{{1,32}}")
    return acct


def check_name(value: str, name: str) -> str:
    """A name of 1 to :data:`MAX_NAME_CHARS` characters, not blank, no control characters."""
    if not 1 <= len(value) <= MAX_NAME_CHARS or not value.strip():
        raise ValueError(f"{name} must be 1-{MAX_NAME_CHARS} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{name} contains a control character")
    return value


def _parse_date(text: str, name: str) -> date:
    if not _DATE.fullmatch(text):
        raise ValueError(f"{name} must be a YYYY-MM-DD date")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a YYYY-MM-DD date") from None


_E = TypeVar("_E", Scope, Result, Reason)


def _parse_enum(kind: type[_E], text: str, name: str) -> _E:
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValueError(f"{name} must be one of {allowed}") from None


# ------------------------------------------------------------------ building


def _q(local: str) -> str:
    return f"{{{NS_CLR}}}{local}"


def _document(root_name: str, fields: Sequence[tuple[str, str]]) -> etree._Element:
    # lxml-stubs type nsmap keys as str, but lxml takes None for the default namespace
    nsmap = cast("dict[str, str]", {None: NS_CLR})
    root = etree.Element(_q(root_name), nsmap=nsmap)
    for name, text in fields:
        etree.SubElement(root, _q(name)).text = text
    return root


def build_issue(doc: DraftIssue) -> etree._Element:
    """``<DrftIsse xmlns="urn:clearing:1">`` (docs/bank-drafts.md §3)."""
    return _document(
        "DrftIsse",
        (
            ("DraftNo", check_draft_no(doc.draft_no)),
            ("Amount", format_amount(doc.amount, "Amount")),
            ("PayerAcct", check_acct(doc.payer_acct, "PayerAcct")),
            ("Scope", Scope(doc.scope).value),
        ),
    )


def build_presentment(doc: Presentment) -> etree._Element:
    """``<DrftPrsntmt>``: what an agent bank sends through the centre (simulators, tests).

    A SettleAmount of zero may be built (it is answered SA, docs/bank-drafts.md §3).
    """
    if not is_code_text(doc.code):
        raise ValueError("Code must be 16 digits")
    return _document(
        "DrftPrsntmt",
        (
            ("PrsntmtId", check_prsntmt_id(doc.prsntmt_id)),
            ("DraftNo", check_draft_no(doc.draft_no)),
            ("Code", doc.code),
            ("IssueDate", doc.issue_date.isoformat()),
            ("Amount", format_amount(doc.amount, "Amount", zero=True)),
            ("SettleAmount", format_amount(doc.settle_amount, "SettleAmount", zero=True)),
            ("AgentBank", check_participant(doc.agent_bank, "AgentBank")),
            ("HolderAcct", check_acct(doc.holder_acct, "HolderAcct")),
            ("HolderName", check_name(doc.holder_name, "HolderName")),
        ),
    )


def build_answer(doc: DraftAnswer) -> etree._Element:
    """``<DrftAnswr>``: ``Result`` ACCP, or RJCT followed by its ``Rsn``."""
    fields = [
        ("PrsntmtId", check_prsntmt_id(doc.prsntmt_id)),
        ("DraftNo", check_draft_no(doc.draft_no)),
        ("Result", doc.answer.result.value),
    ]
    if doc.answer.reason is not None:
        fields.append(("Rsn", doc.answer.reason.value))
    return _document("DrftAnswr", fields)


def build_settlement(doc: DraftSettlement) -> etree._Element:
    """``<DrftSttlm>``; the Remainder may be zero, the SettleAmount may not."""
    return _document(
        "DrftSttlm",
        (
            ("DraftNo", check_draft_no(doc.draft_no)),
            ("SettleAmount", format_amount(doc.settle_amount, "SettleAmount")),
            ("Remainder", format_amount(doc.remainder, "Remainder", zero=True)),
            ("PayerAcct", check_acct(doc.payer_acct, "PayerAcct")),
        ),
    )


def build_refund(doc: DraftRefund) -> etree._Element:
    """``<DrftRfnd>``: the whole Amount back to the payer's account."""
    return _document(
        "DrftRfnd",
        (
            ("DraftNo", check_draft_no(doc.draft_no)),
            ("Amount", format_amount(doc.amount, "Amount")),
            ("PayerAcct", check_acct(doc.payer_acct, "PayerAcct")),
        ),
    )


def serialize(document: etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration (for a Document on its own: tests, logs of shape)."""
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


# ------------------------------------------------------------------ reading


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _fields(
    document: etree._Element, root_name: str, order: Sequence[str], optional: frozenset[str]
) -> dict[str, str]:
    """The texts of a flat Document whose children are ``order`` (``optional`` ones may be
    absent), each once and in that order; :class:`DraftDocumentError` otherwise."""
    if document.tag != _q(root_name):
        raise DraftDocumentError(f"Document is not {root_name}")
    if document.attrib or not _is_blank(document.text):
        raise DraftDocumentError(f"{root_name}: attributes or text on the root")
    out: dict[str, str] = {}
    expected = iter(order)
    for elem in document:
        tag = elem.tag
        if not isinstance(tag, str) or not tag.startswith(f"{{{NS_CLR}}}"):
            raise DraftDocumentError(f"{root_name}: a comment, instruction or foreign element")
        name = tag.rpartition("}")[2]
        if name not in order:
            raise DraftDocumentError(f"{root_name}/{name[:40]}: unknown element")
        if name in out:
            raise DraftDocumentError(f"{root_name}/{name} repeated")
        for want in expected:
            if want == name:
                break
            if want not in optional:
                raise DraftDocumentError(f"{root_name}/{want} missing or out of order")
        else:
            raise DraftDocumentError(f"{root_name}/{name} out of order")
        if elem.attrib or len(elem) or not _is_blank(elem.tail):
            raise DraftDocumentError(f"{root_name}/{name}: attributes, children or stray text")
        if not elem.text:
            raise DraftDocumentError(f"{root_name}/{name} is empty")
        out[name] = elem.text
    for want in expected:
        if want not in optional:
            raise DraftDocumentError(f"{root_name}/{want} missing")
    return out


def read_issue(document: etree._Element) -> DraftIssue:
    """Read a ``DrftIsse`` (the clearing simulator's side)."""
    f = _fields(document, "DrftIsse", ISSUE_FIELDS, frozenset())
    try:
        return DraftIssue(
            draft_no=check_draft_no(f["DraftNo"]),
            amount=_positive(f["Amount"], "Amount"),
            payer_acct=check_acct(f["PayerAcct"], "PayerAcct"),
            scope=_parse_enum(Scope, f["Scope"], "Scope"),
        )
    except ValueError as exc:
        raise DraftDocumentError(f"DrftIsse/{exc}") from None


def read_presentment(document: etree._Element) -> Presentment:
    """Read a ``DrftPrsntmt``: every field in its format, or :class:`DraftDocumentError`.

    The values are only *well-formed* here; whether they match the register
    is for the checks (docs/bank-drafts.md §3), so an amount of 0.00 reads.
    """
    f = _fields(document, "DrftPrsntmt", PRESENT_FIELDS, frozenset())
    try:
        if not is_code_text(f["Code"]):
            raise ValueError("Code must be 16 digits")
        return Presentment(
            prsntmt_id=check_prsntmt_id(f["PrsntmtId"]),
            draft_no=check_draft_no(f["DraftNo"]),
            code=f["Code"],
            issue_date=_parse_date(f["IssueDate"], "IssueDate"),
            amount=parse_amount(f["Amount"], "Amount"),
            settle_amount=parse_amount(f["SettleAmount"], "SettleAmount"),
            agent_bank=check_participant(f["AgentBank"], "AgentBank"),
            holder_acct=check_acct(f["HolderAcct"], "HolderAcct"),
            holder_name=check_name(f["HolderName"], "HolderName"),
        )
    except ValueError as exc:
        raise DraftDocumentError(f"DrftPrsntmt/{exc}") from None


def read_answer(document: etree._Element) -> DraftAnswer:
    """Read a ``DrftAnswr`` (the agent bank's side): ``Rsn`` present exactly with RJCT."""
    f = _fields(document, "DrftAnswr", ANSWER_FIELDS, frozenset({"Rsn"}))
    try:
        result = _parse_enum(Result, f["Result"], "Result")
        reason = _parse_enum(Reason, f["Rsn"], "Rsn") if "Rsn" in f else None
        if (result is Result.RJCT) != (reason is not None):
            raise ValueError("Rsn is given with RJCT and only with RJCT")
        return DraftAnswer(
            prsntmt_id=check_prsntmt_id(f["PrsntmtId"]),
            draft_no=check_draft_no(f["DraftNo"]),
            answer=Answer(result, reason),
        )
    except ValueError as exc:
        raise DraftDocumentError(f"DrftAnswr/{exc}") from None


def read_settlement(document: etree._Element) -> DraftSettlement:
    """Read a ``DrftSttlm`` (the clearing simulator's side)."""
    f = _fields(document, "DrftSttlm", SETTLE_FIELDS, frozenset())
    try:
        return DraftSettlement(
            draft_no=check_draft_no(f["DraftNo"]),
            settle_amount=_positive(f["SettleAmount"], "SettleAmount"),
            remainder=parse_amount(f["Remainder"], "Remainder"),
            payer_acct=check_acct(f["PayerAcct"], "PayerAcct"),
        )
    except ValueError as exc:
        raise DraftDocumentError(f"DrftSttlm/{exc}") from None


def read_refund(document: etree._Element) -> DraftRefund:
    """Read a ``DrftRfnd`` (the clearing simulator's side)."""
    f = _fields(document, "DrftRfnd", REFUND_FIELDS, frozenset())
    try:
        return DraftRefund(
            draft_no=check_draft_no(f["DraftNo"]),
            amount=_positive(f["Amount"], "Amount"),
            payer_acct=check_acct(f["PayerAcct"], "PayerAcct"),
        )
    except ValueError as exc:
        raise DraftDocumentError(f"DrftRfnd/{exc}") from None


def _positive(text: str, name: str) -> Decimal:
    value = parse_amount(text, name)
    if value <= 0:
        raise ValueError(f"{name} must be positive")
    return value


def parse_document(data: bytes) -> etree._Element:
    """A standalone Document's bytes, parsed hardened (no DTD, no entities, UTF-8 only).

    The link hands the readers the Document of a verified envelope; this is
    for Documents on their own (simulators, tests), through the same parser
    as every CorpLink body (``gateway.codec.xmlparse``).
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DraftDocumentError("Document too large")
    try:
        parsed = parse_body(data)
    except GatewayError as exc:
        raise DraftDocumentError(f"not a well-formed Document: {exc.detail or exc}") from None
    if parsed.encoding != UTF8:
        raise DraftDocumentError("a Document on the clearing link is UTF-8")
    return parsed.root


def parse_presentment(data: bytes) -> Presentment:
    """:func:`read_presentment` of a standalone Document's bytes."""
    return read_presentment(parse_document(data))


__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_NAME_CHARS",
    "MSG_TP_ANSWER",
    "MSG_TP_ISSUE",
    "MSG_TP_PRESENT",
    "MSG_TP_REFUND",
    "MSG_TP_SETTLE",
    "NS_CLR",
    "OUTBOUND_MSG_TPS",
    "STATUS_MSG_TPS",
    "DraftAnswer",
    "DraftDocumentError",
    "DraftIssue",
    "DraftRefund",
    "DraftSettlement",
    "build_answer",
    "build_issue",
    "build_presentment",
    "build_refund",
    "build_settlement",
    "check_acct",
    "check_name",
    "parse_document",
    "parse_presentment",
    "read_answer",
    "read_issue",
    "read_presentment",
    "read_refund",
    "read_settlement",
]
