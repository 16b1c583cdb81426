"""Client certificate trust: chain (2002), validity (2003), revocation (2004).

corplink.md §3 fixes the order of these checks after the signature value:
the chain to a configured client CA with key usage digitalSignature (2002),
then the validity period of every certificate on the path at the gateway's
``now`` (2003), then revocation by the issuer's CRL or the gateway's own deny
list (2004).  The first failure answers.

``cryptography``'s ``x509.verification`` does not check revocation (FACTS.md),
so the path is built and revocation checked here with plain certificate and
CRL objects: issuer name AND issuer signature for every link, the CRL's own
signature against the issuer, its nextUpdate, then a serial lookup.

Revocation policy: ``gateway.keys.revocation``, shared with the TLS
handshake.  A serial on a valid CRL of its issuer, or a certificate on the
deny list, is refused with 2004.  No CRL for an issuing CA, a stale or
not-yet-valid CRL, or CRLs without the issuer's valid signature make the
status unknown: ``fail_closed`` (default) refuses with 2004 "revocation
status unknown (...)", ``fail_open`` accepts.

A ``TrustStore`` is immutable: a CRL, deny-list or anchor change builds a new
store and swaps it in (DESIGN.md principle 6).  That is what makes the
per-chain cache safe: it can never outlive the data it was computed from.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.keys.files import load_cert_file, load_crl
from gateway.keys.revocation import STALE_POLICIES, RevocationPolicy, Unknown

__all__ = ["STALE_POLICIES", "TrustStore", "fingerprint", "read_deny_list"]
#: Longest path accepted: signer, up to 3 intermediates, anchor.
MAX_PATH_LEN = 5
#: Bound of the per-store chain cache (entries are small; cleared when full).
CHAIN_CACHE_SIZE = 10_000

_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")

#: Key types that can sign a CRL (``is_signature_valid`` accepts these).
_CRL_KEY_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    dsa.DSAPublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)


_FP_CACHE: dict[int, tuple[x509.Certificate, str]] = {}
_FP_CACHE_SIZE = 4096


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER: the enrolment and deny-list key.

    Memoised per certificate object (``cryptography`` re-encodes the DER on
    every call, ~7 us; the verifier asks several times per request).  The
    cache holds the object itself, so an ``id`` is never reused while cached.
    """
    hit = _FP_CACHE.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    fp = cert.fingerprint(hashes.SHA256()).hex()
    if len(_FP_CACHE) >= _FP_CACHE_SIZE:
        _FP_CACHE.clear()
    _FP_CACHE[id(cert)] = (cert, fp)
    return fp


def _untrusted(detail: str) -> GatewayError:
    return GatewayError(RetCode.CERT_UNTRUSTED, detail)


def _basic_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    """A CA certificate: basicConstraints CA, and keyCertSign when keyUsage is present."""
    if not _basic_ca(cert):
        return False
    usage = _key_usage(cert)
    return usage is None or usage.key_cert_sign


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Issuer name matches and the issuer's key verifies the certificate's signature."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, _CRL_KEY_TYPES):
        return False
    try:
        return crl.is_signature_valid(key)
    except (ValueError, TypeError):
        return False


class _Crl:
    """A CRL with its revoked serials pre-indexed."""

    __slots__ = ("crl", "last_update", "next_update", "serials")

    def __init__(self, crl: x509.CertificateRevocationList) -> None:
        self.crl = crl
        self.last_update = crl.last_update_utc
        self.next_update = crl.next_update_utc
        self.serials = frozenset(r.serial_number for r in crl)


class TrustStore:
    """Trust anchors, CRLs and the deny list for client certificates (corplink.md §3)."""

    def __init__(
        self,
        ca_certs: Sequence[x509.Certificate],
        crls: Sequence[x509.CertificateRevocationList] = (),
        denied_fingerprints: frozenset[str] = frozenset(),
        stale_crl_policy: str = "fail_closed",
    ) -> None:
        if stale_crl_policy not in STALE_POLICIES:
            raise ValueError(f"stale_crl_policy must be one of {', '.join(STALE_POLICIES)}")
        if not ca_certs:
            raise ValueError("at least one CA certificate is required")
        for ca in ca_certs:
            if not _is_ca(ca):
                raise ValueError(f"trust anchor {ca.subject.rfc4514_string()} is not a CA")
        bad = [fp for fp in denied_fingerprints if not _FINGERPRINT_RE.match(fp)]
        if bad:
            raise ValueError("deny list entries must be lowercase hex SHA-256 fingerprints")
        self._anchors = tuple(ca_certs)
        self._anchor_fps = frozenset(fingerprint(ca) for ca in ca_certs)
        self._denied = frozenset(denied_fingerprints)
        self._policy = RevocationPolicy(stale_crl_policy)
        self.stale_crl_policy = stale_crl_policy
        self._crls_by_issuer: dict[x509.Name, list[_Crl]] = {}
        for crl in crls:
            self._crls_by_issuer.setdefault(crl.issuer, []).append(_Crl(crl))
        for ca in ca_certs:  # a CRL that names a configured CA must carry its signature
            for entry in self._crls_by_issuer.get(ca.subject, ()):
                if not _crl_signed_by(entry.crl, ca):
                    raise ValueError(f"CRL of {ca.subject.rfc4514_string()} has a bad signature")
        # (chain fingerprints) -> validated path or the 2002 refusal; see check()
        self._paths: dict[tuple[str, ...], tuple[x509.Certificate, ...] | GatewayError] = {}
        # (id of CRL entry, issuer fingerprint) -> signature valid
        self._crl_sig_ok: dict[tuple[int, str], bool] = {}

    @property
    def ca_certs(self) -> tuple[x509.Certificate, ...]:
        return self._anchors

    @property
    def denied_fingerprints(self) -> frozenset[str]:
        return self._denied

    @classmethod
    def from_files(
        cls,
        ca_paths: Sequence[Path],
        crl_paths: Sequence[Path] = (),
        deny_list_path: Path | None = None,
        stale_crl_policy: str = "fail_closed",
    ) -> TrustStore:
        """Build a store from PEM/DER files; ``ConfigError`` names the file at fault.

        A CA file may hold several PEM certificates; CRLs are PEM or DER and
        may come from several issuers; the deny list is a text file with one
        lowercase SHA-256 fingerprint per line and ``#`` comments.
        """
        cas: list[x509.Certificate] = []
        for path in ca_paths:
            cas.extend(load_cert_file(path))
        crls = [load_crl(path) for path in crl_paths]
        denied = read_deny_list(deny_list_path) if deny_list_path is not None else frozenset()
        try:
            return cls(cas, crls, denied, stale_crl_policy)
        except ValueError as exc:
            files = ", ".join(str(p) for p in (*ca_paths, *crl_paths))
            raise ConfigError(f"{files}: {exc}") from None

    # ------------------------------------------------------------------ checks

    def check(self, chain: Sequence[x509.Certificate], now: datetime) -> None:
        """Raise 2002, 2003 or 2004 (first failure, in that order) for ``chain`` at ``now``.

        ``chain[0]`` is the signer; the rest are intermediates as found in
        KeyInfo (corplink.md §3), in any order.
        """
        if not chain:
            raise _untrusted("no certificate")
        key = tuple(fingerprint(c) for c in chain)
        path = self._paths.get(key)
        if path is None:
            try:
                path = self._build_path(chain)
            except GatewayError as exc:
                path = exc
            except Exception:  # noqa: BLE001 - hostile certificates: unreadable extensions etc.
                # KeyInfo is outside the signed content, so its bytes are the
                # sender's to choose: a certificate cryptography cannot read
                # (duplicate or malformed extensions) is simply not trusted.
                path = _untrusted("certificate extensions cannot be read")
            if len(self._paths) >= CHAIN_CACHE_SIZE:
                self._paths.clear()
            self._paths[key] = path
        if isinstance(path, GatewayError):
            raise GatewayError(path.code, path.detail)
        self._check_validity(path, now)
        self._check_revocation(path, now)

    def _build_path(self, chain: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
        signer = chain[0]
        usage = _key_usage(signer)
        if usage is None or not usage.digital_signature:
            raise _untrusted("certificate lacks key usage digitalSignature")
        if _basic_ca(signer):
            raise _untrusted("a CA certificate cannot sign requests")
        intermediates = list(chain[1:])
        path = [signer]
        current = signer
        while len(path) < MAX_PATH_LEN:
            for anchor in self._anchors:
                if _issued_by(current, anchor):
                    path.append(anchor)
                    return tuple(path)
            for inter in intermediates:
                if inter not in path and _is_ca(inter) and _issued_by(current, inter):
                    path.append(inter)
                    current = inter
                    break
            else:
                break
        raise _untrusted("certificate not issued by a trusted client CA")

    @staticmethod
    def _check_validity(path: Sequence[x509.Certificate], now: datetime) -> None:
        for cert in path:
            if now < cert.not_valid_before_utc:
                raise GatewayError(RetCode.CERT_EXPIRED, "certificate not yet valid")
            if now > cert.not_valid_after_utc:
                raise GatewayError(RetCode.CERT_EXPIRED, "certificate expired")

    def _check_revocation(self, path: Sequence[x509.Certificate], now: datetime) -> None:
        for cert in path:
            if fingerprint(cert) in self._denied:
                raise GatewayError(RetCode.CERT_REVOKED, "certificate on the gateway deny list")
        # path[-1] is the anchor: it is trusted by configuration, not by a CRL.
        for cert, issuer in itertools.pairwise(path):
            self._check_crl(cert, issuer, now)

    def _check_crl(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> None:
        candidates = self._crls_by_issuer.get(issuer.subject)
        if not candidates:
            self._unknown(Unknown.NO_CRL)
            return
        issuer_fp = fingerprint(issuer)
        valid = [c for c in candidates if self._crl_valid(c, issuer, issuer_fp)]
        if any(cert.serial_number in c.serials for c in valid):
            raise GatewayError(RetCode.CERT_REVOKED, "certificate revoked")
        if not valid:
            self._unknown(Unknown.BAD_CRL)
            return
        current = [c for c in valid if c.last_update <= now]
        if not current:
            self._unknown(Unknown.NOT_YET_VALID)
        elif not any(c.next_update is None or c.next_update >= now for c in current):
            self._unknown(Unknown.STALE)

    def _unknown(self, why: Unknown) -> None:
        """Apply the revocation policy to an unknown status (gateway.keys.revocation)."""
        if not self._policy.accepts(why):
            raise GatewayError(RetCode.CERT_REVOKED, RevocationPolicy.detail(why))

    def _crl_valid(self, entry: _Crl, issuer: x509.Certificate, issuer_fp: str) -> bool:
        key = (id(entry), issuer_fp)
        ok = self._crl_sig_ok.get(key)
        if ok is None:
            ok = _crl_signed_by(entry.crl, issuer)
            self._crl_sig_ok[key] = ok
        return ok


# ---------------------------------------------------------------------- loading


def read_deny_list(path: Path) -> frozenset[str]:
    """Read a deny list: one lowercase hex SHA-256 fingerprint per line, ``#`` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{path}: cannot read deny list") from None
    out: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not _FINGERPRINT_RE.match(line):
            raise ConfigError(f"{path}: line {lineno}: not a lowercase hex SHA-256 fingerprint")
        out.add(line)
    return frozenset(out)
