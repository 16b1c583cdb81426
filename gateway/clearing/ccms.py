"""The clearing link's own Documents: netting, settlement, inquiry, reply (docs/clearing-link.md
§4), sans-IO.

``beps.netting`` (``NetgNtfctn``), ``beps.settle`` (``SttlmNtfctn``),
``ccms.314`` (``Inqry``) and ``ccms.315`` (``Rply``) have no ISO 20022
Document that fits, so docs/clearing-link.md §4 defines them in namespace
``urn:clearing:1``, shaped like the ccms.990 ``Rcpt``: the Document's root
element is the message's own name, declared as the default namespace, with
leaf children in a fixed order.

Builders refuse with ``ValueError`` any input that would put a malformed
Document on the link; parsers refuse (``ValueError`` naming the field) what
a careless or hostile peer might send, including a ``CptyPos`` whose ``Net``
disagrees with its sums: a netting figure is reconciled against the
gateway's ledger, so an inconsistent one must never reach that comparison
as if it were a mismatch of ours.  Money is CNY with exactly two decimals
(``pacs.format_amount``); sums may be zero and ``Net`` may be negative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from lxml import etree

from gateway.clearing.envelope import (
    MAX_MSG_ID_LEN,
    NS_CLR,
    child_text,
    new_document,
    parse_date,
)
from gateway.clearing.pacs import format_amount, parse_amount
from gateway.journal.records import Figures

MSG_TP_NETTING: Final = "beps.netting"
MSG_TP_SETTLE: Final = "beps.settle"
MSG_TP_INQUIRY: Final = "ccms.314"
MSG_TP_REPLY: Final = "ccms.315"

#: docs/clearing-link.md §4: ``InqId`` is an identifier like a MsgId: at most 35 characters.
MAX_INQ_ID_LEN: Final = MAX_MSG_ID_LEN
#: docs/clearing-link.md §4: the inquiry or reply ``Text``, at most 500 characters.
MAX_TEXT_LEN: Final = 500
#: A round number that fits any sane day (and a 32-bit column).
MAX_ROUND: Final = 10**9 - 1

_PARTICIPANT = re.compile(r"[0-9]{12}")
_COUNT = re.compile(r"[0-9]{1,15}")
_ROUND = re.compile(r"[1-9][0-9]{0,8}")
_ZERO = re.compile(r"0{1,18}(\.0{1,5})?")
_POS_FIELDS: Final = ("Cpty", "DbtCnt", "DbtSum", "CdtCnt", "CdtSum", "Net")


def _q(local: str) -> str:
    return f"{{{NS_CLR}}}{local}"


def _sub(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, _q(name)).text = text


def _check_root(document: etree._Element, local: str, msg_tp: str) -> None:
    if document.tag != _q(local):
        raise ValueError(f"{msg_tp} Document is not {local}")


# ------------------------------------------------------------------ value helpers


def format_money(value: Decimal, name: str, *, signed: bool = False) -> str:
    """Two decimals; zero allowed, a negative value only when ``signed`` (a ``Net``)."""
    if not value.is_finite():
        raise ValueError(f"{name} is not a number")
    if value == 0:
        return "0.00"
    if value < 0:
        if not signed:
            raise ValueError(f"{name} must not be negative")
        return "-" + format_amount(-value, name)
    return format_amount(value, name)


def parse_money(text: str, name: str, *, signed: bool = False) -> Decimal:
    """The inverse of :func:`format_money`; ``ValueError`` naming ``name``."""
    negative = signed and text.startswith("-")
    body = text[1:] if negative else text
    value = Decimal(0) if _ZERO.fullmatch(body) else parse_amount(body, name)
    return -value if negative else value


def _format_count(value: int, name: str) -> str:
    if not 0 <= value < 10**15:
        raise ValueError(f"{name} must be a count of 0-15 digits")
    return str(value)


def _parse_count(text: str, name: str) -> int:
    if not _COUNT.fullmatch(text):
        raise ValueError(f"{name} is not a count")
    return int(text)


def _format_round(value: int) -> str:
    if not 1 <= value <= MAX_ROUND:
        raise ValueError("Round must be a positive number")
    return str(value)


def _parse_round(text: str) -> int:
    if not _ROUND.fullmatch(text):
        raise ValueError("Round must be a positive number")
    return int(text)


def _check_participant(value: str, name: str) -> str:
    if not _PARTICIPANT.fullmatch(value):
        raise ValueError(f"{name} must be a 12-digit participant")
    return value


def _check_text(value: str, limit: int, name: str) -> str:
    if not 1 <= len(value) <= limit:
        raise ValueError(f"{name} must be 1-{limit} characters")
    return value


# ------------------------------------------------------------------ beps.netting


@dataclass(frozen=True, slots=True)
class CptyPosition:
    """One ``CptyPos``: our bilateral figures with participant ``cpty`` (docs/clearing-link.md
    §4)."""

    cpty: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class NettingNotice:
    """A ``beps.netting`` round result: one position per counterparty (docs/clearing-link.md §4)."""

    work_date: date
    round_no: int
    positions: tuple[CptyPosition, ...]

    @property
    def net(self) -> Decimal:
        """The round's total net position (what its ``beps.settle`` settles)."""
        return sum((p.figures.net for p in self.positions), Decimal(0))


def build_netting(notice: NettingNotice) -> etree._Element:
    """The ``<NetgNtfctn xmlns="urn:clearing:1">`` Document (docs/clearing-link.md §4).

    ``Net`` is written from the figures (CdtSum − DbtSum), so a built notice
    is always consistent.  At least one position, one per counterparty.
    """
    if not notice.positions:
        raise ValueError("a netting notice needs at least one CptyPos")
    doc = new_document(NS_CLR, "NetgNtfctn")
    _sub(doc, "WorkDt", notice.work_date.isoformat())
    _sub(doc, "Round", _format_round(notice.round_no))
    seen: set[str] = set()
    for pos in notice.positions:
        if _check_participant(pos.cpty, "Cpty") in seen:
            raise ValueError(f"Cpty {pos.cpty} appears twice")
        seen.add(pos.cpty)
        f = pos.figures
        el = etree.SubElement(doc, _q("CptyPos"))
        values = (
            pos.cpty,
            _format_count(f.dbt_cnt, "DbtCnt"),
            format_money(f.dbt_sum, "DbtSum"),
            _format_count(f.cdt_cnt, "CdtCnt"),
            format_money(f.cdt_sum, "CdtSum"),
            format_money(f.net, "Net", signed=True),
        )
        for name, value in zip(_POS_FIELDS, values, strict=True):
            _sub(el, name, value)
    return doc


def _read_position(el: etree._Element, index: int) -> CptyPosition:
    where = f"CptyPos[{index}]"

    def text(name: str) -> str:
        return child_text(el, NS_CLR, name)

    try:
        cpty = _check_participant(text("Cpty"), "Cpty")
        figures = Figures(
            dbt_cnt=_parse_count(text("DbtCnt"), "DbtCnt"),
            dbt_sum=parse_money(text("DbtSum"), "DbtSum"),
            cdt_cnt=_parse_count(text("CdtCnt"), "CdtCnt"),
            cdt_sum=parse_money(text("CdtSum"), "CdtSum"),
        )
        net = parse_money(text("Net"), "Net", signed=True)
    except ValueError as exc:
        raise ValueError(f"{where}/{exc}") from None
    if net != figures.net:
        raise ValueError(f"{where}/Net is not CdtSum - DbtSum")
    return CptyPosition(cpty=cpty, figures=figures)


def parse_netting(document: etree._Element) -> NettingNotice:
    """Read a ``beps.netting`` ``NetgNtfctn``; ``ValueError`` naming the field."""
    _check_root(document, "NetgNtfctn", MSG_TP_NETTING)
    work_date = parse_date(child_text(document, NS_CLR, "WorkDt"), "WorkDt")
    round_no = _parse_round(child_text(document, NS_CLR, "Round"))
    positions = tuple(
        _read_position(el, i) for i, el in enumerate(document.iterchildren(_q("CptyPos")), 1)
    )
    if not positions:
        raise ValueError("CptyPos missing")
    if len({p.cpty for p in positions}) != len(positions):
        raise ValueError("CptyPos/Cpty appears twice")
    return NettingNotice(work_date=work_date, round_no=round_no, positions=positions)


# ------------------------------------------------------------------ beps.settle


@dataclass(frozen=True, slots=True)
class SettlementNotice:
    """A ``beps.settle``: round ``round_no``'s net position was settled (docs/clearing-link.md
    §4)."""

    work_date: date
    round_no: int
    net: Decimal


def build_settlement(notice: SettlementNotice) -> etree._Element:
    """The ``<SttlmNtfctn xmlns="urn:clearing:1">`` Document (docs/clearing-link.md §4)."""
    doc = new_document(NS_CLR, "SttlmNtfctn")
    _sub(doc, "WorkDt", notice.work_date.isoformat())
    _sub(doc, "Round", _format_round(notice.round_no))
    _sub(doc, "Net", format_money(notice.net, "Net", signed=True))
    return doc


def parse_settlement(document: etree._Element) -> SettlementNotice:
    """Read a ``beps.settle`` ``SttlmNtfctn``; ``ValueError`` naming the field."""
    _check_root(document, "SttlmNtfctn", MSG_TP_SETTLE)
    return SettlementNotice(
        work_date=parse_date(child_text(document, NS_CLR, "WorkDt"), "WorkDt"),
        round_no=_parse_round(child_text(document, NS_CLR, "Round")),
        net=parse_money(child_text(document, NS_CLR, "Net"), "Net", signed=True),
    )


# ------------------------------------------------------------------ ccms.314 / ccms.315


@dataclass(frozen=True, slots=True)
class InquiryDoc:
    """A ``ccms.314`` inquiry (业务查询) about transfer ``orgnl_tx_id`` (docs/clearing-link.md
    §4)."""

    inq_id: str
    orgnl_msg_id: str
    orgnl_tx_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplyDoc:
    """A ``ccms.315`` reply (业务查复) to inquiry ``inq_id`` (docs/clearing-link.md §4)."""

    inq_id: str
    text: str


def _check_inquiry(inq: InquiryDoc) -> None:
    _check_text(inq.inq_id, MAX_INQ_ID_LEN, "InqId")
    _check_text(inq.orgnl_msg_id, MAX_MSG_ID_LEN, "OrgnlMsgId")
    _check_text(inq.orgnl_tx_id, MAX_MSG_ID_LEN, "OrgnlTxId")
    _check_text(inq.text, MAX_TEXT_LEN, "Text")


def build_inquiry(inquiry: InquiryDoc) -> etree._Element:
    """The ``<Inqry xmlns="urn:clearing:1">`` Document (docs/clearing-link.md §4)."""
    _check_inquiry(inquiry)
    doc = new_document(NS_CLR, "Inqry")
    _sub(doc, "InqId", inquiry.inq_id)
    _sub(doc, "OrgnlMsgId", inquiry.orgnl_msg_id)
    _sub(doc, "OrgnlTxId", inquiry.orgnl_tx_id)
    _sub(doc, "Text", inquiry.text)
    return doc


def parse_inquiry(document: etree._Element) -> InquiryDoc:
    """Read a ``ccms.314`` ``Inqry``; ``ValueError`` naming the field."""
    _check_root(document, "Inqry", MSG_TP_INQUIRY)
    inquiry = InquiryDoc(
        inq_id=child_text(document, NS_CLR, "InqId"),
        orgnl_msg_id=child_text(document, NS_CLR, "OrgnlMsgId"),
        orgnl_tx_id=child_text(document, NS_CLR, "OrgnlTxId"),
        text=child_text(document, NS_CLR, "Text"),
    )
    _check_inquiry(inquiry)
    return inquiry


def build_reply(reply: ReplyDoc) -> etree._Element:
    """The ``<Rply xmlns="urn:clearing:1">`` Document (docs/clearing-link.md §4)."""
    doc = new_document(NS_CLR, "Rply")
    _sub(doc, "InqId", _check_text(reply.inq_id, MAX_INQ_ID_LEN, "InqId"))
    _sub(doc, "Text", _check_text(reply.text, MAX_TEXT_LEN, "Text"))
    return doc


def parse_reply(document: etree._Element) -> ReplyDoc:
    """Read a ``ccms.315`` ``Rply``; ``ValueError`` naming the field."""
    _check_root(document, "Rply", MSG_TP_REPLY)
    inq_id = child_text(document, NS_CLR, "InqId")
    text = child_text(document, NS_CLR, "Text")
    return ReplyDoc(
        inq_id=_check_text(inq_id, MAX_INQ_ID_LEN, "InqId"),
        text=_check_text(text, MAX_TEXT_LEN, "Text"),
    )


__all__ = [
    "MAX_INQ_ID_LEN",
    "MAX_TEXT_LEN",
    "MSG_TP_INQUIRY",
    "MSG_TP_NETTING",
    "MSG_TP_REPLY",
    "MSG_TP_SETTLE",
    "CptyPosition",
    "InquiryDoc",
    "NettingNotice",
    "ReplyDoc",
    "SettlementNotice",
    "build_inquiry",
    "build_netting",
    "build_reply",
    "build_settlement",
    "format_money",
    "parse_inquiry",
    "parse_money",
    "parse_netting",
    "parse_reply",
    "parse_settlement",
]
