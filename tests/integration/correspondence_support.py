"""Helpers for the correspondence edge tests: raw clearing traffic, journal reads, metrics.

The clearing simulator only says what a well-behaved clearing system says.
The edge tests also need what it never says: the same signed message twice
(at-least-once delivery, clearing.md §1), a message signed by a key the
gateway does not pin (clearing.md §3), a ``beps.settle`` for a round never
netted, a ``ccms.315`` for an inquiry nobody made.  :class:`ClearingTap` is
a plain MQTT 5 client beside the simulator: it records what is published on
the topics it watches and publishes raw payloads, QoS 1, with the MsgTp /
MsgId user properties of clearing.md §2.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from lxml import etree
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.envelope import build_envelope, out_msg_id, serialize
from gateway.clock import BusinessClock
from gateway.keys.xmldsig import SigningKey, sign_enveloped
from gateway.ops.metrics import REGISTRY
from gateway.sim.erp import ErpClient, Notification
from gateway.testing import Broker
from tests.certs import self_signed_key

SIM_PARTICIPANT = "000000000000"
"""The clearing simulator's own participant code (ClearingSimConfig.participant)."""
GATEWAY_PARTICIPANT = "103100000019"
"""Our direct participant (bank.participant in conf/gateway.toml): Rcvr of inbound traffic."""


# -- metrics (the in-process daemon's registry) ---------------------------------------------


def metric(name: str, **labels: str) -> float:
    """A sample of the in-process registry; 0 when the series was never touched."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def wait_metric(name: str, at_least: float, timeout: float = 20.0, **labels: str) -> float:
    """Poll the registry until ``name{labels}`` reaches ``at_least``: the daemon's own
    signal that it handled something (nothing else is observable for a dropped message)."""
    deadline = time.monotonic() + timeout
    while (value := metric(name, **labels)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} stayed {value}, wanted >= {at_least}")
        await asyncio.sleep(0.05)
    return value


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- the journal file, read-only -------------------------------------------------------------


def journal_rows(path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Read the SQLite journal directly, read-only (the daemon may be running or dead)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


# -- a clock a test can move -----------------------------------------------------------------


class StepClock:
    """A business clock running at real speed that a test can jump forward (SendTime tests)."""

    def __init__(self, start: datetime) -> None:
        self._base = BusinessClock(start)
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return self._base.now() + self._offset

    def jump(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)


# -- signing what the clearing simulator would never send --------------------------------------


def unknown_signer(common_name: str = "Not The Clearing System") -> SigningKey:
    """A P-256 key with a self-signed certificate valid now: well-formed, never pinned."""
    return self_signed_key(common_name, valid=timedelta(days=1))


_SEQ = [int(time.time()) % 100_000 * 100_000 + 50_000]


def fresh_msg_id(sndr: str, work_date: date) -> str:
    """An envelope MsgId (clearing.md §3) that no simulator run uses."""
    _SEQ[0] += 1
    return out_msg_id(sndr, work_date, _SEQ[0])


def signed_message(
    msg_tp: str,
    document: etree._Element,
    signer: SigningKey,
    *,
    now: datetime,
    work_date: date,
    sndr: str = SIM_PARTICIPANT,
    rcvr: str = GATEWAY_PARTICIPANT,
) -> tuple[str, bytes]:
    """(MsgId, bytes) of a ``ClrMsg`` carrying ``document``, signed by ``signer``."""
    msg_id = fresh_msg_id(sndr, work_date)
    root = build_envelope(msg_tp, msg_id, sndr, rcvr, now, work_date, document)
    sign_enveloped(root, signer)
    return msg_id, serialize(root)


# -- raw MQTT beside the simulator ---------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    msg_tp: str | None
    msg_id: str | None


@dataclass
class ClearingTap:
    """Records what is published on the watched topics; publishes raw payloads."""

    client: aiomqtt.Client
    seen: list[Seen] = field(default_factory=list)

    def of_type(self, msg_tp: str) -> list[Seen]:
        return [s for s in self.seen if s.msg_tp == msg_tp]

    async def publish(self, topic: str, payload: bytes, msg_tp: str, msg_id: str) -> None:
        """QoS 1 with the clearing.md §2 user properties, as the clearing system publishes."""
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("MsgTp", msg_tp), ("MsgId", msg_id)]
        await self.client.publish(topic, payload, qos=1, properties=props)


@contextlib.asynccontextmanager
async def clearing_tap(
    broker: Broker, topics: Sequence[str] = (), client_id: str = "edge-tap"
) -> AsyncIterator[ClearingTap]:
    """A tap subscribed (QoS 1) to ``topics``; ready once the subscriptions are confirmed."""
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        tap = ClearingTap(client)
        for t in topics:
            await client.subscribe(t, qos=1)

        async def read() -> None:
            async for message in client.messages:
                data = message.payload if isinstance(message.payload, bytes) else b""
                props = dict(getattr(message.properties, "UserProperty", None) or [])
                tap.seen.append(Seen(str(message.topic), data, props.get("MsgTp"),
                                     props.get("MsgId")))  # fmt: skip

        task = asyncio.create_task(read())
        try:
            yield tap
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# -- NTFY ----------------------------------------------------------------------------------------


def ids(prefix: str) -> Iterator[str]:
    """MsgIds for a run of NTFY pulls."""
    return (f"{prefix}-{n}" for n in itertools.count(1))


async def wait_notice(
    erp: ErpClient,
    now: Callable[[], datetime],
    msg_ids: Iterator[str],
    match: Callable[[Notification], bool],
    timeout: float = 20.0,
) -> Notification:
    """:meth:`ErpClient.wait_notice`, failing the test when nothing matches in time."""
    found = await erp.wait_notice(msg_ids, now, match, timeout=timeout, interval=0.1)
    if found is None:
        raise AssertionError("no matching notification arrived")
    return found
