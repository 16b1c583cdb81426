"""DraftNo, PrsntmtId and amount text (docs/bank-drafts.md §1, §3)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.drafts.numbers import (
    MAX_SEQ,
    area_of,
    check_draft_no,
    check_prsntmt_id,
    format_amount,
    issuer_of,
    make_draft_no,
    parse_amount,
    sequence_of,
)
from tests.unit.drafts.helpers import OURS


def test_draft_no_is_participant_then_eight_digit_sequence() -> None:
    no = make_draft_no(OURS, 42)
    assert no == "10310000001900000042"
    assert len(no) == 20
    assert issuer_of(no) == OURS
    assert sequence_of(no) == 42
    assert make_draft_no(OURS, MAX_SEQ) == OURS + "99999999"


@pytest.mark.parametrize("seq", [0, -1, MAX_SEQ + 1, True])
def test_the_sequence_never_wraps(seq: int) -> None:
    with pytest.raises(ValueError, match="sequence"):
        make_draft_no(OURS, seq)


@pytest.mark.parametrize(
    "participant", ["10310000001", "1031000000190", "10310000001x", "１０３１００００００１９"]
)
def test_a_draft_no_needs_a_12_digit_participant(participant: str) -> None:
    with pytest.raises(ValueError, match="12-digit"):
        make_draft_no(participant, 1)


@pytest.mark.parametrize(
    "text",
    [
        "1031000000190000004",
        "103100000019000000421",
        "1031000000190000004a",
        "10310000001900000042\n",
        "",
    ],
)
def test_check_draft_no_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="DraftNo"):
        check_draft_no(text)


@pytest.mark.parametrize("text", ["A", "AG-0001", "x" * 35, "0-0-0", "-"])
def test_prsntmt_id_accepted(text: str) -> None:
    assert check_prsntmt_id(text) == text


@pytest.mark.parametrize("text", ["", "x" * 36, "AG_0001", "AG 0001", "AG.1", "票据1", "A\n"])
def test_prsntmt_id_refused(text: str) -> None:
    with pytest.raises(ValueError, match="PrsntmtId"):
        check_prsntmt_id(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1234.5", "1234.50"),
        ("1234.50", "1234.50"),
        ("1234.500", "1234.50"),
        ("1", "1.00"),
        ("0.01", "0.01"),
        ("1E+2", "100.00"),
        ("999999999999999.99", "999999999999999.99"),
    ],
)
def test_format_amount_two_decimals_no_separators(value: str, text: str) -> None:
    assert format_amount(Decimal(value)) == text


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("0.001", "fractions of a fen"),
        ("1234.505", "fractions of a fen"),
        ("-1.00", "positive"),
        ("0", "positive"),
        ("1000000000000000.00", "15 digits"),
        ("NaN", "not a number"),
        ("Infinity", "not a number"),
    ],
)
def test_format_amount_refuses(value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        format_amount(Decimal(value))


def test_zero_only_where_allowed() -> None:
    assert format_amount(Decimal(0), "Remainder", zero=True) == "0.00"
    with pytest.raises(ValueError, match="zero or more"):
        format_amount(Decimal("-0.01"), "Remainder", zero=True)


@pytest.mark.parametrize(
    ("text", "value"), [("1234.50", "1234.5"), ("0.00", "0"), ("000000000000001.00", "1")]
)
def test_parse_amount(text: str, value: str) -> None:
    assert parse_amount(text) == Decimal(value)


@pytest.mark.parametrize(
    "text",
    [
        "1234.5",
        "1234",
        "1,234.50",
        "1234.500",
        "-1.00",
        "+1.00",
        " 1.00",
        "1.00\n",
        "1e3.00",
        "１.００",
        "1234567890123456.00",
        ".50",
        "1.5O",
    ],
)
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="Amount"):
        parse_amount(text)


def test_area_is_the_four_digits_after_the_class_code() -> None:
    assert area_of("104290000010") == "2900"
    assert area_of(OURS) == "1000"
