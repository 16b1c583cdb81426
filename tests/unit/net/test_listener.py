"""Listener and Session over real TCP sockets: corplink.md §1 deadlines and limits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.net.framing import encode_frame
from gateway.net.listener import ConnInfo, ListenerSpec
from gateway.net.session import peer_address
from gateway.ops.metrics import REGISTRY

from .conftest import bad_frame_body, read_frame, read_to_eof, request, serving


def spec(name: str, **kw: object) -> ListenerSpec:
    return ListenerSpec(name=name, host="127.0.0.1", port=0, **kw)  # type: ignore[arg-type]


def closes(logs: list[MutableMapping[str, Any]]) -> list[object]:
    return [e["reason"] for e in logs if e["event"] == "connection_closed"]


async def test_echo_round_trips_and_conn_info() -> None:
    seen: list[ConnInfo] = []

    async def handler(body: bytes, conn: ConnInfo) -> bytes:
        seen.append(conn)
        return b"echo:" + body

    async with serving(spec("echo"), handler) as (listener, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await request(reader, writer, b"<a/>") == b"echo:<a/>"
        assert (
            await request(reader, writer, b"\xe4\xb8\xad" * 1000)
            == b"echo:" + b"\xe4\xb8\xad" * 1000
        )
        assert listener.connections == 1
        writer.close()
    conn = seen[0]
    assert conn.peer_ip == "127.0.0.1"
    assert conn.peer_port == writer.get_extra_info("sockname")[1]
    assert (conn.tls, conn.tls_version, conn.peer_cert_der) == (False, None, None)
    assert seen[1].conn_id == conn.conn_id


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
async def test_ipv6_peer_and_dual_stack_mapping() -> None:
    seen: list[str] = []

    async def handler(body: bytes, conn: ConnInfo) -> bytes:
        seen.append(conn.peer_ip)
        return body

    async with serving(ListenerSpec(name="v6", host="::1", port=0), handler) as (_, port):
        reader, writer = await asyncio.open_connection("::1", port)
        assert await request(reader, writer, b"x") == b"x"
        writer.close()
    assert seen == ["::1"]


@pytest.mark.parametrize(
    ("peername", "expected"),
    [
        (("10.1.2.3", 5000), ("10.1.2.3", 5000)),
        (("::ffff:10.1.2.3", 5000, 0, 0), ("10.1.2.3", 5000)),
        (("::FFFF:192.0.2.1", 1, 0, 0), ("192.0.2.1", 1)),
        (("2001:db8::1", 443, 0, 0), ("2001:db8::1", 443)),
        (("::ffff:0:1", 1, 0, 0), ("::ffff:0:1", 1)),  # not a mapped IPv4 address
        (None, ("", 0)),
    ],
)
def test_peer_address(peername: object, expected: tuple[str, int]) -> None:
    assert peer_address(peername) == expected


async def test_pipelined_requests_answered_out_of_order() -> None:
    async def handler(body: bytes, _conn: ConnInfo) -> bytes:
        n = int(body)
        await asyncio.sleep((100 - n) * 0.002)  # the last request finishes first
        return b"rsp-%d" % n

    async with serving(spec("pipe", max_inflight=100), handler) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(encode_frame(b"%d" % i) for i in range(100)))
        await writer.drain()
        got = [await read_frame(reader) for _ in range(100)]
        writer.close()
    assert sorted(got) == sorted(b"rsp-%d" % i for i in range(100))
    assert got != [b"rsp-%d" % i for i in range(100)]  # really out of order
    assert got[0] == b"rsp-99"


async def _bad_frame_case(name: str, data: bytes, reason: str, **kw: object) -> None:
    calls: list[bytes] = []

    async def handler(body: bytes, _conn: ConnInfo) -> bytes:
        calls.append(body)
        return b"ok"

    before = REGISTRY.get_sample_value(
        "gateway_frame_errors_total", {"listener": name, "reason": reason}
    )
    async with serving(spec(name, **kw), handler) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        assert await read_frame(reader) == bad_frame_body(reason)
        assert await read_to_eof(reader) == b""
        writer.close()
    assert calls == []
    after = REGISTRY.get_sample_value(
        "gateway_frame_errors_total", {"listener": name, "reason": reason}
    )
    assert (after or 0) - (before or 0) == 1


async def test_header_not_digits_gets_1001_then_eof() -> None:
    await _bad_frame_case("hdr", b"12ab5678<a/>", "header")


async def test_partial_garbage_header_answered_without_waiting() -> None:
    # Only 3 bytes, frame deadline far away: the first non-digit is enough.
    await _bad_frame_case("hdr2", b"GET", "header", frame_timeout=60.0)


async def test_length_above_limit_answered_before_any_body() -> None:
    # frame_timeout is long: if the server waited for the announced body,
    # read_frame's own bound would fail this test.
    await _bad_frame_case(
        "len", b"00001025" + b"<a" * 3, "length", max_body=1024, frame_timeout=60.0
    )


async def test_empty_body_is_a_bad_frame() -> None:
    await _bad_frame_case("empty", b"00000000", "empty")


async def test_lying_length_stall_gets_1001_after_frame_timeout() -> None:
    await _bad_frame_case("lie", b"00900000" + b"<CorpLink>", "frame_timeout", frame_timeout=0.3)


async def test_slowloris_one_byte_at_a_time() -> None:
    calls: list[bytes] = []

    async def handler(body: bytes, _conn: ConnInfo) -> bytes:
        calls.append(body)
        return b"ok"

    frame = encode_frame(b"<CorpLink>" + b" " * 100 + b"</CorpLink>")
    async with serving(spec("loris", frame_timeout=0.5), handler) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def drip() -> None:
            for byte in frame:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)

        dripper = asyncio.create_task(drip())
        assert await read_frame(reader) == bad_frame_body("frame_timeout")
        assert await read_to_eof(reader) == b""
        dripper.cancel()
        writer.transport.abort()
    assert calls == []


async def test_idle_connection_closed_quietly() -> None:
    with capture_logs() as logs:
        async with serving(spec("idle", idle_timeout=0.3)) as (listener, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await request(reader, writer, b"x") == b"echo:x"
            assert await read_to_eof(reader) == b""  # no 1001: idling is not an error
            writer.close()
            assert listener.connections == 0
    assert closes(logs) == ["idle"]


async def test_clean_eof_and_truncated_frame_are_told_apart() -> None:
    with capture_logs() as logs:
        async with serving(spec("eof")) as (_, port):
            for data in (b"", b"0000001"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(data)
                writer.write_eof()
                assert await read_to_eof(reader) == b""
                writer.close()
    assert closes(logs) == ["eof", "truncated"]


async def test_half_closed_client_still_gets_pipelined_answers() -> None:
    async with serving(spec("half")) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode_frame(b"a") + encode_frame(b"b"))
        writer.write_eof()
        assert {await read_frame(reader), await read_frame(reader)} == {b"echo:a", b"echo:b"}
        assert await read_to_eof(reader) == b""
        writer.close()


async def test_drain_finishes_in_flight_then_closes() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(body: bytes, _conn: ConnInfo) -> bytes:
        started.set()
        await release.wait()
        return b"done:" + body

    async with serving(spec("drain"), slow) as (listener, port):
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)  # idle bystander
        w1.write(encode_frame(b"pay"))
        await started.wait()
        drain = asyncio.create_task(listener.drain(timeout=5.0))
        await asyncio.sleep(0)  # let drain stop accepting
        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            await asyncio.open_connection("127.0.0.1", port)
        assert await read_to_eof(r2) == b""  # idle connection closed right away
        release.set()
        assert await read_frame(r1) == b"done:pay"
        assert await read_to_eof(r1) == b""
        await drain
        assert listener.connections == 0
        w1.close()
        w2.close()


async def test_drain_timeout_cuts_a_handler_that_never_ends() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(body: bytes, _conn: ConnInfo) -> bytes:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return body

    async with serving(spec("drain2"), stuck) as (listener, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode_frame(b"x"))
        await started.wait()
        await listener.drain(timeout=0.2)
        assert cancelled.is_set()
        assert await read_to_eof(reader) == b""
        writer.close()


async def test_handler_exception_closes_only_that_connection() -> None:
    async def handler(body: bytes, _conn: ConnInfo) -> bytes:
        if body == b"boom":
            raise RuntimeError("internal /etc/secret detail")
        return b"ok:" + body

    with capture_logs() as logs:
        async with serving(spec("boom"), handler) as (listener, port):
            r1, w1 = await asyncio.open_connection("127.0.0.1", port)
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            assert await request(r2, w2, b"1") == b"ok:1"
            w1.write(encode_frame(b"boom"))
            assert await read_to_eof(r1) == b""  # nothing internal reaches the peer
            assert await request(r2, w2, b"2") == b"ok:2"
            r3, w3 = await asyncio.open_connection("127.0.0.1", port)
            assert await request(r3, w3, b"3") == b"ok:3"
            assert listener.connections == 2
            for w in (w1, w2, w3):
                w.close()
    assert "handler_error" in closes(logs)
    assert any(e["event"] == "handler_failed" for e in logs)


async def test_max_inflight_stops_reading() -> None:
    release = asyncio.Event()
    calls: list[bytes] = []
    four = asyncio.Event()

    async def blocked(body: bytes, _conn: ConnInfo) -> bytes:
        calls.append(body)
        if len(calls) == 4:
            four.set()
        await release.wait()
        return body

    async with serving(spec("bp", max_inflight=4), blocked) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(encode_frame(b"%02d" % i) for i in range(40)))
        await writer.drain()
        await four.wait()
        # Give the server every chance to start a fifth handler if it would.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert len(calls) == 4
        release.set()
        got = {await read_frame(reader) for _ in range(40)}
        assert got == {b"%02d" % i for i in range(40)}
        writer.close()


async def test_max_connections() -> None:
    async with serving(spec("maxc", max_connections=1)) as (listener, port):
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        assert await request(r1, w1, b"a") == b"echo:a"
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await read_to_eof(r2) == b""
        assert await request(r1, w1, b"b") == b"echo:b"
        assert listener.connections == 1
        w1.close()
        w2.close()


async def test_client_that_does_not_read_is_dropped() -> None:
    big = b"x" * 1_000_000

    async def handler(_body: bytes, _conn: ConnInfo) -> bytes:
        return big

    with capture_logs() as logs:
        async with serving(spec("noread", frame_timeout=0.2), handler) as (_, port):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"".join(encode_frame(b"q") for _ in range(30)))
            await writer.drain()
            await asyncio.sleep(1.0)  # never read, well past the write deadline
            received = await read_to_eof(reader)
            assert len(received) < 30 * len(encode_frame(big))
            writer.close()
    assert "write_timeout" in closes(logs)


async def test_drain_completes_a_frame_already_started() -> None:
    async with serving(spec("drain3")) as (listener, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frame = encode_frame(b"<half-then-rest/>")
        writer.write(frame[:10])
        await writer.drain()
        await asyncio.sleep(0.05)  # the server has seen the first bytes
        drain = asyncio.create_task(listener.drain(timeout=5.0))
        writer.write(frame[10:])
        assert await read_frame(reader) == b"echo:<half-then-rest/>"
        assert await read_to_eof(reader) == b""
        await drain
        writer.close()


async def test_1001_reaches_a_client_still_sending_its_oversize_body() -> None:
    # Without a lingering close, unread bytes make the kernel reset the
    # connection and the client never sees its 1001.
    async with serving(spec("linger", max_body=1024)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"00002000" + b"x" * 2_000_000)
        async with asyncio.timeout(5):
            await writer.drain()
        assert await read_frame(reader) == bad_frame_body("length")
        assert await read_to_eof(reader) == b""
        writer.close()
