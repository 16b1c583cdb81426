"""The SWIFT link's envelope and Documents (docs/foreign-currency.md §3-§4), sans-IO.

The bank's SWIFT interface is reached like the clearing systems: signed
``ClrMsg`` envelopes (docs/clearing-link.md §3) on the topics ``swift/out``
and ``swift/in``.  Two things differ, and they are why this module exists
beside ``envelope`` and ``pacs``:

* ``Sndr`` and ``Rcvr`` are BICs, not 12-digit participants, and a MsgId is
  our BIC8 + yyyymmdd + a 10-digit sequence (26 characters);
* the outbound ``swift.008`` is a pacs.008.001.08 with exactly one
  ``CdtTrfTxInf`` whose agents are ``FinInstnId/BICFI``, whose amount has
  the currency's own decimals (none for JPY) and which carries a UETR, the
  UUID v4 that follows the payment through every bank.

Builders refuse (``ValueError``) anything that would put a Document on the
link that the official schema or the peer would refuse.  Readers take the
Document of a verified envelope and refuse (:class:`SwiftDocumentError`,
naming the field) whatever a careless peer might send.  The gateway, the
SWIFT simulator and the tests share these functions.

``gateway/clearing`` may not import ``gateway/routing`` (docs/architecture.md
§4), so the settlement path is taken structurally (:class:`SettlementRoute`):
``gateway.routing.settlement_paths.SettlementPath`` fits it as it is.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Protocol

from lxml import etree

from gateway.clearing.envelope import (
    NS_CLR,
    Envelope,
    element_text,
    format_datetime,
    new_document,
    parse_date,
    parse_datetime,
)
from gateway.clearing.pacs import NS_PACS002, NS_PACS008, PACS008_NAME

MSG_TP_SWIFT_CREDIT: Final = "swift.008"
"""Out: our customer credit transfer; in: an incoming foreign-currency credit."""
MSG_TP_SWIFT_ACK: Final = "swift.ack"
MSG_TP_SWIFT_STATUS: Final = "swift.002"
SWIFT_PREFIX: Final = "swift"
PACS002_NAME: Final = "pacs.002.001.10"

#: docs/foreign-currency.md §3: the two settlement methods of ``GrpHdr/SttlmInf``.
SETTLEMENT_METHODS: Final = frozenset({"INGA", "INDA"})
#: docs/foreign-currency.md §4: who bears the charges.
CHARGE_BEARERS: Final = frozenset({"DEBT", "CRED", "SHAR"})
#: docs/foreign-currency.md §4: the network's verdict on a swift.008.
ACK_STATUSES: Final = frozenset({"ACK", "NAK"})
#: docs/foreign-currency.md §4: the statuses a swift.002 may carry.
SWIFT_TX_STATUSES: Final = frozenset({"ACSC", "RJCT"})
#: The debtor is our customer: its country is ours (docs/foreign-currency.md §4).
HOME_COUNTRY: Final = "CN"

MAX_MSG_ID: Final = 35
MSG_ID_SEQ_DIGITS: Final = 10
MAX_TEXT: Final = 140  # Max140Text: names, remittance text, AddtlInf of a NAK
MAX_ADDTL_INF: Final = 105  # pacs.002 StsRsnInf/AddtlInf is Max105Text
MAX_ACCT: Final = 34  # GenericAccountIdentification1/Id is Max34Text
MAX_AMOUNT_DIGITS: Final = 18  # ActiveCurrencyAndAmount
MAX_FRACTION_DIGITS: Final = 5

_BIC: Final = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_CTRY: Final = re.compile(r"[A-Z]{2}")
_CCY: Final = re.compile(r"[A-Z]{3}")
_UETR: Final = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}")
_REASON: Final = re.compile(r"[A-Z0-9]{1,4}")
_AMOUNT: Final = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,5})?")
_MSG_TP: Final = re.compile(r"[a-z]+(?:\.[a-z0-9]+){1,2}")
_MSG_ID: Final = re.compile(r"[A-Za-z0-9-]{1,35}")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HDR_FIELDS: Final = ("MsgTp", "MsgId", "Sndr", "Rcvr", "CreDtTm", "WorkDt")


class SwiftDocumentError(ValueError):
    """A SWIFT envelope or Document was refused; the message names the field."""


# ------------------------------------------------------------------ ids and topics


def is_bic(text: str) -> bool:
    """8 or 11 characters ``[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?`` (docs/foreign-currency.md §3)."""
    return _BIC.fullmatch(text) is not None


def new_uetr() -> str:
    """A fresh UETR: a random UUID v4 in lower case, one per payment, journaled with it."""
    return str(uuid.uuid4())


def is_uetr(text: str) -> bool:
    """The schema's ``UUIDv4Identifier``: lower-case hex, version 4, RFC 4122 variant."""
    return _UETR.fullmatch(text) is not None


def swift_msg_id(bic: str, d: date, seq: int) -> str:
    """BIC8 + yyyymmdd + 10-digit sequence: 26 characters (docs/foreign-currency.md §4).

    ``bic`` may be the 8- or 11-character form; only the institution part is
    used.  ``ValueError`` for a malformed BIC or a sequence outside 0..10^10-1.
    """
    if not is_bic(bic):
        raise ValueError("BIC must be 8 or 11 characters")
    if not 0 <= seq < 10**MSG_ID_SEQ_DIGITS:
        raise ValueError(f"sequence must fit {MSG_ID_SEQ_DIGITS} digits")
    return f"{bic[:8]}{d:%Y%m%d}{seq:0{MSG_ID_SEQ_DIGITS}d}"


def swift_out_topic(prefix: str = SWIFT_PREFIX) -> str:
    """Gateway → SWIFT interface (docs/foreign-currency.md §4)."""
    return f"{prefix}/out"


def swift_in_topic(prefix: str = SWIFT_PREFIX) -> str:
    """SWIFT interface → gateway (docs/foreign-currency.md §4)."""
    return f"{prefix}/in"


# ---------------------------------------------------------------------- envelope


def _check_header(msg_tp: str, msg_id: str, sndr: str, rcvr: str) -> None:
    if not _MSG_TP.fullmatch(msg_tp) or len(msg_tp) > MAX_MSG_ID:
        raise SwiftDocumentError("Hdr/MsgTp malformed")
    if not _MSG_ID.fullmatch(msg_id):
        raise SwiftDocumentError(f"Hdr/MsgId must be 1-{MAX_MSG_ID} letters, digits or '-'")
    if not is_bic(sndr):
        raise SwiftDocumentError("Hdr/Sndr must be a BIC")
    if not is_bic(rcvr):
        raise SwiftDocumentError("Hdr/Rcvr must be a BIC")


def build_swift_envelope(
    msg_tp: str,
    msg_id: str,
    sndr: str,
    rcvr: str,
    created: datetime,
    work_date: date,
    document: etree._Element,
) -> etree._Element:
    """An unsigned ``ClrMsg`` whose ``Sndr`` and ``Rcvr`` are BICs (docs/foreign-currency.md §4).

    The caller signs it with ``gateway.keys.xmldsig.sign_enveloped``.
    """
    _check_header(msg_tp, msg_id, sndr, rcvr)
    root = new_document(NS_CLR, "ClrMsg")
    hdr = etree.SubElement(root, f"{{{NS_CLR}}}Hdr")
    values = (msg_tp, msg_id, sndr, rcvr, format_datetime(created), work_date.isoformat())
    for name, value in zip(_HDR_FIELDS, values, strict=True):
        etree.SubElement(hdr, f"{{{NS_CLR}}}{name}").text = value
    root.append(document)
    return root


def parse_swift_envelope(root: etree._Element) -> Envelope:
    """Read a verified SWIFT ``ClrMsg`` (Signature removed): the six header fields, one Document.

    Like ``envelope.parse_envelope`` but with BICs for ``Sndr`` and ``Rcvr``.
    """
    if root.tag != f"{{{NS_CLR}}}ClrMsg":
        raise SwiftDocumentError("root element is not ClrMsg")
    if not _blank(root.text):
        raise SwiftDocumentError("text content in ClrMsg")
    kids = list(root)
    if any(not isinstance(k.tag, str) for k in kids):
        raise SwiftDocumentError("comment or processing instruction in ClrMsg")
    if len(kids) != 2 or kids[0].tag != f"{{{NS_CLR}}}Hdr":
        raise SwiftDocumentError("ClrMsg must hold Hdr and exactly one Document")
    hdr, document = kids
    fields = list(hdr)
    if tuple(f.tag for f in fields) != tuple(f"{{{NS_CLR}}}{n}" for n in _HDR_FIELDS):
        raise SwiftDocumentError("Hdr must hold MsgTp, MsgId, Sndr, Rcvr, CreDtTm, WorkDt")
    try:
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
    except SwiftDocumentError:
        raise
    except ValueError as exc:
        raise SwiftDocumentError(str(exc)) from None


# ------------------------------------------------------------------ value helpers


def format_swift_amount(amount: Decimal, minor_units: int, name: str = "IntrBkSttlmAmt") -> str:
    """``amount`` with exactly the currency's ``minor_units`` decimals (JPY: none).

    Refuses a non-positive amount and one finer than the currency allows
    rather than round money; ``ValueError`` naming ``name``.
    """
    if not 0 <= minor_units <= MAX_FRACTION_DIGITS:
        raise ValueError(f"{name}: minor units must be 0..{MAX_FRACTION_DIGITS}")
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{name} must be positive")
    quantum = Decimal(1).scaleb(-minor_units)
    exact = amount.quantize(quantum)
    if exact != amount:
        raise ValueError(f"{name} has more than {minor_units} decimals")
    text = f"{exact:f}"
    if sum(c.isdigit() for c in text) > MAX_AMOUNT_DIGITS:
        raise ValueError(f"{name} has more than {MAX_AMOUNT_DIGITS} digits")
    return text


def _check(value: str, limit: int, name: str) -> str:
    """``value`` if it is 1-``limit`` characters, not blank, without control characters.

    The readers refuse a blank or control-laden field, so the builders never
    send one.
    """
    if not 1 <= len(value) <= limit or not value.strip() or _CONTROL.search(value):
        raise ValueError(f"{name} must be 1-{limit} characters, not blank, no control characters")
    return value


def _check_bic(value: str, name: str) -> str:
    if not is_bic(value):
        raise ValueError(f"{name} must be a BIC (8 or 11 characters)")
    return value


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    elem = etree.SubElement(parent, f"{{{NS_PACS008}}}{name}")
    if text is not None:
        elem.text = text
    return elem


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


# ------------------------------------------------------------------ swift.008 out


class SettlementRoute(Protocol):
    """The settlement path's agents (docs/foreign-currency.md §3); ``SettlementPath`` fits."""

    @property
    def method(self) -> str: ...  # INGA | INDA
    @property
    def instructing_agent(self) -> str: ...
    @property
    def instructed_agent(self) -> str: ...
    @property
    def creditor_agent(self) -> str: ...
    @property
    def intermediary_agent(self) -> str | None: ...
    @property
    def settlement_account(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class SwiftPayment:
    """One payment's fields for a swift.008 (docs/foreign-currency.md §4).

    ``msg_id`` is the envelope MsgId (= ``GrpHdr/MsgId``); ``end_to_end_id``
    the corporate's MsgId (and SeqNo), ``tx_id`` the gateway reference,
    ``instr_id`` optional.  ``minor_units`` is the currency's (``fx.currencies``).
    """

    msg_id: str
    created: datetime
    settle_date: date
    end_to_end_id: str
    tx_id: str
    uetr: str
    amount: Decimal
    ccy: str
    minor_units: int
    debtor_name: str
    debtor_acct: str
    creditor_name: str
    creditor_acct: str
    creditor_country: str
    charge_bearer: str = "SHAR"
    purpose: str | None = None
    instr_id: str | None = None
    debtor_country: str = HOME_COUNTRY  # an injected incoming credit names its own


def _agent(parent: etree._Element, name: str, bic: str) -> None:
    _sub(_sub(_sub(parent, name), "FinInstnId"), "BICFI", _check_bic(bic, f"{name}/BICFI"))


def _party(parent: etree._Element, name: str, party: str, country: str) -> None:
    elem = _sub(parent, name)
    _sub(elem, "Nm", _check(party, MAX_TEXT, f"{name}/Nm"))
    if not _CTRY.fullmatch(country):
        raise ValueError(f"{name}/PstlAdr/Ctry must be two capital letters")
    _sub(_sub(elem, "PstlAdr"), "Ctry", country)


def _account(parent: etree._Element, name: str, acct: str) -> None:
    other = _sub(_sub(_sub(parent, name), "Id"), "Othr")
    _sub(other, "Id", _check(acct, MAX_ACCT, f"{name}/Id/Othr/Id"))


def build_swift_008(payment: SwiftPayment, path: SettlementRoute) -> etree._Element:
    """The pacs.008.001.08 ``Document`` of one SWIFT payment (docs/foreign-currency.md §3-§4).

    ``GrpHdr``: MsgId, CreDtTm, NbOfTxs = 1, SttlmInf (SttlmMtd; SttlmAcct
    only for INDA).  One ``CdtTrfTxInf``: PmtId (InstrId?, EndToEndId, TxId,
    UETR), IntrBkSttlmAmt in the currency's decimals, IntrBkSttlmDt, ChrgBr,
    InstgAgt, InstdAgt, IntrmyAgt1 (INDA), Dbtr (country CN), DbtrAcct,
    DbtrAgt (= InstgAgt), CdtrAgt, Cdtr (country = PayeeCountry), CdtrAcct,
    RmtInf/Ustrd from Purpose.  The path decides every agent; this copies.
    """
    p = payment
    method = str(path.method)
    if method not in SETTLEMENT_METHODS:
        raise ValueError("SttlmMtd must be INGA or INDA")
    direct = method == "INGA"
    if direct and (path.settlement_account is not None or path.intermediary_agent is not None):
        raise ValueError("an INGA payment has no SttlmAcct and no IntrmyAgt1")
    if not direct and (path.settlement_account is None or path.intermediary_agent is None):
        raise ValueError("an INDA payment needs SttlmAcct and IntrmyAgt1")
    if p.charge_bearer not in CHARGE_BEARERS:
        raise ValueError("ChrgBr must be DEBT, CRED or SHAR")
    if not _CCY.fullmatch(p.ccy):
        raise ValueError("IntrBkSttlmAmt/@Ccy must be three capital letters")
    if not is_uetr(p.uetr):
        raise ValueError("PmtId/UETR must be a lower-case UUID v4")
    amount = format_swift_amount(p.amount, p.minor_units)

    doc = new_document(NS_PACS008, "Document")
    body = _sub(doc, "FIToFICstmrCdtTrf")
    hdr = _sub(body, "GrpHdr")
    _sub(hdr, "MsgId", _check(p.msg_id, MAX_MSG_ID, "GrpHdr/MsgId"))
    _sub(hdr, "CreDtTm", format_datetime(p.created))
    _sub(hdr, "NbOfTxs", "1")
    sttlm = _sub(hdr, "SttlmInf")
    _sub(sttlm, "SttlmMtd", method)
    if path.settlement_account is not None:
        _account(sttlm, "SttlmAcct", path.settlement_account)

    tx = _sub(body, "CdtTrfTxInf")
    pmt_id = _sub(tx, "PmtId")
    if p.instr_id is not None:
        _sub(pmt_id, "InstrId", _check(p.instr_id, MAX_MSG_ID, "PmtId/InstrId"))
    _sub(pmt_id, "EndToEndId", _check(p.end_to_end_id, MAX_MSG_ID, "PmtId/EndToEndId"))
    _sub(pmt_id, "TxId", _check(p.tx_id, MAX_MSG_ID, "PmtId/TxId"))
    _sub(pmt_id, "UETR", p.uetr)
    _sub(tx, "IntrBkSttlmAmt", amount).set("Ccy", p.ccy)
    _sub(tx, "IntrBkSttlmDt", p.settle_date.isoformat())
    _sub(tx, "ChrgBr", p.charge_bearer)
    _agent(tx, "InstgAgt", path.instructing_agent)
    _agent(tx, "InstdAgt", path.instructed_agent)
    if path.intermediary_agent is not None:
        _agent(tx, "IntrmyAgt1", path.intermediary_agent)
    _party(tx, "Dbtr", p.debtor_name, p.debtor_country)
    _account(tx, "DbtrAcct", p.debtor_acct)
    _agent(tx, "DbtrAgt", path.instructing_agent)
    _agent(tx, "CdtrAgt", path.creditor_agent)
    _party(tx, "Cdtr", p.creditor_name, p.creditor_country)
    _account(tx, "CdtrAcct", p.creditor_acct)
    if p.purpose:
        _sub(_sub(tx, "RmtInf"), "Ustrd", _check(p.purpose, MAX_TEXT, "RmtInf/Ustrd"))
    return doc


# ------------------------------------------------------------------ swift.ack


@dataclass(frozen=True, slots=True)
class SwiftAck:
    """A swift.ack: the network accepted (ACK) or refused (NAK) message ``orgnl_msg_id``."""

    orgnl_msg_id: str
    received: datetime
    status: str  # ACK | NAK
    reason_code: str | None = None  # NAK only
    reason_text: str | None = None  # NAK only, optional

    @property
    def accepted(self) -> bool:
        return self.status == "ACK"


_ACK_FIELDS: Final = ("OrgnlMsgId", "RcvdDtTm", "Sts", "Rsn", "AddtlInf")


def build_swift_ack(ack: SwiftAck) -> etree._Element:
    """``<Rcpt xmlns="urn:clearing:1">``: the ccms.990 fields, then Sts, Rsn?, AddtlInf?."""
    if ack.status not in ACK_STATUSES:
        raise ValueError("Sts must be ACK or NAK")
    if ack.status == "NAK" and (ack.reason_code is None or not _REASON.fullmatch(ack.reason_code)):
        raise ValueError("a NAK needs Rsn [A-Z0-9]{1,4}")
    if ack.status == "ACK" and (ack.reason_code is not None or ack.reason_text is not None):
        raise ValueError("an ACK carries no Rsn and no AddtlInf")
    values = (
        _check(ack.orgnl_msg_id, MAX_MSG_ID, "OrgnlMsgId"),
        format_datetime(ack.received),
        ack.status,
        ack.reason_code,
        None if ack.reason_text is None else _check(ack.reason_text, MAX_TEXT, "AddtlInf"),
    )
    rcpt = new_document(NS_CLR, "Rcpt")
    for name, value in zip(_ACK_FIELDS, values, strict=True):
        if value is not None:
            etree.SubElement(rcpt, f"{{{NS_CLR}}}{name}").text = value
    return rcpt


def _flat_fields(document: etree._Element, order: tuple[str, ...], required: int) -> dict[str, str]:
    """Leaf children of ``Rcpt`` in ``order``, the first ``required`` of them mandatory."""
    if document.tag != f"{{{NS_CLR}}}Rcpt":
        raise SwiftDocumentError("swift.ack Document is not Rcpt")
    if document.attrib or not _blank(document.text):
        raise SwiftDocumentError("Rcpt: attributes or text on the root")
    out: dict[str, str] = {}
    position = 0
    for elem in document:
        tag = elem.tag
        if not isinstance(tag, str) or not tag.startswith(f"{{{NS_CLR}}}"):
            raise SwiftDocumentError("Rcpt: a comment, instruction or foreign element")
        name = tag.rpartition("}")[2]
        if name not in order:
            raise SwiftDocumentError(f"Rcpt/{name[:40]}: unknown element")
        index = order.index(name)
        if name in out:
            raise SwiftDocumentError(f"Rcpt/{name} repeated")
        if index < position:
            raise SwiftDocumentError(f"Rcpt/{name} out of order")
        for want in order[position:index]:
            if order.index(want) < required:
                raise SwiftDocumentError(f"Rcpt/{want} missing or out of order")
        position = index + 1
        if elem.attrib or len(elem) or not _blank(elem.tail):
            raise SwiftDocumentError(f"Rcpt/{name}: attributes, children or stray text")
        if not elem.text:
            raise SwiftDocumentError(f"Rcpt/{name} is empty")
        out[name] = elem.text
    for want in order[:required]:
        if want not in out:
            raise SwiftDocumentError(f"Rcpt/{want} missing")
    return out


def read_swift_ack(document: etree._Element) -> SwiftAck:
    """Read a swift.ack ``Rcpt``; :class:`SwiftDocumentError` naming the field."""
    f = _flat_fields(document, _ACK_FIELDS, required=3)
    orgnl = f["OrgnlMsgId"]
    if not _MSG_ID.fullmatch(orgnl):
        raise SwiftDocumentError("Rcpt/OrgnlMsgId must be 1-35 letters, digits or '-'")
    try:
        received = parse_datetime(f["RcvdDtTm"], "Rcpt/RcvdDtTm")
    except ValueError as exc:
        raise SwiftDocumentError(str(exc)) from None
    status = f["Sts"]
    if status not in ACK_STATUSES:
        raise SwiftDocumentError("Rcpt/Sts must be ACK or NAK")
    code, text = f.get("Rsn"), f.get("AddtlInf")
    if status == "ACK" and (code is not None or text is not None):
        raise SwiftDocumentError("Rcpt/Rsn: an ACK carries no Rsn and no AddtlInf")
    if status == "NAK":
        if code is None:
            raise SwiftDocumentError("Rcpt/Rsn missing: a NAK needs a reason")
        if not _REASON.fullmatch(code):
            raise SwiftDocumentError("Rcpt/Rsn must be 1-4 capital letters or digits")
    if text is not None and (len(text) > MAX_TEXT or _CONTROL.search(text)):
        raise SwiftDocumentError(f"Rcpt/AddtlInf must be at most {MAX_TEXT} characters")
    return SwiftAck(orgnl, received, status, code, text)


# ------------------------------------------------------------------ swift.002


@dataclass(frozen=True, slots=True)
class SwiftStatus:
    """A swift.002 (pacs.002.001.10): the fate of the one payment of ``orgnl_msg_id``."""

    msg_id: str
    created: datetime
    orgnl_msg_id: str
    status: str  # ACSC | RJCT
    reason_code: str | None = None  # RJCT only
    reason_text: str | None = None
    orgnl_uetr: str | None = None
    orgnl_end_to_end_id: str | None = None
    orgnl_tx_id: str | None = None


def _sub002(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    elem = etree.SubElement(parent, f"{{{NS_PACS002}}}{name}")
    if text is not None:
        elem.text = text
    return elem


def build_swift_002(status: SwiftStatus) -> etree._Element:
    """The pacs.002.001.10 ``Document`` answering one swift.008 (the simulator's side)."""
    s = status
    if s.status not in SWIFT_TX_STATUSES:
        raise ValueError("TxSts must be ACSC or RJCT")
    if s.status == "RJCT" and (s.reason_code is None or not _REASON.fullmatch(s.reason_code)):
        raise ValueError("an RJCT needs StsRsnInf/Rsn/Cd [A-Z0-9]{1,4}")
    if s.orgnl_uetr is not None and not is_uetr(s.orgnl_uetr):
        raise ValueError("OrgnlUETR must be a lower-case UUID v4")
    doc = new_document(NS_PACS002, "Document")
    body = _sub002(doc, "FIToFIPmtStsRpt")
    hdr = _sub002(body, "GrpHdr")
    _sub002(hdr, "MsgId", _check(s.msg_id, MAX_MSG_ID, "GrpHdr/MsgId"))
    _sub002(hdr, "CreDtTm", format_datetime(s.created))
    group = _sub002(body, "OrgnlGrpInfAndSts")
    _sub002(group, "OrgnlMsgId", _check(s.orgnl_msg_id, MAX_MSG_ID, "OrgnlMsgId"))
    _sub002(group, "OrgnlMsgNmId", PACS008_NAME)
    tx = _sub002(body, "TxInfAndSts")
    if s.orgnl_end_to_end_id is not None:
        _sub002(tx, "OrgnlEndToEndId", _check(s.orgnl_end_to_end_id, MAX_MSG_ID, "OrgnlEndToEndId"))
    if s.orgnl_tx_id is not None:
        _sub002(tx, "OrgnlTxId", _check(s.orgnl_tx_id, MAX_MSG_ID, "OrgnlTxId"))
    if s.orgnl_uetr is not None:
        _sub002(tx, "OrgnlUETR", s.orgnl_uetr)
    _sub002(tx, "TxSts", s.status)
    if s.reason_code is not None:
        info = _sub002(tx, "StsRsnInf")
        _sub002(_sub002(info, "Rsn"), "Cd", s.reason_code)
        if s.reason_text:
            _sub002(info, "AddtlInf", s.reason_text[:MAX_ADDTL_INF])
    return doc


def _text(elem: etree._Element, ns: str, path: str) -> str:
    """The text of the one leaf at ``path`` (``/``-separated), naming it when it is wrong."""
    node = elem
    for step in path.split("/"):
        found = node.findall(f"{{{ns}}}{step}")
        if not found:
            raise SwiftDocumentError(f"{path} missing")
        if len(found) > 1:
            raise SwiftDocumentError(f"{path} repeated")
        node = found[0]
    return _leaf(node, path)


def _optional(elem: etree._Element, ns: str, path: str) -> str | None:
    node = elem
    for step in path.split("/"):
        found = node.findall(f"{{{ns}}}{step}")
        if not found:
            return None
        if len(found) > 1:
            raise SwiftDocumentError(f"{path} repeated")
        node = found[0]
    return _leaf(node, path)


def _leaf(node: etree._Element, path: str) -> str:
    if len(node):
        raise SwiftDocumentError(f"{path} must not have child elements")
    if not node.text or not node.text.strip():
        raise SwiftDocumentError(f"{path} is empty")
    if _CONTROL.search(node.text):
        raise SwiftDocumentError(f"{path} holds a control character")
    return node.text


def _only(elem: etree._Element, ns: str, name: str) -> etree._Element:
    found = elem.findall(f"{{{ns}}}{name}")
    if len(found) != 1:
        raise SwiftDocumentError(f"exactly one {name} expected, found {len(found)}")
    return found[0]


def _limit(value: str | None, limit: int, path: str) -> None:
    if value is not None and len(value) > limit:
        raise SwiftDocumentError(f"{path} longer than {limit} characters")


def read_swift_002(document: etree._Element) -> SwiftStatus:
    """Read a swift.002: one ``OrgnlGrpInfAndSts``, one ``TxInfAndSts`` with ACSC or RJCT.

    An RJCT must carry ``StsRsnInf/Rsn/Cd`` (docs/foreign-currency.md §4: it
    becomes the payment's Reason Code); the reason texts are joined.
    """
    ns = NS_PACS002
    if document.tag != f"{{{ns}}}Document":
        raise SwiftDocumentError("Document is not pacs.002.001.10")
    body = _only(document, ns, "FIToFIPmtStsRpt")
    msg_id = _text(body, ns, "GrpHdr/MsgId")
    _limit(msg_id, MAX_MSG_ID, "GrpHdr/MsgId")
    try:
        created = parse_datetime(_text(body, ns, "GrpHdr/CreDtTm"), "GrpHdr/CreDtTm")
    except ValueError as exc:
        raise SwiftDocumentError(str(exc)) from None
    group = _only(body, ns, "OrgnlGrpInfAndSts")
    orgnl = _text(group, ns, "OrgnlMsgId")
    if not _MSG_ID.fullmatch(orgnl):
        raise SwiftDocumentError("OrgnlMsgId must be 1-35 letters, digits or '-'")
    tx = _only(body, ns, "TxInfAndSts")
    status = _text(tx, ns, "TxSts")
    if status not in SWIFT_TX_STATUSES:
        raise SwiftDocumentError("TxInfAndSts/TxSts must be ACSC or RJCT")
    uetr = _optional(tx, ns, "OrgnlUETR")
    if uetr is not None and not is_uetr(uetr):
        raise SwiftDocumentError("TxInfAndSts/OrgnlUETR is not a UUID v4")
    end_to_end = _optional(tx, ns, "OrgnlEndToEndId")
    tx_id = _optional(tx, ns, "OrgnlTxId")
    _limit(end_to_end, MAX_MSG_ID, "OrgnlEndToEndId")
    _limit(tx_id, MAX_MSG_ID, "OrgnlTxId")
    code: str | None = None
    texts: list[str] = []
    for info in tx.iterchildren(f"{{{ns}}}StsRsnInf"):
        found = _optional(info, ns, "Rsn/Cd")
        if found is not None and code is None:
            code = found
        texts.extend(_leaf(t, "StsRsnInf/AddtlInf") for t in info.iterchildren(f"{{{ns}}}AddtlInf"))
    if status == "RJCT" and code is None:
        raise SwiftDocumentError("StsRsnInf/Rsn/Cd missing: an RJCT needs a reason code")
    if code is not None and not _REASON.fullmatch(code):
        raise SwiftDocumentError("StsRsnInf/Rsn/Cd must be 1-4 capital letters or digits")
    return SwiftStatus(
        msg_id=msg_id,
        created=created,
        orgnl_msg_id=orgnl,
        status=status,
        reason_code=code,
        reason_text=" ".join(texts) or None,
        orgnl_uetr=uetr,
        orgnl_end_to_end_id=end_to_end,
        orgnl_tx_id=tx_id,
    )


# ------------------------------------------------------------------ swift.008 in


@dataclass(frozen=True, slots=True)
class IncomingSwiftCredit:
    """An incoming swift.008: what docs/foreign-currency.md §4-§5 need to screen and post it.

    ``amount`` keeps its decimals as written, so the receiver checks them
    against ``fx.currencies`` itself; ``sending_bic`` is ``InstgAgt``, which
    should be the envelope's ``Sndr`` (and ``instructed_agent`` its ``Rcvr``).
    """

    msg_id: str
    uetr: str
    end_to_end_id: str
    tx_id: str | None
    amount: Decimal
    ccy: str
    settle_date: date | None
    sending_bic: str
    instructed_agent: str
    debtor_agent: str
    creditor_agent: str
    debtor_name: str
    debtor_acct: str | None
    debtor_country: str | None
    creditor_name: str
    creditor_acct: str
    creditor_country: str | None
    purpose: str | None


def _read_amount(tx: etree._Element) -> tuple[Decimal, str]:
    elem = _only(tx, NS_PACS008, "IntrBkSttlmAmt")
    ccy = elem.get("Ccy") or ""
    if not _CCY.fullmatch(ccy):
        raise SwiftDocumentError("IntrBkSttlmAmt/@Ccy must be three capital letters")
    text = _leaf(elem, "IntrBkSttlmAmt")
    if not _AMOUNT.fullmatch(text) or sum(c.isdigit() for c in text) > MAX_AMOUNT_DIGITS:
        raise SwiftDocumentError("IntrBkSttlmAmt is not a decimal amount")
    try:
        value = Decimal(text)
    except InvalidOperation:  # unreachable after the pattern; refuse rather than trust
        raise SwiftDocumentError("IntrBkSttlmAmt is not a decimal amount") from None
    if value <= 0:
        raise SwiftDocumentError("IntrBkSttlmAmt must be positive")
    return value, ccy


def _read_bic(tx: etree._Element, name: str) -> str:
    path = f"{name}/FinInstnId/BICFI"
    bic = _text(tx, NS_PACS008, path)
    if not is_bic(bic):
        raise SwiftDocumentError(f"{path} is not a BIC")
    return bic


def _read_country(tx: etree._Element, name: str) -> str | None:
    path = f"{name}/PstlAdr/Ctry"
    country = _optional(tx, NS_PACS008, path)
    if country is not None and not _CTRY.fullmatch(country):
        raise SwiftDocumentError(f"{path} must be two capital letters")
    return country


def read_swift_008(document: etree._Element) -> IncomingSwiftCredit:
    """Read an incoming swift.008: exactly one ``CdtTrfTxInf`` with a UETR and BIC agents.

    Refuses (:class:`SwiftDocumentError` naming the field) another Document,
    ``NbOfTxs`` other than 1, a missing or malformed UETR, agents without a
    BIC, a malformed amount or currency, and over-long identifiers or names.
    """
    ns = NS_PACS008
    if document.tag != f"{{{ns}}}Document":
        raise SwiftDocumentError("Document is not pacs.008.001.08")
    body = _only(document, ns, "FIToFICstmrCdtTrf")
    msg_id = _text(body, ns, "GrpHdr/MsgId")
    _limit(msg_id, MAX_MSG_ID, "GrpHdr/MsgId")
    if _text(body, ns, "GrpHdr/NbOfTxs") != "1":
        raise SwiftDocumentError("GrpHdr/NbOfTxs must be 1")
    method = _text(body, ns, "GrpHdr/SttlmInf/SttlmMtd")
    if method not in SETTLEMENT_METHODS | {"COVE", "CLRG"}:
        raise SwiftDocumentError("GrpHdr/SttlmInf/SttlmMtd unknown")
    tx = _only(body, ns, "CdtTrfTxInf")
    uetr = _text(tx, ns, "PmtId/UETR")
    if not is_uetr(uetr):
        raise SwiftDocumentError("PmtId/UETR is not a lower-case UUID v4")
    end_to_end = _text(tx, ns, "PmtId/EndToEndId")
    tx_id = _optional(tx, ns, "PmtId/TxId")
    _limit(end_to_end, MAX_MSG_ID, "PmtId/EndToEndId")
    _limit(tx_id, MAX_MSG_ID, "PmtId/TxId")
    amount, ccy = _read_amount(tx)
    settle_text = _optional(tx, ns, "IntrBkSttlmDt")
    try:
        settle = None if settle_text is None else parse_date(settle_text, "IntrBkSttlmDt")
    except ValueError as exc:
        raise SwiftDocumentError(str(exc)) from None
    names = {n: _text(tx, ns, f"{n}/Nm") for n in ("Dbtr", "Cdtr")}
    for n, value in names.items():
        _limit(value, MAX_TEXT, f"{n}/Nm")
    creditor_acct = _text(tx, ns, "CdtrAcct/Id/Othr/Id")
    debtor_acct = _optional(tx, ns, "DbtrAcct/Id/Othr/Id")
    _limit(creditor_acct, MAX_ACCT, "CdtrAcct/Id/Othr/Id")
    _limit(debtor_acct, MAX_ACCT, "DbtrAcct/Id/Othr/Id")
    purpose = _optional(tx, ns, "RmtInf/Ustrd")
    _limit(purpose, MAX_TEXT, "RmtInf/Ustrd")
    return IncomingSwiftCredit(
        msg_id=msg_id,
        uetr=uetr,
        end_to_end_id=end_to_end,
        tx_id=tx_id,
        amount=amount,
        ccy=ccy,
        settle_date=settle,
        sending_bic=_read_bic(tx, "InstgAgt"),
        instructed_agent=_read_bic(tx, "InstdAgt"),
        debtor_agent=_read_bic(tx, "DbtrAgt"),
        creditor_agent=_read_bic(tx, "CdtrAgt"),
        debtor_name=names["Dbtr"],
        debtor_acct=debtor_acct,
        debtor_country=_read_country(tx, "Dbtr"),
        creditor_name=names["Cdtr"],
        creditor_acct=creditor_acct,
        creditor_country=_read_country(tx, "Cdtr"),
        purpose=purpose,
    )


__all__ = [
    "ACK_STATUSES",
    "CHARGE_BEARERS",
    "HOME_COUNTRY",
    "MSG_TP_SWIFT_ACK",
    "MSG_TP_SWIFT_CREDIT",
    "MSG_TP_SWIFT_STATUS",
    "PACS002_NAME",
    "SETTLEMENT_METHODS",
    "SWIFT_PREFIX",
    "SWIFT_TX_STATUSES",
    "IncomingSwiftCredit",
    "SettlementRoute",
    "SwiftAck",
    "SwiftDocumentError",
    "SwiftPayment",
    "SwiftStatus",
    "build_swift_002",
    "build_swift_008",
    "build_swift_ack",
    "build_swift_envelope",
    "format_swift_amount",
    "is_bic",
    "is_uetr",
    "new_uetr",
    "parse_swift_envelope",
    "read_swift_002",
    "read_swift_008",
    "read_swift_ack",
    "swift_in_topic",
    "swift_msg_id",
    "swift_out_topic",
]
