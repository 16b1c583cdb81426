"""Certificate and CRL expiry as Prometheus gauges (docs/architecture.md §7, principle 8).

An expired response key makes every ERP refuse our answers; an expired TLS
certificate stops every handshake; a CRL past its nextUpdate makes every
request fail closed (docs/protocol.md §3, 2004).  None of these announces itself
beforehand, so the gateway exports the instants and ``conf/alerts.yml`` warns
days ahead:

- ``gateway_certificate_expiry_timestamp_seconds{kind,name}``: notAfter of
  each certificate in use (``kind`` ∈ response, clearing, tls, client_ca,
  clearing_peer; ``name`` = the certificate's file name — bounded, and never
  a CorpId: client certificates are not listed).
- ``gateway_crl_next_update_timestamp_seconds{issuer}``: nextUpdate of each
  CRL (``issuer`` = the issuing CA's common name: one per configured CA).

Retired ring versions are left out: their expiry no longer matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.keys.files import load_cert_file, load_crl
from gateway.keys.ring import PEER_ROLES, KeyRing
from gateway.ops import metrics

#: Kinds of certificate reported (the ``kind`` label's whole range).
KINDS = ("response", "clearing", "tls", "client_ca", "clearing_peer", "swift_peer")
#: The ``kind`` of CRL items in a report (published on the CRL gauge).
CRL_KIND = "crl"
#: Longest ``issuer`` label kept (an odd CA name must not bloat the exposition).
MAX_ISSUER_LABEL = 64

# To be moved to gateway/ops/metrics.py (one place declares every metric).
CERT_EXPIRY = metrics.CERT_EXPIRY
CRL_NEXT_UPDATE = metrics.CRL_NEXT_UPDATE


@dataclass(frozen=True)
class ExpiryItem:
    """One instant to watch: a certificate's notAfter or (kind ``crl``) a nextUpdate."""

    kind: str
    name: str
    not_after: datetime


def issuer_label(name: x509.Name) -> str:
    """The CA's common name (else its RFC 4514 string), bounded in length."""
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    text = str(cns[0].value) if cns else name.rfc4514_string()
    return text[:MAX_ISSUER_LABEL]


def expiry_report(
    ring: KeyRing,
    ca_certs: Sequence[tuple[str, x509.Certificate]] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    tls_cert: tuple[str, x509.Certificate] | None = None,
    *,
    now: datetime | None = None,
) -> list[ExpiryItem]:
    """Every instant to export: ring certificates (not retired at ``now``), CAs, TLS, CRLs.

    ``ca_certs`` and ``tls_cert`` are (file name, certificate); ``tls_cert``
    is used only when the ring has no ``tls`` role.  Without ``now`` every
    ring version is reported.
    """
    items: list[ExpiryItem] = []
    for role in ring.roles:
        for i, version in enumerate(ring.versions(role)):
            if now is not None and ring.state(role, i, now) == "retired":
                continue
            pairs = [(version.cert_path, version.cert)]
            if role in PEER_ROLES and version.chain_files:
                pairs = list(zip(version.chain_files, version.chain, strict=True))
            items.extend(ExpiryItem(role, p.name, c.not_valid_after_utc) for p, c in pairs)
    if tls_cert is not None and "tls" not in ring.roles:
        items.append(ExpiryItem("tls", tls_cert[0], tls_cert[1].not_valid_after_utc))
    items.extend(ExpiryItem("client_ca", name, c.not_valid_after_utc) for name, c in ca_certs)
    for crl in crls:
        nxt = crl.next_update_utc
        if nxt is not None:  # a CRL without nextUpdate never goes stale (RFC 5280 §5.1.2.5)
            items.append(ExpiryItem(CRL_KIND, issuer_label(crl.issuer), nxt))
    return items


def collect(
    ring: KeyRing,
    client_ca_paths: Sequence[Path],
    crl_paths: Sequence[Path],
    *,
    now: datetime | None = None,
) -> list[ExpiryItem]:
    """``expiry_report`` from the configured files (missing CRL files are skipped)."""
    cas = [(p.name, c) for p in client_ca_paths for c in load_cert_file(p)]
    crls = [load_crl(p) for p in crl_paths if p.exists()]
    return expiry_report(ring, cas, crls, now=now)


def publish(report: Sequence[ExpiryItem]) -> None:
    """Replace the gauges' series with ``report`` (series of removed files disappear).

    When two items share labels (one file name in two roles' lists), the
    earlier instant wins: alerts must fire for the sooner expiry.
    """
    certs: dict[tuple[str, str], float] = {}
    crls: dict[str, float] = {}
    for item in report:
        ts = item.not_after.timestamp()
        if item.kind == CRL_KIND:
            crls[item.name] = min(ts, crls.get(item.name, ts))
        else:
            key = (item.kind, item.name)
            certs[key] = min(ts, certs.get(key, ts))
    CERT_EXPIRY.clear()
    CRL_NEXT_UPDATE.clear()
    for (kind, name), ts in certs.items():
        CERT_EXPIRY.labels(kind, name).set(ts)
    for issuer, ts in crls.items():
        CRL_NEXT_UPDATE.labels(issuer).set(ts)
