"""Client certificate trust: chain (2002), validity (2003), revocation (2004).

docs/protocol.md §3 fixes the order of these checks after the signature
value: the chain to a configured client CA with key usage digitalSignature
(2002), then the validity period of every certificate on the path at the
gateway's ``now`` (2003), then revocation by the issuer's CRL or the
gateway's own deny list (2004).  The first failure answers.

The path is validated by OpenSSL's own RFC 5280 implementation through
pyOpenSSL (``X509Store`` / ``X509StoreContext``), never by a loop of ours:
path building, every signature, basicConstraints and pathLen, name
constraints, unknown critical extensions, ``X509_STRICT`` and the ``sslclient``
purpose (key usage and extended key usage; the purpose OpenSSL applies to a
client certificate in the TLS handshake, so both paths judge alike).  The
check time is the business clock, pinned with ``X509Store.set_time``.  An
``X509Store`` keeps the first time it was given, so each verification builds
a small store of its own.

One call runs, in the order of docs/protocol.md §3:

1. the structure, time left out (``X509_V_FLAG_NO_CHECK_TIME``): any OpenSSL
   error is 2002; then the keys and signature digests of the path against
   the docs/protocol.md §3 profile (RSA >= 2048 bits, EC P-256/P-384/P-521,
   SHA-2): outside it is 2001 (OpenSSL's "auth level" that would say so is
   not reachable through pyOpenSSL).  Both are independent of the clock and
   cached per chain;
2. the same verification at ``now``: ``certificate has expired`` / ``is not
   yet valid`` is 2003;
3. the deny list, then one ``CRL_CHECK`` verification per certificate:
   ``certificate revoked`` is 2004 (a CRL that lists it revokes it whatever
   its dates), any other CRL error makes the status unknown.

Revocation policy: ``gateway.keys.revocation``, shared with the TLS
handshake.  A serial on a valid CRL of its issuer, or a certificate on the
deny list, is refused with 2004.  No CRL for an issuing CA, a stale or
not-yet-valid CRL, or CRLs without the issuer's valid signature make the
status unknown: ``fail_closed`` (default) refuses with 2004 "revocation
status unknown (...)", ``fail_open`` accepts.

A ``TrustStore`` is immutable: a CRL, deny-list or anchor change builds a new
store and swaps it in (docs/architecture.md principle 6).  That is what makes
the per-chain cache safe: it can never outlive the data it was computed from.
A chain that passed everything is remembered with the interval in which
nothing it depends on changes (the validity of its certificates and of the
CRLs of its issuers); inside it a call costs a dictionary look-up and the
deny list.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.bindings.openssl.binding import Binding
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from OpenSSL import crypto

from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.keys.files import load_cert_file, load_crl
from gateway.keys.revocation import OPENSSL_UNKNOWN, STALE_POLICIES, RevocationPolicy, Unknown
from gateway.keys.xmldsig import MAX_KEYINFO_CERTS, MIN_RSA_BITS

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

# --- OpenSSL verification flags and error codes (x509_vfy.h) ---------------------
#: ``X509_V_FLAG_NO_CHECK_TIME``: pyOpenSSL's ``X509StoreFlags`` lacks it.
_NO_CHECK_TIME = 0x200000
_STRICT = crypto.X509StoreFlags.X509_STRICT
_CRL_CHECK = crypto.X509StoreFlags.CRL_CHECK
#: CERT_NOT_YET_VALID, CERT_HAS_EXPIRED, ERROR_IN_CERT_NOT_BEFORE/AFTER_FIELD → 2003.
_TIME_ERRORS = frozenset({9, 10, 13, 14})
#: CERT_REVOKED → 2004.
_REVOKED = 23
#: CRL_NOT_YET_VALID: the CRL's lastUpdate is after ``now``.
_CRL_NOT_YET_VALID = 11
#: CRL_HAS_EXPIRED, ERROR_IN_CRL_LAST/NEXT_UPDATE_FIELD: a stale CRL.
_CRL_TIME_ERRORS = frozenset({12, 15, 16})

#: docs/protocol.md §3 profile for every key and signature on the path.
_PROFILE_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_PROFILE_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
# pyOpenSSL has no call for the verification purpose; the OpenSSL binding it
# is built on has.  Looked up at import, so a release without it stops the
# daemon at start-up instead of refusing every certificate.
#: The purpose OpenSSL gives a TLS server checking its client (``ssl_client``).
_SSL_CLIENT: int = Binding.lib.X509_PURPOSE_SSL_CLIENT
_set_purpose = Binding.lib.X509_STORE_set_purpose


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


_X509_CACHE: dict[str, crypto.X509] = {}


def _openssl_cert(cert: x509.Certificate) -> crypto.X509:
    """The pyOpenSSL twin of ``cert``, memoised by fingerprint (a DER round trip each).

    One check verifies the same certificates up to four times (module
    docstring); OpenSSL never modifies a certificate it verifies.
    """
    fp = fingerprint(cert)
    twin = _X509_CACHE.get(fp)
    if twin is None:
        if len(_X509_CACHE) >= _FP_CACHE_SIZE:
            _X509_CACHE.clear()
        twin = _X509_CACHE[fp] = crypto.X509.from_cryptography(cert)
    return twin


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


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, _CRL_KEY_TYPES):
        return False
    try:
        return crl.is_signature_valid(key)
    except (ValueError, TypeError):
        return False


def _signer_problem(signer: x509.Certificate) -> str | None:
    """docs/protocol.md §3 on the signer itself, beyond OpenSSL's ``sslclient`` purpose.

    The purpose lets a certificate without keyUsage, or with keyAgreement
    only, act as a TLS client; a request signature needs digitalSignature.
    A CA certificate signs certificates, not requests.
    """
    usage = _key_usage(signer)
    if usage is None or not usage.digital_signature:
        return "certificate lacks key usage digitalSignature"
    if _basic_ca(signer):
        return "a CA certificate cannot sign requests"
    return None


def _profile_problem(path: Sequence[x509.Certificate]) -> str | None:
    """The first key or signature digest on ``path`` outside the docs/protocol.md §3 profile.

    The anchor's own (self-)signature is not judged: it is trusted by
    configuration (RFC 5280 §6.1.1 (d)), but its key signs the next link.
    """
    for depth, cert in enumerate(path):
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                return f"RSA key of {key.key_size} bits on the path (depth {depth})"
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, _PROFILE_CURVES):
                return f"EC curve {key.curve.name} on the path (depth {depth})"
        else:
            return f"key type outside the profile on the path (depth {depth})"
        if depth == len(path) - 1:
            break
        digest = cert.signature_hash_algorithm
        if not isinstance(digest, _PROFILE_HASHES):
            name = "none" if digest is None else digest.name
            return f"signature digest {name} on the path (depth {depth})"
    return None


@dataclass(frozen=True)
class _Passed:
    """A chain that passed the clock-free checks; ``ok_from``/``ok_until`` once fully passed."""

    path: tuple[x509.Certificate, ...]
    ok_from: datetime | None = None
    ok_until: datetime | None = None

    def covers(self, now: datetime) -> bool:
        return (
            self.ok_from is not None
            and self.ok_until is not None
            and self.ok_from <= now < self.ok_until
        )


class TrustStore:
    """Trust anchors, CRLs and the deny list for client certificates (docs/protocol.md §3)."""

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
        self._anchors_x509 = tuple(_openssl_cert(ca) for ca in ca_certs)
        self._denied = frozenset(denied_fingerprints)
        self._policy = RevocationPolicy(stale_crl_policy)
        self.stale_crl_policy = stale_crl_policy
        self._crls_by_issuer: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
        for crl in crls:
            self._crls_by_issuer.setdefault(crl.issuer, []).append(crl)
        for ca in ca_certs:  # a CRL that names a configured CA must carry its signature
            for crl in self._crls_by_issuer.get(ca.subject, ()):
                if not _crl_signed_by(crl, ca):
                    raise ValueError(f"CRL of {ca.subject.rfc4514_string()} has a bad signature")
        # (chain fingerprints) -> the clock-free verdict; see check()
        self._paths: dict[tuple[str, ...], _Passed | GatewayError] = {}

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
        """Raise 2001, 2002, 2003 or 2004 (first failure, in that order) for ``chain`` at ``now``.

        ``chain[0]`` is the signer; the rest are intermediates as found in
        KeyInfo (docs/protocol.md §3), in any order.  ``now`` is timezone-aware.
        """
        if not chain:
            raise _untrusted("no certificate")
        if len(chain) > MAX_KEYINFO_CERTS:  # bounds the work a hostile chain can cause
            raise _untrusted(f"more than {MAX_KEYINFO_CERTS} certificates")
        key = tuple(fingerprint(c) for c in chain)
        entry = self._paths.get(key)
        if entry is None:
            entry = self._clock_free(chain)
            self._remember(key, entry)
        if isinstance(entry, GatewayError):
            raise GatewayError(entry.code, entry.detail)
        if entry.covers(now):
            self._check_deny_list(entry.path)
            return
        path = self._check_validity(chain, now)
        self._check_deny_list(path)
        self._check_revocation(path, now)
        ok_from, ok_until = self._unchanged_between(path)
        if ok_from <= now < ok_until:
            self._remember(key, _Passed(path, ok_from, ok_until))

    def _remember(self, key: tuple[str, ...], entry: _Passed | GatewayError) -> None:
        if len(self._paths) >= CHAIN_CACHE_SIZE:
            self._paths.clear()
        self._paths[key] = entry

    def _clock_free(self, chain: Sequence[x509.Certificate]) -> _Passed | GatewayError:
        """Step 1 of the module docstring: 2002 or 2001, whatever the clock says."""
        try:
            problem = _signer_problem(chain[0])
            if problem is not None:
                return _untrusted(problem)
            code, message, path = self._openssl(chain, flags=_STRICT | _NO_CHECK_TIME)
            if code:
                return _untrusted(f"certificate not issued by a trusted client CA ({message})")
            if len(path) > MAX_PATH_LEN:
                return _untrusted(f"path longer than {MAX_PATH_LEN} certificates")
            problem = _profile_problem(path)
        except RuntimeError:  # our own set-up failed: not the sender's fault
            raise
        except Exception:  # noqa: BLE001 - hostile certificates: unreadable extensions etc.
            # KeyInfo is outside the signed content, so its bytes are the
            # sender's to choose: a certificate that cannot be read (duplicate
            # or malformed extensions) is simply not trusted.
            return _untrusted("certificate cannot be read")
        if problem is not None:
            return GatewayError(RetCode.SIGNATURE_INVALID, f"outside the profile: {problem}")
        return _Passed(path)

    def _check_validity(
        self, chain: Sequence[x509.Certificate], now: datetime
    ) -> tuple[x509.Certificate, ...]:
        """Step 2: the full verification at ``now``; returns the path OpenSSL built."""
        code, message, path = self._openssl(chain, flags=_STRICT, now=now)
        if code in _TIME_ERRORS:
            raise GatewayError(RetCode.CERT_EXPIRED, message)
        if code:  # the clock-free pass succeeded; a path valid at ``now`` was not found
            raise _untrusted(f"certificate not issued by a trusted client CA ({message})")
        return path

    def _check_deny_list(self, path: Sequence[x509.Certificate]) -> None:
        for cert in path:
            if fingerprint(cert) in self._denied:
                raise GatewayError(RetCode.CERT_REVOKED, "certificate on the gateway deny list")

    def _check_revocation(self, path: Sequence[x509.Certificate], now: datetime) -> None:
        """Step 3: each certificate against its issuer's CRLs, by OpenSSL's ``CRL_CHECK``;
        an unknown status is judged by the revocation policy (gateway.keys.revocation),
        the same as at the TLS handshake."""
        for depth, (cert, issuer) in enumerate(itertools.pairwise(path)):
            crls = self._crls_by_issuer.get(issuer.subject)
            if not crls:
                self._unknown(Unknown.NO_CRL)
                continue
            target = [cert, *path[depth + 1 : -1]]
            code, _message, _ = self._openssl(target, _CRL_CHECK, now, crls)
            if code == _CRL_NOT_YET_VALID or code in _CRL_TIME_ERRORS:
                # a CRL that lists the certificate revokes it, whatever its dates
                again, _again_message, _ = self._openssl(
                    target, _CRL_CHECK | _NO_CHECK_TIME, now, crls
                )
                if again == _REVOKED:
                    raise GatewayError(RetCode.CERT_REVOKED, "certificate revoked")
            if code == _REVOKED:
                raise GatewayError(RetCode.CERT_REVOKED, "certificate revoked")
            if code:
                self._unknown(OPENSSL_UNKNOWN.get(code, Unknown.BAD_CRL))

    def _unknown(self, why: Unknown) -> None:
        """Apply the revocation policy to an unknown status (gateway.keys.revocation)."""
        if not self._policy.accepts(why):
            raise GatewayError(RetCode.CERT_REVOKED, RevocationPolicy.detail(why))

    def _unchanged_between(self, path: Sequence[x509.Certificate]) -> tuple[datetime, datetime]:
        """The interval in which no validity period or CRL the verdict used changes.

        A CRL's lastUpdate is not a bound: before it the CRL is consulted all
        the same (module docstring).
        """
        ok_from = max(c.not_valid_before_utc for c in path)
        ok_until = min(c.not_valid_after_utc for c in path)
        for ca in path[1:]:
            for crl in self._crls_by_issuer.get(ca.subject, ()):
                if crl.next_update_utc is not None:
                    ok_until = min(ok_until, crl.next_update_utc)
        return ok_from, ok_until

    def _openssl(
        self,
        chain: Sequence[x509.Certificate],
        flags: int,
        now: datetime | None = None,
        crls: Sequence[x509.CertificateRevocationList] = (),
    ) -> tuple[int, str, tuple[x509.Certificate, ...]]:
        """One ``X509_verify_cert`` of ``chain[0]``: (error code or 0, message, path).

        The ``sslclient`` purpose applies unless CRLs are given: the
        revocation step verifies CA certificates as targets, whose purpose
        was already checked on the whole path.
        """
        store = crypto.X509Store()
        for anchor in self._anchors_x509:
            store.add_cert(anchor)
        for crl in crls:
            store.add_crl(crl)
        store.set_flags(flags)
        if not crls and _set_purpose(store._store, _SSL_CLIENT) != 1:
            raise RuntimeError("OpenSSL refused the sslclient purpose")
        if now is not None:
            store.set_time(now.astimezone(UTC))
        ctx = crypto.X509StoreContext(
            store, _openssl_cert(chain[0]), [_openssl_cert(c) for c in chain[1:]]
        )
        try:
            verified = ctx.get_verified_chain()
        except crypto.X509StoreContextError as exc:
            code, _depth, message = exc.errors
            return int(code), str(message), ()
        return 0, "ok", tuple(c.to_cryptography() for c in verified)


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
