"""The dev PKI: fixed layout, key hygiene, and certificates fit for their jobs."""

from __future__ import annotations

import asyncio
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.keys.devpki import BACKDATE, DEMO_CORPORATES, CorpSpec, DevPki, generate_dev_pki
from gateway.keys.enrolment import Registry
from gateway.keys.trust import TrustStore, fingerprint, read_deny_list
from gateway.keys.xmldsig import load_signing_key
from gateway.model import CredentialKind

FILES = [
    "client-ca.pem",
    "client-ca.key",
    "client-crl.pem",
    "deny-list.txt",
    "gateway-response.pem",
    "gateway-response.key",
    "gateway-clearing.pem",
    "gateway-clearing.key",
    "clearing-system.pem",
    "clearing-system.key",
    "server-ca.pem",
    "server-ca.key",
    "server.pem",
    "server.key",
    "enrolment.toml",
    "clients/C100000001-op01.pem",
    "clients/C100000001-op01.key",
    "clients/C100000001-op02.pem",
    "clients/C100000001-op02.key",
    "clients/C100000002-op01.pem",
    "clients/C100000003-op01.key",
]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_layout_and_key_modes(pki: DevPki) -> None:
    for name in FILES:
        assert (pki.dir / name).is_file(), name
    for key in pki.dir.rglob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, clear
    assert read_deny_list(pki.deny_list) == frozenset()
    assert DevPki.open(pki.dir).client_ca == pki.client_ca


def test_demo_corporates() -> None:
    assert [c.corp_id for c in DEMO_CORPORATES] == ["C100000001", "C100000002", "C100000003"]
    assert dict(DEMO_CORPORATES[0].operators) == {
        "op01": CredentialKind.USBKEY,
        "op02": CredentialKind.FILE,
    }


def test_every_signing_key_loads(pki: DevPki) -> None:
    for key, cert in [
        (pki.response_key, pki.response_cert),
        (pki.clearing_key, pki.clearing_cert),
        (pki.clearing_system_key, pki.clearing_system_cert),
        pki.client("C100000003", "op01"),
    ]:
        loaded = load_signing_key(key, cert)
        assert isinstance(loaded.key, ec.EllipticCurvePrivateKey)


def test_rsa_key_type(pki_rsa: DevPki) -> None:
    loaded = load_signing_key(*pki_rsa.client("C100000001", "op01"))
    assert isinstance(loaded.key, rsa.RSAPrivateKey)
    assert loaded.key.key_size == 2048


def test_crl_and_registry_match(pki: DevPki) -> None:
    crl = x509.load_pem_x509_crl(pki.client_crl.read_bytes())
    ca = load(pki.client_ca)
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0
    assert crl.next_update_utc is not None
    # valid a BACKDATE either side of the PKI's now: the handshake judges it by the
    # system clock, tests issue the PKI as of a pinned date up to a year away
    assert crl.last_update_utc <= pki.now - BACKDATE + timedelta(seconds=1)
    assert crl.next_update_utc >= pki.now + BACKDATE - timedelta(seconds=1)
    reg = Registry.load(pki.enrolment)
    for spec in DEMO_CORPORATES:
        for oper_id, _ in spec.operators:
            fp = fingerprint(load(pki.client(spec.corp_id, oper_id)[1]))
            reg.check_signer(spec.corp_id, oper_id, fp)


def test_client_certificates(pki: DevPki) -> None:
    trust = TrustStore.from_files([pki.client_ca], [pki.client_crl])
    cert = load(pki.client("C100000001", "op01")[1])
    trust.check([cert], pki.now)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_server_certificate(pki: DevPki) -> None:
    cert = load(pki.server_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku


async def test_mutual_tls_with_dev_certificates(pki: DevPki) -> None:
    """A real TLS 1.3 handshake on loopback: server cert for localhost, client cert required."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    server_ctx.load_verify_locations(pki.client_ca)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[dict[str, object]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        writer.write(await reader.readexactly(4))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=pki.server_ca)
    key_path, cert_path = pki.client("C100000002", "op01")
    client_ctx.load_cert_chain(cert_path, key_path)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    subject = dict(x[0] for x in seen[0]["subject"])  # type: ignore[attr-defined]
    assert subject["commonName"] == "C100000002-op01"


def test_custom_corporates_and_clock(tmp_path: Path) -> None:
    now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    spec = CorpSpec("C9", "Nine", ("1",), (("alice", CredentialKind.FILE),), ("10.0.0.0/8",))
    pki = generate_dev_pki(tmp_path / "p", [spec], now=now, days=30)
    reg = Registry.load(pki.enrolment)
    corp = reg.corporate("C9")
    assert corp is not None
    assert str(corp.networks[0]) == "10.0.0.0/8"
    cert = load(pki.client("C9", "alice")[1])
    assert (cert.not_valid_after_utc - now).days == 30
    assert DevPki.open(pki.dir).now == now


def test_bad_key_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_type"):
        generate_dev_pki(tmp_path / "x", key_type="dsa")
