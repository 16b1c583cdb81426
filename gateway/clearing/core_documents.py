"""The core banking link's documents (docs/clearing-link.md §5), sans-IO.

Requests and answers are small unsigned XML documents in namespace
``urn:core:1``: ``BalQry``/``BalRsp`` and ``AcctCheck``/``AcctCheckRsp``.
The gateway's :class:`~gateway.clearing.core.CoreLink` and the core
simulator (``gateway.sim.core``) build and read them with these same
functions, so both sides read the spec the same way.  Documents are parsed
with the link's hardened parser and their shape is checked element by
element; an unusable answer is a :class:`CoreError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from lxml import etree

from gateway.clearing.envelope import new_document, parse_message, serialize

NS_CORE: Final = "urn:core:1"
"""docs/clearing-link.md §5: the namespace of every core link document."""

BAL_RESULTS: Final = ("OK", "UNKNOWN")
CHECK_RESULTS: Final = ("MATCH", "MISMATCH", "UNKNOWN")

MAX_DOCUMENT_BYTES: Final = 16 * 1024
"""The documents of docs/clearing-link.md §5 are a few hundred bytes; anything far bigger is
refused."""

MAX_NAME_CHARS: Final = 140
"""An account name as it can arrive in an incoming credit (pacs.008 ``Nm``, Max140Text)."""

_ACCT = re.compile(r"[0-9A-Za-z]{1,32}")  # docs/protocol.md §4: account numbers
_CCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"-?[0-9]{1,18}\.[0-9]{2}")  # two decimals; negative: overdraft
_CENT = Decimal("0.01")


class CoreError(Exception):
    """The answer (or the broker) was unusable; the caller treats it like no answer."""


@dataclass(frozen=True)
class BalanceAnswer:
    """A ``BalRsp``; ``ccy``, ``balance`` and ``available`` are set when ``result == "OK"``."""

    acct: str
    result: str
    ccy: str | None
    balance: Decimal | None
    available: Decimal | None


@dataclass(frozen=True)
class BalanceQuery:
    """A ``BalQry`` as the core system reads it."""

    acct: str


@dataclass(frozen=True)
class AccountCheck:
    """An ``AcctCheck`` as the core system reads it."""

    acct: str
    name: str


def _q(local: str) -> str:
    return f"{{{NS_CORE}}}{local}"


def _document(root_name: str, *fields: tuple[str, str]) -> bytes:
    root = new_document(NS_CORE, root_name)
    for name, text in fields:
        etree.SubElement(root, _q(name)).text = text
    return serialize(root)


def check_acct(acct: str) -> str:
    """``acct`` if it is ``[0-9A-Za-z]{1,32}`` (docs/protocol.md §4), else ``ValueError``."""
    if not _ACCT.fullmatch(acct):
        raise ValueError("core link: account number must be [0-9A-Za-z]{1,32}")
    return acct


def format_amount(value: Decimal) -> str:
    """Two decimals exactly (docs/clearing-link.md §5); a value with more is refused, not
    rounded."""
    if value != value.quantize(_CENT):
        raise ValueError("core link: amounts carry at most two decimals")
    text = f"{value.quantize(_CENT):f}"
    if not _AMOUNT.fullmatch(text):
        raise ValueError("core link: amount out of range")
    return text


def build_bal_qry(acct: str) -> bytes:
    """``<BalQry xmlns="urn:core:1"><Acct>…</Acct></BalQry>`` (docs/clearing-link.md §5)."""
    return _document("BalQry", ("Acct", check_acct(acct)))


def build_acct_check(acct: str, name: str) -> bytes:
    """``<AcctCheck xmlns="urn:core:1"><Acct>…</Acct><Name>…</Name></AcctCheck>``."""
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"core link: name must be 1..{MAX_NAME_CHARS} characters")
    return _document("AcctCheck", ("Acct", check_acct(acct)), ("Name", name))


def build_bal_rsp(
    acct: str,
    result: str,
    ccy: str | None = None,
    balance: Decimal | None = None,
    available: Decimal | None = None,
) -> bytes:
    """A ``BalRsp``; Ccy, Bal and Avail are written for ``OK`` only."""
    if result not in BAL_RESULTS:
        raise ValueError(f"core link: BalRsp result must be one of {BAL_RESULTS}")
    fields = [("Acct", acct), ("Result", result)]
    if result == "OK":
        if ccy is None or balance is None or available is None or not _CCY.fullmatch(ccy):
            raise ValueError("core link: an OK BalRsp needs Ccy, Bal and Avail")
        fields += [("Ccy", ccy), ("Bal", format_amount(balance))]
        fields.append(("Avail", format_amount(available)))
    return _document("BalRsp", *fields)


def build_acct_check_rsp(acct: str, result: str) -> bytes:
    """An ``AcctCheckRsp`` with MATCH, MISMATCH or UNKNOWN."""
    if result not in CHECK_RESULTS:
        raise ValueError(f"core link: AcctCheckRsp result must be one of {CHECK_RESULTS}")
    return _document("AcctCheckRsp", ("Acct", acct), ("Result", result))


def _fields(data: bytes) -> tuple[str, dict[str, str]]:
    """``(root local name, {child: text})`` of a flat ``urn:core:1`` document.

    Refuses (``ValueError``) oversized or ill-formed bytes, another namespace,
    attributes, comments or processing instructions, nested or repeated
    children, and text outside the children: the documents of §5 are flat.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError("document too large")
    root = parse_message(data)  # hardened: no DTD, no entities, UTF-8 only
    if not isinstance(root.tag, str) or not root.tag.startswith(f"{{{NS_CORE}}}"):
        raise ValueError("not a urn:core:1 document")
    if root.attrib or (root.text or "").strip():
        raise ValueError("unexpected attributes or text on the root")
    out: dict[str, str] = {}
    for elem in root:
        tag = elem.tag
        if not isinstance(tag, str) or not tag.startswith(f"{{{NS_CORE}}}"):
            raise ValueError("unexpected node in the document")
        name = tag.rpartition("}")[2]
        if name in out or elem.attrib or len(elem) or (elem.tail or "").strip():
            raise ValueError(f"{name}: repeated, nested or carrying attributes")
        out[name] = (elem.text or "").strip()
    return root.tag.rpartition("}")[2], out


def _shape(fields: dict[str, str], required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [n for n in required if not fields.get(n)]
    extra = [n for n in fields if n not in required and n not in optional]
    if missing or extra:
        raise ValueError(f"missing {missing} or unexpected {extra}")


def _amount(text: str, name: str) -> Decimal:
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"{name} must be an amount with two decimals")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees it
        raise ValueError(f"{name} is not a number") from None


def parse_request(data: bytes) -> BalanceQuery | AccountCheck:
    """Read a request as the core system does; ``ValueError`` with a short reason."""
    root, fields = _fields(data)
    if root == "BalQry":
        _shape(fields, ("Acct",), ())
        return BalanceQuery(check_acct(fields["Acct"]))
    if root == "AcctCheck":
        _shape(fields, ("Acct", "Name"), ())
        return AccountCheck(check_acct(fields["Acct"]), fields["Name"])
    raise ValueError(f"unknown request {root}")


def parse_bal_rsp(data: bytes, acct: str) -> BalanceAnswer:
    """Read the ``BalRsp`` to a query for ``acct``; :class:`CoreError` if it is not one."""
    try:
        root, fields = _fields(data)
        if root != "BalRsp":
            raise ValueError(f"expected BalRsp, got {root}")
        if fields.get("Result") == "OK":
            _shape(fields, ("Acct", "Result", "Ccy", "Bal", "Avail"), ())
            if not _CCY.fullmatch(fields["Ccy"]):
                raise ValueError("Ccy must be three capital letters")
            answer = BalanceAnswer(
                fields["Acct"],
                "OK",
                fields["Ccy"],
                _amount(fields["Bal"], "Bal"),
                _amount(fields["Avail"], "Avail"),
            )
        elif fields.get("Result") == "UNKNOWN":
            # the spec's table shows Ccy/Bal/Avail as empty placeholders: allowed, if empty
            _shape(fields, ("Acct", "Result"), ("Ccy", "Bal", "Avail"))
            if any(fields.get(n) for n in ("Ccy", "Bal", "Avail")):
                raise ValueError("UNKNOWN carries no balance")
            answer = BalanceAnswer(fields["Acct"], "UNKNOWN", None, None, None)
        else:
            raise ValueError(f"Result must be one of {BAL_RESULTS}")
    except ValueError as exc:
        raise CoreError(f"malformed BalRsp: {exc}") from None
    if answer.acct != acct:
        raise CoreError("BalRsp is for another account")
    return answer


def parse_acct_check_rsp(data: bytes, acct: str) -> str:
    """The Result of the ``AcctCheckRsp`` for ``acct``; :class:`CoreError` if it is not one."""
    try:
        root, fields = _fields(data)
        if root != "AcctCheckRsp":
            raise ValueError(f"expected AcctCheckRsp, got {root}")
        _shape(fields, ("Acct", "Result"), ())
        if fields["Result"] not in CHECK_RESULTS:
            raise ValueError(f"Result must be one of {CHECK_RESULTS}")
    except ValueError as exc:
        raise CoreError(f"malformed AcctCheckRsp: {exc}") from None
    if fields["Acct"] != acct:
        raise CoreError("AcctCheckRsp is for another account")
    return fields["Result"]


__all__ = [
    "BAL_RESULTS",
    "CHECK_RESULTS",
    "MAX_DOCUMENT_BYTES",
    "MAX_NAME_CHARS",
    "NS_CORE",
    "AccountCheck",
    "BalanceAnswer",
    "BalanceQuery",
    "CoreError",
    "build_acct_check",
    "build_acct_check_rsp",
    "build_bal_qry",
    "build_bal_rsp",
    "check_acct",
    "format_amount",
    "parse_acct_check_rsp",
    "parse_bal_rsp",
    "parse_request",
]
