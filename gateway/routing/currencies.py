"""The currencies the gateway accepts, and how many decimals each amount may have.

docs/foreign-currency.md §2: ``fx.currencies`` maps an ISO 4217 code to its
minor units (CNY 2, USD 2, EUR 2, HKD 2, GBP 2, JPY 0 by default).  A code
outside the table, or an amount written with more digits after the point
than its currency has minor units, is refused with 4004 before any routing:
a yen has no sen on the wire, so ``1500.00`` JPY is a malformed amount, not
fifteen hundred yen.

The check reads the amount as written: ``Decimal`` keeps its exponent, so
``Decimal("1500.00")`` has two decimals and ``Decimal("1500")`` none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from gateway.errors import GatewayError, RetCode

HOME_CURRENCY: Final = "CNY"
"""The currency the clearing engines (HVPS, BEPS) carry; it is always in the table."""

DEFAULT_MINOR_UNITS: Final[Mapping[str, int]] = MappingProxyType(
    {"CNY": 2, "USD": 2, "EUR": 2, "HKD": 2, "GBP": 2, "JPY": 0}
)
"""``fx.currencies`` when the configuration does not change it."""

MAX_MINOR_UNITS: Final = 4
"""ISO 4217 has no currency with more than four minor units (CLF, UYW)."""

_CODE: Final = re.compile(r"\A[A-Z]{3}\Z")


def is_currency_code(text: str) -> bool:
    """Three upper-case ASCII letters: the shape of an ISO 4217 alphabetic code."""
    return _CODE.match(text) is not None


def decimals(amount: Decimal) -> int:
    """Digits after the decimal point as written (``1500.00`` → 2, ``1500`` → 0)."""
    exponent = amount.as_tuple().exponent
    if not amount.is_finite() or not isinstance(exponent, int):
        raise ValueError("not a finite amount")  # NaN or infinity: no digits to count
    return max(0, -exponent)


class CurrencyTable:
    """An immutable ``fx.currencies`` table: ISO 4217 code → minor units."""

    __slots__ = ("_units",)

    def __init__(self, minor_units: Mapping[str, int] = DEFAULT_MINOR_UNITS) -> None:
        for code, units in minor_units.items():
            if not is_currency_code(code):
                raise ValueError(f"currency {code!r} must be an ISO 4217 code (3 capital letters)")
            if isinstance(units, bool) or units not in range(MAX_MINOR_UNITS + 1):
                raise ValueError(f"currency {code}: minor units must be 0..{MAX_MINOR_UNITS}")
        if minor_units.get(HOME_CURRENCY) != 2:
            raise ValueError(f"currency {HOME_CURRENCY} must be listed, with 2 minor units")
        self._units: Mapping[str, int] = MappingProxyType(dict(minor_units))

    def minor_units(self, ccy: str) -> int:
        """The currency's minor units; 4004 for a code outside the table."""
        units = self._units.get(ccy)
        if units is None:
            raise GatewayError(RetCode.AMOUNT_INVALID, f"currency {ccy} is not accepted")
        return units

    def check_amount(self, ccy: str, amount: Decimal) -> None:
        """Refuse (4004) an unknown currency or more decimals than its minor units."""
        units = self.minor_units(ccy)
        try:
            written = decimals(amount)
        except ValueError:
            raise GatewayError(RetCode.AMOUNT_INVALID, "Amount is not a number") from None
        if written <= units:
            return
        if units == 0:
            raise GatewayError(RetCode.AMOUNT_INVALID, f"{ccy} has no minor units")
        raise GatewayError(
            RetCode.AMOUNT_INVALID, f"{ccy} has {units} minor units, the amount has {written}"
        )

    def __contains__(self, ccy: object) -> bool:
        return ccy in self._units

    def __iter__(self) -> Iterator[str]:
        return iter(self._units)

    def __len__(self) -> int:
        return len(self._units)

    def as_dict(self) -> dict[str, int]:
        """The table as a plain mapping (logs, docs)."""
        return dict(self._units)

    def __repr__(self) -> str:
        body = ", ".join(f"{code} {units}" for code, units in self._units.items())
        return f"<CurrencyTable {body}>"
