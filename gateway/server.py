"""The Gateway: builds the live objects from a Config and runs them (docs/architecture.md §8, habit
3).

Collaborators (clock, store, link) can be injected, so tests run the real
daemon with a frozen clock.  ``serve(shutdown_trigger)`` starts everything,
reports readiness through an event (never a sleep), waits for the trigger and
drains in a fixed, time-bounded order: stop accepting and finish in-flight
frames → stop engines → close the link → flush and close the journal → stop
the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from gateway import __version__, preflight
from gateway.builders import (
    build_clock,
    build_router,
    build_schedules,
    build_store,
    desk_setup,
    listener_spec,
    pipeline_settings,
    read_denied,
    read_passphrase,
)
from gateway.clearing.link import ClearingLink, LinkConfig
from gateway.clearing.receipts import ReceiptHandler
from gateway.clearing.swift import swift_in_topic
from gateway.clearing.swift_receipts import SwiftReceiptHandler
from gateway.clock import Clock
from gateway.config import Config, ListenerConfig
from gateway.correspondence.service import Correspondence
from gateway.correspondence.swift_credits import SwiftCreditIntake
from gateway.desk import open_desk
from gateway.draftsvc.service import Drafts
from gateway.engines.runner import EngineRunner, EngineSettings, Redelivery
from gateway.engines.swift_runner import SwiftEngineSettings, SwiftRunner
from gateway.journal.audit import audit_once
from gateway.journal.deferred import DeferredWrites
from gateway.journal.ops_records import Exchange
from gateway.journal.records import NewOutbound, OutboundRecord, OutState
from gateway.journal.retention import archive_once
from gateway.journal.store import Store
from gateway.keys import expiry
from gateway.keys.enrolment import Registry
from gateway.keys.ring import KeyRing
from gateway.model import Engine
from gateway.net.admission import Admission
from gateway.net.listener import Listener
from gateway.net.session import ByteBudget
from gateway.net.tls import SwappableContext
from gateway.ops import metrics, sdnotify
from gateway.ops.actions import ACTIONS, manual_action
from gateway.ops.admin import AdminServer, Peer
from gateway.ops.gauges import refresh_journal_gauges
from gateway.ops.health import HealthServer, HealthState, Lifecycle
from gateway.ops.metrics_merge import FrontMetrics
from gateway.ops.review import REVIEW_OPS, ReviewDesk, review_command
from gateway.ops.views import VIEWS, journal_view
from gateway.pipeline import Pipeline, route_transfer
from gateway.procs.fronts import FrontDeskPool, Fronts
from gateway.routing.directory import Directory
from gateway.routing.router import Router
from gateway.routing.settlement_paths import SettlementPath
from gateway.screening.current import CurrentLists
from gateway.screening.gate import Screener
from gateway.workers import WorkerPool

# The builders live in gateway.builders (front processes use them too); these names stay
# importable from here.
__all__ = [
    "Gateway",
    "build_clock",
    "build_router",
    "build_schedules",
    "build_store",
    "check_config",
    "desk_setup",
    "read_denied",
    "read_passphrase",
]

log = structlog.get_logger("gateway.server")

DRAIN_TIMEOUT = 20.0


def check_config(cfg: Config) -> str | None:
    """``gatewayd --check-config``: every file check of ``Gateway.start``, in its order,
    writing nothing; the desk is built inline as each worker would build it.

    Returns a note for the operator (the dev PKI start would generate), or None.
    """
    preflight.prepare_files(cfg, build_router, create=False)
    if preflight.dev_pki_pending(cfg):
        return f"a dev PKI will be generated in {cfg.keys_dir} at start"
    preflight.prepare_keys(cfg, build_clock(cfg).now())
    open_desk(desk_setup(cfg))
    return None


class AdmissionGate:
    """Connection admission for the listeners (per-address limits and bans)."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def admit(self, ip: str) -> str | None:
        d = self._admission.on_connect(ip, time.monotonic())
        if d.ok:
            return None
        reason = d.reason or "refused"
        metrics.REFUSALS.labels("connect", reason).inc()
        return reason

    def release(self, ip: str) -> None:
        self._admission.on_disconnect(ip)

    def banned(self, ip: str) -> bool:
        return self._admission.banned(ip, time.monotonic())


@dataclass
class Bound:
    """Where the daemon listens once started (ports resolved when configured as 0)."""

    listeners: dict[str, tuple[str, int]] = field(default_factory=dict)
    metrics: tuple[str, int] | None = None

    def as_json(self) -> str:
        return json.dumps(
            {"listeners": self.listeners, "metrics": self.metrics, "pid": os.getpid()}
        )


def swift_link_config(cfg: Config) -> LinkConfig:
    """The SWIFT link (docs/foreign-currency.md §4): the clearing link's transport with its
    own broker (default the clearing broker), client id, session and topic ``swift/in``."""
    return LinkConfig(
        url=cfg.swift_broker,
        client_id=cfg.swift_client_id,
        subscriptions=(swift_in_topic(cfg.swift.topic_prefix),),
        shared=cfg.clearing.shared,
        session_expiry=cfg.swift.session_expiry,
        max_inflight=cfg.clearing.max_inflight,
        publish_timeout=cfg.clearing.publish_timeout,
        name="swift",
    )


class Gateway:
    """The daemon's object graph and lifecycle."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock or build_clock(cfg)
        self.store: Store = store or build_store(cfg)
        self.ready = asyncio.Event()
        self.bound = Bound()
        self.health = HealthState(
            lifecycle=Lifecycle.STARTING,
            checks={"journal": False, "clearing_link": False},
            info=self._info,
        )
        self._pool: WorkerPool | None = None
        self._router: Router | None = None
        self._listeners: list[Listener] = []
        self._fronts: Fronts | None = None
        self.front_metrics = FrontMetrics()
        self.exchanges: DeferredWrites[Exchange] = DeferredWrites(
            self.store.record_exchanges, self.store.record_exchange
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._runners: dict[Engine, EngineRunner] = {}
        self._link: ClearingLink | None = None
        self._swift_link: ClearingLink | None = None  # docs/foreign-currency.md §4
        self._health_server: HealthServer | None = None
        self._admin: AdminServer | None = None
        self._reload_lock = asyncio.Lock()
        self._tls: dict[str, tuple[str, SwappableContext]] = {}
        self._ring_changed = asyncio.Event()
        self._denied: frozenset[str] = frozenset()  # checked right after each TLS handshake
        self._ring: KeyRing
        self._registry: Registry
        self.correspondence: Correspondence | None = None
        self.drafts: Drafts

    # -- accessors used by collaborators (always the current version) ------
    def pool(self) -> WorkerPool:
        assert self._pool is not None  # noqa: S101 - set in start()
        return self._pool

    def router(self) -> Router:
        assert self._router is not None  # noqa: S101 - set in start()
        return self._router

    async def clearing_link_up(self) -> None:
        """Wait until the clearing link is connected and subscribed: READY means
        CorpLink is served, while inbound clearing traffic flows only from here on
        (a first start has no broker session queueing for it yet, docs/clearing-link.md §1)."""
        assert self._link is not None  # noqa: S101 - set in start()
        await self._link.wait_connected()

    def _wake(self, engine: Engine) -> None:
        runner = self._runners.get(engine)
        if runner is not None:
            runner.wake()

    async def _republish(self, rec: OutboundRecord) -> bool:
        """``gatewayctl resend``: publish a journaled message again under its MsgId."""
        runner = self._runners.get(rec.engine)
        if runner is None:
            return False
        return await runner.publish(
            rec.msg_id,
            rec.msg_tp,
            rec.topic,
            rec.payload,
            resend=rec.state is not OutState.PENDING,
            seen=rec.state,  # a forced re-send of an ACKED message is meant
        )

    async def _publish_ccms(self, out: NewOutbound) -> bool:
        """Publish a journaled ccms.314/315 through its engine's runner (throttle, in-flight)."""
        runner = self._runners.get(out.engine)
        if runner is None:
            return False
        return await runner.publish(out.msg_id, out.msg_tp, out.topic, out.payload, resend=False)

    def _receipted(self, msg_id: str) -> None:
        for runner in self._runners.values():
            runner.receipted(msg_id)

    def _info(self) -> dict[str, str]:
        return {
            "version": __version__,
            "node": self.cfg.bank.node,
            "environment": self.cfg.environment,
            "business_clock": self.clock.now().isoformat(timespec="milliseconds"),
        }

    # -- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        """Check, then take the resources, then run (docs/operations.md, "Start-up checks").

        The file checks are ``gateway.preflight``'s, the same that
        ``gatewayd --check-config`` runs; then the workers build their desks,
        the journal opens and every socket binds, all before any background
        task starts, so a failure leaves nothing running and logs nothing but
        the one line ``gatewayd`` prints.
        """
        cfg = self.cfg
        self._set_lifecycle(Lifecycle.STARTING)
        self._router = preflight.prepare_files(cfg, build_router, create=True)
        metrics.DIRECTORY_CODES.set(len(self._router.directory))
        self.screening = CurrentLists(cfg.screening)  # a bad list file stops the start here
        prepared = preflight.prepare_keys(cfg, self.clock.now())
        self._ring, self._registry = prepared.ring, prepared.registry
        self._pool = self._new_pool()
        await self._pool.start()
        await preflight.open_journal(cfg, self.store)
        self.health.checks["journal"] = True

        self._health_server = HealthServer(
            self.health,
            cfg.observability.metrics_bind,
            cfg.observability.metrics_port,
            registry=self.front_metrics if cfg.workers.fronts > 0 else metrics.REGISTRY,
        )
        self.bound.metrics = await preflight.bind(
            "observability.metrics_port",
            cfg.observability.metrics_bind,
            cfg.observability.metrics_port,
            self._health_server.start,
        )

        link_cfg = LinkConfig(
            url=cfg.clearing.url,
            client_id=cfg.client_id,
            subscriptions=(f"{cfg.clearing.topic_prefix}/+/in",),
            shared=cfg.clearing.shared,
            session_expiry=cfg.clearing.session_expiry,
            max_inflight=cfg.clearing.max_inflight,
            publish_timeout=cfg.clearing.publish_timeout,
        )
        corr = Correspondence(
            cfg, self.store, self.pool, self.clock, lambda: self._registry, self._publish_ccms
        )
        self.correspondence = corr
        self.drafts = Drafts(
            cfg,
            self.store,
            self.pool,
            self.clock,
            self.router,
            read_passphrase(cfg),
            self._publish_ccms,
            self._republish,
        )
        receipts = ReceiptHandler(
            self.store,
            self.pool,
            self.clock,
            on_receipt=[self._receipted],
            correspondence=corr.inbound,
            topic_prefix=cfg.clearing.topic_prefix,
            drafts=self.drafts.link,
        )
        self._link = ClearingLink(link_cfg, receipts)
        # SWIFT payments travel on their own link (the bank's SWIFT interface), not the
        # clearing link (docs/foreign-currency.md §4)
        self._runners = {
            e: self._make_runner(e, self._link) for e in Engine if e is not Engine.SWIFT
        }
        if cfg.swift_enabled:
            self._swift_link = ClearingLink(
                swift_link_config(cfg),
                SwiftReceiptHandler(
                    self.store,
                    self.pool,
                    self.clock,
                    on_receipt=[self._receipted],
                    credits=SwiftCreditIntake(
                        self.store,
                        self.clock,
                        corr.accounts,
                        lambda: self.screening.lists,
                        corr.checker.wake,
                    ),
                ),
            )
            self._runners[Engine.SWIFT] = self._make_swift_runner(self._swift_link)
            metrics.create_swift_series()  # the engine runs: its series exist, at 0
            self.health.set_advisory("swift_link", False)

        self.admission = Admission(cfg.admission)
        self._denied = read_denied(cfg)
        if cfg.workers.fronts > 0:
            await self._start_fronts(corr)
        else:
            await self._start_listeners(prepared.tls, corr)

        self._admin = AdminServer(cfg.admin_socket, self._admin_command, cfg.admin.group)
        try:
            await self._admin.start()
        except OSError as exc:
            raise preflight.bind_error("admin.socket", str(cfg.admin_socket), exc) from None

        # Everything is in place: from here on, tasks run.
        self._spawn(self._link.run(), "clearing_link")
        for name, coro in corr.tasks().items():
            self._spawn(coro, name)
        self._spawn(self.drafts.link.run(), "drafts")
        self._spawn(self._watch_link(), "link_watch")
        for engine, runner in self._runners.items():
            self._spawn(runner.run(), f"engine_{engine.value.lower()}")
        clearing_runners: dict[Engine, EngineRunner] = {
            e: r for e, r in self._runners.items() if e is not Engine.SWIFT
        }
        self._spawn(
            Redelivery(
                clearing_runners, self.store, self._link, self.clock, cfg.clearing.receipt_timeout
            ).run(),
            "redelivery",
        )
        if self._swift_link is not None:
            swift_runners = {Engine.SWIFT: self._runners[Engine.SWIFT]}
            self._spawn(self._swift_link.run(), "swift_link")
            self._spawn(self._watch_swift_link(self._swift_link), "swift_link_watch")
            self._spawn(
                Redelivery(
                    swift_runners, self.store, self._swift_link, self.clock,
                    cfg.swift.receipt_timeout,
                ).run(),
                "swift_redelivery",
            )  # fmt: skip
        self._spawn(self._release_held(), "release_held")
        if cfg.journal.archive_interval > 0:
            self._spawn(self._archive_journal(), "journal_archive")
        if cfg.journal.audit_interval > 0:
            self._spawn(self._audit_chain(), "audit_chain")
        self._spawn(self._watchdog(), "watchdog")
        self._spawn(self._key_schedule(), "key_schedule")
        self._spawn(self._admission_gauges(), "admission_gauges")
        self._spawn(refresh_journal_gauges(self.store), "journal_gauges")
        self._publish_expiry()
        self._set_lifecycle(Lifecycle.READY)
        self.ready.set()
        sdnotify.ready()
        sdnotify.status("serving")
        if self.drafts.created is not None:
            log.info("draft_key_created", key_id=self.drafts.created)
        if self.drafts.disabled is not None:
            log.warning("drafts_disabled", reason=self.drafts.disabled)
        log.info(
            "started",
            listeners=self.bound.listeners,
            metrics=self.bound.metrics,
            workers=cfg.workers.processes,
            business_clock=self.clock.now().isoformat(),
            config=list(cfg.sources),
        )

    def _new_pool(self) -> WorkerPool:
        """The core's desk: with fronts and no worker processes, the fronts run it."""
        cfg = self.cfg
        if cfg.workers.fronts > 0 and cfg.workers.processes == 0:
            return FrontDeskPool(desk_setup(cfg), lambda: self._fronts)
        return WorkerPool(desk_setup(cfg), cfg.workers.processes)

    async def _start_listeners(
        self, contexts: dict[str, ssl.SSLContext], corr: Correspondence
    ) -> None:
        """The single-process mode: this process serves the clients itself."""
        cfg = self.cfg
        gate = AdmissionGate(self.admission)
        budget = ByteBudget(cfg.load.max_body_bytes)
        pipeline = Pipeline(
            self.clock,
            self.pool,
            self.store,
            self.router,
            self._wake,
            pipeline_settings(cfg),
            self.admission,
            corr.corplink,
            keep=self.exchanges.add,
            drafts=self.drafts.corplink,
            swift=cfg.swift_enabled,
            screener=Screener(lambda: self.screening.settings, lambda: self.screening.lists),
        )
        for i, lc in enumerate(cfg.listeners):
            ctx = None
            if lc.tls:
                holder = SwappableContext(contexts[lc.name])
                self._tls[lc.name] = (lc.client_cert, holder)
                ctx = holder.listener_context
            spec = listener_spec(lc, ctx)
            listener = Listener(
                spec, pipeline.handle, pipeline.bad_frame, gate, budget, self._is_denied
            )
            self._listeners.append(listener)
            self.bound.listeners[lc.name] = await preflight.bind(
                f"listeners[{i}] ({lc.name})", lc.bind, lc.port, listener.start
            )

    async def _start_fronts(self, corr: Correspondence) -> None:
        """``workers.fronts`` processes serve the clients (docs/architecture.md §1)."""
        cfg = self.cfg
        fronts = Fronts(
            cfg,
            self.clock,
            self.store,
            lambda: self.admission,
            lambda: corr.corplink,
            self._wake,
            drafts=lambda: self.drafts.corplink,
            on_metrics=self.front_metrics.update,
            on_gone=self.front_metrics.forget,
            keep_exchange=self.exchanges.add,
            screening=self.screening.versions,
        )
        self._fronts = fronts
        for i, lc in enumerate(cfg.listeners):

            async def bind(lc: ListenerConfig = lc) -> tuple[str, int]:
                return fronts.bind(lc)

            self.bound.listeners[lc.name] = await preflight.bind(
                f"listeners[{i}] ({lc.name})", lc.bind, lc.port, bind
            )
        await fronts.start()

    # -- keys: TLS contexts from the ring, rotation, expiry metrics ----------
    def _load_ring(self) -> KeyRing:
        return preflight.load_ring(self.cfg)

    def _is_denied(self, fingerprint: str) -> bool:
        return fingerprint in self._denied

    def _tls_context(self, client_cert: str, ring: KeyRing) -> ssl.SSLContext:
        """A fully built and checked server context for the TLS key active now."""
        return preflight.tls_context(self.cfg, client_cert, ring, self.clock.now())

    def _swap_tls(self, ring: KeyRing) -> None:
        """Build every new context first; swap only when all built (a bad pair changes nothing)."""
        built = {name: self._tls_context(mode, ring) for name, (mode, _) in self._tls.items()}
        for name, ctx in built.items():
            self._tls[name][1].swap(ctx)

    def _publish_expiry(self) -> None:
        keys = self.cfg.resolved_keys()
        try:
            report = expiry.collect(
                self._ring,
                [keys.path(p) for p in keys.client_ca],
                [keys.path(p) for p in keys.crls],
                now=self.clock.now(),
            )
            expiry.publish(report)
        except (OSError, ValueError) as exc:
            log.warning("expiry_metrics_failed", error=str(exc)[:200])

    def _active_serials(self) -> dict[str, str]:
        """Each role's active certificate serial, in hex as ``gatewayctl keys list`` shows it."""
        now = self.clock.now()
        return {r: f"{self._ring.current(r, now).cert.serial_number:x}" for r in self._ring.roles}

    async def _key_schedule(self) -> None:
        """At each activation or overlap end: new TLS contexts for new handshakes, metrics."""
        rate = getattr(self.clock, "rate", 1.0)
        active = self._active_serials()
        while True:
            now = self.clock.now()
            nxt = self._ring.next_change(now)
            wait = 3600.0 if nxt is None else max(0.05, (nxt - now).total_seconds() / rate)
            # until the next activation/overlap end, or at once when a reload
            # brought a new ring (it may hold a sooner change)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, 3600.0)):
                    await self._ring_changed.wait()
            self._ring_changed.clear()
            try:
                self._swap_tls(self._ring)
                if self._fronts is not None:
                    self._fronts.broadcast("tls")
                previous, active = active, self._active_serials()
                # a reload that changed no active version (most do) rotated nothing
                rotated = {r: s for r, s in active.items() if previous.get(r) != s}
                if rotated:
                    log.info("keys_rotated", **rotated)
            except (OSError, ValueError, ssl.SSLError) as exc:
                metrics.KEY_SWAP_FAILURES.inc()
                log.warning("tls_swap_failed", error=str(exc)[:200])
            self._publish_expiry()

    def _make_runner(self, engine: Engine, link: ClearingLink) -> EngineRunner:
        cfg = self.cfg
        ec = {
            Engine.INTRA: cfg.engines.intra,
            Engine.HVPS: cfg.engines.hvps,
            Engine.BEPS: cfg.engines.beps,
        }[engine]
        beps = cfg.engines.beps
        settings = EngineSettings(
            engine=engine,
            participant=cfg.bank.participant,
            topic_prefix=cfg.clearing.topic_prefix,
            rate=ec.rate,
            max_inflight=ec.max_inflight,
            max_items=beps.max_items if engine is Engine.BEPS else 1,
            max_wait=beps.max_wait if engine is Engine.BEPS else 0.0,
            cutoff_hour=beps.cutoff.hour,
            cutoff_minute=beps.cutoff.minute,
        )
        return EngineRunner(settings, self.store, self.pool, link, self.clock)

    def _make_swift_runner(self, link: ClearingLink) -> SwiftRunner:
        """The SWIFT engine (docs/foreign-currency.md §4), on its own link; the settlement
        path is asked of the routing data in force when each message is built."""
        cfg = self.cfg
        ec = cfg.engines.swift
        settings = EngineSettings(
            engine=Engine.SWIFT,
            participant=cfg.bank.participant,
            topic_prefix=cfg.swift.topic_prefix,
            rate=ec.rate,
            max_inflight=ec.max_inflight,
        )
        fx = SwiftEngineSettings(
            our_bic=cfg.bank.bics[0],
            minor_units=dict(cfg.fx.currencies),
            topic_prefix=cfg.swift.topic_prefix,
        )

        def path_for(ccy: str, payee_bic: str) -> SettlementPath:
            return self.router().settlement_path(ccy, payee_bic)

        return SwiftRunner(settings, fx, self.store, self.pool, link, self.clock, path_for)

    async def _watch_swift_link(self, link: ClearingLink) -> None:
        """Wake the SWIFT engine whenever its link comes up, and report the link on
        ``/readyz`` under ``advisory``.  Not a readiness check: with the SWIFT interface
        away the gateway still takes every other payment (ops/health.py, HealthState)."""
        while True:
            await link.wait_connected()
            self.health.set_advisory("swift_link", True)
            self._wake(Engine.SWIFT)
            await link.wait_disconnected()
            self.health.set_advisory("swift_link", False)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    @staticmethod
    def _task_done(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("task_failed", task=task.get_name(), error=repr(task.exception()))

    async def _watch_link(self) -> None:
        assert self._link is not None  # noqa: S101
        while True:
            await self._link.wait_connected()
            self.health.checks["clearing_link"] = True
            for r in self._runners.values():
                r.wake()
            await self._link.wait_disconnected()
            self.health.checks["clearing_link"] = False

    async def _release_held(self) -> None:
        """HELD → QUEUED at the opening, each engine at its own throttled rate
        (``engines.<engine>.release_rate`` per second; docs/routing-rules.md §4: no
        thundering herd)."""
        rates = {
            Engine.INTRA: self.cfg.engines.intra.release_rate,
            Engine.HVPS: self.cfg.engines.hvps.release_rate,
            Engine.BEPS: self.cfg.engines.beps.release_rate,
        }
        if self._swift_link is not None:  # docs/foreign-currency.md §2: the SWIFT window
            rates[Engine.SWIFT] = self.cfg.engines.swift.release_rate
        while True:
            now = self.clock.now()
            for engine, rate in rates.items():
                if await self.store.release_held(now, max(1, int(rate)), engine):
                    self._wake(engine)
            await asyncio.sleep(1.0)

    async def _admission_gauges(self) -> None:
        """Bounded-state gauges of admission, for the flood dashboards."""
        while True:
            snap = self.admission.snapshot()
            for what in ("tracked_addresses", "tracked_corps", "active_bans", "open_connections"):
                metrics.ADMISSION.labels(what).set(snap.get(what, 0))
            await asyncio.sleep(5.0)

    async def _archive_journal(self) -> None:
        """Retention (docs/protocol.md §7): archive, then remove, old requests whose items are
        final."""
        j = self.cfg.journal
        target: Path | str = j.dsn if j.backend == "postgres" else self.cfg.journal_path
        while True:
            await asyncio.sleep(j.archive_interval)
            before = self.clock.now() - timedelta(days=j.retention_days)
            try:
                res = await archive_once(
                    j.backend, target, self.cfg.archive_path, before=before, batch=j.archive_batch
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # nothing is removed before it is archived; the next pass retries
                log.exception("journal_archive_failed")
                continue
            if res.path is not None:
                log.info("journal_archived", file=str(res.path), **res.counts())

    async def _audit_chain(self) -> None:
        """The daily audit: verify the journal's chain and record its head outside it
        (file, log line, metric; ``gateway.journal.audit``).  First run at start."""
        j = self.cfg.journal
        target: Path | str = j.dsn if j.backend == "postgres" else self.cfg.journal_path
        while True:
            await audit_once(
                j.backend, target, self.cfg.archive_path, self.cfg.bank.node, self.clock.now()
            )
            await asyncio.sleep(j.audit_interval)

    async def _watchdog(self) -> None:
        interval = sdnotify.watchdog_interval()
        if not interval:
            return
        while True:
            sdnotify.watchdog()
            await asyncio.sleep(interval)

    def _set_lifecycle(self, state: Lifecycle) -> None:
        self.health.lifecycle = state
        for s in Lifecycle:
            metrics.LIFECYCLE.labels(s.value).set(1 if s is state else 0)

    async def serve(self, shutdown_trigger: Callable[[], Awaitable[Any]]) -> None:
        """Start, wait for the trigger, then drain (docs/architecture.md §8: hypercorn's
        shutdown_trigger)."""
        try:
            await self.start()
        except BaseException:
            # A failed start undoes what it took, quietly: the caller reports
            # the one cause (gatewayd prints one line), not a drain.
            with contextlib.suppress(Exception):
                await self.shutdown()
            raise
        try:
            await shutdown_trigger()
        finally:
            await self.shutdown()

    async def shutdown(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """The fixed drain order, bounded in time (docs/architecture.md §7 Operations)."""
        if self.health.lifecycle is Lifecycle.STOPPED:
            return
        started = self.ready.is_set()  # else: undoing a failed start, without log lines
        self._set_lifecycle(Lifecycle.DRAINING)
        sdnotify.stopping()
        if started:
            log.info("draining")
        await asyncio.gather(
            *(ln.drain(timeout) if started else ln.close() for ln in self._listeners),
            return_exceptions=True,
        )
        if self._fronts is not None:  # they finish their requests while the journal is open
            await (self._fronts.drain(timeout) if started else self._fronts.close())
        if self._admin is not None:
            await self._admin.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._link is not None:
            with contextlib.suppress(Exception):
                await self._link.close()
        if self._swift_link is not None:
            with contextlib.suppress(Exception):
                await self._swift_link.close()
        if self.correspondence is not None:
            with contextlib.suppress(Exception):
                await self.correspondence.close()
        with contextlib.suppress(Exception):
            await self.exchanges.close()
        await self.store.close()
        if self._pool is not None:
            await self._pool.close()
        if self._health_server is not None:
            await self._health_server.close()
        screening: CurrentLists | None = getattr(self, "screening", None)
        if screening is not None:  # a stopped gateway holds no lists: their series go too
            screening.swap(screening.settings, None)
        self._set_lifecycle(Lifecycle.STOPPED)
        if started:
            log.info("stopped")

    # -- reload and admin -------------------------------------------------
    async def reload(self, *, force: bool = False) -> dict[str, Any]:
        """SIGHUP / gatewayctl reload: directory, registry, trust, keys, draft keys,
        screening lists; atomic.  ``force`` (``gatewayctl reload --force``) accepts a
        screening list that shrank more than the guard allows (docs/foreign-currency.md §5)."""
        async with self._reload_lock:
            sdnotify.reloading()
            try:
                new_dir = Directory.load(self.cfg.routing.directory)
                new_router = build_router(self.cfg, new_dir)  # calendars and windows too
                old = self.router()
                # the directory and the settlement-path files (docs/foreign-currency.md §3)
                old.check_replacement(new_router, max_drop=self.cfg.routing.max_drop_ratio)
                new_ring = self._load_ring()
                new_tls = {
                    name: self._tls_context(mode, new_ring) for name, (mode, _) in self._tls.items()
                }
                if self._fronts is not None:  # the fronts build theirs; check them here first
                    preflight.listener_contexts(self.cfg, new_ring, self.clock.now())
                new_registry = Registry.load(desk_setup(self.cfg).enrolment)
                new_denied = read_denied(self.cfg)
                new_lists = self.screening.prepare(self.cfg.screening, force=force)
                new_draft_keys = await asyncio.to_thread(
                    self.drafts.open_keys, read_passphrase(self.cfg), self.clock.now()
                )
                new_pool = self._new_pool()
                await new_pool.start()
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old version
                log.warning("reload_refused", reason=str(exc)[:300])
                metrics.RELOADS.labels("refused").inc()
                sdnotify.ready()
                return {"ok": False, "reason": str(exc)[:300]}
            old_pool, self._pool = self._pool, new_pool
            self._router = new_router
            self._registry = new_registry
            self._denied = new_denied
            self.screening.swap(self.cfg.screening, new_lists)
            self.drafts.keys = new_draft_keys
            self._ring = new_ring
            self._ring_changed.set()
            for name, ctx in new_tls.items():
                self._tls[name][1].swap(ctx)
            if self._fronts is not None:
                # the fronts load the lists themselves: the version checked here, forced or not
                self._fronts.broadcast("reload", self.cfg, force, self.screening.versions())
            self._publish_expiry()
            if old_pool is not None:
                await old_pool.close()
            sdnotify.ready()
            cal = new_router.calendar
            metrics.RELOADS.labels("applied").inc()
            metrics.DIRECTORY_CODES.set(len(new_dir))
            log.info(
                "reloaded", directory=new_dir.version, codes=len(new_dir), calendar=cal.version
            )
            return {
                "ok": True,
                "directory": new_dir.version,
                "codes": len(new_dir),
                "calendar": cal.version,
                "screening": self.screening.versions(),
            }

    async def _admin_command(self, cmd: dict[str, Any], peer: Peer) -> dict[str, Any]:
        op = cmd.get("op")
        if op == "status":
            rows = await self.store.summary()
            return {
                "ok": True,
                "lifecycle": self.health.lifecycle.value,
                "checks": self.health.checks,
                **self._info(),
                "listeners": self.bound.listeners,
                "fronts": self._fronts.pids() if self._fronts is not None else [],
                "items": [
                    {
                        "engine": r.engine.value if r.engine else None,
                        "state": r.state.value,
                        "reason": r.reason_code,
                        "count": r.count,
                    }
                    for r in rows
                ],
            }
        if op == "reload":
            return await self.reload(force=bool(cmd.get("force", False)))
        if op in VIEWS:  # read-only journal views for operations (gateway/ops/views.py)
            return await journal_view(
                op, cmd, self.store, self.router(), self.clock, self.cfg.archive_path
            )
        if op in REVIEW_OPS:  # four-eyes review of screened payments (gateway/ops/review.py)
            swift = self.cfg.swift_enabled
            desk = ReviewDesk(
                self.store,
                lambda transfer, now: route_transfer(self.router(), transfer, now, swift=swift),
                self.clock,
                self._wake,
                lambda: self.screening.settings.review_group,
                self.cfg.environment,
            )
            return await review_command(op, cmd, peer, desk)
        if op in ACTIONS:  # manual actions, journaled with who and why (gateway/ops/actions.py)
            return await manual_action(
                op, cmd, peer, self.store, self.router(), self.clock, self._wake, self._republish
            )
        return {"ok": False, "reason": f"unknown op {op!r}"}
