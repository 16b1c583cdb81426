"""The MQTT clearing link: one connection to the clearing broker, kept up forever.

docs/clearing-link.md §1 fixes the transport: MQTT 5 (3.1.1 where the broker lacks 5),
every publish QoS 1 and not retained, a message is SENT only once the
broker's PUBACK arrived, the gateway's subscriptions live in a persistent
session (clean start off, session expiry ≥ 24 h) and, with several gateway
nodes, inbound topics are consumed through ``$share/gateway/...``.  §2 adds
the MQTT 5 user properties ``MsgTp`` and ``MsgId`` on every publish.

What this module deliberately does *not* do: keep messages in memory.  The
journal is the outbox (docs/architecture.md §7, principle 1): :meth:`ClearingLink.publish`
either returns after a successful PUBACK or raises :class:`PublishFailed`,
and the caller re-sends later under the same MsgId (docs/clearing-link.md §1).

aiomqtt 2.5 neither reconnects, nor reports the MQTT 5 PUBACK reason code,
nor offers manual acknowledgement of inbound messages (docs/architecture.md §9 "MQTT").
:class:`_LinkClient` adds the last two on top of the paho client that
aiomqtt wraps (the reason code through
:class:`gateway.clearing.mqtt_client.PubackClient`, shared with the clearing
simulator); with that module it is the only place that touches aiomqtt's
internals (``_client``, ``_lock``, ``_connected``, ``_disconnected``,
``_on_publish``, ``_on_disconnect``), which is why ``pyproject.toml`` pins
``aiomqtt<3``.  :class:`ClearingLink` adds the
reconnect loop, with a fresh client per connection so that no paho state
(in-flight packet ids, queued publishes) leaks from a dead connection into
the next one.

Request/response (``core/req`` with a response topic and correlation data,
docs/clearing-link.md §2/§5) is meant to plug in at two seams: :meth:`ClearingLink._publish`
takes a ready ``Properties`` object (add ``ResponseTopic`` and
``CorrelationData``), and the inbound handler is where a reply would be
matched to its waiting future.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.clearing.inbound_pipeline import (
    InboundPipeline,
    RetryPolicy,
    TwoPhaseHandler,
    two_phase,
)
from gateway.clearing.mqtt_client import PubackClient, PublishNotSent
from gateway.clearing.reconnect import keep_connected
from gateway.ops.metrics import LINK_RECONNECTS, LINK_UP, OTHER_LINK_RECONNECTS, OTHER_LINK_UP

log = structlog.get_logger("gateway.clearing")

InboundHandler = Callable[[str, bytes, dict[str, str]], Awaitable[None]]
"""``(topic, payload, user properties)``; the message is acknowledged after it returns."""

SHARE_GROUP = "gateway"
"""docs/clearing-link.md §1: several gateway nodes consume inbound topics as
``$share/gateway/...``."""

MIN_SESSION_EXPIRY = 86_400
"""docs/clearing-link.md §1: the persistent session must outlive a disconnection of at least 24
h."""

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_PUBACK_FAILURE = 0x80  # MQTT 5 §2.4: reason codes >= 0x80 are failures
_CLOSE_GRACE = 5.0  # seconds close() waits for the handler in progress


class PublishFailed(Exception):
    """The broker did not confirm the publish: outcome unknown, or refused.

    The caller keeps the message in the journal and retries it later under the
    same MsgId (docs/clearing-link.md §1).  ``reason`` is a bounded word for metrics and
    logs (``not_connected``, ``timeout``, ``disconnected``, ``refused``,
    ``queue_full``); ``reason_code`` is the MQTT 5 PUBACK reason code when the
    broker refused the message.
    """

    def __init__(self, reason: str, detail: str = "", reason_code: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.reason_code = reason_code


@dataclass(frozen=True)
class LinkConfig:
    """Settings of one clearing link; validated on construction."""

    url: str
    """``mqtt://host:port`` or ``mqtts://host:port`` (docs/clearing-link.md §1)."""
    client_id: str
    """Names the persistent session on the broker: one per gateway node."""
    subscriptions: tuple[str, ...]
    """Topic filters, e.g. ``("clearing/+/in",)``."""
    shared: bool = False
    """Prefix each filter with ``$share/gateway/`` (docs/clearing-link.md §1, several nodes)."""
    session_expiry: int = MIN_SESSION_EXPIRY
    """MQTT 5 Session Expiry Interval in seconds; ≥ 24 h (docs/clearing-link.md §1)."""
    keepalive: int = 30
    max_inflight: int = 100
    """paho's QoS 1 window; 20 to 100 was the sweet spot on a local mosquitto (docs/architecture.md
    §9)."""
    max_queued: int = 10_000
    """Publishes paho may hold beyond the in-flight window before refusing (``queue_full``)."""
    receive_maximum: int = 100
    """MQTT 5 Receive Maximum: unacknowledged inbound messages the broker may send us."""
    publish_timeout: float = 10.0
    """Seconds to wait for a PUBACK; also bounds CONNACK and SUBACK waits."""
    reconnect_min: float = 0.2
    reconnect_max: float = 10.0
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    protocol: int = 5
    """5, or 4 for MQTT 3.1.1 brokers (docs/clearing-link.md §1)."""
    handler_attempts: int = 3
    """Tries of the inbound handler per message before it is given up (acknowledged)."""
    inbound_window: int = 100
    """Inbound messages in progress at once (verified and applied together, acknowledged
    in order); the broker's own in-flight limit may keep it lower."""
    handler_retry_delay: float = 0.5
    """Seconds before the second try, doubling after: rides out a journal blip."""
    name: str = "clearing"
    """Names the link in its log events (``<name>_link_up``, ...) and picks its metrics: the
    clearing link (``clearing``) drives ``gateway_clearing_link_up`` and its reconnect
    counter, as it always has; the SWIFT link (``swift``, docs/foreign-currency.md §4)
    ``gateway_link_up{link="swift"}`` and ``gateway_link_reconnects_total{link="swift"}``
    (:data:`METERED_LINKS`); any other name is in the logs only."""

    def __post_init__(self) -> None:
        scheme, _host, _port = parse_url(self.url)
        if not self.client_id:
            raise ValueError("clearing link: client_id must not be empty")
        if self.protocol not in (4, 5):
            raise ValueError("clearing link: protocol must be 5 or 4 (3.1.1)")
        if self.session_expiry < MIN_SESSION_EXPIRY:
            raise ValueError(
                f"clearing link: session_expiry must be >= {MIN_SESSION_EXPIRY} s"
                " (docs/clearing-link.md §1)"
            )
        if not 1 <= self.receive_maximum <= 65_535:
            raise ValueError("clearing link: receive_maximum must be within 1..65535")
        if self.inbound_window < 1:
            raise ValueError("clearing link: inbound_window must be >= 1")
        if self.handler_attempts < 1 or self.handler_retry_delay < 0:
            raise ValueError("clearing link: handler_attempts >= 1, handler_retry_delay >= 0")
        for name in ("keepalive", "max_inflight", "max_queued"):
            if getattr(self, name) < 1:
                raise ValueError(f"clearing link: {name} must be >= 1")
        if self.publish_timeout <= 0 or self.reconnect_min <= 0:
            raise ValueError("clearing link: publish_timeout and reconnect_min must be > 0")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("clearing link: reconnect_max must be >= reconnect_min")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("clearing link: tls_cert and tls_key go together")
        if scheme == "mqtt" and (self.tls_ca or self.tls_cert):
            raise ValueError("clearing link: TLS files given for a plain mqtt:// url")
        for topic in self.subscriptions:
            _check_filter(topic)

    @property
    def topic_filters(self) -> tuple[str, ...]:
        """The filters as subscribed: ``$share/gateway/<filter>`` when shared."""
        if not self.shared:
            return self.subscriptions
        return tuple(
            t if t.startswith("$share/") else f"$share/{SHARE_GROUP}/{t}"
            for t in self.subscriptions
        )


def _check_filter(topic: str) -> None:
    """MQTT 5 §4.7: ``#`` only as the last whole level, ``+`` only as a whole level."""
    levels = topic.split("/")
    bad = (
        not topic
        or "\x00" in topic
        or any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels)
        or "#" in levels[:-1]
    )
    if bad:
        raise ValueError(f"clearing link: invalid subscription filter {topic!r}")


def parse_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an ``mqtt://`` / ``mqtts://`` URL.

    Credentials, paths and queries are refused rather than ignored: the link
    authenticates with client certificates (docs/clearing-link.md §1), and a URL
    that silently drops a part would connect somewhere other than intended.
    """
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError("clearing link: url scheme must be mqtt or mqtts")
    if parts.username is not None or parts.password is not None:
        raise ValueError("clearing link: url must not carry credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("clearing link: url must be scheme://host:port only")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError("clearing link: url port is invalid") from None
    if not parts.hostname:
        raise ValueError("clearing link: url has no host")
    return parts.scheme, parts.hostname, port


class _LinkClient(PubackClient):
    """aiomqtt's client plus PUBACK reason codes and manual acknowledgement.

    aiomqtt 2.5's ``publish()`` drops the reason code that paho hands to
    ``on_publish`` (docs/architecture.md §9: a refused QoS 1 publish "succeeds"), and it lets
    paho acknowledge an inbound QoS 1 message as soon as it is queued, before
    anyone handled it.  Here the PUBACK reason code resolves a future per
    packet id (:class:`PubackClient`), every pending future fails the moment
    the connection drops (instead of sitting out the timeout), and inbound
    messages are acknowledged by :meth:`ack` only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client.manual_ack_set(True)

    @property
    def connection_lost(self) -> bool:
        """True once the connection ended (the client is then finished)."""
        return bool(self._disconnected.done())

    def watch_disconnect(self) -> None:
        """After connecting: fail every pending publish as soon as the link drops."""
        self._disconnected.add_done_callback(self._fail_pending)

    def _fail_pending(self, _fut: asyncio.Future[None]) -> None:
        acks, self._acks = self._acks, {}
        for fut in acks.values():
            if not fut.done():
                fut.set_exception(PublishFailed("disconnected", "connection lost before PUBACK"))

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        # aiomqtt ignores a connection that drops before CONNACK (e.g. a broker
        # that refuses our TLS client certificate) and waits out the whole
        # timeout; fail the pending connect at once instead.
        if self._lock.locked() and not self._connected.done():
            self._connected.set_exception(
                aiomqtt.MqttError(f"connection closed before CONNACK: {reason_code}")
            )
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    async def publish_acked(
        self, topic: str, payload: bytes, properties: Properties | None, ack_wait: float
    ) -> ReasonCode | None:
        """Publish QoS 1, not retained; return the PUBACK reason code (``None``: 3.1.1)."""
        if self.connection_lost:
            raise PublishFailed("not_connected", "link is down")
        try:
            return await self.publish_qos1(topic, payload, properties, ack_wait)
        except PublishNotSent as exc:
            if exc.code == paho.MQTT_ERR_QUEUE_SIZE:
                reason, detail = "queue_full", "too many publishes waiting for the broker"
            else:
                reason, detail = "not_connected", paho.error_string(exc.code)
            raise PublishFailed(reason, detail) from None
        except TimeoutError:
            raise PublishFailed("timeout", f"no PUBACK within {ack_wait:g} s") from None

    def ack(self, message: aiomqtt.Message) -> None:
        """Send the PUBACK for an inbound message on this very connection."""
        if not self.connection_lost and message.qos > 0:
            self._client.ack(message.mid, message.qos)

    def request_disconnect(self) -> None:
        """Send DISCONNECT; the message iterator then ends with ``MqttError``."""
        if not self.connection_lost:
            self._client.disconnect()


class ClearingLink:
    """Keeps one MQTT connection to the clearing broker and dispatches inbound messages.

    ``run()`` is the long-lived task (connect, subscribe, dispatch, reconnect
    with backoff until cancelled or closed); ``publish()`` may be called
    from any task while the link is up.  Inbound messages go through a
    window (:class:`InboundPipeline`): a two-phase handler's checks run
    together and its commuting journal steps too, while PUBACKs go back in
    the order the PUBLISHes came (MQTT 5 §4.6); a plain callable handler is
    called one message at a time, in arrival order.  A handler may itself
    ``publish()`` (PUBACKs are read outside the dispatch loop).  The MQTT 5
    Receive Maximum asks the broker to keep at most ``receive_maximum``
    unacknowledged messages in our memory; mosquitto 2.0.11 honours it only
    until the first PUBACK (measured), after which its own
    ``max_inflight_messages`` is the bound.
    """

    def __init__(self, config: LinkConfig, on_message: InboundHandler | TwoPhaseHandler) -> None:
        self._config = config
        self._handler = two_phase(on_message)
        self._window = asyncio.Semaphore(config.max_inflight)
        self._pipeline: InboundPipeline | None = None
        self._scheme, self._host, self._port = parse_url(config.url)
        if self._scheme == "mqtts":
            self._tls_context()  # fail at start-up on unreadable TLS files, not per reconnect
        self._client: _LinkClient | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._closing = asyncio.Event()
        self._set_up, self._count_retry = _meters(config.name)
        self._running = False
        self._stopped = asyncio.Event()
        self._stopped.set()

    # -- state -----------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while connected and subscribed."""
        return self._up.is_set()

    async def wait_connected(self) -> None:
        """Return once the link is connected and its subscriptions confirmed."""
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        """Return once the link is down (immediately if it is down now)."""
        await self._down.wait()

    # -- outbound --------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, *, msg_tp: str, msg_id: str) -> None:
        """Publish QoS 1, not retained, with user properties MsgTp/MsgId (docs/clearing-link.md §1,
        §2).

        Returns only after a successful PUBACK (the message is then SENT).
        Raises :class:`PublishFailed` when the link is down (nothing is
        queued in memory), on timeout, on disconnect, or when the broker's
        PUBACK carries a failure reason code (docs/architecture.md §9: aiomqtt would call
        that a success).  Under MQTT 3.1.1 there are no user properties.
        """
        if not msg_tp or not msg_id:
            raise ValueError(
                "clearing link: msg_tp and msg_id are required (docs/clearing-link.md §2)"
            )
        props: Properties | None = None
        if self._config.protocol == 5:
            props = _properties(PacketTypes.PUBLISH)
            props.UserProperty = [("MsgTp", msg_tp), ("MsgId", msg_id)]
        await self._publish(topic, payload, props)

    async def _publish(self, topic: str, payload: bytes, props: Properties | None) -> None:
        """Hand one message to paho only when its in-flight window has room.

        paho queues what exceeds ``max_inflight`` and sends it later, even after
        our PUBACK wait gave up on it: a message that timed out in that queue
        and was then re-published went out twice under one MsgId (seen as the
        clearing system's duplicates while the journal counted one attempt).
        Waiting here instead keeps paho's queue empty, so a PUBACK timeout means
        the message really was on the wire, and a message still waiting for room
        is simply not sent when the link drops.  A PUBACK timeout drops the
        connection for the same reason.
        """
        async with self._window:
            client = self._client
            if client is None or not self._up.is_set():
                raise PublishFailed("not_connected", "link is down")
            try:
                code = await client.publish_acked(
                    topic, payload, props, self._config.publish_timeout
                )
            except PublishFailed as exc:
                if exc.reason == "timeout":
                    # A broker that leaves a PUBACK out this long is stalled: drop the
                    # connection, so what paho still holds dies with it instead of going
                    # out later behind our back; the journal re-sends (same MsgId).
                    log.warning(self._event("stalled"), reason=str(exc))
                    client.request_disconnect()
                raise
        if code is not None and code.value >= _PUBACK_FAILURE:
            raise PublishFailed("refused", f"PUBACK {code}", reason_code=code.value)

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe, dispatch, and reconnect with backoff until closed or cancelled.

        Logs one line when the link comes up and one when it goes down; a
        streak of failed attempts is logged once (then only counted in
        ``gateway_clearing_link_reconnects_total``).
        """
        if self._running:
            raise RuntimeError("ClearingLink.run() is already running")
        self._running = True
        self._stopped.clear()
        cfg = self._config
        try:
            await keep_connected(
                self._connection, self._closing, cfg.reconnect_min, cfg.reconnect_max,
                on_retry=self._count_retry,
            )  # fmt: skip
        finally:
            if self._mark_down():
                log.info(self._event("closed"))
            self._running = False
            self._stopped.set()

    async def _connection(self, quiet: bool) -> str | None:
        """One connection's life; returns why it could not connect, or None once it was up."""
        try:
            client = self._new_client()
            async with client:
                client.watch_disconnect()
                await self._subscribe(client)
                self._client = client
                self._up.set()
                self._down.clear()
                self._set_up(1)
                log.info(
                    self._event("up"),
                    host=self._host,
                    port=self._port,
                    client_id=self._config.client_id,
                )
                if not self._closing.is_set():
                    with contextlib.suppress(aiomqtt.MqttError):
                        await self._dispatch(client)
        except (aiomqtt.MqttError, OSError, _SubscribeRefused) as exc:
            if self._mark_down():
                log.warning(self._event("down"), reason=_describe(exc))
                return None
            if not quiet:
                log.warning(
                    self._event("connect_failed"),
                    host=self._host,
                    port=self._port,
                    reason=_describe(exc),
                )
            return _describe(exc)
        if self._mark_down():
            if self._closing.is_set():
                log.info(self._event("closed"))
            else:
                log.warning(self._event("down"), reason="connection lost")
        return None

    def _mark_down(self) -> bool:
        """Record that the link is down; True if it was up until now."""
        was_up = self._up.is_set()
        self._client = None
        self._up.clear()
        self._down.set()
        self._set_up(0)
        return was_up

    def _event(self, what: str) -> str:
        return f"{self._config.name}_link_{what}"

    async def close(self) -> None:
        """Disconnect cleanly: let the messages in progress finish, then send DISCONNECT.

        The session stays on the broker (session expiry), so messages that
        arrive meanwhile are delivered when a link with this client_id
        returns; inbound messages not yet handled are redelivered then.
        """
        self._closing.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_GRACE):
                pipeline = self._pipeline
                if pipeline is not None:
                    await pipeline.drain()
        client = self._client
        if client is not None:
            client.request_disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_GRACE + self._config.publish_timeout):
                await self._stopped.wait()

    # -- inbound ---------------------------------------------------------------

    async def _subscribe(self, client: _LinkClient) -> None:
        filters = self._config.topic_filters
        if not filters:
            return
        granted = await client.subscribe([(f, 1) for f in filters])
        for topic, code in zip(filters, granted, strict=True):
            value = getattr(code, "value", code)  # v5 ReasonCode, or a 3.1.1 granted QoS int
            if value != 1:  # anything but "granted QoS 1" loses receipts while away
                raise _SubscribeRefused(f"{topic}: {code}")

    async def _dispatch(self, client: _LinkClient) -> None:
        """Feed inbound messages through a window (:mod:`gateway.clearing.inbound_pipeline`):
        verified together, applied together where they commute, acknowledged in
        arrival order on this very connection once applied."""
        cfg = self._config
        pipeline = InboundPipeline(
            self._handler,
            client.ack,
            window=cfg.inbound_window,
            retry=RetryPolicy(cfg.handler_attempts, cfg.handler_retry_delay),
        )
        self._pipeline = pipeline
        try:
            async for message in client.messages:
                if self._closing.is_set():
                    return  # not acknowledged: redelivered when the session resumes
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    payload = str(payload).encode()
                await pipeline.feed(
                    message,
                    message.topic.value,
                    bytes(payload),
                    _user_properties(message.properties),
                )
        finally:
            # what was applied gets its PUBACK before the connection goes (bounded:
            # a stuck handler must not hold a reconnect or a drain forever)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_GRACE):
                    await pipeline.drain()
            await pipeline.close()
            self._pipeline = None

    # -- construction ----------------------------------------------------------

    def _new_client(self) -> _LinkClient:
        cfg = self._config
        kwargs: dict[str, Any] = {}
        if cfg.protocol == 5:
            props = _properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = cfg.session_expiry
            props.ReceiveMaximum = cfg.receive_maximum
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        if self._scheme == "mqtts":
            kwargs["tls_context"] = self._tls_context()
        return _LinkClient(
            self._host,
            self._port,
            identifier=cfg.client_id,
            keepalive=cfg.keepalive,
            timeout=cfg.publish_timeout,
            max_inflight_messages=cfg.max_inflight,
            max_queued_outgoing_messages=cfg.max_queued,
            **kwargs,
        )

    def _tls_context(self) -> ssl.SSLContext:
        """A fresh context per connection, so renewed certificate files apply on reconnect."""
        cfg = self._config
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(cfg.tls_ca) if cfg.tls_ca else None
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        return ctx


class _SubscribeRefused(Exception):
    """The broker refused a subscription or granted less than QoS 1."""


METERED_LINKS: Final = frozenset({"swift"})
"""Links besides the clearing link that have series of their own, labelled by their name,
so the clearing link's unlabelled series stay what alerts and boards already read."""


def _meters(name: str) -> tuple[Callable[[float], None], Callable[[], None]]:
    """(set the up gauge, count a reconnect attempt) of the link called ``name``."""
    if name == "clearing":
        return LINK_UP.set, LINK_RECONNECTS.inc
    if name in METERED_LINKS:
        return OTHER_LINK_UP.labels(name).set, OTHER_LINK_RECONNECTS.labels(name).inc
    return _no_set, _no_count


def _no_set(_value: float) -> None:
    """The up gauge of a link without metrics."""


def _no_count() -> None:
    """The reconnect counter of a link without metrics."""


def _properties(packet_type: int) -> Properties:
    """An empty MQTT 5 property set for one packet type (paho's constructor is untyped)."""
    props: Properties = Properties(packet_type)  # type: ignore[no-untyped-call]
    return props


def _user_properties(props: Properties | None) -> dict[str, str]:
    """MQTT 5 user properties as a dict; the first of repeated names wins."""
    out: dict[str, str] = {}
    for name, value in getattr(props, "UserProperty", None) or ():
        out.setdefault(str(name), str(value))
    return out


def _describe(exc: BaseException) -> str:
    """A short reason for the log (internal only: never sent to a client)."""
    return str(exc) or type(exc).__name__
