"""The foreign-currency fields every payment codec shares (docs/foreign-currency.md §1).

A ``Transfer``, a PAYROLL ``Item``, a pain.001 ``CdtTrfTxInf`` and an MT101
sequence B may be in a currency other than CNY and name the payee bank by
BIC, with the payee's country and who bears the charges.  The shapes are
schema rules (1003 naming the element); which currencies the bank takes, and
how many decimals each allows, come from the configuration (``fx.currencies``),
which a codec cannot see: the caller hands it in as an :data:`AmountCheck`
(``CurrencyTable.check_amount``), and the codecs run it where they turn text
into a ``Decimal`` so that its 4004 takes the place of any other amount error.

A foreign amount keeps its exponent: ``1500.00`` yen must reach the check as
two decimals to be refused (a yen has no minor unit), so it is never
quantized; a CNY amount keeps its two places as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from gateway.errors import GatewayError, RetCode

HOME_CURRENCY: Final = "CNY"

AmountCheck = Callable[[str, Decimal], None]
"""Raises ``GatewayError`` 4004 for a currency the gateway does not take or an amount
with more decimals than its currency has minor units; returns otherwise."""

BIC: Final = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
"""docs/foreign-currency.md §1 ``PayeeBIC``: 8 or 11 characters, upper case."""
COUNTRY: Final = re.compile(r"[A-Z]{2}")
"""ISO 3166-1 alpha-2, as written (upper case)."""
CHARGE_BEARERS: Final = frozenset({"DEBT", "CRED", "SHAR"})
DEFAULT_CHARGE_BEARER: Final = "SHAR"

MAX_DECIMALS: Final = 4
"""No ISO 4217 currency has more minor units; the configured ones are judged by the check."""
_FOREIGN_AMOUNT: Final = re.compile(rf"[0-9]{{1,15}}(?:\.[0-9]{{1,{MAX_DECIMALS}}})?")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")


def cny_only(ccy: str, amount: Decimal) -> None:
    """The check without a configured currency table: CNY only (docs/protocol.md §4)."""
    if ccy != HOME_CURRENCY:
        raise GatewayError(RetCode.AMOUNT_INVALID, "currency must be CNY")


def foreign_amount(text: str, ccy: str, check: AmountCheck) -> Decimal:
    """A non-CNY amount as written, or ``GatewayError`` 4004 whose detail names no element.

    The currency code's shape first (so a refusal never echoes junk), then the
    text (ASCII digits, at most 15 before the point and ``MAX_DECIMALS``
    after), greater than zero, then ``check`` with the exponent as written.
    """
    if _CURRENCY.fullmatch(ccy) is None:
        raise GatewayError(RetCode.AMOUNT_INVALID, "currency must be an ISO 4217 code")
    if _FOREIGN_AMOUNT.fullmatch(text) is None:
        raise GatewayError(
            RetCode.AMOUNT_INVALID, f"up to 15 digits and at most {MAX_DECIMALS} decimals"
        )
    value = Decimal(text)
    if value <= 0:
        raise GatewayError(RetCode.AMOUNT_INVALID, "must be greater than zero")
    check(ccy, value)
    return value


def check_payee_fields(
    bank_code: str | None, bic: str | None, country: str | None, chrg_br: str | None
) -> None:
    """docs/foreign-currency.md §1's rules across the payee fields (1003 naming the element).

    The payee bank is named by ``PayeeBankCode`` or ``PayeeBIC`` (or both); a
    BIC comes with ``PayeeCountry``; each field has its shape.  ``PayeeBIC``
    required for a foreign payment to another bank is the router's question
    (it alone knows which BICs are ours).
    """
    if bic is not None and BIC.fullmatch(bic) is None:
        raise GatewayError(RetCode.SCHEMA, "PayeeBIC: invalid value, expected a BIC of 8 or 11")
    if country is not None and COUNTRY.fullmatch(country) is None:
        raise GatewayError(
            RetCode.SCHEMA, "PayeeCountry: invalid value, expected an ISO 3166 alpha-2 code"
        )
    if chrg_br is not None and chrg_br not in CHARGE_BEARERS:
        raise GatewayError(RetCode.SCHEMA, "ChrgBr: invalid value, expected DEBT, CRED or SHAR")
    if bank_code is None and bic is None:
        raise GatewayError(RetCode.SCHEMA, "PayeeBankCode: missing (or PayeeBIC)")
    if bic is not None and country is None:
        raise GatewayError(RetCode.SCHEMA, "PayeeCountry: missing, required with PayeeBIC")
