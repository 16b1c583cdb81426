"""The Code (密押): a 16-digit MAC over a draft's fixed fields (docs/bank-drafts.md §1).

HMAC-SHA256, under the key ring's ``draft`` key, over the UTF-8 bytes of
``DraftNo|Amount|IssueDate|PayeeName`` (Amount with exactly two decimals,
IssueDate ``YYYY-MM-DD``, PayeeName as applied for); the first 8 bytes of the
MAC as an unsigned big-endian integer, modulo 10^16, zero-padded to 16
digits.

The keys come through :class:`DraftKeys`, so the ring can supply them later:
the current key makes new Codes, and a Code verifies under any key still kept
(docs/bank-drafts.md §5).  Neither a Code nor a key is ever logged or put in
an exception message (docs/architecture.md §7, principle 8).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Final, Protocol

from gateway.drafts.numbers import check_draft_no, format_amount

CODE_DIGITS: Final = 16
"""docs/bank-drafts.md §1: the Code has 16 decimal digits."""

MIN_KEY_BYTES: Final = 32
"""A ``draft`` key is at least as long as the SHA-256 output (RFC 2104 §3)."""

_MODULUS: Final = 10**CODE_DIGITS
_CODE = re.compile(r"[0-9]{16}")
_PREFIX_BYTES: Final = 8


@dataclass(frozen=True, slots=True)
class DraftKey:
    """One ``draft`` key version: its id and its secret (never in ``repr``)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"draft key {self.key_id}: at least {MIN_KEY_BYTES} bytes")


class DraftKeys(Protocol):
    """Where the Code's keys come from: the key ring's ``draft`` role, later.

    ``current(now)`` makes new Codes; ``kept(now)`` is every key a Code may
    still verify under at ``now`` (the current one first); ``by_id`` finds the
    key a register entry's Code was made under, to show that Code again
    (STATUS) without storing it (docs/bank-drafts.md §1).
    """

    def current(self, now: datetime) -> DraftKey: ...

    def kept(self, now: datetime) -> tuple[DraftKey, ...]: ...

    def by_id(self, key_id: str) -> DraftKey | None: ...


class CodeFields(Protocol):
    """The register fields the Code covers (a :class:`~gateway.drafts.records.DraftEntry`)."""

    @property
    def draft_no(self) -> str: ...

    @property
    def amount(self) -> Decimal: ...

    @property
    def issue_date(self) -> date: ...

    @property
    def payee_name(self) -> str: ...


def code_message(draft_no: str, amount: Decimal, issue_date: date, payee_name: str) -> bytes:
    """The exact bytes the MAC covers: ``DraftNo|Amount|IssueDate|PayeeName`` in UTF-8.

    ``|`` cannot occur in the DraftNo, the amount or the date, so only the
    last field could contain one, and the split stays unambiguous.
    """
    if not payee_name:
        raise ValueError("PayeeName is empty")
    text = "|".join(
        (check_draft_no(draft_no), format_amount(amount), issue_date.isoformat(), payee_name)
    )
    return text.encode("utf-8")


def make_code(key: DraftKey, fields: CodeFields) -> str:
    """The 16-digit Code of ``fields`` under ``key`` (docs/bank-drafts.md §1)."""
    message = code_message(fields.draft_no, fields.amount, fields.issue_date, fields.payee_name)
    mac = hmac.new(key.secret, message, hashlib.sha256).digest()
    value = int.from_bytes(mac[:_PREFIX_BYTES], "big", signed=False) % _MODULUS
    return f"{value:0{CODE_DIGITS}d}"


def is_code_text(code: str) -> bool:
    """True when ``code`` has the Code's form: 16 ASCII digits."""
    return _CODE.fullmatch(code) is not None


def verify(code: str, fields: CodeFields, keys: Iterable[DraftKey]) -> bool:
    """True when ``code`` is the Code of ``fields`` under any of ``keys``.

    ``keys`` is what the ring keeps at the moment of the check
    (``DraftKeys.kept(now)``).  Every key is tried, and each comparison is
    constant-time, so the answer's timing does not tell which key or which
    digit was wrong.
    """
    if not is_code_text(code):
        return False
    expected = code.encode("ascii")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(make_code(key, fields).encode("ascii"), expected)
    return matched


__all__ = [
    "CODE_DIGITS",
    "MIN_KEY_BYTES",
    "CodeFields",
    "DraftKey",
    "DraftKeys",
    "code_message",
    "is_code_text",
    "make_code",
    "verify",
]
