"""PAIN001: an ISO 20022 ``pain.001.001.09`` initiation, one transfer per transaction.

docs/protocol.md §4: the PAIN001 Body's only child is a ``pain.001.001.09``
``Document`` (CustomerCreditTransferInitiation); "each ``CdtTrfTxInf``
becomes one transfer", and docs/routing-rules.md §3 routes each of them on its own.

Sans-IO and pure: the input is the ``Document`` element of a body that the
hardened parser (``gateway.codec.xmlparse``) already accepted; no clock, no
logging.  The order of refusals follows docs/protocol.md §8 — schema first, then
business rules — within the document:

1. the root: another ``pain.001`` version or another ISO 20022 message →
   1004 (unsupported payload); anything else → 1003;
2. when ``xsd_dir`` is given (the configuration names the official schema
   folder), the official ``pain.001.001.09.xsd`` → 1003 naming the element;
3. the gateway's own rules, which hold with or without the official schema
   → 1003 naming the element: what a transfer needs (docs/protocol.md §4
   ``Transfer``: payer account and name, payee account and name, payee bank
   as ``ClrSysMmbId/MmbId`` or ``BICFI``), ``NbOfTxs`` and ``CtrlSum`` (group
   and payment-information level) matching the transactions;
4. amounts (docs/protocol.md §4 ``Amount``, §8 4004): ``InstdAmt`` in ``Ccy="CNY"``,
   ``^[0-9]{1,15}(\\.[0-9]{1,2})?$``, greater than zero; or in a currency the
   ``amount_check`` takes (docs/foreign-currency.md §1), its decimals as written.

The foreign-currency fields (docs/foreign-currency.md §1): ``CdtrAgt/FinInstnId/
BICFI`` is the payee BIC, ``Cdtr/PstlAdr/Ctry`` the payee country, ``ChrgBr``
(the transaction's, else the payment information's) who bears the charges:
DEBT, CRED or SHAR (default SHAR; ``SLEV`` and anything else → 1003).  A
``BICFI`` in a currency other than CNY needs the country (1003); a CNY
document keeps working without one, since CNY payees have always been named
by BIC here and the directory maps them.

Like a PAYROLL batch (docs/protocol.md §4), the document is accepted or refused
as a whole here; routing failures of single items (4001-4003) are the
router's business, per item.  A payee bank given only as a BIC is returned
unresolved (:attr:`Pain001Item.bic`, ``Transfer.payee_bank_code == ""``): the
directory maps it (docs/protocol.md §4), not this codec.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Context, Decimal
from pathlib import Path
from typing import Final

from lxml import etree

from gateway.codec.corplink_decode import PAIN001_NS
from gateway.codec.foreign import (
    CHARGE_BEARERS,
    COUNTRY,
    DEFAULT_CHARGE_BEARER,
    AmountCheck,
    cny_only,
    foreign_amount,
)
from gateway.codec.xmlparse import local_name
from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.model import Priority, Transfer

SCHEMA_FILE: Final = "pain.001.001.09.xsd"
"""The official schema's file name inside the configured folder."""

MAX_TRANSACTIONS: Final = 50_000
"""Most ``CdtTrfTxInf`` in one document: the PAYROLL bound (docs/protocol.md §4,
1-50,000 items) applied to the other batch TrnCode; the frame limit (§1)
bounds it too."""

MAX_NAME: Final = 60
"""``PayerName``/``PayeeName`` are 1-60 characters (docs/protocol.md §4)."""

MAX_PURPOSE: Final = 140
"""``Purpose`` is at most 140 characters (docs/protocol.md §4); it takes ``RmtInf/Ustrd``."""

CNAPS: Final = "CNAPS"
"""ISO external clearing system code of China's CNAPS, the only ``ClrSysId`` accepted."""

_ISO_DOCUMENT: Final = re.compile(
    r"\{urn:iso:std:iso:20022:tech:xsd:([a-z]{4}\.[0-9]{3}\.[0-9]{3}\.[0-9]{2})\}Document"
)
_NS: Final = f"{{{PAIN001_NS}}}"
_ACCOUNT: Final = re.compile(r"[0-9A-Za-z]{1,32}")
"""docs/protocol.md §4 ``PayerAcct``/``PayeeAcct``."""
_BIC: Final = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
"""ISO 9362 BIC as pain.001.001.09 writes it (``BICFIDec2014Identifier``)."""
_AMOUNT: Final = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,2})?")
"""docs/protocol.md §4 ``Amount`` (ASCII digits only)."""
_DECIMAL: Final = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,17})?")
"""An ISO decimal short enough to add up exactly (``DecimalNumber``: 18 digits)."""
_COUNT: Final = re.compile(r"[0-9]{1,15}")
"""``Max15NumericText`` (``NbOfTxs``)."""
_URGENT_SERVICE: Final = frozenset({"URGP"})
"""``SvcLvl/Cd`` meaning an urgent payment (ISO external code list) → ``Priority=URGT``."""
_SUM_CONTEXT: Final = Context(prec=60)
_CENT: Final = Decimal("0.01")
_CCY: Final = "CNY"

# The official schema is read with entities and network off, like our own.
_SCHEMA_PARSER: Final = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


@dataclass(frozen=True, slots=True)
class Pain001Item:
    """One ``CdtTrfTxInf`` as a transfer, with the identifiers the client reports against.

    ``bic`` is set when the payee bank was given as ``BICFI``; when it was
    given only that way, ``transfer.payee_bank_code`` is ``""`` until the
    router maps the BIC through the directory.  ``seq_no`` is the
    transaction's position in the document, 1..n (the per-item status key,
    like a PAYROLL ``SeqNo``).
    """

    transfer: Transfer
    end_to_end_id: str
    instr_id: str | None
    bic: str | None
    seq_no: int
    pmt_inf_id: str


def decode_pain001(
    document: etree._Element,
    *,
    xsd_dir: Path | None = None,
    amount_check: AmountCheck = cny_only,
) -> list[Pain001Item]:
    """The transfers of a ``pain.001.001.09`` ``Document``, or ``GatewayError``.

    Raises only ``GatewayError`` (1003, 1004, 4004) whatever the document,
    and ``ConfigError`` when ``xsd_dir`` holds no readable schema.
    ``amount_check`` judges an amount not in CNY (``gateway.codec.foreign``).
    """
    _check_root(document)
    if xsd_dir is not None:
        schema = load_schema(xsd_dir)
        if not schema.validate(document):
            raise GatewayError(RetCode.SCHEMA, _schema_detail(schema.error_log))
    raws = _read_document(document)
    return [_item(raw, amount_check) for raw in raws]


@functools.lru_cache(maxsize=4)
def load_schema(xsd_dir: Path) -> etree.XMLSchema:
    """The official schema in ``xsd_dir``, compiled once per folder and process.

    Call it at start-up and on reload to fail early (``ConfigError``).  lxml's
    error log lives in the schema object: a process shares it between
    threads, so run decoding in one thread per process (as the worker pool
    does).
    """
    path = xsd_dir / SCHEMA_FILE
    try:
        return etree.XMLSchema(etree.parse(str(path), _SCHEMA_PARSER))
    except (OSError, etree.LxmlError) as exc:
        raise ConfigError(f"pain.001 schema {path}: cannot load ({exc})") from None


# -- 1: which document is it ------------------------------------------------------------


def _check_root(document: etree._Element) -> None:
    tag = document.tag
    if tag == f"{_NS}Document":
        return
    found = _ISO_DOCUMENT.fullmatch(tag) if isinstance(tag, str) else None
    if found is not None:
        raise GatewayError(
            RetCode.UNKNOWN_TRNCODE, f"{found.group(1)} not supported, expected pain.001.001.09"
        )
    raise GatewayError(RetCode.SCHEMA, f"{local_name(tag)}: expected a pain.001.001.09 Document")


# -- 3: the gateway's own rules (1003) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Raw:
    """One transaction after the structural rules, before the amount rules."""

    seq_no: int
    pmt_inf_id: str
    end_to_end_id: str
    instr_id: str | None
    amount: etree._Element  # the Amt element
    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    bank_code: str
    bic: str | None
    priority: Priority
    purpose: str | None
    country: str | None
    chrg_br: str


def _read_document(document: etree._Element) -> list[_Raw]:
    initiation = _one(document, "CstmrCdtTrfInitn")
    header = _one(initiation, "GrpHdr")
    instructions = _all(initiation, "PmtInf")
    if not instructions:
        raise GatewayError(RetCode.SCHEMA, "CstmrCdtTrfInitn: missing PmtInf")
    raws: list[_Raw] = []
    for instruction in instructions:
        found = _read_instruction(instruction, len(raws))
        _check_totals(instruction, found, "PmtInf", required=False)
        raws.extend(found)
    _check_totals(header, raws, "GrpHdr", required=True)
    return raws


def _read_instruction(instruction: etree._Element, before: int) -> list[_Raw]:
    pmt_inf_id = _text(instruction, "PmtInfId")
    method = _text(instruction, "PmtMtd")
    if method != "TRF":
        raise GatewayError(
            RetCode.UNKNOWN_TRNCODE, "PmtMtd: only TRF (credit transfer) is supported"
        )
    payer_name = _name(_one(instruction, "Dbtr"), "Dbtr")
    payer_acct = _account(_one(instruction, "DbtrAcct"), "DbtrAcct")
    group_priority = _priority(_optional(instruction, "PmtTpInf"), Priority.NORM)
    group_chrg_br = _charge_bearer(instruction, DEFAULT_CHARGE_BEARER, " (PmtInf)")
    transactions = _all(instruction, "CdtTrfTxInf")
    if not transactions:
        raise GatewayError(RetCode.SCHEMA, "PmtInf: missing CdtTrfTxInf")
    if before + len(transactions) > MAX_TRANSACTIONS:
        raise GatewayError(
            RetCode.SCHEMA, f"CdtTrfTxInf: more than {MAX_TRANSACTIONS} transactions"
        )
    raws = []
    for offset, tx in enumerate(transactions, start=1):
        seq_no = before + offset
        try:
            raws.append(
                _read_transaction(
                    tx, seq_no, pmt_inf_id, payer_acct, payer_name, group_priority, group_chrg_br
                )
            )
        except GatewayError as exc:
            raise GatewayError(exc.code, f"{exc.detail} (transaction {seq_no})") from None
    return raws


def _read_transaction(
    tx: etree._Element,
    seq_no: int,
    pmt_inf_id: str,
    payer_acct: str,
    payer_name: str,
    group_priority: Priority,
    group_chrg_br: str,
) -> _Raw:
    payment_id = _one(tx, "PmtId")
    agent = _one(_one(tx, "CdtrAgt"), "FinInstnId")
    bic_el = _optional(agent, "BICFI")
    member = _optional(agent, "ClrSysMmbId")
    if bic_el is None and member is None:
        raise GatewayError(RetCode.SCHEMA, "FinInstnId: missing ClrSysMmbId or BICFI (CdtrAgt)")
    bic = None if bic_el is None else _text(agent, "BICFI")
    if bic is not None and _BIC.fullmatch(bic) is None:
        raise GatewayError(RetCode.SCHEMA, "BICFI: not a BIC")
    bank_code = "" if member is None else _member_id(member)
    creditor = _one(tx, "Cdtr")
    country = _country(creditor)
    amount = _one(tx, "Amt")
    instructed = _optional(amount, "InstdAmt")
    ccy = None if instructed is None else instructed.get("Ccy")
    if bic is not None and country is None and ccy not in (None, _CCY):
        raise GatewayError(RetCode.SCHEMA, "Cdtr: missing PstlAdr/Ctry, required with BICFI")
    return _Raw(
        seq_no=seq_no,
        pmt_inf_id=pmt_inf_id,
        end_to_end_id=_text(payment_id, "EndToEndId"),
        instr_id=None if _optional(payment_id, "InstrId") is None else _text(payment_id, "InstrId"),
        amount=amount,
        payer_acct=payer_acct,
        payer_name=payer_name,
        payee_acct=_account(_one(tx, "CdtrAcct"), "CdtrAcct"),
        payee_name=_name(creditor, "Cdtr"),
        bank_code=bank_code,
        bic=bic,
        priority=_priority(_optional(tx, "PmtTpInf"), group_priority),
        purpose=_purpose(_optional(tx, "RmtInf")),
        country=country,
        chrg_br=_charge_bearer(tx, group_chrg_br),
    )


def _country(creditor: etree._Element) -> str | None:
    """``Cdtr/PstlAdr/Ctry``: the payee country (docs/foreign-currency.md §1), if given."""
    address = _optional(creditor, "PstlAdr")
    if address is None or _optional(address, "Ctry") is None:
        return None
    country = _text(address, "Ctry")
    if COUNTRY.fullmatch(country) is None:
        raise GatewayError(RetCode.SCHEMA, "Ctry: not an ISO 3166 alpha-2 code (Cdtr)")
    return country


def _charge_bearer(parent: etree._Element, default: str, where: str = "") -> str:
    """``ChrgBr`` of a transaction or payment information, else ``default``."""
    if _optional(parent, "ChrgBr") is None:
        return default
    value = _text(parent, "ChrgBr")
    if value not in CHARGE_BEARERS:
        raise GatewayError(RetCode.SCHEMA, f"ChrgBr: expected DEBT, CRED or SHAR{where}")
    return value


def _member_id(member: etree._Element) -> str:
    system = _optional(member, "ClrSysId")
    if system is not None and (_optional(system, "Cd") is None or _text(system, "Cd") != CNAPS):
        raise GatewayError(RetCode.SCHEMA, f"ClrSysId: only Cd {CNAPS} is supported")
    # 12 or 6 digits, and whether it exists, is the router's question (4002, 4001).
    return _text(member, "MmbId")


def _name(party: etree._Element, parent: str) -> str:
    name = _text(party, "Nm")
    if len(name) > MAX_NAME:
        raise GatewayError(RetCode.SCHEMA, f"Nm: more than {MAX_NAME} characters ({parent})")
    return name


def _account(account: etree._Element, parent: str) -> str:
    ident = _one(account, "Id")
    iban = _optional(ident, "IBAN")
    value = _text(ident, "IBAN") if iban is not None else _text(_one(ident, "Othr"), "Id")
    if _ACCOUNT.fullmatch(value) is None:
        raise GatewayError(RetCode.SCHEMA, f"Id: account must be 1-32 letters or digits ({parent})")
    return value


def _priority(type_info: etree._Element | None, default: Priority) -> Priority:
    """``InstrPrty`` HIGH, or ``SvcLvl/Cd`` URGP, → URGT (docs/routing-rules.md §3); else the
    default."""
    if type_info is None:
        return default
    if _optional(type_info, "InstrPrty") is not None:
        return Priority.URGT if _text(type_info, "InstrPrty") == "HIGH" else Priority.NORM
    for level in _all(type_info, "SvcLvl"):
        if _optional(level, "Cd") is not None and _text(level, "Cd") in _URGENT_SERVICE:
            return Priority.URGT
    return default


def _purpose(remittance: etree._Element | None) -> str | None:
    if remittance is None:
        return None
    lines = [_text_of(line, "Ustrd") for line in _all(remittance, "Ustrd")]
    purpose = " ".join(lines)
    if len(purpose) > MAX_PURPOSE:
        raise GatewayError(RetCode.SCHEMA, f"Ustrd: more than {MAX_PURPOSE} characters")
    return purpose or None


def _check_totals(parent: etree._Element, raws: list[_Raw], where: str, *, required: bool) -> None:
    """``NbOfTxs`` and ``CtrlSum`` must describe the transactions (1003 naming the field)."""
    count_el = _optional(parent, "NbOfTxs")
    if count_el is None:
        if required:
            raise GatewayError(RetCode.SCHEMA, f"{where}: missing NbOfTxs")
    else:
        count = _text(parent, "NbOfTxs")
        if _COUNT.fullmatch(count) is None:
            raise GatewayError(RetCode.SCHEMA, f"NbOfTxs: invalid value ({where})")
        if int(count) != len(raws):
            raise GatewayError(
                RetCode.SCHEMA,
                f"NbOfTxs: does not match the {len(raws)} transactions ({where})",
            )
    if _optional(parent, "CtrlSum") is None:
        return
    declared = _text(parent, "CtrlSum").strip()
    if _DECIMAL.fullmatch(declared) is None:
        raise GatewayError(RetCode.SCHEMA, f"CtrlSum: invalid value ({where})")
    amounts = [_amount_text(raw.amount) for raw in raws]
    if any(text is None or _DECIMAL.fullmatch(text) is None for text in amounts):
        return  # an amount that is not a number is refused below, 4004
    total = Decimal(0)
    for text in amounts:
        total = _SUM_CONTEXT.add(total, Decimal(text or "0"))  # exact: 60 digits
    if total != Decimal(declared):
        raise GatewayError(
            RetCode.SCHEMA, f"CtrlSum: does not match the sum of the amounts ({where})"
        )


# -- 4: amounts (4004) ---------------------------------------------------------------------


def _amount_text(amount: etree._Element) -> str | None:
    instructed = _optional(amount, "InstdAmt")
    return None if instructed is None else (instructed.text or "").strip()


def _item(raw: _Raw, amount_check: AmountCheck) -> Pain001Item:
    where = f"(transaction {raw.seq_no})"
    instructed = _optional(raw.amount, "InstdAmt")
    if instructed is None:
        raise GatewayError(RetCode.AMOUNT_INVALID, f"Amt: only InstdAmt in CNY {where}")
    ccy = instructed.get("Ccy") or ""
    text = (instructed.text or "").strip()
    if ccy == _CCY:
        value = _cny_amount(text, where)
    else:
        try:
            value = foreign_amount(text, ccy, amount_check)
        except GatewayError as exc:
            raise GatewayError(exc.code, f"InstdAmt: {exc.detail} {where}") from None
    transfer = Transfer(
        payer_acct=raw.payer_acct,
        payer_name=raw.payer_name,
        payee_acct=raw.payee_acct,
        payee_name=raw.payee_name,
        payee_bank_code=raw.bank_code,
        amount=value,
        ccy=ccy,
        priority=raw.priority,
        purpose=raw.purpose,
        payee_bic=raw.bic,
        payee_country=raw.country,
        chrg_br=raw.chrg_br,
    )
    return Pain001Item(
        transfer=transfer,
        end_to_end_id=raw.end_to_end_id,
        instr_id=raw.instr_id,
        bic=raw.bic,
        seq_no=raw.seq_no,
        pmt_inf_id=raw.pmt_inf_id,
    )


def _cny_amount(text: str, where: str) -> Decimal:
    if _AMOUNT.fullmatch(text) is None:
        raise GatewayError(
            RetCode.AMOUNT_INVALID, f"InstdAmt: up to 15 digits and at most 2 decimals {where}"
        )
    value = Decimal(text).quantize(_CENT)
    if value <= 0:
        raise GatewayError(RetCode.AMOUNT_INVALID, f"InstdAmt: must be greater than zero {where}")
    return value


# -- element access: fail closed with 1003 naming the element ---------------------------


def _children(parent: etree._Element) -> Iterator[etree._Element]:
    """Element children; one of another namespace is refused (docs/protocol.md §2: unknown
    elements)."""
    for child in parent.iterchildren(etree.Element):
        tag = child.tag
        if not (isinstance(tag, str) and tag.startswith(_NS)):
            raise GatewayError(RetCode.SCHEMA, f"{local_name(tag)}: unexpected element")
        yield child


def _all(parent: etree._Element, name: str) -> list[etree._Element]:
    tag = _NS + name
    return [child for child in _children(parent) if child.tag == tag]


def _optional(parent: etree._Element, name: str) -> etree._Element | None:
    found = _all(parent, name)
    if len(found) > 1:
        raise GatewayError(RetCode.SCHEMA, f"{name}: more than one in {local_name(parent.tag)}")
    return found[0] if found else None


def _one(parent: etree._Element, name: str) -> etree._Element:
    found = _optional(parent, name)
    if found is None:
        raise GatewayError(RetCode.SCHEMA, f"{local_name(parent.tag)}: missing {name}")
    return found


def _text(parent: etree._Element, name: str) -> str:
    return _text_of(_one(parent, name), name)


def _text_of(element: etree._Element, name: str) -> str:
    """A simple element's text: no element content, not empty (ISO ``Max…Text`` ≥ 1)."""
    if next(element.iterchildren(etree.Element), None) is not None:
        raise GatewayError(RetCode.SCHEMA, f"{name}: unexpected content")
    text = element.text or ""
    if not text.strip():
        raise GatewayError(RetCode.SCHEMA, f"{name}: empty")
    return text


# -- the official schema's first error, without values ---------------------------------

_ERROR: Final = re.compile(r"Element '([^']*)'(?:, attribute '([^']*)')?: (.*)", re.DOTALL)
_PROBLEMS: Final[tuple[tuple[str, str], ...]] = (
    ("This element is not expected", "unexpected element"),
    ("Missing child element", "missing child element"),
    ("is required but missing", "missing attribute"),
    ("is not allowed", "attribute not allowed"),
)


def _schema_detail(log: etree._ListErrorLog) -> str:
    """``<element>: <what is wrong>`` for the first error (docs/protocol.md §8, 1003).

    Never echoes a value (it may be an account number) nor libxml2's wording.
    """
    first = next(iter(log), None)
    found = _ERROR.match(first.message) if first is not None else None
    if found is None:
        return "Document: invalid pain.001.001.09"
    element, attribute, message = found.groups()
    what = next((text for words, text in _PROBLEMS if words in message), "invalid value")
    name = local_name(element)
    if attribute is not None and what == "invalid value":
        what = f"invalid attribute {local_name(attribute)}"
    return f"{name}: {what}"
