"""Self-signed certificates for tests: a key the gateway never issued or pinned.

The codec tests sign with one, the XML-DSig profile tests wrap odd keys in
one, and the correspondence edge tests sign clearing traffic with one the
gateway must refuse (clearing.md §3).  One builder, so all of them mean the
same thing by "self-signed, valid now".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.keys.xmldsig import SigningKey


def self_signed_cert(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    before: timedelta,
    after: timedelta,
) -> x509.Certificate:
    """A certificate for ``key``, issued by itself, valid from now - before to now + after."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - before)
        .not_valid_after(now + after)
        .sign(key, hashes.SHA256())
    )


def self_signed_key(common_name: str, *, valid: timedelta) -> SigningKey:
    """A fresh P-256 key with a self-signed certificate valid ``valid`` either side of now."""
    key = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(key, (self_signed_cert(key, common_name, before=valid, after=valid),))
