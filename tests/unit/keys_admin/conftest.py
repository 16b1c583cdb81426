"""Fixtures: a fresh dev PKI per test (these tests change files), in tmp dirs only."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.keys.devpki import DevPki, generate_dev_pki

PASSPHRASE = b"correct horse battery staple"


@pytest.fixture
def pki(tmp_path: Path) -> DevPki:
    return generate_dev_pki(tmp_path / "pki")


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def make_crl(
    ca_key_path: Path,
    ca_cert_path: Path,
    serials: list[int],
    *,
    last_update: datetime,
    next_update: datetime | None = None,
    number: int | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by the CA at (key, cert), for import tests."""
    ca = load_cert(ca_cert_path)
    key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(last_update)
        .next_update(next_update or last_update + timedelta(days=7))
    )
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(last_update)
            .build()
        )
    return builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
