"""TLS contexts for the CorpLink listeners and their clients (docs/protocol.md §1).

docs/protocol.md §1: "TLS 1.2 or 1.3 only; TLS 1.3 preferred.  A listener may
require a client certificate (mutual TLS)."  OpenSSL negotiates the highest
version both sides offer, so allowing 1.2..1.3 is what "1.3 preferred" means
on the wire.  Compression is off (CRIME) and renegotiation is refused
(docs/architecture.md §9 "asyncio, TLS, processes").

Client certificates are checked for revocation in the handshake (the policy
of ``gateway.keys.revocation``, docs/protocol.md §3): every CA on the path
needs its CRL (``VERIFY_CRL_CHECK_CHAIN``), and a refused certificate gets a
TLS alert (``gateway.net.listener``).  Only the key-exchange groups X25519,
P-256 and P-384 are accepted, and the CertificateRequest names the client
CAs (``gateway.net.openssl``: Python's ``ssl`` has no API for either).

Certificate rotation (docs/architecture.md §7, principle 6) must never touch a context that
live handshakes use: a failed half-reload of an ``SSLContext`` broke every
later handshake (docs/architecture.md §9).  So a new context is built and checked in full
by ``server_context`` first, then ``SwappableContext.swap`` makes new
handshakes use it while open connections keep the one they started with.
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from asyncio import sslproto
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization

from gateway.errors import ConfigError
from gateway.keys.files import load_crl
from gateway.keys.revocation import RevocationPolicy
from gateway.net import openssl

ClientCertMode = Literal["none", "optional", "required"]

_VERIFY_MODES: dict[str, ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

# TLS 1.2 suites: forward-secret AEAD only (Mozilla "intermediate").  TLS 1.3
# suites are all AEAD and are configured separately by OpenSSL.
_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
    )
)


def _harden(ctx: ssl.SSLContext) -> None:
    """Apply the docs/protocol.md §1 version range and the docs/architecture.md §9 options."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_ciphers(_TLS12_CIPHERS)


class _PassphraseProbe:
    """Password callback that never prompts on a terminal.

    Without a callback OpenSSL would ask interactively for the passphrase of
    an encrypted key; a daemon must fail instead, and say why.
    """

    def __init__(self, passphrase: bytes | None) -> None:
        self._passphrase = passphrase
        self.asked = False

    def __call__(self) -> bytes:
        self.asked = True
        return self._passphrase if self._passphrase is not None else b""


def _load_chain(
    ctx: ssl.SSLContext, cert_path: Path, key_path: Path | None, passphrase: bytes | None
) -> None:
    probe = _PassphraseProbe(passphrase)
    try:
        ctx.load_cert_chain(cert_path, key_path, password=probe)
    except FileNotFoundError as exc:
        msg = f"TLS certificate or key file not found: {exc.filename}"
        raise ValueError(msg) from exc
    except ssl.SSLError as exc:
        if probe.asked and passphrase is None:
            msg = f"TLS key {key_path or cert_path} is encrypted and no passphrase was given"
        elif probe.asked:
            msg = f"TLS key {key_path or cert_path}: wrong passphrase or unreadable key"
        else:
            msg = (
                f"TLS certificate {cert_path} and key {key_path or cert_path} "
                f"could not be loaded or do not match ({exc.reason})"
            )
        raise ValueError(msg) from exc
    except OSError as exc:
        msg = f"TLS certificate or key could not be read: {exc.filename}"
        raise ValueError(msg) from exc


def _load_cas(ctx: ssl.SSLContext, ca_paths: Sequence[Path], what: str) -> None:
    for path in ca_paths:
        try:
            ctx.load_verify_locations(cafile=path)
        except FileNotFoundError as exc:
            msg = f"{what} file not found: {path}"
            raise ValueError(msg) from exc
        except (ssl.SSLError, OSError) as exc:
            msg = f"{what} file could not be loaded: {path}"
            raise ValueError(msg) from exc


def _load_crls(ctx: ssl.SSLContext, crl_paths: Sequence[Path]) -> None:
    """Load CRLs (PEM or DER) into the context's store.

    ``load_verify_locations(cadata=...)`` takes certificates only; a PEM
    *file* given as ``cafile`` may hold CRLs, so the CRLs are written as PEM
    to a private temporary file that is removed at once.
    """
    pem = b""
    for path in crl_paths:
        try:
            pem += load_crl(path).public_bytes(serialization.Encoding.PEM)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    if not pem:
        return
    with tempfile.NamedTemporaryFile(prefix="gateway-crls-", suffix=".pem") as tmp:
        tmp.write(pem)
        tmp.flush()
        try:
            ctx.load_verify_locations(cafile=tmp.name)
        except (ssl.SSLError, OSError) as exc:
            msg = "CRL files could not be loaded into the TLS context"
            raise ValueError(msg) from exc


def server_context(
    cert_path: Path,
    key_path: Path,
    *,
    client_cert: str = "none",
    client_ca_paths: Sequence[Path] = (),
    passphrase: bytes | None = None,
    crl_paths: Sequence[Path] = (),
    revocation: RevocationPolicy | None = None,
) -> ssl.SSLContext:
    """Build a listener's server context, checked in full before it is used.

    ``client_cert``: ``"none"`` (no certificate asked), ``"optional"`` (asked,
    verified against ``client_ca_paths`` if sent) or ``"required"`` (mutual
    TLS: a handshake without a valid client certificate fails).  Raises
    ``ValueError`` naming the problem for an unknown mode, a mode that needs
    client CAs without any, CAs given with mode ``"none"`` (they would be
    silently ignored), a missing file, a wrong passphrase or a certificate
    that does not match its key.

    ``revocation`` turns on CRL checking of client certificates in the
    handshake with the CRLs of ``crl_paths``: every CA on the client's path
    needs one, and the policy decides an unknown status (no CRL, stale, not
    yet valid).  ``None`` checks no revocation (tests and tools only; the
    daemon always passes its policy).
    """
    if client_cert not in _VERIFY_MODES:
        msg = f"client_cert must be one of none, optional, required (got {client_cert!r})"
        raise ValueError(msg)
    if client_cert != "none" and not client_ca_paths:
        msg = f"client_cert = {client_cert!r} needs at least one client CA file"
        raise ValueError(msg)
    if client_cert == "none" and client_ca_paths:
        msg = "client CA files are given but client_cert = 'none' would ignore them"
        raise ValueError(msg)
    if crl_paths and revocation is None:
        msg = "CRL files are given without a revocation policy"
        raise ValueError(msg)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    openssl.set_groups(ctx)
    _load_chain(ctx, cert_path, key_path, passphrase)
    if client_ca_paths:
        _load_cas(ctx, client_ca_paths, "client CA")
        if not ctx.get_ca_certs():
            msg = "client CA files hold no CA certificate"
            raise ValueError(msg)
        openssl.set_client_ca_names(ctx, client_ca_paths)
    ctx.verify_mode = _VERIFY_MODES[client_cert]
    if revocation is not None and client_cert != "none":
        _load_crls(ctx, crl_paths)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        openssl.apply_revocation_policy(ctx, revocation)
    return ctx


def client_context(
    ca_path: Path, cert_path: Path | None = None, key_path: Path | None = None
) -> ssl.SSLContext:
    """A CorpLink client's context (gateway-sim, tests): verifies the gateway.

    Hostname checking stays on; callers pass ``server_hostname``.  A client
    certificate (``cert_path`` with ``key_path``, or a PEM holding both) is
    presented when the listener asks for one.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx)
    _load_cas(ctx, [ca_path], "server CA")
    if cert_path is not None:
        _load_chain(ctx, cert_path, key_path, None)
    elif key_path is not None:
        msg = "a client key was given without its certificate"
        raise ValueError(msg)
    return ctx


class SwappableContext:
    """The seam for TLS certificate rotation without restart.

    Give ``listener_context`` to the listener.  Its ``sni_callback`` (which
    OpenSSL calls on every ClientHello, with or without SNI) points the
    connection at ``current``, so after ``swap`` new handshakes use the new
    certificate, key and client CAs while established connections continue
    undisturbed on the context they started with.

    OpenSSL copies the verify mode, verify flags (CRL checking), verify
    callback (revocation policy), key-exchange groups and protocol range
    into each connection before the callback runs, so those come from the
    first context: ``swap`` refuses a context that differs in the mode, the
    flags or the range (changing ``client_cert`` or ``stale_crl_policy`` is a
    restart-only setting).  The certificate, key, client CAs and CRLs come
    from the swapped-in context, which is how a CRL change reaches new
    handshakes.  The first context's ``sni_callback`` is taken
    over by this object.
    """

    def __init__(self, initial: ssl.SSLContext) -> None:
        self._front = initial
        self._current = initial
        initial.sni_callback = self._select

    @property
    def listener_context(self) -> ssl.SSLContext:
        """The context to pass to the listener (never changes)."""
        return self._front

    @property
    def current(self) -> ssl.SSLContext:
        """The context new handshakes use."""
        return self._current

    def swap(self, new: ssl.SSLContext) -> ssl.SSLContext:
        """Make ``new`` (already built and checked) the context of new handshakes.

        Returns the previous context.  Raises ``ValueError`` if ``new`` would
        not take effect as a whole (see the class docstring).
        """
        front = self._front
        if new.verify_mode != front.verify_mode:
            msg = "client certificate mode differs from the running listener's (restart needed)"
            raise ValueError(msg)
        if new.verify_flags != front.verify_flags:
            msg = "CRL checking differs from the running listener's (restart needed)"
            raise ValueError(msg)
        if (new.minimum_version, new.maximum_version) != (
            front.minimum_version,
            front.maximum_version,
        ):
            msg = "TLS version range differs from the running listener's (restart needed)"
            raise ValueError(msg)
        old, self._current = self._current, new
        return old

    def _select(
        self, ssl_obj: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        current = self._current
        if ssl_obj.context is not current:
            ssl_obj.context = current


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, but a failed handshake sends OpenSSL's alert first.

    On a handshake error asyncio aborts the transport at once, and the alert
    OpenSSL has just written (``certificate revoked``, ``unknown CA``,
    ``handshake failure``...) stays in its outgoing buffer: the client sees a
    bare close and cannot tell why.  This flushes that buffer to the socket
    before the abort.
    """

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            this: Any = self
            with contextlib.suppress(Exception):
                alert = this._outgoing.read()  # private: see the class docstring
                if alert:
                    this._transport.write(alert)
        super()._on_handshake_complete(handshake_exc)


def send_handshake_alerts() -> None:
    """Make asyncio send the TLS alert of a failed handshake (idempotent).

    asyncio builds its TLS protocol through the ``asyncio.sslproto`` module
    attribute, so replacing it there covers every ``start_tls`` of the
    process; the only change is the alert written before the close.
    """
    if not issubclass(sslproto.SSLProtocol, _AlertingSSLProtocol):
        sslproto.SSLProtocol = _AlertingSSLProtocol  # type: ignore[misc]
