"""What an open, idle connection holds (docs/architecture.md §9): real mutual TLS, dev PKI.

asyncio's TLS read buffer is bounded by ``gateway.net.tls_memory`` and a
frame far larger than that buffer still arrives whole; OpenSSL releases its
record buffers; a session does not keep its last request body while it
waits for the next frame.
"""

from __future__ import annotations

import asyncio
import gc
import os
import ssl
import sys
import types
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from gateway.keys.devpki import DevPki
from gateway.net import openssl, tls_memory
from gateway.net.framing import encode_frame
from gateway.net.listener import ConnInfo, Listener, ListenerSpec
from gateway.net.tls import client_context, server_context
from gateway.net.tls_memory import MIN_READ_BUFFER, READ_BUFFER, bound_tls_buffers

from .conftest import read_frame, request, serving

BODY_LIMIT = 8 * 1_048_576


@pytest.fixture
def restore_read_buffer() -> Iterator[None]:
    """``bound_tls_buffers`` changes the whole process: put asyncio's size back afterwards."""
    stock = tls_memory._stock_class()
    assert stock is not None
    before = stock.max_size  # type: ignore[attr-defined]
    yield
    stock.max_size = before  # type: ignore[attr-defined]


def mtls_server(pki: DevPki) -> ssl.SSLContext:
    return server_context(
        pki.server_cert, pki.server_key, client_cert="required", client_ca_paths=[pki.client_ca]
    )


def mtls_client(pki: DevPki) -> ssl.SSLContext:
    key, cert = pki.client("C100000001", "op01")
    return client_context(pki.server_ca, cert, key)


def spec(pki: DevPki) -> ListenerSpec:
    return ListenerSpec(
        name="idle-mem", host="127.0.0.1", port=0, ssl=mtls_server(pki), max_body=BODY_LIMIT
    )


async def connect(pki: DevPki, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=mtls_client(pki), server_hostname="localhost"
    )


def server_read_buffers(listener: Listener) -> list[int]:
    """The asyncio read buffer of each open server-side connection, in bytes.

    Private attributes on purpose: this buffer is what the bound is about.
    """
    return [
        len(session._writer.transport._ssl_protocol._ssl_buffer)  # type: ignore[attr-defined]
        for session in listener._sessions.values()
    ]


async def test_large_frame_round_trips_through_a_bounded_buffer(
    dev_pki: DevPki, restore_read_buffer: None
) -> None:
    assert bound_tls_buffers() is True
    body = os.urandom(4 * 1_048_576)  # over a hundred times the read buffer
    async with serving(spec(dev_pki)) as (listener, port):
        reader, writer = await connect(dev_pki, port)
        assert await request(reader, writer, b"<a/>") == b"echo:<a/>"
        assert server_read_buffers(listener) == [READ_BUFFER]
        assert await request(reader, writer, body) == b"echo:" + body
        assert await request(reader, writer, b"<b/>") == b"echo:<b/>"  # framing intact after it
        assert server_read_buffers(listener) == [READ_BUFFER]  # never grown past the bound
        writer.close()


async def test_pipelined_large_frames_arrive_whole(
    dev_pki: DevPki, restore_read_buffer: None
) -> None:
    bound_tls_buffers()
    bodies = [os.urandom(n) for n in (1, READ_BUFFER - 1, READ_BUFFER, 3 * 1_048_576 + 7)]
    async with serving(spec(dev_pki)) as (_listener, port):
        reader, writer = await connect(dev_pki, port)
        writer.write(b"".join(encode_frame(b) for b in bodies))  # all in one write
        await writer.drain()
        got = {await read_frame(reader) for _ in bodies}  # the gateway may answer out of order
        writer.close()
    assert got == {b"echo:" + b for b in bodies}


def test_bound_is_idempotent_and_refuses_less_than_a_record(restore_read_buffer: None) -> None:
    assert bound_tls_buffers() is True
    assert bound_tls_buffers() is True
    assert tls_memory.read_buffer_size() == READ_BUFFER
    with pytest.raises(ValueError, match="one whole record"):
        bound_tls_buffers(MIN_READ_BUFFER - 1)
    assert tls_memory.read_buffer_size() == READ_BUFFER


def test_unchecked_python_is_left_alone_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, restore_read_buffer: None
) -> None:
    stock = tls_memory._stock_class()
    assert stock is not None
    stock.max_size = 256 * 1024  # type: ignore[attr-defined]
    monkeypatch.setattr(tls_memory, "_warned", False)
    monkeypatch.setattr(sys, "version_info", (3, 99, 0, "final", 0))
    with capture_logs() as logs:
        assert bound_tls_buffers() is False
        assert bound_tls_buffers() is False
    assert tls_memory.read_buffer_size() == 256 * 1024
    assert [e["event"] for e in logs] == ["tls_read_buffer_unbounded"]
    assert logs[0]["reason"] == "Python 3.99 not checked"


def test_openssl_releases_record_buffers(dev_pki: DevPki) -> None:
    assert openssl.releases_buffers(mtls_server(dev_pki))
    assert openssl.releases_buffers(mtls_client(dev_pki))


def _coroutines_holding(obj: object) -> list[str]:
    return [r.cr_code.co_name for r in gc.get_referrers(obj) if isinstance(r, types.CoroutineType)]


async def test_idle_session_does_not_keep_its_last_body(dev_pki: DevPki) -> None:
    seen: list[bytes] = []

    async def keep(body: bytes, _conn: ConnInfo) -> bytes:
        seen.append(body)
        return b"ok"

    async with serving(spec(dev_pki), keep) as (_listener, port):
        reader, writer = await connect(dev_pki, port)
        assert await request(reader, writer, os.urandom(1_048_576)) == b"ok"
        for _ in range(500):  # the handler's task ends just after its response is written
            holders = _coroutines_holding(seen[0])
            if not holders:
                break
            await asyncio.sleep(0.01)
        assert holders == []  # while the connection stays open, waiting for its next frame
        writer.close()
