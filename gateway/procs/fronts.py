"""The core's side of the front processes (docs/architecture.md §1).

``Fronts`` binds every listener once per front (``SO_REUSEPORT``: the kernel
hashes each new connection to one of the sockets), starts the front
processes with their sockets and a channel, answers their calls against the
one journal, the one admission state and the correspondence, restarts a
front that dies, and drains them all on shutdown.

The core keeps its copy of every listening socket: while a dead front is
being replaced, connections wait in its socket's accept queue instead of
being refused, and the new front takes over the same socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.clock import BusinessClock, Clock
from gateway.config import Config, ListenerConfig
from gateway.correspondence.corplink import CorplinkCorrespondence
from gateway.desk import DeskSetup
from gateway.draftsvc.corplink import DraftCorplink
from gateway.errors import ChildStartFailed, ConfigError
from gateway.journal.records import NewRequest
from gateway.journal.store import Store
from gateway.model import Engine, State
from gateway.net.admission import Admission
from gateway.ops import metrics
from gateway.procs.channel import Channel, ChannelClosed, open_pair
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.procs")

START_TIMEOUT = 120.0
"""Seconds a front may take to build its desk and TLS contexts (a dev PKI, a slow disk)."""
RESTART_DELAY = 1.0
"""Seconds before a dead front is started again (a front that dies at once does not spin)."""
STALE_AFTER = 10.0
"""A front silent this long (no metrics heartbeat) is stuck: it is killed and replaced."""


FrontFailed = ChildStartFailed
"""A front could not start; its status and line are what gatewayd prints."""


@dataclass
class _Front:
    index: int
    proc: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    ready: asyncio.Future[None] | None = None
    conns: Counter[str] = field(default_factory=Counter)
    last_seen: float = 0.0
    stopping: bool = False
    desk_calls: int = 0
    """Desk calls of the core in flight on this front (the least busy front gets the next)."""


class FrontDeskPool(WorkerPool):
    """The core's desk calls, run by the fronts while any serves, else inline here."""

    def __init__(self, setup: DeskSetup, fronts: Callable[[], Fronts | None]) -> None:
        super().__init__(setup, 0)
        self._fronts = fronts

    async def _call(self, op: str, *args: Any) -> Any:
        fronts = self._fronts()
        if fronts is not None:
            done, result = await fronts.desk_call(op, args)
            if done:
                metrics.CORE_DESK_CALLS.labels("front").inc()
                return result
        metrics.CORE_DESK_CALLS.labels("core").inc()
        return await super()._call(op, *args)


def bind_reuseport(host: str, port: int, count: int, backlog: int = 1024) -> list[socket.socket]:
    """``count`` listening sockets on one address (port 0: the first one's free port)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    out: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            out.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(addr)
            s.listen(backlog)
            s.set_inheritable(True)
            addr = s.getsockname()  # port 0 resolved: the others join it
    except OSError:
        for s in out:
            s.close()
        raise
    return out


class Fronts:
    """Starts, serves, restarts and drains the front processes."""

    def __init__(
        self,
        cfg: Config,
        clock: Clock,
        store: Store,
        admission: Callable[[], Admission],
        correspondence: Callable[[], CorplinkCorrespondence | None],
        wake: Callable[[Engine], None],
        on_metrics: Callable[[int, bytes], None] | None = None,
        on_gone: Callable[[int], None] | None = None,
        keep_exchange: Callable[[Any], None] | None = None,
        drafts: Callable[[], DraftCorplink | None] | None = None,
        screening: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._drafts = drafts
        self._screening = screening  # the list versions in force (docs/foreign-currency.md §5)
        self.cfg = cfg
        self._clock = clock
        self._store = store
        self._admission = admission
        self._corr = correspondence
        self._wake = wake
        self._on_metrics = on_metrics
        self._on_gone = on_gone
        self._keep_exchange = keep_exchange
        self._sockets: dict[str, list[socket.socket]] = {}
        self._fronts = [_Front(i) for i in range(cfg.workers.fronts)]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.restarts = 0

    # -- start ---------------------------------------------------------------
    def bind(self, lc: ListenerConfig) -> tuple[str, int]:
        """Bind one listener for every front; the bound (host, port)."""
        socks = bind_reuseport(lc.bind, lc.port, len(self._fronts))
        self._sockets[lc.name] = socks
        host, port = socks[0].getsockname()[:2]
        return (host, port)

    async def start(self) -> None:
        """Start every front and wait until each serves (or one fails: its line is raised)."""
        await asyncio.gather(*(self._spawn(f) for f in self._fronts))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                for f in self._fronts:
                    assert f.ready is not None  # noqa: S101
                    await f.ready
        except TimeoutError:
            raise FrontFailed(
                75, f"workers.fronts: a front did not start in {START_TIMEOUT:.0f} s"
            ) from None
        for f in self._fronts:
            self._keep(self._watch(f))
        self._keep(self._watch_stale())

    async def _spawn(self, f: _Front) -> None:
        core_end, front_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = [front_end.fileno()]
        args = [
            sys.executable,
            "-m",
            "gateway.procs.front",
            "--index",
            str(f.index),
            "--parent",
            str(os.getpid()),
            "--channel-fd",
            str(front_end.fileno()),
        ]
        for name, socks in self._sockets.items():
            s = socks[f.index]
            fds.append(s.fileno())
            args += ["--listener", f"{name}={s.fileno()}"]
        front_end.set_inheritable(True)
        f.ready = asyncio.get_running_loop().create_future()
        f.conns = Counter()
        f.stopping = False
        f.last_seen = time.monotonic()
        f.proc = await asyncio.create_subprocess_exec(*args, pass_fds=fds)
        front_end.close()
        f.channel = await open_pair(
            core_end,
            on_call=functools.partial(self._on_call, f),
            on_push=functools.partial(self._on_push, f),
            name=f"core-front-{f.index}",
        )
        self._keep(f.channel.run())

    def _keep(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, f: _Front) -> None:
        """A front that exits while the daemon runs is logged and replaced."""
        while True:
            proc = f.proc
            assert proc is not None  # noqa: S101
            code = await proc.wait()
            self._release(f)
            if self._stopping:
                return
            log.error("front_died", front=f.index, pid=proc.pid, status=code)
            self.restarts += 1
            await asyncio.sleep(RESTART_DELAY)
            if self._stopping:
                return
            await self._spawn(f)
            try:
                assert f.ready is not None  # noqa: S101
                async with asyncio.timeout(START_TIMEOUT):
                    await f.ready
                log.info("front_restarted", front=f.index, pid=f.proc.pid if f.proc else None)
            except (TimeoutError, FrontFailed) as exc:
                log.error("front_restart_failed", front=f.index, reason=str(exc)[:200])  # noqa: TRY400
                if f.proc is not None and f.proc.returncode is None:
                    f.proc.kill()

    async def _watch_stale(self) -> None:
        """A front whose loop is stuck stops sending its heartbeat: kill it (then replaced)."""
        while not self._stopping:
            await asyncio.sleep(STALE_AFTER / 2)
            now = time.monotonic()
            for f in self._fronts:
                ready = f.ready is not None and f.ready.done()
                running = f.proc is not None and f.proc.returncode is None
                if ready and running and now - f.last_seen > STALE_AFTER:
                    log.error("front_stuck", front=f.index, silent_s=round(now - f.last_seen))
                    assert f.proc is not None  # noqa: S101
                    f.proc.kill()

    def _release(self, f: _Front) -> None:
        """A front's connections are gone with it: give their admission slots back."""
        admission = self._admission()
        for ip, n in f.conns.items():
            for _ in range(n):
                admission.on_disconnect(ip)
        f.conns.clear()
        if f.channel is not None:
            f.channel.close()
        if self._on_gone is not None:
            self._on_gone(f.index)

    # -- what fronts ask ----------------------------------------------------
    async def _on_call(self, f: _Front, method: str, args: tuple[Any, ...]) -> Any:
        f.last_seen = time.monotonic()
        if method == "admit":
            ip, corp_id = args
            return await self._admission().check(ip, corp_id, time.monotonic())
        if method == "connect":
            (ip,) = args
            d = self._admission().on_connect(ip, time.monotonic())
            if d.ok:
                f.conns[ip] += 1
                return None
            reason = d.reason or "refused"
            metrics.REFUSALS.labels("connect", reason).inc()
            return reason
        if method == "accept":
            return await self._accept(*args)
        if method == "find_request":
            return await self._store.find_request(*args)
        if method == "item_status":
            return await self._store.item_status(*args)
        if method == "corr":
            corr = self._corr()
            if corr is None:
                raise ConfigError("correspondence is not running")
            op, *rest = args
            return await getattr(corr, op)(*rest)
        if method == "drafts":
            drafts = self._drafts() if self._drafts is not None else None
            if drafts is None:
                raise ConfigError("bank drafts are not running")
            op, *rest = args
            return await getattr(drafts, op)(*rest)
        if method == "setup":
            index, pid = args
            log.debug("front_setup", front=index, pid=pid)
            versions = {} if self._screening is None else self._screening()
            return self.cfg, _clock_spec(self._clock), versions
        raise ValueError(f"unknown front call {method!r}")

    async def _accept(self, new: NewRequest) -> tuple[Any, int]:
        outcome = await self._store.accept(new)
        if outcome.created:
            for engine in {i.engine for i in new.items if i.state is State.QUEUED and i.engine}:
                self._wake(engine)
        return outcome, getattr(self._store, "pending_writes", 0)

    def _on_push(self, f: _Front, method: str, args: tuple[Any, ...]) -> None:
        f.last_seen = time.monotonic()
        if method == "metrics":
            if self._on_metrics is not None:
                self._on_metrics(f.index, args[0])
        elif method == "disconnect":
            (ip,) = args
            if f.conns[ip] > 0:
                f.conns[ip] -= 1
                if not f.conns[ip]:
                    del f.conns[ip]
                self._admission().on_disconnect(ip)
        elif method == "strike":
            self._strike(*args)
        elif method == "record_exchange":
            if self._keep_exchange is not None:
                self._keep_exchange(args[0])
            else:
                self._keep(self._record_exchange(args[0]))
        elif method == "ready":
            if f.ready is not None and not f.ready.done():
                f.ready.set_result(None)
        elif method == "failed":
            status, line = args
            if f.ready is not None and not f.ready.done():
                f.ready.set_exception(FrontFailed(status, line))
        elif method == "stopped":
            f.stopping = True
        else:
            log.warning("unknown_front_push", method=method)

    def _strike(self, ip: str, reason: str) -> None:
        now = time.monotonic()
        admission = self._admission()
        if admission.strike(ip, now, reason):
            metrics.BANS.inc()
            log.warning("address_banned", peer=ip, reason=reason)
            until = now + admission.config.ban_seconds
            self.broadcast("ban", ip, until)

    async def _record_exchange(self, ex: Any) -> None:
        try:
            await self._store.record_exchange(ex)
        except Exception as exc:  # noqa: BLE001 - evidence only, after the answer
            log.warning("exchange_not_kept", error=str(exc)[:200])

    # -- the core's desk work, done by the fronts ------------------------------
    async def desk_call(self, op: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        """Run ``Desk.op(*args)`` in the least busy serving front: ``(True, result)``,
        or ``(False, None)`` when no front can take it now (the caller runs it inline).

        The core's own CPU work — signing clearing messages, verifying receipts and
        statuses — would otherwise make the one core process the daemon's limit,
        while the fronts have cores to spare; the channel already carries a batch
        each loop turn, so the hand-off adds a share of a write (docs/architecture.md §1).
        """
        for _ in range(len(self._fronts)):
            serving = [
                f
                for f in self._fronts
                if f.channel is not None
                and not f.channel.closed
                and not f.stopping
                and f.ready is not None
                and f.ready.done()
                and not f.ready.exception()
            ]
            if not serving or self._stopping:
                return False, None
            f = min(serving, key=lambda x: x.desk_calls)
            assert f.channel is not None  # noqa: S101
            f.desk_calls += 1
            try:
                return True, await f.channel.call("desk", op, args)
            except ChannelClosed:
                continue  # that front died meanwhile: another one, or inline
            finally:
                f.desk_calls -= 1
        return False, None

    # -- what the core tells fronts -------------------------------------------
    def broadcast(self, method: str, *args: Any) -> None:
        for f in self._fronts:
            if f.channel is not None:
                f.channel.push(method, *args)

    def alive(self) -> int:
        return sum(1 for f in self._fronts if f.proc is not None and f.proc.returncode is None)

    def pids(self) -> list[int]:
        return [
            f.proc.pid for f in self._fronts if f.proc is not None and f.proc.returncode is None
        ]

    # -- stop ------------------------------------------------------------------
    async def drain(self, timeout: float) -> None:
        """Every front stops accepting, finishes what is in flight, exits; the journal
        stays open meanwhile (the caller closes it after this returns)."""
        self._stopping = True
        self.broadcast("drain", timeout)
        procs = [f.proc for f in self._fronts if f.proc is not None]
        try:
            async with asyncio.timeout(timeout + 5.0):
                await asyncio.gather(*(p.wait() for p in procs))
        except TimeoutError:
            for p in procs:
                if p.returncode is None:
                    log.warning("front_killed", pid=p.pid)
                    p.kill()
            await asyncio.gather(*(p.wait() for p in procs), return_exceptions=True)
        await self.close()

    async def close(self) -> None:
        """Kill what still runs (a failed start) and close every socket."""
        self._stopping = True
        for f in self._fronts:
            if f.proc is not None and f.proc.returncode is None:
                f.proc.kill()
                with contextlib.suppress(Exception):
                    await f.proc.wait()
            if f.channel is not None:
                f.channel.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for socks in self._sockets.values():
            for s in socks:
                s.close()
        self._sockets.clear()


def _clock_spec(clock: Clock) -> tuple[str, float, float] | None:
    """What a front needs to run the same business clock (same anchor, same rate)."""
    if isinstance(clock, BusinessClock):
        return (clock.start.isoformat(), clock.rate, clock.anchor_wall)
    return None
