"""What an open, idle connection holds (docs/architecture.md §9): real mutual TLS, dev PKI.

TLS connections share their thread's read buffer (``gateway.net.tls_memory``)
and frames of any size, on many connections at once, still arrive whole;
OpenSSL releases its record buffers; a session does not keep its last
request body while it waits for the next frame.

``bound_tls_buffers`` changes the process for good (a connection made under
it has no buffer of its own), so these tests leave it applied.
"""

from __future__ import annotations

import asyncio
import gc
import os
import ssl
import sys
import threading
import types
from asyncio import sslproto
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.keys.devpki import DevPki
from gateway.net import openssl, tls_memory
from gateway.net.framing import encode_frame
from gateway.net.listener import ConnInfo, Listener, ListenerSpec
from gateway.net.tls import client_context, server_context
from gateway.net.tls_memory import bound_tls_buffers

from .conftest import READ_LIMIT, read_frame, request, serving

BODY_LIMIT = 8 * 1_048_576


def mtls_server(pki: DevPki) -> ssl.SSLContext:
    return server_context(
        pki.server_cert, pki.server_key, client_cert="required", client_ca_paths=[pki.client_ca]
    )


def mtls_client(pki: DevPki) -> ssl.SSLContext:
    key, cert = pki.client("C100000001", "op01")
    return client_context(pki.server_ca, cert, key)


def spec(pki: DevPki, **kw: object) -> ListenerSpec:
    return ListenerSpec(
        name="idle-mem",
        host="127.0.0.1",
        port=0,
        ssl=mtls_server(pki),
        max_body=BODY_LIMIT,
        **kw,  # type: ignore[arg-type]
    )


async def connect(pki: DevPki, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=mtls_client(pki), server_hostname="localhost"
    )


def tls_protocol(writer: asyncio.StreamWriter) -> Any:
    """asyncio's TLS protocol under a stream (private on purpose: its buffer is the point)."""
    return writer.transport._ssl_protocol  # type: ignore[attr-defined]


def server_protocols(listener: Listener) -> list[Any]:
    return [tls_protocol(session._writer) for session in listener._sessions.values()]


def own_buffers(protocol: object) -> list[str]:
    """Names of the byte buffers an object holds itself (not through its class)."""
    return [k for k, v in vars(protocol).items() if isinstance(v, bytearray | memoryview)]


async def test_connections_hold_no_read_buffer_of_their_own(dev_pki: DevPki) -> None:
    assert bound_tls_buffers() is True
    assert tls_memory.read_buffers_shared()
    async with serving(spec(dev_pki)) as (listener, port):
        conns = [await connect(dev_pki, port) for _ in range(3)]
        for reader, writer in conns:
            assert await request(reader, writer, b"<a/>") == b"echo:<a/>"
        servers = server_protocols(listener)
        clients = [tls_protocol(writer) for _, writer in conns]
        assert len(servers) == 3
        for protocol in servers + clients:
            assert own_buffers(protocol) == []
        buffers = {id(p._ssl_buffer) for p in servers + clients}
        assert len(buffers) == 1  # one buffer for this thread's six TLS connections
        assert len(servers[0]._ssl_buffer) == sslproto.SSLProtocol.max_size  # reads keep their size
        for _, writer in conns:
            writer.close()


async def test_large_frames_on_many_connections_at_once_arrive_whole(dev_pki: DevPki) -> None:
    """Four connections interleave their reads through the one buffer; nothing mixes."""
    bound_tls_buffers()
    sizes = (1, 16_384, 262_144, 262_145, 4 * 1_048_576)
    async with serving(spec(dev_pki)) as (listener, port):

        async def client(k: int) -> None:
            reader, writer = await connect(dev_pki, port)
            bodies = [os.urandom(n) for n in sizes]
            writer.write(b"".join(encode_frame(b"%d:" % k + b) for b in bodies))  # pipelined
            await writer.drain()
            got = {await read_frame(reader) for _ in bodies}  # answers may come out of order
            assert got == {b"echo:%d:" % k + b for b in bodies}
            assert await request(reader, writer, b"<after/>") == b"echo:<after/>"
            writer.close()

        async with asyncio.timeout(60):
            await asyncio.gather(*(client(k) for k in range(4)))
        assert all(own_buffers(p) == [] for p in server_protocols(listener))


def test_each_thread_has_its_own_buffer(dev_pki: DevPki) -> None:
    bound_tls_buffers()

    async def buffer_in_this_thread() -> int:
        async with serving(spec(dev_pki)) as (listener, port):
            reader, writer = await connect(dev_pki, port)
            assert await request(reader, writer, b"<t/>") == b"echo:<t/>"
            (protocol,) = server_protocols(listener)
            assert protocol._ssl_buffer is tls_protocol(writer)._ssl_buffer
            writer.close()
            return id(protocol._ssl_buffer)

    ids: list[int] = []

    def run() -> None:
        ids.append(asyncio.run(buffer_in_this_thread()))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(READ_LIMIT * 4)
    assert len(ids) == 2
    assert ids[0] != ids[1]


def test_idempotent() -> None:
    assert bound_tls_buffers() is True
    descriptor = vars(tls_memory._stock_class())["_ssl_buffer"]
    assert bound_tls_buffers() is True
    assert vars(tls_memory._stock_class())["_ssl_buffer"] is descriptor


def test_unchecked_python_is_left_alone_and_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_memory, "read_buffers_shared", lambda: False)  # as if not yet applied
    monkeypatch.setattr(tls_memory, "_warned", False)
    monkeypatch.setattr(sys, "version_info", (3, 99, 0, "final", 0))
    before = dict(vars(tls_memory._stock_class()))
    with capture_logs() as logs:
        assert bound_tls_buffers() is False
        assert bound_tls_buffers() is False
    assert dict(vars(tls_memory._stock_class())) == before
    assert [e["event"] for e in logs] == ["tls_read_buffers_not_shared"]
    assert logs[0]["reason"] == "Python 3.99 not checked"


def test_refused_when_another_method_uses_the_buffer() -> None:
    stock = tls_memory._stock_class()

    class Peeks(stock):  # type: ignore[misc,valid-type]
        def peek(self) -> bytes:
            return bytes(self._ssl_buffer[:1])

    assert tls_memory._refusal(stock, (3, 11)) is None
    reason = tls_memory._refusal(stock, (3, 11), (Peeks,))
    assert reason is not None
    assert "peek" in reason


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
