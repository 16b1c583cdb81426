"""corplink.md §3: the whole verification order in one call, on a real dev PKI."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509

from gateway.errors import GatewayError, RetCode
from gateway.keys.devpki import DevPki, issue_client_cert, revoke
from gateway.keys.enrolment import Registry
from gateway.keys.kinds import KindPolicy
from gateway.keys.trust import TrustStore, fingerprint
from gateway.keys.verifier import Credentials, RequestVerifier
from gateway.keys.xmldsig import load_signing_key, sign_enveloped
from gateway.model import CredentialKind

from .docs import pay_doc, reparse

CORP = "C100000001"


def verifier(pki: DevPki, registry: Path | None = None) -> RequestVerifier:
    trust = TrustStore.from_files([pki.client_ca], [pki.client_crl], pki.deny_list)
    return RequestVerifier(trust, Registry.load(registry or pki.enrolment), KindPolicy.dev())


def attempt(
    pki: DevPki,
    key_cert: tuple[Path, Path],
    *,
    corp: str = CORP,
    oper: str = "op01",
    trn_code: str = "PAY",
    amounts: tuple[str, ...] = ("12.00",),
    peer: str = "127.0.0.1",
    registry: Path | None = None,
    days: float = 0,
) -> Credentials | str:
    root = pay_doc(corp_id=corp, oper_id=oper)
    sign_enveloped(root, load_signing_key(*key_cert))
    v = verifier(pki, registry)
    try:
        verified = v.verify_signature(reparse(root))
        return v.check_credentials(
            verified,
            corp,
            oper,
            trn_code,
            [Decimal(a) for a in amounts],
            peer,
            pki.now + timedelta(days=days),
        )
    except GatewayError as exc:
        return exc.code.value


def test_dev_pki_round_trip(pki: DevPki) -> None:
    result = attempt(pki, pki.client(CORP, "op01"))
    assert isinstance(result, Credentials)
    cert = x509.load_pem_x509_certificate(pki.client(CORP, "op01")[1].read_bytes())
    assert result.signer.fingerprint == fingerprint(cert)
    assert result.signer.kind is CredentialKind.USBKEY
    assert result.signer.serial == cert.serial_number
    assert f"CN={CORP}-op01" in result.signer.subject
    assert result.operator.oper_id == "op01"


def test_rsa_dev_pki_round_trip(pki_rsa: DevPki) -> None:
    result = attempt(pki_rsa, pki_rsa.client("C100000002", "op01"), corp="C100000002")
    assert isinstance(result, Credentials)


def test_signature_failure_is_2001(pki: DevPki) -> None:
    root = pay_doc()
    sign_enveloped(root, load_signing_key(*pki.client(CORP, "op01")))
    root.find(".//{urn:corplink:1}Amount").text = "1.00"  # type: ignore[union-attr]
    with pytest.raises(GatewayError) as info:
        verifier(pki).verify_signature(root)
    assert info.value.code is RetCode.SIGNATURE_INVALID


def test_2002_other_ca(pki: DevPki, pki_rsa: DevPki) -> None:
    assert attempt(pki, pki_rsa.client(CORP, "op01")) == "2002"


def test_2003_expired(pki: DevPki) -> None:
    assert attempt(pki, pki.client(CORP, "op01"), days=900) == "2003"


def test_2004_revoked(fresh_pki: DevPki) -> None:
    revoke(fresh_pki, fresh_pki.client(CORP, "op01")[1])
    assert attempt(fresh_pki, fresh_pki.client(CORP, "op01")) == "2004"


def test_2005_not_enrolled(pki: DevPki) -> None:
    op01 = pki.client(CORP, "op01")
    assert attempt(pki, op01, oper="op02") == "2005"  # another operator's name
    assert attempt(pki, op01, corp="C100000002") == "2005"  # another corporate
    assert attempt(pki, op01, oper="op99") == "2005"
    fresh = issue_client_cert(pki, CORP, "op01", CredentialKind.USBKEY)  # valid, not enrolled
    assert attempt(pki, fresh) == "2005"


def test_2006_file_certificate_amounts(pki: DevPki) -> None:
    op02 = pki.client(CORP, "op02")
    ok = attempt(pki, op02, oper="op02", amounts=("49999.99",))
    assert isinstance(ok, Credentials)
    assert ok.signer.kind is CredentialKind.FILE
    assert attempt(pki, op02, oper="op02", amounts=("50000.00",)) == "2006"
    assert (
        attempt(pki, op02, oper="op02", trn_code="PAYROLL", amounts=("1.00", "50000.00")) == "2006"
    )


@pytest.mark.parametrize(("trn_code", "ok"), [("BAL", True), ("PAIN001", False), ("MT101", False)])
def test_2006_file_certificate_trn_codes(pki: DevPki, trn_code: str, ok: bool) -> None:
    result = attempt(pki, pki.client(CORP, "op02"), oper="op02", trn_code=trn_code, amounts=())
    assert isinstance(result, Credentials) is ok
    if not ok:
        assert result == "2006"


def test_2006_no_kind(fresh_pki: DevPki) -> None:
    key_cert = issue_client_cert(fresh_pki, CORP, "op01", None, enrol=True)
    assert attempt(fresh_pki, key_cert) == "2006"


def _custom_registry(pki: DevPki, tmp_path: Path, extra_corp: str, extra_op: str) -> Path:
    fp = fingerprint(x509.load_pem_x509_certificate(pki.client(CORP, "op01")[1].read_bytes()))
    path = tmp_path / "registry.toml"
    path.write_text(
        f"""
[[corporate]]
corp_id = "{CORP}"
name = "Demo"
accounts = ["6222000000000001"]
networks = ["127.0.0.0/8"]
{extra_corp}

[[corporate.operator]]
oper_id = "op01"
fingerprints = ["{fp}"]
{extra_op}
""",
        encoding="utf-8",
    )
    return path


def test_2006_corporate_trn_codes(pki: DevPki, tmp_path: Path) -> None:
    reg = _custom_registry(pki, tmp_path, 'trn_codes = ["STATUS", "BAL"]', "")
    assert isinstance(
        attempt(pki, pki.client(CORP, "op01"), registry=reg, trn_code="BAL"), Credentials
    )
    assert attempt(pki, pki.client(CORP, "op01"), registry=reg) == "2006"


def test_2006_operator_max_item(pki: DevPki, tmp_path: Path) -> None:
    reg = _custom_registry(pki, tmp_path, "", 'max_item = "1000.00"')
    op01 = pki.client(CORP, "op01")
    assert isinstance(attempt(pki, op01, registry=reg, amounts=("1000.00",)), Credentials)
    assert attempt(pki, op01, registry=reg, amounts=("1000.01",)) == "2006"


def test_2007_source(pki: DevPki) -> None:
    assert attempt(pki, pki.client(CORP, "op01"), peer="198.51.100.7") == "2007"
    assert isinstance(attempt(pki, pki.client(CORP, "op01"), peer="::1"), Credentials)


def test_order_first_failure_answers(fresh_pki: DevPki) -> None:
    op01, op02 = fresh_pki.client(CORP, "op01"), fresh_pki.client(CORP, "op02")
    bad_peer = "198.51.100.7"
    # 2006 before 2007
    assert attempt(fresh_pki, op02, oper="op02", amounts=("50000.00",), peer=bad_peer) == "2006"
    # 2005 before 2006 and 2007
    assert attempt(fresh_pki, op02, oper="op01", amounts=("50000.00",), peer=bad_peer) == "2005"
    # 2004 before 2005
    revoke(fresh_pki, op01[1])
    assert attempt(fresh_pki, op01, oper="op02", peer=bad_peer) == "2004"
    # 2003 before 2004
    assert attempt(fresh_pki, op01, oper="op02", peer=bad_peer, days=900) == "2003"


def test_4006_is_the_callers_later_check(pki: DevPki) -> None:
    reg = Registry.load(pki.enrolment)
    reg.check_account(CORP, "6222000000000002")
    with pytest.raises(GatewayError) as info:
        reg.check_account(CORP, "6222000000000101")
    assert info.value.code is RetCode.PAYER_NOT_ENROLLED
