"""CorpLink foreign-currency fields (docs/foreign-currency.md §1): PayeeBIC, PayeeCountry,
ChrgBr, any configured Ccy, and the response's Uetr, REVIEW and SWIFT."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from gateway.codec.corplink import BusinessRuleError, CorpLinkCodec
from gateway.codec.corplink_render import render_response
from gateway.codec.xmlparse import parse_body
from gateway.errors import GatewayError, RetCode
from gateway.model import Batch, Engine, State, StatusView, Transfer
from gateway.routing.currencies import CurrencyTable
from gateway.sim import erp

from .builders import assert_valid, request, response, transfer, without_signature
from .test_payroll import batch, item

FX = CurrencyTable()
"""fx.currencies' default: CNY, USD, EUR, HKD, GBP 2; JPY 0."""
UETR = "8a562c67-ca16-48ba-b074-65581be6f011"


@pytest.fixture(scope="module")
def fx_codec() -> CorpLinkCodec:
    """The codec as the daemon builds it with the configured currencies."""
    return CorpLinkCodec(amount_check=FX.check_amount)


def fields(
    bic: str | None = "CITIUS33XXX", country: str | None = "US", chrg: str | None = None
) -> str:
    out = ""
    for name, value in (("PayeeBIC", bic), ("PayeeCountry", country), ("ChrgBr", chrg)):
        if value is not None:
            out += f"<{name}>{value}</{name}>"
    return out


def fx_transfer(
    amount: str = "1500.50", ccy: str = "USD", extra: str | None = None, **kw: str
) -> str:
    return transfer(amount=amount, ccy=ccy, extra=fields() if extra is None else extra, **kw)


def admit(codec: CorpLinkCodec, text: str) -> etree._Element:
    """The schema stage as the desk runs it: validate, then the payload rules (1003)."""
    root = parse_body(text.encode()).root
    codec.validate(root)
    codec.check_payload(root)
    return root


def decode(codec: CorpLinkCodec, body: str, trn: str = "PAY") -> Transfer | Batch:
    root = admit(codec, request(body, TrnCode=trn))
    decoded = codec.decode(without_signature(root), "UTF-8").body
    assert isinstance(decoded, Transfer | Batch)
    return decoded


def schema_refusal(codec: CorpLinkCodec, body: str, trn: str = "PAY") -> GatewayError:
    with pytest.raises(GatewayError) as info:
        admit(codec, request(body, TrnCode=trn))
    assert info.value.code is RetCode.SCHEMA
    return info.value


def amount_refusal(codec: CorpLinkCodec, body: str, trn: str = "PAY") -> BusinessRuleError:
    with pytest.raises(BusinessRuleError) as info:
        decode(codec, body, trn)
    assert info.value.code is RetCode.AMOUNT_INVALID
    return info.value


# -- decoding the new fields ---------------------------------------------------------------


def test_a_usd_transfer_to_another_bank_by_bic(fx_codec: CorpLinkCodec) -> None:
    body = fx_transfer(extra=fields(chrg="DEBT"), PayeeBankCode="102100099996")
    got = decode(fx_codec, body)
    assert isinstance(got, Transfer)
    assert (got.ccy, got.amount) == ("USD", Decimal("1500.50"))
    assert (got.payee_bic, got.payee_country, got.chrg_br) == ("CITIUS33XXX", "US", "DEBT")
    assert got.payee_bank_code == "102100099996"


def test_payee_bank_code_may_be_left_out_when_the_bic_is_given(fx_codec: CorpLinkCodec) -> None:
    inner = fx_transfer(extra=fields("DEUTDEFF", "DE", "CRED"), ccy="EUR", amount="7")
    body = inner.replace("<PayeeBankCode>102100099996</PayeeBankCode>", "")
    got = decode(fx_codec, body)
    assert isinstance(got, Transfer)
    assert (got.payee_bank_code, got.payee_bic, got.payee_country) == ("", "DEUTDEFF", "DE")
    assert (got.ccy, got.amount, got.chrg_br) == ("EUR", Decimal("7"), "CRED")


def test_chrg_br_defaults_to_shar_and_cny_transfers_are_unchanged(fx_codec: CorpLinkCodec) -> None:
    got = decode(fx_codec, transfer(amount="1234.5"))
    assert isinstance(got, Transfer)
    assert (got.ccy, got.amount, str(got.amount)) == ("CNY", Decimal("1234.50"), "1234.50")
    assert (got.payee_bic, got.payee_country, got.chrg_br) == (None, None, "SHAR")


def test_a_cny_transfer_may_name_the_payee_bank_by_bic(fx_codec: CorpLinkCodec) -> None:
    body = transfer(extra=fields("ICBKCNBJ", "CN")).replace(
        "<PayeeBankCode>102100099996</PayeeBankCode>", ""
    )
    got = decode(fx_codec, body)
    assert isinstance(got, Transfer)
    assert (got.payee_bank_code, got.payee_bic, got.payee_country) == ("", "ICBKCNBJ", "CN")


def test_payroll_items_carry_the_fields_and_their_currency(fx_codec: CorpLinkCodec) -> None:
    body = batch(
        item(1, "100.00"),
        item(2, "2500", extra=fields("MHCBJPJT", "JP", "SHAR")).replace('Ccy="CNY"', 'Ccy="JPY"'),
    )
    got = decode(fx_codec, body, "PAYROLL")
    assert isinstance(got, Batch)
    first, second = (i.transfer for i in got.items)
    assert (first.ccy, first.payee_bic) == ("CNY", None)
    assert (second.ccy, second.amount, second.payee_bic, second.payee_country) == (
        "JPY",
        Decimal("2500"),
        "MHCBJPJT",
        "JP",
    )


# -- amounts as written (4004) --------------------------------------------------------------


def test_jpy_1500_is_valid_and_keeps_no_decimals(fx_codec: CorpLinkCodec) -> None:
    got = decode(fx_codec, fx_transfer(amount="1500", ccy="JPY", extra=fields("MHCBJPJT", "JP")))
    assert isinstance(got, Transfer)
    assert got.amount.as_tuple().exponent == 0


def test_jpy_1500_00_reaches_the_check_unnormalised() -> None:
    """docs/foreign-currency.md §1: JPY ``1500.00`` is not valid — the check must see 2 decimals."""
    seen: list[tuple[str, Decimal]] = []

    def record(ccy: str, amount: Decimal) -> None:
        seen.append((ccy, amount))
        FX.check_amount(ccy, amount)

    codec = CorpLinkCodec(amount_check=record)
    error = amount_refusal(codec, fx_transfer(amount="1500.00", ccy="JPY"))
    assert error.detail == "Amount: JPY has no minor units"
    assert error.currencies == frozenset({"JPY"})
    ((ccy, amount),) = seen
    assert ccy == "JPY"
    assert str(amount) == "1500.00"
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("amount", "ccy", "detail"),
    [
        ("1.005", "USD", "Amount: USD has 2 minor units, the amount has 3"),
        ("1.000", "USD", "Amount: USD has 2 minor units, the amount has 3"),
        ("10", "XYZ", "Amount: currency XYZ is not accepted"),
        ("10", "usd", "Amount: currency must be an ISO 4217 code"),
        ("10", "US", "Amount: currency must be an ISO 4217 code"),
        ("10", "", "Amount: currency must be an ISO 4217 code"),
        ("10", "美元", "Amount: currency must be an ISO 4217 code"),
        ("1.23456", "USD", "Amount: up to 15 digits and at most 4 decimals"),
        ("1e3", "USD", "Amount: up to 15 digits and at most 4 decimals"),
        ("NaN", "USD", "Amount: up to 15 digits and at most 4 decimals"),
        ("-5", "USD", "Amount: up to 15 digits and at most 4 decimals"),
        ("\uff11\uff12", "USD", "Amount: up to 15 digits and at most 4 decimals"),
        ("0.00", "USD", "Amount: must be greater than zero"),
    ],
)
def test_foreign_amount_rules_are_4004(
    fx_codec: CorpLinkCodec, amount: str, ccy: str, detail: str
) -> None:
    assert amount_refusal(fx_codec, fx_transfer(amount=amount, ccy=ccy)).detail == detail


def test_a_junk_currency_is_never_echoed(fx_codec: CorpLinkCodec) -> None:
    junk = "X" * 200 + "&lt;script&gt;"
    detail = amount_refusal(fx_codec, fx_transfer(ccy=junk)).detail or ""
    assert "XXXX" not in detail and "script" not in detail


def test_a_configured_currency_with_three_minor_units() -> None:
    codec = CorpLinkCodec(amount_check=CurrencyTable({"CNY": 2, "BHD": 3}).check_amount)
    got = decode(codec, fx_transfer(amount="1.234", ccy="BHD", extra=fields("NBOBBHBM", "BH")))
    assert isinstance(got, Transfer)
    assert got.amount == Decimal("1.234")
    assert amount_refusal(codec, fx_transfer(ccy="USD")).detail == (
        "Amount: currency USD is not accepted"
    )


def test_without_a_currency_table_the_codec_takes_cny_only(codec: CorpLinkCodec) -> None:
    assert amount_refusal(codec, fx_transfer()).detail == "Amount: currency must be CNY"


def test_a_payroll_item_in_a_foreign_currency_names_its_seqno(fx_codec: CorpLinkCodec) -> None:
    body = batch(
        item(1, "100.00"),
        item(2, "100.00", extra=fields("MHCBJPJT", "JP")).replace('Ccy="CNY"', 'Ccy="JPY"'),
    )
    error = amount_refusal(fx_codec, body, "PAYROLL")
    assert error.detail == "Amount: JPY has no minor units (SeqNo 2)"
    assert error.amounts == (Decimal("100.00"),)
    assert error.currencies == frozenset({"CNY", "JPY"})


# -- the payee fields' rules (1003, in the schema stage) -------------------------------------


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        (fields("citius33xxx", "US"), "PayeeBIC: invalid value"),  # 11 characters, lower case
        (fields("CITIUS33X", "US"), "PayeeBIC: invalid value"),  # 9 characters
        (fields("CITI US33", "US"), "PayeeBIC: invalid value"),
        (fields("1ITIUS33", "US"), "PayeeBIC: invalid value"),  # digits only after the 6th
        (fields("CITIUS33", "USA"), "PayeeCountry: invalid value"),  # alpha-3
        (fields("CITIUS33", "us"), "PayeeCountry: invalid value"),
        (fields("CITIUS33", "U1"), "PayeeCountry: invalid value"),
        (fields("CITIUS33", "US", "SLEV"), "ChrgBr: invalid value"),
        (fields("CITIUS33", "US", "shar"), "ChrgBr: invalid value"),
        (fields("CITIUS33", "US", "<x/>"), "ChrgBr: unexpected content"),
        (fields("CITIUS33", None), "PayeeCountry: missing, required with PayeeBIC"),
        (fields(None, "US", "DEBT"), None),  # a country alone harms no one
        ("<ChrgBr>SHAR</ChrgBr><PayeeBIC>CITIUS33</PayeeBIC>", "PayeeBIC: unexpected element"),
    ],
)
def test_payee_fields_are_checked_in_the_schema_stage(
    fx_codec: CorpLinkCodec, extra: str, detail: str | None
) -> None:
    body = fx_transfer(extra=extra)
    if detail is None:
        admit(fx_codec, request(body))
        return
    assert (schema_refusal(fx_codec, body).detail or "").startswith(detail)


def test_neither_bank_code_nor_bic_is_1003_naming_the_element(fx_codec: CorpLinkCodec) -> None:
    body = fx_transfer(extra="").replace("<PayeeBankCode>102100099996</PayeeBankCode>", "")
    assert schema_refusal(fx_codec, body).detail == "PayeeBankCode: missing (or PayeeBIC)"


def test_payee_rules_come_before_the_amount(fx_codec: CorpLinkCodec) -> None:
    """docs/protocol.md §8: 1003 before 4004, even with a bad amount in the same request."""
    error = schema_refusal(
        fx_codec, fx_transfer(amount="1500.00", ccy="JPY", extra=fields(country=None))
    )
    assert error.detail == "PayeeCountry: missing, required with PayeeBIC"


def test_a_payroll_item_breaking_a_payee_rule_names_its_seqno(fx_codec: CorpLinkCodec) -> None:
    second = item(2, extra=fields("CITIUS33", None)).replace(
        "<PayeeBankCode>105100000017</PayeeBankCode>", ""
    )
    error = schema_refusal(fx_codec, batch(item(1), second), "PAYROLL")
    assert error.detail == "PayeeCountry: missing, required with PayeeBIC (SeqNo 2)"
    third = item(3, extra="").replace("<PayeeBankCode>105100000017</PayeeBankCode>", "")
    error = schema_refusal(fx_codec, batch(item(1), item(2), third), "PAYROLL")
    assert error.detail == "PayeeBankCode: missing (or PayeeBIC) (SeqNo 3)"


# -- responses: Uetr, REVIEW, SWIFT ---------------------------------------------------------


def test_status_with_review_swift_and_uetr_matches_the_xsd(schema: etree.XMLSchema) -> None:
    view = StatusView(state=State.REVIEW, engine=Engine.SWIFT, work_date=None, uetr=UETR)
    root = render_response(response(gw_ref="GW20261127000001", status=view))
    status = root.find("{urn:corplink:1}Body/{urn:corplink:1}Status")
    assert status is not None
    assert [(c.tag.split("}")[1], c.text) for c in status] == [
        ("State", "REVIEW"),
        ("Engine", "SWIFT"),
        ("Uetr", UETR),
    ]
    assert_valid(schema, root)


def test_batch_items_carry_their_uetr(schema: etree.XMLSchema) -> None:
    views = (
        StatusView(State.SENT, Engine.SWIFT, None, seq_no=1, uetr=UETR),
        StatusView(State.QUEUED, Engine.HVPS, None, seq_no=2),
    )
    root = render_response(response(trn_code="PAYROLL", items=views))
    uetrs = [el.text for el in root.iter("{urn:corplink:1}Uetr")]
    assert uetrs == [UETR]
    assert_valid(schema, root)


@pytest.mark.parametrize(
    "bad", ["", "8A562C67-CA16-48BA-B074-65581BE6F011", "not-a-uuid", "x" * 5000]
)
def test_a_malformed_uetr_is_left_out(schema: etree.XMLSchema, bad: str) -> None:
    view = StatusView(state=State.SENT, engine=Engine.SWIFT, work_date=None, uetr=bad)
    root = render_response(response(status=view))
    assert root.find(".//{urn:corplink:1}Uetr") is None
    assert_valid(schema, root)


# -- the ERP simulator writes the fields (for the end-to-end tests) -------------------------


@pytest.mark.parametrize(
    ("payment", "expected"),
    [
        (
            erp.Payment("6222000000000001", "payer", "12345678", "payee", "", Decimal("1500"),
                        ccy="JPY", payee_bic="MHCBJPJT", payee_country="JP", chrg_br="DEBT"),
            ("", "JPY", "1500", "MHCBJPJT", "JP", "DEBT"),
        ),
        (
            erp.Payment("6222000000000001", "payer", "12345678", "payee", "102100099996",
                        Decimal("12.5")),
            ("102100099996", "CNY", "12.50", None, None, "SHAR"),
        ),
    ],
)  # fmt: skip
def test_erp_payments_carry_the_foreign_currency_fields(
    fx_codec: CorpLinkCodec, payment: erp.Payment, expected: tuple[object, ...]
) -> None:
    body = etree.tostring(erp.transfer_body(payment), encoding="unicode")
    body = body.replace(' xmlns="urn:corplink:1"', "")
    got = decode(fx_codec, body)
    assert isinstance(got, Transfer)
    seen = (got.payee_bank_code, got.ccy, str(got.amount), got.payee_bic, got.payee_country)
    assert (*seen, got.chrg_br) == expected
