"""A complete development/test PKI in one directory (DEV ONLY: keys unencrypted).

The demo, the integration tests and ``gatewayctl keys dev-pki DIR`` build
their certificates here, so every party (gateway, simulators, tests) agrees
on one layout with fixed file names (``keys/README.md``):

===========================  ===============================================
``client-ca.pem/.key``       the bank's client CA (issues corporate certificates)
``client-crl.pem``           its CRL (empty at first, nextUpdate now + 7 days)
``deny-list.txt``            the gateway's own deny list (empty)
``server-ca.pem/.key``       the bank's CA for its own certificates (TLS, signing)
``server.pem/.key``          TLS server: SAN localhost, 127.0.0.1, ::1; serverAuth
``gateway-response.pem/.key``  the gateway's response signing key (docs/protocol.md §5)
``gateway-clearing.pem/.key``  the gateway's clearing signing key (docs/clearing-link.md §3)
``clearing-system.pem/.key``   the clearing systems' key (self-signed; pinned)
``clients/CORP-OPER.pem/.key`` corporate operator certificates (signing + mTLS)
``enrolment.toml``           the enrolment registry with the real fingerprints
``ring.toml``                the key ring: one version per role, active from
                             the certificates' notBefore (``gateway.keys.ring``)
===========================  ===============================================

Private keys are unencrypted PKCS#8 PEM with mode 0600: production keys are
encrypted (docs/architecture.md §7 "Keys") and never made by this module.  EC P-256 by
default (fast); ``key_type="rsa"`` gives RSA-2048 (docs/protocol.md §3).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.keys.kinds import DEV_FILE_OID, DEV_USBKEY_OID
from gateway.keys.trust import fingerprint
from gateway.model import CredentialKind

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

#: Dev certificates start this long before ``now``: tests and the demo run on a
#: business clock (docs/routing-rules.md §4) that may stand days or months in the past.
BACKDATE = timedelta(days=400)
#: The dev CRL is valid from BACKDATE before ``now`` to BACKDATE after it.  The
#: TLS handshake judges a CRL by the system clock (docs/protocol.md §3), while
#: tests issue the PKI as of a business date that may stand a year away.
CRL_WINDOW = BACKDATE
#: CAs outlive the certificates they issue by this many days.
CA_EXTRA_DAYS = 365
#: Who signs a test certificate: the client CA, itself, or (key path, cert path) of a CA.
Issuer = Literal["client-ca", "self"] | tuple[Path, Path]
_KIND_OID = {CredentialKind.USBKEY: DEV_USBKEY_OID, CredentialKind.FILE: DEV_FILE_OID}


@dataclass(frozen=True)
class CorpSpec:
    """A corporate to enrol in the dev PKI, with its operators and their kinds."""

    corp_id: str
    name: str
    accounts: tuple[str, ...]
    operators: tuple[tuple[str, CredentialKind], ...]
    networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


DEMO_CORPORATES: tuple[CorpSpec, ...] = (
    CorpSpec(
        "C100000001",
        "Demo Trading Co.",
        ("6222000000000001", "6222000000000002"),
        (("op01", CredentialKind.USBKEY), ("op02", CredentialKind.FILE)),
    ),
    CorpSpec(
        "C100000002",
        "Demo Manufacturing Ltd.",
        ("6222000000000101",),
        (("op01", CredentialKind.USBKEY),),
    ),
    CorpSpec(
        "C100000003",
        "Demo Logistics Group",
        ("6222000000000201",),
        (("op01", CredentialKind.USBKEY),),
    ),
)


@dataclass(frozen=True)
class DevPki:
    """The paths of a generated dev PKI (fixed names; see the module docstring)."""

    dir: Path
    key_type: str
    now: datetime  # the instant the PKI was made for; extra certificates start from it
    days: int = 825  # validity of leaf certificates (CAs: one year more)

    @classmethod
    def open(cls, directory: Path) -> DevPki:
        """Re-open a directory written by ``generate_dev_pki``."""
        ca = x509.load_pem_x509_certificate((directory / "client-ca.pem").read_bytes())
        key_type = "rsa" if isinstance(ca.public_key(), rsa.RSAPublicKey) else "ec"
        now = ca.not_valid_before_utc + BACKDATE
        days = (ca.not_valid_after_utc - now).days - CA_EXTRA_DAYS
        return cls(directory, key_type, now, days)

    @property
    def client_ca(self) -> Path:
        return self.dir / "client-ca.pem"

    @property
    def client_ca_key(self) -> Path:
        return self.dir / "client-ca.key"

    @property
    def client_crl(self) -> Path:
        return self.dir / "client-crl.pem"

    @property
    def deny_list(self) -> Path:
        return self.dir / "deny-list.txt"

    @property
    def response_key(self) -> Path:
        return self.dir / "gateway-response.key"

    @property
    def response_cert(self) -> Path:
        return self.dir / "gateway-response.pem"

    @property
    def clearing_key(self) -> Path:
        return self.dir / "gateway-clearing.key"

    @property
    def clearing_cert(self) -> Path:
        return self.dir / "gateway-clearing.pem"

    @property
    def clearing_system_key(self) -> Path:
        return self.dir / "clearing-system.key"

    @property
    def clearing_system_cert(self) -> Path:
        return self.dir / "clearing-system.pem"

    @property
    def server_ca(self) -> Path:
        return self.dir / "server-ca.pem"

    @property
    def server_ca_key(self) -> Path:
        return self.dir / "server-ca.key"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def enrolment(self) -> Path:
        return self.dir / "enrolment.toml"

    @property
    def ring(self) -> Path:
        return self.dir / "ring.toml"

    def client(self, corp_id: str, oper_id: str) -> tuple[Path, Path]:
        """(key path, certificate path) of an operator's client certificate."""
        stem = self.dir / "clients" / f"{corp_id}-{oper_id}"
        return stem.with_suffix(".key"), stem.with_suffix(".pem")


# ------------------------------------------------------------------ primitives


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError("key_type must be 'ec' or 'rsa'")


def _write_key(path: Path, key: PrivateKey) -> None:
    """Unencrypted PKCS#8 PEM, mode 0600 from creation on (dev only)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    path.chmod(0o600)


def _write_certs(path: Path, certs: Iterable[x509.Certificate]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))


def _load_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError(f"{path.name}: unexpected key type")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _name(cn: str, org: str = "CorpLink Dev") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_usage(*, sign: bool, cert_sign: bool = False, encipher: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject: x509.Name,
    key: PrivateKey,
    *,
    issuer: tuple[x509.Certificate, PrivateKey] | None,
    not_before: datetime,
    not_after: datetime,
    ca: bool = False,
    key_usage: x509.KeyUsage | None = None,
    eku: Sequence[x509.ObjectIdentifier] = (),
    policies: Sequence[str] = (),
    san: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    """Build and sign one certificate; ``issuer=None`` makes it self-signed."""
    issuer_name, signing_key = (subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if policies:
        infos = [x509.PolicyInformation(x509.ObjectIdentifier(oid), None) for oid in policies]
        builder = builder.add_extension(x509.CertificatePolicies(infos), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _make_ca(
    cn: str, key_type: str, now: datetime, days: int
) -> tuple[x509.Certificate, PrivateKey]:
    key = _new_key(key_type)
    cert = _issue(
        _name(cn),
        key,
        issuer=None,
        not_before=now - BACKDATE,
        not_after=now + timedelta(days=days + CA_EXTRA_DAYS),
        ca=True,
        key_usage=_key_usage(sign=True, cert_sign=True),
    )
    return cert, key


# ----------------------------------------------------------------- the registry


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def render_registry(corporates: Sequence[dict[str, Any]]) -> str:
    """Render registry data (as ``tomllib`` reads it) back to TOML for ``enrolment.toml``."""
    lines = [
        "# Enrolment registry of the DEV PKI, generated by gateway.keys.devpki.",
        "# Format: keys/enrolment.example.toml.  Never use these certificates in production.",
    ]
    for corp in corporates:
        lines += ["", "[[corporate]]"]
        for key in ("corp_id", "name"):
            lines.append(f"{key} = {_toml_str(corp[key])}")
        for key in ("accounts", "networks", "trn_codes"):
            if key in corp:
                lines.append(f"{key} = {_toml_list(corp[key])}")
        for op in corp.get("operator", []):
            lines += ["", "[[corporate.operator]]", f"oper_id = {_toml_str(op['oper_id'])}"]
            lines.append(f"fingerprints = {_toml_list(op['fingerprints'])}")
            for key in ("max_item", "daily_limit"):
                if key in op:
                    lines.append(f"{key} = {_toml_str(str(op[key]))}")
    return "\n".join(lines) + "\n"


def _enrol(pki: DevPki, corp_id: str, oper_id: str, fp: str) -> None:
    """Add ``fp`` to an operator of ``enrolment.toml`` (the corporate must exist)."""
    data = tomllib.loads(pki.enrolment.read_text(encoding="utf-8"))
    for corp in data.get("corporate", []):
        if corp["corp_id"] == corp_id:
            ops = corp.setdefault("operator", [])
            for op in ops:
                if op["oper_id"] == oper_id:
                    op["fingerprints"].append(fp)
                    break
            else:
                ops.append({"oper_id": oper_id, "fingerprints": [fp]})
            break
    else:
        raise ValueError(f"corporate {corp_id} is not in the registry")
    pki.enrolment.write_text(render_registry(data["corporate"]), encoding="utf-8")


# ---------------------------------------------------------------- public API


def generate_dev_pki(
    out_dir: Path,
    corporates: Sequence[CorpSpec] = DEMO_CORPORATES,
    *,
    key_type: str = "ec",
    now: datetime | None = None,
    days: int = 825,
) -> DevPki:
    """Write a complete dev PKI to ``out_dir`` (created if missing) and return its paths."""
    now = datetime.now(UTC) if now is None else now.astimezone(UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    pki = DevPki(out_dir, key_type, now, days)
    not_before, not_after = now - BACKDATE, now + timedelta(days=days)

    client_ca, client_ca_key = _make_ca("CorpLink Dev Client CA", key_type, now, days)
    _write_certs(pki.client_ca, [client_ca])
    _write_key(pki.client_ca_key, client_ca_key)
    rewrite_crl(pki)
    pki.deny_list.write_text(
        "# Gateway deny list: one lowercase hex SHA-256 certificate fingerprint per line.\n",
        encoding="utf-8",
    )

    bank_ca, bank_ca_key = _make_ca("CorpLink Dev Bank CA", key_type, now, days)
    _write_certs(pki.server_ca, [bank_ca])
    _write_key(pki.server_ca_key, bank_ca_key)

    server_key = _new_key(key_type)
    server = _issue(
        _name("localhost"),
        server_key,
        issuer=(bank_ca, bank_ca_key),
        not_before=not_before,
        not_after=not_after,
        key_usage=_key_usage(sign=True, encipher=key_type == "rsa"),
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=[
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ],
    )
    _write_certs(pki.server_cert, [server])
    _write_key(pki.server_key, server_key)

    for cn, key_path, cert_path in (
        ("CorpLink Dev Gateway Response", pki.response_key, pki.response_cert),
        ("CorpLink Dev Gateway Clearing", pki.clearing_key, pki.clearing_cert),
    ):
        key = _new_key(key_type)
        cert = _issue(
            _name(cn),
            key,
            issuer=(bank_ca, bank_ca_key),
            not_before=not_before,
            not_after=not_after,
            key_usage=_key_usage(sign=True),
        )
        _write_certs(cert_path, [cert])
        _write_key(key_path, key)

    system_key = _new_key(key_type)
    system = _issue(
        _name("Dev Clearing System", "Dev Clearing"),
        system_key,
        issuer=None,
        not_before=not_before,
        not_after=not_after,
        key_usage=_key_usage(sign=True),
    )
    _write_certs(pki.clearing_system_cert, [system])
    _write_key(pki.clearing_system_key, system_key)

    registry: list[dict[str, Any]] = []
    for spec in corporates:
        ops = []
        for oper_id, kind in spec.operators:
            key, cert = _client_cert(pki, spec.corp_id, oper_id, kind, name=spec.name)
            key_path, cert_path = pki.client(spec.corp_id, oper_id)
            _write_certs(cert_path, [cert])
            _write_key(key_path, key)
            ops.append({"oper_id": oper_id, "fingerprints": [fingerprint(cert)]})
        registry.append(
            {
                "corp_id": spec.corp_id,
                "name": spec.name,
                "accounts": list(spec.accounts),
                "networks": list(spec.networks),
                "operator": ops,
            }
        )
    pki.enrolment.write_text(render_registry(registry), encoding="utf-8")
    write_ring(pki)
    return pki


def render_ring(activate: datetime, roles: Sequence[tuple[str, str | None, str]]) -> str:
    """A ring file (format: ``keys/README.md``) with one version per (role, key, cert)."""
    lines = [
        "# Key ring of the DEV PKI, generated by gateway.keys.devpki (format: keys/README.md).",
        "# One version per role; `gatewayctl keys rotate ROLE --activate ...` appends more.",
        "overlap_days = 7",
    ]
    for role, key, cert in roles:
        lines += ["", f"[[{role}]]"]
        if key is not None:
            lines.append(f"key = {_toml_str(key)}")
        lines.append(f"cert = {_toml_str(cert)}")
        lines.append(f"activate = {activate.isoformat()}")
    return "\n".join(lines) + "\n"


def write_ring(pki: DevPki) -> None:
    """Write ``ring.toml``: every role active from the PKI's notBefore (``now - BACKDATE``)."""
    names = [
        ("response", pki.response_key, pki.response_cert),
        ("clearing", pki.clearing_key, pki.clearing_cert),
        ("tls", pki.server_key, pki.server_cert),
        ("clearing_peer", None, pki.clearing_system_cert),
        # no SWIFT interface of its own: the clearing system's certificate stands in
        # (docs/foreign-currency.md §4)
        ("swift_peer", None, pki.clearing_system_cert),
    ]
    roles = [(r, k.name if k is not None else None, c.name) for r, k, c in names]
    activate = (pki.now - BACKDATE).replace(microsecond=0)  # = the certificates' notBefore
    pki.ring.write_text(render_ring(activate, roles), encoding="utf-8")


def renew_certificate(
    pki: DevPki, template: x509.Certificate, *, not_before: datetime, not_after: datetime
) -> tuple[PrivateKey, x509.Certificate]:
    """A new key (same type as the PKI) and a certificate like ``template`` (DEV ONLY).

    Same subject and extensions (key usage, EKU, SAN, policies) with a fresh
    serial and key identifiers; signed by the dev bank CA (``server-ca``), or
    self-signed when ``template`` is (the clearing systems' certificate).
    Used by ``gatewayctl keys rotate`` on a dev PKI.
    """
    key = _new_key(pki.key_type)
    self_signed = template.issuer == template.subject
    issuer = None if self_signed else (_load_cert(pki.server_ca), _load_key(pki.server_ca_key))
    issuer_name, signing_key = (
        (template.subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    skip = (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier)
    for ext in template.extensions:
        if not isinstance(ext.value, skip):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    return key, builder.sign(signing_key, hashes.SHA256())


def _client_cert(
    pki: DevPki,
    corp_id: str,
    oper_id: str,
    kind: CredentialKind | None,
    *,
    name: str,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key_usage_sign: bool = True,
    issuer: Issuer = "client-ca",
) -> tuple[PrivateKey, x509.Certificate]:
    key = _new_key(pki.key_type)
    signer: tuple[x509.Certificate, PrivateKey] | None = None
    if issuer == "client-ca":
        signer = (_load_cert(pki.client_ca), _load_key(pki.client_ca_key))
    elif issuer != "self":
        signer = (_load_cert(issuer[1]), _load_key(issuer[0]))
    cert = _issue(
        _name(f"{corp_id}-{oper_id}", name),
        key,
        issuer=signer,
        not_before=pki.now - BACKDATE if not_before is None else not_before,
        not_after=pki.now + timedelta(days=pki.days) if not_after is None else not_after,
        key_usage=_key_usage(sign=key_usage_sign, encipher=not key_usage_sign),
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        policies=[_KIND_OID[kind]] if kind is not None else [],
    )
    return key, cert


def issue_client_cert(
    pki: DevPki,
    corp_id: str,
    oper_id: str,
    kind: CredentialKind | None,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key_usage_sign: bool = True,
    issuer: Issuer = "client-ca",
    enrol: bool = False,
) -> tuple[Path, Path]:
    """Issue an extra client certificate for tests; returns (key path, certificate path).

    For hostile tests: odd validity, no digitalSignature, self-signed
    (``issuer="self"``), issued by an intermediate (``issuer=(key path, cert
    path)``, see ``issue_intermediate_ca``), or ``kind=None`` (no policy OID).
    The files are ``clients/CORP-OPER-<serial>`` so the operator's enrolled
    certificate stays as it is; ``enrol=True`` adds the new fingerprint to the
    operator in ``enrolment.toml``.
    """
    key, cert = _client_cert(
        pki,
        corp_id,
        oper_id,
        kind,
        name="CorpLink Dev Corporate",
        not_before=not_before,
        not_after=not_after,
        key_usage_sign=key_usage_sign,
        issuer=issuer,
    )
    key_path, cert_path = pki.client(corp_id, f"{oper_id}-{cert.serial_number:x}")
    _write_certs(cert_path, [cert])
    _write_key(key_path, key)
    if enrol:
        _enrol(pki, corp_id, oper_id, fingerprint(cert))
    return key_path, cert_path


def issue_intermediate_ca(pki: DevPki, cn: str = "CorpLink Dev Sub CA") -> tuple[Path, Path]:
    """Issue an intermediate CA under the client CA (for chain tests): (key path, cert path)."""
    key = _new_key(pki.key_type)
    cert = _issue(
        _name(cn),
        key,
        issuer=(_load_cert(pki.client_ca), _load_key(pki.client_ca_key)),
        not_before=pki.now - BACKDATE,
        not_after=pki.now + timedelta(days=pki.days),
        ca=True,
        key_usage=_key_usage(sign=True, cert_sign=True),
    )
    stem = pki.dir / "intermediates" / f"{cert.serial_number:x}"
    _write_certs(stem.with_suffix(".pem"), [cert])
    _write_key(stem.with_suffix(".key"), key)
    return stem.with_suffix(".key"), stem.with_suffix(".pem")


def rewrite_crl(
    pki: DevPki,
    serials: Iterable[int] = (),
    *,
    last_update: datetime | None = None,
    next_update: datetime | None = None,
) -> None:
    """Write ``client-crl.pem`` listing ``serials``, signed by the client CA.

    Defaults: lastUpdate ``CRL_WINDOW`` before the PKI's ``now``, nextUpdate
    ``CRL_WINDOW`` after it.  Tests pass an old ``next_update`` to make a
    stale CRL.
    """
    ca = _load_cert(pki.client_ca)
    ca_key = _load_key(pki.client_ca_key)
    last = pki.now - CRL_WINDOW if last_update is None else last_update
    nxt = pki.now + CRL_WINDOW if next_update is None else next_update
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(last)
        .next_update(nxt)
        .add_extension(x509.CRLNumber(int(last.timestamp())), critical=False)
    )
    for serial in sorted(set(serials)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    pki.client_crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))


def revoke(pki: DevPki, cert_path: Path) -> None:
    """Add the certificate's serial to ``client-crl.pem`` (re-signed, fresh dates)."""
    cert = _load_cert(cert_path)
    old = x509.load_pem_x509_crl(pki.client_crl.read_bytes())
    rewrite_crl(pki, [r.serial_number for r in old] + [cert.serial_number])
