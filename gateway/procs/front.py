"""A front process: one share of the client connections (docs/architecture.md §1).

The core starts ``workers.fronts`` of these (``python -m gateway.procs.front``),
each with its own copy of every listening socket (``SO_REUSEPORT``: the kernel
spreads new connections over them) and one end of a Unix socket back to the
core.  A front runs, on its own event loop, everything a request needs that
is not the journal: TLS, framing, parse, XSD, signature and certificate
checks, business rules, routing, and the response signature — the same
``Pipeline`` and ``Desk`` as the single-process mode.  What must be one for
the whole daemon it asks the core, over ``gateway.procs.channel``:

- the journal (accept, replay look-ups, STATUS reads, the kept exchange);
- admission: connections, frames and CorpIds are counted by the core, so the
  limits hold for the daemon, not per front; bans come back as pushes;
- INQ/RPLY/NTFY/BAL, which live beside the journal and the core link.

The front dies with the core (``PR_SET_PDEATHSIG``) and exits when the core's
end of the channel closes: without the journal it cannot keep a promise, so
it answers nothing more.  SIGTERM or the core's ``drain`` stops accepting,
lets requests in flight finish, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from structlog.typing import EventDict

from gateway import builders, preflight
from gateway.clock import BusinessClock, Clock, SystemClock
from gateway.config import Config
from gateway.journal.ops_records import Exchange
from gateway.journal.records import AcceptOutcome, NewRequest, RequestRecord
from gateway.model import (
    BalanceQuery,
    DraftApply,
    DraftRefundRequest,
    Engine,
    Inquiry,
    NotifyPull,
    Reply,
    Request,
    Response,
    StatusView,
)
from gateway.net.admission import Decision
from gateway.net.listener import Listener
from gateway.net.session import ByteBudget, CloseConnection
from gateway.net.tls import SwappableContext
from gateway.ops import metrics, metrics_merge
from gateway.ops.deathsig import die_with_parent
from gateway.ops.logs import configure_logging
from gateway.pipeline import Pipeline
from gateway.procs.channel import Channel, ChannelClosed, open_pair
from gateway.routing.router import Router
from gateway.screening.current import load as load_lists
from gateway.screening.current import versions_of
from gateway.screening.gate import Screener
from gateway.screening.lists import ScreeningLists
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.front")

METRICS_EVERY = 1.0
"""Seconds between metric snapshots sent to the core (also the front's heartbeat)."""


async def ask(ch: Channel, method: str, *args: Any) -> Any:
    """One call to the core.  With the core gone, the connection closes without an
    answer: what the core did with the request is unknown here, and a resend is
    answered from the journal (docs/protocol.md §7) — never a 9999 for a payment
    that may be journaled."""
    try:
        return await ch.call(method, *args)
    except ChannelClosed:
        raise CloseConnection("core gone") from None


class FrontJournal:
    """The journal calls of ``Pipeline``, answered by the core's store."""

    def __init__(self, ch: Channel) -> None:
        self._ch = ch
        self.pending_writes = 0
        """The core's journal backlog, as of its last answer (for 5002)."""

    async def accept(self, new: NewRequest) -> AcceptOutcome:
        outcome, self.pending_writes = await ask(self._ch, "accept", new)
        return outcome  # type: ignore[no-any-return]

    async def find_request(self, corp_id: str, msg_id: str) -> RequestRecord | None:
        return await ask(self._ch, "find_request", corp_id, msg_id)  # type: ignore[no-any-return]

    async def item_status(
        self, corp_id: str, msg_id: str, seq_no: int | None = None
    ) -> StatusView | None:
        return await ask(self._ch, "item_status", corp_id, msg_id, seq_no)  # type: ignore[no-any-return]

    async def record_exchange(self, ex: Exchange) -> None:
        self._ch.push("record_exchange", ex)


class FrontCorrespondence:
    """INQ, RPLY, NTFY, BAL and their replays, answered by the core's correspondence."""

    def __init__(self, ch: Channel) -> None:
        self._ch = ch

    async def _ask(self, op: str, *args: Any) -> Response:
        return await ask(self._ch, "corr", op, *args)  # type: ignore[no-any-return]

    async def inquire(self, req: Request, body: Inquiry, now: datetime) -> Response:
        return await self._ask("inquire", req, body, now)

    async def reply(self, req: Request, body: Reply, now: datetime) -> Response:
        return await self._ask("reply", req, body, now)

    async def notify(self, req: Request, body: NotifyPull, now: datetime) -> Response:
        return await self._ask("notify", req, body, now)

    async def balance(self, req: Request, body: BalanceQuery, now: datetime) -> Response:
        return await self._ask("balance", req, body, now)

    async def replay(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        return await self._ask("replay", req, existing, now)


class FrontDrafts:
    """DRAFT, DRAFTRFND, their replays and STATUS, answered by the core's register."""

    def __init__(self, ch: Channel) -> None:
        self._ch = ch

    async def _ask(self, op: str, *args: Any) -> Response:
        return await ask(self._ch, "drafts", op, *args)  # type: ignore[no-any-return]

    async def apply(
        self, req: Request, body: DraftApply, daily_cap: Decimal | None, now: datetime
    ) -> Response:
        return await self._ask("apply", req, body, daily_cap, now)

    async def refund(self, req: Request, body: DraftRefundRequest, now: datetime) -> Response:
        return await self._ask("refund", req, body, now)

    async def replay(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        return await self._ask("replay", req, existing, now)

    async def status(self, req: Request, existing: RequestRecord, now: datetime) -> Response:
        return await self._ask("status", req, existing, now)


class FrontAdmission:
    """Per-address and per-CorpId limits kept by the core, for the whole daemon.

    Bans reach every front as ``ban`` pushes, so ``banned`` (asked by each
    session at each frame) is a local look-up.
    """

    def __init__(self, ch: Channel) -> None:
        self._ch = ch
        self._bans: dict[str, float] = {}

    async def check(
        self, ip: str, corp_id: str | None, now: float
    ) -> tuple[Decision, Decision | None]:
        del now  # the core reads its own monotonic clock (the same clock, system-wide)
        return await ask(self._ch, "admit", ip, corp_id)  # type: ignore[no-any-return]

    def strike(self, ip: str, now: float, reason: str) -> bool:
        """Counted by the core, which logs a ban once and tells every front."""
        del now
        self._ch.push("strike", ip, reason)
        return False

    # -- the listeners' ConnectionGate ------------------------------------
    def admit(self, ip: str) -> Any:
        return self._ch.call("connect", ip)

    def release(self, ip: str) -> None:
        self._ch.push("disconnect", ip)

    def banned(self, ip: str) -> bool:
        until = self._bans.get(ip)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._bans[ip]
        return False

    def ban(self, ip: str, until: float) -> None:
        self._bans[ip] = until


def _clock(spec: tuple[str, float, float] | None) -> Clock:
    """The core's clock: the same business clock anchor, or the system clock."""
    if spec is None:
        return SystemClock()
    start, rate, anchor = spec
    return BusinessClock(datetime.fromisoformat(start), rate, anchor_wall=anchor)


class Front:
    """One front process's object graph."""

    def __init__(self, index: int, sockets: dict[str, socket.socket]) -> None:
        self.index = index
        self._sockets = sockets
        self._ch: Channel | None = None
        self._stop = asyncio.Event()
        self._listeners: list[Listener] = []
        self._tls: dict[str, tuple[str, SwappableContext]] = {}
        self._pool: WorkerPool | None = None
        self._router: Router | None = None
        self._denied: frozenset[str] = frozenset()
        self._admission: FrontAdmission | None = None
        self._drain_timeout = 30.0
        self._lists: ScreeningLists | None = None  # this front's copy (docs/foreign-currency.md §5)
        self.cfg: Config
        self.clock: Clock

    async def run(self, channel_sock: socket.socket) -> int:
        ch = await open_pair(
            channel_sock, on_call=self._on_call, on_push=self._on_push, name=f"front-{self.index}"
        )
        self._ch = ch
        reader = asyncio.get_running_loop().create_task(ch.run())
        reader.add_done_callback(lambda _t: self._stop.set())
        try:
            cfg, clock_spec, versions = await ch.call("setup", self.index, os.getpid())
            self.cfg, self.clock = cfg, _clock(clock_spec)
            configure_logging(cfg.observability.log_level, cfg.observability.log_format)
            self._tag_logs()
            self._router = builders.build_router(cfg)
            self._lists = load_lists(cfg.screening)  # a bad file stops this front's start
            self._check_versions(versions)
            prepared = preflight.prepare_keys(cfg, self.clock.now())
            pool = WorkerPool(builders.desk_setup(cfg), 0)
            await pool.start()
            self._pool = pool
            self._denied = builders.read_denied(cfg)
            await self._serve(cfg, prepared.tls)
        except Exception as exc:  # noqa: BLE001 - the core prints the one start-up line
            status, line = preflight.describe(exc)
            ch.push("failed", status, line)
            await ch.drain()
            return status
        ch.push("ready")
        snapshots = asyncio.get_running_loop().create_task(self._snapshots())
        await self._stop.wait()
        snapshots.cancel()
        if not ch.closed:
            await self._drain()
            ch.push("metrics", metrics_merge.snapshot())
            ch.push("stopped")
            with contextlib.suppress(ConnectionError):
                await ch.drain()
        ch.close()
        return 0

    async def _serve(self, cfg: Config, contexts: dict[str, Any]) -> None:
        ch = self._ch
        assert ch is not None  # noqa: S101
        admission = FrontAdmission(ch)
        self._admission = admission
        pipeline = Pipeline(
            self.clock,
            self.pool,
            FrontJournal(ch),  # type: ignore[arg-type]
            self.router,
            _no_wake,
            builders.pipeline_settings(cfg),
            admission,
            FrontCorrespondence(ch),  # type: ignore[arg-type]
            keep=lambda ex: ch.push("record_exchange", ex),
            drafts=FrontDrafts(ch),  # type: ignore[arg-type]
            swift=cfg.swift_enabled,
            screener=Screener(lambda: self.cfg.screening, lambda: self._lists),
        )
        budget = ByteBudget(cfg.load.max_body_bytes)
        for lc in cfg.listeners:
            ctx = None
            if lc.tls:
                holder = SwappableContext(contexts[lc.name])
                self._tls[lc.name] = (lc.client_cert, holder)
                ctx = holder.listener_context
            spec = builders.listener_spec(lc, ctx, self._sockets[lc.name])
            listener = Listener(
                spec, pipeline.handle, pipeline.bad_frame, admission, budget, self._is_denied
            )
            await listener.start()
            self._listeners.append(listener)

    def _tag_logs(self) -> None:
        """Every line of this process names its front (sessions clear their context
        variables, so a bound variable would not last)."""
        index = self.index

        def add_front(_logger: Any, _name: str, event: EventDict) -> EventDict:
            event.setdefault("front", index)
            return event

        processors = list(structlog.get_config()["processors"])
        structlog.configure(processors=[add_front, *processors])

    def pool(self) -> WorkerPool:
        assert self._pool is not None  # noqa: S101 - set in run()
        return self._pool

    def router(self) -> Router:
        assert self._router is not None  # noqa: S101 - set in run()
        return self._router

    def _is_denied(self, fingerprint: str) -> bool:
        return fingerprint in self._denied

    async def _snapshots(self) -> None:
        ch = self._ch
        assert ch is not None  # noqa: S101
        while True:
            ch.push("metrics", metrics_merge.snapshot())
            await asyncio.sleep(METRICS_EVERY)

    async def _drain(self) -> None:
        await asyncio.gather(
            *(ln.drain(self._drain_timeout) for ln in self._listeners), return_exceptions=True
        )

    # -- what the core asks and tells us -----------------------------------
    async def _on_call(self, method: str, args: tuple[Any, ...]) -> Any:
        """The core's desk work (``Fronts.desk_call``): inline, on this front's desk."""
        if method != "desk":
            raise ValueError(f"unknown core call {method!r}")
        op, call_args = args
        return await self.pool()._call(op, *call_args)

    def _on_push(self, method: str, args: tuple[Any, ...]) -> None:
        if method == "ban":
            if self._admission is not None:
                self._admission.ban(*args)
        elif method == "drain":
            (self._drain_timeout,) = args
            self._stop.set()
        elif method == "reload":
            asyncio.get_running_loop().create_task(self._reload(*args))
        elif method == "tls":
            self._swap_tls()
        else:
            log.warning("unknown_push", method=method)

    async def _reload(self, cfg: Config, force: bool, versions: dict[str, str]) -> None:
        """The core reloaded (and checked) first; here the same files are read again.

        The screening lists are loaded without the shrink guard: the core applied it,
        or was told to accept the shrink (``force``), so this front takes the version
        the core took (``versions``) and says so loudly if it read another.
        """
        try:
            router = builders.build_router(cfg)
            pool = WorkerPool(builders.desk_setup(cfg), 0)
            await pool.start()
            denied = builders.read_denied(cfg)
            lists = load_lists(cfg.screening)
        except Exception as exc:  # noqa: BLE001 - keep serving the old version, loudly
            log.error("front_reload_failed", reason=str(exc)[:300])  # noqa: TRY400
            metrics.RELOADS.labels("refused").inc()
            return
        self.cfg, self._router, self._pool, self._denied = cfg, router, pool, denied
        self._lists = lists
        self._check_versions(versions, forced=force)
        self._swap_tls()

    def _check_versions(self, expected: dict[str, str], *, forced: bool = False) -> None:
        """Log when this front's lists are not the version the core has in force (a file
        changed between the core's read and ours): the next reload aligns them."""
        mine = versions_of(self._lists)
        if mine != expected:
            log.error("front_screening_versions_differ", core=expected, front=mine, forced=forced)
        else:
            log.info("front_screening_lists", versions=mine, forced=forced)

    def _swap_tls(self) -> None:
        """New handshakes use the TLS key and CRLs active now; open connections stay."""
        try:
            ring = preflight.load_ring(self.cfg)
            built = {
                name: preflight.tls_context(self.cfg, mode, ring, self.clock.now())
                for name, (mode, _) in self._tls.items()
            }
        except Exception as exc:  # noqa: BLE001
            metrics.KEY_SWAP_FAILURES.inc()
            log.warning("tls_swap_failed", error=str(exc)[:200])
            return
        for name, ctx in built.items():
            self._tls[name][1].swap(ctx)


def _no_wake(engine: Engine) -> None:
    """The core wakes its engines when it journals an accept."""
    del engine


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway-front", description="gatewayd front process")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--parent", type=int, required=True, help="the core's pid")
    p.add_argument("--channel-fd", type=int, required=True)
    p.add_argument("--listener", action="append", default=[], help="NAME=FD")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    die_with_parent(args.parent)  # the core is our parent; we never outlive it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the core, which drains us
    sockets = {}
    for spec in args.listener:
        name, _, fd = spec.rpartition("=")
        sockets[name] = socket.socket(fileno=int(fd))
    channel = socket.socket(fileno=args.channel_fd)
    front = Front(args.index, sockets)

    async def _main() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, front._stop.set)
        return await front.run(channel)

    return asyncio.run(_main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
