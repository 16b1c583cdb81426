"""Flood benchmark: well-behaved clients' service while one address floods the daemon.

Run on purpose (never in the test suite); loopback only, bounded in time,
stops by itself::

    python bench/bench_flood.py [--duration 10] [--rate 200] [--conns 2000] [--admission]

Two phases, each against a fresh ``gatewayd`` subprocess (``workers.fronts
= --fronts``, default 2, and ``workers.processes = --workers``, default 0, as
shipped; business clock at 10:00 on a recent weekday; a
private mosquitto; no clearing simulator, as only the answer to the ERP is
measured):

1. **baseline**: ``--clients`` mutual-TLS connections from 127.0.0.1 send
   pre-signed PAYs open loop at ``--rate`` messages/s in total;
2. **flood**: the same, while an attacker process bound to 127.0.0.2 opens
   up to ``--conns`` plain-TCP connections (ramped over the first second)
   and writes, as fast as the daemon reads, a mix of unsigned requests
   (1003), random bytes (1002), 1 MiB garbage bodies, and framing
   violations (1001, non-digit or oversized headers, which end the
   connection; it reconnects).

For each phase it prints the good clients' accepted throughput (0000/s),
p50/p99/max latency (send → reply), their count of each RetCode (5001 and
5002 called out), the attacker's connections and replies, and the daemon's
peak RSS (VmHWM of the main process and each worker).  Replies are counted
by RetCode; latency is measured for replies matched by MsgId (a 5001 or 5002
refused before parsing carries an empty MsgId, docs/protocol.md §8, so it counts
in "no reply by MsgId" too).  The issue's target:
under flood, good clients' p99 within 2× of the baseline, and no 5002.

Admission: by default ``[admission]`` is relaxed so that it does not act
(the raw cost of the flood); ``--admission`` writes the policy of
``gateway.net.admission.AdmissionConfig`` instead (50 connections and 20
accepts/s per address, 500 frames/s, bans after 20 bad frames).  A
``gatewayd`` that does not know the ``[admission]`` table refuses the
configuration; the benchmark detects that and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's gateway, not an installed copy

from gateway.clock import SHANGHAI  # noqa: E402
from gateway.keys.devpki import DevPki, generate_dev_pki  # noqa: E402
from gateway.keys.xmldsig import load_signing_key, sign_enveloped  # noqa: E402
from gateway.net.admission import AdmissionConfig  # noqa: E402
from gateway.net.framing import encode_frame  # noqa: E402
from gateway.net.tls import client_context  # noqa: E402
from gateway.sim.erp import Payment, build_request, transfer_body  # noqa: E402
from gateway.testing import Broker, start_broker  # noqa: E402
from tests.hostile.tools import descendants, stop_process, vm_hwm  # noqa: E402

ATTACKER_IP = "127.0.0.2"  # loopback is a /8 on Linux: a second source address
GOOD = (
    ("C100000001", "op01", "6222000000000001"),
    ("C100000002", "op01", "6222000000000101"),
    ("C100000003", "op01", "6222000000000201"),
)
CODES = (("103290000018", "1200.50"), ("105584000005", "49.99"), ("102290000011", "12.30"))
RELAXED = {
    "max_conns_per_ip": 1_000_000,
    "accept_rate_per_ip": 1_000_000.0,
    "frame_rate_per_ip": 10_000_000.0,
    "frame_burst_per_ip": 10_000_000.0,
    "corp_rate": 10_000_000.0,
    "corp_burst": 10_000_000.0,
    "ban_after_strikes": 1_000_000_000,
}


def business_start() -> datetime:
    d = datetime.now(SHANGHAI).date()
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=SHANGHAI)


START = business_start()


# ------------------------------------------------------------------ the daemon


class ConfigRefused(RuntimeError):
    """gatewayd refused the overlay (e.g. it does not know the [admission] table)."""


def admission_table(strict: bool) -> str:
    values = (
        {f.name: getattr(AdmissionConfig(), f.name) for f in fields(AdmissionConfig)}
        if strict
        else RELAXED
    )
    return "[admission]\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())


class Daemon:
    def __init__(
        self,
        run_dir: Path,
        pki: DevPki,
        broker: Broker,
        workers: int,
        strict: bool,
        fronts: int = 2,
    ):
        self.run_dir = run_dir
        self.overlay = run_dir / "overlay.toml"
        self.overlay.write_text(
            f'environment = "test"\nstate_dir = "{run_dir / "state"}"\n'
            f'[clock]\nstart = "{START.isoformat()}"\n'
            f'[keys]\ndev_pki = false\ndir = "{pki.dir}"\n'
            f'[clearing]\nurl = "{broker.url}"\nclient_id = "flood-{run_dir.name}"\n'
            '[observability]\nmetrics_port = 0\nlog_level = "error"\n'
            f"[workers]\nprocesses = {workers}\nfronts = {fronts}\n"
            + admission_table(strict)
            + "[[listeners]]\n"
            'name = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n'
            "max_connections = 20000\n"
            '[[listeners]]\nname = "tcp"\nport = 0\ntls = false\nclient_cert = "none"\n'
            "max_connections = 20000\n",
            encoding="utf-8",
        )
        self.log_path = run_dir / "gatewayd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, tuple[str, int]] = {}

    def start(self) -> None:
        ports = self.run_dir / "ports.json"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "gateway.cli.gatewayd", "--config", str(self.overlay)),
                    *("--ports-file", str(ports)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )
        deadline = time.monotonic() + 60
        while not ports.exists():
            if self.proc.poll() is not None:
                text = self.log_path.read_text(errors="replace")
                if "configuration error" in text:
                    raise ConfigRefused(text.strip().splitlines()[-1])
                raise RuntimeError(f"gatewayd exited at start; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError("gatewayd not ready within 60 s")
            time.sleep(0.05)
        listeners = json.loads(ports.read_text())["listeners"]
        self.ports = {k: (v[0], int(v[1])) for k, v in listeners.items()}

    def peak_rss_mib(self) -> dict[str, float]:
        assert self.proc is not None
        out = {"main": vm_hwm(self.proc.pid) / 1024}
        for n, child in enumerate(descendants(self.proc.pid)):
            kib = vm_hwm(child)
            if kib:
                out[f"child{n}"] = kib / 1024
        return out

    def stop(self) -> None:
        stop_process(self.proc)


# ------------------------------------------------------------- good clients


@dataclass
class GoodResult:
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    unanswered: int = 0
    errors: int = 0


def presign(
    pki: DevPki, clients: int, per_client: int, tag: str
) -> list[list[tuple[bytes, bytes]]]:
    """(MsgId, frame) per request, signed before the timed phase."""
    out = []
    for c in range(clients):
        corp, oper, payer = GOOD[c % len(GOOD)]
        key = load_signing_key(*pki.client(corp, oper))
        frames = []
        for i in range(per_client):
            mid = f"{tag}{c:02d}-{i:07d}"
            code, amount = CODES[i % len(CODES)]
            p = Payment(payer, "付款人", f"6217{i:012d}", "收款人", code, Decimal(amount))
            root = build_request("PAY", corp, oper, mid, START, transfer_body(p))
            sign_enveloped(root, key)
            body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
            frames.append((mid.encode(), encode_frame(body)))
        out.append(frames)
    return out


async def good_client(
    pki: DevPki,
    addr: tuple[str, int],
    index: int,
    frames: list[tuple[bytes, bytes]],
    rate: float,
    t0: float,
    t_end: float,
    res: GoodResult,
) -> None:
    corp, oper, _ = GOOD[index % len(GOOD)]
    kp, cp = pki.client(corp, oper)
    ctx = client_context(pki.server_ca, cp, kp)
    reader, writer = await asyncio.open_connection(
        addr[0], addr[1], ssl=ctx, server_hostname="localhost"
    )
    sent: dict[bytes, float] = {}

    async def read() -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(8)
                body = await reader.readexactly(int(header))
                now = time.monotonic()
                i = body.find(b"<MsgId>") + 7
                t = sent.pop(body[i : body.find(b"</MsgId>", i)], None)
                k = body.find(b"<RetCode>")
                res.codes[body[k + 9 : k + 13].decode() if k >= 0 else "????"] += 1
                if t is not None:
                    res.latencies.append(now - t)

    reading = asyncio.create_task(read())
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    n = 0
    try:
        while (now := time.monotonic()) < t_end and n < len(frames):
            due = min(len(frames), int((now - t0) * rate) + 1)
            if due > n and len(sent) < 256:  # bounded outstanding: a stuck daemon shows as backlog
                batch = frames[n:due]
                for mid, _ in batch:
                    sent[mid] = now
                writer.write(b"".join(f for _, f in batch))
                res.sent += len(batch)
                n = due
                await writer.drain()
            await asyncio.sleep(0.002)
        deadline = time.monotonic() + 10
        while sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    except (ConnectionError, OSError):
        res.errors += 1
    finally:
        res.unanswered += len(sent)
        writer.transport.abort()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


async def run_good(
    pki: DevPki,
    addr: tuple[str, int],
    signed: list[list[tuple[bytes, bytes]]],
    rate: float,
    t0: float,
    t_end: float,
) -> GoodResult:
    res = GoodResult()
    per = rate / len(signed)
    await asyncio.gather(
        *(good_client(pki, addr, i, f, per, t0, t_end, res) for i, f in enumerate(signed))
    )
    return res


# ------------------------------------------------------------------- attacker


def _attack_frames() -> list[tuple[str, bytes]]:
    unsigned = (
        b'<CorpLink xmlns="urn:corplink:1"><Head><TrnCode>PAY</TrnCode><CorpId>C100000001'
        b"</CorpId><OperId>op01</OperId><MsgId>EVIL-%d</MsgId><SendTime>"
        + START.isoformat().encode()
        + b"</SendTime></Head><Body><Transfer><PayerAcct>6222000000000001</PayerAcct>"
        b"<PayerName>x</PayerName><PayeeAcct>1</PayeeAcct><PayeeName>y</PayeeName>"
        b'<PayeeBankCode>104100000004</PayeeBankCode><Amount Ccy="CNY">1.00</Amount>'
        b"</Transfer></Body></CorpLink>"
    )
    return [
        ("unsigned", b"".join(encode_frame(unsigned % i) for i in range(32))),
        ("garbage", b"".join(encode_frame(os.urandom(4096)) for _ in range(8))),
        ("big", encode_frame(os.urandom(1_048_000))),
        ("header", b"NOTDIGIT" + os.urandom(64)),
        ("length", b"99999999" + os.urandom(4096)),
    ]


KIND_MIX = ("unsigned", "unsigned", "unsigned", "garbage", "garbage", "big", "header", "length")


async def _attack(host: str, port: int, t_end: float, max_conns: int) -> dict[str, int]:
    stats: Counter[str] = Counter()
    frames = dict(_attack_frames())
    open_now = 0

    async def one(i: int) -> None:
        nonlocal open_now
        kind = KIND_MIX[i % len(KIND_MIX)]
        data = frames[kind]
        while time.monotonic() < t_end:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(ATTACKER_IP, 0)), 5
                )
            except (OSError, TimeoutError):
                stats["connect_failed"] += 1
                await asyncio.sleep(0.05)
                continue
            stats["connections"] += 1
            open_now += 1
            stats["max_open"] = max(stats["max_open"], open_now)

            async def discard(reader: asyncio.StreamReader = reader) -> None:
                with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                    while True:
                        header = await reader.readexactly(8)
                        await reader.readexactly(int(header))
                        stats["replies"] += 1

            reading = asyncio.create_task(discard())
            try:
                while time.monotonic() < t_end and not reading.done():
                    writer.write(data)
                    stats["bytes"] += len(data)
                    async with asyncio.timeout(max(0.05, t_end - time.monotonic())):
                        await writer.drain()
                    if kind in ("header", "length"):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(reading), 2)
                        break
            except (ConnectionError, OSError, TimeoutError):
                pass
            finally:
                open_now -= 1
                writer.transport.abort()
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
            if reading.done() and kind not in ("header", "length"):
                stats["closed_by_daemon"] += 1
                await asyncio.sleep(0.01)

    tasks = []
    for i in range(max_conns):  # ramp over about one second
        tasks.append(asyncio.create_task(one(i)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks, return_exceptions=True)
    return dict(stats)


def attacker_main(
    host: str, port: int, t0: float, t_end: float, conns: int, out: Connection
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(max(0.0, t0 - time.monotonic()))
    out.send(asyncio.run(_attack(host, port, t_end, conns)))


# ---------------------------------------------------------------- the phases


@dataclass
class Phase:
    name: str
    good: GoodResult
    attack: dict[str, int]
    rss: dict[str, float]
    duration: float


def pct(vals: list[float], q: float) -> float:
    if not vals:
        return float("nan")
    s = sorted(vals)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_phase(
    name: str, args: argparse.Namespace, tmp: Path, pki: DevPki, broker: Broker, flood: bool
) -> Phase:
    run_dir = tmp / name
    run_dir.mkdir()
    per_client = int(args.rate / args.clients * args.duration) + 16
    signed = presign(pki, args.clients, per_client, name[0].upper())
    d = Daemon(run_dir, pki, broker, args.workers, args.admission, args.fronts)
    d.start()
    attacker: mp.Process | None = None
    recv: Connection | None = None
    try:
        t0 = time.monotonic() + 1.0
        t_end = t0 + args.duration
        if flood:
            recv, send = mp.Pipe(duplex=False)
            host, port = d.ports["tcp"]
            attacker = mp.Process(
                target=attacker_main, args=(host, port, t0, t_end, args.conns, send), daemon=True
            )
            attacker.start()
        good = asyncio.run(run_good(pki, d.ports["tls"], signed, args.rate, t0, t_end))
        attack: dict[str, int] = {}
        if attacker is not None and recv is not None:
            if recv.poll(60):
                attack = recv.recv()
            attacker.join(10)
        alive = d.proc is not None and d.proc.poll() is None
        rss = d.peak_rss_mib() if alive else {}
        if not alive:
            attack["daemon_died"] = 1
    finally:
        if attacker is not None and attacker.is_alive():
            attacker.kill()
        d.stop()
    return Phase(name, good, attack, rss, args.duration)


def report(p: Phase) -> None:
    g = p.good
    lat = [x * 1000 for x in g.latencies]
    others = {c: n for c, n in sorted(g.codes.items()) if c not in ("0000", "5001", "5002")}
    print(f"\n== {p.name} ==")
    print(
        f"good clients: sent {g.sent}, 0000 {g.codes['0000']}"
        f" ({g.codes['0000'] / p.duration:.0f}/s),"
        f" 5001 {g.codes['5001']}, 5002 {g.codes['5002']}, other {others or '-'},"
        f" no reply by MsgId {g.unanswered}, connection errors {g.errors}"
    )
    print(
        f"latency ms: p50 {pct(lat, 0.50):.1f}  p90 {pct(lat, 0.90):.1f}"
        f"  p99 {pct(lat, 0.99):.1f}  max {max(lat) if lat else float('nan'):.1f}"
    )
    if p.attack:
        a = p.attack
        print(
            f"attacker ({ATTACKER_IP}): connections {a.get('connections', 0)}"
            f" (max open {a.get('max_open', 0)}, failed {a.get('connect_failed', 0)},"
            f" closed by the daemon {a.get('closed_by_daemon', 0)}),"
            f" {a.get('bytes', 0) / 1e6:.0f} MB written, replies {a.get('replies', 0)}"
            + (" — DAEMON DIED" if a.get("daemon_died") else "")
        )
    print("peak RSS MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in p.rss.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    ap.add_argument("--rate", type=float, default=200.0, help="good PAYs per second in total")
    ap.add_argument("--clients", type=int, default=4, help="good TLS connections")
    ap.add_argument("--conns", type=int, default=2000, help="attacker connections at most")
    ap.add_argument("--workers", type=int, default=0, help="gatewayd workers.processes")
    ap.add_argument("--fronts", type=int, default=2, help="gatewayd workers.fronts")
    ap.add_argument(
        "--admission", action="store_true", help="AdmissionConfig defaults instead of relaxed"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = ap.parse_args(argv)
    if args.duration > 120 or args.conns > 2000:
        ap.error("bounded on purpose: --duration <= 120, --conns <= 2000")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 2 * args.conns + 512:
        print(f"warning: open-files limit {hard} is low for {args.conns} connections")
    tmp = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    print(
        f"bench_flood: {args.duration:.0f} s per phase, good {args.rate:.0f} PAY/s over"
        f" {args.clients} TLS connections, attacker up to {args.conns} connections from"
        f" {ATTACKER_IP}, workers {args.workers},"
        f" admission {'AdmissionConfig defaults' if args.admission else 'relaxed (off)'},"
        f" {os.cpu_count()} CPUs; temp {tmp}"
    )
    pki = generate_dev_pki(tmp / "pki")
    broker = start_broker(tmp / "broker")
    try:
        phases = [
            run_phase("baseline", args, tmp, pki, broker, flood=False),
            run_phase("flood", args, tmp, pki, broker, flood=True),
        ]
    except ConfigRefused as exc:
        print(f"gatewayd refused the [admission] table — is admission wired in this tree? ({exc})")
        return 2
    finally:
        broker.stop()
    for p in phases:
        report(p)
    base, fl = phases
    b99 = pct(base.good.latencies, 0.99)
    f99 = pct(fl.good.latencies, 0.99)
    print(
        f"\np99 under flood / baseline: {f99 / b99:.1f}x (target <= 2x);"
        f" 5002 for good clients under flood: {fl.good.codes['5002']} (target 0)"
    )
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
