"""Draft numbers, presentment ids, bank codes and amount text (docs/bank-drafts.md §1, §3).

Every value that crosses the INTRA link or enters the Code is checked here,
in one place, so the builders, the parsers and the register agree on the
exact text: a DraftNo is 20 digits (our 12-digit participant code, then an
8-digit sequence that never restarts), a ``PrsntmtId`` is
``[A-Za-z0-9-]{1,35}``, and an amount is ``[0-9]{1,15}.[0-9]{2}`` with no
currency attribute.  Refusals are ``ValueError`` naming the field, never
echoing a long hostile value.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

PARTICIPANT_DIGITS: Final = 12
"""docs/routing-rules.md §1: a CNAPS participant code has 12 digits."""

SEQ_DIGITS: Final = 8
"""docs/bank-drafts.md §1: the DraftNo's sequence part."""

DRAFT_NO_DIGITS: Final = PARTICIPANT_DIGITS + SEQ_DIGITS

MAX_SEQ: Final = 10**SEQ_DIGITS - 1
"""The last sequence number: the sequence never restarts, so it is a hard end."""

MAX_PRSNTMT_ID_LEN: Final = 35
"""docs/bank-drafts.md §3: a PrsntmtId is at most 35 characters, like a MsgId."""

AMOUNT_INT_DIGITS: Final = 15
"""docs/bank-drafts.md §3: amounts are ``[0-9]{1,15}.[0-9]{2}``."""

_DRAFT_NO = re.compile(r"[0-9]{20}")
_PARTICIPANT = re.compile(r"[0-9]{12}")
_PRSNTMT_ID = re.compile(r"[A-Za-z0-9-]{1,35}")
_AMOUNT = re.compile(r"[0-9]{1,15}\.[0-9]{2}")
_CENT: Final = Decimal("0.01")


def check_participant(code: str, name: str = "participant") -> str:
    """``code`` if it is 12 ASCII digits (docs/routing-rules.md §1), else ``ValueError``."""
    if not _PARTICIPANT.fullmatch(code):
        raise ValueError(f"{name} must be a 12-digit bank code")
    return code


def area_of(code: str) -> str:
    """The 4 digits after the class code (``XXX YYYY ZZZZ D``, docs/routing-rules.md §1)."""
    return check_participant(code)[3:7]


def make_draft_no(participant: str, seq: int) -> str:
    """The DraftNo for sequence number ``seq`` of issuer ``participant`` (docs/bank-drafts.md §1).

    ``seq`` runs from 1 to :data:`MAX_SEQ` and is never reused; running out is
    an error, not a wrap-around, because a DraftNo must stay unique for ever.
    """
    check_participant(participant)
    if isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"draft sequence must be 1-{MAX_SEQ}")
    return f"{participant}{seq:0{SEQ_DIGITS}d}"


def check_draft_no(text: str) -> str:
    """``text`` if it is a 20-digit DraftNo, else ``ValueError``."""
    if not _DRAFT_NO.fullmatch(text):
        raise ValueError("DraftNo must be 20 digits")
    return text


def issuer_of(draft_no: str) -> str:
    """The participant code that issued ``draft_no`` (its first 12 digits)."""
    return check_draft_no(draft_no)[:PARTICIPANT_DIGITS]


def sequence_of(draft_no: str) -> int:
    """The sequence number inside ``draft_no`` (its last 8 digits)."""
    return int(check_draft_no(draft_no)[PARTICIPANT_DIGITS:])


def check_prsntmt_id(text: str) -> str:
    """``text`` if it is ``[A-Za-z0-9-]{1,35}`` (docs/bank-drafts.md §3), else ``ValueError``."""
    if not _PRSNTMT_ID.fullmatch(text):
        raise ValueError(f"PrsntmtId must be [A-Za-z0-9-]{{1,{MAX_PRSNTMT_ID_LEN}}}")
    return text


def format_amount(value: Decimal, name: str = "Amount", *, zero: bool = False) -> str:
    """Amount text with exactly two decimals and no separators (``1234.50``).

    A value with fractions of a fen is refused, not rounded: the Code is a MAC
    over this text, so two ways of writing one amount must not exist.  Zero
    is allowed only where the contract allows it (``zero=True``: a
    ``Remainder``).
    """
    if not value.is_finite():
        raise ValueError(f"{name} is not a number")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be {'zero or more' if zero else 'positive'}")
    cents = value.quantize(_CENT)
    if cents != value:
        raise ValueError(f"{name} has fractions of a fen")
    text = f"{cents:f}"
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"{name} has more than {AMOUNT_INT_DIGITS} digits before the point")
    return text


def parse_amount(text: str, name: str = "Amount") -> Decimal:
    """The value of amount text ``[0-9]{1,15}.[0-9]{2}``; ``ValueError`` naming ``name``.

    Zero parses: whether it is allowed is a business rule (a ``SettleAmount``
    of 0.00 is answered ``SA``, docs/bank-drafts.md §3, not refused here).
    """
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"{name} must be an amount [0-9]{{1,15}}.[0-9]{{2}}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees it
        raise ValueError(f"{name} is not a number") from None


__all__ = [
    "AMOUNT_INT_DIGITS",
    "DRAFT_NO_DIGITS",
    "MAX_PRSNTMT_ID_LEN",
    "MAX_SEQ",
    "PARTICIPANT_DIGITS",
    "SEQ_DIGITS",
    "area_of",
    "check_draft_no",
    "check_participant",
    "check_prsntmt_id",
    "format_amount",
    "issuer_of",
    "make_draft_no",
    "parse_amount",
    "sequence_of",
]
