"""Revocation, key exchange and alerts at the TLS handshake (corplink.md §1, §3).

Real sockets, real listeners, the dev PKI, and ``openssl s_client`` as the
outside tool: a revoked client certificate fails the handshake with an alert,
a deny-listed one is closed before any frame is read, the handshake follows
the same revocation policy as the signature path (gateway.keys.revocation),
only X25519, P-256 and P-384 are accepted, and the client CAs are named.

CRL dates here are relative to the system clock, which is what OpenSSL
judges them by.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from gateway.errors import GatewayError
from gateway.keys.devpki import DevPki, generate_dev_pki, issue_client_cert, rewrite_crl
from gateway.keys.revocation import RevocationPolicy
from gateway.keys.trust import TrustStore, fingerprint
from gateway.model import CredentialKind
from gateway.net.framing import encode_frame
from gateway.net.listener import ConnInfo, Listener, ListenerSpec
from gateway.net.tls import SwappableContext, client_context, server_context
from gateway.ops.metrics import CONNECTION_CLOSES

from .conftest import bad_frame, read_frame, read_to_eof

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")


@pytest.fixture(scope="module")
def base_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return generate_dev_pki(tmp_path_factory.mktemp("tls-pki"))


@pytest.fixture
def pki(base_pki: DevPki, tmp_path: Path) -> DevPki:
    """A private copy: tests rewrite its CRL."""
    shutil.copytree(base_pki.dir, tmp_path / "pki")
    return DevPki.open(tmp_path / "pki")


def mtls(pki: DevPki, policy: str = "fail_closed", *, crls: bool = True) -> ssl.SSLContext:
    return server_context(
        pki.server_cert,
        pki.server_key,
        client_cert="required",
        client_ca_paths=[pki.client_ca],
        crl_paths=[pki.client_crl] if crls else [],
        revocation=RevocationPolicy(policy),
    )


class Recorder:
    """An echo handler that remembers whether any frame reached it."""

    def __init__(self) -> None:
        self.frames = 0

    async def __call__(self, body: bytes, _conn: ConnInfo) -> bytes:
        self.frames += 1
        return b"echo:" + body


async def serve(
    ctx: ssl.SSLContext, denied: frozenset[str] = frozenset()
) -> tuple[Listener, Recorder, int]:
    recorder = Recorder()
    listener = Listener(
        ListenerSpec(name=f"rev{id(recorder)}", host="127.0.0.1", port=0, ssl=ctx),
        recorder,
        bad_frame,
        denied=lambda fp: fp in denied,
    )
    _, port = await listener.start()
    return listener, recorder, port


def client(
    pki: DevPki, key_cert: tuple[Path, Path], version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
) -> ssl.SSLContext:
    key, cert = key_cert
    ctx = client_context(pki.server_ca, cert, key)
    ctx.maximum_version = version
    return ctx


async def exchange(port: int, ctx: ssl.SSLContext) -> bytes:
    """Handshake, one frame, the answer; an alert raises ``ssl.SSLError``."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 5
    )
    try:
        writer.write(encode_frame(b"<ping/>"))
        await writer.drain()
        return await read_frame(reader)
    finally:
        writer.transport.abort()


def closes(listener: str, reason: str) -> float:
    return float(CONNECTION_CLOSES.labels(listener, reason)._value.get())


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def revoke_on_crl(pki: DevPki, *paths: Path, last: datetime, nxt: datetime) -> None:
    rewrite_crl(pki, [cert_of(p).serial_number for p in paths], last_update=last, next_update=nxt)


# -- a revoked certificate: an alert, not a bare close ---------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_revoked_certificate_fails_the_handshake_with_an_alert(
    pki: DevPki, version: ssl.TLSVersion
) -> None:
    op01, op02 = pki.client("C100000001", "op01"), pki.client("C100000001", "op02")
    now = datetime.now(UTC)
    revoke_on_crl(pki, op02[1], last=now - timedelta(days=1), nxt=now + timedelta(days=7))
    listener, recorder, port = await serve(mtls(pki))
    try:
        before = closes(listener.spec.name, "cert_refused")
        with pytest.raises(ssl.SSLError) as info:
            await exchange(port, client(pki, op02, version))
        assert info.value.reason == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        assert recorder.frames == 0
        assert closes(listener.spec.name, "cert_refused") == before + 1
        assert await exchange(port, client(pki, op01, version)) == b"echo:<ping/>"
    finally:
        await listener.close()


@needs_openssl
async def test_openssl_s_client_sees_the_revoked_alert(pki: DevPki) -> None:
    key, cert = pki.client("C100000001", "op02")
    now = datetime.now(UTC)
    revoke_on_crl(pki, cert, last=now - timedelta(days=1), nxt=now + timedelta(days=7))
    listener, _, port = await serve(mtls(pki))
    try:
        out = await s_client(port, pki, "-tls1_2", "-cert", str(cert), "-key", str(key))
    finally:
        await listener.close()
    assert "alert certificate revoked" in out


async def test_other_handshake_failures_send_an_alert_too(pki: DevPki) -> None:
    """A certificate from an unknown CA: the client is told so, not just cut off."""
    stranger = issue_client_cert(pki, "C100000001", "op09", CredentialKind.USBKEY, issuer="self")
    listener, _, port = await serve(mtls(pki))
    try:
        with pytest.raises(ssl.SSLError) as info:
            await exchange(port, client(pki, stranger, ssl.TLSVersion.TLSv1_2))
    finally:
        await listener.close()
    assert info.value.reason == "TLSV1_ALERT_UNKNOWN_CA"


# -- the deny list: right after the handshake, before any frame ------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_deny_listed_certificate_is_closed_before_any_frame(
    pki: DevPki, version: ssl.TLSVersion
) -> None:
    op01, op02 = pki.client("C100000001", "op01"), pki.client("C100000001", "op02")
    denied = frozenset({fingerprint(cert_of(op02[1]))})
    listener, recorder, port = await serve(mtls(pki), denied)
    try:
        before = closes(listener.spec.name, "cert_denied")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=client(pki, op02, version), server_hostname="localhost"
            ),
            5,
        )
        writer.write(encode_frame(b"<ping/>"))
        assert await read_to_eof(reader) == b""  # EOF, no answer
        writer.transport.abort()
        assert recorder.frames == 0
        assert closes(listener.spec.name, "cert_denied") == before + 1
        assert await exchange(port, client(pki, op01, version)) == b"echo:<ping/>"
        assert closes(listener.spec.name, "cert_denied") == before + 1
    finally:
        await listener.close()


# -- one policy: the handshake agrees with the signature path --------------------------

# (CRL situation, policy) -> verdict for op01 (not listed) and op02 (listed, when a CRL is)
POLICY_CASES = [
    ("fresh", "fail_closed", "ok", "refused"),
    ("fresh", "fail_open", "ok", "refused"),
    ("none", "fail_closed", "refused", "refused"),
    ("none", "fail_open", "ok", "ok"),
    ("stale", "fail_closed", "refused", "refused"),
    ("stale", "fail_open", "ok", "refused"),
    ("future", "fail_closed", "refused", "refused"),
    ("future", "fail_open", "ok", "refused"),
]


@pytest.mark.parametrize(("crl", "policy", "op01_verdict", "op02_verdict"), POLICY_CASES)
async def test_handshake_and_signature_path_share_one_policy(
    pki: DevPki, crl: str, policy: str, op01_verdict: str, op02_verdict: str
) -> None:
    op01, op02 = pki.client("C100000001", "op01"), pki.client("C100000001", "op02")
    now = datetime.now(UTC)
    last, nxt = {
        "fresh": (now - timedelta(days=1), now + timedelta(days=7)),
        "none": (now - timedelta(days=1), now + timedelta(days=7)),
        "stale": (now - timedelta(days=9), now - timedelta(days=2)),
        "future": (now + timedelta(days=2), now + timedelta(days=9)),
    }[crl]
    revoke_on_crl(pki, op02[1], last=last, nxt=nxt)
    with_crl = crl != "none"
    trust = TrustStore.from_files(
        [pki.client_ca], [pki.client_crl] if with_crl else [], stale_crl_policy=policy
    )

    def signature_path(path: Path) -> str:
        try:
            trust.check([cert_of(path)], datetime.now(UTC))
        except GatewayError as exc:
            return "refused" if exc.code.value == "2004" else exc.code.value
        return "ok"

    listener, _, port = await serve(mtls(pki, policy, crls=with_crl))
    try:
        handshake = {}
        for name, key_cert in (("op01", op01), ("op02", op02)):
            try:
                await exchange(port, client(pki, key_cert))
                handshake[name] = "ok"
            except ssl.SSLError:
                handshake[name] = "refused"
    finally:
        await listener.close()
    signature = {"op01": signature_path(op01[1]), "op02": signature_path(op02[1])}
    expected = {"op01": op01_verdict, "op02": op02_verdict}
    assert handshake == signature == expected


# -- key exchange groups and CA names (outside tool: openssl s_client) -----------------


async def s_client(port: int, pki: DevPki, *args: str) -> str:
    assert OPENSSL is not None
    proc = await asyncio.create_subprocess_exec(
        OPENSSL,
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        "localhost",
        "-CAfile",
        str(pki.server_ca),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return out.decode("utf-8", "replace")


def temp_key(out: str) -> str | None:
    for line in out.splitlines():
        if "Server Temp Key:" in line:
            return line.split(":", 1)[1].strip()
    return None


GROUPS = [
    ("X25519", "X25519"),
    ("P-256", "prime256v1"),
    ("P-384", "secp384r1"),
    ("X448", None),
    ("P-521", None),
    ("ffdhe2048", None),
    ("ffdhe3072", None),
]


@needs_openssl
@pytest.mark.parametrize(("group", "shown"), GROUPS)
async def test_only_x25519_p256_p384_are_accepted(
    pki: DevPki, group: str, shown: str | None
) -> None:
    ctx = server_context(pki.server_cert, pki.server_key)
    listener, _, port = await serve(ctx)
    try:
        out = await s_client(port, pki, "-tls1_3", "-groups", group)
    finally:
        await listener.close()
    key = temp_key(out)
    if shown is None:
        assert key is None, out
    else:
        assert key is not None, out
        assert shown in key


@needs_openssl
async def test_tls12_skips_groups_outside_the_list(pki: DevPki) -> None:
    """TLS 1.2: a client preferring X448 and P-521 gets P-256 (its ECDSA cert's curve)."""
    listener, _, port = await serve(server_context(pki.server_cert, pki.server_key))
    try:
        out = await s_client(port, pki, "-tls1_2", "-groups", "X448:P-521:P-256")
        refused = await s_client(port, pki, "-tls1_2", "-groups", "X448:P-521")
    finally:
        await listener.close()
    assert "prime256v1" in (temp_key(out) or ""), out
    assert temp_key(refused) is None, refused


@needs_openssl
async def test_client_ca_names_are_sent(pki: DevPki) -> None:
    listener, _, port = await serve(mtls(pki))
    key, cert = pki.client("C100000001", "op01")
    try:
        out = await s_client(port, pki, "-tls1_3", "-cert", str(cert), "-key", str(key))
    finally:
        await listener.close()
    assert "No client certificate CA names sent" not in out
    names = out.split("Acceptable client certificate CA names", 1)[1].splitlines()
    assert "CN = CorpLink Dev Client CA" in names[1], out


# -- rotation keeps the revocation settings of the running listener --------------------


def test_swap_refuses_a_context_without_crl_checking(pki: DevPki) -> None:
    holder = SwappableContext(mtls(pki))
    holder.swap(mtls(pki))  # a CRL change: same settings, new CRLs
    unchecked = server_context(
        pki.server_cert, pki.server_key, client_cert="required", client_ca_paths=[pki.client_ca]
    )
    with pytest.raises(ValueError, match="CRL checking"):
        holder.swap(unchecked)


async def test_a_swapped_context_brings_the_new_crl(pki: DevPki) -> None:
    """The reload path: a new CRL, a new context, new handshakes refuse; same front."""
    op02 = pki.client("C100000001", "op02")
    holder = SwappableContext(mtls(pki))
    listener, _, port = await serve(holder.listener_context)
    try:
        assert await exchange(port, client(pki, op02)) == b"echo:<ping/>"
        now = datetime.now(UTC)
        revoke_on_crl(pki, op02[1], last=now - timedelta(days=1), nxt=now + timedelta(days=7))
        holder.swap(mtls(pki))
        with pytest.raises(ssl.SSLError) as info:
            await exchange(port, client(pki, op02))
        assert info.value.reason == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    finally:
        await listener.close()


def test_crls_need_a_policy(pki: DevPki) -> None:
    with pytest.raises(ValueError, match="revocation policy"):
        server_context(
            pki.server_cert,
            pki.server_key,
            client_cert="required",
            client_ca_paths=[pki.client_ca],
            crl_paths=[pki.client_crl],
        )
