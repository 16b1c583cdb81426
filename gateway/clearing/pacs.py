"""ISO 20022 Documents of the clearing link: pacs.008, pacs.003, pacs.002 (docs/clearing-link.md
§4).

Sans-IO.  ``build_pacs008`` (hvps.111, beps.121, intra.111) follows the field
mapping of docs/clearing-link.md §4 exactly; ``build_pacs003`` (the beps.127 debit
package) carries the same fields with creditor and debtor turned round (see
its docstring); ``build_payment_document`` picks one by MsgTp.  They produce
Documents that validate against the official ``pacs.008.001.08`` and
``pacs.003.001.08`` schemas (the tests check it with the schema files in
``shared/xsd``; the daemon never needs them at run time).  Builders refuse, with ``ValueError``,
any input that would make an invalid Document (an id over 35 characters, an
amount with fractions of a fen) rather than silently round or truncate money
or identifiers.  Parsers read only what the mapping defines and raise
``ValueError`` with a short reason on anything malformed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, TypeVar

from lxml import etree

from gateway.clearing.envelope import (
    MSG_TP_BEPS_DEBIT,
    MSG_TP_FOR_ENGINE,
    child,
    child_text,
    element_text,
    format_datetime,
    new_document,
    optional_text,
    parse_date,
    parse_datetime,
)
from gateway.journal.records import QueuedItem, TxResult
from gateway.model import Engine

NS_PACS008: Final = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
NS_PACS002: Final = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"
NS_PACS003: Final = "urn:iso:std:iso:20022:tech:xsd:pacs.003.001.08"
#: ``OrgnlMsgNmId`` of a ccms.900 answering a pacs.008-based message.
PACS008_NAME: Final = "pacs.008.001.08"
PACS003_NAME: Final = "pacs.003.001.08"

#: docs/clearing-link.md §4: agents are identified in the CNAPS clearing system.
CLEARING_SYSTEM: Final = "CNAPS"
#: docs/clearing-link.md §4: settlement through the clearing system.
SETTLEMENT_METHOD: Final = "CLRG"
#: pacs.008 and pacs.003 require ChrgBr; SLEV (service level) is the neutral value
#: for domestic clearing.
CHARGE_BEARER: Final = "SLEV"
#: docs/protocol.md §4: the gateway moves CNY only.
CURRENCY: Final = "CNY"

#: ISO 20022 ``Max35Text``, ``Max34Text``, ``Max140Text``, ``Max105Text``.
MAX35: Final = 35
MAX34: Final = 34
MAX140: Final = 140
MAX105: Final = 105
#: ``ExternalStatusReason1Code``: 1-4 characters.
MAX_REASON_CODE: Final = 4
#: ``ActiveCurrencyAndAmount``: at most 18 digits in total.
MAX_AMOUNT_DIGITS: Final = 18

#: docs/clearing-link.md §4: the per-transaction statuses of a ccms.900.
TX_STATUSES: Final = frozenset({"ACSC", "ACSP", "RJCT"})

_CENT = Decimal("0.01")
_AMOUNT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,5})?")
_NUMERIC = re.compile(r"[0-9]{1,15}")
_CCY = re.compile(r"[A-Z]{3}")
_TX_ELEMENTS: Final = ("CdtTrfTxInf", "DrctDbtTxInf")


# ------------------------------------------------------------------ value helpers


def format_amount(amount: Decimal, name: str = "amount", places: int = 2) -> str:
    """Exactly ``places`` decimals (two for CNY, the currency's minor units otherwise:
    none for JPY); ``ValueError`` for a non-positive amount or one with a fraction of
    the currency's smallest unit."""
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{name} must be positive")
    cents = amount.quantize(_CENT if places == 2 else Decimal(1).scaleb(-places))
    if cents != amount:
        raise ValueError(f"{name} has fractions of a fen")
    text = f"{cents:f}"
    if sum(c.isdigit() for c in text) > MAX_AMOUNT_DIGITS:
        raise ValueError(f"{name} has more than {MAX_AMOUNT_DIGITS} digits")
    return text


def parse_amount(text: str, name: str) -> Decimal:
    """A positive decimal with at most two significant decimals (CNY has fen)."""
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"{name} is not a decimal amount")
    try:
        value = Decimal(text)
    except InvalidOperation:  # unreachable after the pattern; refuse rather than trust
        raise ValueError(f"{name} is not a decimal amount") from None
    if value <= 0 or value.quantize(_CENT) != value:
        raise ValueError(f"{name} must be positive with at most 2 decimals")
    return value


def _check_text(value: str, limit: int, name: str) -> str:
    if not 1 <= len(value) <= limit:
        raise ValueError(f"{name} must be 1-{limit} characters")
    return value


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    elem = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        elem.text = text
    return elem


# ------------------------------------------------------------- pacs.008 and pacs.003


@dataclass(frozen=True, slots=True)
class GroupHeader:
    """``GrpHdr`` of a pacs.008 or pacs.003 as read back (docs/clearing-link.md §4)."""

    msg_id: str
    nb_of_txs: int
    ctrl_sum: Decimal | None
    total: Decimal | None
    settle_date: date | None
    created: datetime


@dataclass(frozen=True, slots=True)
class _Tx:
    """The fields docs/clearing-link.md §4 maps, in ISO 20022 terms (debtor: the party debited)."""

    end_to_end_id: str
    tx_id: str | None
    amount: Decimal
    ccy: str
    debtor_name: str
    debtor_acct: str
    debtor_agent: str
    creditor_name: str
    creditor_acct: str
    creditor_agent: str
    purpose: str | None


@dataclass(frozen=True, slots=True)
class CreditTx(_Tx):
    """One pacs.008 ``CdtTrfTxInf``: the debtor is our corporate (it pays)."""


@dataclass(frozen=True, slots=True)
class DebitTx(_Tx):
    """One pacs.003 ``DrctDbtTxInf``: the creditor is our corporate (it collects)."""


_T = TypeVar("_T", CreditTx, DebitTx)


def _agent(parent: etree._Element, ns: str, name: str, member_id: str) -> None:
    mmb = _sub(_sub(_sub(parent, ns, name), ns, "FinInstnId"), ns, "ClrSysMmbId")
    _sub(_sub(mmb, ns, "ClrSysId"), ns, "Cd", CLEARING_SYSTEM)
    _sub(mmb, ns, "MmbId", _check_text(member_id, MAX35, f"{name} member id"))


def _party(
    parent: etree._Element, ns: str, name: str, party_name: str, acct_name: str, acct: str
) -> None:
    _sub(_sub(parent, ns, name), ns, "Nm", _check_text(party_name, MAX140, f"{name}/Nm"))
    acct_id = _sub(_sub(_sub(parent, ns, acct_name), ns, "Id"), ns, "Othr")
    _sub(acct_id, ns, "Id", _check_text(acct, MAX34, f"{acct_name}/Id/Othr/Id"))


def _package(
    ns: str,
    body_name: str,
    label: str,
    msg_id: str,
    created: datetime,
    settle_date: date,
    items: Sequence[QueuedItem],
    minor_units: Mapping[str, int] | None = None,
) -> tuple[etree._Element, etree._Element, int]:
    """``Document``, its message element with the ``GrpHdr`` both Documents share, and
    the decimals of the package's one currency.

    ``NbOfTxs``, ``CtrlSum`` and ``TtlIntrBkSttlmAmt`` are exact sums of the
    items (docs/clearing-link.md §4, docs/routing-rules.md §5); ``IntrBkSttlmDt`` is the work date.
    A currency other than CNY needs its minor units in ``minor_units``
    (docs/foreign-currency.md §2: a foreign-currency INTRA payment).
    """
    if not items:
        raise ValueError(f"a {label} needs at least one transaction")
    ccy = items[0].ccy
    places = _places(ccy, minor_units)
    for item in items:
        if item.ccy != ccy:
            raise ValueError(f"currency {item.ccy!r} in a {ccy} package")
        format_amount(item.amount, "IntrBkSttlmAmt", places)
    total = format_amount(sum((item.amount for item in items), Decimal(0)), "CtrlSum", places)
    doc = new_document(ns, "Document")
    body = _sub(doc, ns, body_name)
    hdr = _sub(body, ns, "GrpHdr")
    _sub(hdr, ns, "MsgId", _check_text(msg_id, MAX35, "GrpHdr/MsgId"))
    _sub(hdr, ns, "CreDtTm", format_datetime(created))
    _sub(hdr, ns, "NbOfTxs", str(len(items)))
    _sub(hdr, ns, "CtrlSum", total)
    _sub(hdr, ns, "TtlIntrBkSttlmAmt", total).set("Ccy", ccy)
    _sub(hdr, ns, "IntrBkSttlmDt", settle_date.isoformat())
    _sub(_sub(hdr, ns, "SttlmInf"), ns, "SttlmMtd", SETTLEMENT_METHOD)
    return doc, body, places


def _places(ccy: str, minor_units: Mapping[str, int] | None) -> int:
    """Decimals of ``ccy`` on the wire: 2 for CNY, else the configured minor units."""
    if ccy == CURRENCY:
        return 2
    places = None if minor_units is None else minor_units.get(ccy)
    if places is None:
        raise ValueError(f"currency {ccy!r} is not {CURRENCY} nor a configured currency")
    return places


def _payment_head(tx: etree._Element, ns: str, item: QueuedItem, places: int = 2) -> None:
    """``PmtId``, ``IntrBkSttlmAmt`` and ``ChrgBr``: the same first fields in both Documents."""
    pmt_id = _sub(tx, ns, "PmtId")
    end_to_end = _check_text(item.end_to_end_id, MAX35, "PmtId/EndToEndId")
    _sub(pmt_id, ns, "EndToEndId", end_to_end)
    _sub(pmt_id, ns, "TxId", _check_text(item.tx_id, MAX35, "PmtId/TxId"))
    amount = format_amount(item.amount, "IntrBkSttlmAmt", places)
    _sub(tx, ns, "IntrBkSttlmAmt", amount).set("Ccy", item.ccy)
    _sub(tx, ns, "ChrgBr", CHARGE_BEARER)


def _remittance(tx: etree._Element, ns: str, purpose: str | None) -> None:
    if purpose:
        _sub(_sub(tx, ns, "RmtInf"), ns, "Ustrd", _check_text(purpose, MAX140, "RmtInf/Ustrd"))


def build_pacs008(
    msg_id: str,
    created: datetime,
    settle_date: date,
    items: Sequence[QueuedItem],
    debtor_agent: str,
    minor_units: Mapping[str, int] | None = None,
) -> etree._Element:
    """The pacs.008.001.08 ``Document`` for ``items`` (docs/clearing-link.md §4 field mapping).

    One ``CdtTrfTxInf`` per item, in order; ``GrpHdr/NbOfTxs``, ``CtrlSum``
    and ``TtlIntrBkSttlmAmt`` are exact sums.  ``debtor_agent`` is the bank's
    12-digit participant code; the creditor agent is each item's payee bank
    code (12 digits, or the 6-digit internal code for INTRA).
    """
    ns = NS_PACS008
    doc, body, places = _package(
        ns, "FIToFICstmrCdtTrf", "pacs.008", msg_id, created, settle_date, items, minor_units
    )
    for item in items:
        tx = _sub(body, ns, "CdtTrfTxInf")
        _payment_head(tx, ns, item, places)
        _party(tx, ns, "Dbtr", item.payer_name, "DbtrAcct", item.payer_acct)
        _agent(tx, ns, "DbtrAgt", debtor_agent)
        _agent(tx, ns, "CdtrAgt", item.payee_bank_code)
        _party(tx, ns, "Cdtr", item.payee_name, "CdtrAcct", item.payee_acct)
        _remittance(tx, ns, item.purpose)
    return doc


def build_pacs003(
    msg_id: str,
    created: datetime,
    settle_date: date,
    items: Sequence[QueuedItem],
    creditor_agent: str,
) -> etree._Element:
    """The pacs.003.001.08 ``Document`` of a beps.127 debit package (docs/clearing-link.md §4).

    A debit (truncated cheque, docs/routing-rules.md §3) is collected *by* our
    corporate, so the roles turn round against pacs.008: the Transfer's
    payer (the corporate's enrolled account) is ``Cdtr``/``CdtrAcct`` with
    ``CdtrAgt`` = ``creditor_agent``, our 12-digit participant; its payee
    (e.g. the cheque's drawer) is ``Dbtr``/``DbtrAcct`` with ``DbtrAgt`` =
    the payee bank code.  ``GrpHdr``, ``PmtId`` (EndToEndId = the corporate's
    MsgId, TxId = the gateway reference), ``IntrBkSttlmAmt``, ``ChrgBr`` and
    ``RmtInf/Ustrd`` are as in pacs.008.  ``DrctDbtTx`` (mandate data) is
    optional in the schema and left out: a cheque carries no mandate.
    Elements follow the schema's order (``DrctDbtTxInf``: PmtId,
    IntrBkSttlmAmt, ChrgBr, Cdtr, CdtrAcct, CdtrAgt, Dbtr, DbtrAcct,
    DbtrAgt, RmtInf).
    """
    ns = NS_PACS003
    doc, body, _ = _package(
        ns, "FIToFICstmrDrctDbt", "pacs.003", msg_id, created, settle_date, items
    )
    for item in items:
        tx = _sub(body, ns, "DrctDbtTxInf")
        _payment_head(tx, ns, item)
        _party(tx, ns, "Cdtr", item.payer_name, "CdtrAcct", item.payer_acct)
        _agent(tx, ns, "CdtrAgt", creditor_agent)
        _party(tx, ns, "Dbtr", item.payee_name, "DbtrAcct", item.payee_acct)
        _agent(tx, ns, "DbtrAgt", item.payee_bank_code)
        _remittance(tx, ns, item.purpose)
    return doc


def build_payment_document(
    msg_tp: str,
    msg_id: str,
    created: datetime,
    work_date: date,
    items: Sequence[QueuedItem],
    sender: str,
    minor_units: Mapping[str, int] | None = None,
) -> etree._Element:
    """The Document docs/clearing-link.md §4 assigns to ``msg_tp``: pacs.003 for beps.127, else
    pacs.008.

    ``sender`` is our participant: the debtor agent of a credit, the creditor
    agent of a debit.  ``ValueError`` for a type that carries no payment.
    Only intra.111 carries another currency than CNY (docs/foreign-currency.md §2),
    with its decimals from ``minor_units``.
    """
    if msg_tp == MSG_TP_BEPS_DEBIT:
        return build_pacs003(msg_id, created, work_date, items, sender)
    if msg_tp == MSG_TP_FOR_ENGINE[Engine.INTRA]:
        return build_pacs008(msg_id, created, work_date, items, sender, minor_units)
    if msg_tp in MSG_TP_FOR_ENGINE.values():
        return build_pacs008(msg_id, created, work_date, items, sender)
    raise ValueError(f"{msg_tp!r} is not a payment message type")


def _read_amount(elem: etree._Element, name: str) -> tuple[Decimal, str]:
    ccy = elem.get("Ccy") or ""
    if not _CCY.fullmatch(ccy):
        raise ValueError(f"{name}/@Ccy malformed")
    return parse_amount(element_text(elem, name), name), ccy


def _read_tx(tx: etree._Element, ns: str, cls: type[_T]) -> _T:
    amount, ccy = _read_amount(child(tx, ns, "IntrBkSttlmAmt"), "IntrBkSttlmAmt")
    end_to_end = child_text(tx, ns, "PmtId", "EndToEndId")
    tx_id = optional_text(tx, ns, "PmtId", "TxId")
    for value, name in ((end_to_end, "EndToEndId"), (tx_id, "TxId")):
        if value is not None and len(value) > MAX35:
            raise ValueError(f"PmtId/{name} too long")
    return cls(
        end_to_end_id=end_to_end,
        tx_id=tx_id,
        amount=amount,
        ccy=ccy,
        debtor_name=child_text(tx, ns, "Dbtr", "Nm"),
        debtor_acct=child_text(tx, ns, "DbtrAcct", "Id", "Othr", "Id"),
        debtor_agent=child_text(tx, ns, "DbtrAgt", "FinInstnId", "ClrSysMmbId", "MmbId"),
        creditor_name=child_text(tx, ns, "Cdtr", "Nm"),
        creditor_acct=child_text(tx, ns, "CdtrAcct", "Id", "Othr", "Id"),
        creditor_agent=child_text(tx, ns, "CdtrAgt", "FinInstnId", "ClrSysMmbId", "MmbId"),
        purpose=optional_text(tx, ns, "RmtInf", "Ustrd"),
    )


def _parse_package(
    document: etree._Element, ns: str, body_name: str, tx_name: str, cls: type[_T]
) -> tuple[GroupHeader, list[_T]]:
    """``GrpHdr`` and transactions, with ``NbOfTxs``/``CtrlSum``/total checked against them."""
    if document.tag != f"{{{ns}}}Document":
        raise ValueError(f"Document is not {ns.rsplit(':', 1)[-1]}")
    body = child(document, ns, body_name)
    hdr = child(body, ns, "GrpHdr")
    nb_text = child_text(hdr, ns, "NbOfTxs")
    if not _NUMERIC.fullmatch(nb_text):
        raise ValueError("GrpHdr/NbOfTxs is not a number")
    ctrl_text = optional_text(hdr, ns, "CtrlSum")
    ctrl_sum = parse_amount(ctrl_text, "GrpHdr/CtrlSum") if ctrl_text is not None else None
    total_el = hdr.find(f"{{{ns}}}TtlIntrBkSttlmAmt")
    total = _read_amount(total_el, "GrpHdr/TtlIntrBkSttlmAmt")[0] if total_el is not None else None
    settle_text = optional_text(hdr, ns, "IntrBkSttlmDt")
    header = GroupHeader(
        msg_id=child_text(hdr, ns, "MsgId"),
        nb_of_txs=int(nb_text),
        ctrl_sum=ctrl_sum,
        total=total,
        settle_date=parse_date(settle_text, "GrpHdr/IntrBkSttlmDt") if settle_text else None,
        created=parse_datetime(child_text(hdr, ns, "CreDtTm"), "GrpHdr/CreDtTm"),
    )
    txs = [_read_tx(tx, ns, cls) for tx in body.iterchildren(f"{{{ns}}}{tx_name}")]
    if not txs:
        raise ValueError(f"no {tx_name}")
    if header.nb_of_txs != len(txs):
        raise ValueError("GrpHdr/NbOfTxs does not match the transactions")
    tx_sum = sum((t.amount for t in txs), Decimal(0))
    if ctrl_sum is not None and ctrl_sum != tx_sum:
        raise ValueError("GrpHdr/CtrlSum does not match the transactions")
    if total is not None and total != tx_sum:
        raise ValueError("GrpHdr/TtlIntrBkSttlmAmt does not match the transactions")
    return header, txs


def parse_pacs008(document: etree._Element) -> tuple[GroupHeader, list[CreditTx]]:
    """Read a pacs.008.001.08 Document per docs/clearing-link.md §4's mapping.

    Checks that ``NbOfTxs``, ``CtrlSum`` and ``TtlIntrBkSttlmAmt`` (when
    present) agree with the transactions.  ``ValueError`` with a short reason.
    """
    return _parse_package(document, NS_PACS008, "FIToFICstmrCdtTrf", "CdtTrfTxInf", CreditTx)


def parse_pacs003(document: etree._Element) -> tuple[GroupHeader, list[DebitTx]]:
    """Read a beps.127's pacs.003.001.08 Document, with the checks of ``parse_pacs008``."""
    return _parse_package(document, NS_PACS003, "FIToFICstmrDrctDbt", "DrctDbtTxInf", DebitTx)


def transaction_ids(document: etree._Element) -> list[tuple[str | None, str | None]]:
    """``(EndToEndId, TxId)`` of every transaction found, however broken the Document.

    For answering a Document that fails validation (a ccms.900 RJCT per
    transaction): looks for ``CdtTrfTxInf`` / ``DrctDbtTxInf`` anywhere in
    the Document's namespace and keeps ids that fit ``Max35Text``.
    """
    ns = etree.QName(document).namespace or ""
    found: list[tuple[str | None, str | None]] = []
    for name in _TX_ELEMENTS:
        for tx in document.iter(f"{{{ns}}}{name}"):
            pmt_id = tx.find(f"{{{ns}}}PmtId")
            if pmt_id is None:
                continue
            ids = []
            for leaf in ("EndToEndId", "TxId"):
                el = pmt_id.find(f"{{{ns}}}{leaf}")
                text = el.text if el is not None and len(el) == 0 else None
                ids.append(text if text and len(text) <= MAX35 else None)
            if ids[0] is not None or ids[1] is not None:
                found.append((ids[0], ids[1]))
    return found


# ---------------------------------------------------------------------- pacs.002


def build_pacs002(
    msg_id: str,
    created: datetime,
    orgnl_msg_id: str,
    orgnl_msg_nm_id: str,
    results: Sequence[TxResult],
    *,
    group_status: str | None = None,
    group_reason_code: str | None = None,
) -> etree._Element:
    """The ccms.900 Document: pacs.002.001.10 (docs/clearing-link.md §4).

    ``OrgnlGrpInfAndSts/OrgnlMsgId`` names the answered envelope MsgId; one
    ``TxInfAndSts`` per result with ``OrgnlEndToEndId``/``OrgnlTxId``,
    ``TxSts`` (ACSC, ACSP or RJCT) and, for RJCT, ``StsRsnInf/Rsn/Cd`` plus the
    reason text in ``AddtlInf`` (cut to the schema's 105 characters).
    ``group_status`` (e.g. RJCT when no transaction could be read) fills
    ``GrpSts``.
    """
    ns = NS_PACS002
    doc = new_document(ns, "Document")
    body = _sub(doc, ns, "FIToFIPmtStsRpt")
    hdr = _sub(body, ns, "GrpHdr")
    _sub(hdr, ns, "MsgId", _check_text(msg_id, MAX35, "GrpHdr/MsgId"))
    _sub(hdr, ns, "CreDtTm", format_datetime(created))
    orgnl = _sub(body, ns, "OrgnlGrpInfAndSts")
    _sub(orgnl, ns, "OrgnlMsgId", _check_text(orgnl_msg_id, MAX35, "OrgnlMsgId"))
    _sub(orgnl, ns, "OrgnlMsgNmId", _check_text(orgnl_msg_nm_id, MAX35, "OrgnlMsgNmId"))
    if group_status is not None:
        _sub(orgnl, ns, "GrpSts", _check_text(group_status, MAX_REASON_CODE, "GrpSts"))
        if group_reason_code is not None:
            rsn = _sub(_sub(orgnl, ns, "StsRsnInf"), ns, "Rsn")
            _sub(rsn, ns, "Cd", _check_text(group_reason_code, MAX_REASON_CODE, "Rsn/Cd"))
    for result in results:
        if result.status not in TX_STATUSES:
            raise ValueError(f"TxSts {result.status!r} is not ACSC, ACSP or RJCT")
        if result.end_to_end_id is None and result.tx_id is None:
            raise ValueError("a TxInfAndSts needs OrgnlEndToEndId or OrgnlTxId")
        tx = _sub(body, ns, "TxInfAndSts")
        if result.end_to_end_id is not None:
            _sub(
                tx,
                ns,
                "OrgnlEndToEndId",
                _check_text(result.end_to_end_id, MAX35, "OrgnlEndToEndId"),
            )
        if result.tx_id is not None:
            _sub(tx, ns, "OrgnlTxId", _check_text(result.tx_id, MAX35, "OrgnlTxId"))
        _sub(tx, ns, "TxSts", result.status)
        if result.status == "RJCT" and result.reason_code is None:
            raise ValueError("an RJCT needs StsRsnInf/Rsn/Cd")
        if result.reason_code is not None:
            info = _sub(tx, ns, "StsRsnInf")
            _sub(
                _sub(info, ns, "Rsn"),
                ns,
                "Cd",
                _check_text(result.reason_code, MAX_REASON_CODE, "StsRsnInf/Rsn/Cd"),
            )
            if result.reason_text:
                _sub(info, ns, "AddtlInf", result.reason_text[:MAX105])
    return doc


def _read_result(tx: etree._Element) -> TxResult:
    ns = NS_PACS002
    end_to_end = optional_text(tx, ns, "OrgnlEndToEndId")
    tx_id = optional_text(tx, ns, "OrgnlTxId")
    if end_to_end is None and tx_id is None:
        raise ValueError("TxInfAndSts without OrgnlEndToEndId or OrgnlTxId")
    status = child_text(tx, ns, "TxSts")
    if status not in TX_STATUSES:
        raise ValueError("TxSts is not ACSC, ACSP or RJCT")
    code: str | None = None
    texts: list[str] = []
    for info in tx.iterchildren(f"{{{ns}}}StsRsnInf"):
        rsn = info.find(f"{{{ns}}}Rsn")
        if rsn is not None and code is None:
            code = optional_text(rsn, ns, "Cd") or optional_text(rsn, ns, "Prtry")
        texts.extend(element_text(t, "AddtlInf") for t in info.iterchildren(f"{{{ns}}}AddtlInf"))
    return TxResult(
        tx_id=tx_id,
        end_to_end_id=end_to_end,
        status=status,
        reason_code=code,
        reason_text=" ".join(texts) or None,
    )


def parse_pacs002(document: etree._Element) -> tuple[str, list[TxResult]]:
    """Read a ccms.900 (pacs.002.001.10): ``(OrgnlMsgId, per-transaction results)``.

    Exactly one ``OrgnlGrpInfAndSts`` (one ccms.900 answers one message).  An
    RJCT without a reason code is still returned (a refusal must not be lost);
    its ``reason_code`` is None.
    """
    ns = NS_PACS002
    if document.tag != f"{{{ns}}}Document":
        raise ValueError("Document is not pacs.002.001.10")
    body = child(document, ns, "FIToFIPmtStsRpt")
    groups = list(body.iterchildren(f"{{{ns}}}OrgnlGrpInfAndSts"))
    if len(groups) != 1:
        raise ValueError("exactly one OrgnlGrpInfAndSts expected")
    orgnl_msg_id = child_text(groups[0], ns, "OrgnlMsgId")
    if len(orgnl_msg_id) > MAX35:
        raise ValueError("OrgnlMsgId too long")
    results = [_read_result(tx) for tx in body.iterchildren(f"{{{ns}}}TxInfAndSts")]
    return orgnl_msg_id, results


__all__ = [
    "CHARGE_BEARER",
    "CLEARING_SYSTEM",
    "NS_PACS002",
    "NS_PACS003",
    "NS_PACS008",
    "PACS003_NAME",
    "PACS008_NAME",
    "TX_STATUSES",
    "CreditTx",
    "DebitTx",
    "GroupHeader",
    "build_pacs002",
    "build_pacs003",
    "build_pacs008",
    "build_payment_document",
    "format_amount",
    "parse_amount",
    "parse_pacs002",
    "parse_pacs003",
    "parse_pacs008",
    "transaction_ids",
]
