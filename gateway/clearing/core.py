"""The core banking link (docs/clearing-link.md §5): balance queries and account checks over MQTT 5.

Requests go to ``core/req`` (configurable) as small unsigned XML documents in
namespace ``urn:core:1``; each is an MQTT 5 request (PUBLISH QoS 1 with the
properties ResponseTopic = ``core/rsp/<node>`` and CorrelationData = 16
random bytes) and the core system publishes its answer to that response
topic with the same CorrelationData.  Each gateway node subscribes to its own
response topic (not shared: its answers are for it alone).

The documents (sans-IO: build and read ``BalQry``/``BalRsp`` and
``AcctCheck``/``AcctCheckRsp``) live in :mod:`gateway.clearing.core_documents`
and are re-exported here.  This module is :class:`CoreLink`: one connection
kept up by :meth:`CoreLink.run` (reconnect with backoff, a fresh client per
connection like ``ClearingLink``), and :meth:`CoreLink.balance` /
:meth:`CoreLink.check_account` that wait at most ``timeout`` for the answer,
connection included, then raise :class:`CoreTimeout`.

Both requests only read, so a request whose connection dropped before its
answer is published again, under the same CorrelationData, on the next
connection while its deadline lasts (the answer to the first copy is lost
with the clean session, and a second answer is counted as a duplicate).
Answers that come after their request timed out are dropped and counted
(``stats.late``), never handed to another request: correlation data is
never reused.

Counters are plain attributes (:class:`CoreStats`); the caller turns
outcomes into metrics (``gateway_core_requests_total``) at its boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.clearing.core_documents import (
    BAL_RESULTS,
    CHECK_RESULTS,
    NS_CORE,
    AccountCheck,
    BalanceAnswer,
    BalanceQuery,
    CoreError,
    build_acct_check,
    build_acct_check_rsp,
    build_bal_qry,
    build_bal_rsp,
    check_acct,
    format_amount,
    parse_acct_check_rsp,
    parse_bal_rsp,
    parse_request,
)
from gateway.clearing.link import parse_url
from gateway.clearing.mqtt_client import PubackClient
from gateway.clearing.reconnect import keep_connected
from gateway.ops.logs import mask_account

log = structlog.get_logger("gateway.core")

_PUBACK_FAILURE = 0x80  # MQTT 5 §2.4: reason codes >= 0x80 are failures
_CONNECT_TIMEOUT = 10.0  # seconds for CONNACK / SUBACK
_RECENT_FACTOR = 4  # remembered finished correlation ids, per allowed pending request

_T = TypeVar("_T")


class CoreTimeout(Exception):
    """No answer within ``timeout`` (docs/clearing-link.md §5): BAL → 6001, an incoming credit
    waits."""


def _check_level(value: str, what: str) -> None:
    if not value or any(c in value for c in "/+#\x00"):
        raise ValueError(f"core link: {what} must be one topic level without wildcards")


def _check_topic(value: str, what: str) -> None:
    if not value or any(c in value for c in "+#\x00") or "" in value.split("/"):
        raise ValueError(f"core link: {what} must be a topic name without wildcards")


@dataclass(frozen=True)
class CoreConfig:
    """Settings of the core banking link (docs/clearing-link.md §5); validated on construction."""

    broker_url: str
    """``mqtt://host:port`` or ``mqtts://host:port`` (docs/clearing-link.md §1)."""
    client_id: str
    node: str
    """This node's response topic suffix: answers come on ``<response_prefix>/<node>``."""
    request_topic: str = "core/req"
    response_prefix: str = "core/rsp"
    timeout: float = 3.0
    """docs/clearing-link.md §5 ``core.timeout``: seconds a request waits, connection included."""
    tls_context: ssl.SSLContext | None = None
    """For ``mqtts://``; None: the system's trust store, no client certificate."""
    max_pending: int = 1_000
    """Requests waiting for an answer at once; beyond it a request fails at once (CoreError)."""
    reconnect_min: float = 0.2
    reconnect_max: float = 10.0
    keepalive: int = 30

    def __post_init__(self) -> None:
        scheme, _host, _port = parse_url(self.broker_url)
        if not self.client_id:
            raise ValueError("core link: client_id must not be empty")
        _check_level(self.node, "node")
        _check_topic(self.request_topic, "request_topic")
        _check_topic(self.response_prefix, "response_prefix")
        if scheme == "mqtt" and self.tls_context is not None:
            raise ValueError("core link: a TLS context given for a plain mqtt:// url")
        if self.timeout <= 0 or self.reconnect_min <= 0:
            raise ValueError("core link: timeout and reconnect_min must be > 0")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("core link: reconnect_max must be >= reconnect_min")
        if self.max_pending < 1 or self.keepalive < 1:
            raise ValueError("core link: max_pending and keepalive must be >= 1")

    @property
    def response_topic(self) -> str:
        return f"{self.response_prefix}/{self.node}"


@dataclass
class CoreStats:
    """What the link counted since it was made (read by the caller and the tests)."""

    requests: int = 0
    answered: int = 0
    timeouts: int = 0
    errors: int = 0
    """Malformed answers, broker refusals, too many requests in flight."""
    resent: int = 0
    """Requests published again after their connection dropped."""
    late: int = 0
    """Answers that came after their request had timed out (dropped)."""
    duplicates: int = 0
    """Second answers to a request that already had one (dropped)."""
    unmatched: int = 0
    """Answers with no or unknown correlation data (dropped)."""
    connects: int = 0


@dataclass
class _Connection:
    client: PubackClient
    lost: asyncio.Future[None]


class _SubscribeRefused(Exception):
    """The broker refused the response topic subscription."""


def _consume(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished task's outcome, so an abandoned publish never warns."""
    if not task.cancelled():
        task.exception()


class CoreLink:
    """Requests to the core banking system and their answers (docs/clearing-link.md §5).

    ``run()`` is the long-lived task; :meth:`balance` and
    :meth:`check_account` may be called from any task, before or while the
    link is up: each waits at most ``config.timeout`` in all.
    """

    def __init__(self, config: CoreConfig) -> None:
        self._config = config
        self._scheme, self._host, self._port = parse_url(config.broker_url)
        self.stats = CoreStats()
        self._pending: dict[bytes, asyncio.Future[bytes]] = {}
        # correlation ids of finished requests → True if it timed out (bounded, oldest first)
        self._recent: dict[bytes, bool] = {}
        self._conn: _Connection | None = None
        self._up = asyncio.Event()
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._running = False

    # -- state -------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while connected and subscribed to the response topic."""
        return self._up.is_set()

    async def wait_connected(self) -> None:
        """Return once connected and subscribed."""
        await self._up.wait()

    def _notify(self) -> None:
        """Wake every request waiting for a state change (up, down, closing)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # -- requests ----------------------------------------------------------------

    async def balance(self, acct: str) -> BalanceAnswer:
        """Ask for the balance of ``acct``: ``BalQry`` → ``BalRsp`` (docs/clearing-link.md §5).

        Raises :class:`CoreTimeout` when no answer came within ``timeout``
        and :class:`CoreError` when the answer was unusable.
        """
        data = await self._ask("balance", build_bal_qry(acct))
        return self._parsed(parse_bal_rsp, data, acct)

    async def check_account(self, acct: str, name: str) -> str:
        """``AcctCheck`` → ``"MATCH"``, ``"MISMATCH"`` or ``"UNKNOWN"`` (docs/clearing-link.md §5,
        §6)."""
        data = await self._ask("account_check", build_acct_check(acct, name))
        return self._parsed(parse_acct_check_rsp, data, acct)

    def _parsed(self, parse: Callable[[bytes, str], _T], data: bytes, acct: str) -> _T:
        try:
            result = parse(data, acct)
        except CoreError as exc:
            self.stats.errors += 1
            log.warning("core_answer_malformed", acct=mask_account(acct), reason=str(exc))
            raise
        self.stats.answered += 1
        return result

    async def _ask(self, kind: str, payload: bytes) -> bytes:
        """Publish one request and wait for its answer's bytes, all within ``timeout``."""
        cfg = self._config
        if len(self._pending) >= cfg.max_pending:
            self.stats.errors += 1
            raise CoreError("too many core requests in flight")
        corr = secrets.token_bytes(16)  # unguessable and never reused
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[corr] = answer
        self.stats.requests += 1
        timed_out = False
        try:
            async with asyncio.timeout(cfg.timeout):
                return await self._exchange(corr, payload, answer)
        except TimeoutError:
            timed_out = True
            self.stats.timeouts += 1
            log.warning("core_timeout", kind=kind, timeout=cfg.timeout, connected=self.is_connected)
            raise CoreTimeout(f"no answer from the core system within {cfg.timeout:g} s") from None
        finally:
            del self._pending[corr]
            self._remember(corr, timed_out)

    async def _exchange(self, corr: bytes, payload: bytes, answer: asyncio.Future[bytes]) -> bytes:
        """Publish on the current connection; publish again on the next if it drops first."""
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = self._config.response_topic
        props.CorrelationData = corr
        sent = 0
        while not answer.done():
            if self._closing.is_set():
                raise CoreTimeout("core link closed")
            conn = self._conn
            if conn is None:
                await self._changed.wait()
                continue
            if sent:
                self.stats.resent += 1
            sent += 1
            await self._await_answer(conn, payload, props, answer)
        return answer.result()

    async def _await_answer(
        self,
        conn: _Connection,
        payload: bytes,
        props: Properties,
        answer: asyncio.Future[bytes],
    ) -> None:
        """Return when ``answer`` is there or ``conn`` was lost; CoreError if the broker refused."""
        publish: asyncio.Task[ReasonCode | None] = asyncio.ensure_future(
            conn.client.publish_qos1(
                self._config.request_topic, payload, props, self._config.timeout
            )
        )
        publish.add_done_callback(_consume)
        waiting: set[asyncio.Future[Any]] = {answer, conn.lost, publish}
        try:
            while not answer.done() and not conn.lost.done():
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if publish in done:
                    waiting.discard(publish)
                    self._check_puback(publish)
        finally:
            publish.cancel()

    def _check_puback(self, publish: asyncio.Task[ReasonCode | None]) -> None:
        """A refused publish (MQTT 5 PUBACK >= 0x80, e.g. not authorised) is a CoreError.

        A publish that paho could not send or that got no PUBACK is left to
        the connection loss that follows, or to the request's deadline.
        """
        if publish.cancelled() or publish.exception() is not None:
            return
        code = publish.result()
        if code is not None and code.value >= _PUBACK_FAILURE:
            self.stats.errors += 1
            log.warning("core_request_refused", code=str(code))
            raise CoreError(f"broker refused the request: {code}")

    def _remember(self, corr: bytes, timed_out: bool) -> None:
        recent = self._recent
        recent[corr] = timed_out
        while len(recent) > self._config.max_pending * _RECENT_FACTOR:
            del recent[next(iter(recent))]

    # -- answers -----------------------------------------------------------------

    def _on_answer(self, message: aiomqtt.Message) -> None:
        """Hand an answer to the request with its correlation data; drop and count the rest."""
        corr = getattr(message.properties, "CorrelationData", None)
        payload = message.payload
        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        if not isinstance(corr, bytes | bytearray) or not corr:
            self.stats.unmatched += 1
            log.warning("core_answer_uncorrelated", topic=message.topic.value)
            return
        corr = bytes(corr)
        pending = self._pending.get(corr)
        if pending is None:
            timed_out = self._recent.pop(corr, None)
            if timed_out:
                self.stats.late += 1
                log.info("core_answer_late")
            elif timed_out is not None:
                self.stats.duplicates += 1
            else:
                self.stats.unmatched += 1
                log.warning("core_answer_unmatched", topic=message.topic.value)
            return
        if pending.done():
            self.stats.duplicates += 1
            return
        pending.set_result(data)

    # -- lifecycle ---------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe, receive answers; reconnect with backoff until closed or cancelled."""
        if self._running:
            raise RuntimeError("CoreLink.run() is already running")
        self._running = True
        self._stopped.clear()
        cfg = self._config
        try:
            await keep_connected(
                self._connection, self._closing, cfg.reconnect_min, cfg.reconnect_max
            )
        finally:
            self._mark_down()
            self._running = False
            self._stopped.set()

    async def _connection(self, quiet: bool) -> str | None:
        """One connection's life; returns why it could not connect, or None once it was up."""
        was_up = False
        try:
            client = self._new_client()
            async with client:
                await self._subscribe(client)
                self._conn = _Connection(client, asyncio.get_running_loop().create_future())
                self._up.set()
                self._notify()
                was_up = True
                self.stats.connects += 1
                log.info("core_link_up", host=self._host, port=self._port, node=self._config.node)
                try:
                    await self._receive(client)
                finally:
                    self._mark_down()
        except (aiomqtt.MqttError, OSError, _SubscribeRefused) as exc:
            reason = str(exc) or type(exc).__name__
            if was_up:
                log.warning("core_link_down", reason=reason)
                return None
            if not quiet:
                log.warning("core_link_connect_failed", host=self._host, reason=reason)
            return reason
        if was_up and not self._closing.is_set():
            log.warning("core_link_down", reason="connection lost")
        return None

    async def _receive(self, client: PubackClient) -> None:
        """Dispatch answers until the connection drops or close() is called."""

        async def answers() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                async for message in client.messages:
                    try:
                        self._on_answer(message)
                    except Exception:  # one odd message must not stop the link
                        self.stats.unmatched += 1
                        log.exception("core_answer_dispatch_failed")

        receiving = asyncio.create_task(answers())
        closing = asyncio.create_task(self._closing.wait())
        try:
            await asyncio.wait({receiving, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiving, closing):
                task.cancel()
            await asyncio.gather(receiving, closing, return_exceptions=True)

    async def _subscribe(self, client: PubackClient) -> None:
        topic = self._config.response_topic
        granted = await client.subscribe(topic, qos=1)
        for code in granted:
            value = getattr(code, "value", code)
            if value >= _PUBACK_FAILURE:
                raise _SubscribeRefused(f"{topic}: {code}")

    def _mark_down(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.lost.done():
            conn.lost.set_result(None)
        if self._up.is_set():
            self._up.clear()
        self._notify()

    async def close(self) -> None:
        """Disconnect and stop ``run()``; requests still waiting end with CoreTimeout."""
        self._closing.set()
        self._notify()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CoreTimeout("core link closed"))
        if self._running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CONNECT_TIMEOUT):
                    await self._stopped.wait()

    def _new_client(self) -> PubackClient:
        """A fresh MQTT 5 client per connection, clean start: stale answers are worthless."""
        tls = self._config.tls_context
        if self._scheme == "mqtts" and tls is None:
            tls = ssl.create_default_context()
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
        return PubackClient(
            self._host,
            self._port,
            identifier=self._config.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            keepalive=self._config.keepalive,
            timeout=_CONNECT_TIMEOUT,
            tls_context=tls,
        )


__all__ = [
    "BAL_RESULTS",
    "CHECK_RESULTS",
    "NS_CORE",
    "AccountCheck",
    "BalanceAnswer",
    "BalanceQuery",
    "CoreConfig",
    "CoreError",
    "CoreLink",
    "CoreStats",
    "CoreTimeout",
    "build_acct_check",
    "build_acct_check_rsp",
    "build_bal_qry",
    "build_bal_rsp",
    "check_acct",
    "format_amount",
    "parse_acct_check_rsp",
    "parse_bal_rsp",
    "parse_request",
]
