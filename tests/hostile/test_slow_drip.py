"""Slow drip against the real daemon with the default frame deadline (corplink.md §1).

"Once the first byte of a frame has arrived, the whole frame must arrive
within 30 s (no slow-drip frames)."  A valid signed request sent one byte per
second gets its 1001 by second 30 after its first byte (a second of slack for
scheduling), whatever part of the frame the drip has reached: the header does
not restart the clock.  This takes ~30 s; the TCP and TLS listeners run side
by side.
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway.config import ListenerConfig
from gateway.net.framing import encode_frame
from tests.hostile.tools import Hostile, closed_by_peer

FRAME_DEADLINE = ListenerConfig.frame_timeout  # the configuration's default
SLACK = 1.0


async def drip_until_1001(hostile: Hostile, listener: str) -> tuple[float, int, int]:
    """Drip a signed PAY a byte a second; (seconds from the first byte to the 1001,
    bytes sent, frame length)."""
    frame = encode_frame(hostile.signed_pay())
    reader, writer = await hostile.open(listener)
    loop = asyncio.get_running_loop()
    sent = 0
    started = loop.time()

    async def drip() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError, OSError):
            for i in range(len(frame)):
                writer.write(frame[i : i + 1])
                await writer.drain()
                sent += 1
                await asyncio.sleep(1.0)

    dripper = asyncio.create_task(drip())
    try:
        reply = await hostile.read_reply(reader, limit=FRAME_DEADLINE + 10)
        elapsed = loop.time() - started
        assert (reply.ret_code, reply.msg_id) == ("1001", "")
        assert await closed_by_peer(reader)
    finally:
        dripper.cancel()
        await asyncio.gather(dripper, return_exceptions=True)
        writer.transport.abort()
    return elapsed, sent, len(frame)


def test_the_default_deadline_is_the_specs_30_s() -> None:
    assert FRAME_DEADLINE == 30.0


async def test_one_byte_a_second_gets_1001_by_second_30(hostile: Hostile) -> None:
    listeners = ("tcp", "tls")  # both with the default deadline (tools.LISTENERS)
    results = await asyncio.gather(*(drip_until_1001(hostile, name) for name in listeners))
    for name, (elapsed, sent, length) in zip(listeners, results, strict=True):
        assert FRAME_DEADLINE - SLACK <= elapsed <= FRAME_DEADLINE + SLACK, (name, elapsed)
        assert sent < length, name  # refused mid-frame, not answered after the last byte
    await hostile.serves()
