"""Currencies and their minor units (docs/foreign-currency.md §2): 4004 for an unknown
code or an amount written with more decimals than the currency has."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.errors import GatewayError, RetCode
from gateway.routing.currencies import DEFAULT_MINOR_UNITS, CurrencyTable, decimals

TABLE = CurrencyTable()


def refusal(ccy: str, amount: str) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        TABLE.check_amount(ccy, Decimal(amount))
    assert info.value.code is RetCode.AMOUNT_INVALID
    return info.value


def test_the_default_table() -> None:
    assert dict(DEFAULT_MINOR_UNITS) == {
        "CNY": 2,
        "USD": 2,
        "EUR": 2,
        "HKD": 2,
        "GBP": 2,
        "JPY": 0,
    }
    assert TABLE.as_dict() == dict(DEFAULT_MINOR_UNITS)
    assert "JPY" in TABLE and "CHF" not in TABLE and len(TABLE) == 6


@pytest.mark.parametrize(
    ("ccy", "amount"),
    [
        ("JPY", "1500"),
        ("JPY", "1"),
        ("USD", "1.00"),
        ("USD", "1.5"),
        ("USD", "1"),
        ("EUR", "0.01"),
        ("CNY", "49999.99"),
        ("GBP", "1E+3"),  # written without decimals
    ],
)
def test_amounts_within_the_minor_units_pass(ccy: str, amount: str) -> None:
    TABLE.check_amount(ccy, Decimal(amount))


def test_yen_has_no_minor_units() -> None:
    assert refusal("JPY", "1500.00").detail == "JPY has no minor units"
    assert refusal("JPY", "1500.0").detail == "JPY has no minor units"


def test_three_decimals_for_a_two_decimal_currency() -> None:
    assert refusal("USD", "1.005").detail == "USD has 2 minor units, the amount has 3"
    refusal("CNY", "0.001")


def test_trailing_zeros_count_as_written() -> None:
    # 1.000 is a whole dollar, but the client wrote three decimals.
    refusal("USD", "1.000")


@pytest.mark.parametrize("ccy", ["CHF", "usd", "XXX", "", "US", "USDD"])
def test_a_code_outside_the_table_is_4004(ccy: str) -> None:
    assert "is not accepted" in (refusal(ccy, "1.00").detail or "")


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_a_non_finite_amount_is_4004(amount: str) -> None:
    refusal("USD", amount)


def test_decimals_reads_the_exponent() -> None:
    assert decimals(Decimal("1500")) == 0
    assert decimals(Decimal("1500.00")) == 2
    assert decimals(Decimal("15E2")) == 0


def test_a_configured_table() -> None:
    table = CurrencyTable({"CNY": 2, "CHF": 2, "KWD": 3})
    table.check_amount("KWD", Decimal("1.234"))
    table.check_amount("CHF", Decimal("10.50"))
    with pytest.raises(GatewayError):
        table.check_amount("USD", Decimal("1.00"))


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"USD": 2}, "CNY must be listed, with 2 minor units"),
        ({"CNY": 0}, "CNY must be listed, with 2 minor units"),
        ({"CNY": 2, "usd": 2}, "must be an ISO 4217 code"),
        ({"CNY": 2, "US1": 2}, "must be an ISO 4217 code"),
        ({"CNY": 2, "USD": 5}, "minor units must be 0..4"),
        ({"CNY": 2, "USD": -1}, "minor units must be 0..4"),
        ({"CNY": 2, "USD": True}, "minor units must be 0..4"),
    ],
)
def test_a_bad_table_is_refused(table: dict[str, int], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CurrencyTable(table)
