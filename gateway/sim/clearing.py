"""The clearing systems' simulator (``gateway-sim clearing``): HVPS, BEPS, clearing centre.

It stands in for the other side of docs/clearing-link.md and speaks only that text:
it subscribes (QoS 1) to ``{prefix}/+/out``; verifies each message's
signature against the pinned gateway certificates and drops (counts, logs)
any that fails (docs/clearing-link.md §3); deduplicates by envelope MsgId (§1: every
receiver does); answers each new message on ``{prefix}/{engine}/in`` with a
signed ``ccms.990`` receipt and, for payment messages and draft issue,
settle and refund messages, a signed ``ccms.900`` (pacs.002) with ACSC or
RJCT per transaction (§4).  A re-sent MsgId gets the
same receipt and, once decided, the same status again — never a second
decision.  BEPS netting rounds, injected incoming credits and inquiries,
and the answers to the gateway's ccms.314 live in the component
``gateway.sim.clearing_rounds``, hooked into the answer path below; the
clearing centre's side of bank drafts (issue, settle and refund decided,
presentment answers recorded, docs/bank-drafts.md §3) in
``gateway.sim.clearing_drafts``, and presenting a draft as an agent bank in
``gateway.sim.present`` (``gateway-sim clearing present``).

For load tests it can *withhold* every answer for a while and then release
them all at once (``--withhold-after``/``--withhold-for``, or SIGUSR1 to
toggle), so a benchmark sees how fast the gateway applies a burst of
receipts and statuses; and it can write its counters (``duplicates``,
``late_duplicates``, ...) to a JSON file every few seconds and on exit
(``--stats-file``), since it runs as a process of its own there.

Decisions are a pure function of ``(seed, EndToEndId, TxId)``, so they are
reproducible across runs and restarts and do not depend on arrival order.
Every received message is appended to a JSONL record (flushed per line) that
tests and the crash test read while the simulator runs.  It never imports
the gateway's journal, engines or pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import hashlib
import json
import os
import signal
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final

import aiomqtt
import structlog
from cryptography import x509
from lxml import etree
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.documents import (
    MSG_TP_RECEIPT,
    MSG_TP_STATUS,
    NS_PACS003,
    NS_PACS008,
    PACS003_NAME,
    PACS008_NAME,
    Envelope,
    TxResult,
    build_envelope,
    build_pacs002,
    build_receipt,
    hardened_parser,
    out_msg_id,
    parse_envelope,
    parse_message,
    parse_pacs003,
    parse_pacs008,
    serialize,
    transaction_ids,
)
from gateway.clearing.mqtt_client import PubackClient
from gateway.clearing.reconnect import keep_connected
from gateway.clock import Clock, SystemClock
from gateway.errors import ConfigError, GatewayError
from gateway.keys.xmldsig import SigningKey, load_signing_key, sign_enveloped, verify_pinned
from gateway.sim.clearing_drafts import (
    DRAFT_DOCUMENTS,
    ClearingDrafts,
    RecordedAnswer,
    draft_ids,
    parse_reject_fen,
)
from gateway.sim.clearing_rounds import ClearingRounds
from gateway.sim.cli_options import (
    add_broker_option,
    add_tls_options,
    broker_address,
    broker_tls,
    run_until_signalled,
)
from gateway.sim.dedupe import MsgIdMemory

log = structlog.get_logger("gateway.sim.clearing")

#: docs/clearing-link.md §4: payment message types and the Document namespace each carries.
PAYMENT_DOCUMENTS: Final[dict[str, tuple[str, str]]] = {
    "hvps.111": (NS_PACS008, PACS008_NAME),
    "beps.121": (NS_PACS008, PACS008_NAME),
    "intra.111": (NS_PACS008, PACS008_NAME),
    "beps.127": (NS_PACS003, PACS003_NAME),
}
#: ISO 20022 ExternalStatusReason1Code values the simulator rejects with.
REJECT_REASONS: Final = (
    ("AC01", "incorrect account number"),
    ("AM04", "insufficient funds"),
    ("AC04", "closed account number"),
    ("AG01", "transaction forbidden on this type of account"),
)
#: Reason for a Document that is not valid for its message type.
FORMAT_REJECT: Final = ("FF01", "invalid file format")
#: docs/clearing-link.md §1: the session survives a reconnect only with an expiry interval.
SESSION_EXPIRY_S: Final = 24 * 3600
#: Backoff between reconnect attempts (seconds), doubled up to the maximum.
RECONNECT_MIN_S: Final = 0.2
RECONNECT_MAX_S: Final = 5.0
#: aiomqtt's per-call wait for a PUBACK or SUBACK.
BROKER_TIMEOUT_S: Final = 10.0
_XSD_FILES: Final = {NS_PACS008: "pacs.008.001.08.xsd", NS_PACS003: "pacs.003.001.08.xsd"}


@dataclass
class ClearingSimConfig:
    """What the simulator needs; ``gateway_certs`` are pinned (docs/clearing-link.md §3)."""

    broker_url: str
    sign_key: SigningKey
    gateway_certs: tuple[x509.Certificate, ...]
    topic_prefix: str = "clearing"
    reject_ratio: float = 0.0
    receipt_delay: float = 0.0
    settle_delay: float = 0.0
    record_path: Path | None = None
    xsd_dir: Path | None = None
    seed: int = 0
    participant: str = "000000000000"
    client_id: str = "clearing-sim"
    tls_context: ssl.SSLContext | None = None
    #: seconds a MsgId's answers are kept for replay to a re-send; at least twice the
    #: gateway's receipt timeout (it re-sends after that), later ones are "late"
    dedupe_window: float = 300.0
    #: at most this many MsgIds' answers at once, whatever the window (bounded memory); and
    #: at most this many runs of the receivers kept for injected inquiries (msgid_runs)
    remember: int = 100_000
    clock: Clock = field(default_factory=SystemClock)
    # netting, incoming credits, inquiries (gateway.sim.clearing_rounds, docs/clearing-link.md §4)
    #: answer BEPS packages ACSP and net them in rounds (off: ACSC, settled gross)
    netting: bool = False
    #: seconds between scheduled netting rounds; 0: only run_netting_round()
    netting_interval: float = 0.0
    #: seconds between a round's beps.netting and its beps.settle
    settle_delay_rounds: float = 0.5
    #: added to each round's first DbtSum: a clearing system that disagrees
    netting_skew: Decimal = Decimal(0)
    #: Rcvr of what the simulator originates (netting, incoming credits, inquiries)
    gateway_participant: str = "103100000019"
    #: seconds between the ccms.990 of a gateway ccms.314 and its ccms.315
    reply_delay: float = 0.2
    reply_text: str = "款项已入账 / credited to payee"
    # load tests (bench/README.md): a burst of answers, and counters readable from outside
    #: seconds after start at which every answer is withheld (None: never by schedule)
    withhold_after: float | None = None
    #: seconds the scheduled withholding lasts; then everything held goes out at once
    withhold_for: float = 40.0
    #: SIGUSR1 toggles withholding (the CLI: a process of its own; never in-process tests)
    withhold_signal: bool = False
    #: write ``stats`` as JSON here every ``stats_every`` seconds and on exit
    stats_path: Path | None = None
    stats_every: float = 5.0
    # bank drafts (gateway.sim.clearing_drafts, docs/bank-drafts.md §3)
    #: share of draft issue, settle and refund messages answered RJCT, drawn like payments'
    draft_reject_ratio: float = 0.0
    #: MsgTp → fen: that draft message is RJCT when its amount's fen are these (a test's
    #: trigger; Amount for issue and refund, SettleAmount for settle)
    draft_reject_fen: dict[str, int] = field(default_factory=dict)


class PublishRefused(Exception):
    """The broker answered a PUBLISH with a failure reason code (docs/architecture.md §9 "MQTT")."""


class _SimClient(PubackClient):
    """The PUBACK-aware client; a failure reason code becomes :class:`PublishRefused`."""

    async def publish_checked(self, topic: str, payload: bytes, properties: Properties) -> None:
        """QoS 1, not retained; returns after a successful PUBACK (docs/clearing-link.md §1)."""
        try:
            code = await self.publish_qos1(topic, payload, properties, BROKER_TIMEOUT_S)
        except TimeoutError:
            raise aiomqtt.MqttError("no PUBACK in time") from None
        if code is not None and code.is_failure:
            raise PublishRefused(str(code))


@dataclass(frozen=True)
class _Reply:
    """One signed reply as published: replayed byte for byte for a re-send."""

    payload: bytes
    msg_tp: str
    msg_id: str


@dataclass
class _Answer:
    """What was answered for one envelope MsgId (docs/clearing-link.md §1: never a second
    decision)."""

    reply_topic: str
    receipt: _Reply | None = None
    status: _Reply | None = None


def _new_stats() -> dict[str, int]:
    keys = (
        "received",
        "duplicates",
        "late_duplicates",
        "invalid",
        "schema_invalid",
        "receipts",
        "statuses",
        "settled",
        "rejected",
        "publish_refused",
        "withheld",
    )
    return dict.fromkeys(keys, 0)


class ClearingSimulator:
    """Receives the gateway's clearing messages and answers them (docs/clearing-link.md §2-§4)."""

    def __init__(self, config: ClearingSimConfig) -> None:
        if not 0.0 <= config.reject_ratio <= 1.0:
            raise ValueError("reject_ratio must be within 0..1")
        out_msg_id(config.participant, date(2000, 1, 1), 0)  # ValueError unless 12 digits
        self.config = config
        self.stats: dict[str, int] = _new_stats()
        self.msg_ids: MsgIdMemory[_Answer] = MsgIdMemory(
            config.dedupe_window, max_recent=config.remember
        )
        self._host, self._port = broker_address(config.broker_url, config.tls_context)
        self._schemas = _load_schemas(config.xsd_dir) if config.xsd_dir else {}
        self._parser = hardened_parser()
        self._client: _SimClient | None = None
        self._up = asyncio.Event()
        self._released = asyncio.Event()  # clear while answers are withheld
        self._released.set()
        self.holding = 0  # answers waiting for the release right now
        self._sessions = 0  # successful connections so far
        self._tasks: set[asyncio.Task[None]] = set()
        self._record: IO[str] | None = None
        # docs/clearing-link.md §3: MsgIds are participant + date + sequence; a per-start
        # base keeps a restarted simulator from reusing an earlier run's MsgIds
        self._seq = (int(time.time()) % 100_000) * 100_000
        self.rounds = ClearingRounds(
            config,
            self.stats,
            publish=lambda topic, payload, tp, mid: self._publish(topic, _Reply(payload, tp, mid)),
            spawn=self._spawn,
            next_msg_id=self._next_msg_id,
        )
        # docs/clearing-link.md §4, §6: netting rounds, incoming credits, inquiries and replies
        self.run_netting_round = self.rounds.run_netting_round
        self.inject_credit = self.rounds.inject_credit
        self.inject_inquiry = self.rounds.inject_inquiry
        self.replies_received = self.rounds.replies_received
        self.inquiries_received = self.rounds.inquiries_received
        self.drafts = ClearingDrafts(
            self.stats,
            seed=config.seed,
            reject_ratio=config.draft_reject_ratio,
            reject_fen=config.draft_reject_fen,
            reject_reasons=REJECT_REASONS,
            format_reject=FORMAT_REJECT,
        )
        #: docs/bank-drafts.md §3: the gateway's answers to presentments, by PrsntmtId
        self.draft_answers: dict[str, RecordedAnswer] = self.drafts.answers
        self.wait_draft_answer = self.drafts.wait_answer

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, subscribe and answer until cancelled; reconnects after a broker loss.

        ``ready`` is set each time the subscription is confirmed, after the
        first connection and after every reconnection.
        """
        self._open_record()
        self.rounds.start()
        self._start_load_test_hooks()

        async def connection(quiet: bool) -> str | None:
            sessions = self._sessions
            try:
                # docs/clearing-link.md §1: start clean once, then resume the session so
                # messages published while we were away are delivered
                await self._session(clean=self._sessions == 0, ready=ready)
            except aiomqtt.MqttError as exc:
                log.warning("clearing_sim_disconnected", error=str(exc))
            return None if self._sessions > sessions else "not connected"

        try:
            await keep_connected(connection, asyncio.Event(), RECONNECT_MIN_S, RECONNECT_MAX_S)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._close_record()
            if self.config.withhold_signal:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            self.write_stats()

    # -- load tests: withholding answers, counters for outside readers -------------

    @property
    def withholding(self) -> bool:
        """True while every answer is held back."""
        return not self._released.is_set()

    def withhold(self) -> None:
        """Hold back every answer from now on (they are still decided and signed)."""
        if not self.withholding:
            self._released.clear()
            log.info("clearing_sim_withholding")

    def release(self) -> None:
        """Send everything held back, all at once, and stop withholding."""
        if self.withholding:
            log.info("clearing_sim_releasing", held=self.holding)
            self._released.set()

    def toggle_withhold(self) -> None:
        """SIGUSR1: withhold if answering, release if withholding."""
        if self.withholding:
            self.release()
        else:
            self.withhold()

    def write_stats(self) -> None:
        """The counters as one JSON object at ``stats_path`` (atomically replaced)."""
        path = self.config.stats_path
        if path is None:
            return
        data = {
            **self.stats,
            "holding": self.holding,
            "withholding": self.withholding,
            "recent_msg_ids": self.msg_ids.recent_count,
            "at": time.time(),
        }
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.warning("clearing_sim_stats_unwritable", path=str(path), error=str(exc))

    def _start_load_test_hooks(self) -> None:
        c = self.config
        if c.withhold_signal:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.toggle_withhold)
        if c.withhold_after is not None:
            self._spawn(self._scheduled_withholding(c.withhold_after, c.withhold_for))
        if c.stats_path is not None:
            self._spawn(self._stats_loop(c.stats_every))

    async def _scheduled_withholding(self, after: float, hold: float) -> None:
        await asyncio.sleep(after)
        self.withhold()
        try:
            await asyncio.sleep(hold)
        finally:
            self.release()

    async def _stats_loop(self, every: float) -> None:
        while True:
            self.write_stats()
            await asyncio.sleep(every)

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
            await client.subscribe(f"{self.config.topic_prefix}/+/out", qos=1)
            self._client = client
            self._up.set()
            log.info("clearing_sim_ready", broker=self.config.broker_url, clean_start=clean)
            if ready is not None:
                ready.set()
            try:
                async for message in client.messages:
                    payload = message.payload
                    data = payload if isinstance(payload, bytes) else b""
                    self.receive(str(message.topic), data)
            finally:
                self._up.clear()
                self._client = None

    # -- inbound -----------------------------------------------------------------

    def receive(self, topic: str, data: bytes) -> None:
        """Handle one message from ``topic`` (sync: parse, verify, decide, schedule answers)."""
        self.stats["received"] += 1
        try:
            root = parse_message(data, self._parser)
            verified = verify_pinned(root, self.config.gateway_certs)
            env = parse_envelope(verified.signed_root)
        except (ValueError, GatewayError) as exc:
            self.stats["invalid"] += 1
            reason = exc.detail if isinstance(exc, GatewayError) else str(exc)
            log.warning("clearing_sim_dropped", topic=topic, reason=reason)
            self._write_record(topic, None, None, [], dup=False, valid=False, reason=reason)
            return

        received = self.config.clock.now()
        ids = transaction_ids(env.document) or draft_ids(env)
        seen = self.msg_ids.seen(env.msg_id)
        dup = seen != "new"
        if seen == "recent":
            self.stats["duplicates"] += 1
            log.info("clearing_sim_duplicate", msg_id=env.msg_id, msg_tp=env.msg_tp)
            answer = self.msg_ids.answer(env.msg_id)
            if answer is not None:
                self._write_record(topic, env.msg_id, env.msg_tp, ids, dup=True, valid=True)
                for reply in (answer.receipt, answer.status):
                    if reply is not None:
                        self._spawn(self._publish(answer.reply_topic, reply))
                return
        elif seen == "late":
            # past the window its answers are forgotten: decide again; decisions are
            # a pure function of the transaction, so the outcome is the same
            self.stats["duplicates"] += 1
            self.stats["late_duplicates"] += 1
            log.info("clearing_sim_late_duplicate", msg_id=env.msg_id, msg_tp=env.msg_tp)
        results, reason = self._decide(env, ids)
        if reason is not None:
            self.stats["schema_invalid"] += 1
            log.warning("clearing_sim_invalid_document", msg_id=env.msg_id, reason=reason)
        self._write_record(
            topic, env.msg_id, env.msg_tp, ids, dup=dup, valid=reason is None, reason=reason
        )
        answer = _Answer(reply_topic=_reply_topic(topic))
        self.msg_ids.remember(env.msg_id, answer)
        self._spawn(self._answer(answer, env, results, received))

    def _check_document(self, env: Envelope) -> str | None:
        """Why ``env``'s Document is not valid for its MsgTp (None: it is)."""
        ns, _name = PAYMENT_DOCUMENTS[env.msg_tp]
        if env.document.tag != f"{{{ns}}}Document":
            return f"{env.msg_tp} must carry a {ns.rsplit(':', 1)[-1]} Document"
        schema = self._schemas.get(ns)
        if schema is not None:
            try:
                schema.assertValid(etree.ElementTree(copy.deepcopy(env.document)))
            except etree.DocumentInvalid as exc:
                return f"schema: {exc}"[:200]
        try:
            if ns == NS_PACS008:
                parse_pacs008(env.document)
            elif ns == NS_PACS003:
                parse_pacs003(env.document)  # NbOfTxs / CtrlSum agree, without an xsd_dir too
        except ValueError as exc:
            return str(exc)
        return None

    def _decide(
        self, env: Envelope, ids: list[tuple[str | None, str | None]]
    ) -> tuple[list[TxResult] | None, str | None]:
        """Per-transaction results (None: receipt only) and any format error."""
        draft = self.drafts.decide(env)
        if draft is not None:
            return draft
        if env.msg_tp not in PAYMENT_DOCUMENTS:
            return None, None
        reason = self._check_document(env)
        if reason is not None:
            code, text = FORMAT_REJECT
            return [TxResult(tx, e2e, "RJCT", code, text) for e2e, tx in ids], reason
        return [self._decide_one(e2e, tx) for e2e, tx in ids], None

    def _decide_one(self, end_to_end: str | None, tx_id: str | None) -> TxResult:
        digest = hashlib.sha256(f"{self.config.seed}|{end_to_end}|{tx_id}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw < self.config.reject_ratio:
            code, text = REJECT_REASONS[digest[8] % len(REJECT_REASONS)]
            return TxResult(tx_id, end_to_end, "RJCT", code, text)
        return TxResult(tx_id, end_to_end, "ACSC")

    # -- outbound ----------------------------------------------------------------

    async def _answer(
        self,
        answer: _Answer,
        env: Envelope,
        results: list[TxResult] | None,
        received: datetime,
    ) -> None:
        """The ccms.990 after ``receipt_delay``, then the ccms.900 after ``settle_delay``."""
        self.rounds.note(env)  # a ccms.314/315 is recorded before its receipt goes out
        self.drafts.note(env, received)  # so is a presentment's answer
        if self.config.receipt_delay > 0:
            await asyncio.sleep(self.config.receipt_delay)
        receipt = build_receipt(env.msg_id, received)
        answer.receipt = self._signed(MSG_TP_RECEIPT, env, receipt)
        await self._publish(answer.reply_topic, answer.receipt)
        self.stats["receipts"] += 1
        if results is None:
            await self.rounds.after_receipt(env, answer.reply_topic)
            return
        results = self.rounds.statuses(env, results)  # ACSP when BEPS is netted
        if self.config.settle_delay > 0:
            await asyncio.sleep(self.config.settle_delay)
        msg_id = self._next_msg_id(env.work_date)
        name = _document_name(env.msg_tp)
        group = ("RJCT", FORMAT_REJECT[0]) if not results else (None, None)
        status = build_pacs002(
            msg_id,
            self.config.clock.now(),
            env.msg_id,
            name,
            results,
            group_status=group[0],
            group_reason_code=group[1],
        )
        answer.status = self._signed(MSG_TP_STATUS, env, status, msg_id)
        await self._publish(answer.reply_topic, answer.status)
        self.stats["statuses"] += 1
        self.rounds.accepted(env, results)  # into the round ledger once the ACSP is out
        if env.msg_tp in DRAFT_DOCUMENTS:
            self.drafts.counted(results)
        self.stats["settled"] += sum(1 for r in results if r.status != "RJCT")
        self.stats["rejected"] += sum(1 for r in results if r.status == "RJCT")

    def _next_msg_id(self, work_date: date) -> str:
        self._seq = (self._seq + 1) % 10**10
        return out_msg_id(self.config.participant, work_date, self._seq)

    def _signed(
        self, msg_tp: str, env: Envelope, document: etree._Element, msg_id: str | None = None
    ) -> _Reply:
        """A signed reply envelope to ``env``'s sender (docs/clearing-link.md §3)."""
        msg_id = msg_id or self._next_msg_id(env.work_date)
        root = build_envelope(
            msg_tp,
            msg_id,
            self.config.participant,
            env.sndr,
            self.config.clock.now(),
            env.work_date,
            document,
        )
        sign_enveloped(root, self.config.sign_key)
        return _Reply(serialize(root), msg_tp, msg_id)

    async def _publish(self, topic: str, reply: _Reply) -> None:
        """Publish QoS 1 with the MsgTp/MsgId user properties (docs/clearing-link.md §2).

        Retries over reconnects until a PUBACK arrives; a PUBACK with a
        failure reason code is counted and logged, not retried.
        """
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("MsgTp", reply.msg_tp), ("MsgId", reply.msg_id)]
        if self.withholding:
            self.stats["withheld"] += 1
            self.holding += 1
            try:
                await self._released.wait()
            finally:
                self.holding -= 1
        while True:
            await self._up.wait()
            client = self._client
            if client is None:
                await asyncio.sleep(RECONNECT_MIN_S)
                continue
            try:
                await client.publish_checked(topic, reply.payload, props)
            except PublishRefused as exc:
                self.stats["publish_refused"] += 1
                log.error(  # noqa: TRY400 - a broker refusal, not a crash: no traceback
                    "clearing_sim_publish_refused", topic=topic, msg_tp=reply.msg_tp, code=str(exc)
                )
                return
            except aiomqtt.MqttError as exc:
                log.warning("clearing_sim_publish_retry", topic=topic, error=str(exc))
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
            log.error("clearing_sim_answer_failed", error=repr(exc))

    # -- record ------------------------------------------------------------------

    def _open_record(self) -> None:
        if self.config.record_path is not None:
            self._record = self.config.record_path.open("a", encoding="utf-8")

    def _close_record(self) -> None:
        if self._record is not None:
            self._record.close()
            self._record = None

    def _write_record(
        self,
        topic: str,
        msg_id: str | None,
        msg_tp: str | None,
        ids: list[tuple[str | None, str | None]],
        *,
        dup: bool,
        valid: bool,
        reason: str | None = None,
    ) -> None:
        if self._record is None:
            return
        line = {
            "msg_id": msg_id,
            "msg_tp": msg_tp,
            "topic": topic,
            "end_to_end_ids": [e2e for e2e, _ in ids],
            "tx_ids": [tx for _, tx in ids],
            "dup": dup,
            "valid": valid,
            "reason": reason,
        }
        self._record.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._record.flush()


def _document_name(msg_tp: str) -> str:
    """The ccms.900's OrgnlMsgNmId: the answered message's Document (docs/clearing-link.md §4)."""
    if msg_tp in DRAFT_DOCUMENTS:
        return DRAFT_DOCUMENTS[msg_tp]
    return PAYMENT_DOCUMENTS[msg_tp][1]


def _reply_topic(topic: str) -> str:
    """``{prefix}/{engine}/out`` → ``{prefix}/{engine}/in`` (docs/clearing-link.md §2)."""
    return topic.removesuffix("/out") + "/in"


def _load_schemas(xsd_dir: Path) -> dict[str, etree.XMLSchema]:
    schemas = {}
    for ns, name in _XSD_FILES.items():
        path = xsd_dir / name
        if path.is_file():
            schemas[ns] = etree.XMLSchema(etree.parse(str(path), hardened_parser()))
    if NS_PACS008 not in schemas:
        raise ConfigError(f"{xsd_dir}: no {_XSD_FILES[NS_PACS008]} there")
    return schemas


# ------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway-sim clearing",
        description="Simulate the clearing systems (HVPS, BEPS, clearing centre) on MQTT.",
        epilog="gateway-sim clearing present --help: present a bank draft to the gateway"
        " as an agent bank and print its answer (docs/bank-drafts.md §3).",
    )
    add_broker_option(p)
    p.add_argument("--prefix", default="clearing", help="topic prefix (docs/clearing-link.md §2)")
    p.add_argument("--key", type=Path, required=True, help="clearing systems' signing key (PEM)")
    p.add_argument("--cert", type=Path, required=True, help="its certificate (PEM)")
    p.add_argument(
        "--gateway-cert",
        type=Path,
        action="append",
        required=True,
        help="pinned gateway clearing certificate (PEM); repeatable",
    )
    p.add_argument("--reject-ratio", type=float, default=0.0)
    p.add_argument("--receipt-delay", type=float, default=0.0, help="seconds before ccms.990")
    p.add_argument("--settle-delay", type=float, default=0.0, help="seconds before ccms.900")
    p.add_argument("--record", type=Path, help="append one JSON line per received message")
    p.add_argument("--xsd-dir", type=Path, help="validate Documents against these schemas")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--participant", default="000000000000", help="Sndr of the answers")
    p.add_argument("--client-id", default="clearing-sim")
    p.add_argument("--netting", action="store_true", help="answer BEPS ACSP and net in rounds")
    p.add_argument("--netting-interval", type=float, default=0.0, help="seconds between rounds")
    p.add_argument("--reply-delay", type=float, default=0.2, help="seconds before a ccms.315")
    p.add_argument("--gateway-participant", default="103100000019", help="Rcvr of injected msgs")
    p.add_argument(
        "--withhold-after",
        type=float,
        help="seconds after start: withhold every answer (load tests; SIGUSR1 toggles too)",
    )
    p.add_argument(
        "--withhold-for", type=float, default=40.0, help="then release them all after this"
    )
    p.add_argument("--stats-file", type=Path, help="write the counters here as JSON")
    p.add_argument("--stats-every", type=float, default=5.0, help="seconds between writes")
    p.add_argument(
        "--draft-reject-ratio",
        type=float,
        default=0.0,
        help="share of draft issue/settle/refund messages answered RJCT",
    )
    p.add_argument(
        "--draft-reject-fen",
        type=_reject_fen,
        action="append",
        default=[],
        metavar="[KIND=]NN",
        help="answer RJCT a draft message (KIND issue, settle or refund; all without one)"
        " whose amount ends in NN fen (SettleAmount for settle); repeatable",
    )
    add_tls_options(p)
    return p


def _reject_fen(text: str) -> dict[str, int]:
    try:
        return parse_reject_fen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load_keys(
    key: Path, cert: Path, gateway_certs: Sequence[Path]
) -> tuple[SigningKey, tuple[x509.Certificate, ...]]:
    """The clearing systems' signing key (passphrase in ``GATEWAY_SIM_KEY_PASSPHRASE``) and
    the pinned gateway certificates, from ``--key``, ``--cert`` and ``--gateway-cert``.

    ``ConfigError`` naming the file that cannot be read.
    """
    passphrase = os.environ.get("GATEWAY_SIM_KEY_PASSPHRASE")
    signing = load_signing_key(key, cert, passphrase.encode() if passphrase else None)
    certs: list[x509.Certificate] = []
    for path in gateway_certs:
        try:
            certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError):
            raise ConfigError(f"{path}: not a readable PEM certificate file") from None
    return signing, tuple(certs)


def _config(args: argparse.Namespace) -> ClearingSimConfig:
    key, certs = load_keys(args.key, args.cert, args.gateway_cert)
    return ClearingSimConfig(
        broker_url=args.broker,
        sign_key=key,
        gateway_certs=certs,
        topic_prefix=args.prefix,
        reject_ratio=args.reject_ratio,
        receipt_delay=args.receipt_delay,
        settle_delay=args.settle_delay,
        record_path=args.record,
        xsd_dir=args.xsd_dir,
        seed=args.seed,
        participant=args.participant,
        client_id=args.client_id,
        netting=args.netting,
        netting_interval=args.netting_interval,
        reply_delay=args.reply_delay,
        gateway_participant=args.gateway_participant,
        tls_context=broker_tls(args),
        withhold_after=args.withhold_after,
        withhold_for=args.withhold_for,
        withhold_signal=True,
        stats_path=args.stats_file,
        stats_every=args.stats_every,
        draft_reject_ratio=args.draft_reject_ratio,
        draft_reject_fen={k: v for one in args.draft_reject_fen for k, v in one.items()},
    )


def run_clearing_sim(argv: Sequence[str]) -> int:
    """``gateway-sim clearing [options]``: run until SIGINT/SIGTERM; 0 on a clean stop.

    ``gateway-sim clearing present ...`` presents one draft instead (``gateway.sim.present``).
    """
    if list(argv[:1]) == ["present"]:
        from gateway.sim.present import run_present

        return run_present(argv[1:])
    args = _parser().parse_args(list(argv))
    return run_until_signalled("gateway-sim clearing", lambda: ClearingSimulator(_config(args)))


__all__ = [
    "FORMAT_REJECT",
    "PAYMENT_DOCUMENTS",
    "REJECT_REASONS",
    "ClearingSimConfig",
    "ClearingSimulator",
    "PublishRefused",
    "load_keys",
    "run_clearing_sim",
]
