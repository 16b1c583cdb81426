"""MT101: FIN text becomes transfers (corplink.md §4, §8: malformed blocks → 1003 naming the field)."""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec import mt101
from gateway.codec.mt101 import Party, parse_mt101, to_transfers
from gateway.errors import GatewayError, RetCode
from gateway.model import Priority
from gateway.paths import data_root

SAMPLE_BYTES = (data_root() / "codecs" / "samples" / "mt101.txt").read_bytes()
SAMPLE = SAMPLE_BYTES.decode("ascii")
LF = SAMPLE.replace("\r\n", "\n")


def edit(old: str, new: str, text: str = LF) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def refusal(text: str) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        parse_mt101(text)
    return caught.value


# -- the valid sample -------------------------------------------------------------------


def test_the_sample_is_fin_text_with_crlf() -> None:
    assert b"\r\n:20:ACME-MT-0001\r\n" in SAMPLE_BYTES
    assert b"\n" not in SAMPLE_BYTES.replace(b"\r\n", b"")


def test_the_sample_parses() -> None:
    mt = parse_mt101(SAMPLE)
    assert mt.sender == "ACMECNSHAXXX"
    assert mt.receiver == "DEMOCNBJXXXX"
    assert mt.user_header == (("108", "ACME20261127"),)
    assert (mt.reference, mt.customer_reference) == ("ACME-MT-0001", None)
    assert (mt.index, mt.total) == (1, 1)
    assert mt.requested_date == date(2026, 11, 27)
    assert mt.ordering == Party("6222020200001234", "ACME TRADING CO LTD", None)
    assert [tx.reference for tx in mt.transactions] == [
        "ACME-TX-0001",
        "ACME-TX-0002",
        "ACME-TX-0003",
    ]
    assert [tx.charges for tx in mt.transactions] == ["SHA", "OUR", "SHA"]
    assert mt.transactions[1].instruction_codes == ("URGP",)
    assert parse_mt101(LF) == mt  # LF line ends are accepted too
    assert parse_mt101(f"\n  {SAMPLE}\n\n") == mt  # CDATA often starts and ends with a new line


def test_the_sample_becomes_three_transfers() -> None:
    first, second, third = to_transfers(parse_mt101(SAMPLE))
    assert first.seq_no == 1
    assert first.reference == "ACME-TX-0001"
    assert first.bic is None
    assert first.transfer.payer_acct == "6222020200001234"
    assert first.transfer.payer_name == "ACME TRADING CO LTD"
    assert first.transfer.payee_acct == "6222020200005678"
    assert first.transfer.payee_name == "BETA COMPONENTS LTD"
    assert first.transfer.payee_bank_code == "102100099996"
    assert first.transfer.amount == Decimal("1234.50")
    assert str(first.transfer.amount) == "1234.50"
    assert first.transfer.ccy == "CNY"
    assert first.transfer.priority is Priority.NORM
    assert first.transfer.purpose == "INVOICE 2026-1127"

    assert second.transfer.payee_bank_code == "103100000027"
    assert str(second.transfer.amount) == "80000.00"  # "CNY80000," (comma, no decimals)
    assert second.transfer.priority is Priority.URGT  # 23E URGP
    assert second.transfer.purpose is None

    # A BIC-addressed item: returned unresolved for the router's directory.
    assert third.bic == "ICBKCNBJ"
    assert third.transfer.payee_bank_code == ""
    assert third.transfer.amount == Decimal("500.00")
    assert third.transfer.purpose == "ORDER 77 STATIONERY"


def test_57a_with_a_cnaps_party_identifier_keeps_both() -> None:
    text = edit(":57A:ICBKCNBJ", ":57A://CN102100099996\nICBKCNBJ")
    item = to_transfers(parse_mt101(text))[2]
    assert (item.bic, item.transfer.payee_bank_code) == ("ICBKCNBJ", "102100099996")


def test_ordering_customer_per_transaction_and_by_bic() -> None:
    text = edit(":50H:/6222020200001234\nACME TRADING CO LTD\nNO 1 PUDONG AVENUE SHANGHAI\n", "")
    text = text.replace(":32B:", ":32B:", 1)
    for n, (tag, party) in enumerate(
        [("50H", "/6222020200001234\nACME TRADING CO LTD"), ("50G", "/6222020200009999\nACMECNSH"),
         ("50H", "/6222020200001234\n上海阿克米贸易有限公司")]
    ):  # fmt: skip
        reference = f":21:ACME-TX-000{n + 1}\n"
        after = text.index(reference)
        after = text.index(":57", after)
        text = text[:after] + f":{tag}:{party}\n" + text[after:]
    mt = parse_mt101(text)
    assert mt.ordering is None
    items = to_transfers(mt)
    assert items[1].transfer.payer_acct == "6222020200009999"
    assert items[1].transfer.payer_name == "ACMECNSH"  # 50G names the customer by BIC
    assert items[2].transfer.payer_name == "上海阿克米贸易有限公司"


def test_chinese_names_and_an_output_header_are_accepted() -> None:
    text = edit("BETA COMPONENTS LTD", "北京贝塔零部件有限公司")
    text = edit(
        "{2:I101DEMOCNBJXXXXN}",
        "{2:O1011000261127ACMECNSHAXXX00000000002611271000N}",
        text,
    )
    mt = parse_mt101(text)
    assert mt.transactions[0].payee_name == "北京贝塔零部件有限公司"
    assert mt.receiver == "ACMECNSHAXXX"


# -- malformed structure: 1003 naming the block or field -------------------------------


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        # the variants the issue names
        (edit(":20:ACME-MT-0001\n", ""), "field 20: missing"),
        (edit(":32B:CNY1234,50", ":32B:CNY1234.50"), "field 32B: expected currency and amount with a decimal comma, e.g. CNY1234,50 (transaction 1)"),
        (edit(":32B:CNY1234,50", ":32B:CNY1234"), "field 32B: expected currency and amount"),
        (edit(":32B:CNY1234,50", ":32B:CNY,50"), "field 32B: expected currency and amount"),
        (edit(":32B:CNY1234,50", ":32B:CNY1,2,3"), "field 32B: expected currency and amount"),
        (edit(":32B:CNY1234,50", ":32B:CNY12345678901234,5"), "field 32B: expected currency and amount"),
        (edit(":32B:CNY1234,50", ":32B:cny1234,50"), "field 32B: expected currency and amount"),
        (edit(":57D://CN102100099996", ":57D:ICBC BEIJING"), "field 57D: expected //CN and a 12-digit bank code (transaction 1)"),
        (edit(":57D://CN102100099996", ":57D://CN10210009999"), "field 57D: expected //CN and a 12-digit bank code"),
        (edit(":57D://CN102100099996", ":57D://US102100099996"), "field 57D: expected //CN"),
        (edit(":70:INVOICE 2026-1127", ":72:/ACC/INVOICE"), "field 72: unknown tag in sequence B (transaction 1)"),
        (edit("\n-}", "\n"), "block 4: not terminated by -}"),
        (edit(":28D:1/1", ":28D:2/1"), "field 28D: expected message index/total"),
        (edit(":28D:1/1", ":28D:0/1"), "field 28D: expected message index/total"),
        (edit(":28D:1/1", ":28D:1-1"), "field 28D: expected message index/total"),
        (edit(":28D:1/1", ":28D:123456/123456"), "field 28D: expected message index/total"),
        # blocks
        (edit("{1:F01ACMECNSHAXXX0000000000}", ""), "block 1: missing"),
        (edit("{2:I101DEMOCNBJXXXXN}", ""), "block 2: missing"),
        (edit("F01ACMECNSHAXXX0000000000", "F01ACMECNSH0000000000"), "block 1: malformed basic header"),
        (edit("I101DEMOCNBJXXXXN", "I101DEMOCNBJXXXXNX"), "block 2: malformed application header"),
        (edit("{2:I101DEMOCNBJXXXXN}", "{2:I101DEMOCNBJXXXXN"), "block 2: not terminated by }"),
        ("{2:I101DEMOCNBJXXXXN}" + LF.replace("{2:I101DEMOCNBJXXXXN}", ""), "block 1: out of order or repeated"),
        (LF.rstrip() + "{5:{CHK:0}}", "block 5: out of order or repeated"),
        (LF + " trailing", "block structure: text outside the blocks"),
        ("garbage" + LF, "block structure: text outside the blocks"),
        (edit("{3:{108:ACME20261127}}", "{3:{108:ACME{1}}"), "block 3: malformed"),
        (edit("{3:{108:ACME20261127}}", "{7:x}"), "block 7: unknown block"),
        (edit("{4:\n", "{4::20:X\n"), "block 4: must start with a new line after {4:"),
        (edit("\n-}", "\n-}\n-}"), "block structure: text outside the blocks"),
        (edit(":71A:OUR", ":71A:OUR {x}"), "block 4: braces inside the text"),
        (edit("{4:\n:20:", "{4:\nJUNK\n:20:"), "block 4: expected a field tag :nn:"),
        (edit("ACME TRADING CO LTD", "ACME\r TRADING"), "block structure: CR without LF"),
        # fields
        (edit(":30:261127\n", ""), "field 30: missing"),
        (edit(":28D:1/1\n", ""), "field 28D: missing"),
        (edit(":30:261127", ":30:261332"), "field 30: expected a date YYMMDD"),
        (edit(":30:261127", ":30:2026-11-27"), "field 30: expected a date YYMMDD"),
        (edit(":20:ACME-MT-0001", ":20:ACME//MT"), "field 20: expected a 16x reference"),
        (edit(":20:ACME-MT-0001", ":20:/ACME"), "field 20: expected a 16x reference"),
        (edit(":20:ACME-MT-0001", ":20:ACME-MT-0001-TOO-LONG"), "field 20: expected a 16x reference"),
        (edit(":21:ACME-TX-0002", ":21:ACME TX 0002/"), "field 21: expected a 16x reference (transaction 2)"),
        (edit(":71A:OUR", ":71A:ALL"), "field 71A: expected BEN, OUR or SHA (transaction 2)"),
        (edit(":71A:OUR\n", ""), "field 71A: missing (transaction 2)"),
        (edit(":59:/6222020200005678\n", ":59:6222020200005678\n"), "field 59: expected /account and the beneficiary's name (transaction 1)"),
        (edit("BETA COMPONENTS LTD\n", ""), "field 59: expected /account and the beneficiary's name"),
        (edit(":57D://CN102100099996\nICBC BEIJING\n", ""), "field 57a: missing, the payee bank is required (transaction 1)"),
        (edit(":57A:ICBKCNBJ", ":57A:ICBK CN"), "field 57A: expected a BIC (transaction 3)"),
        (edit(":57A:ICBKCNBJ", ":57A:ICBKCNBJ\nICBKCNBJ"), "field 57A: malformed party identifier (transaction 3)"),
        (edit(":50H:/6222020200001234", ":50H:/6222-0202"), "field 50H: expected /account of 1-32 letters or digits"),
        (edit(":50H:/6222020200001234\nACME TRADING CO LTD\nNO 1 PUDONG AVENUE SHANGHAI", ":50G:/6222020200001234\nACME TRADING"), "field 50G: expected a BIC"),
        (edit(":50H:/6222020200001234\nACME TRADING CO LTD\nNO 1 PUDONG AVENUE SHANGHAI\n", ""), "field 50a: missing (transaction 1)"),
        (edit(":57D://CN102100099996", ":50H:/6222020200001234\nACME\n:57D://CN102100099996"), "field 50a: in sequence A and in transaction 1"),
        (edit(":23E:URGP", ":23E:FAST"), "field 23E: unknown instruction code (transaction 2)"),
        (edit(":30:261127\n:21:ACME-TX-0001", ":30:261127\n:32B:CNY1,00\n:21:ACME-TX-0001"), "field 32B: not allowed in sequence A"),
        (edit(":71A:SHA", ":28D:1/1"), "field 28D: not allowed in sequence B (transaction 1)"),
        (edit(":30:261127\n", "").replace(":28D:1/1\n", ":28D:1/1\n").replace(":20:ACME-MT-0001\n", ":20:ACME-MT-0001\n:30:261127\n"),
         "field 28D: out of order or repeated"),
        (edit(":20:ACME-MT-0001\n", ":20:ACME-MT-0001\n:20:ACME-MT-0002\n"), "field 20: out of order or repeated"),
        (edit(":71A:SHA\n", ":71A:SHA\n:71A:SHA\n"), "field 71A: out of order or repeated (transaction 1)"),
        (edit(":70:INVOICE 2026-1127", ":70:" + "X" * 36), "field 70: line longer than 35 characters"),
        (edit(":70:INVOICE 2026-1127", ":70:A\nB\nC\nD\nE"), "field 70: too many lines (transaction 1)"),
        (edit("BETA COMPONENTS LTD", "BETA\n\nLTD"), "field 59: empty line"),
        (edit("BETA COMPONENTS LTD", "-BETA"), "field 59: a line may not start with : or -"),
        (edit("BETA COMPONENTS LTD", ":BETA"), "field 59: a line may not start with : or -"),
        (edit("BETA COMPONENTS LTD", "BETA\tLTD"), "field 59: control character"),
        (edit(":21:ACME-TX-0001\n", ""), "field 32B: not allowed in sequence A"),
        (LF.split(":21:ACME-TX-0001")[0] + "-}", "field 21: missing (no transaction)"),
    ],
    ids=lambda value: None if not isinstance(value, str) or len(value) < 80 else "mt",
)  # fmt: skip
def test_malformed_messages_name_the_field(text: str, detail: str) -> None:
    error = refusal(text)
    assert error.code is RetCode.SCHEMA
    assert error.detail is not None
    assert error.detail.startswith(detail)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (edit("I101DEMOCNBJXXXXN", "I103DEMOCNBJXXXXN"), "block 2: MT103 not supported, expected MT101"),
        (edit(":32B:CNY1234,50", ":32B:CNY1234,50\n:33B:USD200,00"), "field 33B: not supported (transaction 1)"),
        (edit(":57D://CN102100099996", ":56A:ICBKCNBJ\n:57D://CN102100099996"), "field 56A: not supported (transaction 1)"),
        (edit(":30:261127", ":52A:ICBKCNBJ\n:30:261127"), "field 52A: not supported"),
        (edit(":23E:URGP", ":23E:CHQB"), "field 23E: instruction code not supported (transaction 2)"),
    ],
    ids=lambda value: None if not isinstance(value, str) or len(value) < 80 else "mt",
)  # fmt: skip
def test_valid_mt101_that_the_gateway_does_not_carry_is_1004(text: str, detail: str) -> None:
    error = refusal(text)
    assert error.code is RetCode.UNKNOWN_TRNCODE
    assert error.detail == detail


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (edit(":32B:CNY1234,50", ":32B:USD1234,50"), "field 32B: currency must be CNY (transaction 1)"),
        (edit(":32B:CNY500,00", ":32B:CNY0,"), "field 32B: must be greater than zero (transaction 3)"),
        (edit(":32B:CNY500,00", ":32B:CNY0,00"), "field 32B: must be greater than zero (transaction 3)"),
        (edit(":32B:CNY500,00", ":32B:CNY1,234"), "field 32B: at most 2 decimals (transaction 3)"),
    ],
)  # fmt: skip
def test_amount_rules_are_4004(text: str, detail: str) -> None:
    error = refusal(text)
    assert (error.code, error.detail) == (RetCode.AMOUNT_INVALID, detail)


def test_the_longest_amount_is_15_characters_with_its_comma() -> None:
    mt = parse_mt101(edit(":32B:CNY1234,50", ":32B:CNY1234567890123,4"))
    assert mt.transactions[0].amount == Decimal("1234567890123.4")


def test_structure_is_judged_before_amounts() -> None:
    text = edit(":32B:CNY1234,50", ":32B:USD1234,50")
    text = edit(":71A:SHA\n-}", "-}", text)  # the last transaction lacks 71A
    assert refusal(text).detail == "field 71A: missing (transaction 3)"


def test_details_never_repeat_values() -> None:
    for text in (
        edit(":59:/6222020200005678", ":59:/6222020200005678-9"),
        edit(":50H:/6222020200001234", ":50H:/6222020200001234-X"),
    ):
        detail = refusal(text).detail or ""
        assert "62220202" not in detail


def test_too_many_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mt101, "MAX_TRANSACTIONS", 2)
    assert refusal(LF).detail == "field 21: more than 2 transactions"


# -- never anything but GatewayError ----------------------------------------------------

_LINES = LF.split("\n")
_PIECES = st.sampled_from(
    ["{", "}", "{4:", "-}", ":", "::", ":20:", ":21:", ":32B:", ":57D:", ":59:", "/", "//CN", ",", "\r", "\n", "CNY"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, database=None)
@given(text=st.one_of(st.text(max_size=300), st.lists(_PIECES | st.text(max_size=8)).map("".join)))
def test_arbitrary_text_raises_only_gateway_errors(text: str) -> None:
    with contextlib.suppress(GatewayError):
        parse_mt101(text)


@settings(max_examples=400, deadline=None, database=None)
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["drop", "copy", "swap", "replace"]), st.integers(0, 200),
                  st.integers(0, 200), _PIECES | st.text(max_size=12)),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_mutated_samples_raise_only_gateway_errors(edits: list[tuple[str, int, int, str]]) -> None:
    lines = list(_LINES)
    for op, first, second, text in edits:
        i, j = first % len(lines), second % len(lines)
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "copy":
            lines.insert(i, lines[j])
        elif op == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        else:
            line = lines[i]
            cut = j % (len(line) + 1)
            lines[i] = line[:cut] + text + line[cut:]
    try:
        mt = parse_mt101("\r\n".join(lines))
    except GatewayError:
        return
    items = to_transfers(mt)
    assert len(items) == len(mt.transactions)
    assert all(item.transfer.amount > 0 for item in items)
    assert all(item.transfer.payee_bank_code or item.bic for item in items)
