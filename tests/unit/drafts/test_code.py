"""The Code (密押): its exact format, and verification across key rotation (docs/bank-drafts.md §1)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from gateway.clock import SHANGHAI
from gateway.drafts.code import DraftKey, DraftKeys, code_message, is_code_text, make_code, verify
from gateway.drafts.keystore import DraftKeyRing, SealedVersion
from tests.unit.drafts.helpers import KEY_A, KEY_B, OURS, entry

KEY_DISCARDED = DraftKey("d-old", b"\x07" * 32)


def by_hand(key: bytes, text: str) -> str:
    """The rule of docs/bank-drafts.md §1 written out once more, without the module."""
    mac = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return str(int.from_bytes(mac[:8], "big") % 10**16).zfill(16)


def test_vector_computed_by_hand() -> None:
    e = entry(amount="1234.5", issue=date(2026, 11, 2))
    text = "10310000001900000042|1234.50|2026-11-02|Beta Components Ltd"
    assert code_message(e.draft_no, e.amount, e.issue_date, e.payee_name) == text.encode()
    assert make_code(KEY_A, e) == by_hand(bytes(range(32)), text)
    assert make_code(KEY_A, e) == "3747595121656089"  # pinned: a change here breaks every draft


def test_amount_is_written_with_exactly_two_decimals() -> None:
    for written in ("1234.5", "1234.50", "1234.500"):
        e = entry(amount=written)
        assert make_code(KEY_A, e) == by_hand(
            KEY_A.secret, "10310000001900000042|1234.50|2026-11-02|Beta Components Ltd"
        )


def test_utf8_payee_name_exactly_as_applied() -> None:
    e = replace(entry(), payee_name="北京 贝塔 ")
    text = "10310000001900000042|1234.50|2026-11-02|北京 贝塔 "
    assert make_code(KEY_A, e) == by_hand(KEY_A.secret, text)
    assert make_code(KEY_A, e) != make_code(KEY_A, replace(e, payee_name="北京 贝塔"))


def test_zero_padded_to_16_digits() -> None:
    e = replace(entry(), draft_no=f"{OURS}00000408")  # found by search: a small MAC prefix
    code = make_code(KEY_A, e)
    assert code == "0096394129717097"
    assert code == by_hand(KEY_A.secret, f"{OURS}00000408|1234.50|2026-11-02|Beta Components Ltd")
    assert len(code) == 16 and is_code_text(code)


def test_every_field_is_covered() -> None:
    e = entry()
    code = make_code(KEY_A, e)
    for changed in (
        replace(e, draft_no=f"{OURS}00000043"),
        replace(e, amount=Decimal("1234.51")),
        replace(e, issue_date=date(2026, 11, 3)),
        replace(e, payee_name="Beta Components Ltd."),
    ):
        assert make_code(KEY_A, changed) != code
        assert not verify(code, changed, [KEY_A])


def test_a_fraction_of_a_fen_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="fen"):
        make_code(KEY_A, entry(amount="1234.505"))


@pytest.mark.parametrize(
    "code", ["", "374759512165608", "37475951216560899", "374759512165608x", " 3747595121656089"]
)
def test_malformed_codes_never_verify(code: str) -> None:
    assert not verify(code, entry(), [KEY_A])


def test_a_short_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        DraftKey("short", b"x" * 31)
    assert "secret" not in repr(KEY_A) and repr(bytes(range(32))) not in repr(KEY_A)


# ---------------------------------------------------------------- rotation


def _version(key: DraftKey, activate: datetime, retain: date | None) -> SealedVersion:
    # Only activate and retain_until matter to DraftKeyRing; sealing is tested in test_keystore.
    return SealedVersion(key.key_id, activate, retain, b"\0" * 16, 2**14, 8, 1, b"-")


ROTATED = DraftKeyRing(
    [KEY_A, KEY_B],
    [
        _version(KEY_A, datetime(2026, 1, 1, tzinfo=SHANGHAI), date(2026, 12, 1)),
        _version(KEY_B, datetime(2026, 11, 1, tzinfo=SHANGHAI), None),
    ],
)


def at(y: int, m: int, d: int, hh: int = 10) -> datetime:
    return datetime(y, m, d, hh, tzinfo=SHANGHAI)


def test_new_codes_use_the_current_key() -> None:
    assert ROTATED.current(at(2026, 10, 31, 23)) == KEY_A
    assert ROTATED.current(datetime(2026, 11, 1, tzinfo=SHANGHAI)) == KEY_B  # inclusive


def test_a_code_under_the_previous_kept_key_verifies() -> None:
    e = entry()
    old = make_code(KEY_A, e)
    new = make_code(KEY_B, e)
    for now in (at(2026, 11, 15), at(2026, 12, 1, 23)):  # up to retain_until, inclusive
        kept = ROTATED.kept(now)
        assert kept == (KEY_B, KEY_A)
        assert verify(old, e, kept)
        assert verify(new, e, kept)


def test_after_retain_until_the_previous_key_is_discarded() -> None:
    e = entry()
    kept = ROTATED.kept(at(2026, 12, 2, 0))
    assert kept == (KEY_B,)
    assert not verify(make_code(KEY_A, e), e, kept)
    assert verify(make_code(KEY_B, e), e, kept)


def test_a_key_not_yet_active_does_not_verify() -> None:
    e = entry()
    kept = ROTATED.kept(at(2026, 10, 1))
    assert kept == (KEY_A,)
    assert not verify(make_code(KEY_B, e), e, kept)


def test_a_key_never_in_the_ring_does_not_verify() -> None:
    e = entry()
    assert not verify(make_code(KEY_DISCARDED, e), e, ROTATED.kept(at(2026, 11, 15)))


def test_retention_is_read_on_the_shanghai_date() -> None:
    # 2026-12-01 23:30 in Shanghai is 15:30 UTC the same day; 2026-12-01 16:30 UTC is the 2nd.

    assert KEY_A in ROTATED.kept(datetime(2026, 12, 1, 15, 30, tzinfo=UTC))
    assert KEY_A not in ROTATED.kept(datetime(2026, 12, 1, 16, 30, tzinfo=UTC))


def test_the_key_of_an_entry_is_found_by_its_id() -> None:
    e = entry()
    key = ROTATED.by_id(e.code_key)
    assert key == KEY_A
    assert make_code(key, e) == make_code(KEY_A, e)  # the Code shown again in STATUS
    assert ROTATED.by_id("d-none") is None


def test_the_keyring_is_a_draft_keys_source() -> None:
    keys: DraftKeys = ROTATED  # mypy checks the protocol
    assert keys.current(at(2026, 11, 2)) == KEY_B
