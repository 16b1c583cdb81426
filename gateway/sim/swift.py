"""The bank's SWIFT interface, simulated (``gateway-sim swift``; docs/foreign-currency.md §4).

It stands in for the other side of the SWIFT link and speaks only that text:
it subscribes (QoS 1, persistent session) to ``{prefix}/out``; verifies each
message's signature against the pinned gateway certificates and drops
(counts, logs) any that fails; deduplicates by envelope MsgId; and answers
each new ``swift.008`` on ``{prefix}/in`` with a signed ``swift.ack`` —
``ACK``, or ``NAK`` with a reason for a configurable share of payments, for
chosen amounts, and for a Document it cannot read — then, after an ACK and
``settle_delay`` seconds, a signed ``swift.002`` with ``ACSC``, or ``RJCT``
with a reason code for a configurable share or chosen amounts.  A re-sent
MsgId gets the very same answers again, byte for byte, never a second
decision.

Answers come from the instructed bank: ``Sndr`` is the swift.008's ``Rcvr``
(its ``InstdAgt``), ``Rcvr`` the gateway's BIC, and their MsgIds are that
BIC8 + date + sequence.  Decisions are a pure function of ``(seed, UETR)``,
so they are reproducible across runs.  Every UETR seen is kept
(:attr:`SwiftSimulator.uetrs`) and every received message appended to a
JSONL record; a UETR arriving under a second MsgId is counted
(``uetr_reused``: the gateway must never send one payment twice).

It can also play a foreign bank paying one of our customers:
:meth:`SwiftSimulator.inject_credit` (and ``gateway-sim swift inject``)
publishes a signed incoming ``swift.008`` to the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import hashlib
import json
import os
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Final

import aiomqtt
import structlog
from cryptography import x509
from lxml import etree
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.documents import Envelope, hardened_parser, parse_message, serialize
from gateway.clearing.reconnect import keep_connected
from gateway.clearing.swift import (
    MSG_TP_SWIFT_ACK,
    MSG_TP_SWIFT_CREDIT,
    MSG_TP_SWIFT_STATUS,
    SwiftAck,
    SwiftDocumentError,
    SwiftPayment,
    SwiftStatus,
    build_swift_002,
    build_swift_008,
    build_swift_ack,
    build_swift_envelope,
    is_bic,
    new_uetr,
    parse_swift_envelope,
    read_swift_008,
    swift_in_topic,
    swift_msg_id,
    swift_out_topic,
)
from gateway.clock import Clock, SystemClock
from gateway.errors import ConfigError, GatewayError
from gateway.keys.xmldsig import SigningKey, load_signing_key, sign_enveloped, verify_pinned
from gateway.sim.clearing import (
    BROKER_TIMEOUT_S,
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    REJECT_REASONS,
    SESSION_EXPIRY_S,
    PublishRefused,
    _SimClient,
    load_keys,
)
from gateway.sim.cli_options import (
    add_broker_option,
    add_tls_options,
    broker_address,
    broker_tls,
    run_until_signalled,
)
from gateway.sim.dedupe import MsgIdMemory

log = structlog.get_logger("gateway.sim.swift")

#: Network refusals (``Rsn`` of a NAK) the simulator draws from.
NAK_REASONS: Final = (
    ("H21", "receiver not reachable over this relation"),
    ("T26", "field content not allowed"),
)
#: The NAK for a Document the simulator cannot read or that fails the schema.
FORMAT_NAK: Final = ("FF01", "invalid file format")
_XSD_FILE: Final = "pacs.008.001.08.xsd"


@dataclass
class SwiftSimConfig:
    """What the SWIFT simulator needs; ``gateway_certs`` are pinned (docs/clearing-link.md §3)."""

    broker_url: str
    sign_key: SigningKey
    gateway_certs: tuple[x509.Certificate, ...]
    topic_prefix: str = "swift"
    #: seconds before the swift.ack, then before the swift.002
    ack_delay: float = 0.0
    settle_delay: float = 0.0
    #: share of payments NAKed by the network, and amounts that always are (a test's trigger)
    nak_ratio: float = 0.0
    nak_amounts: frozenset[Decimal] = frozenset()
    #: share of ACKed payments the receiving bank rejects (RJCT), and amounts it always rejects
    reject_ratio: float = 0.0
    reject_amounts: frozenset[Decimal] = frozenset()
    record_path: Path | None = None
    xsd_dir: Path | None = None
    seed: int = 0
    client_id: str = "swift-sim"
    tls_context: ssl.SSLContext | None = None
    #: Rcvr of injected incoming credits (the gateway's first BIC)
    gateway_bic: str = "DEMOCNBJXXX"
    dedupe_window: float = 300.0
    remember: int = 100_000
    clock: Clock = field(default_factory=SystemClock)


@dataclass(frozen=True)
class _Reply:
    payload: bytes
    msg_tp: str
    msg_id: str


@dataclass
class _Answer:
    """What was answered for one envelope MsgId: replayed for a re-send."""

    ack: _Reply | None = None
    status: _Reply | None = None


@dataclass(frozen=True)
class _Decision:
    ack: SwiftAck
    status: str | None  # ACSC | RJCT after an ACK; None after a NAK
    reason: tuple[str, str] | None = None


def _new_stats() -> dict[str, int]:
    keys = (
        "received",
        "duplicates",
        "late_duplicates",
        "invalid",
        "acks",
        "naks",
        "statuses",
        "settled",
        "rejected",
        "uetr_reused",
        "credits_injected",
        "publish_refused",
    )
    return dict.fromkeys(keys, 0)


class SwiftSimulator:
    """Receives the gateway's swift.008 and answers them (docs/foreign-currency.md §4)."""

    def __init__(self, config: SwiftSimConfig) -> None:
        for name in ("nak_ratio", "reject_ratio"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if not is_bic(config.gateway_bic):
            raise ValueError("gateway_bic must be a BIC")
        self.config = config
        self.stats = _new_stats()
        self.msg_ids: MsgIdMemory[_Answer] = MsgIdMemory(
            config.dedupe_window, max_recent=config.remember
        )
        #: every UETR seen on ``{prefix}/out``, with the MsgId that first carried it
        self.uetrs: dict[str, str] = {}
        self._host, self._port = broker_address(config.broker_url, config.tls_context)
        self._schema = _load_schema(config.xsd_dir) if config.xsd_dir else None
        self._parser = hardened_parser()
        self._client: _SimClient | None = None
        self._up = asyncio.Event()
        self._sessions = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._record: IO[str] | None = None
        self._seq = (int(time.time()) % 100_000) * 100_000  # a restart reuses no MsgId

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, subscribe and answer until cancelled; reconnects after a broker loss."""
        if self.config.record_path is not None:
            self._record = self.config.record_path.open("a", encoding="utf-8")

        async def connection(quiet: bool) -> str | None:
            sessions = self._sessions
            try:
                # clean once, then resume the session: nothing sent meanwhile is lost
                await self._session(clean=self._sessions == 0, ready=ready)
            except aiomqtt.MqttError as exc:
                log.warning("swift_sim_disconnected", error=str(exc))
            return None if self._sessions > sessions else "not connected"

        try:
            await keep_connected(connection, asyncio.Event(), RECONNECT_MIN_S, RECONNECT_MAX_S)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._record is not None:
                self._record.close()
                self._record = None

    async def _session(self, *, clean: bool, ready: asyncio.Event | None) -> None:
        connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect.SessionExpiryInterval = SESSION_EXPIRY_S
        client = _SimClient(
            self._host,
            self._port,
            identifier=self.config.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean,
            properties=connect,
            tls_context=self.config.tls_context,
            timeout=BROKER_TIMEOUT_S,
        )
        async with client:
            self._sessions += 1
            await client.subscribe(swift_out_topic(self.config.topic_prefix), qos=1)
            self._client = client
            self._up.set()
            log.info("swift_sim_ready", broker=self.config.broker_url, clean_start=clean)
            if ready is not None:
                ready.set()
            try:
                async for message in client.messages:
                    payload = message.payload
                    self.receive(str(message.topic), payload if isinstance(payload, bytes) else b"")
            finally:
                self._up.clear()
                self._client = None

    # -- inbound -----------------------------------------------------------------

    def receive(self, topic: str, data: bytes) -> None:
        """Handle one message from ``topic``: verify, deduplicate, decide, schedule answers."""
        self.stats["received"] += 1
        try:
            root = parse_message(data, self._parser)
            verified = verify_pinned(root, self.config.gateway_certs)
            env = parse_swift_envelope(verified.signed_root)
            if env.msg_tp != MSG_TP_SWIFT_CREDIT:
                raise ValueError(f"{env.msg_tp} is not sent on {topic}")
        except (ValueError, GatewayError) as exc:
            self.stats["invalid"] += 1
            reason = exc.detail if isinstance(exc, GatewayError) else str(exc)
            log.warning("swift_sim_dropped", topic=topic, reason=reason)
            self._write_record({"topic": topic, "msg_id": None, "valid": False, "reason": reason})
            return

        received = self.config.clock.now()
        seen = self.msg_ids.seen(env.msg_id)
        if seen == "recent":
            self.stats["duplicates"] += 1
            answer = self.msg_ids.answer(env.msg_id)
            self._write_record(self._line(topic, env, dup=True, reason=None))
            if answer is not None:
                for reply in (answer.ack, answer.status):
                    if reply is not None:
                        self._spawn(self._publish(reply))
            return
        if seen == "late":  # answers forgotten: decide again, the outcome is the same
            self.stats["duplicates"] += 1
            self.stats["late_duplicates"] += 1
        decision, reason = self._decide(env, received)
        self._write_record(self._line(topic, env, dup=seen == "late", reason=reason))
        answer = _Answer()
        self.msg_ids.remember(env.msg_id, answer)
        self._spawn(self._answer(answer, env, decision))

    def _line(self, topic: str, env: Envelope, *, dup: bool, reason: str | None) -> dict[str, Any]:
        line: dict[str, Any] = {
            "topic": topic,
            "msg_id": env.msg_id,
            "msg_tp": env.msg_tp,
            "sndr": env.sndr,
            "rcvr": env.rcvr,
            "dup": dup,
            "valid": reason is None,
            "reason": reason,
        }
        with contextlib.suppress(ValueError):
            credit = read_swift_008(env.document)
            line |= {
                "uetr": credit.uetr,
                "end_to_end_id": credit.end_to_end_id,
                "tx_id": credit.tx_id,
                "amount": str(credit.amount),
                "ccy": credit.ccy,
            }
        return line

    def _check(self, env: Envelope) -> tuple[str | None, Decimal | None, str | None]:
        """``(UETR, amount, why the Document is refused)`` of a swift.008."""
        if self._schema is not None:
            try:
                self._schema.assertValid(etree.ElementTree(copy.deepcopy(env.document)))
            except etree.DocumentInvalid as exc:
                return None, None, f"schema: {exc}"[:200]
        try:
            credit = read_swift_008(env.document)
        except SwiftDocumentError as exc:
            return None, None, str(exc)
        if credit.sending_bic != env.sndr or credit.instructed_agent != env.rcvr:
            return credit.uetr, credit.amount, "Sndr/Rcvr are not InstgAgt/InstdAgt"
        return credit.uetr, credit.amount, None

    def _decide(self, env: Envelope, received: datetime) -> tuple[_Decision, str | None]:
        uetr, amount, reason = self._check(env)
        if uetr is not None:
            first = self.uetrs.setdefault(uetr, env.msg_id)
            if first != env.msg_id:
                self.stats["uetr_reused"] += 1
                log.warning("swift_sim_uetr_reused", uetr=uetr, first=first, again=env.msg_id)
        if reason is not None or uetr is None or amount is None:
            code, text = FORMAT_NAK
            ack = SwiftAck(env.msg_id, received, "NAK", code, text)
            return _Decision(ack, None), reason or "unreadable"
        digest = hashlib.sha256(f"{self.config.seed}|{uetr}".encode()).digest()
        if amount in self.config.nak_amounts or _draw(digest, 0) < self.config.nak_ratio:
            code, text = NAK_REASONS[digest[16] % len(NAK_REASONS)]
            return _Decision(SwiftAck(env.msg_id, received, "NAK", code, text), None), None
        ack = SwiftAck(env.msg_id, received, "ACK")
        if amount in self.config.reject_amounts or _draw(digest, 8) < self.config.reject_ratio:
            return _Decision(ack, "RJCT", REJECT_REASONS[digest[17] % len(REJECT_REASONS)]), None
        return _Decision(ack, "ACSC"), None

    # -- outbound ----------------------------------------------------------------

    async def _answer(self, answer: _Answer, env: Envelope, decision: _Decision) -> None:
        """The swift.ack after ``ack_delay``; after an ACK, the swift.002 after ``settle_delay``."""
        if self.config.ack_delay > 0:
            await asyncio.sleep(self.config.ack_delay)
        answer.ack = self._signed(MSG_TP_SWIFT_ACK, env, build_swift_ack(decision.ack))
        await self._publish(answer.ack)
        self.stats["acks" if decision.ack.accepted else "naks"] += 1
        if decision.status is None:
            return
        if self.config.settle_delay > 0:
            await asyncio.sleep(self.config.settle_delay)
        credit = read_swift_008(env.document)
        msg_id = self._next_msg_id(env.rcvr, env.work_date)
        code, text = decision.reason or (None, None)
        status = SwiftStatus(
            msg_id=msg_id,
            created=self.config.clock.now(),
            orgnl_msg_id=env.msg_id,
            status=decision.status,
            reason_code=code,
            reason_text=text,
            orgnl_uetr=credit.uetr,
            orgnl_end_to_end_id=credit.end_to_end_id,
            orgnl_tx_id=credit.tx_id,
        )
        answer.status = self._signed(MSG_TP_SWIFT_STATUS, env, build_swift_002(status), msg_id)
        await self._publish(answer.status)
        self.stats["statuses"] += 1
        self.stats["settled" if decision.status == "ACSC" else "rejected"] += 1

    def _next_msg_id(self, bic: str, work_date: date) -> str:
        self._seq = (self._seq + 1) % 10**10
        return swift_msg_id(bic, work_date, self._seq)

    def _signed(
        self, msg_tp: str, env: Envelope, document: etree._Element, msg_id: str | None = None
    ) -> _Reply:
        """A signed answer from the instructed bank (``env.rcvr``) to the gateway (``env.sndr``)."""
        msg_id = msg_id or self._next_msg_id(env.rcvr, env.work_date)
        root = build_swift_envelope(
            msg_tp, msg_id, env.rcvr, env.sndr, self.config.clock.now(), env.work_date, document
        )
        sign_enveloped(root, self.config.sign_key)
        return _Reply(serialize(root), msg_tp, msg_id)

    async def _publish(self, reply: _Reply) -> None:
        """QoS 1 on ``{prefix}/in`` with MsgTp/MsgId user properties; retried over reconnects."""
        topic = swift_in_topic(self.config.topic_prefix)
        while True:
            await self._up.wait()
            client = self._client
            if client is None:
                await asyncio.sleep(RECONNECT_MIN_S)
                continue
            try:
                await client.publish_checked(topic, reply.payload, _user_properties(reply))
            except PublishRefused as exc:
                self.stats["publish_refused"] += 1
                log.error(  # noqa: TRY400 - a broker refusal, not a crash
                    "swift_sim_publish_refused", msg_tp=reply.msg_tp, code=str(exc)
                )
                return
            except aiomqtt.MqttError as exc:
                log.warning("swift_sim_publish_retry", error=str(exc))
                await asyncio.sleep(RECONNECT_MIN_S)
                continue
            return

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("swift_sim_answer_failed", error=repr(exc))

    def _write_record(self, line: dict[str, Any]) -> None:
        if self._record is not None:
            self._record.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._record.flush()

    # -- a foreign bank paying one of our customers ---------------------------------

    async def inject_credit(self, credit: IncomingCredit) -> tuple[str, str]:
        """Publish a signed incoming swift.008 to the gateway; ``(MsgId, UETR)``."""
        self._seq = (self._seq + 1) % 10**10
        reply, uetr = incoming_credit_message(
            credit, self.config.gateway_bic, self.config.sign_key, self._seq, self.config.clock
        )
        await self._publish(reply)
        self.stats["credits_injected"] += 1
        log.info("swift_sim_credit_injected", msg_id=reply.msg_id, uetr=uetr)
        return reply.msg_id, uetr


@dataclass(frozen=True)
class IncomingCredit:
    """A foreign bank's customer credit to one of our customers (docs/foreign-currency.md §4).

    ``amount`` is written with the currency's decimals (``1500`` JPY,
    ``250.00`` USD): the Document carries it as written.
    """

    sender_bic: str
    debtor_name: str
    debtor_acct: str
    creditor_acct: str
    creditor_name: str
    amount: Decimal
    ccy: str
    debtor_country: str = "US"
    purpose: str | None = None
    work_date: date | None = None


def incoming_credit_message(
    credit: IncomingCredit, gateway_bic: str, key: SigningKey, seq: int, clock: Clock
) -> tuple[_Reply, str]:
    """The signed ``ClrMsg`` of an incoming swift.008 and its fresh UETR.

    Direct path from ``sender_bic`` (InstgAgt = DbtrAgt = Sndr) to the
    gateway (InstdAgt = CdtrAgt = Rcvr), ``SttlmMtd`` INGA.
    """
    now = clock.now()
    day = credit.work_date or now.date()
    msg_id = swift_msg_id(credit.sender_bic, day, seq)
    uetr = new_uetr()
    exponent = credit.amount.as_tuple().exponent
    units = max(0, -exponent) if isinstance(exponent, int) else 0
    payment = SwiftPayment(
        msg_id=msg_id,
        created=now,
        settle_date=day,
        end_to_end_id=f"E{msg_id[8:]}",
        tx_id=f"T{msg_id[8:]}",
        uetr=uetr,
        amount=credit.amount,
        ccy=credit.ccy,
        minor_units=units,
        debtor_name=credit.debtor_name,
        debtor_acct=credit.debtor_acct,
        creditor_name=credit.creditor_name,
        creditor_acct=credit.creditor_acct,
        creditor_country="CN",
        purpose=credit.purpose,
        debtor_country=credit.debtor_country,
    )
    document = build_swift_008(payment, _DirectPath(credit.sender_bic, gateway_bic))
    root = build_swift_envelope(
        MSG_TP_SWIFT_CREDIT, msg_id, credit.sender_bic, gateway_bic, now, day, document
    )
    sign_enveloped(root, key)
    return _Reply(serialize(root), MSG_TP_SWIFT_CREDIT, msg_id), uetr


@dataclass(frozen=True)
class _DirectPath:
    """The INGA path of an incoming credit: from the sending bank straight to us."""

    instructing_agent: str
    instructed_agent: str
    method: str = "INGA"
    intermediary_agent: str | None = None
    settlement_account: str | None = None

    @property
    def creditor_agent(self) -> str:
        return self.instructed_agent


def _user_properties(reply: _Reply) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = [("MsgTp", reply.msg_tp), ("MsgId", reply.msg_id)]
    return props


def _draw(digest: bytes, offset: int) -> float:
    return int.from_bytes(digest[offset : offset + 8], "big") / 2**64


def _load_schema(xsd_dir: Path) -> etree.XMLSchema:
    path = xsd_dir / _XSD_FILE
    if not path.is_file():
        raise ConfigError(f"{xsd_dir}: no {_XSD_FILE} there")
    return etree.XMLSchema(etree.parse(str(path), hardened_parser()))


# ------------------------------------------------------------------------- CLI


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive amount")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway-sim swift",
        description="Simulate the bank's SWIFT interface on MQTT (docs/foreign-currency.md §4).",
        epilog="gateway-sim swift inject --help: send the gateway one incoming swift.008.",
    )
    add_broker_option(p)
    p.add_argument("--prefix", default="swift", help="topic prefix: PREFIX/out, PREFIX/in")
    p.add_argument("--key", type=Path, required=True, help="the SWIFT interface's signing key")
    p.add_argument("--cert", type=Path, required=True, help="its certificate (PEM)")
    p.add_argument(
        "--gateway-cert",
        type=Path,
        action="append",
        required=True,
        help="pinned gateway certificate (PEM); repeatable",
    )
    p.add_argument("--ack-delay", type=float, default=0.0, help="seconds before swift.ack")
    p.add_argument("--settle-delay", type=float, default=0.0, help="seconds before swift.002")
    p.add_argument("--nak-ratio", type=float, default=0.0, help="share of payments NAKed")
    p.add_argument("--nak-amount", type=_amount, action="append", default=[], metavar="AMOUNT")
    p.add_argument("--reject-ratio", type=float, default=0.0, help="share of ACKed ones RJCT")
    p.add_argument("--reject-amount", type=_amount, action="append", default=[], metavar="AMOUNT")
    p.add_argument("--record", type=Path, help="append one JSON line per received message")
    p.add_argument("--xsd-dir", type=Path, help="NAK Documents invalid against these schemas")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--client-id", default="swift-sim")
    add_tls_options(p)
    return p


def _inject_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway-sim swift inject",
        description="Publish one signed incoming swift.008 to the gateway and print"
        " its MsgId and UETR as JSON (docs/foreign-currency.md §4).",
    )
    add_broker_option(p)
    p.add_argument("--prefix", default="swift")
    p.add_argument("--key", type=Path, required=True, help="the SWIFT interface's signing key")
    p.add_argument("--cert", type=Path, required=True, help="its certificate (PEM)")
    p.add_argument("--gateway-bic", required=True, help="Rcvr and CdtrAgt: our first BIC")
    p.add_argument("--sender-bic", required=True, help="Sndr, InstgAgt and DbtrAgt")
    p.add_argument("--amount", type=_amount, required=True, help="as the currency writes it")
    p.add_argument("--ccy", required=True)
    p.add_argument("--creditor-acct", required=True)
    p.add_argument("--creditor-name", required=True)
    p.add_argument("--debtor-acct", default="000123456789")
    p.add_argument("--debtor-name", default="Overseas Buyer Inc")
    p.add_argument("--debtor-country", default="US")
    p.add_argument("--purpose")
    p.add_argument("--work-date", type=date.fromisoformat, help="yyyy-mm-dd (default: today)")
    p.add_argument("--client-id", default="swift-sim-inject")
    add_tls_options(p)
    return p


async def _publish_once(
    args: argparse.Namespace, reply: _Reply, tls: ssl.SSLContext | None
) -> None:
    host, port = broker_address(args.broker, tls)
    client = _SimClient(
        host,
        port,
        identifier=args.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
        timeout=BROKER_TIMEOUT_S,
    )
    async with client:
        await client.publish_checked(
            swift_in_topic(args.prefix), reply.payload, _user_properties(reply)
        )


def run_inject(argv: Sequence[str]) -> int:
    """``gateway-sim swift inject ...``: 0 once the broker acknowledged it, 2 on a bad option."""
    args = _inject_parser().parse_args(list(argv))
    try:
        tls = broker_tls(args)
        key = load_signing_key(args.key, args.cert, _passphrase())
        credit = IncomingCredit(
            sender_bic=args.sender_bic,
            debtor_name=args.debtor_name,
            debtor_acct=args.debtor_acct,
            creditor_acct=args.creditor_acct,
            creditor_name=args.creditor_name,
            amount=args.amount,
            ccy=args.ccy,
            debtor_country=args.debtor_country,
            purpose=args.purpose,
            work_date=args.work_date,
        )
        seq = int(time.time() * 1000) % 10**10
        reply, uetr = incoming_credit_message(credit, args.gateway_bic, key, seq, SystemClock())
        asyncio.run(_publish_once(args, reply, tls))
    except (ConfigError, ValueError, OSError, ssl.SSLError, aiomqtt.MqttError) as exc:
        sys.stderr.write(f"gateway-sim swift inject: {exc}\n")
        return 2
    print(json.dumps({"msg_id": reply.msg_id, "uetr": uetr}))
    return 0


def _passphrase() -> bytes | None:
    value = os.environ.get("GATEWAY_SIM_KEY_PASSPHRASE")
    return value.encode() if value else None


def _config(args: argparse.Namespace) -> SwiftSimConfig:
    key, certs = load_keys(args.key, args.cert, args.gateway_cert)
    return SwiftSimConfig(
        broker_url=args.broker,
        sign_key=key,
        gateway_certs=certs,
        topic_prefix=args.prefix,
        ack_delay=args.ack_delay,
        settle_delay=args.settle_delay,
        nak_ratio=args.nak_ratio,
        nak_amounts=frozenset(args.nak_amount),
        reject_ratio=args.reject_ratio,
        reject_amounts=frozenset(args.reject_amount),
        record_path=args.record,
        xsd_dir=args.xsd_dir,
        seed=args.seed,
        client_id=args.client_id,
        tls_context=broker_tls(args),
    )


def run_swift_sim(argv: Sequence[str]) -> int:
    """``gateway-sim swift [options]``: run until SIGINT/SIGTERM; ``swift inject``: one credit."""
    if list(argv[:1]) == ["inject"]:
        return run_inject(argv[1:])
    args = _parser().parse_args(list(argv))
    return run_until_signalled("gateway-sim swift", lambda: SwiftSimulator(_config(args)))


__all__ = [
    "FORMAT_NAK",
    "NAK_REASONS",
    "IncomingCredit",
    "SwiftSimConfig",
    "SwiftSimulator",
    "incoming_credit_message",
    "run_swift_sim",
]
