"""corplink.md §1: the whole frame within ``frame_timeout`` of its first byte.

One deadline runs from a frame's first header byte to its last body byte, so
a client cannot get a fresh allowance for the body by dripping the header.
Time the gateway itself spends waiting for its body budget (backpressure) is
not charged to the client.  The real daemon with the default 30 s deadline:
tests/hostile/test_slow_drip.py.
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway.net.framing import encode_frame
from gateway.net.listener import ConnInfo, Listener, ListenerSpec
from gateway.net.session import ByteBudget

from .conftest import bad_frame, bad_frame_body, echo, read_frame, read_to_eof, serving

DEADLINE = 1.0


def spec(name: str) -> ListenerSpec:
    return ListenerSpec(name=name, host="127.0.0.1", port=0, frame_timeout=DEADLINE)


async def test_header_and_body_share_one_deadline() -> None:
    """Header over ~0.7 s, body over ~0.7 s more: each part alone is within 1 s,
    the frame is not, so the answer is 1001 (frame_timeout)."""
    body = b"<x>" + b"y" * 30 + b"</x>"
    frame = encode_frame(body)
    async with serving(spec("deadline1"), echo) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(ConnectionError):
            for i in range(8):  # the header, a byte every 0.1 s
                writer.write(frame[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.1)
            for i in range(8, len(frame), 5):  # the body, 5 bytes every 0.1 s
                writer.write(frame[i : i + 5])
                await writer.drain()
                await asyncio.sleep(0.1)
        got = await read_to_eof(reader)
        writer.transport.abort()
    assert got == encode_frame(bad_frame_body("frame_timeout"))


async def test_waiting_for_the_body_budget_is_not_the_clients_time() -> None:
    """The budget is held by another connection's frame for longer than the frame
    deadline; the waiting frame's body, sent as soon as the budget is free, is
    served: the deadline stood still while the gateway was not reading."""
    release = asyncio.Event()

    async def handler(body: bytes, conn: ConnInfo) -> bytes:
        if body.startswith(b"<hold"):
            await release.wait()
        return await echo(body, conn)

    budget = ByteBudget(64)
    listener = Listener(spec("deadline2"), handler, bad_frame, budget=budget)
    _, port = await listener.start()
    try:
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        held = b"<hold>" + b"z" * 51 + b"</hold>"  # 64 bytes: the whole budget
        w1.write(encode_frame(held))
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        waiting = encode_frame(b"<wait>" + b"w" * 20 + b"</wait>")
        w2.write(waiting[:8])  # the header: the gateway now waits for budget
        await w2.drain()
        await asyncio.sleep(DEADLINE * 1.5)  # the budget stays held past the deadline
        release.set()
        await asyncio.sleep(DEADLINE / 4)  # the body comes a little later, well in time
        w2.write(waiting[8:])
        await w2.drain()
        assert await read_frame(r1) == b"echo:" + held
        assert await read_frame(r2) == b"echo:" + waiting[8:]
        w1.transport.abort()
        w2.transport.abort()
    finally:
        await listener.close()
