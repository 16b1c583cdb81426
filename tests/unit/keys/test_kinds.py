"""corplink.md §6: credential kinds by certificate policy, and what each may do (2006)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography import x509

from gateway.errors import GatewayError, RetCode
from gateway.keys.devpki import DevPki, issue_client_cert
from gateway.keys.kinds import DEV_FILE_OID, DEV_USBKEY_OID, KindPolicy
from gateway.model import CredentialKind, TrnCode

POLICY = KindPolicy.dev()
USB, FILE = CredentialKind.USBKEY, CredentialKind.FILE


def cert_of(pki: DevPki, corp: str, oper: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.client(corp, oper)[1].read_bytes())


def allowed(kind: CredentialKind | None, trn_code: str, *amounts: str) -> bool:
    try:
        POLICY.check(kind, trn_code, [Decimal(a) for a in amounts])
    except GatewayError as exc:
        return exc.code is not RetCode.NOT_PERMITTED  # any other code fails the caller's assert
    return True


def test_kind_from_certificate_policy(pki: DevPki) -> None:
    assert POLICY.kind_of(cert_of(pki, "C100000001", "op01")) is USB
    assert POLICY.kind_of(cert_of(pki, "C100000001", "op02")) is FILE
    _, path = issue_client_cert(pki, "C100000001", "op03", None)
    assert POLICY.kind_of(x509.load_pem_x509_certificate(path.read_bytes())) is None


def test_unmapped_oids_give_no_kind(pki: DevPki) -> None:
    other = KindPolicy(usbkey_oids=frozenset({"1.2.3.4"}), file_oids=frozenset({"1.2.3.5"}))
    assert other.kind_of(cert_of(pki, "C100000001", "op01")) is None


def test_one_oid_cannot_map_to_both_kinds() -> None:
    with pytest.raises(ValueError, match="both kinds"):
        KindPolicy(usbkey_oids=frozenset({DEV_FILE_OID}), file_oids=frozenset({DEV_FILE_OID}))
    assert DEV_USBKEY_OID != DEV_FILE_OID


@pytest.mark.parametrize("trn_code", [c.value for c in TrnCode])
def test_usbkey_may_do_everything(trn_code: str) -> None:
    assert allowed(USB, trn_code, "9999999.99")


@pytest.mark.parametrize(
    ("trn_code", "ok"),
    [
        ("BAL", True),
        ("STATUS", True),
        ("NTFY", True),
        ("INQ", True),
        ("RPLY", True),
        ("PAY", True),
        ("PAYROLL", True),
        ("PAIN001", False),
        ("MT101", False),
    ],
)
def test_file_certificate_trn_codes(trn_code: str, ok: bool) -> None:
    assert allowed(FILE, trn_code, "1.00") is ok


def test_file_certificate_item_limit_is_exclusive() -> None:
    assert allowed(FILE, "PAY", "49999.99")
    assert not allowed(FILE, "PAY", "50000.00")
    assert not allowed(FILE, "PAY", "50000")
    assert allowed(FILE, "PAYROLL", "100.00", "49999.99", "0.01")
    assert not allowed(FILE, "PAYROLL", "100.00", "50000.01", "0.01")


def test_no_kind_is_refused_everything() -> None:
    assert not allowed(None, "BAL")
    assert not allowed(None, "PAY", "1.00")


def test_configured_file_permissions() -> None:
    strict = KindPolicy(
        usbkey_oids=frozenset({DEV_USBKEY_OID}),
        file_oids=frozenset({DEV_FILE_OID}),
        file_allowed=frozenset({"BAL"}),
        file_max_item=Decimal("100.00"),
    )
    strict.check(FILE, "BAL", [])
    with pytest.raises(GatewayError):
        strict.check(FILE, "PAY", [Decimal("1.00")])


# -- foreign currency (docs/foreign-currency.md §1) ---------------------------------------


@pytest.mark.parametrize("trn_code", ["PAY", "PAYROLL"])
def test_a_file_certificate_may_not_send_foreign_currency(trn_code: str) -> None:
    with pytest.raises(GatewayError) as info:
        POLICY.check(FILE, trn_code, [Decimal("10.00")], currencies={"CNY", "USD"})
    assert info.value.code is RetCode.NOT_PERMITTED
    assert info.value.detail == "foreign-currency payments not allowed for a file certificate"


def test_a_file_certificate_still_sends_cny_and_a_usbkey_any_currency() -> None:
    POLICY.check(FILE, "PAY", [Decimal("10.00")], currencies={"CNY"})
    POLICY.check(USB, "PAYROLL", [Decimal("10.00")], currencies={"USD", "JPY"})


def test_the_currency_rule_does_not_hide_a_forbidden_trn_code() -> None:
    with pytest.raises(GatewayError) as info:
        POLICY.check(FILE, "DRAFT", [Decimal("10.00")], currencies={"USD"})
    assert info.value.detail == "TrnCode DRAFT not allowed for a file certificate"
