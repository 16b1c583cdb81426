"""An aiomqtt client that hands back the PUBACK reason code of each QoS 1 publish.

docs/clearing-link.md §1: a message is SENT only once the broker's PUBACK arrived.
With MQTT 5 a PUBACK can carry a failure reason code (e.g. 0x87 not
authorised), and aiomqtt 2.5's ``publish()`` drops it and returns normally
(docs/architecture.md §9 "MQTT"): a refused publish would pass for a sent one.
:class:`PubackClient` resolves a future per packet id from paho's
``on_publish`` instead, so the caller sees the code and decides what a
failure means (the gateway's clearing link and the clearing simulator both
build on it).

This module and :mod:`gateway.clearing.link` are the places that touch
aiomqtt's internals (``_client``, ``_on_publish``), which is why
``pyproject.toml`` pins ``aiomqtt<3``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class PublishNotSent(aiomqtt.MqttCodeError):
    """paho would not send the PUBLISH; ``code`` is its result code.

    E.g. ``MQTT_ERR_QUEUE_SIZE`` (its queue of messages in flight is full) or
    ``MQTT_ERR_NO_CONN``.  An ``aiomqtt.MqttCodeError``, as aiomqtt would raise.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code, "could not publish")
        self.code = code


class PubackClient(aiomqtt.Client):
    """aiomqtt's client plus :meth:`publish_qos1`, which returns the PUBACK reason code.

    Publishes are tracked by their own futures (``_acks``, keyed by packet
    id), not by aiomqtt's pending calls, so its warning threshold for those
    is lifted.  A subclass may fail the pending futures early (e.g. when the
    connection drops): whatever exception it sets is what
    :meth:`publish_qos1` raises.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acks: dict[int, asyncio.Future[ReasonCode | None]] = {}
        self.pending_calls_threshold = 1_000_000  # we wait on our own futures

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason_code)
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_qos1(
        self, topic: str, payload: bytes, properties: Properties | None, timeout: float
    ) -> ReasonCode | None:
        """Publish QoS 1, not retained (docs/clearing-link.md §1); return the PUBACK's reason code.

        Raises :class:`PublishNotSent` when paho would not send it, and
        ``TimeoutError`` when no PUBACK came within ``timeout`` seconds.
        Whether the code is a failure (MQTT 5 §2.4: 0x80 and up) is for the
        caller to judge.
        """
        info = self._client.publish(topic, payload, qos=1, retain=False, properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise PublishNotSent(info.rc)
        fut: asyncio.Future[ReasonCode | None] = asyncio.get_running_loop().create_future()
        self._acks[info.mid] = fut
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            if self._acks.get(info.mid) is fut:
                del self._acks[info.mid]
