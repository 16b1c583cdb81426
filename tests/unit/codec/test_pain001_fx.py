"""PAIN001 foreign-currency mapping (docs/foreign-currency.md §1): BICFI, Cdtr/PstlAdr/Ctry,
ChrgBr at transaction or payment-information level, and any configured Ccy."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.codec.corplink import BusinessRuleError, CorpLinkCodec
from gateway.codec.pain001 import Pain001Item, decode_pain001
from gateway.errors import GatewayError, RetCode
from gateway.model import Batch
from gateway.routing.currencies import CurrencyTable

from .builders import request, root_of, without_signature
from .test_pain001 import SAMPLE, WITHOUT_AND_WITH_XSD, XSD_DIR, edit, without_ctrl_sums

FX = CurrencyTable()
TX3_AMOUNT = '<InstdAmt Ccy="CNY">500</InstdAmt>'
TX3_AGENT = "<BICFI>ICBKCNBJ</BICFI>"
TX3_CREDITOR = "<Nm>Delta Office Supplies Ltd</Nm>"
ADDRESS = "<Nm>Delta Office Supplies Ltd</Nm><PstlAdr><Ctry>US</Ctry></PstlAdr>"
PMT_INF_CHARGES = "</DbtrAgt>\n      <ChrgBr>DEBT</ChrgBr>"


def usd_tx3(text: str = SAMPLE, amount: str = "500", country: bool = True) -> str:
    """Transaction 3 in USD to Citibank New York."""
    text = edit(TX3_AMOUNT, f'<InstdAmt Ccy="USD">{amount}</InstdAmt>', text)
    text = edit(TX3_AGENT, "<BICFI>CITIUS33XXX</BICFI>", text)
    return edit(TX3_CREDITOR, ADDRESS, text) if country else text


def decode(text: str, *, xsd: bool = False, table: CurrencyTable = FX) -> list[Pain001Item]:
    return decode_pain001(
        root_of(text), xsd_dir=XSD_DIR if xsd else None, amount_check=table.check_amount
    )


def refusal(text: str, *, xsd: bool = False) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        decode(text, xsd=xsd)
    return caught.value


@pytest.mark.parametrize("xsd", WITHOUT_AND_WITH_XSD)
def test_a_usd_transaction_maps_bic_country_and_charges(xsd: bool) -> None:
    tx3_amount = '<InstdAmt Ccy="USD">500</InstdAmt>\n        </Amt>'
    text = edit(tx3_amount, tx3_amount + "\n        <ChrgBr>CRED</ChrgBr>", usd_tx3())
    items = decode(text, xsd=xsd)
    first, _, third = (i.transfer for i in items)
    assert (third.ccy, third.amount, third.payee_bank_code) == ("USD", Decimal("500"), "")
    assert (third.payee_bic, third.payee_country, third.chrg_br) == ("CITIUS33XXX", "US", "CRED")
    assert items[2].bic == "CITIUS33XXX"
    assert (first.ccy, first.chrg_br, first.payee_country) == ("CNY", "SHAR", None)


@pytest.mark.parametrize("xsd", WITHOUT_AND_WITH_XSD)
def test_payment_information_charges_apply_unless_the_transaction_says(xsd: bool) -> None:
    first, second = usd_tx3().split("<PmtInfId>ACME-PMT-02</PmtInfId>")
    text = first + "<PmtInfId>ACME-PMT-02</PmtInfId>" + edit("</DbtrAgt>", PMT_INF_CHARGES, second)
    charges = [i.transfer.chrg_br for i in decode(text, xsd=xsd)]
    assert charges == ["SHAR", "SHAR", "DEBT"]  # only the second payment information names one
    tx3_amount = '<InstdAmt Ccy="USD">500</InstdAmt>\n        </Amt>'
    own = edit(tx3_amount, tx3_amount + "\n        <ChrgBr>SHAR</ChrgBr>", text)
    assert [i.transfer.chrg_br for i in decode(own, xsd=xsd)][2] == "SHAR"


def test_jpy_amounts_keep_their_decimals_as_written() -> None:
    text = edit('Ccy="USD">500', 'Ccy="JPY">500', usd_tx3())
    (*_, third) = decode(text)
    assert (third.transfer.ccy, third.transfer.amount.as_tuple().exponent) == ("JPY", 0)
    error = refusal(edit('Ccy="USD">500', 'Ccy="JPY">500.00', usd_tx3()))
    assert (error.code, error.detail) == (
        RetCode.AMOUNT_INVALID,
        "InstdAmt: JPY has no minor units (transaction 3)",
    )


@pytest.mark.parametrize(
    ("text", "code", "detail"),
    [
        (usd_tx3(country=False), RetCode.SCHEMA,
         "Cdtr: missing PstlAdr/Ctry, required with BICFI (transaction 3)"),
        (edit("<Ctry>US</Ctry>", "<Ctry>USA</Ctry>", usd_tx3()), RetCode.SCHEMA,
         "Ctry: not an ISO 3166 alpha-2 code (Cdtr) (transaction 3)"),
        (edit("<Ctry>US</Ctry>", "<Ctry>us</Ctry>", usd_tx3()), RetCode.SCHEMA,
         "Ctry: not an ISO 3166 alpha-2 code (Cdtr) (transaction 3)"),
        (edit("</DbtrAgt>", "</DbtrAgt>\n      <ChrgBr>SLEV</ChrgBr>", usd_tx3()), RetCode.SCHEMA,
         "ChrgBr: expected DEBT, CRED or SHAR (PmtInf)"),
        (edit("</Amt>", "</Amt><ChrgBr>SLEV</ChrgBr>", usd_tx3()), RetCode.SCHEMA,
         "ChrgBr: expected DEBT, CRED or SHAR (transaction 1)"),
        (edit("CITIUS33XXX", "citius33xxx", usd_tx3()), RetCode.SCHEMA,
         "BICFI: not a BIC (transaction 3)"),
        (without_ctrl_sums(usd_tx3(amount="500.001")), RetCode.AMOUNT_INVALID,
         "InstdAmt: USD has 2 minor units, the amount has 3 (transaction 3)"),
        (edit('Ccy="USD"', 'Ccy="XYZ"', usd_tx3()), RetCode.AMOUNT_INVALID,
         "InstdAmt: currency XYZ is not accepted (transaction 3)"),
        (edit('Ccy="USD"', 'Ccy="usd"', usd_tx3()), RetCode.AMOUNT_INVALID,
         "InstdAmt: currency must be an ISO 4217 code (transaction 3)"),
    ],
)  # fmt: skip
def test_refusals(text: str, code: RetCode, detail: str) -> None:
    error = refusal(text)
    assert (error.code, error.detail) == (code, detail)


def test_a_cny_bicfi_without_a_country_still_decodes() -> None:
    """CNY payees named by BIC are mapped by the directory; no country needed (as before)."""
    (*_, third) = decode(SAMPLE)
    assert (third.bic, third.transfer.payee_bic, third.transfer.payee_country) == (
        "ICBKCNBJ",
        "ICBKCNBJ",
        None,
    )


def test_the_codec_judges_pain001_currencies_with_its_check() -> None:
    body = usd_tx3().split("?>", 1)[1]  # the Document without its XML declaration
    text = request(body, TrnCode="PAIN001")
    fx = CorpLinkCodec(amount_check=FX.check_amount)
    root = root_of(text)
    fx.validate(root)
    fx.check_payload(root)
    batch = fx.decode(without_signature(root), "UTF-8").body
    assert isinstance(batch, Batch)
    assert batch.items[2].transfer.ccy == "USD"
    with pytest.raises(BusinessRuleError) as info:
        CorpLinkCodec().decode(without_signature(root), "UTF-8")
    assert info.value.detail == "InstdAmt: currency must be CNY (transaction 3)"
