"""Inbound dispatch: handler failures, acknowledgement, hostile properties (clearing.md §1)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from structlog.testing import capture_logs

from gateway.clearing.link import ClearingLink
from gateway.testing import Broker
from tests.unit.clearing_link.helpers import Inbox, config, eventually, running, sample


async def _publish(broker: Broker, topic: str, payload: bytes, *props: tuple[str, str]) -> None:
    async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        properties = None
        if props:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = list(props)
        await c.publish(topic, payload, qos=1, properties=properties)


async def test_handler_error_is_logged_counted_and_the_link_keeps_running(broker: Broker) -> None:
    inbox = Inbox()

    async def handler(topic: str, payload: bytes, props: dict[str, str]) -> None:
        if payload == b"poison":
            raise KeyError("boom")
        await inbox(topic, payload, props)

    dropped = sample("gateway_inbound_dropped_total", reason="handler_error")
    cfg = config(broker.url, "gw-poison", "clearing/+/in")
    with capture_logs() as logs:
        async with running(cfg, handler) as link:
            await _publish(broker, "clearing/hvps/in", b"poison", ("MsgTp", "ccms.990"))
            await _publish(broker, "clearing/hvps/in", b"fine")
            await inbox.wait_for(1)
            assert link.is_connected
    assert inbox.payloads == [b"fine"]
    assert sample("gateway_inbound_dropped_total", reason="handler_error") == dropped + 1
    errors = [e for e in logs if e["event"] == "inbound_handler_error"]
    assert len(errors) == 1
    assert errors[0]["msg_tp"] == "ccms.990"
    assert errors[0]["topic"] == "clearing/hvps/in"

    # the failed message was acknowledged: it does not come back as poison on every reconnect
    again = Inbox()
    await _publish(broker, "clearing/hvps/in", b"after")
    async with running(cfg, again):
        await again.wait_for(1)
    assert again.payloads == [b"after"]


async def test_a_handler_failing_once_is_retried_and_nothing_is_dropped(broker: Broker) -> None:
    """A journal blip (one failed write) must not lose a beps.settle or a credit."""
    inbox = Inbox()
    failures = 0

    async def handler(topic: str, payload: bytes, props: dict[str, str]) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise OSError("journal busy")
        await inbox(topic, payload, props)

    dropped = sample("gateway_inbound_dropped_total", reason="handler_error")
    cfg = replace(config(broker.url, "gw-retry", "clearing/+/in"), handler_retry_delay=0.05)
    with capture_logs() as logs:
        async with running(cfg, handler):
            await _publish(broker, "clearing/beps/in", b"settle", ("MsgTp", "beps.settle"))
            await inbox.wait_for(1)
    assert inbox.payloads == [b"settle"]
    assert sample("gateway_inbound_dropped_total", reason="handler_error") == dropped
    assert [e["attempt"] for e in logs if e["event"] == "inbound_handler_retry"] == [1]


async def test_messages_are_handled_one_at_a_time_in_order(broker: Broker) -> None:
    active = 0
    seen: list[bytes] = []

    async def handler(topic: str, payload: bytes, props: dict[str, str]) -> None:
        nonlocal active
        active += 1
        assert active == 1
        await asyncio.sleep(0)
        seen.append(payload)
        active -= 1

    async with running(config(broker.url, "gw-order", "clearing/+/in"), handler):
        async with aiomqtt.Client(broker.host, broker.port) as c:
            for i in range(200):
                await c.publish("clearing/beps/in", b"%d" % i, qos=1)
        await eventually(lambda: len(seen) >= 200)
    assert seen == [b"%d" % i for i in range(200)]


async def test_repeated_user_properties_keep_the_first(broker: Broker) -> None:
    inbox = Inbox()
    async with running(config(broker.url, "gw-dup", "clearing/+/in"), inbox):
        await _publish(
            broker,
            "clearing/intra/in",
            b"x",
            ("MsgId", "first"),
            ("MsgId", "second"),
            ("Other", "v"),
        )
        await inbox.wait_for(1)
    assert inbox.items[0][2] == {"MsgId": "first", "Other": "v"}


async def test_close_lets_the_handler_in_progress_finish_and_acknowledge(broker: Broker) -> None:
    cfg = config(broker.url, "gw-drain", "clearing/+/in")
    entered, release = asyncio.Event(), asyncio.Event()
    done: list[bytes] = []

    async def slow(topic: str, payload: bytes, props: dict[str, str]) -> None:
        entered.set()
        await release.wait()
        done.append(payload)

    link = ClearingLink(cfg, slow)
    task = asyncio.create_task(link.run())
    await link.wait_connected()
    await _publish(broker, "clearing/hvps/in", b"in-progress")
    await entered.wait()
    closing = asyncio.create_task(link.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # close waits for the handler
    release.set()
    await closing
    await task
    assert done == [b"in-progress"]

    later = Inbox()
    await _publish(broker, "clearing/hvps/in", b"next")
    async with running(cfg, later):
        await later.wait_for(1)
    assert later.payloads == [b"next"]  # the drained message was acknowledged
