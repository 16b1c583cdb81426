"""The core banking system's simulator (``gateway-sim core``), docs/clearing-link.md §5.

It stands in for the other side of the core link and speaks only that text:
it subscribes (QoS 1) to ``core/req``, reads ``BalQry`` and ``AcctCheck``
requests (namespace ``urn:core:1``), and publishes each answer to the
request's MQTT 5 ResponseTopic with the request's CorrelationData, after
an optional ``delay``.  Accounts come from a table (TOML for the CLI, see
:func:`load_accounts`); :func:`demo_accounts` is the demo's table, built from
the dev PKI's enrolled accounts so the two cannot drift apart.  Its MQTT
session is persistent (clean start off, session expiry 1 h), so requests
published while it was away (a broker restart) are still answered.

To exercise the gateway's timeouts it never answers for an account in
``silent_accounts``.  A request it cannot read (not a §5 document, or no
ResponseTopic / CorrelationData) gets no answer: it is counted and logged.
Account names are compared exactly after stripping surrounding whitespace
(MATCH / MISMATCH); an account not in the table is UNKNOWN.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.core_documents import (
    AccountCheck,
    build_acct_check_rsp,
    build_bal_rsp,
    check_acct,
    format_amount,
    parse_request,
)
from gateway.clearing.link import parse_url
from gateway.clearing.mqtt_client import PubackClient, PublishNotSent
from gateway.clearing.reconnect import keep_connected
from gateway.errors import ConfigError
from gateway.keys.devpki import DEMO_CORPORATES
from gateway.ops.logs import mask_account
from gateway.sim.cli_options import (
    add_broker_option,
    add_tls_options,
    broker_tls,
    run_until_signalled,
)

log = structlog.get_logger("gateway.sim.core")

#: Backoff between reconnect attempts (seconds), doubled up to the maximum.
RECONNECT_MIN_S: Final = 0.2
RECONNECT_MAX_S: Final = 5.0
#: The simulator's session outlives a broker restart or a short outage, so
#: requests published meanwhile are answered (late answers are the gateway's to drop).
SESSION_EXPIRY_S: Final = 3600
#: aiomqtt's wait for CONNACK / SUBACK and the simulator's wait for a PUBACK.
BROKER_TIMEOUT_S: Final = 10.0
_ACCOUNT_KEYS: Final = frozenset({"name", "balance", "available", "ccy"})


@dataclass(frozen=True)
class CoreAccount:
    """One account of the simulated core system."""

    name: str
    balance: Decimal
    available: Decimal
    ccy: str = "CNY"


@dataclass(frozen=True)
class CoreSimConfig:
    """What the simulator needs; ``accounts`` maps account number → account."""

    broker_url: str
    accounts: Mapping[str, CoreAccount]
    delay: float = 0.0
    """Seconds before each answer (a slow core system)."""
    silent_accounts: frozenset[str] = frozenset()
    """Requests about these accounts are never answered (the gateway must time out)."""
    client_id: str = "core-sim"
    request_topic: str = "core/req"
    tls_context: ssl.SSLContext | None = None


def demo_accounts() -> dict[str, CoreAccount]:
    """The demo's core accounts: every account the dev PKI enrols, under its corporate's name.

    One of them is overdrawn (negative balance, credit line left) so the
    demo shows a negative BAL too.
    """
    figures = {
        "6222000000000001": ("1250000.00", "1200000.00"),
        "6222000000000002": ("5000000.00", "5000000.00"),
        "6222000000000101": ("380000.50", "380000.50"),
        "6222000000000201": ("-1250.00", "48750.00"),
    }
    out: dict[str, CoreAccount] = {}
    for corp in DEMO_CORPORATES:
        for acct in corp.accounts:
            balance, available = figures.get(acct, ("100000.00", "100000.00"))
            out[acct] = CoreAccount(corp.name, Decimal(balance), Decimal(available))
    return out


def load_accounts(path: Path) -> dict[str, CoreAccount]:
    """Read ``[accounts."<number>"]`` tables (name, balance, available, optional ccy).

    Amounts are strings with two decimals (``"1000.00"``, ``"-5.00"``), never
    TOML floats, so nothing is rounded on the way.  Unknown keys are errors
    naming the key and the file (docs/architecture.md §8, habit 2).
    """
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    extra = set(data) - {"accounts"}
    if extra:
        raise ConfigError(f"{path}: unknown key {sorted(extra)[0]!r}")
    table = data.get("accounts", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: accounts must be a table")
    return {acct: _account(path, acct, entry) for acct, entry in table.items()}


def _account(path: Path, acct: str, entry: Any) -> CoreAccount:
    where = f"{path}: accounts.{acct}"
    try:
        check_acct(acct)
    except ValueError:
        raise ConfigError(f"{where}: account number must be [0-9A-Za-z]{{1,32}}") from None
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(entry) - _ACCOUNT_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    missing = {"name", "balance", "available"} - set(entry)
    if missing:
        raise ConfigError(f"{where}: missing key {sorted(missing)[0]!r}")
    name, ccy = entry["name"], entry.get("ccy", "CNY")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: must be a non-empty string")
    if not isinstance(ccy, str) or len(ccy) != 3 or not ccy.isascii() or not ccy.isupper():
        raise ConfigError(f"{where}.ccy: must be a 3-letter currency code")
    amounts = []
    for key in ("balance", "available"):
        text = entry[key]
        value = None
        with contextlib.suppress(ValueError, ArithmeticError):
            if isinstance(text, str) and format_amount(Decimal(text)) == text.strip():
                value = Decimal(text)
        if value is None:
            raise ConfigError(f'{where}.{key}: must be a string like "1000.00"')
        amounts.append(value)
    return CoreAccount(name, amounts[0], amounts[1], ccy)


def _new_stats() -> dict[str, int]:
    return dict.fromkeys(("requests", "answered", "silent", "malformed", "unanswered"), 0)


class CoreSimulator:
    """Answers the gateway's core requests (docs/clearing-link.md §5)."""

    def __init__(self, config: CoreSimConfig) -> None:
        scheme, self._host, self._port = parse_url(config.broker_url)
        if config.delay < 0:
            raise ValueError("delay must be >= 0")
        self.config = config
        self.stats: dict[str, int] = _new_stats()
        self._tls = config.tls_context
        if scheme == "mqtts" and self._tls is None:
            self._tls = ssl.create_default_context()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions = 0  # successful connections so far

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, subscribe and answer until cancelled; reconnects after a broker loss.

        ``ready`` is set each time the subscription is confirmed.
        """

        async def connection(quiet: bool) -> str | None:
            sessions = self._sessions
            try:
                await self._session(ready)
            except (aiomqtt.MqttError, OSError) as exc:
                log.warning("core_sim_disconnected", error=str(exc))
            return None if self._sessions > sessions else "not connected"

        try:
            await keep_connected(connection, asyncio.Event(), RECONNECT_MIN_S, RECONNECT_MAX_S)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _session(self, ready: asyncio.Event | None) -> None:
        connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect.SessionExpiryInterval = SESSION_EXPIRY_S
        client = PubackClient(
            self._host,
            self._port,
            identifier=self.config.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            # never clean: mosquitto 2.0 persists only sessions that did not start
            # clean, so even the first session must resume to survive a restart
            clean_start=False,
            properties=connect,
            tls_context=self._tls,
            timeout=BROKER_TIMEOUT_S,
        )
        async with client:
            await client.subscribe(self.config.request_topic, qos=1)
            self._sessions += 1
            log.info("core_sim_ready", broker=self.config.broker_url)
            if ready is not None:
                ready.set()
            async for message in client.messages:
                self.receive(client, message)

    def receive(self, client: PubackClient, message: aiomqtt.Message) -> None:
        """Read one request and schedule its answer (or count why there is none)."""
        self.stats["requests"] += 1
        props = message.properties
        reply_to = getattr(props, "ResponseTopic", None)
        corr = getattr(props, "CorrelationData", None)
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = b""
        try:
            if not reply_to or not corr:
                raise ValueError("no ResponseTopic or CorrelationData")
            request = parse_request(bytes(payload))
        except ValueError as exc:
            self.stats["malformed"] += 1
            log.warning("core_sim_malformed", reason=str(exc))
            return
        if request.acct in self.config.silent_accounts:
            self.stats["silent"] += 1
            log.info("core_sim_silent", acct=mask_account(request.acct))
            return
        account = self.config.accounts.get(request.acct)
        if isinstance(request, AccountCheck):
            if account is None:
                result = "UNKNOWN"
            else:
                result = "MATCH" if request.name.strip() == account.name.strip() else "MISMATCH"
            answer = build_acct_check_rsp(request.acct, result)
        elif account is None:
            answer = build_bal_rsp(request.acct, "UNKNOWN")
        else:
            answer = build_bal_rsp(
                request.acct, "OK", account.ccy, account.balance, account.available
            )
        task = asyncio.get_running_loop().create_task(
            self._answer(client, str(reply_to), bytes(corr), answer)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, client: PubackClient, topic: str, corr: bytes, answer: bytes) -> None:
        """Publish the answer QoS 1 with the request's CorrelationData (MQTT 5 request/response).

        Not retried over a reconnect: the requester publishes again when its
        own connection dropped, and times out otherwise.
        """
        if self.config.delay > 0:
            await asyncio.sleep(self.config.delay)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.CorrelationData = corr
        try:
            code = await client.publish_qos1(topic, answer, props, BROKER_TIMEOUT_S)
        except (PublishNotSent, TimeoutError) as exc:
            self.stats["unanswered"] += 1
            log.warning("core_sim_answer_lost", error=str(exc) or type(exc).__name__)
            return
        if code is not None and code.is_failure:
            self.stats["unanswered"] += 1
            log.warning("core_sim_answer_refused", code=str(code))
            return
        self.stats["answered"] += 1


# ------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway-sim core",
        description="Simulate the core banking system on MQTT 5 (docs/clearing-link.md §5).",
    )
    add_broker_option(p)
    p.add_argument(
        "--accounts", type=Path, help='TOML with [accounts."<number>"] tables (default: demo set)'
    )
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    p.add_argument(
        "--silent", action="append", default=[], metavar="ACCT", help="never answer; repeatable"
    )
    p.add_argument("--request-topic", default="core/req")
    p.add_argument("--client-id", default="core-sim")
    add_tls_options(p)
    return p


def core_sim_config(argv: Sequence[str]) -> CoreSimConfig:
    """The simulator's config from ``gateway-sim core`` arguments (ConfigError/ValueError)."""
    args = _parser().parse_args(list(argv))
    if args.delay < 0:
        raise ValueError("--delay must be >= 0")
    accounts = load_accounts(args.accounts) if args.accounts else demo_accounts()
    tls = broker_tls(args)
    parse_url(args.broker)
    return CoreSimConfig(
        broker_url=args.broker,
        accounts=accounts,
        delay=args.delay,
        silent_accounts=frozenset(args.silent),
        client_id=args.client_id,
        request_topic=args.request_topic,
        tls_context=tls,
    )


def run_core_sim(argv: Sequence[str]) -> int:
    """``gateway-sim core [options]``: run until SIGINT/SIGTERM.

    Returns 0 on a clean stop, 2 when the options or the accounts file are invalid.
    """
    return run_until_signalled("gateway-sim core", lambda: CoreSimulator(core_sim_config(argv)))


__all__ = [
    "CoreAccount",
    "CoreSimConfig",
    "CoreSimulator",
    "core_sim_config",
    "demo_accounts",
    "load_accounts",
    "run_core_sim",
]
