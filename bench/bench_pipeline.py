"""Throughput of the whole gateway: the real ``gatewayd`` under pipelined, signed PAYs.

Run on purpose (never in the test suite); loopback only, bounded in time::

    python bench/bench_pipeline.py [--workers 2] [--rate 2000] [--no-clearing]

Everything lives in one temp dir: a dev PKI, a private mosquitto, the clearing
simulator as its own process (``gateway-sim clearing``), and per run a fresh
``gatewayd`` (fresh journal) with an overlay: business clock at 10:00 on a
recent weekday, one mutual-TLS listener, ``workers.processes = --workers``.
The load comes from ``--gen-procs`` separate processes that PRE-SIGN every
request before the timed phase, so their CPU per message is a frame write
and a cheap byte search of each reply (MsgId, RetCode); a sample of replies
is verified against the gateway's response certificate after each run.

Max mode (default) is closed loop: each connection keeps ``--window``
requests outstanding.  ``--rate R`` is open loop at R msgs/s in total (the
window still caps each connection; backlog shows when the target is missed).
Figures: accepted (0000) msgs/s, other RetCodes, client-measured ack latency
(send → reply), CPU µs per reply of the gatewayd process tree from
/proc/<pid>/stat (main thread, its other threads, worker processes), the
other processes' CPU and the machine's load.  Then a FLOOR: the same steps in
this one process (``Desk`` inspect and render, router + ``SqliteStore``
accept, and ``Pipeline.handle`` inline with no sockets), as µs per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree

from gateway.clock import SHANGHAI, BusinessClock
from gateway.config import load_config
from gateway.desk import Desk, Inspection
from gateway.journal.records import NewItem, NewRequest
from gateway.journal.sqlite import SqliteStore
from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.keys.xmldsig import load_signing_key, sign_enveloped
from gateway.model import Response, State, StatusView, Transfer, Transition
from gateway.net.framing import encode_frame
from gateway.net.session import ConnInfo
from gateway.net.tls import client_context
from gateway.ops.logs import configure_logging
from gateway.pipeline import Pipeline, PipelineSettings
from gateway.routing.router import Route, Router
from gateway.server import build_router, desk_setup
from gateway.sim.erp import Payment, build_request, parse_reply, transfer_body
from gateway.testing import Broker, start_broker
from gateway.workers import WorkerPool

HZ = os.sysconf("SC_CLK_TCK")
#: USBKEY operators of the dev PKI (no per-operator amount limits) and their payer accounts.
OPERATORS = (
    ("C100000001", "op01", "6222000000000001"),
    ("C100000002", "op01", "6222000000000101"),
    ("C100000003", "op01", "6222000000000201"),
)
#: mixed: a quarter intra-bank, a quarter HVPS (≥ 50,000), half BEPS (routing.md §3).
MIXES = {
    "mixed": (("103290000018", "1200.50"), ("104100000004", "88000.00"))
    + (("102290000011", "12.30"), ("105584000005", "49.99")),
    "beps": (("102290000011", "12.30"), ("105584000005", "49.99")),
}


def business_start() -> datetime:
    """10:00 Asia/Shanghai on the latest weekday up to today (routing.md §4: all engines open)."""
    d = datetime.now(SHANGHAI).date()
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=SHANGHAI)


START = business_start()


def sign_pay(key: Any, corp: str, oper: str, payer: str, msg_id: str, i: int, mix: str) -> bytes:
    code, amount = MIXES[mix][i % len(MIXES[mix])]
    p = Payment(payer, "付款人", f"6217{i:012d}", "收款人", code, Decimal(amount))
    root = build_request("PAY", corp, oper, msg_id, START, transfer_body(p))
    sign_enveloped(root, key)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# ------------------------------------------------------------- load generator


@dataclass(frozen=True)
class GenSpec:
    index: int
    conns: tuple[int, ...]  # global connection numbers owned by this process
    per_conn: int  # pre-signed requests per connection
    pki_dir: Path
    window: int
    mix: str


@dataclass
class GenResult:
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    samples: list[bytes] = field(default_factory=list)
    exhausted: bool = False
    max_backlog: int = 0
    lost: int = 0


class _Conn(asyncio.Protocol):
    """One pipelining TLS connection; frames and MsgIds were prepared before the run."""

    def __init__(self, frames: list[bytes], ids: list[bytes], window: int, run: _Run) -> None:
        self.frames, self.ids, self.window, self.run = frames, ids, window, run
        self.next = 0
        self.sent: dict[bytes, float] = {}
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.res.lost += 1
        self.transport = None

    def fill(self, upto: int) -> None:
        now = time.monotonic()
        limit = min(upto, len(self.frames), self.next + self.window - len(self.sent))
        if self.transport is None or now >= self.run.t_end or limit <= self.next:
            if self.next == len(self.frames) and now < self.run.t_end:
                self.run.res.exhausted = True
            return
        for i in range(self.next, limit):
            self.sent[self.ids[i]] = now
        self.transport.write(b"".join(self.frames[self.next : limit]))
        self.next = limit

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, n, now, run = 0, len(buf), time.monotonic(), self.run
        while n - pos >= 8:
            end = pos + 8 + int(buf[pos : pos + 8])
            if end > n:
                break
            body = bytes(buf[pos + 8 : end])
            pos = end
            i = body.find(b"<MsgId>") + 7
            sent = self.sent.pop(body[i : body.find(b"</MsgId>", i)], None)
            if sent is None or not run.t_warm <= now < run.t_end:
                continue
            k = body.find(b"<RetCode>")
            code = body[k + 9 : k + 13].decode() if k >= 0 else "????"
            run.res.codes[code] += 1
            run.res.latencies.append(now - sent)
            if len(run.res.samples) < 10 or (code != "0000" and run.res.codes[code] <= 3):
                run.res.samples.append(body)
        del buf[:pos]
        if run.closed_loop:
            self.fill(len(self.frames))


@dataclass
class _Run:
    t0: float
    t_warm: float
    t_end: float
    closed_loop: bool
    res: GenResult = field(default_factory=GenResult)


async def _load(
    spec: GenSpec, cmd: dict[str, Any], prepared: list[tuple[list[bytes], list[bytes]]]
) -> GenResult:
    run = _Run(cmd["t0"], cmd["t_warm"], cmd["t_end"], cmd["rate"] <= 0)
    pki = DevPki.open(spec.pki_dir)
    loop = asyncio.get_running_loop()
    conns: list[_Conn] = []
    for c, (frames, ids) in zip(spec.conns, prepared, strict=True):
        corp, oper, _ = OPERATORS[c % len(OPERATORS)]
        kp, cp = pki.client(corp, oper)
        conn = _Conn(frames, ids, spec.window, run)
        ctx = client_context(pki.server_ca, cp, kp)
        await loop.create_connection(
            lambda conn=conn: conn, cmd["host"], cmd["port"], ssl=ctx, server_hostname="localhost"
        )  # type: ignore[misc]
        conns.append(conn)
    await asyncio.sleep(max(0.0, run.t0 - time.monotonic()))
    if run.closed_loop:
        for conn in conns:
            conn.fill(len(conn.frames))
    else:
        per_conn = cmd["rate"] / len(conns)
        while (now := time.monotonic()) < run.t_end:
            for k, conn in enumerate(conns):
                due = int((now - run.t0) * per_conn + k / len(conns)) + 1
                conn.fill(due)
                if now >= run.t_warm:
                    run.res.max_backlog = max(run.res.max_backlog, due - conn.next)
            await asyncio.sleep(0.001)
    await asyncio.sleep(max(0.0, run.t_end - time.monotonic()))
    deadline = time.monotonic() + 5
    while any(c.sent for c in conns) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0.1)
    return run.res


def gen_main(spec: GenSpec, pipe: Connection) -> None:
    """A load-generator process: pre-sign, report ready, then run each load command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    pki = DevPki.open(spec.pki_dir)
    keys = {o[:2]: load_signing_key(*pki.client(*o[:2])) for o in OPERATORS}
    prepared: list[tuple[list[bytes], list[bytes]]] = []
    t = time.perf_counter()
    for c in spec.conns:
        corp, oper, payer = OPERATORS[c % len(OPERATORS)]
        ids = [f"B{c:03d}-{i:08d}".encode() for i in range(spec.per_conn)]
        frames = [
            encode_frame(sign_pay(keys[corp, oper], corp, oper, payer, m.decode(), i, spec.mix))
            for i, m in enumerate(ids)
        ]
        prepared.append((frames, ids))
    pipe.send(time.perf_counter() - t)
    while (cmd := pipe.recv()) is not None:
        pipe.send(asyncio.run(_load(spec, cmd, prepared)))


# ------------------------------------------------------------ CPU accounting


def _stat(path: str) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) from a /proc stat file, or None if it is gone."""
    try:
        data = Path(path).read_text()
    except OSError:
        return None
    f = data[data.rfind(")") + 2 :].split()
    return int(f[1]), int(f[11]) + int(f[12])


def cpu_snapshot(daemon: int, others: dict[str, list[int]]) -> dict[str, int]:
    """CPU ticks by role: the gatewayd tree split by thread/process, then ``others``."""
    ppid: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (s := _stat(f"/proc/{d}/stat")) is not None:
            ppid[int(d)] = s[0]
    out: Counter[str] = Counter()
    for tid in os.listdir(f"/proc/{daemon}/task"):
        s = _stat(f"/proc/{daemon}/task/{tid}/stat")
        role = "gw event-loop thread" if int(tid) == daemon else "gw other threads"
        out[role] += s[1] if s else 0
    children = [p for p, pp in ppid.items() if pp == daemon]
    for child in children:
        cmd = (
            Path(f"/proc/{child}/cmdline").read_bytes() if Path(f"/proc/{child}").exists() else b""
        )
        tree = [child] + [p for p, pp in ppid.items() if pp == child]
        for p in tree:
            s = _stat(f"/proc/{p}/stat")
            role = "gw workers" if p != child or b"forkserver" not in cmd else "gw forkserver"
            out[role] += s[1] if s else 0
    for role, pids in others.items():
        for p in pids:
            out[role] += s[1] if (s := _stat(f"/proc/{p}/stat")) else 0
    with open("/proc/stat") as fh:
        cpu = [int(x) for x in fh.readline().split()[1:]]
    out["machine busy"] = sum(cpu) - cpu[3] - cpu[4] - cpu[7]
    out["machine steal"] = cpu[7]
    out["machine total"] = sum(cpu)
    return dict(out)


# ------------------------------------------------------------- one daemon run


@dataclass
class RunStats:
    accepted: float  # 0000 replies per second
    codes: Counter[str]
    lat_ms: tuple[float, float, float, float]  # p50, p90, p99, max
    cpu_us: float  # gatewayd tree CPU per reply
    cores: dict[str, float]  # CPU seconds per second, by role
    exhausted: bool
    backlog: int
    verified: str


def write_overlay(run_dir: Path, pki: DevPki, broker: Broker, workers: int, window: int) -> Path:
    overlay = run_dir / "overlay.toml"
    overlay.write_text(
        f'environment = "test"\nstate_dir = "{run_dir / "state"}"\n'
        f'[clock]\nstart = "{START.isoformat()}"\n'
        f'[keys]\ndev_pki = false\ndir = "{pki.dir}"\n'
        f'[clearing]\nurl = "{broker.url}"\nclient_id = "bench-{run_dir.name}"\n'
        '[observability]\nmetrics_port = 0\nlog_level = "warning"\n'
        f"[workers]\nprocesses = {workers}\n"
        '[[listeners]]\nname = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n'
        f"max_inflight = {max(32, window)}\n",
        encoding="utf-8",
    )
    return overlay


def stop_proc(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def percentile(sorted_vals: Sequence[float], q: float) -> float:
    return (
        sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]
        if sorted_vals
        else float("nan")
    )


def one_run(
    args: argparse.Namespace,
    tmp: Path,
    n: int,
    pki: DevPki,
    gens: list[tuple[mp.Process, Connection]],
) -> RunStats:
    run_dir = tmp / f"run{n}"
    run_dir.mkdir()
    broker = start_broker(run_dir / "broker")
    sim: subprocess.Popen[bytes] | None = None
    gw: subprocess.Popen[bytes] | None = None
    logs = (run_dir / "gatewayd.log").open("wb")
    try:
        if not args.no_clearing:
            sim = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli.sim", "clearing", "--broker", broker.url]
                + ["--key", str(pki.clearing_system_key), "--cert", str(pki.clearing_system_cert)]
                + ["--gateway-cert", str(pki.clearing_cert), "--client-id", f"sim-{n}"],
                stdout=logs,
                stderr=subprocess.STDOUT,
            )
        ports = run_dir / "ports.json"
        overlay = write_overlay(run_dir, pki, broker, args.workers, args.window)
        gw = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli.gatewayd",
                "--config",
                str(overlay),
                "--ports-file",
                str(ports),
            ],
            stdout=logs,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not ports.exists():
            if gw.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gatewayd did not start; see {run_dir / 'gatewayd.log'}")
            time.sleep(0.05)
        host, port = json.loads(ports.read_text())["listeners"]["tls"]
        t0 = time.monotonic() + 3.0
        cmd = {"host": host, "port": port, "t0": t0, "t_warm": t0 + args.warmup}
        cmd |= {"t_end": t0 + args.warmup + args.duration, "rate": args.rate / len(gens)}
        for _, pipe in gens:
            pipe.send(cmd)
        others = {"clearing sim": [sim.pid] if sim else [], "mosquitto": [broker.proc.pid]}
        others["load generators"] = [int(p.pid or 0) for p, _ in gens]
        time.sleep(max(0.0, cmd["t_warm"] - time.monotonic()))
        before = cpu_snapshot(gw.pid, others)
        time.sleep(max(0.0, cmd["t_end"] - time.monotonic()))
        after = cpu_snapshot(gw.pid, others)
        results: list[GenResult] = [pipe.recv() for _, pipe in gens]
    finally:
        stop_proc(gw, 30)
        stop_proc(sim, 10)
        broker.stop()
        logs.close()
    codes: Counter[str] = sum((r.codes for r in results), Counter())
    lat = sorted(x * 1000 for r in results for x in r.latencies)
    replies = sum(codes.values())
    delta = {k: (after.get(k, 0) - before.get(k, 0)) / HZ for k in after}
    busy = delta.pop("machine busy")
    steal = delta.pop("machine steal")
    total = delta.pop("machine total")
    gw_cpu = sum(v for k, v in delta.items() if k.startswith("gw "))
    cores = {k: v / args.duration for k, v in sorted(delta.items())}
    cores["machine busy (of %d cores)" % os.cpu_count()] = busy / args.duration
    cores["machine steal"] = steal / args.duration
    del total
    certs = x509.load_pem_x509_certificates(pki.response_cert.read_bytes())
    ok = bad = 0
    for raw in (s for r in results for s in r.samples):
        try:
            parse_reply(raw, certs)
            ok += 1
        except Exception:  # noqa: BLE001 - counted and reported, never raised
            bad += 1
    return RunStats(
        accepted=codes["0000"] / args.duration,
        codes=codes,
        lat_ms=(
            percentile(lat, 0.5),
            percentile(lat, 0.9),
            percentile(lat, 0.99),
            lat[-1] if lat else float("nan"),
        ),
        cpu_us=gw_cpu / replies * 1e6 if replies else float("nan"),
        cores=cores,
        exhausted=any(r.exhausted for r in results),
        backlog=max(r.max_backlog for r in results),
        verified=f"{ok} verified, {bad} failed",
    )


# ------------------------------------------------------------------- floor


def timed(fn: Callable[[], object], n: int, rounds: int) -> float:
    """Median over ``rounds`` of CPU µs per message (process time: includes helper threads)."""
    runs = []
    for _ in range(rounds):
        t = time.process_time()
        fn()
        runs.append((time.process_time() - t) / n * 1e6)
    return statistics.median(runs)


def floor(
    tmp: Path, pki: DevPki, bodies: list[bytes], rounds: int, concurrency: int
) -> dict[str, float]:
    """The pipeline's steps in this one process, µs of CPU per message."""
    cfg = load_config(
        None,
        {
            "environment": "test",
            "state_dir": str(tmp / "floor"),
            "keys": {"dev_pki": False, "dir": str(pki.dir)},
        },
    )
    desk, router = Desk(desk_setup(cfg)), build_router(cfg)
    now = START + timedelta(seconds=1)
    ins: list[Inspection] = []
    out: dict[str, float] = {}
    out["inspect (parse, XSD, verify, credentials, decode)"] = timed(
        lambda: ins.extend(desk.inspect(b, "127.0.0.1", now) for b in bodies), len(bodies), rounds
    )
    reqs = [i.request for i in ins[: len(bodies)] if i.request is not None]
    assert len(reqs) == len(bodies), "floor bodies must all pass inspect"  # noqa: S101
    routes: list[Route] = []
    refs: list[str] = []
    stores = iter(range(10**6))

    def journal() -> None:
        routes.clear()
        refs.clear()

        async def go() -> None:
            store = SqliteStore(tmp / "floor" / f"j{next(stores)}.sqlite3")
            await store.start()
            todo = iter(reqs)

            async def caller() -> None:
                for r in todo:
                    assert isinstance(r.body, Transfer)  # noqa: S101
                    route = router.route(r.body, now)
                    routes.append(route)
                    b = r.body
                    item = NewItem(
                        None,
                        b.payer_acct,
                        b.payer_name,
                        b.payee_acct,
                        b.payee_name,
                        b.payee_bank_code,
                        b.amount,
                        b.ccy,
                        b.priority,
                        b.biz_type,
                        b.purpose,
                        State.QUEUED,
                        route.engine,
                        route.receiver,
                        route.work_date,
                        None,
                    )
                    got = await store.accept(
                        NewRequest(
                            r.head.corp_id,
                            r.head.msg_id,
                            r.head.oper_id,
                            "PAY",
                            r.digest,
                            now,
                            (item,),
                        )
                    )
                    refs.append(got.record.gw_ref or "")

            await asyncio.gather(*(caller() for _ in range(concurrency)))
            await store.close()

        asyncio.run(go())

    (tmp / "floor").mkdir(exist_ok=True)
    out[f"route + journal accept ({concurrency} concurrent, group commit)"] = timed(
        journal, len(reqs), rounds
    )
    rsps = [
        Response(
            "PAY",
            r.head.corp_id,
            r.head.msg_id,
            now,
            "0000",
            "accepted",
            ref,
            status=StatusView(
                State.QUEUED,
                rt.engine,
                rt.work_date,
                history=(Transition(State.ACCEPTED, now), Transition(State.QUEUED, now)),
            ),
        )
        for r, rt, ref in zip(reqs, routes, refs, strict=False)
    ]
    out["render + sign response"] = timed(lambda: [desk.render(r) for r in rsps], len(rsps), rounds)
    out["sum of steps"] = sum(out.values())

    def inline() -> None:
        async def go() -> None:
            pool = WorkerPool(desk_setup(cfg), 0)
            await pool.start()
            store = SqliteStore(tmp / "floor" / f"p{next(stores)}.sqlite3")
            await store.start()
            p = Pipeline(
                BusinessClock(START),
                lambda: pool,
                store,
                lambda: router,
                lambda e: None,
                PipelineSettings(),
            )
            conn = ConnInfo("bench", 1, "127.0.0.1", 1, True, "TLSv1.3", None)
            todo = iter(bodies)

            async def caller() -> None:
                for b in todo:
                    await p.handle(b, conn)

            await asyncio.gather(*(caller() for _ in range(concurrency)))
            await store.close()

        asyncio.run(go())

    out["Pipeline.handle inline, all steps (no sockets)"] = timed(inline, len(bodies), rounds)
    return out


# -------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--workers", type=int, default=2, help="gatewayd workers.processes (0 = inline)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop at this total msgs/s (0: max, closed loop)",
    )
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--window", type=int, default=32, help="outstanding requests per connection")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--gen-procs", type=int, default=2, help="load-generator processes")
    p.add_argument("--mix", choices=sorted(MIXES), default="mixed", help="payee banks / engines")
    p.add_argument(
        "--max-guess", type=float, default=8000.0, help="max mode: msgs/s to pre-sign for"
    )
    p.add_argument("--no-clearing", action="store_true", help="no clearing simulator")
    p.add_argument("--no-floor", action="store_true", help="skip the in-process floor")
    p.add_argument("--floor-n", type=int, default=2000)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, journals)")
    return p


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the bench like Ctrl-C: the finally blocks shut everything down."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.warmup + args.duration > 150:
        sys.exit("keep warm-up + duration under 150 s (SendTime freshness, corplink.md §7)")
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    gens: list[tuple[mp.Process, Connection]] = []
    mode = (
        f"open loop {args.rate:g} msgs/s"
        if args.rate > 0
        else f"max (closed loop, window {args.window})"
    )
    print(
        f"bench_pipeline: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}; workers {args.workers}; {mode}; {args.connections} TLS connections; "
        f"{args.warmup:g}+{args.duration:g} s x {args.repeat}; clearing {'off' if args.no_clearing else 'sim'}; mix {args.mix}",
        flush=True,
    )
    try:
        pki = generate_dev_pki(tmp / "pki")
        configure_logging("warning")
        target = args.rate if args.rate > 0 else args.max_guess
        per_conn = (
            int(target * 1.05 * (args.warmup + args.duration) / args.connections) + args.window
        )
        ctx = mp.get_context("fork")
        procs = max(1, min(args.gen_procs, args.connections))
        for g in range(procs):
            spec = GenSpec(
                g,
                tuple(range(g, args.connections, procs)),
                per_conn,
                pki.dir,
                args.window,
                args.mix,
            )
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=gen_main, args=(spec, child), daemon=True)
            proc.start()
            gens.append((proc, parent))
        signing = max(pipe.recv() for _, pipe in gens)
        print(
            f"pre-signed {per_conn * args.connections} PAYs in {signing:.1f} s ({procs} processes)",
            flush=True,
        )
        runs: list[RunStats] = []
        for n in range(args.repeat):
            s = one_run(args, tmp, n, pki, gens)
            runs.append(s)
            others = (
                ", ".join(f"{k} {v}" for k, v in sorted(s.codes.items()) if k != "0000") or "none"
            )
            print(
                f"run {n + 1}: accepted {s.accepted:7.0f} msgs/s; other RetCodes: {others}; "
                f"ack ms p50 {s.lat_ms[0]:.1f} p90 {s.lat_ms[1]:.1f} p99 {s.lat_ms[2]:.1f} max {s.lat_ms[3]:.1f}; "
                f"gatewayd {s.cpu_us:.0f} µs CPU/msg; replies {s.verified}"
                + ("; PRE-SIGNED BUDGET EXHAUSTED (raise --max-guess)" if s.exhausted else "")
                + (
                    f"; open-loop backlog up to {s.backlog} msgs"
                    if args.rate > 0 and s.backlog > 1
                    else ""
                ),
                flush=True,
            )
            print(
                "   CPU (cores busy): " + ", ".join(f"{k} {v:.2f}" for k, v in s.cores.items()),
                flush=True,
            )
        med = statistics.median
        acc, cpu = med(r.accepted for r in runs), med(r.cpu_us for r in runs)
        print(
            f"\nmedian of {len(runs)}: accepted {acc:.0f} msgs/s, ack ms p50 {med(r.lat_ms[0] for r in runs):.1f} "
            f"p90 {med(r.lat_ms[1] for r in runs):.1f} p99 {med(r.lat_ms[2] for r in runs):.1f} "
            f"max {med(r.lat_ms[3] for r in runs):.1f}; {cpu:.0f} µs CPU/msg; load {os.getloadavg()[0]:.2f}"
        )
        roles = runs[0].cores.keys()
        print(
            "   CPU (cores busy, median): "
            + ", ".join(f"{k} {med(r.cores.get(k, 0.0) for r in runs):.2f}" for k in roles)
        )
        if args.no_floor:
            return 0
        key = load_signing_key(*pki.client("C100000001", "op01"))
        bodies = [
            sign_pay(key, "C100000001", "op01", "6222000000000001", f"F-{i:07d}", i, args.mix)
            for i in range(args.floor_n)
        ]
        fl = floor(tmp, pki, bodies, 5, 64)
        print(
            f"\nfloor, one process, median of 5 rounds x {args.floor_n} msgs (CPU µs/msg -> 1-core msgs/s):"
        )
        for k, v in fl.items():
            print(f"   {k:58s} {v:7.0f} µs  {1e6 / v:7.0f} msgs/s")
        whole = fl["Pipeline.handle inline, all steps (no sockets)"]
        print(
            f"\ndaemon {args.workers} workers: {acc:.0f} msgs/s, {cpu:.0f} µs CPU/msg  vs  "
            f"floor: {whole:.0f} µs/msg in one process ({1e6 / whole:.0f} msgs/s per core; steps sum {fl['sum of steps']:.0f} µs)"
        )
        print(
            f"ratio daemon/floor: CPU per msg {cpu / whole:.2f}x; throughput {acc / (1e6 / whole):.2f}x one core's floor"
        )
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for proc, pipe in gens:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(None)
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
