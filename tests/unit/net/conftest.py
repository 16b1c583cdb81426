"""Helpers for the gateway.net tests: real sockets, real TLS (trustme), port 0."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from gateway.net.framing import HEADER_LEN, encode_frame, parse_header
from gateway.net.listener import ConnInfo, Handler, Listener, ListenerSpec

READ_LIMIT = 5.0  # generous bound on any single client read, so a bug fails instead of hanging


def bad_frame_body(reason: str) -> bytes:
    return b"<CorpLinkRsp><RetCode>1001</RetCode><Reason>%s</Reason></CorpLinkRsp>" % (
        reason.encode()
    )


async def bad_frame(_conn: ConnInfo, reason: str) -> bytes | None:
    return bad_frame_body(reason)


async def echo(body: bytes, _conn: ConnInfo) -> bytes:
    return b"echo:" + body


@contextlib.asynccontextmanager
async def serving(
    spec: ListenerSpec, handler: Handler = echo
) -> AsyncIterator[tuple[Listener, int]]:
    listener = Listener(spec, handler, bad_frame)
    _, port = await listener.start()
    try:
        yield listener, port
    finally:
        await listener.close()


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(READ_LIMIT):
        header = await reader.readexactly(HEADER_LEN)
        return await reader.readexactly(parse_header(header, 99_999_999))


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything the server still sends, until it closes (reset counts as closed)."""
    chunks = []
    async with asyncio.timeout(READ_LIMIT):
        try:
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        except (ConnectionResetError, ssl.SSLError):
            pass
    return b"".join(chunks)


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> bytes:
    writer.write(encode_frame(body))
    await writer.drain()
    return await read_frame(reader)


def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


@dataclass
class Pki:
    ca: trustme.CA
    server_cert: Path
    server_key: Path
    server_ca: Path
    client_ca: trustme.CA
    client_ca_file: Path
    client_cert: trustme.LeafCert
    client_chain: Path  # client cert + key in one PEM


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    leaf.cert_chain_pems[0].write_to_path(d / "server.pem")
    leaf.private_key_pem.write_to_path(d / "server.key")
    ca.cert_pem.write_to_path(d / "server-ca.pem")
    client_ca = trustme.CA()
    client = client_ca.issue_cert("op01@C100000001")
    client_ca.cert_pem.write_to_path(d / "client-ca.pem")
    client.private_key_and_cert_chain_pem.write_to_path(d / "client.pem")
    return Pki(
        ca=ca,
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        server_ca=d / "server-ca.pem",
        client_ca=client_ca,
        client_ca_file=d / "client-ca.pem",
        client_cert=client,
        client_chain=d / "client.pem",
    )
