"""The core banking link against a real mosquitto (clearing.md §5).

The core system is played either by the simulator (``gateway.sim.core``) or,
where a test must decide exactly when and what is answered, by a
``Responder``: a plain MQTT 5 client on ``core/req`` that hands each request
to the test and publishes whatever bytes the test chooses to the request's
ResponseTopic.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import aiomqtt
import pytest
import trustme
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.core import (
    BalanceAnswer,
    CoreConfig,
    CoreError,
    CoreLink,
    CoreTimeout,
    build_acct_check_rsp,
    build_bal_rsp,
    parse_request,
)
from gateway.sim.core import CoreAccount, CoreSimConfig, CoreSimulator
from gateway.testing import Broker, running_simulator
from tests.unit.clearing_link.helpers import CustomBroker, eventually, running_core_link

WAIT = 10.0  # bound on any single wait; tests finish far sooner
ACCOUNTS = {
    "6222000000000001": CoreAccount("Demo Trading Co.", Decimal("1000.00"), Decimal("900.00")),
    "6222000000000201": CoreAccount("Overdrawn Ltd", Decimal("-25.50"), Decimal("474.50")),
}
SILENT = "6222000000000999"


def core_config(url: str, node: str = "n1", **kw: object) -> CoreConfig:
    kw.setdefault("timeout", 3.0)
    kw.setdefault("reconnect_min", 0.05)
    kw.setdefault("reconnect_max", 0.5)
    return CoreConfig(broker_url=url, client_id=f"gw-core-{node}", node=node, **kw)  # type: ignore[arg-type]


def running_link(config: CoreConfig) -> contextlib.AbstractAsyncContextManager[CoreLink]:
    return running_core_link(config, WAIT)


def running_sim(url: str, **kw: object) -> contextlib.AbstractAsyncContextManager[CoreSimulator]:
    sim = CoreSimulator(CoreSimConfig(broker_url=url, accounts=ACCOUNTS, **kw))  # type: ignore[arg-type]
    return running_simulator(sim, timeout=WAIT)


class Responder:
    """The test's own core system: hands each request over and answers on demand."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.requests: asyncio.Queue[tuple[str, bytes, bytes]] = asyncio.Queue()

    async def next_request(self) -> tuple[str, bytes, bytes]:
        """``(response topic, correlation data, request bytes)`` of the next request."""
        async with asyncio.timeout(WAIT):
            return await self.requests.get()

    async def answer(self, topic: str, corr: bytes | None, payload: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if corr is not None:
            props.CorrelationData = corr
        await self.client.publish(topic, payload, qos=1, properties=props)


@contextlib.asynccontextmanager
async def responder(broker: Broker) -> AsyncIterator[Responder]:
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5, identifier="test-core"
    ) as client:
        r = Responder(client)
        await client.subscribe("core/req", qos=1)

        async def pump() -> None:
            async for message in client.messages:
                props = message.properties
                assert isinstance(message.payload, bytes)
                await r.requests.put(
                    (props.ResponseTopic, bytes(props.CorrelationData), message.payload)
                )

        task = asyncio.create_task(pump())
        try:
            yield r
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ------------------------------------------------------------------ with the simulator


async def test_balance_of_a_known_account(broker: Broker) -> None:
    async with running_sim(broker.url) as sim, running_link(core_config(broker.url)) as link:
        answer = await link.balance("6222000000000001")
        await eventually(lambda: sim.stats["answered"] == 1)  # counted on its PUBACK
    assert answer == BalanceAnswer(
        "6222000000000001", "OK", "CNY", Decimal("1000.00"), Decimal("900.00")
    )
    assert link.stats.answered == 1


async def test_negative_balance_of_an_overdrawn_account(broker: Broker) -> None:
    async with running_sim(broker.url), running_link(core_config(broker.url)) as link:
        answer = await link.balance("6222000000000201")
    assert (answer.balance, answer.available) == (Decimal("-25.50"), Decimal("474.50"))


async def test_balance_of_an_unknown_account(broker: Broker) -> None:
    async with running_sim(broker.url), running_link(core_config(broker.url)) as link:
        answer = await link.balance("6222000000000777")
    assert answer == BalanceAnswer("6222000000000777", "UNKNOWN", None, None, None)


async def test_account_check_match_mismatch_unknown(broker: Broker) -> None:
    async with running_sim(broker.url), running_link(core_config(broker.url)) as link:
        results = await asyncio.gather(
            link.check_account("6222000000000001", "  Demo Trading Co. "),
            link.check_account("6222000000000001", "Demo Trading Company"),
            link.check_account("6222000000000777", "Demo Trading Co."),
        )
    assert results == ["MATCH", "MISMATCH", "UNKNOWN"]


async def test_silent_account_times_out_after_the_configured_timeout(broker: Broker) -> None:
    cfg = core_config(broker.url, timeout=0.5)
    async with (
        running_sim(broker.url, silent_accounts=frozenset({SILENT})) as sim,
        running_link(cfg) as link,
    ):
        started = time.monotonic()
        async with asyncio.timeout(WAIT):
            with pytest.raises(CoreTimeout):
                await link.balance(SILENT)
        elapsed = time.monotonic() - started
        # the link keeps working for other accounts
        assert (await link.balance("6222000000000001")).result == "OK"
    assert elapsed >= 0.5
    assert sim.stats["silent"] == 1
    assert link.stats.timeouts == 1


async def test_many_concurrent_requests_each_get_their_own_answer(broker: Broker) -> None:
    accts = [*ACCOUNTS, "6222000000000777"] * 30
    async with running_sim(broker.url), running_link(core_config(broker.url)) as link:
        answers = await asyncio.gather(*(link.balance(a) for a in accts))
    assert [a.acct for a in answers] == accts
    assert [a.result for a in answers] == ["OK", "OK", "UNKNOWN"] * 30
    assert link.stats.unmatched == link.stats.late == link.stats.duplicates == 0


async def test_two_nodes_get_only_their_own_answers(broker: Broker) -> None:
    async with (
        running_sim(broker.url),
        running_link(core_config(broker.url, "n1")) as one,
        running_link(core_config(broker.url, "n2")) as two,
    ):
        a, b = await asyncio.gather(
            one.balance("6222000000000001"), two.check_account("6222000000000001", "x")
        )
    assert (a.result, b) == ("OK", "MISMATCH")
    assert one.stats.unmatched == two.stats.unmatched == 0


async def test_a_request_waits_for_the_connection_within_its_timeout(broker: Broker) -> None:
    link = CoreLink(core_config(broker.url))
    async with running_sim(broker.url):
        asking = asyncio.create_task(link.balance("6222000000000001"))
        await asyncio.sleep(0)  # the request is waiting before run() starts
        task = asyncio.create_task(link.run())
        try:
            async with asyncio.timeout(WAIT):
                answer = await asking
        finally:
            await link.close()
            await task
    assert answer.result == "OK"


async def test_no_broker_means_core_timeout(tmp_path: Path) -> None:
    from gateway.testing import free_port

    link = CoreLink(core_config(f"mqtt://127.0.0.1:{free_port()}", timeout=0.3))
    task = asyncio.create_task(link.run())
    try:
        with pytest.raises(CoreTimeout):
            await link.balance("6222000000000001")
        assert not link.is_connected
    finally:
        await link.close()
        await task


async def test_the_link_recovers_after_a_broker_restart(broker: Broker) -> None:
    cfg = core_config(broker.url, timeout=WAIT)
    async with running_sim(broker.url), running_link(cfg) as link:
        assert (await link.balance("6222000000000001")).result == "OK"
        broker.restart()
        await eventually(lambda: link.stats.connects == 2, WAIT)
        # the simulator's session outlived the restart: it answers when it is back
        answer = await link.balance("6222000000000002")
    assert answer.result == "UNKNOWN"
    assert link.stats.timeouts == 0


async def test_a_request_cut_off_by_a_broker_restart_is_sent_again(broker: Broker) -> None:
    # the simulator holds its answer for a second, so the restart swallows it
    async with (
        running_sim(broker.url, delay=1.0) as sim,
        running_link(core_config(broker.url, timeout=WAIT)) as link,
    ):
        asking = asyncio.create_task(link.balance("6222000000000001"))
        await eventually(lambda: sim.stats["requests"] == 1)
        broker.restart()
        answer = await asking
    assert answer.result == "OK"
    assert link.stats.resent == 1
    assert sim.stats["requests"] == 2


async def test_close_ends_waiting_requests_at_once(broker: Broker) -> None:
    link = CoreLink(core_config(broker.url, timeout=60.0))
    task = asyncio.create_task(link.run())
    async with asyncio.timeout(WAIT):
        await link.wait_connected()
        asking = asyncio.create_task(link.balance(SILENT))  # nobody answers
        await eventually(lambda: link.stats.requests == 1)
        await link.close()
        with pytest.raises(CoreTimeout):
            await asking
        await task


async def test_too_many_requests_in_flight_fail_at_once(broker: Broker) -> None:
    cfg = core_config(broker.url, timeout=WAIT, max_pending=2)
    async with (
        running_sim(broker.url, silent_accounts=frozenset({SILENT})),
        running_link(cfg) as link,
    ):
        waiting = [asyncio.create_task(link.balance(SILENT)) for _ in range(2)]
        await eventually(lambda: link.stats.requests == 2)
        with pytest.raises(CoreError, match="too many"):
            await link.balance("6222000000000001")
    for task in waiting:  # close() ended them
        with pytest.raises(CoreTimeout):
            await task


# --------------------------------------------------------------- with a test responder


async def test_request_carries_response_topic_and_correlation_data(broker: Broker) -> None:
    async with responder(broker) as core, running_link(core_config(broker.url, "node-7")) as link:
        asking = asyncio.create_task(link.check_account("6222000000000001", "名称"))
        topic, corr, body = await core.next_request()
        assert topic == "core/rsp/node-7"
        assert len(corr) >= 16
        request = parse_request(body)
        assert (request.acct, getattr(request, "name", None)) == ("6222000000000001", "名称")
        await core.answer(topic, corr, build_acct_check_rsp("6222000000000001", "MATCH"))
        assert await asking == "MATCH"


async def test_a_late_answer_is_dropped_and_never_reaches_another_request(
    broker: Broker,
) -> None:
    async with (
        responder(broker) as core,
        running_link(core_config(broker.url, timeout=0.5)) as link,
    ):
        with pytest.raises(CoreTimeout):
            await link.balance("6222000000000001")
        topic, late_corr, _ = await core.next_request()

        second = asyncio.create_task(link.balance("6222000000000001"))
        _, corr, _ = await core.next_request()
        # the first request's answer arrives now, while the second one waits
        await core.answer(topic, late_corr, build_bal_rsp("6222000000000001", "UNKNOWN"))
        await eventually(lambda: link.stats.late == 1)
        assert not second.done()
        await core.answer(
            topic,
            corr,
            build_bal_rsp("6222000000000001", "OK", "CNY", Decimal("7.00"), Decimal("7.00")),
        )
        assert (await second).balance == Decimal("7.00")


async def test_answers_in_reverse_order_are_correlated(broker: Broker) -> None:
    async with responder(broker) as core, running_link(core_config(broker.url)) as link:
        first = asyncio.create_task(link.balance("6222000000000001"))
        topic, corr1, _ = await core.next_request()
        second = asyncio.create_task(link.balance("6222000000000002"))
        _, corr2, _ = await core.next_request()
        amount = Decimal("2.00")
        await core.answer(
            topic, corr2, build_bal_rsp("6222000000000002", "OK", "CNY", amount, amount)
        )
        await core.answer(topic, corr1, build_bal_rsp("6222000000000001", "UNKNOWN"))
        assert (await first).result == "UNKNOWN"
        assert (await second).balance == amount
        # a second copy of an answer is dropped
        await core.answer(topic, corr1, build_bal_rsp("6222000000000001", "UNKNOWN"))
        await eventually(lambda: link.stats.duplicates == 1)


@pytest.mark.parametrize(
    "payload",
    [
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><BalRsp xmlns="urn:core:1"/>',
        b'<BalRsp xmlns="urn:other:1"><Acct>6222000000000001</Acct><Result>UNKNOWN</Result></BalRsp>',
        b'<BalRsp xmlns="urn:core:1"><Acct>6222000000000001</Acct><Result>MAYBE</Result></BalRsp>',
        b'<BalRsp xmlns="urn:core:1"><Acct>6222000000000001</Acct><Result>OK</Result>'
        b"<Ccy>CNY</Ccy><Bal>1.5</Bal><Avail>1.50</Avail></BalRsp>",
        b'<BalRsp xmlns="urn:core:1"><Acct>6222000000000001</Acct><Result>OK</Result>'
        b"<Ccy>CNY</Ccy><Bal>1.50</Bal></BalRsp>",
        b'<BalRsp xmlns="urn:core:1"><Acct>6222000000000002</Acct><Result>UNKNOWN</Result></BalRsp>',
        b'<AcctCheckRsp xmlns="urn:core:1"><Acct>6222000000000001</Acct>'
        b"<Result>MATCH</Result></AcctCheckRsp>",
    ],
    ids=[
        "not-xml",
        "doctype",
        "other-namespace",
        "bad-result",
        "three-decimals",
        "missing-avail",
        "other-account",
        "wrong-document",
    ],
)
async def test_a_malformed_answer_is_a_core_error(broker: Broker, payload: bytes) -> None:
    async with responder(broker) as core, running_link(core_config(broker.url)) as link:
        asking = asyncio.create_task(link.balance("6222000000000001"))
        topic, corr, _ = await core.next_request()
        await core.answer(topic, corr, payload)
        with pytest.raises(CoreError):
            await asking
        assert link.stats.errors == 1


async def test_answers_without_known_correlation_data_are_dropped(broker: Broker) -> None:
    async with responder(broker) as core, running_link(core_config(broker.url)) as link:
        asking = asyncio.create_task(link.balance("6222000000000001"))
        topic, corr, _ = await core.next_request()
        stray = build_bal_rsp("6222000000000001", "UNKNOWN")
        await core.answer(topic, None, stray)
        await core.answer(topic, b"0123456789abcdef", stray)
        await eventually(lambda: link.stats.unmatched == 2)
        assert not asking.done()
        await core.answer(topic, corr, stray)
        assert (await asking).result == "UNKNOWN"


async def test_a_refused_request_is_a_core_error(
    tmp_path: Path, custom_broker: Callable[[list[str]], CustomBroker]
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic read core/rsp/#\n", encoding="utf-8")  # may not publish requests
    b = custom_broker([f"acl_file {acl}"])
    async with running_link(core_config(b.url())) as link:
        with pytest.raises(CoreError, match="refused"):
            await link.balance("6222000000000001")
        assert link.is_connected


async def test_link_and_simulator_over_mqtts_with_client_certificates(
    tmp_path: Path, custom_broker: Callable[[list[str]], CustomBroker]
) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    b = custom_broker(
        [
            f"cafile {tmp_path / 'ca.pem'}",
            f"certfile {tmp_path / 'server.pem'}",
            f"keyfile {tmp_path / 'server.key'}",
            "require_certificate true",
        ]
    )

    def context(name: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        ca.issue_cert(name).configure_cert(ctx)
        return ctx

    url = b.url("mqtts")
    async with (
        running_sim(url, tls_context=context("core-sim")),
        running_link(core_config(url, tls_context=context("gateway-node-1"))) as link,
    ):
        assert await link.check_account("6222000000000001", "Demo Trading Co.") == "MATCH"


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"broker_url": "http://x"}, "scheme"),
        ({"client_id": ""}, "client_id"),
        ({"node": "a/b"}, "node"),
        ({"node": "+"}, "node"),
        ({"request_topic": "core/#"}, "request_topic"),
        ({"timeout": 0}, "timeout"),
        ({"max_pending": 0}, "max_pending"),
        ({"tls_context": ssl.create_default_context()}, "TLS"),
    ],
)
def test_config_refuses_bad_values(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"broker_url": "mqtt://127.0.0.1:1", "client_id": "c", "node": "n"}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        CoreConfig(**args)  # type: ignore[arg-type]


async def test_request_with_an_invalid_account_is_refused_before_sending(broker: Broker) -> None:
    link = CoreLink(core_config(broker.url))
    with pytest.raises(ValueError, match="account number"):
        await link.balance("6222-0000")
    assert link.stats.requests == 0
