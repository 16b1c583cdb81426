"""The inbound window: concurrent checks and journal steps, barriers, acknowledgements in order."""

from __future__ import annotations

import asyncio
import random

import aiomqtt

from gateway.clearing.inbound_pipeline import InboundPipeline, Prepared, RetryPolicy
from gateway.testing import Broker
from tests.unit.clearing_link.helpers import config, eventually, running


class Recorder:
    """A two-phase handler whose messages say how they behave: ``c:<n>`` commutes,
    ``o:<n>`` is ordered; ``fail-once`` fails its first journal step."""

    def __init__(self, *, jitter: float = 0.01) -> None:
        self.jitter = jitter
        self.active = 0
        self.max_active = 0
        self.started: list[str] = []
        self.finished: list[str] = []
        self.failed_once: set[str] = set()
        self.rng = random.Random(7)

    async def prepare(self, topic: str, payload: bytes, props: dict[str, str]) -> Prepared:
        await asyncio.sleep(self.rng.random() * self.jitter)  # checks finish out of order
        name = payload.decode()
        return Prepared(topic, props, ordered=name.startswith("o:"), work=name)

    async def apply(self, prepared: Prepared) -> None:
        name = prepared.work
        self.started.append(name)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.rng.random() * self.jitter)
            if "fail-once" in name and name not in self.failed_once:
                self.failed_once.add(name)
                raise RuntimeError("journal blip")
            self.finished.append(name)
        finally:
            self.active -= 1


async def _run(handler: Recorder, names: list[str], window: int = 16) -> list[str]:
    acked: list[str] = []
    pipe = InboundPipeline(handler, acked.append, window=window, retry=RetryPolicy(3, 0.01))
    try:
        for n in names:
            await pipe.feed(n, "clearing/hvps/in", n.encode(), {})
        async with asyncio.timeout(10):
            await pipe.drain()
    finally:
        await pipe.close()
    return acked


async def test_commuting_messages_are_applied_together_and_acknowledged_in_arrival_order() -> None:
    names = [f"c:{i}" for i in range(200)]
    handler = Recorder()
    acked = await _run(handler, names)
    assert acked == names  # PUBACK order = PUBLISH order (MQTT 5 §4.6)
    assert sorted(handler.finished) == sorted(names)
    assert handler.max_active > 1  # journal steps overlapped: one group commit for many
    assert handler.finished != names  # they finished out of order, yet were acked in order


async def test_an_ordered_message_is_a_barrier_both_ways() -> None:
    names = [*(f"c:a{i}" for i in range(30)), "o:netting", *(f"c:b{i}" for i in range(30)),
             "o:settle", "c:last"]  # fmt: skip
    handler = Recorder()
    acked = await _run(handler, names)
    assert acked == names
    done = handler.finished
    netting, settle = done.index("o:netting"), done.index("o:settle")
    assert {n for n in done[:netting]} == {f"c:a{i}" for i in range(30)}
    assert {n for n in done[netting + 1 : settle]} == {f"c:b{i}" for i in range(30)}
    assert done[settle + 1 :] == ["c:last"]
    # the barrier ran alone
    assert handler.started.index("o:netting") == netting
    assert handler.started.index("o:settle") == settle


async def test_a_failing_journal_step_is_retried_and_later_acknowledgements_wait_for_it() -> None:
    names = ["c:1", "c:fail-once", "c:3"]
    handler = Recorder()
    acked = await _run(handler, names)
    assert acked == names
    assert handler.finished.count("c:fail-once") == 1
    assert handler.started.count("c:fail-once") == 2


async def test_a_message_that_keeps_failing_is_given_up_and_the_window_moves_on() -> None:
    class Broken(Recorder):
        async def apply(self, prepared: Prepared) -> None:
            if prepared.work == "c:poison":
                raise RuntimeError("always")
            await super().apply(prepared)

    handler = Broken()
    acked = await _run(handler, ["c:poison", "c:after"], window=1)
    assert acked == ["c:poison", "c:after"]  # given up after 3 tries: acknowledged, not stuck
    assert handler.finished == ["c:after"]


async def test_the_window_bounds_messages_in_progress() -> None:
    handler = Recorder(jitter=0.005)
    acked = await _run(handler, [f"c:{i}" for i in range(100)], window=4)
    assert len(acked) == 100
    assert handler.max_active <= 4


async def test_the_link_feeds_a_two_phase_handler_and_acknowledges_everything(
    broker: Broker,
) -> None:
    """Through a real broker: 300 receipts-like messages, every one applied once and
    acknowledged (a second link with the same session gets nothing redelivered)."""
    handler = Recorder(jitter=0.002)
    cfg = config(broker.url, "gw-window", "clearing/+/in")
    async with running(cfg, handler):
        async with aiomqtt.Client(broker.host, broker.port) as c:
            for i in range(300):
                await c.publish("clearing/hvps/in", b"c:%d" % i, qos=1)
        await eventually(lambda: len(handler.finished) >= 300)
    assert sorted(handler.finished) == sorted(f"c:{i}" for i in range(300))
    assert handler.max_active > 1

    again = Recorder()
    async with running(cfg, again):
        await asyncio.sleep(0.5)
    assert again.finished == []
