"""Sealed draft keys: round trip, wrong passphrase, the store file, retention (docs/bank-drafts.md §5)."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import replace
from datetime import date, datetime

import pytest

from gateway.clock import SHANGHAI
from gateway.drafts.code import DraftKey, make_code, verify
from gateway.drafts.keystore import (
    MIN_SCRYPT_N,
    SCRYPT_N,
    DraftKeyError,
    DraftKeyRing,
    add_version,
    dumps,
    extend_retention,
    list_versions,
    loads,
    new_secret,
    prune,
    seal,
    unseal,
)
from gateway.errors import ConfigError
from tests.unit.drafts.helpers import entry

PASS = b"correct horse battery staple"
JAN = datetime(2026, 1, 1, tzinfo=SHANGHAI)
NOV = datetime(2026, 11, 1, tzinfo=SHANGHAI)
FAST = MIN_SCRYPT_N  # the lowest cost a file may carry: quicker tests, same construction


def key(name: str) -> DraftKey:
    return DraftKey(name, new_secret())


def test_round_trip_through_the_store_file() -> None:
    k = key("d-2026a")
    sealed = seal(k, PASS, JAN)  # the default cost, once
    assert sealed.n == SCRYPT_N
    data = dumps([sealed])
    (back,) = loads(data, "draft-keys.toml")
    assert back == sealed
    assert unseal(back, PASS) == k


def test_the_file_never_holds_the_secret() -> None:
    k = key("d-1")
    data = dumps([seal(k, PASS, JAN, n=FAST)])
    for form in (
        k.secret,
        k.secret.hex().encode(),
        base64.b64encode(k.secret),
        base64.urlsafe_b64encode(k.secret),
    ):
        assert form not in data
    assert PASS not in data


def test_wrong_passphrase_is_refused_without_showing_anything() -> None:
    k = key("d-1")
    sealed = seal(k, PASS, JAN, n=FAST)
    with pytest.raises(DraftKeyError, match="d-1: wrong passphrase") as info:
        unseal(sealed, b"wrong", "keys/draft-keys.toml")
    assert isinstance(info.value, ConfigError)
    text = str(info.value)
    assert "wrong" in text and "keys/draft-keys.toml" in text
    assert k.secret.hex() not in text and "correct horse" not in text
    with pytest.raises(DraftKeyError, match="no passphrase"):
        unseal(sealed, None)
    with pytest.raises(DraftKeyError, match="no passphrase"):
        DraftKeyRing.open([sealed], b"")


def test_an_empty_passphrase_cannot_seal() -> None:
    with pytest.raises(DraftKeyError, match="empty passphrase"):
        seal(key("d-1"), b"", JAN)


def test_a_value_moved_onto_another_entry_is_refused() -> None:
    a = seal(key("d-a"), PASS, JAN, n=FAST)
    b = seal(key("d-b"), PASS, NOV, n=FAST)
    moved = replace(b, salt=a.salt, value=a.value)  # a's sealed secret under b's id
    with pytest.raises(DraftKeyError, match="belongs to another entry"):
        unseal(moved, PASS)


def test_a_damaged_value_is_refused() -> None:
    sealed = seal(key("d-1"), PASS, JAN, n=FAST)
    token = bytearray(sealed.value)
    token[-10] = ord("A") if token[-10] != ord("A") else ord("B")
    with pytest.raises(DraftKeyError, match="damaged"):
        unseal(replace(sealed, value=bytes(token)), PASS)


def test_opened_ring_makes_and_verifies_codes() -> None:
    a, b = key("d-a"), key("d-b")
    versions = add_version(
        [seal(a, PASS, JAN, n=FAST)], seal(b, PASS, NOV, n=FAST), date(2026, 12, 1)
    )
    ring = DraftKeyRing.open(loads(dumps(versions), "x"), PASS)
    e = entry()
    now = datetime(2026, 11, 20, 9, tzinfo=SHANGHAI)
    assert ring.current(now) == b
    assert verify(make_code(a, e), e, ring.kept(now))
    later = datetime(2026, 12, 2, 9, tzinfo=SHANGHAI)
    assert not verify(make_code(a, e), e, ring.kept(later))


def test_listing_shows_retention_and_state_but_no_value() -> None:
    a, b, c = key("d-a"), key("d-b"), key("d-c")
    versions = add_version(
        [seal(a, PASS, JAN, n=FAST)], seal(b, PASS, NOV, n=FAST), date(2026, 12, 1)
    )
    nxt = datetime(2027, 3, 1, tzinfo=SHANGHAI)
    versions = add_version(versions, seal(c, PASS, nxt, n=FAST), date(2027, 4, 1))
    # listed from the file alone: no passphrase
    rows = list_versions(loads(dumps(versions), "x"), datetime(2026, 11, 20, tzinfo=SHANGHAI))
    assert [(r.key_id, r.retain_until, r.state) for r in rows] == [
        ("d-a", date(2026, 12, 1), "kept"),
        ("d-b", date(2027, 4, 1), "active"),
        ("d-c", None, "next"),
    ]
    later = list_versions(versions, datetime(2026, 12, 2, tzinfo=SHANGHAI))
    assert [r.state for r in later] == ["retired", "active", "next"]
    for r in rows:
        assert not hasattr(r, "value") and not hasattr(r, "secret")
    assert all(a.secret.hex() not in repr(v) for v in versions)


def test_retention_is_raised_never_lowered() -> None:
    a, b = seal(key("d-a"), PASS, JAN, n=FAST), seal(key("d-b"), PASS, NOV, n=FAST)
    versions = add_version([a], b, date(2026, 12, 1))
    assert versions[0].retain_until == date(2026, 12, 1)
    # an earlier bound does not lower one already recorded
    assert add_version(versions[:1], b, date(2026, 11, 5))[0].retain_until == date(2026, 12, 1)
    raised = extend_retention(versions, "d-a", date(2026, 12, 15))
    assert raised[0].retain_until == date(2026, 12, 15)
    assert extend_retention(raised, "d-a", date(2026, 12, 3))[0].retain_until == date(2026, 12, 15)
    with pytest.raises(KeyError):
        extend_retention(versions, "d-x", date(2027, 1, 1))


def test_prune_drops_only_retired_versions() -> None:
    a, b = seal(key("d-a"), PASS, JAN, n=FAST), seal(key("d-b"), PASS, NOV, n=FAST)
    versions = add_version([a], b, date(2026, 12, 1))
    assert prune(versions, datetime(2026, 12, 1, 23, tzinfo=SHANGHAI)) == versions
    assert [v.key_id for v in prune(versions, datetime(2026, 12, 2, tzinfo=SHANGHAI))] == ["d-b"]


def test_versions_must_activate_in_order() -> None:
    a, b = seal(key("d-a"), PASS, NOV, n=FAST), seal(key("d-b"), PASS, JAN, n=FAST)
    with pytest.raises(DraftKeyError, match="activate must be later"):
        add_version([a], b, date(2026, 12, 1))
    with pytest.raises(DraftKeyError, match="listed twice"):
        add_version(
            [a], replace(a, activate=datetime(2027, 1, 1, tzinfo=SHANGHAI)), date(2027, 1, 1)
        )


def _file(entry_text: str, header: str = "format = 1\n") -> bytes:
    return (header + "[[draft]]\n" + entry_text).encode()


GOOD = seal(key("d-1"), PASS, JAN, n=FAST)
GOOD_ENTRY = dumps([GOOD]).decode().split("[[draft]]\n", 1)[1]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD_ENTRY + 'colour = "red"\n', r"draft\[0\]\.colour: unknown key"),
        (re.sub(r"(?m)^salt = .*\n", "", GOOD_ENTRY), r"draft\[0\]\.salt: missing"),
        (re.sub(r"(?m)^n = .*$", "n = 1024", GOOD_ENTRY), "scrypt n must be a power of two"),
        (re.sub(r"(?m)^n = .*$", "n = 20000", GOOD_ENTRY), "scrypt n must be a power of two"),
        (re.sub(r"(?m)^n = .*$", "n = 1073741824", GOOD_ENTRY), "scrypt n must be a power of two"),
        (re.sub(r"(?m)^n = .*$", 'n = "16384"', GOOD_ENTRY), "must be integers"),
        (re.sub(r"(?m)^kdf = .*$", 'kdf = "pbkdf2"', GOOD_ENTRY), "kdf: must be scrypt"),
        (re.sub(r"(?m)^id = .*$", 'id = "../etc"', GOOD_ENTRY), r"\.id: must be"),
        (
            re.sub(r"(?m)^activate = .*$", "activate = 2026-01-01T00:00:00", GOOD_ENTRY),
            "UTC offset",
        ),
        (
            GOOD_ENTRY + "retain_until = 2026-12-01T00:00:00+08:00\n",
            "retain_until: must be a TOML date",
        ),
        (re.sub(r"(?m)^salt = .*$", 'salt = "not base64!"', GOOD_ENTRY), "salt: must be base64url"),
        (re.sub(r"(?m)^salt = .*$", 'salt = "AAAA"', GOOD_ENTRY), "salt: at least 16 bytes"),
    ],
)
def test_store_file_refusals_name_the_entry(text: str, match: str) -> None:
    with pytest.raises(DraftKeyError, match=match) as info:
        loads(_file(text), "keys/draft-keys.toml")
    assert str(info.value).startswith("keys/draft-keys.toml")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"format = 2\n", "format: must be 1"),
        (b"format = 1\n", "non-empty array"),
        (b"format = 1\ndraft = []\n", "non-empty array"),
        (b"format = 1\nextra = 1\n", "extra: unknown key"),
        (b"format = \n", "not valid TOML"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_store_file_shape(data: bytes, match: str) -> None:
    with pytest.raises(DraftKeyError, match=match):
        loads(data, "f")


def test_opening_costs_one_derivation_per_version() -> None:
    """Not a timing assertion: a reminder of what start-up pays, printed with -s."""
    sealed = seal(key("d-1"), PASS, JAN)
    t = time.perf_counter()
    unseal(sealed, PASS)
    print(f"scrypt n={SCRYPT_N} unseal: {1000 * (time.perf_counter() - t):.0f} ms")
