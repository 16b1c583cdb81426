"""corplink.md §6: the enrolment registry (2005, 2007, 4006) and its strict loading."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.keys.devpki import DevPki
from gateway.keys.enrolment import Registry
from gateway.paths import data_root

FP = "ab" * 32

VALID = f"""
[[corporate]]
corp_id = "C1"
name = "One"
accounts = ["6222000000000001"]
networks = ["127.0.0.0/8", "::1/128", "192.0.2.0/24"]
trn_codes = ["PAY", "STATUS"]

[[corporate.operator]]
oper_id = "op01"
fingerprints = ["{FP.upper()[:2]}:{FP[2:]}"]
max_item = "1000.00"
daily_limit = 5000

[[corporate]]
corp_id = "C2"
name = "Two"
accounts = ["6222000000000101"]
networks = ["10.1.0.0/16"]
"""


def load(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "enrolment.toml"
    path.write_text(text, encoding="utf-8")
    return Registry.load(path)


def code(fn: object, *args: str) -> str:
    try:
        fn(*args)  # type: ignore[operator]
    except GatewayError as exc:
        return exc.code.value
    return "ok"


def test_valid_registry(tmp_path: Path) -> None:
    reg = load(tmp_path, VALID)
    corp = reg.corporate("C1")
    assert corp is not None
    assert corp.trn_codes == frozenset({"PAY", "STATUS"})
    op = reg.check_signer("C1", "op01", FP)
    assert op.max_item == Decimal("1000.00")
    assert op.daily_limit == Decimal("5000")
    two = reg.corporate("C2")
    assert two is not None
    assert two.trn_codes is None
    assert two.operators == {}
    assert reg.corporate("C3") is None


def test_check_signer_2005(tmp_path: Path) -> None:
    reg = load(tmp_path, VALID)
    assert code(reg.check_signer, "C1", "op01", FP) == "ok"
    assert code(reg.check_signer, "C1", "op01", "cd" * 32) == "2005"
    assert code(reg.check_signer, "C1", "op02", FP) == "2005"
    assert code(reg.check_signer, "C2", "op01", FP) == "2005"
    assert code(reg.check_signer, "C9", "op01", FP) == "2005"


@pytest.mark.parametrize(
    ("corp", "ip", "ok"),
    [
        ("C1", "127.0.0.1", True),
        ("C1", "127.8.9.10", True),
        ("C1", "::1", True),
        ("C1", "::ffff:127.0.0.1", True),
        ("C1", "192.0.2.77", True),
        ("C1", "fe80::1%eth0", False),
        ("C1", "198.51.100.1", False),
        ("C1", "not-an-ip", False),
        ("C1", "", False),
        ("C2", "127.0.0.1", False),
        ("C2", "10.1.200.3", True),
        ("C9", "127.0.0.1", False),
    ],
)
def test_check_source_2007(tmp_path: Path, corp: str, ip: str, ok: bool) -> None:
    reg = load(tmp_path, VALID)
    assert code(reg.check_source, corp, ip) == ("ok" if ok else "2007")


def test_check_account_4006(tmp_path: Path) -> None:
    reg = load(tmp_path, VALID)
    assert code(reg.check_account, "C1", "6222000000000001") == "ok"
    assert code(reg.check_account, "C1", "6222000000000101") == "4006"
    assert code(reg.check_account, "C9", "6222000000000001") == "4006"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("", "colour = 'red'\n"), "colour"),
        (('name = "One"', 'name = "One"\nregion = "east"'), "corporate[0].region"),
        (
            ('max_item = "1000.00"', 'max_item = "1000.00"\nmax_items = "1"'),
            "corporate[0].operator[0].max_items",
        ),
        (('"192.0.2.0/24"', '"192.0.2.1/24"'), "corporate[0].networks[2]"),
        (('"192.0.2.0/24"', '"192.0.2.0/33"'), "corporate[0].networks[2]"),
        (
            ('trn_codes = ["PAY", "STATUS"]', 'trn_codes = ["PAY", "WIRE"]'),
            "corporate[0].trn_codes[1]",
        ),
        (('max_item = "1000.00"', "max_item = 1000.5"), "corporate[0].operator[0].max_item"),
        (('max_item = "1000.00"', 'max_item = "-5"'), "corporate[0].operator[0].max_item"),
        (('max_item = "1000.00"', 'max_item = "0"'), "corporate[0].operator[0].max_item"),
        (('corp_id = "C2"', 'corp_id = "C1"'), "corporate[1].corp_id"),
        (('corp_id = "C2"', 'corp_id = "c2"'), "corporate[1].corp_id"),
        (('oper_id = "op01"', 'oper_id = "op 01"'), "corporate[0].operator[0].oper_id"),
        (
            (f'["{FP.upper()[:2]}:{FP[2:]}"]', '["abcd"]'),
            "corporate[0].operator[0].fingerprints[0]",
        ),
        (('accounts = ["6222000000000101"]', "accounts = []"), "corporate[1].accounts"),
        (('accounts = ["6222000000000101"]', 'accounts = ["62-22"]'), "corporate[1].accounts[0]"),
        (('name = "Two"\n', ""), "corporate[1].name"),
    ],
)
def test_bad_registry_names_key_and_file(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    old, new = change
    text = (new + VALID) if old == "" else VALID.replace(old, new, 1)
    assert text != VALID
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert str(tmp_path / "enrolment.toml") in message
    assert key in message


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TOML"):
        load(tmp_path, "[[corporate]\n")
    with pytest.raises(ConfigError, match="cannot read"):
        Registry.load(tmp_path / "absent.toml")


def test_example_file_is_valid() -> None:
    reg = Registry.load(data_root() / "keys" / "enrolment.example.toml")
    assert reg.corporate("C100000001") is not None


def test_dev_pki_registry(pki: DevPki) -> None:
    reg = Registry.load(pki.enrolment)
    assert [c.corp_id for c in reg.corporates] == ["C100000001", "C100000002", "C100000003"]
    one = reg.corporate("C100000001")
    assert one is not None
    assert one.accounts == frozenset({"6222000000000001", "6222000000000002"})
    assert set(one.operators) == {"op01", "op02"}
    assert code(reg.check_source, "C100000001", "127.0.0.1") == "ok"
    assert RetCode.CERT_NOT_ENROLLED.value == "2005"
