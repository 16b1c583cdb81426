"""MT101: a SWIFT Request for Transfer, one transfer per sequence B.

docs/protocol.md §4: the MT101 Body is ``<MT><![CDATA[...]]></MT>`` holding FIN
text; "payee bank given as ``//CN`` + 12-digit code in field 57D, or a BIC
that the directory maps"; §8: "a malformed MT101 block structure (names the
field)" is 1003.  docs/routing-rules.md §3 routes each transaction on its own.

Sans-IO and pure: text in, a typed :class:`Mt101` out, or ``GatewayError``.
The checks run in docs/protocol.md §8's order — structure first (1003, and 1004
for what is valid MT101 but not supported), amounts last (4004) — so a
message is refused for its first structural fault before any amount is
judged.  Every detail names the block or field (``field 32B: …``) and never
repeats a value from the message.

What the parser takes (SWIFT MT101 layout, the fields a CNY credit needs):

- blocks ``{1:}{2:}{3:}?{4:…-}{5:}?`` in that order; block 1 ``F01`` + LT
  address + session + sequence; block 2 an input (``I101…``) or output
  (``O101…``) application header of message type 101 (another type → 1004);
- block 4 lines end with CRLF (LF accepted), a field starts ``:TAG:`` at the
  start of a line, and ``-}`` on a line of its own ends the block;
- sequence A: ``20`` sender's reference, ``21R``, ``28D`` index/total, ``50C``/
  ``50L`` instructing party, ``50G``/``50H`` ordering customer, ``51A``, ``30``
  requested execution date, ``25``;
- sequence B, once per transaction, from each ``21``: ``21`` reference, ``23E``
  instruction codes (``URGP``/``RTGS`` → ``Priority=URGT``), ``32B`` currency
  and amount with a decimal comma, ``50a``, ``57D`` ``//CN`` + 12 digits or
  ``57A`` BIC, ``59`` ``/account`` + name, ``70`` remittance, ``77B``, ``71A``
  charges, ``25A``;
- the ordering customer (``50G``/``50H``) is in sequence A or in every
  sequence B, never both (the SWIFT network rule).

Valid MT101 that the gateway does not carry — FX (``21F``, ``33B``, ``36``),
intermediaries (``56a``), an account serviced elsewhere (``52a``), ``57C``,
``59A``/``59F`` (no beneficiary name), cheques and other instruction codes —
is 1004 (unsupported payload).  Unknown tags are 1003.

Foreign currency (docs/foreign-currency.md §1): ``32B`` may be in any currency
the ``amount_check`` takes, its amount kept with the decimals written
(``JPY1500,`` is 1500, ``JPY1500,00`` two decimals and so refused); ``57A``
gives the payee BIC; the payee country is a last line of ``59`` after the
name that starts with two letters and ``/`` (``US/NEW YORK``), else the BIC's
characters 5-6; ``71A`` ``OUR``/``BEN``/``SHA`` is ``ChrgBr`` DEBT/CRED/SHAR.  Name and narrative
lines may hold any printable characters (Chinese names are common); references
and codes stay in the SWIFT ``X`` character set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from gateway.codec.foreign import AmountCheck, cny_only, foreign_amount
from gateway.errors import GatewayError, RetCode
from gateway.model import Priority, Transfer

MAX_TRANSACTIONS: Final = 50_000
"""Most sequences B in one message: the PAYROLL bound (docs/protocol.md §4), as for pain.001."""

LINE_MAX: Final = 35
"""Longest line of any MT101 field (``35x``; ``/34x`` with its slash)."""

_CCY: Final = "CNY"
_CENT: Final = Decimal("0.01")
_MAX_DECIMALS: Final = 2
"""CNY has two decimals (ISO 4217); docs/protocol.md §4 ``Amount`` allows at most 2."""

CHARGE_BEARER: Final[dict[str, str]] = {"OUR": "DEBT", "BEN": "CRED", "SHA": "SHAR"}
"""Field 71A → ``ChrgBr`` (docs/foreign-currency.md §1)."""
_COUNTRY_LINE: Final = re.compile(r"([A-Z]{2})/")

_LT: Final = r"[A-Z]{6}[A-Z0-9]{2}[A-Z0-9][A-Z0-9]{3}"
_BLOCK1: Final = re.compile(rf"F01({_LT})[0-9]{{4}}[0-9]{{6}}")
_BLOCK2_TYPE: Final = re.compile(r"[IO]([0-9]{3})")
_BLOCK2_IN: Final = re.compile(rf"I101({_LT})(?:[NUS](?:[123](?:[0-9]{{3}})?)?)?")
_BLOCK2_OUT: Final = re.compile(
    rf"O101[0-9]{{4}}[0-9]{{6}}({_LT})[0-9]{{4}}[0-9]{{6}}[0-9]{{6}}[0-9]{{4}}[NUS]?"
)
_BLOCK_START: Final = re.compile(r"\{([0-9]):")
_SUB_BLOCKS: Final = re.compile(r"((?:\{[A-Za-z0-9]{3}:[^{}]*\})*)\}")
_SUB_BLOCK: Final = re.compile(r"\{([A-Za-z0-9]{3}):([^{}]*)\}")
_FIELD: Final = re.compile(r":([0-9]{2}[A-Z]?):(.*)", re.DOTALL)

_X_CHARS: Final = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]+")
"""The SWIFT ``X`` character set, for references and codes."""
_BAD_CHARS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f{}]")
"""Control characters and braces: never in a field line."""
_REFERENCE: Final = re.compile(r"[A-Za-z0-9\-?:().,'+ ][A-Za-z0-9/\-?:().,'+ ]{0,14}")
_INDEX: Final = re.compile(r"([0-9]{1,5})/([0-9]{1,5})")
_DATE: Final = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})")
_AMOUNT_FIELD: Final = re.compile(r"([A-Z]{3})([0-9]+),([0-9]*)")
_AMOUNT_LENGTH: Final = 15  # 3!a15d: the comma counts
_ACCOUNT_LINE: Final = re.compile(r"/([0-9A-Za-z]{1,32})")
"""``/34x`` restricted to docs/protocol.md §4's account rule ``[0-9A-Za-z]{1,32}``."""
_BIC: Final = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_CN_CODE: Final = re.compile(r"//CN([0-9]{12})")
_PARTY_ID: Final = re.compile(r"/[A-Za-z0-9/\-?:().,'+ ]{1,34}")
_INSTRUCTION: Final = re.compile(r"([A-Z]{4})(?:/(.{1,30}))?")
_CHARGES: Final = frozenset({"BEN", "OUR", "SHA"})

_URGENT: Final = frozenset({"URGP", "RTGS"})
_INSTRUCTIONS_KEPT: Final = _URGENT | {"NETS", "OTHR"}
_INSTRUCTIONS_MT101: Final = _INSTRUCTIONS_KEPT | {
    "CHQB", "CMSW", "CMTO", "CMZB", "CORT", "EQUI", "INTC", "PHON", "REPA",
}  # fmt: skip
"""Field 23E codes of MT101; those not kept are valid but not supported (1004)."""

# Field order per sequence: each slot is the set of tags that may stand there.
_SEQ_A: Final[tuple[frozenset[str], ...]] = tuple(
    frozenset(tags.split())
    for tags in ("20", "21R", "28D", "50C 50L", "50G 50H", "52A 52C", "51A", "30", "25")
)
_SEQ_B: Final[tuple[frozenset[str], ...]] = tuple(
    frozenset(tags.split())
    for tags in (
        "21", "21F", "23E", "32B", "50C 50L", "50G 50H", "52A 52C", "56A 56C 56D",
        "57A 57C 57D", "59 59A 59F", "70", "77B", "33B", "71A", "25A", "36",
    )
)  # fmt: skip
_REPEATABLE: Final = frozenset({"23E"})
_UNSUPPORTED: Final = frozenset(
    {"21F", "33B", "36", "52A", "52C", "56A", "56C", "56D", "57C", "59A", "59F"}
)
_MAX_LINES: Final[dict[str, int]] = {
    "50H": 5, "50G": 2, "57A": 2, "57D": 5, "59": 5, "70": 4, "77B": 3,
}  # fmt: skip
_ALL_A: Final = frozenset().union(*_SEQ_A)
_ALL_B: Final = frozenset().union(*_SEQ_B)


@dataclass(frozen=True, slots=True)
class Party:
    """Field 50G (account + BIC) or 50H (account + name and address)."""

    account: str
    name: str | None  # 50H: the first name-and-address line
    bic: str | None  # 50G: the ordering customer's identifier code


@dataclass(frozen=True, slots=True)
class Mt101Transaction:
    """One sequence B."""

    reference: str  # field 21
    instruction_codes: tuple[str, ...]  # field 23E codes
    currency: str
    amount: Decimal
    ordering: Party | None  # field 50a when given per transaction
    bank_code: str | None  # 57D (or 57A's party identifier): //CN + 12 digits
    bic: str | None  # 57A
    payee_account: str  # field 59, first line
    payee_name: str  # field 59, second line
    remittance: str | None  # field 70, lines joined by spaces
    charges: str  # field 71A: BEN, OUR or SHA
    country: str | None = None  # field 59's last line ``CC/...``, else the BIC's characters 5-6


@dataclass(frozen=True, slots=True)
class Mt101:
    """A parsed MT101: headers, sequence A and the transactions."""

    sender: str  # block 1 LT address
    receiver: str  # block 2 destination (or, for an output header, the sender's MIR address)
    user_header: tuple[tuple[str, str], ...]  # block 3 (tag, value) pairs
    reference: str  # field 20
    customer_reference: str | None  # field 21R
    index: int  # field 28D
    total: int
    requested_date: date  # field 30
    ordering: Party | None  # field 50a of sequence A
    transactions: tuple[Mt101Transaction, ...]


@dataclass(frozen=True, slots=True)
class Mt101Item:
    """One transaction as a transfer; ``bic`` set when 57A named the payee bank.

    When the payee bank was given only as a BIC, ``transfer.payee_bank_code``
    is ``""`` until the router maps the BIC through the directory.
    ``seq_no`` is the transaction's position, 1..n.
    """

    transfer: Transfer
    reference: str
    bic: str | None
    seq_no: int


def parse_mt101(text: str, *, amount_check: AmountCheck = cny_only) -> Mt101:
    """Parse and check one MT101; raises only ``GatewayError`` (1003, 1004, 4004).

    ``amount_check`` judges a ``32B`` not in CNY (``gateway.codec.foreign``)."""
    blocks, user_header = _blocks(text)
    sender = _header_1(blocks[1])
    receiver = _header_2(blocks[2])
    fields = _fields(blocks[4])
    seq_a, seqs_b = _sequences(fields)
    head = _sequence_a(seq_a)
    transactions = [_sequence_b(seq, n) for n, seq in enumerate(seqs_b, start=1)]
    ordering = head.ordering
    for n, tx in enumerate(transactions, start=1):
        if ordering is not None and tx.ordering is not None:
            raise GatewayError(RetCode.SCHEMA, f"field 50a: in sequence A and in transaction {n}")
        if ordering is None and tx.ordering is None:
            raise GatewayError(RetCode.SCHEMA, f"field 50a: missing (transaction {n})")
    for n, tx in enumerate(transactions, start=1):
        _check_amount(tx, n, amount_check)
    return Mt101(
        sender=sender,
        receiver=receiver,
        user_header=user_header,
        reference=head.reference,
        customer_reference=head.customer_reference,
        index=head.index,
        total=head.total,
        requested_date=head.requested_date,
        ordering=ordering,
        transactions=tuple(transactions),
    )


def to_transfers(mt: Mt101) -> list[Mt101Item]:
    """One ``Transfer`` per transaction (docs/routing-rules.md §3: each routed on its own).

    The payer is the ordering customer of the transaction or of sequence A;
    for 50G, which identifies the customer by BIC and carries no name, the
    BIC stands in as the payer name.
    """
    items = []
    for n, tx in enumerate(mt.transactions, start=1):
        payer = tx.ordering or mt.ordering
        if payer is None:  # parse_mt101 guarantees one; fail closed all the same
            raise GatewayError(RetCode.SCHEMA, f"field 50a: missing (transaction {n})")
        transfer = Transfer(
            payer_acct=payer.account,
            payer_name=payer.name or payer.bic or "",
            payee_acct=tx.payee_account,
            payee_name=tx.payee_name,
            payee_bank_code=tx.bank_code or "",
            amount=tx.amount.quantize(_CENT) if tx.currency == _CCY else tx.amount,
            ccy=tx.currency,
            priority=Priority.URGT if _URGENT & set(tx.instruction_codes) else Priority.NORM,
            purpose=tx.remittance,
            payee_bic=tx.bic,
            payee_country=tx.country,
            chrg_br=CHARGE_BEARER[tx.charges],
        )
        items.append(Mt101Item(transfer=transfer, reference=tx.reference, bic=tx.bic, seq_no=n))
    return items


# -- blocks -----------------------------------------------------------------------------


def _blocks(text: str) -> tuple[dict[int, str], tuple[tuple[str, str], ...]]:
    """Split ``{1:}{2:}{3:}?{4:…-}{5:}?``; block 4 comes back as its lines' text."""
    body = text.strip(" \t\r\n").replace("\r\n", "\n")
    if "\r" in body:
        raise GatewayError(RetCode.SCHEMA, "block structure: CR without LF")
    blocks: dict[int, str] = {}
    user_header: tuple[tuple[str, str], ...] = ()
    pos, last = 0, 0
    while pos < len(body):
        start = _BLOCK_START.match(body, pos)
        if start is None:
            raise GatewayError(RetCode.SCHEMA, "block structure: text outside the blocks")
        number = int(start.group(1))
        if not 1 <= number <= 5:
            raise GatewayError(RetCode.SCHEMA, f"block {number}: unknown block")
        if number <= last:
            raise GatewayError(RetCode.SCHEMA, f"block {number}: out of order or repeated")
        last = number
        pos = start.end()
        if number == 4:
            pos = _block_4(body, pos, blocks)
        elif number in (3, 5):
            subs = _SUB_BLOCKS.match(body, pos)
            if subs is None:
                raise GatewayError(RetCode.SCHEMA, f"block {number}: malformed")
            if number == 3:
                user_header = tuple(
                    (m.group(1), m.group(2)) for m in _SUB_BLOCK.finditer(subs.group(1))
                )
            blocks[number] = subs.group(1)
            pos = subs.end()
        else:
            end = body.find("}", pos)
            if end < 0 or "{" in body[pos:end]:
                raise GatewayError(RetCode.SCHEMA, f"block {number}: not terminated by }}")
            blocks[number] = body[pos:end]
            pos = end + 1
    for number in (1, 2, 4):
        if number not in blocks:
            raise GatewayError(RetCode.SCHEMA, f"block {number}: missing")
    return blocks, user_header


def _block_4(body: str, pos: int, blocks: dict[int, str]) -> int:
    if not body.startswith("\n", pos):
        raise GatewayError(RetCode.SCHEMA, "block 4: must start with a new line after {4:")
    end = body.find("\n-}", pos)
    if end < 0:
        raise GatewayError(RetCode.SCHEMA, "block 4: not terminated by -}")
    content = body[pos + 1 : end]
    if "{" in content or "}" in content:
        raise GatewayError(RetCode.SCHEMA, "block 4: braces inside the text")
    blocks[4] = content
    return end + len("\n-}")


def _header_1(text: str) -> str:
    found = _BLOCK1.fullmatch(text)
    if found is None:
        raise GatewayError(RetCode.SCHEMA, "block 1: malformed basic header")
    return found.group(1)


def _header_2(text: str) -> str:
    kind = _BLOCK2_TYPE.match(text)
    if kind is None:
        raise GatewayError(RetCode.SCHEMA, "block 2: malformed application header")
    if kind.group(1) != "101":
        raise GatewayError(
            RetCode.UNKNOWN_TRNCODE, f"block 2: MT{kind.group(1)} not supported, expected MT101"
        )
    found = _BLOCK2_IN.fullmatch(text) or _BLOCK2_OUT.fullmatch(text)
    if found is None:
        raise GatewayError(RetCode.SCHEMA, "block 2: malformed application header")
    return found.group(1)


# -- fields and sequences ------------------------------------------------------------------


@dataclass(slots=True)
class _Field:
    tag: str
    lines: list[str]


def _fields(content: str) -> list[_Field]:
    fields: list[_Field] = []
    for raw in content.split("\n"):
        tag = _FIELD.match(raw) if raw.startswith(":") else None
        if tag is not None:
            line = tag.group(2)
            fields.append(_Field(tag.group(1), [line]))
        elif not fields:
            raise GatewayError(RetCode.SCHEMA, "block 4: expected a field tag :nn:")
        elif raw.startswith((":", "-")):
            raise GatewayError(
                RetCode.SCHEMA, f"field {fields[-1].tag}: a line may not start with : or -"
            )
        else:
            line = raw
            fields[-1].lines.append(line)
        where = fields[-1].tag
        if not line:
            raise GatewayError(RetCode.SCHEMA, f"field {where}: empty line")
        if len(line) > LINE_MAX:
            raise GatewayError(
                RetCode.SCHEMA, f"field {where}: line longer than {LINE_MAX} characters"
            )
        if _BAD_CHARS.search(line) is not None:
            raise GatewayError(RetCode.SCHEMA, f"field {where}: control character")
    return fields


def _sequences(fields: list[_Field]) -> tuple[list[_Field], list[list[_Field]]]:
    """Sequence A, then one sequence B per field 21, each checked for tags and order."""
    seq_a: list[_Field] = []
    seqs_b: list[list[_Field]] = []
    for field in fields:
        if field.tag == "21":
            if len(seqs_b) == MAX_TRANSACTIONS:
                raise GatewayError(
                    RetCode.SCHEMA, f"field 21: more than {MAX_TRANSACTIONS} transactions"
                )
            seqs_b.append([])
        (seqs_b[-1] if seqs_b else seq_a).append(field)
    _check_order(seq_a, _SEQ_A, "sequence A", "")
    if not seqs_b:
        raise GatewayError(RetCode.SCHEMA, "field 21: missing (no transaction)")
    for n, seq in enumerate(seqs_b, start=1):
        _check_order(seq, _SEQ_B, "sequence B", f" (transaction {n})")
    return seq_a, seqs_b


def _check_order(seq: list[_Field], slots: Sequence[frozenset[str]], name: str, where: str) -> None:
    current, used = 0, False
    for field in seq:
        slot = next((i for i, tags in enumerate(slots) if field.tag in tags), None)
        if slot is None:
            known = _ALL_B if slots is _SEQ_A else _ALL_A
            problem = f"not allowed in {name}" if field.tag in known else f"unknown tag in {name}"
            raise GatewayError(RetCode.SCHEMA, f"field {field.tag}: {problem}{where}")
        if slot < current or (slot == current and used and field.tag not in _REPEATABLE):
            raise GatewayError(
                RetCode.SCHEMA, f"field {field.tag}: out of order or repeated{where}"
            )
        if field.tag in _UNSUPPORTED:
            raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"field {field.tag}: not supported{where}")
        current, used = slot, True
        if len(field.lines) > _MAX_LINES.get(field.tag, 1):
            raise GatewayError(RetCode.SCHEMA, f"field {field.tag}: too many lines{where}")


def _by_tag(seq: list[_Field]) -> dict[str, _Field]:
    return {field.tag: field for field in seq if field.tag not in _REPEATABLE}


@dataclass(slots=True)
class _Head:
    reference: str
    customer_reference: str | None
    index: int
    total: int
    requested_date: date
    ordering: Party | None


def _sequence_a(seq: list[_Field]) -> _Head:
    tags = _by_tag(seq)
    reference = _reference(_required(tags, "20", ""), "")
    customer = tags.get("21R")
    index_field = _required(tags, "28D", "")
    found = _INDEX.fullmatch(index_field.lines[0])
    if found is None or not 1 <= int(found.group(1)) <= int(found.group(2)):
        raise GatewayError(
            RetCode.SCHEMA, "field 28D: expected message index/total, 1 ≤ index ≤ total"
        )
    return _Head(
        reference=reference,
        customer_reference=None if customer is None else _reference(customer, ""),
        index=int(found.group(1)),
        total=int(found.group(2)),
        requested_date=_date(_required(tags, "30", "")),
        ordering=_ordering(tags, ""),
    )


def _sequence_b(seq: list[_Field], n: int) -> Mt101Transaction:
    where = f" (transaction {n})"
    tags = _by_tag(seq)
    codes = tuple(_instruction(field, where) for field in seq if field.tag == "23E")
    currency, amount = _amount(_required(tags, "32B", where), where)
    bank_code, bic = _payee_bank(tags, where)
    beneficiary = _required(tags, "59", where)
    account, name = _beneficiary(beneficiary, where)
    remittance = tags.get("70")
    charges = _required(tags, "71A", where).lines[0]
    if charges not in _CHARGES:
        raise GatewayError(RetCode.SCHEMA, f"field 71A: expected BEN, OUR or SHA{where}")
    return Mt101Transaction(
        reference=_reference(_required(tags, "21", where), where),
        instruction_codes=codes,
        currency=currency,
        amount=amount,
        ordering=_ordering(tags, where),
        bank_code=bank_code,
        bic=bic,
        payee_account=account,
        payee_name=name,
        remittance=None if remittance is None else " ".join(remittance.lines),
        charges=charges,
        country=_country(beneficiary, bic),
    )


# -- field formats ---------------------------------------------------------------------------


def _required(tags: dict[str, _Field], tag: str, where: str) -> _Field:
    field = tags.get(tag)
    if field is None:
        raise GatewayError(RetCode.SCHEMA, f"field {tag}: missing{where}")
    return field


def _reference(field: _Field, where: str) -> str:
    """``16x``, not starting or ending with ``/`` and without ``//`` (SWIFT rule T26)."""
    value = field.lines[0]
    if _REFERENCE.fullmatch(value) is None or value.endswith("/") or "//" in value:
        raise GatewayError(RetCode.SCHEMA, f"field {field.tag}: expected a 16x reference{where}")
    return value


def _date(field: _Field) -> date:
    found = _DATE.fullmatch(field.lines[0])
    try:
        if found is None:
            raise ValueError
        yy, mm, dd = (int(part) for part in found.groups())
        return date(2000 + yy, mm, dd)
    except ValueError:
        raise GatewayError(RetCode.SCHEMA, "field 30: expected a date YYMMDD") from None


def _ordering(tags: dict[str, _Field], where: str) -> Party | None:
    field = tags.get("50H") or tags.get("50G")
    if field is None:
        return None
    account = _ACCOUNT_LINE.fullmatch(field.lines[0])
    if account is None:
        raise GatewayError(
            RetCode.SCHEMA, f"field {field.tag}: expected /account of 1-32 letters or digits{where}"
        )
    if len(field.lines) < 2:
        raise GatewayError(RetCode.SCHEMA, f"field {field.tag}: missing the customer{where}")
    if field.tag == "50G":
        if _BIC.fullmatch(field.lines[1]) is None:
            raise GatewayError(RetCode.SCHEMA, f"field 50G: expected a BIC{where}")
        return Party(account.group(1), None, field.lines[1])
    return Party(account.group(1), field.lines[1], None)


def _instruction(field: _Field, where: str) -> str:
    found = _INSTRUCTION.fullmatch(field.lines[0])
    if found is None or found.group(1) not in _INSTRUCTIONS_MT101:
        raise GatewayError(RetCode.SCHEMA, f"field 23E: unknown instruction code{where}")
    if found.group(1) not in _INSTRUCTIONS_KEPT:
        raise GatewayError(
            RetCode.UNKNOWN_TRNCODE, f"field 23E: instruction code not supported{where}"
        )
    return found.group(1)


def _amount(field: _Field, where: str) -> tuple[str, Decimal]:
    """``3!a15d``: currency, then digits with one mandatory decimal comma (15 at most)."""
    value = field.lines[0]
    found = _AMOUNT_FIELD.fullmatch(value)
    if found is None or len(value) - 3 > _AMOUNT_LENGTH:
        raise GatewayError(
            RetCode.SCHEMA,
            f"field 32B: expected currency and amount with a decimal comma, e.g. CNY1234,50{where}",
        )
    currency, whole, fraction = found.groups()
    # As written: "1500," has no decimals (a JPY amount), "1500,00" two.
    return currency, Decimal(f"{whole}.{fraction}" if fraction else whole)


def _payee_bank(tags: dict[str, _Field], where: str) -> tuple[str | None, str | None]:
    """57D ``//CN`` + 12 digits, or 57A [party identifier] + BIC (docs/protocol.md §4)."""
    field_d, field_a = tags.get("57D"), tags.get("57A")
    if field_d is not None:
        found = _CN_CODE.fullmatch(field_d.lines[0])
        if found is None:
            raise GatewayError(
                RetCode.SCHEMA, f"field 57D: expected //CN and a 12-digit bank code{where}"
            )
        return found.group(1), None
    if field_a is not None:
        lines = field_a.lines
        code = None
        if len(lines) == 2:
            if _PARTY_ID.fullmatch(lines[0]) is None:
                raise GatewayError(RetCode.SCHEMA, f"field 57A: malformed party identifier{where}")
            cn = _CN_CODE.fullmatch(lines[0])
            code = None if cn is None else cn.group(1)
        if _BIC.fullmatch(lines[-1]) is None:
            raise GatewayError(RetCode.SCHEMA, f"field 57A: expected a BIC{where}")
        return code, lines[-1]
    raise GatewayError(RetCode.SCHEMA, f"field 57a: missing, the payee bank is required{where}")


def _beneficiary(field: _Field, where: str) -> tuple[str, str]:
    account = _ACCOUNT_LINE.fullmatch(field.lines[0])
    if account is None or len(field.lines) < 2:
        raise GatewayError(
            RetCode.SCHEMA, f"field 59: expected /account and the beneficiary's name{where}"
        )
    return account.group(1), field.lines[1]


def _country(field: _Field, bic: str | None) -> str | None:
    """The payee country: a last line of 59 after the name, ``CC/...``; else the BIC's."""
    if len(field.lines) > 2 and (found := _COUNTRY_LINE.match(field.lines[-1])) is not None:
        return found.group(1)
    return None if bic is None else bic[4:6]


def _check_amount(tx: Mt101Transaction, n: int, amount_check: AmountCheck = cny_only) -> None:
    """docs/protocol.md §4 ``Amount`` and §8 4004: CNY, at most 2 decimals, greater than zero;
    another currency as ``amount_check`` says (docs/foreign-currency.md §1)."""
    where = f" (transaction {n})"
    if tx.currency != _CCY:
        text = format(tx.amount, "f")
        try:
            foreign_amount(text, tx.currency, amount_check)
        except GatewayError as exc:
            raise GatewayError(exc.code, f"field 32B: {exc.detail}{where}") from None
        return
    exponent = tx.amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > _MAX_DECIMALS:
        raise GatewayError(RetCode.AMOUNT_INVALID, f"field 32B: at most 2 decimals{where}")
    if tx.amount <= 0:
        raise GatewayError(RetCode.AMOUNT_INVALID, f"field 32B: must be greater than zero{where}")
