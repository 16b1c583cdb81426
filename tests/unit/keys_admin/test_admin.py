"""Security staff's operations on the keys folder: each validated, atomic, and effective."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.keys import admin
from gateway.keys.devpki import (
    DevPki,
    generate_dev_pki,
    issue_client_cert,
    renew_certificate,
    rewrite_crl,
)
from gateway.keys.enrolment import Registry
from gateway.keys.files import write_encrypted_pkcs8
from gateway.keys.kinds import KindPolicy
from gateway.keys.ring import KeyRing, KeyVersion
from gateway.keys.trust import TrustStore, fingerprint, read_deny_list
from gateway.keys.xmldsig import sign_enveloped, verify_enveloped
from gateway.model import CredentialKind

from .conftest import PASSPHRASE, load_cert, make_crl


def trust(pki: DevPki) -> TrustStore:
    return TrustStore.from_files([pki.client_ca], [pki.client_crl], pki.deny_list)


def check_code(pki: DevPki, cert_path: Path) -> str:
    try:
        trust(pki).check([load_cert(cert_path)], pki.now)
    except GatewayError as exc:
        return exc.code.value
    return "ok"


# ---------------------------------------------------------------------- revoke


def test_revoke_by_certificate_file_is_idempotent_and_bites(pki: DevPki) -> None:
    cert_path = pki.client("C100000001", "op01")[1]
    assert check_code(pki, cert_path) == "ok"
    fp = admin.revoke(
        pki.dir, "deny-list.txt", str(cert_path), "lost token\nticket 42", now=pki.now
    )
    assert fp == fingerprint(load_cert(cert_path))
    text = pki.deny_list.read_text()
    assert admin.revoke(pki.dir, "deny-list.txt", str(cert_path), "again", now=pki.now) == fp
    assert pki.deny_list.read_text() == text  # idempotent: nothing appended
    assert text.count(fp) == 1
    assert "lost token ticket 42" in text  # the reason stays one comment line
    assert text.startswith("# Gateway deny list")  # the header is kept
    assert check_code(pki, cert_path) == RetCode.CERT_REVOKED.value


def test_revoke_by_fingerprint_with_colons_and_upper_case(pki: DevPki) -> None:
    cert_path = pki.client("C100000002", "op01")[1]
    fp = fingerprint(load_cert(cert_path))
    pretty = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    assert admin.revoke(pki.dir, "deny-list.txt", pretty, "left the company") == fp
    assert check_code(pki, cert_path) == "2004"


def test_revoke_refuses_junk_and_a_corrupt_deny_list(pki: DevPki) -> None:
    with pytest.raises(admin.AdminError, match="neither a certificate file nor a SHA-256"):
        admin.revoke(pki.dir, "deny-list.txt", "not-a-fingerprint", "x")
    pki.deny_list.write_text("garbage\n")
    fp = "ab" * 32
    with pytest.raises(ConfigError, match="line 1"):
        admin.revoke(pki.dir, "deny-list.txt", fp, "x")
    assert pki.deny_list.read_text() == "garbage\n"


def test_concurrent_revocations_are_all_kept(pki: DevPki) -> None:
    fps = [f"{i:02x}" * 32 for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda fp: admin.revoke(pki.dir, "deny-list.txt", fp, "bulk"), fps))
    assert read_deny_list(pki.deny_list) == frozenset(fps)


def test_revoke_creates_a_missing_deny_list(pki: DevPki) -> None:
    pki.deny_list.unlink()
    fp = admin.revoke(pki.dir, "deny-list.txt", "cd" * 32, "precaution")
    assert pki.deny_list.read_text().startswith("# Gateway deny list")
    assert fp in pki.deny_list.read_text()


# ------------------------------------------------------------------------ CRLs


def test_import_crl_installs_a_newer_crl_that_revokes(pki: DevPki, tmp_path: Path) -> None:
    victim = pki.client("C100000001", "op02")[1]
    crl = make_crl(
        pki.client_ca_key,
        pki.client_ca,
        [load_cert(victim).serial_number],
        last_update=pki.now + timedelta(minutes=5),
        number=int(pki.now.timestamp()) + 300,
    )
    new = tmp_path / "new.crl"
    new.write_bytes(crl.public_bytes(serialization.Encoding.DER))  # DER in, PEM installed
    installed = admin.import_crl(pki.dir, new, [pki.client_ca], ["client-crl.pem"], now=pki.now)
    assert installed == pki.client_crl
    assert pki.client_crl.read_bytes().startswith(b"-----BEGIN X509 CRL-----")
    assert check_code(pki, victim) == "2004"
    before = pki.client_crl.read_bytes()
    admin.import_crl(pki.dir, new, [pki.client_ca], ["client-crl.pem"], now=pki.now)  # same one
    assert pki.client_crl.read_bytes() == before


def test_import_crl_signed_by_another_ca_is_refused(pki: DevPki, tmp_path: Path) -> None:
    other = generate_dev_pki(tmp_path / "other", corporates=())  # same CA *name*, other key
    crl = make_crl(other.client_ca_key, other.client_ca, [1], last_update=pki.now, number=2**40)
    bad = tmp_path / "forged.pem"
    bad.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    before = pki.client_crl.read_bytes()
    with pytest.raises(admin.AdminError, match="signature does not verify"):
        admin.import_crl(pki.dir, bad, [pki.client_ca], ["client-crl.pem"], now=pki.now)
    assert pki.client_crl.read_bytes() == before


def test_import_crl_of_an_unknown_issuer_is_refused(pki: DevPki, tmp_path: Path) -> None:
    crl = make_crl(pki.server_ca_key, pki.server_ca, [], last_update=pki.now, number=2**40)
    path = tmp_path / "bank.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(admin.AdminError, match="is not a configured client CA"):
        admin.import_crl(pki.dir, path, [pki.client_ca], ["client-crl.pem"], now=pki.now)


@pytest.mark.parametrize(
    ("minutes", "number", "problem"),
    [
        (-60, None, "older than the installed"),
        (10, 5, "is not above the installed"),
    ],
)
def test_import_crl_older_than_the_installed_one_is_refused(
    pki: DevPki, tmp_path: Path, minutes: int, number: int | None, problem: str
) -> None:
    installed = x509.load_pem_x509_crl(pki.client_crl.read_bytes()).last_update_utc
    crl = make_crl(
        pki.client_ca_key,
        pki.client_ca,
        [],
        last_update=installed + timedelta(minutes=minutes),
        next_update=pki.now + timedelta(days=7),
        number=number,
    )
    path = tmp_path / "old.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    before = pki.client_crl.read_bytes()
    with pytest.raises(admin.AdminError, match=problem):
        admin.import_crl(pki.dir, path, [pki.client_ca], ["client-crl.pem"], now=pki.now)
    assert pki.client_crl.read_bytes() == before


def test_import_crl_past_its_next_update_or_not_a_crl(pki: DevPki, tmp_path: Path) -> None:
    stale = make_crl(
        pki.client_ca_key,
        pki.client_ca,
        [],
        last_update=pki.now - timedelta(days=8),
        next_update=pki.now - timedelta(days=1),
        number=2**40,
    )
    path = tmp_path / "stale.pem"
    path.write_bytes(stale.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(admin.AdminError, match="already past its nextUpdate"):
        admin.import_crl(pki.dir, path, [pki.client_ca], ["client-crl.pem"], now=pki.now)
    path.write_bytes(b"hello")
    with pytest.raises(ConfigError, match="not a PEM or DER CRL"):
        admin.import_crl(pki.dir, path, [pki.client_ca], ["client-crl.pem"], now=pki.now)


def test_import_crl_picks_the_file_of_its_issuer(pki: DevPki, tmp_path: Path) -> None:
    other = generate_dev_pki(tmp_path / "other", corporates=())
    # a second client CA with another name, configured with its own CRL file
    (pki.dir / "bank-ca.pem").write_bytes(other.server_ca.read_bytes())
    crl = make_crl(other.server_ca_key, other.server_ca, [7], last_update=pki.now, number=1)
    path = tmp_path / "bank.crl"
    path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    cas = [pki.client_ca, pki.dir / "bank-ca.pem"]
    installed = admin.import_crl(pki.dir, path, cas, ["client-crl.pem", "bank.crl"], now=pki.now)
    assert installed == pki.dir / "bank.crl"
    assert not installed.read_bytes().startswith(b"-----")  # not .pem: installed as DER
    assert pki.client_crl.exists()  # the other issuer's file is untouched


# ------------------------------------------------------------------- enrolment


def test_enrol_and_unenrol_round_trip(pki: DevPki) -> None:
    _key, cert_path = issue_client_cert(pki, "C100000001", "op01", CredentialKind.USBKEY)
    fp = fingerprint(load_cert(cert_path))
    kinds = KindPolicy.dev()
    res = admin.enrol(
        pki.enrolment, "C100000001", "op01", cert_path, trust=trust(pki), kinds=kinds, now=pki.now
    )
    assert (res.fingerprint, res.kind, res.changed) == (fp, CredentialKind.USBKEY, True)
    registry = Registry.load(pki.enrolment)
    assert registry.check_signer("C100000001", "op01", fp).oper_id == "op01"
    again = admin.enrol(pki.enrolment, "C100000001", "op01", cert_path)
    assert not again.changed
    assert admin.unenrol(pki.enrolment, "C100000001", "op01", fp.upper()) == (fp,)
    registry = Registry.load(pki.enrolment)
    with pytest.raises(GatewayError) as info:
        registry.check_signer("C100000001", "op01", fp)
    assert info.value.code is RetCode.CERT_NOT_ENROLLED
    old_fp = fingerprint(load_cert(pki.client("C100000001", "op01")[1]))
    registry.check_signer("C100000001", "op01", old_fp)  # the other certificate stays
    assert pki.enrolment.read_text().startswith("# Enrolment registry of the DEV PKI")


def test_enrol_a_new_corporate_needs_accounts_and_networks(pki: DevPki) -> None:
    _key, cert_path = issue_client_cert(pki, "C100000009", "boss", CredentialKind.FILE)
    with pytest.raises(admin.AdminError, match="--account and --network"):
        admin.enrol(pki.enrolment, "C100000009", "boss", cert_path)
    admin.enrol(
        pki.enrolment,
        "C100000009",
        "boss",
        cert_path,
        CredentialKind.FILE,
        ["6222000000009999"],
        ["10.0.0.0/8"],
        name="New Co.",
        kinds=KindPolicy.dev(),
    )
    registry = Registry.load(pki.enrolment)
    corp = registry.corporate("C100000009")
    assert corp is not None and corp.name == "New Co."
    registry.check_source("C100000009", "10.1.2.3")
    registry.check_account("C100000009", "6222000000009999")
    assert admin.unenrol(pki.enrolment, "C100000009", "boss") == (
        fingerprint(load_cert(cert_path)),
    )
    corp = Registry.load(pki.enrolment).corporate("C100000009")
    assert corp is not None and not corp.operators  # the corporate stays, without operators


def test_enrol_refuses_what_the_gateway_would_refuse(pki: DevPki) -> None:
    before = pki.enrolment.read_bytes()
    _k, no_policy = issue_client_cert(pki, "C100000001", "op03", None)
    with pytest.raises(admin.AdminError, match="maps to no credential kind"):
        admin.enrol(pki.enrolment, "C100000001", "op03", no_policy, kinds=KindPolicy.dev())
    _k, file_cert = issue_client_cert(pki, "C100000001", "op03", CredentialKind.FILE)
    with pytest.raises(admin.AdminError, match="of kind file, not usbkey"):
        admin.enrol(
            pki.enrolment,
            "C100000001",
            "op03",
            file_cert,
            CredentialKind.USBKEY,
            kinds=KindPolicy.dev(),
        )
    _k, self_signed = issue_client_cert(
        pki, "C100000001", "op03", CredentialKind.USBKEY, issuer="self"
    )
    with pytest.raises(admin.AdminError, match="2002"):
        admin.enrol(pki.enrolment, "C100000001", "op03", self_signed, trust=trust(pki), now=pki.now)
    with pytest.raises(ConfigError, match="invalid value"):  # Registry.load refuses the result
        admin.enrol(pki.enrolment, "C100000001", "bad id!", file_cert)
    assert pki.enrolment.read_bytes() == before


def test_unenrol_unknown_entries(pki: DevPki) -> None:
    with pytest.raises(admin.AdminError, match="corporate C999 is not enrolled"):
        admin.unenrol(pki.enrolment, "C999", "op01")
    with pytest.raises(admin.AdminError, match="operator op09"):
        admin.unenrol(pki.enrolment, "C100000001", "op09")
    with pytest.raises(admin.AdminError, match="fingerprint is not enrolled"):
        admin.unenrol(pki.enrolment, "C100000001", "op01", "ef" * 32)


# -------------------------------------------------------------------- rotation


def test_rotate_dev_key_signs_and_its_certificate_verifies(pki: DevPki) -> None:
    t1 = (pki.now + timedelta(days=3)).replace(microsecond=0)
    version = admin.rotate(
        pki.dir, "ring.toml", "response", activate=t1, overlap_days=1, now=pki.now
    )
    assert version.activate == t1
    assert version.overlap == timedelta(days=1)
    assert version.key_path is not None
    assert stat.S_IMODE(version.key_path.stat().st_mode) == 0o600
    ring = KeyRing.load(pki.ring, pki.dir, None)
    new_key = ring.signer("response", t1)
    assert new_key.chain[0] == version.cert != load_cert(pki.response_cert)
    version.cert.verify_directly_issued_by(load_cert(pki.server_ca))  # the dev bank CA
    doc = etree.fromstring(b"<Rsp><Head>x</Head></Rsp>")
    sign_enveloped(doc, new_key)
    verified = verify_enveloped(etree.fromstring(etree.tostring(doc)))
    assert verified.signer == version.cert
    assert verified.signer in ring.verifying_certs("response", t1)
    assert verified.signer not in ring.verifying_certs("response", t1 - timedelta(seconds=1))


def test_rotate_refuses_a_past_activation_and_leaves_no_trace(pki: DevPki) -> None:
    ring_before = pki.ring.read_bytes()
    files_before = sorted(os.listdir(pki.dir))
    with pytest.raises(admin.AdminError, match="not in the future"):
        admin.rotate(
            pki.dir, "ring.toml", "clearing", activate=pki.now - timedelta(hours=1), now=pki.now
        )
    with pytest.raises(admin.AdminError, match="UTC offset"):
        admin.rotate(
            pki.dir, "ring.toml", "clearing", activate=pki.now.replace(tzinfo=None), now=pki.now
        )
    with pytest.raises(admin.AdminError, match="dev PKI only"):
        admin.rotate(
            pki.dir,
            "ring.toml",
            "clearing",
            activate=pki.now + timedelta(days=1),
            require_encrypted=True,
            now=pki.now,
        )
    assert pki.ring.read_bytes() == ring_before
    assert sorted(os.listdir(pki.dir)) == files_before


def _bank_issued(pki: DevPki, tmp_path: Path, role_cert: Path) -> tuple[Path, Path]:
    """A key + certificate as the bank's CA would hand them over (outside the keys folder)."""
    key, cert = renew_certificate(
        pki,
        load_cert(role_cert),
        not_before=pki.now - timedelta(days=1),
        not_after=pki.now + timedelta(days=400),
    )
    key_path, cert_path = tmp_path / "issued.key", tmp_path / "issued.pem"
    write_encrypted_pkcs8(key, key_path, PASSPHRASE)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _import_clearing(
    pki: DevPki,
    activate: datetime,
    key_file: Path,
    cert_file: Path,
    *,
    require_encrypted: bool = False,
) -> KeyVersion:
    """``gatewayctl keys rotate clearing --key-file --cert-file``: import a bank-issued pair."""
    return admin.rotate(
        pki.dir,
        "ring.toml",
        "clearing",
        activate=activate,
        passphrase=PASSPHRASE,
        key_file=key_file,
        cert_file=cert_file,
        require_encrypted=require_encrypted,
        now=pki.now,
    )


def test_rotate_imports_an_encrypted_production_key(pki: DevPki, tmp_path: Path) -> None:
    key_path, cert_path = _bank_issued(pki, tmp_path, pki.clearing_cert)
    t1 = (pki.now + timedelta(days=2)).replace(microsecond=0)
    version = _import_clearing(pki, t1, key_path, cert_path)
    assert version.cert == load_cert(cert_path)
    assert version.key_path is not None and version.key_path.parent == pki.dir
    ring = KeyRing.load(pki.ring, pki.dir, PASSPHRASE)
    assert ring.signer("clearing", t1).chain[0] == version.cert


def test_rotate_import_refusals_keep_the_ring(pki: DevPki, tmp_path: Path) -> None:
    key_path, cert_path = _bank_issued(pki, tmp_path, pki.clearing_cert)
    t1 = (pki.now + timedelta(days=2)).replace(microsecond=0)
    ring_before = pki.ring.read_bytes()
    files_before = sorted(os.listdir(pki.dir))
    with pytest.raises(ConfigError, match="does not match"):  # key of another certificate
        _import_clearing(pki, t1, key_path, pki.clearing_cert)
    plain = tmp_path / "plain.key"
    plain.write_bytes(pki.clearing_key.read_bytes())
    plain.chmod(0o600)
    with pytest.raises(ConfigError, match="not encrypted"):
        _import_clearing(pki, t1, plain, pki.clearing_cert, require_encrypted=True)
    key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="gives access to group or others"):
        _import_clearing(pki, t1, key_path, cert_path)
    key_path.chmod(0o600)
    with pytest.raises(admin.AdminError, match="not valid at its activation"):
        _import_clearing(pki, pki.now + timedelta(days=500), key_path, cert_path)
    assert pki.ring.read_bytes() == ring_before
    assert sorted(os.listdir(pki.dir)) == files_before


def test_rotate_clearing_peer_certificate_only(pki: DevPki, tmp_path: Path) -> None:
    _key, cert_path = _bank_issued(pki, tmp_path, pki.clearing_system_cert)
    t1 = (pki.now + timedelta(days=1)).replace(microsecond=0)
    with pytest.raises(admin.AdminError, match="certificates only"):
        admin.rotate(
            pki.dir,
            "ring.toml",
            "clearing_peer",
            activate=t1,
            key_file=_key,
            cert_file=cert_path,
            now=pki.now,
        )
    version = admin.rotate(
        pki.dir,
        "ring.toml",
        "clearing_peer",
        activate=t1,
        overlap_days=3,
        cert_file=cert_path,
        now=pki.now,
    )
    ring = KeyRing.load(pki.ring, pki.dir, None)
    old = load_cert(pki.clearing_system_cert)
    assert ring.verifying_certs("clearing_peer", t1 + timedelta(days=1)) == (version.cert, old)
    assert ring.verifying_certs("clearing_peer", t1 + timedelta(days=3)) == (version.cert,)


def test_seed_ring_from_single_files(pki: DevPki) -> None:
    from gateway.config import KeysConfig
    from gateway.keys.ring import ring_from_config

    pki.ring.unlink()
    single = ring_from_config(KeysConfig(), pki.dir, None, with_keys=False)
    admin.seed_ring(pki.ring, single)
    seeded = KeyRing.load(pki.ring, pki.dir, None)
    assert seeded.roles == single.roles
    assert seeded.current("response", pki.now).cert == load_cert(pki.response_cert)


# ------------------------------------------------------------------------ list


def test_list_keys_states(pki: DevPki) -> None:
    t1 = (pki.now + timedelta(days=10)).replace(microsecond=0)
    rewrite_crl(pki, next_update=pki.now + timedelta(days=7))
    admin.rotate(pki.dir, "ring.toml", "response", activate=t1, overlap_days=2, now=pki.now)

    def states(at_delta: timedelta) -> list[tuple[str, str, str]]:
        ring = KeyRing.load(pki.ring, pki.dir, None, with_keys=False)
        rows = admin.list_keys(ring, [pki.client_ca], [pki.client_crl], now=t1 + at_delta)
        return [(r["kind"], r["name"].split("-2")[0], r["state"]) for r in rows]

    before = states(-timedelta(seconds=1))
    assert ("response", "gateway-response.pem", "active") in before
    assert ("response", "gateway-response", "next") in before
    assert ("client_ca", "client-ca.pem", "trusted") in before
    assert ("crl", "client-crl.pem", "stale") in before  # this CRL lives 7 days
    during = states(timedelta(days=1))
    assert ("response", "gateway-response.pem", "overlap") in during
    assert ("response", "gateway-response", "active") in during
    after = states(timedelta(days=2))
    assert ("response", "gateway-response.pem", "retired") in after
    ring = KeyRing.load(pki.ring, pki.dir, None, with_keys=False)
    row = admin.list_keys(ring, now=pki.now)[0]
    assert set(row) >= {"subject", "serial", "fingerprint", "not_after", "days_left", "state"}
    assert row["days_left"] in (824, 825)  # 825 days, less the sub-second part cut off


def test_rotate_without_files_needs_a_dev_pki(pki: DevPki) -> None:
    pki.server_ca_key.unlink()
    with pytest.raises(admin.AdminError, match="holds no dev PKI"):
        admin.rotate(pki.dir, "ring.toml", "tls", activate=pki.now + timedelta(days=1), now=pki.now)


def test_rotate_swift_peer_certificate_only(pki: DevPki, tmp_path: Path) -> None:
    """docs/foreign-currency.md §4: the SWIFT interface's certificate rotates like the
    clearing systems', certificates only, with an overlap."""
    _key, cert_path = _bank_issued(pki, tmp_path, pki.clearing_system_cert)
    t1 = (pki.now + timedelta(days=1)).replace(microsecond=0)
    with pytest.raises(admin.AdminError, match="swift_peer versions are certificates only"):
        admin.rotate(
            pki.dir, "ring.toml", "swift_peer", activate=t1, key_file=_key,
            cert_file=cert_path, now=pki.now,
        )  # fmt: skip
    version = admin.rotate(
        pki.dir, "ring.toml", "swift_peer", activate=t1, overlap_days=2,
        cert_file=cert_path, now=pki.now,
    )  # fmt: skip
    ring = KeyRing.load(pki.ring, pki.dir, None)
    old = load_cert(pki.clearing_system_cert)
    assert ring.verifying_certs("swift_peer", t1 + timedelta(days=1)) == (version.cert, old)
    assert ring.verifying_certs("swift_peer", t1 + timedelta(days=2)) == (version.cert,)
    # the clearing systems' pins are their own
    assert ring.verifying_certs("clearing_peer", t1 + timedelta(days=2)) == (old,)
