"""Outbound: QoS 1 publishes with user properties, PUBACK outcomes, load (clearing.md §1, §2)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest
import trustme
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


async def test_publish_reaches_a_plain_subscriber_with_user_properties(broker: Broker) -> None:
    async with (
        running(config(broker.url, "gw-a"), Inbox()) as link,
        aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as sub,
    ):
        await sub.subscribe("clearing/hvps/out", qos=1)
        await link.publish(
            "clearing/hvps/out", b"<ClrMsg/>", msg_tp="hvps.111", msg_id="1031000000192026"
        )
        async with asyncio.timeout(5):
            message = await anext(aiter(sub.messages))
    assert message.payload == b"<ClrMsg/>"
    assert message.qos == 1
    assert message.retain is False
    assert message.properties is not None
    user = getattr(message.properties, "UserProperty", None)
    assert user == [("MsgTp", "hvps.111"), ("MsgId", "1031000000192026")]


async def test_inbound_message_reaches_the_handler_with_its_properties(broker: Broker) -> None:
    inbox = Inbox()
    async with running(config(broker.url, "gw-b", "clearing/+/in"), inbox):
        async with aiomqtt.Client(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as pub:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = [("MsgTp", "ccms.990"), ("MsgId", "R1")]
            await pub.publish("clearing/beps/in", b"receipt", qos=1, properties=props)
            await pub.publish("clearing/beps/other", b"not subscribed", qos=1)
            await pub.publish("clearing/hvps/in", b"", qos=0)
        await inbox.wait_for(2)
    assert inbox.items[0] == ("clearing/beps/in", b"receipt", {"MsgTp": "ccms.990", "MsgId": "R1"})
    assert inbox.items[1] == ("clearing/hvps/in", b"", {})


async def test_publish_while_not_connected_fails_at_once() -> None:
    link = ClearingLink(config("mqtt://127.0.0.1:1", "gw-c"), Inbox())
    with pytest.raises(PublishFailed) as caught:
        await link.publish("clearing/hvps/out", b"x", msg_tp="hvps.111", msg_id="M1")
    assert caught.value.reason == "not_connected"
    assert not link.is_connected


async def test_publish_requires_msg_tp_and_msg_id(broker: Broker) -> None:
    async with running(config(broker.url, "gw-d"), Inbox()) as link:
        with pytest.raises(ValueError, match="msg_tp and msg_id"):
            await link.publish("clearing/hvps/out", b"x", msg_tp="", msg_id="M1")
        with pytest.raises(ValueError, match=r"[Ii]nvalid topic|wildcard"):
            await link.publish("clearing/+/out", b"x", msg_tp="hvps.111", msg_id="M1")
        # the link is still usable after refusing bad calls
        await link.publish("clearing/hvps/out", b"x", msg_tp="hvps.111", msg_id="M1")


async def test_puback_failure_reason_code_raises(
    tmp_path: Path, custom_broker: Callable[[list[str]], CustomBroker]
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite clearing/#\n", encoding="utf-8")
    b = custom_broker([f"acl_file {acl}"])
    async with running(config(b.url(), "gw-acl"), Inbox()) as link:
        await link.publish("clearing/hvps/out", b"ok", msg_tp="hvps.111", msg_id="M1")
        with pytest.raises(PublishFailed) as caught:
            await link.publish("elsewhere/out", b"no", msg_tp="hvps.111", msg_id="M2")
        assert caught.value.reason == "refused"
        assert caught.value.reason_code == 0x87  # Not authorized
        assert link.is_connected  # a refusal is not a link failure


async def test_two_thousand_concurrent_publishes_complete_without_warnings(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    payload = bytes(2048)
    with caplog.at_level(logging.WARNING):
        # a load test, not a timeout test: a loaded CI machine may take seconds per PUBACK
        load_cfg = config(broker.url, "gw-load", max_inflight=100, publish_timeout=15.0)
        async with running(load_cfg, Inbox()) as link:
            results = await asyncio.gather(
                *(
                    link.publish("clearing/beps/out", payload, msg_tp="beps.121", msg_id=f"M{i}")
                    for i in range(2000)
                ),
                return_exceptions=True,
            )
    assert results == [None] * 2000
    assert not [r for r in caplog.records if "pending" in r.getMessage()]


async def test_publish_times_out_when_the_broker_hangs(broker: Broker) -> None:
    async with running(config(broker.url, "gw-hang", publish_timeout=0.3), Inbox()) as link:
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(PublishFailed) as caught:
                await link.publish("clearing/hvps/out", b"x", msg_tp="hvps.111", msg_id="M1")
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        assert caught.value.reason == "timeout"
        # the stalled connection is dropped and a new one made; the same MsgId goes
        # again once the broker answers (clearing.md §1)
        async with asyncio.timeout(10):
            await link.wait_disconnected()
            await link.wait_connected()
            await link.publish("clearing/hvps/out", b"x", msg_tp="hvps.111", msg_id="M1")


async def test_a_publish_that_failed_never_goes_out_later(broker: Broker) -> None:
    """Nothing waits in paho's queue beyond its in-flight window: when the broker
    stalls, only the messages really on the wire may still arrive; the others
    failed and were never handed over, so the journal's re-send is their only copy."""
    received: list[bytes] = []
    async with (
        aiomqtt.Client(
            broker.host, broker.port, identifier="sub-stall", clean_session=False
        ) as sub,
        running(config(broker.url, "gw-stall", publish_timeout=0.3, max_inflight=2), Inbox())
        as link,
    ):  # fmt: skip
        await sub.subscribe("clearing/hvps/out", qos=1)
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            results = await asyncio.gather(
                *(
                    link.publish("clearing/hvps/out", b"M%d" % i, msg_tp="hvps.111",
                                 msg_id=f"M{i}")
                    for i in range(10)
                ),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        assert all(isinstance(r, PublishFailed) for r in results)

        async def collect() -> None:
            async for message in sub.messages:
                received.append(bytes(message.payload))  # type: ignore[arg-type]

        task = asyncio.create_task(collect())
        await asyncio.sleep(1.5)
        task.cancel()
    assert len(received) <= 2, received  # at most the in-flight window, never all ten


async def test_mqtt_311_round_trip_without_user_properties(broker: Broker) -> None:
    inbox = Inbox()
    async with running(config(broker.url, "gw-311", "clearing/+/in", protocol=4), inbox) as link:
        await link.publish("clearing/intra/in", b"loop", msg_tp="intra.111", msg_id="M1")
        await inbox.wait_for(1)
    assert inbox.items == [("clearing/intra/in", b"loop", {})]


async def test_mqtts_with_client_certificate(
    tmp_path: Path, custom_broker: Callable[[list[str]], CustomBroker]
) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("gateway-node-1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    b = custom_broker(
        [
            f"cafile {tmp_path / 'ca.pem'}",
            f"certfile {tmp_path / 'server.pem'}",
            f"keyfile {tmp_path / 'server.key'}",
            "require_certificate true",
        ]
    )
    inbox = Inbox()
    cfg = config(
        b.url("mqtts"),
        "gw-tls",
        "clearing/+/in",
        tls_ca=tmp_path / "ca.pem",
        tls_cert=tmp_path / "client.pem",
        tls_key=tmp_path / "client.key",
    )
    async with running(cfg, inbox) as link:
        await link.publish("clearing/hvps/in", b"secure", msg_tp="ccms.990", msg_id="R1")
        await inbox.wait_for(1)
    assert inbox.payloads == [b"secure"]

    # without a client certificate the broker refuses the handshake: the link never comes up
    anonymous = ClearingLink(config(b.url("mqtts"), "gw-anon", tls_ca=tmp_path / "ca.pem"), inbox)
    before = sample("gateway_clearing_link_reconnects_total")
    task = asyncio.create_task(anonymous.run())
    await eventually(lambda: sample("gateway_clearing_link_reconnects_total") >= before + 2)
    assert not anonymous.is_connected
    await anonymous.close()
    await task
