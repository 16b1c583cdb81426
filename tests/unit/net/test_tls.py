"""TLS contexts and TLS listeners (corplink.md §1): versions, mutual TLS, deadlines, rotation."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.net.framing import encode_frame
from gateway.net.listener import ConnInfo, ListenerSpec
from gateway.net.tls import SwappableContext, client_context, server_context

from .conftest import Pki, bad_frame_body, read_frame, read_to_eof, request, serving


def tls_spec(name: str, ctx: ssl.SSLContext, **kw: object) -> ListenerSpec:
    return ListenerSpec(name=name, host="127.0.0.1", port=0, ssl=ctx, **kw)  # type: ignore[arg-type]


def plain_server(pki: Pki) -> ssl.SSLContext:
    return server_context(pki.server_cert, pki.server_key)


def mtls_server(pki: Pki, mode: str = "required") -> ssl.SSLContext:
    return server_context(
        pki.server_cert, pki.server_key, client_cert=mode, client_ca_paths=[pki.client_ca_file]
    )


async def connect(
    port: int, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost", ssl_handshake_timeout=5
    )


# -- building contexts ---------------------------------------------------------------


def test_server_context_settings(pki: Pki) -> None:
    ctx = plain_server(pki)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.verify_mode == ssl.CERT_NONE
    assert mtls_server(pki, "optional").verify_mode == ssl.CERT_OPTIONAL
    assert mtls_server(pki).verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"client_cert": "required"}, "needs at least one client CA"),
        ({"client_cert": "optional"}, "needs at least one client CA"),
        ({"client_cert": "yes"}, "must be one of"),
        ({"client_ca_paths": ["CA"]}, "would ignore them"),
        ({"client_cert": "required", "client_ca_paths": ["missing"]}, "client CA file not found"),
    ],
)
def test_server_context_bad_combinations(pki: Pki, kwargs: dict[str, object], match: str) -> None:
    if kwargs.get("client_ca_paths") == ["CA"]:
        kwargs["client_ca_paths"] = [pki.client_ca_file]
    if kwargs.get("client_ca_paths") == ["missing"]:
        kwargs["client_ca_paths"] = [pki.client_ca_file.with_name("nope.pem")]
    with pytest.raises(ValueError, match=match):
        server_context(pki.server_cert, pki.server_key, **kwargs)  # type: ignore[arg-type]


def test_server_context_file_problems(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        server_context(tmp_path / "none.pem", pki.server_key)
    other = tmp_path / "other.key"
    pki.client_cert.private_key_pem.write_to_path(other)
    with pytest.raises(ValueError, match="do not match"):
        server_context(pki.server_cert, other)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ValueError, match="could not be loaded"):
        server_context(garbage, pki.server_key)


def test_encrypted_key_needs_its_passphrase_and_never_prompts(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), password=None)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    with pytest.raises(ValueError, match="encrypted and no passphrase"):
        server_context(pki.server_cert, encrypted)
    with pytest.raises(ValueError, match="wrong passphrase"):
        server_context(pki.server_cert, encrypted, passphrase=b"guess")
    assert server_context(pki.server_cert, encrypted, passphrase=b"s3cret")


def test_client_context_key_without_cert(pki: Pki) -> None:
    with pytest.raises(ValueError, match="without its certificate"):
        client_context(pki.server_ca, None, pki.server_key)


# -- TLS on the wire -----------------------------------------------------------------


async def test_tls_echo_prefers_tls13(pki: Pki) -> None:
    seen: list[ConnInfo] = []

    async def handler(body: bytes, conn: ConnInfo) -> bytes:
        seen.append(conn)
        return b"echo:" + body

    async with serving(tls_spec("tls", plain_server(pki)), handler) as (_, port):
        reader, writer = await connect(port, client_context(pki.server_ca))
        assert await request(reader, writer, b"<a/>") == b"echo:<a/>"
        writer.close()
    assert seen[0].tls
    assert seen[0].tls_version == "TLSv1.3"
    assert seen[0].peer_cert_der is None


async def test_tls12_accepted(pki: Pki) -> None:
    ctx = client_context(pki.server_ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    versions: list[str | None] = []

    async def handler(body: bytes, conn: ConnInfo) -> bytes:
        versions.append(conn.tls_version)
        return body

    async with serving(tls_spec("tls12", plain_server(pki)), handler) as (_, port):
        reader, writer = await connect(port, ctx)
        assert await request(reader, writer, b"x") == b"x"
        writer.close()
    assert versions == ["TLSv1.2"]


async def test_tls11_refused(pki: Pki) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")  # let this client really offer TLS 1.1
    old.load_verify_locations(pki.server_ca)
    async with serving(tls_spec("tls11", plain_server(pki))) as (listener, port):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await connect(port, old)
        assert listener.connections == 0


async def test_mutual_tls_required(pki: Pki, tmp_path: Path) -> None:
    seen: list[ConnInfo] = []

    async def handler(body: bytes, conn: ConnInfo) -> bytes:
        seen.append(conn)
        return body

    async with serving(tls_spec("mtls", mtls_server(pki)), handler) as (_, port):
        # No certificate: TLS 1.3 clients learn it on the first read.
        try:
            reader, writer = await connect(port, client_context(pki.server_ca))
            writer.write(encode_frame(b"x"))
            assert await read_to_eof(reader) == b""
            writer.close()
        except (ssl.SSLError, ConnectionError):
            pass
        # A certificate from a CA the listener does not trust.
        stranger = tmp_path / "stranger.pem"
        pki.ca.issue_cert("intruder").private_key_and_cert_chain_pem.write_to_path(stranger)
        try:
            reader, writer = await connect(port, client_context(pki.server_ca, stranger))
            writer.write(encode_frame(b"x"))
            assert await read_to_eof(reader) == b""
            writer.close()
        except (ssl.SSLError, ConnectionError):
            pass
        assert seen == []
        # The enrolled client's certificate.
        reader, writer = await connect(port, client_context(pki.server_ca, pki.client_chain))
        assert await request(reader, writer, b"x") == b"x"
        writer.close()
    der = ssl.PEM_cert_to_DER_cert(pki.client_cert.cert_chain_pems[0].bytes().decode())
    assert [c.peer_cert_der for c in seen] == [der]


async def test_mutual_tls_optional(pki: Pki) -> None:
    seen: list[bytes | None] = []

    async def handler(body: bytes, conn: ConnInfo) -> bytes:
        seen.append(conn.peer_cert_der)
        return body

    async with serving(tls_spec("mtlsopt", mtls_server(pki, "optional")), handler) as (_, port):
        for ctx in (client_context(pki.server_ca), client_context(pki.server_ca, pki.client_chain)):
            reader, writer = await connect(port, ctx)
            assert await request(reader, writer, b"x") == b"x"
            writer.close()
    assert seen[0] is None
    assert seen[1]


async def _closed_by_server(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if payload:
        writer.write(payload)
    try:
        return await read_to_eof(reader)
    finally:
        writer.close()


def _client_hello() -> bytes:
    ctx = ssl.create_default_context()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


async def test_handshake_deadline_silent_client(pki: Pki) -> None:
    spec = tls_spec("hs", plain_server(pki), handshake_timeout=0.5)
    async with serving(spec) as (listener, port):
        assert await _closed_by_server(port, b"") == b""
        assert listener.connections == 0


async def test_handshake_deadline_half_client_hello(pki: Pki) -> None:
    hello = _client_hello()
    spec = tls_spec("hs2", plain_server(pki), handshake_timeout=0.5)
    async with serving(spec) as (_, port):
        assert await _closed_by_server(port, hello[: len(hello) // 2]) == b""


async def test_bad_frame_over_tls_gets_1001_then_close(pki: Pki) -> None:
    async with serving(tls_spec("tls1001", plain_server(pki))) as (_, port):
        reader, writer = await connect(port, client_context(pki.server_ca))
        writer.write(b"12ab5678")
        assert await read_frame(reader) == bad_frame_body("header")
        assert await read_to_eof(reader) == b""
        writer.close()


async def test_plain_frame_on_tls_listener_is_not_served(pki: Pki) -> None:
    async with serving(tls_spec("tlsplain", plain_server(pki))) as (_, port):
        reply = await _closed_by_server(port, encode_frame(b"<a/>"))
        assert b"echo" not in reply


async def test_swappable_context_rotates_for_new_connections(pki: Pki, tmp_path: Path) -> None:
    second = pki.ca.issue_cert("localhost", "127.0.0.1", organization_name="rotated")
    cert2, key2 = tmp_path / "s2.pem", tmp_path / "s2.key"
    second.cert_chain_pems[0].write_to_path(cert2)
    second.private_key_pem.write_to_path(key2)
    holder = SwappableContext(plain_server(pki))
    client = client_context(pki.server_ca)

    def org(writer: asyncio.StreamWriter) -> str:
        subject = writer.get_extra_info("ssl_object").getpeercert()["subject"]
        return str(dict(rdn[0] for rdn in subject)["organizationName"])

    async with serving(tls_spec("rot", holder.listener_context)) as (_, port):
        r1, w1 = await connect(port, client)
        first_org = org(w1)
        old = holder.swap(server_context(cert2, key2))
        assert holder.current is not old
        r2, w2 = await connect(port, client)
        assert org(w2) == "rotated" != first_org
        # the connection made before the swap carries on
        assert await request(r1, w1, b"old") == b"echo:old"
        assert await request(r2, w2, b"new") == b"echo:new"
        # a client that sends no SNI still gets the current certificate
        no_sni = client_context(pki.server_ca)
        no_sni.check_hostname = False
        _, w3 = await asyncio.open_connection("127.0.0.1", port, ssl=no_sni, server_hostname="")
        assert org(w3) == "rotated"
        for w in (w1, w2, w3):
            w.close()


def test_swap_refuses_restart_only_changes(pki: Pki) -> None:
    holder = SwappableContext(plain_server(pki))
    with pytest.raises(ValueError, match="client certificate mode"):
        holder.swap(mtls_server(pki))
    assert holder.current is holder.listener_context
