"""Throughput of the whole gateway: the real ``gatewayd`` under pipelined, signed PAYs.

Run on purpose (never in the test suite); loopback only, bounded in time::

    python bench/bench_pipeline.py [--fronts 2] [--workers 0] [--rate 2000] [--no-clearing]
    python bench/bench_pipeline.py --goals | --soak [--soak-minutes 15] | --burst
    python bench/bench_pipeline.py --idle-connections 10000

(the modes and their goals: bench/README.md and ``pipeline_modes.py``).

Everything lives in one temp dir: a dev PKI, and per run a private mosquitto,
the clearing simulator as its own process (``gateway-sim clearing``) and a
fresh ``gatewayd`` (fresh journal) with an overlay: business clock at 10:00 on
a recent weekday, one mutual-TLS listener; ``--fronts`` and ``--workers``, when
given, set ``workers.fronts`` and ``workers.processes`` (else as shipped).
The load comes from ``--gen-procs`` processes that PRE-SIGN every request
before the timed phase, so their work per message is a frame write and a
byte search of each reply for MsgId and RetCode; a sample of replies is
verified against the gateway's response certificate after each run.  Each
request's SendTime is that of its time slot (docs/protocol.md §7: the gateway
refuses stale SendTimes), so runs of any length stay fresh.

Max mode (default) is closed loop: each connection keeps ``--window``
requests outstanding.  ``--rate R`` is open loop at R msgs/s in total (the
window still caps each connection; "backlog" shows a missed target).
Printed: accepted (0000) msgs/s, other RetCodes, client-measured ack latency
(send → reply), CPU µs per accepted payment of the gatewayd process tree from
/proc/<pid>/stat (the core: its event-loop thread, other threads, worker
processes; the front processes: their event loops, other threads), the
other processes' CPU and the machine's load.  Then the FLOOR: the same steps
in this one process (acceptance and the clearing steps, ``pipeline_floor.py``),
in µs per payment, and the daemon's figures as ratios to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

# This repository's ``gateway`` first: an editable install may point at another checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))  # pipeline_* helpers beside us

import pipeline_floor as pf
import pipeline_probe as probe
from cryptography import x509
from lxml import etree

from gateway.clock import SHANGHAI
from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.keys.xmldsig import SigningKey, load_signing_key, sign_enveloped
from gateway.net.framing import encode_frame
from gateway.net.tls import client_context
from gateway.ops.logs import configure_logging
from gateway.sim.erp import Payment, build_request, parse_reply, transfer_body
from gateway.testing import Broker, start_broker

ROOT = Path(__file__).resolve().parents[1]
HZ = os.sysconf("SC_CLK_TCK")
with (ROOT / "conf" / "gateway.toml").open("rb") as _fh:
    SHIPPED_WORKERS: dict[str, int] = tomllib.load(_fh).get("workers", {})
"""The shipped ``[workers]`` table: what runs when ``--fronts`` / ``--workers`` are not given."""
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
#: Every client is 127.0.0.1 with 3 CorpIds: lift the per-address and per-CorpId rates
#: so the bench measures the pipeline, not the admission policy.
ADMISSION = {k: 1e6 for k in ("frame_rate_per_ip", "frame_burst_per_ip", "corp_rate", "corp_burst")}
#: Seconds from starting gatewayd (its business clock starts at START) to the load's t0.
LEAD_S = 5.0
#: Runs longer than this sign their requests per time slot of SLOT_S seconds.
ONE_SLOT_MAX_S = 150.0
SLOT_S = 30.0


def business_start() -> datetime:
    """10:00 Asia/Shanghai on the latest weekday up to today: every engine is open."""
    d = datetime.now(SHANGHAI).date()
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=SHANGHAI)


START = business_start()  # gatewayd's clock.start; SendTimes follow it (docs/protocol.md §7)


def sign_pay(
    key: SigningKey,
    op: tuple[str, str, str],
    msg_id: str,
    i: int,
    mix: str,
    send_time: datetime = START,
) -> bytes:
    code, amount = MIXES[mix][i % len(MIXES[mix])]
    p = Payment(op[2], "付款人", f"6217{i:012d}", "收款人", code, Decimal(amount))
    root = build_request("PAY", op[0], op[1], msg_id, send_time, transfer_body(p))
    sign_enveloped(root, key)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# ------------------------------------------------------------- load generator


@dataclass(frozen=True)
class GenSpec:
    """Frames of connection c: ``slots`` time slots of ``per_slot`` each, in order.

    Slot s covers [s × slot_s, (s+1) × slot_s) after the load's t0 and its
    requests carry SendTime = START + LEAD_S + the slot's middle, so SendTime
    stays within slot_s / 2 (plus the lead's error) of the daemon's clock.
    """

    conns: tuple[int, ...]  # global connection numbers owned by this process
    per_slot: int  # pre-signed requests per connection and slot
    pki_dir: Path
    window: int
    mix: str
    slots: int
    slot_s: float


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

    def __init__(self, frames: list[bytes], ids: list[bytes], spec: GenSpec, run: _Run) -> None:
        self.frames, self.ids, self.window, self.run = frames, ids, spec.window, run
        self.per_slot, self.slot_s = spec.per_slot, spec.slot_s
        self.next = 0  # index of the next frame to send
        self.count = 0  # frames sent in this run
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
        """Send until ``upto`` frames went out in this run (window and frames permitting)."""
        now = time.monotonic()
        if self.per_slot:  # the current slot's frames: earlier slots' leftovers go unused
            self.next = max(self.next, int((now - self.run.t0) / self.slot_s) * self.per_slot)
        if self.next >= len(self.frames) and now < self.run.t_end:
            self.run.res.exhausted = True
        n = min(upto - self.count, self.window - len(self.sent), len(self.frames) - self.next)
        if self.transport is None or now >= self.run.t_end or n <= 0:
            return
        end = self.next + n
        for i in range(self.next, end):
            self.sent[self.ids[i]] = now
        self.transport.write(b"".join(self.frames[self.next : end]))
        self.next, self.count = end, self.count + n

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
            self.fill(sys.maxsize)


async def _load(spec: GenSpec, cmd: dict[str, Any], prepared: list[list[bytes]]) -> GenResult:
    run = _Run(cmd["t0"], cmd["t_warm"], cmd["t_end"], cmd["rate"] <= 0)
    pki, loop = DevPki.open(spec.pki_dir), asyncio.get_running_loop()
    conns: list[_Conn] = []
    for c, frames in zip(spec.conns, prepared, strict=True):
        kp, cp = pki.client(*OPERATORS[c % len(OPERATORS)][:2])
        ids = [f"B{c:03d}-{i:08d}".encode() for i in range(len(frames))]
        conn = _Conn(frames, ids, spec, run)
        ctx = client_context(pki.server_ca, cp, kp)
        host, port = cmd["host"], cmd["port"]
        await loop.create_connection(conn.me, host, port, ssl=ctx, server_hostname="localhost")
        conns.append(conn)
    await asyncio.sleep(max(0.0, run.t0 - time.monotonic()))
    if run.closed_loop:
        for conn in conns:
            conn.fill(sys.maxsize)
    per_conn = cmd["rate"] / len(conns)
    while not run.closed_loop and (now := time.monotonic()) < run.t_end:
        for k, conn in enumerate(conns):  # phases spread the connections' sends evenly
            due = int((now - run.t0) * per_conn + k / len(conns)) + 1
            conn.fill(due)
            if now >= run.t_warm:
                run.res.backlog = max(run.res.backlog, due - conn.count)
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
        frames = []
        for s in range(spec.slots):
            send_time = START + timedelta(seconds=LEAD_S + (s + 0.5) * spec.slot_s)
            for i in range(s * spec.per_slot, (s + 1) * spec.per_slot):
                pay = sign_pay(key, op, f"B{c:03d}-{i:08d}", i, spec.mix, send_time)
                frames.append(encode_frame(pay))
        prepared.append(frames)
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
    Runs up to ONE_SLOT_MAX_S are one slot (SendTime mid-run); longer ones are cut
    into SLOT_S slots, each sized from ``per_s``.  Shared with bench_nodes.py.
    """
    total = args.warmup + args.duration + 3.0  # t0 is 3 s after the daemon is up
    slot_s = total if total <= ONE_SLOT_MAX_S else SLOT_S
    slots = math.ceil(total / slot_s)
    per_slot = int(per_s * 1.05 * slot_s / args.connections) + args.window
    ctx = mp.get_context("fork")  # no thread runs yet; children inherit the imports
    procs = max(min_procs, min(args.gen_procs, args.connections))
    for g in range(procs):
        conns = tuple(range(g, args.connections, procs))
        spec = GenSpec(conns, per_slot, pki.dir, args.window, args.mix, slots, slot_s)
        parent, child = ctx.Pipe()
        gp = ctx.Process(target=gen_main, args=(spec, child), daemon=True)
        gp.start()
        gens.append((gp, parent))
    took = max(pipe.recv() for _, pipe in gens)
    n = per_slot * slots * args.connections
    print(f"pre-signed {n} PAYs ({slots} SendTime slots) in {took:.1f} s", flush=True)


def stop_generators(gens: list[tuple[BaseProcess, Connection]]) -> None:
    """Tell each generator to exit, then terminate any that do not."""
    for proc, pipe in gens:
        with contextlib.suppress(OSError, ValueError):
            pipe.send(None)
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    gens.clear()


def _stat(path: str) -> tuple[int, int]:
    """(ppid, utime+stime ticks) from a /proc stat file; (0, 0) once it is gone."""
    try:
        data = Path(path).read_text()
    except OSError:
        return 0, 0
    f = data[data.rfind(")") + 2 :].split()
    return int(f[1]), int(f[11]) + int(f[12])


def _threads(pid: int) -> tuple[int, int]:
    """(main thread, other threads) CPU ticks of one process."""
    main = other = 0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            ticks = _stat(f"/proc/{pid}/task/{tid}/stat")[1]
            if int(tid) == pid:
                main += ticks
            else:
                other += ticks
    return main, other


def cpu_snapshot(daemon: int, others: dict[str, list[int]]) -> Counter[str]:
    """CPU ticks by role: the gatewayd tree, the others, the machine.

    gatewayd's roles ("gw ..."): the core process (event-loop thread, other
    threads), its front processes (``python -m gateway.procs.front``, children
    of the core: their main threads run their event loops) and anything they
    start, and the core's multiprocessing forkserver and resource tracker with
    the worker processes the forkserver forked (any other child of the core:
    "gw core other children").
    """
    kids = probe.children_map()
    out: Counter[str] = Counter()
    loop, threads = _threads(daemon)
    out["gw core event-loop thread"] += loop
    out["gw core other threads"] += threads
    for child in kids.get(daemon, []):
        kind = probe.kind(child)
        if kind == "front":
            loop, threads = _threads(child)
            out["gw fronts event loops"] += loop
            out["gw fronts other threads"] += threads
            for p in probe.tree(child, kids)[1:]:
                out["gw fronts children"] += _stat(f"/proc/{p}/stat")[1]
        elif kind in ("forkserver", "tracker"):
            out["gw core forkserver+tracker"] += _stat(f"/proc/{child}/stat")[1]
            for p in probe.tree(child, kids)[1:]:
                out["gw core workers"] += _stat(f"/proc/{p}/stat")[1]
        else:  # nothing else is started today; counted, not lost, if it ever is
            for p in probe.tree(child, kids):
                out["gw core other children"] += _stat(f"/proc/{p}/stat")[1]
    for role, pids in others.items():
        out[role] += sum(_stat(f"/proc/{p}/stat")[1] for p in pids)
    with open("/proc/stat") as fh:
        cpu = [int(x) for x in fh.readline().split()[1:]]
    out["machine busy"] = sum(cpu) - cpu[3] - cpu[4] - cpu[7]  # not idle, iowait, steal
    out["machine steal"] = cpu[7]
    return out


def front_ticks(daemon: int) -> dict[int, int]:
    """CPU ticks of each front process (its whole tree) by pid: how evenly they share."""
    kids = probe.children_map()
    return {
        c: sum(_stat(f"/proc/{p}/stat")[1] for p in probe.tree(c, kids))
        for c in kids.get(daemon, [])
        if probe.kind(c) == "front"
    }


_CONSOLE_PROBLEM = re.compile(r"\[(warning|error|critical)\s*\]\s+(\S+)")


def log_problems(path: Path) -> Counter[str]:
    """Warnings and errors in a run's log (gatewayd, its fronts, the simulator), by event.

    The shipped log format is JSON lines (the simulator's: console lines); any
    other line that names an error (a traceback) counts as "unstructured".
    Left out: ``admin_group_missing`` (the bench runs without the admin group).
    """
    found: Counter[str] = Counter()
    with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                if m := _CONSOLE_PROBLEM.search(line):  # the simulator's console lines
                    found[f"{m.group(1)} {m.group(2)}"] += 1
                elif "Traceback" in line or "Error" in line:
                    found["unstructured"] += 1
                continue
            if not isinstance(rec, dict):
                continue
            level, event = rec.get("level"), str(rec.get("event"))
            if level in ("warning", "error", "critical") and event != "admin_group_missing":
                found[f"{level} {event}"] += 1
    return found


def workers_label(args: argparse.Namespace) -> str:
    """The process model measured: fronts and core worker processes, "(shipped)" if not overlaid."""
    fronts = SHIPPED_WORKERS.get("fronts", 0) if args.fronts is None else args.fronts
    procs = SHIPPED_WORKERS.get("processes", 2) if args.workers is None else args.workers
    shipped = " (shipped)" if args.fronts is None and args.workers is None else ""
    return f"fronts {fronts}, workers {procs}{shipped}"


# ------------------------------------------------------------- one daemon run


@dataclass
class RunStats:
    accepted: float  # 0000 replies per second
    codes: Counter[str]
    lat_ms: tuple[float, ...]  # p50, p90, p99, max
    cpu_us: float  # gatewayd tree CPU per accepted payment
    cores: dict[str, float]  # CPU seconds per second, by role
    note: str
    rate: float = 0.0  # offered msgs/s (0: closed loop)
    fsync_p99_ms: float = math.nan  # journal group commit, from the daemon's metrics
    inbound_per_s: float = math.nan  # inbound clearing messages applied per second
    backlog: probe.Backlog | None = None  # at the end of the measured window
    gw_rss_mib: float = math.nan
    gw_pss_mib: float = math.nan
    front_cores: tuple[float, ...] = ()  # each front's cores busy, by pid
    front_conns: tuple[int, ...] = ()  # each front's client connections, by pid

    def keeps_up(self) -> bool:
        """Goal 5's two backlog bounds, at the end of the run."""
        b = self.backlog
        offered = self.rate or self.accepted
        return b is not None and (
            max(b.oldest_queued_s.values(), default=0.0) <= 5.0 and b.unfinished <= 2 * offered
        )


@dataclass
class RunCtx:
    """What a run's hooks may look at (and which processes are whose)."""

    args: argparse.Namespace
    run_dir: Path
    gw: subprocess.Popen[bytes]
    sim: subprocess.Popen[bytes] | None
    broker: Broker
    gens: list[tuple[BaseProcess, Connection]]
    metrics_url: str
    journal: Path
    sim_stats: Path
    rate: float
    t0: float = 0.0
    t_warm: float = 0.0
    t_end: float = 0.0

    def roots(self) -> dict[str, list[int]]:
        """Process roots by role, as the CPU table names them."""
        roots = {"gatewayd": [self.gw.pid], "mosquitto": [self.broker.proc.pid]}
        if self.sim is not None:
            roots["clearing sim"] = [self.sim.pid]
        roots["load generators"] = [p.pid or 0 for p, _ in self.gens]
        return roots


class Hooks:
    """A mode's additions to a run; the plain run has none."""

    admission: dict[str, float] = {}  # noqa: RUF012 - overridden per instance
    max_connections: int = 0  # 0: as shipped
    overlay: str = ""  # more TOML tables, for a mode whose subject is a setting (screening)

    def before_load(self, ctx: RunCtx) -> None:
        """After the daemon is up, before the load generators start."""

    def measure(self, ctx: RunCtx) -> None:
        """Between t_warm and t_end (the CPU window); by default just waits."""
        time.sleep(max(0.0, ctx.t_end - time.monotonic()))

    def others(self) -> dict[str, list[int]]:
        """More processes of the mode, for the CPU table."""
        return {}

    def after(self, ctx: RunCtx) -> None:
        """Once the measured window is over, the daemon still up."""


def stop_proc(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def write_overlay(
    args: argparse.Namespace, run_dir: Path, pki: DevPki, broker_url: str, hooks: Hooks
) -> Path:
    """The overlay: only what bench/README.md allows, the shipped file otherwise."""
    admission = ADMISSION | hooks.admission
    listener = '[[listeners]]\nname = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n'
    if hooks.max_connections:
        listener += f"max_connections = {hooks.max_connections}\n"
    workers = "".join(
        f"{key} = {value}\n"
        for key, value in (("fronts", args.fronts), ("processes", args.workers))
        if value is not None
    )
    workers = f"[workers]\n{workers}" if workers else ""
    (overlay := run_dir / "overlay.toml").write_text(
        f'environment = "test"\nstate_dir = "{run_dir / "state"}"\n'
        f'[clock]\nstart = "{START.isoformat()}"\n'
        f'[keys]\ndev_pki = false\ndir = "{pki.dir}"\n'
        f'[clearing]\nurl = "{broker_url}"\nclient_id = "gw-{run_dir.name}"\n'
        "[observability]\nmetrics_port = 0\n"
        + workers
        + "[admission]\n"
        + "".join(f"{k} = {v}\n" for k, v in admission.items())
        + "\n"
        + hooks.overlay
        + listener,
        encoding="utf-8",
    )
    return overlay


def one_run(
    args: argparse.Namespace,
    run_dir: Path,
    pki: DevPki,
    gens: list[tuple[BaseProcess, Connection]],
    hooks: Hooks | None = None,
    rate: float | None = None,
) -> RunStats:
    hooks = hooks or Hooks()
    rate = args.rate if rate is None else rate
    broker = start_broker(run_dir / "broker")
    sim = gw = None
    log = (run_dir / "processes.log").open("wb")
    env = os.environ | {"PYTHONPATH": str(ROOT)}  # the same gateway code as this process
    popen: dict[str, Any] = {"stdout": log, "stderr": subprocess.STDOUT, "cwd": ROOT, "env": env}
    sim_stats = run_dir / "clearing-sim-stats.json"
    try:
        if not args.no_clearing:
            keys = ["--key", str(pki.clearing_system_key), "--cert", str(pki.clearing_system_cert)]
            peer = ["--gateway-cert", str(pki.clearing_cert), "--client-id", run_dir.name]
            argv = [sys.executable, "-m", "gateway.cli.sim", "clearing", "--broker", broker.url]
            stats = ["--stats-file", str(sim_stats)]
            sim = subprocess.Popen([*argv, *keys, *peer, *stats], **popen)
        overlay = write_overlay(args, run_dir, pki, broker.url, hooks)
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
        bound = json.loads(ports.read_text())
        host, port = bound["listeners"]["tls"]
        mhost, mport = bound["metrics"]
        ctx = RunCtx(
            args,
            run_dir,
            gw,
            sim,
            broker,
            gens,
            f"http://{mhost}:{mport}/metrics",
            run_dir / "state" / "journal.sqlite3",
            sim_stats,
            rate,
        )
        hooks.before_load(ctx)
        ctx.t0 = time.monotonic() + 3.0  # time to connect and finish the TLS handshakes
        ctx.t_warm, ctx.t_end = ctx.t0 + args.warmup, ctx.t0 + args.warmup + args.duration
        cmd = {"host": host, "port": port, "t0": ctx.t0, "t_warm": ctx.t_warm, "t_end": ctx.t_end}
        for _, pipe in gens:
            pipe.send(cmd | {"rate": rate / len(gens)})
        others = {"clearing sim": [sim.pid] if sim else [], "mosquitto": [broker.proc.pid]}
        others["load generators"] = [p.pid or 0 for p, _ in gens]
        others |= hooks.others()
        time.sleep(max(0.0, ctx.t_warm - time.monotonic()))
        f0 = front_ticks(gw.pid)
        before, m0 = cpu_snapshot(gw.pid, others), probe.scrape(ctx.metrics_url)
        front_conns = probe.connections(sorted(f0), port)
        hooks.measure(ctx)
        after, m1 = cpu_snapshot(gw.pid, others), probe.scrape(ctx.metrics_url)
        f1 = front_ticks(gw.pid)
        mem = [probe.memory_kib(p) for p in probe.tree(gw.pid)]
        backlog = probe.backlog(ctx.journal)
        hooks.after(ctx)
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
    if problems := log_problems(run_dir / "processes.log"):
        note += "; LOG: " + ", ".join(f"{k} x{v}" for k, v in problems.most_common(6))
    if any(r.exhausted for r in results):
        note += "; PRE-SIGNED REQUESTS RAN OUT (raise --max-guess)"
    if rate > 0 and (backlog_n := max(r.backlog for r in results)) > 1:
        note += f"; fell behind the target rate by up to {backlog_n} msgs per connection"
    if set(f0) != set(f1):  # a front died (or was replaced): its CPU is partly missing
        note += f"; FRONT PROCESSES CHANGED during the window ({sorted(f0)} -> {sorted(f1)})"
    front_cores = tuple((f1[p] - f0[p]) / HZ / args.duration for p in sorted(f0) if p in f1)
    return RunStats(
        accepted=codes["0000"] / args.duration,
        codes=codes,
        lat_ms=tuple(lat[min(len(lat) - 1, int(q * len(lat)))] for q in (0.5, 0.9, 0.99, 1)),
        cpu_us=gw_cpu / max(1, codes["0000"]) * 1e6,
        cores=cores,
        note=note,
        rate=rate,
        fsync_p99_ms=probe.quantile(m0, m1, 0.99) * 1000,
        inbound_per_s=(m1.inbound - m0.inbound) / args.duration,
        backlog=backlog,
        gw_rss_mib=sum(m[0] for m in mem) / 1024,
        gw_pss_mib=sum(m[1] for m in mem) / 1024,
        front_cores=front_cores,
        front_conns=tuple(front_conns),
    )


# -------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Throughput of the real gatewayd (bench/README.md).")
    add = p.add_argument
    shipped = f"shipped: fronts {SHIPPED_WORKERS.get('fronts', 0)}"
    shipped += f", processes {SHIPPED_WORKERS.get('processes', 2)}"
    add("--fronts", type=int, help=f"gatewayd workers.fronts (default: as {shipped})")
    add("--workers", type=int, help="gatewayd workers.processes (default: as shipped)")
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
    add("--floor-n", type=int, default=2000, help="messages per floor round")
    add("--floor-rounds", type=int, default=5, help="floor rounds (median)")
    add("--beps-package", type=int, default=128, help="floor: items per BEPS package")
    add("--switch-interval", type=float, default=0.0, help="experiment: gatewayd's GIL interval")
    add("--keep", action="store_true", help="keep the temp dir (logs, journals)")
    modes = p.add_argument_group("modes (bench/README.md; default: --repeat runs of max or --rate)")
    m = modes.add_mutually_exclusive_group()
    m.add_argument("--goals", action="store_true", help="max, then 10/50/100 %% open loop: goals")
    m.add_argument("--soak", action="store_true", help="open loop at 50 %% of max (or --rate)")
    m.add_argument("--burst", action="store_true", help="withhold answers 40 s, measure the burst")
    m.add_argument("--idle-connections", type=int, default=0, help="N idle mTLS conns + load")
    m.add_argument(
        "--screening", action="store_true", help="scope all vs fx, interleaved, at 50 %% of max"
    )
    modes.add_argument("--soak-minutes", type=float, default=15.0, help="soak length")
    modes.add_argument("--sample-every", type=float, default=15.0, help="soak: seconds/sample")
    modes.add_argument("--withhold-for", type=float, default=40.0, help="burst: seconds held")
    modes.add_argument("--steady", type=float, default=20.0, help="burst: seconds before/after")
    modes.add_argument("--max-duration", type=float, default=10.0, help="the max run's seconds")
    modes.add_argument("--list-entries", type=int, default=20000, help="screening: list rows")
    modes.add_argument("--pairs", type=int, default=5, help="screening: interleaved run pairs")
    return p


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the bench like Ctrl-C: the finally blocks shut everything down."""
    raise KeyboardInterrupt


def _lat(lat_ms: Sequence[float]) -> str:
    return "ack ms p50 {:.1f} p90 {:.1f} p99 {:.1f} max {:.1f}".format(*lat_ms)


def print_run(n: int, s: RunStats) -> None:
    other = ", ".join(f"{k} x{v}" for k, v in sorted(s.codes.items()) if k != "0000")
    b = s.backlog
    ages = ", ".join(f"{e} {a:.1f}" for e, a in sorted(b.oldest_queued_s.items())) if b else "-"
    print(
        f"run {n}: accepted {s.accepted:.0f} msgs/s, other RetCodes: {other or 'none'};"
        f" {_lat(s.lat_ms)}; gatewayd {s.cpu_us:.0f} µs CPU/msg; {s.note}\n"
        f"  journal fsync p99 {s.fsync_p99_ms:.1f} ms; inbound clearing {s.inbound_per_s:.0f}/s;"
        f" at the end: oldest QUEUED s ({ages or 'none'}), unfinished"
        f" {b.unfinished if b else '-'} of {b.accepted if b else '-'}"
        f" ({'keeps up' if s.keeps_up() else 'FALLS BEHIND'}); gatewayd RSS"
        f" {s.gw_rss_mib:.0f} MiB, PSS {s.gw_pss_mib:.0f} MiB\n  cores busy: "
        + ", ".join(f"{k} {v:.2f}" for k, v in s.cores.items()),
        flush=True,
    )
    print_split([s], "")


def report(args: argparse.Namespace, runs: list[RunStats], fl: dict[str, pf.Triple]) -> None:
    med = statistics.median
    acc, cpu = med(r.accepted for r in runs), med(r.cpu_us for r in runs)
    lat = [med(r.lat_ms[i] for r in runs) for i in range(4)]
    print(f"\nmedian of {len(runs)}: accepted {acc:.0f} msgs/s, {_lat(lat)}; {cpu:.0f} µs CPU/msg")
    roles = ", ".join(f"{k} {med(r.cores.get(k, 0) for r in runs):.2f}" for k in runs[0].cores)
    print(f"  cores busy (median): {roles}; load average {os.getloadavg()[0]:.2f}")
    print_split(runs, " (median)")
    if not fl:
        return
    print_floor(args, fl)
    whole, acc_steps = fl[pf.FLOOR][0], fl[pf.ACCEPTANCE][0]
    print(
        f"\ndaemon ({workers_label(args)}): {acc:.0f} msgs/s, {cpu:.0f} µs CPU/payment"
        f"  vs  floor {whole:.0f} µs/payment ({1e6 / whole:.0f} msgs/s per core)"
        f"\nratio daemon/floor: CPU per payment {cpu / whole:.2f}x;"
        f" throughput {acc * whole / 1e6:.2f}x one core's floor rate"
        f" ({acc * acc_steps / 1e6:.2f}x its acceptance steps alone)"
    )


def print_split(runs: Sequence[RunStats], what: str) -> None:
    """gatewayd's CPU (median over runs) split core vs fronts, cores busy and µs per payment."""
    med = statistics.median

    def part(prefix: str) -> tuple[float, float]:
        cores = med(sum(v for k, v in r.cores.items() if k.startswith(prefix)) for r in runs)
        per = med(
            sum(v for k, v in r.cores.items() if k.startswith(prefix)) / max(r.accepted, 1e-9)
            for r in runs
        )
        return cores, per * 1e6

    (cc, cu), (fc, fu) = part("gw core "), part("gw fronts ")
    each = ""
    if len(runs) == 1 and runs[0].front_cores:
        each = " (each front: " + " / ".join(f"{c:.2f}" for c in runs[0].front_cores)
        each += " cores; client connections " + " / ".join(map(str, runs[0].front_conns)) + ")"
    print(
        f"  gatewayd split{what}: core {cc:.2f} cores = {cu:.0f} µs/payment;"
        f" fronts {fc:.2f} cores = {fu:.0f} µs/payment{each}",
        flush=True,
    )


def print_floor(args: argparse.Namespace, fl: dict[str, pf.Triple]) -> None:
    print(f"\nfloor, one process, median of {args.floor_rounds} rounds x {args.floor_n} payments:")
    print(f"  {'µs per payment':53s} {'CPU':>5s} {'main thread':>11s} {'wall':>5s}  msgs/s/core")
    for k, (c, w, m) in fl.items():
        print(f"  {k:53s} {c:5.0f} {m:11.0f} {w:5.0f}  {1e6 / c:7.0f}")


def measure_floor(args: argparse.Namespace, tmp: Path, pki: DevPki) -> dict[str, pf.Triple]:
    op = OPERATORS[0]
    key = load_signing_key(*pki.client(op[0], op[1]))
    bodies = [sign_pay(key, op, f"F-{i:07d}", i, args.mix) for i in range(args.floor_n)]
    spec = pf.FloorSpec(
        tmp,
        pki,
        bodies,
        args.floor_rounds,
        64,
        START + timedelta(seconds=1),
        ADMISSION,
        args.beps_package,
    )
    return pf.floor(spec)


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by gatewayd and the generators)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    gens: list[tuple[BaseProcess, Connection]] = []
    mode = f"open loop {args.rate:g} msgs/s" if args.rate else f"max, window {args.window}"
    for flag in ("goals", "soak", "burst", "idle_connections", "screening"):
        if getattr(args, flag):
            mode = f"--{flag.replace('_', '-')} mode; " + mode
    print(
        f"bench_pipeline {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f}; {workers_label(args)}; {mode}; {args.connections} TLS "
        f"connections; {args.warmup:g}+{args.duration:g} s x {args.repeat}; clearing "
        f"{'off' if args.no_clearing else 'sim'}; mix {args.mix}",
        flush=True,
    )
    try:
        raise_fd_limit()
        pki = generate_dev_pki(tmp / "pki")
        configure_logging("warning")
        if args.screening:
            import pipeline_screening

            return pipeline_screening.compare(args, tmp, pki, gens)
        if args.goals or args.soak or args.burst or args.idle_connections:
            import pipeline_modes

            return pipeline_modes.run_mode(args, tmp, pki, gens)
        start_generators(gens, args, pki, args.rate or args.max_guess, 1)
        runs: list[RunStats] = []
        for n in range(args.repeat):
            (run_dir := tmp / f"run{n + 1}").mkdir()
            s = one_run(args, run_dir, pki, gens)
            runs.append(s)
            print_run(n + 1, s)
        fl = {} if args.no_floor else measure_floor(args, tmp, pki)
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
