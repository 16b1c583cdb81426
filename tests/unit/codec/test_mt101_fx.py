"""MT101 foreign-currency mapping (docs/foreign-currency.md §1): 32B in any configured
currency, 57A the BIC, 59 the country, 71A the charge bearer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.codec.corplink import BusinessRuleError, CorpLinkCodec
from gateway.codec.mt101 import parse_mt101, to_transfers
from gateway.errors import GatewayError, RetCode
from gateway.model import Batch, Transfer
from gateway.routing.currencies import CurrencyTable

from .builders import request, root_of, without_signature
from .test_mt101 import LF, edit

FX = CurrencyTable()
TX3 = ":32B:CNY500,00\n:57A:ICBKCNBJ\n:59:/0200001234567890\nDELTA OFFICE SUPPLIES LTD\n"


def with_tx3(
    amount: str = "USD500,00", bic: str = "CITIUS33XXX", address: str = "", charges: str = "SHA"
) -> str:
    """Transaction 3 in another currency, to another bank, with the given 71A."""
    text = edit(
        TX3,
        f":32B:{amount}\n:57A:{bic}\n:59:/0200001234567890\nDELTA OFFICE SUPPLIES LTD\n{address}",
    )
    return edit(
        ":70:ORDER 77\nSTATIONERY\n:71A:SHA", f":70:ORDER 77\nSTATIONERY\n:71A:{charges}", text
    )


def transfers(text: str) -> list[Transfer]:
    return [i.transfer for i in to_transfers(parse_mt101(text, amount_check=FX.check_amount))]


def refusal(text: str) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        parse_mt101(text, amount_check=FX.check_amount)
    return caught.value


def test_a_usd_transaction_maps_currency_bic_country_and_charges() -> None:
    third = transfers(with_tx3())[2]
    assert (third.ccy, third.amount, third.payee_bank_code) == ("USD", Decimal("500.00"), "")
    assert (third.payee_bic, third.payee_country, third.chrg_br) == ("CITIUS33XXX", "US", "SHAR")


def test_the_cny_sample_keeps_its_mapping() -> None:
    first, second, third = transfers(LF)
    assert [t.ccy for t in (first, second, third)] == ["CNY"] * 3
    assert [t.chrg_br for t in (first, second, third)] == ["SHAR", "DEBT", "SHAR"]
    assert (first.payee_bic, first.payee_country) == (None, None)  # 57D, no country line
    assert (third.payee_bic, third.payee_country) == ("ICBKCNBJ", "CN")  # the BIC's 5-6
    assert str(second.amount) == "80000.00"  # CNY keeps its two places


@pytest.mark.parametrize(("line", "country"), [("HK/KOWLOON", "HK"), ("GB/", "GB")])
def test_a_country_line_in_59_wins_over_the_bic(line: str, country: str) -> None:
    third = transfers(with_tx3(address=f"{line}\n"))[2]
    assert third.payee_country == country


@pytest.mark.parametrize(
    "address",
    [
        "5TH AVENUE NEW YORK\n",  # no "CC/" start
        "USA/NEW YORK\n",  # three letters
        "us/new york\n",  # lower case
    ],
)
def test_otherwise_the_country_is_the_bics(address: str) -> None:
    assert transfers(with_tx3(address=address))[2].payee_country == "US"


def test_the_name_line_is_never_read_as_a_country() -> None:
    text = edit("DELTA OFFICE SUPPLIES LTD\n", "DE/LTA SUPPLIES\n", with_tx3())
    third = transfers(text)[2]
    assert (third.payee_name, third.payee_country) == ("DE/LTA SUPPLIES", "US")


@pytest.mark.parametrize(("code", "bearer"), [("OUR", "DEBT"), ("BEN", "CRED"), ("SHA", "SHAR")])
def test_71a_maps_to_chrg_br(code: str, bearer: str) -> None:
    assert transfers(with_tx3(charges=code))[2].chrg_br == bearer


def test_jpy_without_decimals_is_kept_as_written() -> None:
    third = transfers(with_tx3(amount="JPY1500,", bic="MHCBJPJT"))[2]
    assert (third.ccy, str(third.amount), third.payee_country) == ("JPY", "1500", "JP")


@pytest.mark.parametrize(
    ("amount", "detail"),
    [
        ("JPY1500,00", "field 32B: JPY has no minor units (transaction 3)"),
        ("JPY1500,5", "field 32B: JPY has no minor units (transaction 3)"),
        ("USD1,005", "field 32B: USD has 2 minor units, the amount has 3 (transaction 3)"),
        ("XYZ10,", "field 32B: currency XYZ is not accepted (transaction 3)"),
        ("USD0,", "field 32B: must be greater than zero (transaction 3)"),
        ("USD1,23456", "field 32B: up to 15 digits and at most 4 decimals (transaction 3)"),
    ],
)
def test_foreign_amount_rules_are_4004(amount: str, detail: str) -> None:
    error = refusal(with_tx3(amount=amount))
    assert (error.code, error.detail) == (RetCode.AMOUNT_INVALID, detail)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (with_tx3(bic="citius33xxx"), "field 57A: expected a BIC (transaction 3)"),
        (with_tx3(amount="usd500,00"), "field 32B: expected currency and amount"),
        (with_tx3(charges="SLEV"), "field 71A: expected BEN, OUR or SHA (transaction 3)"),
    ],
)
def test_malformed_fields_are_1003(text: str, detail: str) -> None:
    error = refusal(text)
    assert error.code is RetCode.SCHEMA
    assert (error.detail or "").startswith(detail)


def test_the_codec_judges_mt101_currencies_with_its_check() -> None:
    text = request(f"<MT><![CDATA[{with_tx3()}]]></MT>", TrnCode="MT101")
    root = root_of(text)
    fx = CorpLinkCodec(amount_check=FX.check_amount)
    fx.validate(root)
    fx.check_payload(root)
    batch = fx.decode(without_signature(root), "UTF-8").body
    assert isinstance(batch, Batch)
    assert (batch.items[2].transfer.ccy, batch.items[2].bic) == ("USD", "CITIUS33XXX")
    with pytest.raises(BusinessRuleError) as info:  # no currency table: CNY only
        CorpLinkCodec().decode(without_signature(root), "UTF-8")
    assert info.value.detail == "field 32B: currency must be CNY (transaction 3)"
