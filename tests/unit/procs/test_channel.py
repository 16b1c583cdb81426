"""The front ↔ core channel over a real Unix socketpair: batching, errors, closing."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.errors import GatewayError, RetCode
from gateway.procs.channel import Channel, ChannelClosed, RemoteError, open_pair


class Core:
    """The serving side: records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.pushes: list[tuple[str, tuple[Any, ...]]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def on_call(self, method: str, args: tuple[Any, ...]) -> Any:
        self.calls.append((method, args))
        await self.release.wait()
        if method == "add":
            return sum(args)
        if method == "refuse":
            raise GatewayError(RetCode.NOT_PERMITTED, "daily limit")
        if method == "lock":
            return threading.Lock()  # a result that cannot be sent
        if method == "unpicklable":
            exc = RuntimeError("with a lock")
            exc.lock = threading.Lock()  # type: ignore[attr-defined]
            raise exc
        raise ValueError(f"unknown {method}")

    def on_push(self, method: str, args: tuple[Any, ...]) -> None:
        self.pushes.append((method, args))


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Channel, Channel, Core]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    core = Core()
    front = await open_pair(a, name="front")
    served = await open_pair(b, on_call=core.on_call, on_push=core.on_push, name="core")
    tasks = [asyncio.create_task(front.run()), asyncio.create_task(served.run())]
    yield front, served, core
    front.close()
    served.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_calls_made_in_one_loop_turn_travel_in_one_frame(
    pair: tuple[Channel, Channel, Core],
) -> None:
    front, served, core = pair
    results = await asyncio.gather(*(front.call("add", i, 1) for i in range(100)))
    assert results == [i + 1 for i in range(100)]
    assert front.frames_out == 1 and front.messages_out == 100
    # the answers come back batched too (all calls were served in one turn)
    assert served.messages_out == 100 and served.frames_out <= 3
    assert len(core.calls) == 100


async def test_pushes_are_delivered_in_order_without_answers(
    pair: tuple[Channel, Channel, Core],
) -> None:
    front, _served, core = pair
    for i in range(5):
        front.push("strike", f"10.0.0.{i}", "bad_frame")
    assert await front.call("add", 2, 3) == 5  # after the pushes, on the same stream
    assert [p[1][0] for p in core.pushes] == [f"10.0.0.{i}" for i in range(5)]


async def test_an_exception_is_raised_at_the_caller_as_itself(
    pair: tuple[Channel, Channel, Core],
) -> None:
    front, _served, _core = pair
    with pytest.raises(GatewayError) as info:
        await front.call("refuse")
    assert info.value.code is RetCode.NOT_PERMITTED
    with pytest.raises(RemoteError, match="RuntimeError: with a lock"):
        await front.call("unpicklable")
    with pytest.raises(ValueError, match="unknown nope"):
        await front.call("nope")


async def test_calls_in_flight_fail_when_the_other_side_goes_away(
    pair: tuple[Channel, Channel, Core],
) -> None:
    front, served, core = pair
    core.release.clear()  # the core holds the call
    pending = asyncio.create_task(front.call("add", 1))
    await asyncio.sleep(0.05)
    assert core.calls == [("add", (1,))]
    served.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(ChannelClosed):
        await front.call("add", 1)
    front.push("lost", 1)  # a push on a closed channel is dropped, not raised


async def test_an_answer_that_cannot_be_sent_fails_only_its_own_call(
    pair: tuple[Channel, Channel, Core],
) -> None:
    front, _served, _core = pair
    results = await asyncio.gather(
        front.call("add", 1, 1), front.call("lock"), front.call("add", 2, 2), return_exceptions=True
    )
    assert results[0] == 2 and results[2] == 4
    assert isinstance(results[1], RemoteError)
    with pytest.raises(RemoteError, match="call not sendable"):
        await front.call("add", threading.Lock())
    assert await front.call("add", 5) == 5
