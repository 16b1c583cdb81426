"""corplink.md §3: chain (2002) → validity (2003) → revocation (2004), first failure answers."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.clock import SHANGHAI
from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.keys.devpki import (
    DevPki,
    issue_client_cert,
    issue_intermediate_ca,
    revoke,
    rewrite_crl,
)
from gateway.keys.trust import TrustStore, fingerprint, read_deny_list
from gateway.model import CredentialKind

from .corpus import Node, issue

USB = CredentialKind.USBKEY


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def store(pki: DevPki, policy: str = "fail_closed") -> TrustStore:
    return TrustStore.from_files([pki.client_ca], [pki.client_crl], pki.deny_list, policy)


def code_of(trust: TrustStore, chain: list[x509.Certificate], pki: DevPki, **delta: float) -> str:
    now = pki.now + timedelta(**delta)
    try:
        trust.check(chain, now)
    except GatewayError as exc:
        return exc.code.value
    return "ok"


def test_enrolled_client_cert_passes(pki: DevPki) -> None:
    leaf = cert(pki.client("C100000001", "op01")[1])
    store(pki).check([leaf], pki.now.astimezone(SHANGHAI))


def test_fingerprint_is_sha256_of_der(pki: DevPki) -> None:
    leaf = cert(pki.client("C100000001", "op01")[1])
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert fingerprint(leaf) == hashlib.sha256(der).hexdigest()


# ----------------------------------------------------------------------- 2002


def test_other_ca_with_the_same_name(pki: DevPki, pki_rsa: DevPki) -> None:
    """The RSA dev PKI's client CA has the same DN: only the signature tells them apart."""
    foreign = cert(pki_rsa.client("C100000001", "op01")[1])
    assert foreign.issuer == cert(pki.client_ca).subject
    assert code_of(store(pki), [foreign], pki) == "2002"


def test_self_signed(pki: DevPki) -> None:
    _, path = issue_client_cert(pki, "C100000001", "op01", USB, issuer="self")
    assert code_of(store(pki), [cert(path)], pki) == "2002"


def test_missing_digital_signature(pki: DevPki) -> None:
    _, path = issue_client_cert(pki, "C100000001", "op01", USB, key_usage_sign=False)
    assert code_of(store(pki), [cert(path)], pki) == "2002"


def test_ca_certificate_cannot_sign_requests(pki: DevPki) -> None:
    assert code_of(store(pki), [cert(pki.client_ca)], pki) == "2002"


def test_intermediate_must_be_supplied(pki: DevPki) -> None:
    sub_key, sub_cert = issue_intermediate_ca(pki)
    _, path = issue_client_cert(pki, "C100000001", "op01", USB, issuer=(sub_key, sub_cert))
    trust = store(pki, "fail_open")  # the intermediate has no CRL (test_intermediate_crl)
    assert code_of(trust, [cert(path)], pki) == "2002"
    assert code_of(trust, [cert(path), cert(sub_cert)], pki) == "ok"


def test_non_ca_cannot_act_as_intermediate(pki: DevPki) -> None:
    """A leaf (CA:false) used to issue another certificate does not extend the chain."""
    leaf_key, leaf_cert = pki.client("C100000002", "op01")
    _, path = issue_client_cert(pki, "C100000001", "op01", USB, issuer=(leaf_key, leaf_cert))
    assert code_of(store(pki), [cert(path), cert(leaf_cert)], pki) == "2002"


def test_empty_chain(pki: DevPki) -> None:
    assert code_of(store(pki), [], pki) == "2002"


def test_anchor_must_be_a_ca(pki: DevPki) -> None:
    with pytest.raises(ConfigError, match="not a CA"):
        TrustStore.from_files([pki.client("C100000001", "op01")[1]])


# ----------------------------------------------------------------------- 2003


def test_expired(pki: DevPki) -> None:
    _, path = issue_client_cert(
        pki,
        "C100000001",
        "op01",
        USB,
        not_before=pki.now - timedelta(days=30),
        not_after=pki.now - timedelta(seconds=1),
    )
    assert code_of(store(pki), [cert(path)], pki) == "2003"


def test_not_yet_valid(pki: DevPki) -> None:
    _, path = issue_client_cert(
        pki, "C100000001", "op01", USB, not_before=pki.now + timedelta(days=1)
    )
    trust = store(pki)
    assert code_of(trust, [cert(path)], pki) == "2003"
    assert code_of(trust, [cert(path)], pki, days=2) == "ok"  # same store, later clock


def test_validity_boundaries(pki: DevPki) -> None:
    leaf = cert(pki.client("C100000001", "op01")[1])
    trust = TrustStore([cert(pki.client_ca)], stale_crl_policy="fail_open")  # validity only
    trust.check([leaf], leaf.not_valid_after_utc)
    with pytest.raises(GatewayError) as info:
        trust.check([leaf], leaf.not_valid_after_utc + timedelta(seconds=1))
    assert info.value.code is RetCode.CERT_EXPIRED


def test_order_2002_before_2003(pki: DevPki) -> None:
    _, path = issue_client_cert(
        pki,
        "C100000001",
        "op01",
        USB,
        issuer="self",
        not_after=pki.now - timedelta(days=1),
        not_before=pki.now - timedelta(days=2),
    )
    assert code_of(store(pki), [cert(path)], pki) == "2002"


# ----------------------------------------------------------------------- 2004


def test_crl_revoked(fresh_pki: DevPki) -> None:
    leaf_path = fresh_pki.client("C100000001", "op01")[1]
    other = cert(fresh_pki.client("C100000002", "op01")[1])
    before = store(fresh_pki)
    revoke(fresh_pki, leaf_path)
    after = store(fresh_pki)  # a CRL change builds a new store
    assert code_of(before, [cert(leaf_path)], fresh_pki) == "ok"
    assert code_of(after, [cert(leaf_path)], fresh_pki) == "2004"
    assert code_of(after, [other], fresh_pki) == "ok"


def test_order_2003_before_2004(fresh_pki: DevPki) -> None:
    _, path = issue_client_cert(
        fresh_pki,
        "C100000001",
        "op01",
        USB,
        not_before=fresh_pki.now - timedelta(days=30),
        not_after=fresh_pki.now - timedelta(days=1),
    )
    revoke(fresh_pki, path)
    assert code_of(store(fresh_pki), [cert(path)], fresh_pki) == "2003"


def test_deny_list(fresh_pki: DevPki) -> None:
    leaf = cert(fresh_pki.client("C100000001", "op01")[1])
    fresh_pki.deny_list.write_text(
        f"# incident 42\n{fingerprint(leaf)}  # lost token\n\n", encoding="utf-8"
    )
    assert code_of(store(fresh_pki), [leaf], fresh_pki) == "2004"


def test_stale_crl_fail_closed_and_open(fresh_pki: DevPki) -> None:
    leaf = cert(fresh_pki.client("C100000001", "op01")[1])
    rewrite_crl(fresh_pki, next_update=fresh_pki.now + timedelta(days=7))
    # CRL is fresh for 7 days
    assert code_of(store(fresh_pki), [leaf], fresh_pki, days=6) == "ok"
    with pytest.raises(GatewayError) as info:
        store(fresh_pki).check([leaf], fresh_pki.now + timedelta(days=8))
    assert info.value.code is RetCode.CERT_REVOKED
    assert info.value.detail == "revocation status unknown (stale CRL)"
    assert code_of(store(fresh_pki, "fail_open"), [leaf], fresh_pki, days=8) == "ok"


def test_stale_crl_still_revokes_when_fail_open(fresh_pki: DevPki) -> None:
    leaf_path = fresh_pki.client("C100000001", "op01")[1]
    revoke(fresh_pki, leaf_path)
    assert code_of(store(fresh_pki, "fail_open"), [cert(leaf_path)], fresh_pki, days=8) == "2004"


def test_no_crl_configured_follows_the_policy(fresh_pki: DevPki) -> None:
    """A CA without a CRL: status unknown, refused unless fail_open (gateway.keys.revocation)."""
    leaf = cert(fresh_pki.client("C100000001", "op01")[1])
    with pytest.raises(GatewayError) as info:
        TrustStore.from_files([fresh_pki.client_ca]).check([leaf], fresh_pki.now)
    assert (info.value.code, info.value.detail) == (
        RetCode.CERT_REVOKED,
        "revocation status unknown (no CRL)",
    )
    trust = TrustStore.from_files([fresh_pki.client_ca], stale_crl_policy="fail_open")
    assert code_of(trust, [leaf], fresh_pki, days=30) == "ok"


def test_crl_not_yet_valid_follows_the_policy(fresh_pki: DevPki) -> None:
    leaf = cert(fresh_pki.client("C100000001", "op01")[1])
    later = fresh_pki.now + timedelta(days=1)
    rewrite_crl(fresh_pki, last_update=later, next_update=later + timedelta(days=7))
    with pytest.raises(GatewayError) as info:
        store(fresh_pki).check([leaf], fresh_pki.now)
    assert info.value.detail == "revocation status unknown (CRL not yet valid)"
    assert code_of(store(fresh_pki, "fail_open"), [leaf], fresh_pki) == "ok"
    assert code_of(store(fresh_pki), [leaf], fresh_pki, days=2) == "ok"


def test_crl_with_foreign_signature_is_a_config_error(fresh_pki: DevPki, pki_rsa: DevPki) -> None:
    """pki_rsa's client CA has the same name, so its CRL claims to be ours."""
    with pytest.raises(ConfigError, match="bad signature"):
        TrustStore.from_files([fresh_pki.client_ca], [pki_rsa.client_crl])


def test_der_crl_and_several_issuers(fresh_pki: DevPki, tmp_path: Path) -> None:
    leaf_path = fresh_pki.client("C100000001", "op01")[1]
    revoke(fresh_pki, leaf_path)
    crl = x509.load_pem_x509_crl(fresh_pki.client_crl.read_bytes())
    der = tmp_path / "client.crl"
    der.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    trust = TrustStore.from_files([fresh_pki.client_ca, fresh_pki.server_ca], [der])
    assert code_of(trust, [cert(leaf_path)], fresh_pki) == "2004"


def test_intermediate_crl(fresh_pki: DevPki) -> None:
    """Revocation of a certificate issued by an intermediate, by the intermediate's CRL."""
    sub_key, sub_cert = issue_intermediate_ca(fresh_pki)
    _, path = issue_client_cert(fresh_pki, "C100000001", "op01", USB, issuer=(sub_key, sub_cert))
    leaf, sub = cert(path), cert(sub_cert)
    ca = cert(fresh_pki.client_ca)
    root_crl = x509.load_pem_x509_crl(fresh_pki.client_crl.read_bytes())
    sub_crl = make_crl(sub, load_key(sub_key), [leaf.serial_number], fresh_pki.now)
    empty_sub_crl = make_crl(sub, load_key(sub_key), [], fresh_pki.now)
    assert code_of(TrustStore([ca], [root_crl, empty_sub_crl]), [leaf, sub], fresh_pki) == "ok"
    assert code_of(TrustStore([ca], [root_crl, sub_crl]), [leaf, sub], fresh_pki) == "2004"
    # the intermediate without a CRL of its own: status unknown (gateway.keys.revocation)
    assert code_of(TrustStore([ca], [root_crl]), [leaf, sub], fresh_pki) == "2004"
    # a CRL that claims the intermediate's name but carries another key's signature
    forged = make_crl(sub, load_key(fresh_pki.client_ca_key), [], fresh_pki.now)
    assert code_of(TrustStore([ca], [root_crl, forged]), [leaf, sub], fresh_pki) == "2004"
    open_store = TrustStore([ca], [root_crl, forged], stale_crl_policy="fail_open")
    assert code_of(open_store, [leaf, sub], fresh_pki) == "ok"
    # the client CA's CRL revokes the intermediate itself
    revoke(fresh_pki, sub_cert)
    assert code_of(store(fresh_pki), [leaf, sub], fresh_pki) == "2004"


def load_key(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), None)


def make_crl(
    issuer: x509.Certificate, key: Any, serials: list[int], now: datetime
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + timedelta(days=1))
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(key, hashes.SHA256())


def test_crl_rewrite_helpers(fresh_pki: DevPki) -> None:
    rewrite_crl(fresh_pki, [1, 2, 3], next_update=fresh_pki.now + timedelta(hours=1))
    crl = x509.load_pem_x509_crl(fresh_pki.client_crl.read_bytes())
    assert {r.serial_number for r in crl} == {1, 2, 3}


# ------------------------------------------------------------------- loading


def test_deny_list_format_errors(tmp_path: Path) -> None:
    path = tmp_path / "deny.txt"
    path.write_text("# ok\n" + "A" * 64 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_deny_list(path)
    assert str(path) in str(info.value)
    assert "line 2" in str(info.value)
    path.write_text("# only comments\n\n", encoding="utf-8")
    assert read_deny_list(path) == frozenset()


def test_from_files_names_the_bad_file(tmp_path: Path, pki: DevPki) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"junk\.pem"):
        TrustStore.from_files([junk])
    with pytest.raises(ConfigError, match=r"missing\.crl"):
        TrustStore.from_files([pki.client_ca], [tmp_path / "missing.crl"])
    with pytest.raises(ValueError, match="stale_crl_policy"):
        TrustStore([cert(pki.client_ca)], stale_crl_policy="maybe")


def test_cached_refusal_is_raised_every_time(pki: DevPki) -> None:
    _, path = issue_client_cert(pki, "C100000001", "op01", USB, issuer="self")
    trust = store(pki)
    for _ in range(3):
        assert code_of(trust, [cert(path)], pki) == "2002"


# ------------------------------------------------------- OpenSSL and the cache


def test_clock_in_another_timezone_is_the_same_instant(pki: DevPki) -> None:
    """``X509Store.set_time`` reads the wall-clock fields: the store must pass UTC."""
    _, path = issue_client_cert(
        pki, "C100000001", "op01", USB, not_after=pki.now + timedelta(hours=1)
    )
    trust = store(pki)
    trust.check([cert(path)], pki.now.astimezone(SHANGHAI))  # 8 h ahead on the wall clock
    with pytest.raises(GatewayError) as info:
        trust.check([cert(path)], (pki.now + timedelta(hours=2)).astimezone(SHANGHAI))
    assert info.value.code is RetCode.CERT_EXPIRED


def test_passed_chain_is_cached_until_its_crl_goes_stale(
    fresh_pki: DevPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaf = cert(fresh_pki.client("C100000001", "op01")[1])
    rewrite_crl(fresh_pki, next_update=fresh_pki.now + timedelta(days=7))  # a CA's weekly CRL
    trust = store(fresh_pki)
    calls: list[int] = []
    real = TrustStore._openssl

    def counting(self: TrustStore, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TrustStore, "_openssl", counting)
    assert code_of(trust, [leaf], fresh_pki) == "ok"
    first = len(calls)
    assert first >= 3  # clock-free, at now, the CRL
    assert code_of(trust, [leaf], fresh_pki, days=6) == "ok"
    assert len(calls) == first  # inside the interval: no verification at all
    assert code_of(trust, [leaf], fresh_pki, days=8) == "2004"  # the CRL went stale
    assert len(calls) > first


def test_deny_list_applies_to_a_cached_chain(fresh_pki: DevPki) -> None:
    leaf = cert(fresh_pki.client("C100000001", "op01")[1])
    assert code_of(store(fresh_pki), [leaf], fresh_pki) == "ok"
    trust = TrustStore(
        [cert(fresh_pki.client_ca)], denied_fingerprints=frozenset({fingerprint(leaf)})
    )
    for _ in range(2):
        assert code_of(trust, [leaf], fresh_pki) == "2004"


def test_fail_open_stale_level_does_not_hide_a_revoked_intermediate(fresh_pki: DevPki) -> None:
    """Each level is judged alone: a stale CRL below does not stop the check above."""
    sub_key, sub_cert = issue_intermediate_ca(fresh_pki)
    _, path = issue_client_cert(fresh_pki, "C100000001", "op01", USB, issuer=(sub_key, sub_cert))
    leaf, sub = cert(path), cert(sub_cert)
    ca = cert(fresh_pki.client_ca)
    stale_sub_crl = make_crl(sub, load_key(sub_key), [], fresh_pki.now - timedelta(days=3))
    revoke(fresh_pki, sub_cert)
    ca_crl = x509.load_pem_x509_crl(fresh_pki.client_crl.read_bytes())
    open_store = TrustStore([ca], [stale_sub_crl, ca_crl], stale_crl_policy="fail_open")
    assert code_of(open_store, [leaf, sub], fresh_pki) == "2004"
    fresh_ca_crl = make_crl(ca, load_key(fresh_pki.client_ca_key), [], fresh_pki.now)
    open_store = TrustStore([ca], [stale_sub_crl, fresh_ca_crl], stale_crl_policy="fail_open")
    assert code_of(open_store, [leaf, sub], fresh_pki) == "ok"


def test_path_length_and_certificate_bounds(pki: DevPki) -> None:
    """Signer, up to 3 intermediates and the anchor; at most 8 certificates (KeyInfo's bound)."""
    ca = Node(cert(pki.client_ca), load_key(pki.client_ca_key))
    subs = [ca]
    for level in range(4):
        subs.append(
            issue(
                f"Sub CA {level}",
                ec.generate_private_key(ec.SECP256R1()),
                subs[-1],
                pki.now,
                ca=True,
            )
        )
    leaf3 = issue("C100000001-op01", ec.generate_private_key(ec.SECP256R1()), subs[3], pki.now)
    leaf4 = issue("C100000001-op01", ec.generate_private_key(ec.SECP256R1()), subs[4], pki.now)
    trust = store(pki, "fail_open")  # the intermediates publish no CRL: only the bounds matter
    three = [leaf3.cert, *(s.cert for s in subs[1:4])]
    assert code_of(trust, three, pki) == "ok"
    assert code_of(trust, [leaf4.cert, *(s.cert for s in subs[1:5])], pki) == "2002"
    filler = cert(pki.client("C100000002", "op01")[1])
    assert code_of(trust, [*three, *[filler] * 4], pki) == "ok"
    assert code_of(trust, [*three, *[filler] * 5], pki) == "2002"


def test_key_outside_the_profile_on_the_path_is_2001(pki: DevPki, tmp_path: Path) -> None:
    ca = Node(cert(pki.client_ca), load_key(pki.client_ca_key))
    weak = issue("Weak Sub CA", rsa.generate_private_key(65537, 1024), ca, pki.now, ca=True)  # noqa: S505
    leaf = issue("C100000001-op01", load_key(pki.client("C100000001", "op01")[0]), weak, pki.now)
    with pytest.raises(GatewayError) as info:
        store(pki).check([leaf.cert, weak.cert], pki.now)
    assert info.value.code is RetCode.SIGNATURE_INVALID
    assert "RSA key of 1024 bits" in info.value.detail
