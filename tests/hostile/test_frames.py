"""Hostile framing and slow peers against the real daemon (corplink.md §1, §8).

"A header that is not 8 digits, a length above the limit, or a stall past a
deadline closes the connection, after one response frame with RetCode 1001
where the connection still allows it."  The slow-peer cases run on listeners
with 1 s deadlines (tools.LISTENERS: ``strict`` frame_timeout 1.0,
``tls_strict`` handshake_timeout 1.0) instead of the default 30 s / 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from gateway.net.framing import encode_frame
from tests.hostile.tools import (
    MIB,
    Hostile,
    closed_by_peer,
    eof_without_data,
)


async def expect_1001_then_close(h: Hostile, reader: asyncio.StreamReader) -> None:
    reply = await h.read_reply(reader)
    assert (reply.ret_code, reply.msg_id) == ("1001", "")
    assert await closed_by_peer(reader)


async def send_expecting_1001_then_close(h: Hostile, listener: str, data: bytes) -> None:
    """Open a connection on ``listener``, send ``data``, expect the 1001 and the close."""
    reader, writer = await h.open(listener)
    writer.write(data)
    await writer.drain()
    await expect_1001_then_close(h, reader)
    writer.close()


async def test_non_digit_header(hostile: Hostile) -> None:
    for header in (b"12ab5678", b" 0000123", b"+0000123", b"GET / HTTP/1.1\r\n\r\n"):
        await send_expecting_1001_then_close(hostile, "tcp", header + b"<CorpLink/>")
    await hostile.serves()


async def test_non_digit_header_on_tls(hostile: Hostile) -> None:
    reader, writer = await hostile.open("tls")
    writer.write(b"\x00\x01abcdef")
    await writer.drain()
    reply = await hostile.read_reply(reader)
    assert reply.ret_code == "1001"
    assert await closed_by_peer(reader)
    writer.close()
    await hostile.serves()


async def test_length_above_the_limit_is_refused_from_the_header_alone(hostile: Hostile) -> None:
    """1001 arrives although no body byte was sent: the daemon decided on the header
    and never waited for (or buffered) the body."""
    for header in (b"%08d" % (MIB + 1), b"99999999"):
        await send_expecting_1001_then_close(hostile, "tcp", header)
    await hostile.serves()


async def test_length_above_the_limit_while_the_body_streams(hostile: Hostile) -> None:
    """A client that keeps pushing its oversized body still gets the 1001, then a close."""
    reader, writer = await hostile.open("tcp")
    writer.write(b"99999999")

    async def push() -> None:
        chunk = b"A" * 65536
        with contextlib.suppress(ConnectionError, OSError):
            for _ in range(200):  # 13 MB at most, bounded
                writer.write(chunk)
                await writer.drain()

    pusher = asyncio.create_task(push())
    try:
        await expect_1001_then_close(hostile, reader)
    finally:
        pusher.cancel()
        await asyncio.gather(pusher, return_exceptions=True)
        writer.transport.abort()
    await hostile.serves()


async def test_zero_length_frame(hostile: Hostile) -> None:
    await send_expecting_1001_then_close(hostile, "tcp", b"00000000")
    await hostile.serves()


async def test_lying_length_stalls_into_1001_after_the_frame_deadline(hostile: Hostile) -> None:
    """Claims 900 KB, sends 10 bytes, stalls: 1001 once frame_timeout (1 s) has passed."""
    await send_expecting_1001_then_close(hostile, "strict", b"%08d" % 900_000 + b"<CorpLink ")
    await hostile.serves()


async def test_lying_length_on_the_default_listener_is_not_answered_early(
    hostile: Hostile,
) -> None:
    """The default deadline is 30 s: nothing comes back within 1.5 s (no premature 1001)."""
    reader, writer = await hostile.open("tcp")
    writer.write(b"%08d" % 900_000 + b"<CorpLink ")
    await writer.drain()
    assert not await closed_by_peer(reader, limit=1.5)
    writer.transport.abort()
    await hostile.serves()


async def test_slowloris_one_byte_every_fifth_of_a_second(hostile: Hostile) -> None:
    """A valid signed frame dripped at 5 bytes/s cannot outlive the frame deadline."""
    frame = encode_frame(hostile.signed_pay())
    reader, writer = await hostile.open("strict")
    sent = 0

    async def drip() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError, OSError):
            for i in range(len(frame)):
                writer.write(frame[i : i + 1])
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.2)

    dripper = asyncio.create_task(drip())
    try:
        await expect_1001_then_close(hostile, reader)
    finally:
        dripper.cancel()
        await asyncio.gather(dripper, return_exceptions=True)
        writer.transport.abort()
    assert sent < len(frame) // 4
    await hostile.serves()


async def test_a_frame_in_time_is_served_on_the_strict_listener(hostile: Hostile) -> None:
    """The 1 s deadline refuses slow frames only: one that completes in time is served."""
    reader, writer = await hostile.open("strict")
    body = hostile.signed_pay()
    writer.write(encode_frame(body))
    await writer.drain()
    assert (await hostile.read_reply(reader)).ret_code == "0000"
    writer.close()
    await hostile.serves()


async def test_slow_tls_handshake_is_closed(hostile: Hostile) -> None:
    """Connect and send nothing: closed once handshake_timeout (1 s) has passed, with no
    bytes sent (there is no TLS session to carry a 1001)."""
    host, port = hostile.addr("tls_strict")
    reader, writer = await asyncio.open_connection(host, port)
    assert await eof_without_data(reader, limit=8.0) == b""
    writer.close()
    await hostile.serves()


async def test_stalled_client_hello_is_closed(hostile: Hostile) -> None:
    """Half a ClientHello, then silence: closed by the same deadline."""
    host, port = hostile.addr("tls_strict")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    await writer.drain()
    assert await closed_by_peer(reader, limit=8.0)
    writer.close()
    await hostile.serves()


async def test_plain_bytes_on_a_tls_listener(hostile: Hostile) -> None:
    host, port = hostile.addr("tls")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode_frame(hostile.signed_pay()))
    await writer.drain()
    assert await closed_by_peer(reader)
    writer.close()
    await hostile.serves()


async def test_tls_handshake_in_time_is_served_on_the_strict_listener(hostile: Hostile) -> None:
    reader, writer = await hostile.open("tls_strict")
    writer.write(encode_frame(hostile.signed_pay()))
    await writer.drain()
    assert (await hostile.read_reply(reader)).ret_code == "0000"
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
