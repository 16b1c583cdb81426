"""Throughput of the whole gateway: the real ``gatewayd`` under pipelined, signed PAYs.

Run on purpose (never in the test suite); loopback only, bounded in time::

    python bench/bench_pipeline.py [--workers 2] [--rate 2000] [--no-clearing]

Everything lives in one temp dir: a dev PKI, and per run a private mosquitto,
the clearing simulator as its own process (``gateway-sim clearing``) and a
fresh ``gatewayd`` (fresh journal) with an overlay: business clock at 10:00 on
a recent weekday, one mutual-TLS listener, ``workers.processes = --workers``.
The load comes from ``--gen-procs`` processes that PRE-SIGN every request
before the timed phase, so their work per message is a frame write and a
byte search of each reply for MsgId and RetCode; a sample of replies is
verified against the gateway's response certificate after each run.

Max mode (default) is closed loop: each connection keeps ``--window``
requests outstanding.  ``--rate R`` is open loop at R msgs/s in total (the
window still caps each connection; "backlog" shows a missed target).
Printed: accepted (0000) msgs/s, other RetCodes, client-measured ack latency
(send → reply), CPU µs per reply of the gatewayd process tree from
/proc/<pid>/stat (event-loop thread, other threads, worker processes), the
other processes' CPU and the machine's load.  Then the FLOOR: the same steps
in this one process (``Desk`` inspect and render, router + ``SqliteStore``
accept, and ``Pipeline.handle`` inline without sockets), in µs per message.
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
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

# This repository's ``gateway`` first: an editable install may point at another checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from lxml import etree

from gateway.clock import SHANGHAI, BusinessClock
from gateway.config import load_config
from gateway.desk import Desk, Inspection
from gateway.journal.records import NewItem, NewRequest
from gateway.journal.sqlite import SqliteStore
from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.keys.xmldsig import SigningKey, load_signing_key, sign_enveloped
from gateway.model import Request, Response, Route, State, StatusView, Transfer, Transition
from gateway.net.admission import Admission
from gateway.net.framing import encode_frame
from gateway.net.session import ConnInfo
from gateway.net.tls import client_context
from gateway.ops.logs import configure_logging
from gateway.pipeline import Pipeline, PipelineSettings
from gateway.server import build_router, desk_setup
from gateway.sim.erp import Payment, build_request, parse_reply, transfer_body
from gateway.testing import start_broker
from gateway.workers import WorkerPool

ROOT = Path(__file__).resolve().parents[1]
HZ = os.sysconf("SC_CLK_TCK")
#: USBKEY operators of the dev PKI (no per-operator amount limit) and a payer account each.
OPERATORS = (
    ("C100000001", "op01", "6222000000000001"),
    ("C100000002", "op01", "6222000000000101"),
    ("C100000003", "op01", "6222000000000201"),
)
_BEPS = (("102290000011", "12.30"), ("105584000005", "49.99"))
#: mixed: a quarter intra-bank, a quarter HVPS (≥ 50,000), half BEPS (docs/routing-rules.md §3).
MIXES = {
    "mixed": (("103290000018", "1200.50"), ("104100000004", "88000.00"), *_BEPS),
    "beps": _BEPS,
}
INLINE = "Pipeline.handle inline, all steps, no sockets"
#: Every client is 127.0.0.1 with 3 CorpIds: lift the per-address and per-CorpId rates
#: so the bench measures the pipeline, not the admission policy.
ADMISSION = {k: 1e6 for k in ("frame_rate_per_ip", "frame_burst_per_ip", "corp_rate", "corp_burst")}


def business_start() -> datetime:
    """10:00 Asia/Shanghai on the latest weekday up to today: every engine is open."""
    d = datetime.now(SHANGHAI).date()
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=SHANGHAI)


# gatewayd's clock.start and every request's SendTime (docs/protocol.md §7)
START = business_start()


def sign_pay(key: SigningKey, op: tuple[str, str, str], msg_id: str, i: int, mix: str) -> bytes:
    code, amount = MIXES[mix][i % len(MIXES[mix])]
    p = Payment(op[2], "付款人", f"6217{i:012d}", "收款人", code, Decimal(amount))
    root = build_request("PAY", op[0], op[1], msg_id, START, transfer_body(p))
    sign_enveloped(root, key)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# ------------------------------------------------------------- load generator


@dataclass(frozen=True)
class GenSpec:
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
    backlog: int = 0


@dataclass
class _Run:
    t0: float
    t_warm: float
    t_end: float
    closed_loop: bool
    res: GenResult = field(default_factory=GenResult)


class _Conn(asyncio.Protocol):
    """One pipelining TLS connection; frames and MsgIds were prepared before the run."""

    def __init__(self, frames: list[bytes], ids: list[bytes], window: int, run: _Run) -> None:
        self.frames, self.ids, self.window, self.run = frames, ids, window, run
        self.next = 0
        self.sent: dict[bytes, float] = {}
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def me(self) -> _Conn:
        """The protocol factory: this very connection."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def fill(self, upto: int) -> None:
        now = time.monotonic()
        limit = min(upto, len(self.frames), self.next + self.window - len(self.sent))
        if self.next == len(self.frames) and now < self.run.t_end:
            self.run.res.exhausted = True
        if self.transport is None or now >= self.run.t_end or limit <= self.next:
            return
        for i in range(self.next, limit):
            self.sent[self.ids[i]] = now
        self.transport.write(b"".join(self.frames[self.next : limit]))
        self.next = limit

    def data_received(self, data: bytes) -> None:
        buf, run = self.buf, self.run
        buf += data
        pos, n, now = 0, len(buf), time.monotonic()
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


async def _load(spec: GenSpec, cmd: dict[str, Any], prepared: list[list[bytes]]) -> GenResult:
    run = _Run(cmd["t0"], cmd["t_warm"], cmd["t_end"], cmd["rate"] <= 0)
    pki, loop = DevPki.open(spec.pki_dir), asyncio.get_running_loop()
    conns: list[_Conn] = []
    for c, frames in zip(spec.conns, prepared, strict=True):
        kp, cp = pki.client(*OPERATORS[c % len(OPERATORS)][:2])
        ids = [f"B{c:03d}-{i:08d}".encode() for i in range(len(frames))]
        conn = _Conn(frames, ids, spec.window, run)
        ctx = client_context(pki.server_ca, cp, kp)
        host, port = cmd["host"], cmd["port"]
        await loop.create_connection(conn.me, host, port, ssl=ctx, server_hostname="localhost")
        conns.append(conn)
    await asyncio.sleep(max(0.0, run.t0 - time.monotonic()))
    if run.closed_loop:
        for conn in conns:
            conn.fill(len(conn.frames))
    per_conn = cmd["rate"] / len(conns)
    while not run.closed_loop and (now := time.monotonic()) < run.t_end:
        for k, conn in enumerate(conns):  # phases spread the connections' sends evenly
            due = int((now - run.t0) * per_conn + k / len(conns)) + 1
            conn.fill(due)
            if now >= run.t_warm:
                run.res.backlog = max(run.res.backlog, due - conn.next)
        await asyncio.sleep(0.001)
    await asyncio.sleep(max(0.0, run.t_end - time.monotonic()))
    deadline = time.monotonic() + 5  # let in-flight replies come back before closing
    while any(c.sent and c.transport for c in conns) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0.1)
    return run.res


def gen_main(spec: GenSpec, pipe: Connection) -> None:
    """A load-generator process: pre-sign, report the time it took, then run each command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    pki, t = DevPki.open(spec.pki_dir), time.perf_counter()
    prepared: list[list[bytes]] = []
    for c in spec.conns:
        op = OPERATORS[c % len(OPERATORS)]
        key = load_signing_key(*pki.client(op[0], op[1]))
        prepared.append(
            [
                encode_frame(sign_pay(key, op, f"B{c:03d}-{i:08d}", i, spec.mix))
                for i in range(spec.per_conn)
            ]
        )
    pipe.send(time.perf_counter() - t)
    while (cmd := pipe.recv()) is not None:
        pipe.send(asyncio.run(_load(spec, cmd, prepared)))


# ------------------------------------------------------------ CPU accounting


def start_generators(
    gens: list[tuple[BaseProcess, Connection]],
    args: argparse.Namespace,
    pki: DevPki,
    per_s: float,
    min_procs: int,
) -> None:
    """Fork the load generators and wait until each has pre-signed its PAYs.

    Each one is appended to `gens` as soon as it starts, so that `stop_generators`
    in the caller's finally block reaps those that started if a later one fails.
    Shared with bench_nodes.py.
    """
    per_conn = int(per_s * 1.05 * (args.warmup + args.duration) / args.connections)
    ctx = mp.get_context("fork")  # no thread runs yet; children inherit the imports
    procs = max(min_procs, min(args.gen_procs, args.connections))
    for g in range(procs):
        conns = tuple(range(g, args.connections, procs))
        spec = GenSpec(conns, per_conn + args.window, pki.dir, args.window, args.mix)
        parent, child = ctx.Pipe()
        gp = ctx.Process(target=gen_main, args=(spec, child), daemon=True)
        gp.start()
        gens.append((gp, parent))
    took = max(pipe.recv() for _, pipe in gens)
    print(f"pre-signed {per_conn * args.connections} PAYs in {took:.1f} s", flush=True)


def stop_generators(gens: list[tuple[BaseProcess, Connection]]) -> None:
    """Tell each generator to exit, then terminate any that do not."""
    for proc, pipe in gens:
        with contextlib.suppress(OSError, ValueError):
            pipe.send(None)
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def _stat(path: str) -> tuple[int, int]:
    """(ppid, utime+stime ticks) from a /proc stat file; (0, 0) once it is gone."""
    try:
        data = Path(path).read_text()
    except OSError:
        return 0, 0
    f = data[data.rfind(")") + 2 :].split()
    return int(f[1]), int(f[11]) + int(f[12])


def cpu_snapshot(daemon: int, others: dict[str, list[int]]) -> Counter[str]:
    """CPU ticks by role: the gatewayd tree (threads, helpers, workers), others, machine."""
    ppid = {int(d): _stat(f"/proc/{d}/stat")[0] for d in os.listdir("/proc") if d.isdigit()}
    out: Counter[str] = Counter()
    for tid in os.listdir(f"/proc/{daemon}/task"):
        role = "gw event-loop thread" if int(tid) == daemon else "gw other threads"
        out[role] += _stat(f"/proc/{daemon}/task/{tid}/stat")[1]
    for child in (p for p, pp in ppid.items() if pp == daemon):
        out["gw forkserver+tracker"] += _stat(f"/proc/{child}/stat")[1]
        for p in (p for p, pp in ppid.items() if pp == child):
            out["gw workers"] += _stat(f"/proc/{p}/stat")[1]
    for role, pids in others.items():
        out[role] += sum(_stat(f"/proc/{p}/stat")[1] for p in pids)
    with open("/proc/stat") as fh:
        cpu = [int(x) for x in fh.readline().split()[1:]]
    out["machine busy"] = sum(cpu) - cpu[3] - cpu[4] - cpu[7]  # not idle, iowait, steal
    out["machine steal"] = cpu[7]
    return out


# ------------------------------------------------------------- one daemon run


@dataclass
class RunStats:
    accepted: float  # 0000 replies per second
    codes: Counter[str]
    lat_ms: tuple[float, ...]  # p50, p90, p99, max
    cpu_us: float  # gatewayd tree CPU per reply
    cores: dict[str, float]  # CPU seconds per second, by role
    note: str


def stop_proc(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def one_run(
    args: argparse.Namespace, run_dir: Path, pki: DevPki, gens: list[tuple[BaseProcess, Connection]]
) -> RunStats:
    broker = start_broker(run_dir / "broker")
    sim = gw = None
    log = (run_dir / "processes.log").open("wb")
    env = os.environ | {"PYTHONPATH": str(ROOT)}  # the same gateway code as this process
    popen: dict[str, Any] = {"stdout": log, "stderr": subprocess.STDOUT, "cwd": ROOT, "env": env}
    try:
        if not args.no_clearing:
            keys = ["--key", str(pki.clearing_system_key), "--cert", str(pki.clearing_system_cert)]
            peer = ["--gateway-cert", str(pki.clearing_cert), "--client-id", run_dir.name]
            argv = [sys.executable, "-m", "gateway.cli.sim", "clearing", "--broker", broker.url]
            sim = subprocess.Popen([*argv, *keys, *peer], **popen)
        (overlay := run_dir / "overlay.toml").write_text(
            f'environment = "test"\nstate_dir = "{run_dir / "state"}"\n'
            f'[clock]\nstart = "{START.isoformat()}"\n'
            f'[keys]\ndev_pki = false\ndir = "{pki.dir}"\n'
            f'[clearing]\nurl = "{broker.url}"\nclient_id = "gw-{run_dir.name}"\n'
            '[observability]\nmetrics_port = 0\nlog_level = "warning"\n'
            f"[workers]\nprocesses = {args.workers}\n"
            "[admission]\n" + "".join(f"{k} = {v}\n" for k, v in ADMISSION.items()) + "\n"
            '[[listeners]]\nname = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n',
            encoding="utf-8",
        )
        ports = run_dir / "ports.json"
        entry = ["-m", "gateway.cli.gatewayd"]
        if args.switch_interval:  # an experiment on the GIL, without touching gateway code
            code = "from gateway.cli.gatewayd import main; sys.exit(main(sys.argv[1:]))"
            entry = ["-c", f"import sys; sys.setswitchinterval({args.switch_interval}); {code}"]
        gw = subprocess.Popen(
            [sys.executable, *entry, "--config", str(overlay), "--ports-file", str(ports)], **popen
        )
        deadline = time.monotonic() + 60
        while not ports.exists():
            if gw.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gatewayd did not start; see {run_dir / 'processes.log'}")
            time.sleep(0.05)
        host, port = json.loads(ports.read_text())["listeners"]["tls"]
        t0 = time.monotonic() + 3.0  # time to connect and finish the TLS handshakes
        t_warm, t_end = t0 + args.warmup, t0 + args.warmup + args.duration
        cmd = {"host": host, "port": port, "t0": t0, "t_warm": t_warm, "t_end": t_end}
        for _, pipe in gens:
            pipe.send(cmd | {"rate": args.rate / len(gens)})
        others = {"clearing sim": [sim.pid] if sim else [], "mosquitto": [broker.proc.pid]}
        others["load generators"] = [p.pid or 0 for p, _ in gens]
        time.sleep(max(0.0, t_warm - time.monotonic()))
        before = cpu_snapshot(gw.pid, others)
        time.sleep(max(0.0, t_end - time.monotonic()))
        after = cpu_snapshot(gw.pid, others)
        if not all(pipe.poll(30) for _, pipe in gens):
            raise RuntimeError("a load generator did not report within 30 s")
        results: list[GenResult] = [pipe.recv() for _, pipe in gens]
    finally:
        stop_proc(gw, 30)
        stop_proc(sim, 10)
        broker.stop()
        log.close()
    codes: Counter[str] = sum((r.codes for r in results), Counter())
    lat = sorted(x * 1000 for r in results for x in r.latencies) or [float("nan")]
    cores = {k: (after[k] - before[k]) / HZ / args.duration for k in sorted(after)}
    gw_cpu = sum(v for k, v in cores.items() if k.startswith("gw ")) * args.duration
    ours = sum(v for k, v in cores.items() if not k.startswith("machine"))
    cores["machine: not ours"] = cores["machine busy"] - ours  # a shared, noisy machine
    certs = x509.load_pem_x509_certificates(pki.response_cert.read_bytes())
    ok = 0
    samples = [s for r in results for s in r.samples]
    for raw in samples:
        with contextlib.suppress(Exception):
            ok += parse_reply(raw, certs).msg_id != ""
    note = f"{ok}/{len(samples)} sampled replies verified"
    if any(r.exhausted for r in results):
        note += "; PRE-SIGNED REQUESTS RAN OUT (raise --max-guess)"
    if args.rate > 0 and (backlog := max(r.backlog for r in results)) > 1:
        note += f"; fell behind the target rate by up to {backlog} msgs per connection"
    return RunStats(
        accepted=codes["0000"] / args.duration,
        codes=codes,
        lat_ms=tuple(lat[min(len(lat) - 1, int(q * len(lat)))] for q in (0.5, 0.9, 0.99, 1)),
        cpu_us=gw_cpu / max(1, sum(codes.values())) * 1e6,
        cores=cores,
        note=note,
    )


# ------------------------------------------------------------------- floor


def timed(fn: Callable[[], object], n: int, rounds: int) -> tuple[float, ...]:
    """Median over ``rounds`` of µs per message: CPU (all threads), wall, main thread's CPU."""
    me = f"/proc/self/task/{os.getpid()}/stat"
    cpu, wall, main = [], [], []
    for _ in range(rounds):
        c, w, m = time.process_time(), time.perf_counter(), _stat(me)[1]
        fn()
        cpu.append((time.process_time() - c) / n * 1e6)
        wall.append((time.perf_counter() - w) / n * 1e6)
        main.append((_stat(me)[1] - m) / HZ / n * 1e6)
    return statistics.median(cpu), statistics.median(wall), statistics.median(main)


def new_request(r: Request, route: Route, now: datetime) -> NewRequest:
    """What ``Pipeline._pay`` journals for a one-item PAY."""
    b = r.body
    assert isinstance(b, Transfer)
    item = NewItem(
        *(None, b.payer_acct, b.payer_name, b.payee_acct, b.payee_name, b.payee_bank_code),
        *(b.amount, b.ccy, b.priority, b.biz_type, b.purpose, State.QUEUED),
        *(route.engine, route.receiver, route.work_date),
    )
    return NewRequest(r.head.corp_id, r.head.msg_id, r.head.oper_id, "PAY", r.digest, now, (item,))


def floor(
    tmp: Path, pki: DevPki, bodies: list[bytes], rounds: int, conc: int
) -> dict[str, tuple[float, ...]]:
    """The pipeline's steps in this one process, each a ``timed`` triple per message."""
    keys = {"dev_pki": False, "dir": str(pki.dir)}
    over = {"environment": "test", "state_dir": str(tmp), "keys": keys, "admission": ADMISSION}
    cfg = load_config(None, over)
    desk, router, now = Desk(desk_setup(cfg)), build_router(cfg), START + timedelta(seconds=1)
    ins: list[Inspection] = []
    out: dict[str, tuple[float, ...]] = {}
    out["inspect: parse, XSD, verify, credentials, decode"] = timed(
        lambda: ins.extend(desk.inspect(b, "127.0.0.1", now) for b in bodies), len(bodies), rounds
    )
    reqs = [i.request for i in ins[: len(bodies)] if i.request is not None]
    assert len(reqs) == len(bodies), "every floor request must pass inspect"
    done: list[tuple[Request, Route, str]] = []
    stores = iter(range(1000))

    def concurrently(call: Callable[[SqliteStore, Any], Any], items: Sequence[Any]) -> None:
        async def go() -> None:
            store = SqliteStore(tmp / f"floor{next(stores)}.sqlite3")
            await store.start()
            todo = iter(items)

            async def caller() -> None:
                for x in todo:
                    await call(store, x)

            await asyncio.gather(*(caller() for _ in range(conc)))
            await store.close()

        done.clear()
        asyncio.run(go())

    async def accept(store: SqliteStore, r: Request) -> None:
        assert isinstance(r.body, Transfer)
        route = router.route(r.body, now)
        rec = (await store.accept(new_request(r, route, now))).record
        done.append((r, route, rec.gw_ref or "" if rec else ""))

    name = f"route + journal accept ({conc} concurrent, group commit)"
    out[name] = timed(lambda: concurrently(accept, reqs), len(reqs), rounds)
    history = (Transition(State.ACCEPTED, now), Transition(State.QUEUED, now))
    rsps = [
        Response(
            *("PAY", r.head.corp_id, r.head.msg_id, now, "0000", "accepted", ref),
            status=StatusView(State.QUEUED, rt.engine, rt.work_date, history=history),
        )
        for r, rt, ref in done
    ]
    out["render + sign response"] = timed(lambda: [desk.render(r) for r in rsps], len(rsps), rounds)
    out["sum of the steps"] = tuple(sum(v[i] for v in out.values()) for i in range(3))
    pool = WorkerPool(desk_setup(cfg), 0)
    asyncio.run(pool.start())
    conn = ConnInfo("bench", 1, "127.0.0.1", 1, True, "TLSv1.3", None)
    clock, gate = BusinessClock(START), Admission(cfg.admission)

    pipelines: dict[SqliteStore, Pipeline] = {}

    async def handle(store: SqliteStore, body: bytes) -> None:
        def nop(e: object) -> None:
            return None

        if (p := pipelines.get(store)) is None:
            p = Pipeline(clock, lambda: pool, store, lambda: router, nop, PipelineSettings(), gate)
            pipelines[store] = p
        await p.handle(body, conn)

    out[INLINE] = timed(lambda: concurrently(handle, bodies), len(bodies), rounds)
    return out


# -------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Throughput of the real gatewayd (bench/README.md).")
    add = p.add_argument
    add("--workers", type=int, default=2, help="gatewayd workers.processes (0 = inline)")
    add("--rate", type=float, default=0.0, help="open loop at this total msgs/s (0: max)")
    add("--connections", type=int, default=8, help="mutual-TLS client connections")
    add("--window", type=int, default=32, help="outstanding requests per connection")
    add("--duration", type=float, default=15.0, help="measured seconds per run")
    add("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    add("--repeat", type=int, default=3, help="runs, each with a fresh daemon and journal")
    add("--gen-procs", type=int, default=2, help="load-generator processes")
    add("--mix", choices=sorted(MIXES), default="mixed", help="payee banks, hence engines")
    add("--max-guess", type=float, default=6000.0, help="max mode: msgs/s to pre-sign for")
    add("--no-clearing", action="store_true", help="run without the clearing simulator")
    add("--no-floor", action="store_true", help="skip the in-process floor")
    add("--floor-n", type=int, default=2000, help="messages per floor round (5 rounds)")
    add("--switch-interval", type=float, default=0.0, help="experiment: gatewayd's GIL interval")
    add("--keep", action="store_true", help="keep the temp dir (logs, journals)")
    return p


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the bench like Ctrl-C: the finally blocks shut everything down."""
    raise KeyboardInterrupt


def _lat(lat_ms: Sequence[float]) -> str:
    return "ack ms p50 {:.1f} p90 {:.1f} p99 {:.1f} max {:.1f}".format(*lat_ms)


def report(args: argparse.Namespace, runs: list[RunStats], fl: dict[str, Any]) -> None:
    med = statistics.median
    acc, cpu = med(r.accepted for r in runs), med(r.cpu_us for r in runs)
    lat = [med(r.lat_ms[i] for r in runs) for i in range(4)]
    print(f"\nmedian of {len(runs)}: accepted {acc:.0f} msgs/s, {_lat(lat)}; {cpu:.0f} µs CPU/msg")
    roles = ", ".join(f"{k} {med(r.cores.get(k, 0) for r in runs):.2f}" for k in runs[0].cores)
    print(f"  cores busy (median): {roles}; load average {os.getloadavg()[0]:.2f}")
    if not fl:
        return
    print(f"\nfloor, one process, median of 5 rounds x {args.floor_n} msgs:")
    print(f"  {'µs per message':53s} {'CPU':>5s} {'main thread':>11s} {'wall':>5s}  msgs/s/core")
    for k, (c, w, m) in fl.items():
        print(f"  {k:53s} {c:5.0f} {m:11.0f} {w:5.0f}  {1e6 / c:7.0f}")
    whole = fl[INLINE][0]
    print(
        f"\ndaemon {args.workers} workers: {acc:.0f} msgs/s, {cpu:.0f} µs CPU/msg"
        f"  vs  floor: {whole:.0f} µs/msg in one process ({1e6 / whole:.0f} msgs/s per core)"
        f"\nratio daemon/floor: CPU per msg {cpu / whole:.2f}x;"
        f" throughput {acc * whole / 1e6:.2f}x one core's floor"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.warmup + args.duration > 150:
        sys.exit("keep warm-up + duration under 150 s (SendTime freshness, docs/protocol.md §7)")
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    gens: list[tuple[BaseProcess, Connection]] = []
    mode = f"open loop {args.rate:g} msgs/s" if args.rate else f"max, window {args.window}"
    print(
        f"bench_pipeline {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f}; workers {args.workers}; {mode}; {args.connections} TLS "
        f"connections; {args.warmup:g}+{args.duration:g} s x {args.repeat}; clearing "
        f"{'off' if args.no_clearing else 'sim'}; mix {args.mix}",
        flush=True,
    )
    try:
        pki = generate_dev_pki(tmp / "pki")
        configure_logging("warning")
        start_generators(gens, args, pki, args.rate or args.max_guess, 1)
        runs: list[RunStats] = []
        for n in range(args.repeat):
            (run_dir := tmp / f"run{n + 1}").mkdir()
            s = one_run(args, run_dir, pki, gens)
            runs.append(s)
            other = ", ".join(f"{k} x{v}" for k, v in sorted(s.codes.items()) if k != "0000")
            print(
                f"run {n + 1}: accepted {s.accepted:.0f} msgs/s, other RetCodes: {other or 'none'};"
                f" {_lat(s.lat_ms)}; gatewayd {s.cpu_us:.0f} µs CPU/msg; {s.note}\n  cores busy: "
                + ", ".join(f"{k} {v:.2f}" for k, v in s.cores.items()),
                flush=True,
            )
        fl: dict[str, Any] = {}
        if not args.no_floor:
            op = OPERATORS[0]
            key = load_signing_key(*pki.client(op[0], op[1]))
            bodies = [sign_pay(key, op, f"F-{i:07d}", i, args.mix) for i in range(args.floor_n)]
            fl = floor(tmp, pki, bodies, 5, 64)
        report(args, runs, fl)
    except KeyboardInterrupt:
        print("interrupted: shutting down", file=sys.stderr)
        return 130
    finally:
        stop_generators(gens)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
