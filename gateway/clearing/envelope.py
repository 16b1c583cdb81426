"""The clearing link's envelope, receipt and topics (docs/clearing-link.md §2-§4), sans-IO.

Every clearing message is a ``ClrMsg`` (namespace ``urn:clearing:1``): a
``Hdr`` with MsgTp, MsgId, Sndr, Rcvr, CreDtTm and WorkDt, then exactly one
Document element, then the enveloped ``ds:Signature`` (docs/clearing-link.md §3).  This
module builds and reads the unsigned part; signing and verification are
``gateway.keys.xmldsig``'s job, and ``parse_envelope`` reads only a tree that
verification already produced (the Signature removed).

No I/O, no clock: every instant is passed in, so the gateway, the simulators
and the tests build byte-identical messages from the same inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, cast

from lxml import etree

from gateway.model import Engine

NS_CLR: Final = "urn:clearing:1"

#: docs/clearing-link.md §3: an envelope MsgId is at most 35 characters.
MAX_MSG_ID_LEN: Final = 35
#: docs/clearing-link.md §3: sender participant (12 digits) + yyyymmdd + sequence; we use 10 digits.
MSG_ID_SEQ_DIGITS: Final = 10
#: Largest message the hardened parser accepts.  A BEPS package of 50,000
#: items (docs/protocol.md §4 batch limit) is ~40 MB; anything bigger is hostile.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

#: docs/clearing-link.md §4: the Document each engine's outbound transfers travel in.
MSG_TP_FOR_ENGINE: Final[dict[Engine, str]] = {
    Engine.INTRA: "intra.111",
    Engine.HVPS: "hvps.111",
    Engine.BEPS: "beps.121",
}
CREDIT_MSG_TPS: Final = frozenset(MSG_TP_FOR_ENGINE.values())
"""Payment MsgTps that, arriving on a ``/in`` topic, are incoming credits (docs/clearing-link.md
§6)."""
MSG_TP_BEPS_DEBIT: Final = "beps.127"
MSG_TP_RECEIPT: Final = "ccms.990"
MSG_TP_STATUS: Final = "ccms.900"

_PARTICIPANT = re.compile(r"[0-9]{12}")
#: docs/clearing-link.md §3 / docs/routing-rules.md §1: a 12-digit participant or a 6-digit
#: internal branch code.
_SNDR_RCVR = re.compile(r"[0-9]{12}|[0-9]{6}")
_MSG_TP = re.compile(r"[a-z]+(?:\.[a-z0-9]+){1,2}")  # ccms.990, intra.draft.issue
#: docs/clearing-link.md §3: MsgId is at most 35 characters; we allow the CorpLink MsgId alphabet.
_MSG_ID = re.compile(r"[A-Za-z0-9-]{1,35}")
_HDR_FIELDS: Final = ("MsgTp", "MsgId", "Sndr", "Rcvr", "CreDtTm", "WorkDt")


def _q(local: str) -> str:
    return f"{{{NS_CLR}}}{local}"


def new_document(ns: str, local: str) -> etree._Element:
    """A root element ``local`` in ``ns`` declared as the default namespace (no prefix)."""
    # lxml-stubs type nsmap keys as str, but lxml takes None for the default namespace
    nsmap = cast("dict[str, str]", {None: ns})
    return etree.Element(f"{{{ns}}}{local}", nsmap=nsmap)


# ------------------------------------------------------------------ ids and topics


def out_sequence(d: date) -> str:
    """The journal sequence an outbound MsgId's number comes from, one per calendar day.

    Engines and correspondence (ccms.314 / ccms.315) draw from the same one, and
    the MsgId must carry the same date as the sequence it was drawn from, or
    two days' numbers could meet in one MsgId (docs/clearing-link.md §1: one MsgId per message).
    """
    return f"out-{d:%Y%m%d}"


def out_msg_id(participant: str, d: date, seq: int) -> str:
    """The envelope MsgId: participant + yyyymmdd + 10-digit sequence (docs/clearing-link.md §3).

    30 characters, within the 35 the envelope allows.  Raises ``ValueError``
    for a participant that is not 12 digits or a sequence outside 0..10^10-1.
    """
    if not _PARTICIPANT.fullmatch(participant):
        raise ValueError("participant must be 12 digits")
    if not 0 <= seq < 10**MSG_ID_SEQ_DIGITS:
        raise ValueError(f"sequence must fit {MSG_ID_SEQ_DIGITS} digits")
    return f"{participant}{d:%Y%m%d}{seq:0{MSG_ID_SEQ_DIGITS}d}"


def out_topic(prefix: str, engine: Engine) -> str:
    """Gateway → clearing system topic for ``engine`` (docs/clearing-link.md §2)."""
    return f"{prefix}/{engine.value.lower()}/out"


def in_topic(prefix: str, engine: Engine) -> str:
    """Clearing system → gateway topic for ``engine`` (docs/clearing-link.md §2)."""
    return f"{prefix}/{engine.value.lower()}/in"


def engine_of_topic(prefix: str, topic: str) -> Engine | None:
    """The engine of ``{prefix}/{engine}/in`` or ``/out``; None for any other topic."""
    head, sep, rest = topic.rpartition("/")
    if not sep or rest not in ("in", "out"):
        return None
    pre, sep, name = head.rpartition("/")
    if not sep or pre != prefix:
        return None
    for engine in Engine:
        # SWIFT has its own link and topics, not the clearing link's.
        if engine is not Engine.SWIFT and engine.value.lower() == name:
            return engine
    return None


# ------------------------------------------------------------------ time formats


def format_datetime(value: datetime) -> str:
    """ISO 8601 with milliseconds and the UTC offset, as in docs/clearing-link.md §3's example."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps on the clearing link carry a UTC offset")
    return value.isoformat(timespec="milliseconds")


def parse_datetime(text: str | None, name: str) -> datetime:
    """Parse an ISODateTime that carries an offset; ``ValueError`` naming ``name``."""
    try:
        value = datetime.fromisoformat(text or "")
    except ValueError:
        raise ValueError(f"{name} is not an ISO date-time") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} has no UTC offset")
    return value


def parse_date(text: str | None, name: str) -> date:
    """Parse an ISODate (yyyy-mm-dd); ``ValueError`` naming ``name``."""
    if text is None or len(text) != 10:
        raise ValueError(f"{name} is not a yyyy-mm-dd date")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} is not a yyyy-mm-dd date") from None


# ------------------------------------------------------------------ reading helpers


def element_text(elem: etree._Element, name: str) -> str:
    """The text of a leaf element; ``ValueError`` if it has children or is empty."""
    if len(elem):
        raise ValueError(f"{name} must not have child elements")
    text = elem.text
    if not text:
        raise ValueError(f"{name} is empty")
    return text


def child(elem: etree._Element, ns: str, *path: str) -> etree._Element:
    """Follow ``path`` of direct children in ``ns``; ``ValueError`` naming the missing step."""
    node = elem
    for step in path:
        found = node.find(f"{{{ns}}}{step}")
        if found is None:
            raise ValueError(f"{'/'.join(path)} missing")
        node = found
    return node


def child_text(elem: etree._Element, ns: str, *path: str) -> str:
    return element_text(child(elem, ns, *path), "/".join(path))


def optional_text(elem: etree._Element, ns: str, *path: str) -> str | None:
    node = elem
    for step in path:
        found = node.find(f"{{{ns}}}{step}")
        if found is None:
            return None
        node = found
    return element_text(node, "/".join(path))


def _is_whitespace(text: str | None) -> bool:
    return text is None or not text.strip()


# ---------------------------------------------------------------------- envelope


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified ClrMsg: its header and its Document element (docs/clearing-link.md §3)."""

    msg_tp: str
    msg_id: str
    sndr: str
    rcvr: str
    created: datetime
    work_date: date
    document: etree._Element


def _check_header(msg_tp: str, msg_id: str, sndr: str, rcvr: str) -> None:
    if not _MSG_TP.fullmatch(msg_tp) or len(msg_tp) > MAX_MSG_ID_LEN:
        raise ValueError("MsgTp malformed")
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError(f"MsgId must be 1-{MAX_MSG_ID_LEN} letters, digits or '-'")
    if not _SNDR_RCVR.fullmatch(sndr):
        raise ValueError("Sndr must be a 12-digit participant or 6-digit branch code")
    if not _SNDR_RCVR.fullmatch(rcvr):
        raise ValueError("Rcvr must be a 12-digit participant or 6-digit branch code")


def build_envelope(
    msg_tp: str,
    msg_id: str,
    sndr: str,
    rcvr: str,
    created: datetime,
    work_date: date,
    document: etree._Element,
) -> etree._Element:
    """An unsigned ``ClrMsg`` holding ``document`` (moved into the new tree).

    docs/clearing-link.md §3.  The caller signs the result with
    ``gateway.keys.xmldsig.sign_enveloped`` before publishing it.
    """
    _check_header(msg_tp, msg_id, sndr, rcvr)
    root = new_document(NS_CLR, "ClrMsg")
    hdr = etree.SubElement(root, _q("Hdr"))
    values = (msg_tp, msg_id, sndr, rcvr, format_datetime(created), work_date.isoformat())
    for name, value in zip(_HDR_FIELDS, values, strict=True):
        etree.SubElement(hdr, _q(name)).text = value
    root.append(document)
    return root


def parse_envelope(root: etree._Element) -> Envelope:
    """Read a verified ``ClrMsg`` (Signature already removed by verification).

    docs/clearing-link.md §3: the root is ``ClrMsg`` with exactly a ``Hdr`` (the six
    fields, in order) and one Document element.  Raises ``ValueError`` with a
    short reason on anything else.
    """
    if root.tag != _q("ClrMsg"):
        raise ValueError("root element is not ClrMsg")
    if not _is_whitespace(root.text):
        raise ValueError("text content in ClrMsg")
    kids = list(root)
    if any(not isinstance(k.tag, str) for k in kids):
        raise ValueError("comment or processing instruction in ClrMsg")
    if len(kids) != 2 or kids[0].tag != _q("Hdr"):
        raise ValueError("ClrMsg must hold Hdr and exactly one Document")
    hdr, document = kids
    fields = list(hdr)
    if tuple(f.tag for f in fields) != tuple(_q(n) for n in _HDR_FIELDS):
        raise ValueError("Hdr must hold MsgTp, MsgId, Sndr, Rcvr, CreDtTm, WorkDt in order")
    msg_tp, msg_id, sndr, rcvr, created, work_dt = (
        element_text(f, f"Hdr/{n}") for f, n in zip(fields, _HDR_FIELDS, strict=True)
    )
    _check_header(msg_tp, msg_id, sndr, rcvr)
    return Envelope(
        msg_tp=msg_tp,
        msg_id=msg_id,
        sndr=sndr,
        rcvr=rcvr,
        created=parse_datetime(created, "Hdr/CreDtTm"),
        work_date=parse_date(work_dt, "Hdr/WorkDt"),
        document=document,
    )


def serialize(root: etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration: the form published on the link."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def hardened_parser() -> etree.XMLParser:
    """A parser that resolves nothing: no entities, no DTD, no network (docs/architecture.md §9)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


def parse_message(data: bytes, parser: etree.XMLParser | None = None) -> etree._Element:
    """Parse one message from the link: UTF-8 only, no DOCTYPE, size-capped.

    Raises ``ValueError`` with a short reason.  Verification comes next; this
    only makes sure nothing is resolved or mis-decoded on the way (docs/architecture.md §9:
    a latin-1 declaration over UTF-8 bytes silently garbles text).
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError("message too large")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("DOCTYPE or entity declarations are not allowed")
    try:
        root = etree.fromstring(data, parser if parser is not None else hardened_parser())
    except etree.XMLSyntaxError:
        raise ValueError("not well-formed XML") from None
    info = root.getroottree().docinfo
    if info.internalDTD is not None:
        raise ValueError("DOCTYPE is not allowed")
    if (info.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise ValueError("encoding must be UTF-8")
    return root


# ---------------------------------------------------------------------- ccms.990


@dataclass(frozen=True, slots=True)
class Receipt:
    """A ccms.990: the clearing system received message ``orgnl_msg_id`` (docs/clearing-link.md
    §4)."""

    orgnl_msg_id: str
    received: datetime


def build_receipt(orgnl_msg_id: str, received: datetime) -> etree._Element:
    """The ccms.990 Document ``<Rcpt xmlns="urn:clearing:1">`` (docs/clearing-link.md §4)."""
    if not 1 <= len(orgnl_msg_id) <= MAX_MSG_ID_LEN:
        raise ValueError("OrgnlMsgId length")
    rcpt = new_document(NS_CLR, "Rcpt")
    etree.SubElement(rcpt, _q("OrgnlMsgId")).text = orgnl_msg_id
    etree.SubElement(rcpt, _q("RcvdDtTm")).text = format_datetime(received)
    return rcpt


def parse_receipt(document: etree._Element) -> Receipt:
    """Read a ccms.990 ``Rcpt``; ``ValueError`` with a short reason."""
    if document.tag != _q("Rcpt"):
        raise ValueError("ccms.990 Document is not Rcpt")
    orgnl = child_text(document, NS_CLR, "OrgnlMsgId")
    if len(orgnl) > MAX_MSG_ID_LEN:
        raise ValueError("OrgnlMsgId too long")
    received = parse_datetime(child_text(document, NS_CLR, "RcvdDtTm"), "RcvdDtTm")
    return Receipt(orgnl_msg_id=orgnl, received=received)


__all__ = [
    "CREDIT_MSG_TPS",
    "MAX_MESSAGE_BYTES",
    "MSG_TP_BEPS_DEBIT",
    "MSG_TP_FOR_ENGINE",
    "MSG_TP_RECEIPT",
    "MSG_TP_STATUS",
    "NS_CLR",
    "Envelope",
    "Receipt",
    "build_envelope",
    "build_receipt",
    "engine_of_topic",
    "format_datetime",
    "hardened_parser",
    "in_topic",
    "new_document",
    "out_msg_id",
    "out_topic",
    "parse_envelope",
    "parse_message",
    "parse_receipt",
    "serialize",
]
