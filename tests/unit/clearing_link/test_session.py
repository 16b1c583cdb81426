"""Persistent sessions, broker outages, shared subscriptions (clearing.md §1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiomqtt
import pytest

from gateway.clearing.link import ClearingLink, PublishFailed
from gateway.testing import Broker
from tests.unit.clearing_link.helpers import (
    CustomBroker,
    Inbox,
    config,
    eventually,
    running,
    sample,
)


async def _publish_plain(host: str, port: int, topic: str, *payloads: bytes) -> None:
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
        for payload in payloads:
            await pub.publish(topic, payload, qos=1)


async def test_messages_published_while_away_arrive_on_return(broker: Broker) -> None:
    cfg = config(broker.url, "gw-persist", "clearing/+/in")
    async with running(cfg, Inbox()):
        pass  # subscribed, then closed cleanly: the session stays on the broker
    await _publish_plain(broker.host, broker.port, "clearing/hvps/in", b"r1", b"r2")
    inbox = Inbox()
    async with running(cfg, inbox):
        await inbox.wait_for(2)
    assert inbox.payloads == [b"r1", b"r2"]


async def test_a_different_client_id_does_not_inherit_the_session(broker: Broker) -> None:
    async with running(config(broker.url, "gw-one", "clearing/+/in"), Inbox()):
        pass
    await _publish_plain(broker.host, broker.port, "clearing/hvps/in", b"for gw-one")
    other, mine = Inbox(), Inbox()
    async with (
        running(config(broker.url, "gw-two", "clearing/+/in"), other),
        running(config(broker.url, "gw-one", "clearing/+/in"), mine),
    ):
        await mine.wait_for(1)
    assert other.items == []


async def test_queued_messages_survive_a_broker_restart(
    custom_broker: Callable[[list[str]], CustomBroker],
) -> None:
    b = custom_broker([])
    cfg = config(b.url(), "gw-restart", "clearing/+/in")
    async with running(cfg, Inbox()):
        pass
    await _publish_plain(b.host, b.port, "clearing/beps/in", *(b"%d" % i for i in range(20)))
    b.restart()  # SIGTERM: mosquitto writes its snapshot on the way out
    inbox = Inbox()
    async with running(cfg, inbox):
        await inbox.wait_for(20)
    assert inbox.payloads == [b"%d" % i for i in range(20)]


async def test_broker_outage_fails_publishes_then_the_link_recovers(broker: Broker) -> None:
    reconnects = sample("gateway_clearing_link_reconnects_total")
    async with running(config(broker.url, "gw-outage", publish_timeout=2.0), Inbox()) as link:
        assert sample("gateway_clearing_link_up") == 1

        outcomes: list[PublishFailed | None] = []

        async def stream() -> None:
            for i in range(100_000):
                try:
                    await link.publish("clearing/hvps/out", b"x", msg_tp="hvps.111", msg_id=f"{i}")
                    outcomes.append(None)
                except PublishFailed as exc:
                    outcomes.append(exc)
                    if sum(o is not None for o in outcomes) >= 3:
                        return

        streamer = asyncio.create_task(stream())
        await eventually(lambda: len(outcomes) >= 50)
        broker.stop()
        async with asyncio.timeout(10):
            await streamer
        await link.wait_disconnected()
        assert sample("gateway_clearing_link_up") == 0
        failures = [o for o in outcomes if isinstance(o, PublishFailed)]
        assert len(failures) == 3
        assert {f.reason for f in failures} <= {"disconnected", "not_connected"}
        assert failures[-1].reason == "not_connected"  # refused at once, nothing queued

        broker.restart()
        async with asyncio.timeout(10):
            await link.wait_connected()
        assert sample("gateway_clearing_link_up") == 1
        assert sample("gateway_clearing_link_reconnects_total") > reconnects
        await link.publish("clearing/hvps/out", b"again", msg_tp="hvps.111", msg_id="0")


async def test_link_comes_up_when_the_broker_starts_late(broker: Broker) -> None:
    broker.stop()
    link = ClearingLink(config(broker.url, "gw-late", "clearing/+/in"), Inbox())
    task = asyncio.create_task(link.run())
    before = sample("gateway_clearing_link_reconnects_total")
    await eventually(lambda: sample("gateway_clearing_link_reconnects_total") >= before + 2)
    assert not link.is_connected
    broker.restart()
    async with asyncio.timeout(10):
        await link.wait_connected()
    await link.close()
    await task


async def test_unacknowledged_message_is_redelivered_after_a_crash(broker: Broker) -> None:
    """The handler never finishes (a crash mid-message): no PUBACK, so the broker redelivers."""
    cfg = config(broker.url, "gw-crash", "clearing/+/in")
    started = asyncio.Event()

    async def stuck(topic: str, payload: bytes, props: dict[str, str]) -> None:
        started.set()
        await asyncio.Event().wait()

    link = ClearingLink(cfg, stuck)
    task = asyncio.create_task(link.run())
    await link.wait_connected()
    await _publish_plain(broker.host, broker.port, "clearing/intra/in", b"receipt-1")
    await started.wait()
    task.cancel()  # the process dies while handling
    with contextlib.suppress(asyncio.CancelledError):
        await task

    inbox = Inbox()
    async with running(cfg, inbox):
        await inbox.wait_for(1)
    assert inbox.payloads == [b"receipt-1"]


async def test_handled_messages_are_not_redelivered(broker: Broker) -> None:
    cfg = config(broker.url, "gw-acked", "clearing/+/in")
    first = Inbox()
    async with running(cfg, first):
        await _publish_plain(broker.host, broker.port, "clearing/intra/in", b"a", b"b")
        await first.wait_for(2)
    await _publish_plain(broker.host, broker.port, "clearing/intra/in", b"c")
    second = Inbox()
    async with running(cfg, second):
        await second.wait_for(1)
    assert second.payloads == [b"c"]


async def test_shared_subscription_splits_messages_between_nodes(broker: Broker) -> None:
    one, two = Inbox(), Inbox()
    cfg_one = config(broker.url, "gw-node-1", "clearing/+/in", shared=True)
    assert cfg_one.topic_filters == ("$share/gateway/clearing/+/in",)
    async with (
        running(cfg_one, one),
        running(config(broker.url, "gw-node-2", "clearing/+/in", shared=True), two),
    ):
        payloads = [b"%d" % i for i in range(100)]
        await _publish_plain(broker.host, broker.port, "clearing/hvps/in", *payloads)
        await eventually(lambda: len(one.items) + len(two.items) >= 100)
        await asyncio.sleep(0.1)  # a duplicate, if any, would arrive now
    assert sorted(one.payloads + two.payloads) == sorted(payloads)  # each exactly once
    assert one.items
    assert two.items
    assert {t for t, _, _ in one.items + two.items} == {"clearing/hvps/in"}


@pytest.mark.parametrize("shared", [False, True])
async def test_close_ends_run_and_a_link_runs_once(broker: Broker, *, shared: bool) -> None:
    link = ClearingLink(config(broker.url, "gw-close", "clearing/+/in", shared=shared), Inbox())
    task = asyncio.create_task(link.run())
    await link.wait_connected()
    with pytest.raises(RuntimeError, match="already running"):
        await link.run()
    await link.close()
    await task  # returns normally after close()
    assert not link.is_connected
    with pytest.raises(PublishFailed):
        await link.publish("clearing/hvps/out", b"x", msg_tp="hvps.111", msg_id="M1")
