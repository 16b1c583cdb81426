"""One gateway node vs two, on the PostgreSQL journal: accepted msgs/s and ack latency.

Run on purpose (never in the test suite); loopback only, bounded in time::

    python bench/bench_nodes.py [--fronts 2] [--workers 0] [--repeat 3] [--duration 15]

Per configuration (1 node, then 2 nodes) and per run (``--repeat``): a
private mosquitto, the clearing simulator as its own process, a fresh
database on one private PostgreSQL server, and 1 or 2 real ``gatewayd``
subprocesses on it (``journal.backend = "postgres"``, node letters A and B,
``clearing.shared = true`` so inbound receipts are spread over the nodes, the
same business clock and admission settings as bench_pipeline.py).  The load
is bench_pipeline.py's generator, imported as is: ``--gen-procs`` processes
that pre-sign every PAY, then keep ``--window`` requests in flight on each of
``--connections`` mutual-TLS connections (closed loop).  With two nodes the
generator processes are split between them, as a TCP load balancer would
spread connections.  Printed: accepted (0000) msgs/s, other RetCodes and the
client-measured ack latency p50/p99, per run and the median of the runs.

A caveat the figures carry: both nodes, PostgreSQL, the broker, the
simulator and the generators share this machine's cores, so two nodes here
measure the cost of sharing one journal, not the gain of a second machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

# This repository's ``gateway`` first, and bench_pipeline's load generator.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pipeline as bp

from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.ops.logs import configure_logging
from gateway.testing import start_broker
from gateway.testing_pg import PgServer, create_database, start_postgres

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    nodes: int
    accepted: float  # 0000 per second
    codes: Counter[str]
    p50: float
    p99: float


def overlay(
    run_dir: Path,
    pki: DevPki,
    broker_url: str,
    dsn: str,
    letter: str,
    workers: int,
    fronts: int = 2,
) -> str:
    admission = "".join(f"{k} = {v}\n" for k, v in bp.ADMISSION.items())
    return (
        f'environment = "test"\nstate_dir = "{run_dir / f"state{letter}"}"\n'
        f'[bank]\nnode = "{letter}"\n'
        f'[clock]\nstart = "{bp.START.isoformat()}"\n'
        f'[keys]\ndev_pki = false\ndir = "{pki.dir}"\n'
        f'[journal]\nbackend = "postgres"\ndsn = "{dsn}"\n'
        f'[clearing]\nurl = "{broker_url}"\nclient_id = "gw-{run_dir.name}-{letter}"\n'
        "shared = true\n"
        '[observability]\nmetrics_port = 0\nlog_level = "warning"\n'
        f"[workers]\nprocesses = {workers}\nfronts = {fronts}\n"
        f"[admission]\n{admission}\n"
        '[[listeners]]\nname = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n'
    )


async def fresh_database(pg: PgServer) -> str:
    return await create_database(pg, f"bench_{uuid.uuid4().hex[:10]}")


def start_node(
    run_dir: Path, text: str, letter: str, log: Any
) -> tuple[subprocess.Popen[bytes], int]:
    (conf := run_dir / f"node{letter}.toml").write_text(text, encoding="utf-8")
    ports = run_dir / f"ports{letter}.json"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.gatewayd", "--config", str(conf), "--ports-file",
         str(ports)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ports.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gatewayd {letter} did not start; see {run_dir}/processes.log")
        time.sleep(0.05)
    return proc, int(json.loads(ports.read_text())["listeners"]["tls"][1])


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    bp.stop_proc(proc, 30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # its workers, forkserver and resource tracker


def one_run(
    args: argparse.Namespace,
    nodes: int,
    run_dir: Path,
    pki: DevPki,
    pg: PgServer,
    gens: list[tuple[BaseProcess, Connection]],
) -> Run:
    broker = start_broker(run_dir / "broker")
    log = (run_dir / "processes.log").open("wb")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen[bytes]] = []
    sim = None
    try:
        keys = ["--key", str(pki.clearing_system_key), "--cert", str(pki.clearing_system_cert)]
        peer = ["--gateway-cert", str(pki.clearing_cert), "--client-id", f"sim-{run_dir.name}"]
        argv = [sys.executable, "-m", "gateway.cli.sim", "clearing", "--broker", broker.url]
        sim = subprocess.Popen([*argv, *keys, *peer], stdout=log, stderr=subprocess.STDOUT,
                               cwd=ROOT, env=env)  # fmt: skip
        dsn = asyncio.run(fresh_database(pg))
        ports = []
        for letter in "AB"[:nodes]:
            text = overlay(run_dir, pki, broker.url, dsn, letter, args.workers, args.fronts)
            proc, port = start_node(run_dir, text, letter, log)
            procs.append(proc)
            ports.append(port)
        t0 = time.monotonic() + 3.0  # connect and finish the TLS handshakes
        t_warm, t_end = t0 + args.warmup, t0 + args.warmup + args.duration
        for g, (_, pipe) in enumerate(gens):  # a load balancer: generators split over nodes
            cmd = {"host": "127.0.0.1", "port": ports[g % nodes], "t0": t0, "t_warm": t_warm}
            pipe.send(cmd | {"t_end": t_end, "rate": 0.0})
        time.sleep(max(0.0, t_end - time.monotonic()))
        if not all(pipe.poll(60) for _, pipe in gens):
            raise RuntimeError("a load generator did not report within 60 s")
        results: list[bp.GenResult] = [pipe.recv() for _, pipe in gens]
    finally:
        for proc in procs:
            stop_node(proc)
        bp.stop_proc(sim, 10)
        broker.stop()
        log.close()
    codes: Counter[str] = sum((r.codes for r in results), Counter())
    lat = sorted(x * 1000 for r in results for x in r.latencies) or [float("nan")]
    if any(r.exhausted for r in results):
        print("  note: pre-signed requests ran out (raise --max-guess)", flush=True)
    return Run(
        nodes=nodes,
        accepted=codes["0000"] / args.duration,
        codes=codes,
        p50=lat[int(0.5 * (len(lat) - 1))],
        p99=lat[int(0.99 * (len(lat) - 1))],
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="1 vs 2 gatewayd nodes on PostgreSQL (bench/README.md)")
    add = p.add_argument
    add("--workers", type=int, default=0, help="workers.processes of each node")
    add("--fronts", type=int, default=2, help="workers.fronts of each node")
    add("--connections", type=int, default=8, help="mutual-TLS client connections in total")
    add("--window", type=int, default=32, help="outstanding requests per connection")
    add("--duration", type=float, default=15.0, help="measured seconds per run")
    add("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    add("--repeat", type=int, default=3, help="runs per configuration (median reported)")
    add("--gen-procs", type=int, default=2, help="load-generator processes (split over nodes)")
    add("--mix", choices=sorted(bp.MIXES), default="mixed", help="payee banks, hence engines")
    add("--max-guess", type=float, default=4000.0, help="msgs/s to pre-sign for")
    add("--keep", action="store_true", help="keep the temp dir (logs)")
    args = p.parse_args(argv)
    configure_logging("warning")
    tmp = Path(tempfile.mkdtemp(prefix="gw-nodes-"))
    gens: list[tuple[BaseProcess, Connection]] = []
    pg: PgServer | None = None
    print(
        f"bench_nodes {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} cores, load"
        f" {os.getloadavg()[0]:.2f}; workers {args.workers}; {args.connections} TLS connections"
        f" x window {args.window}; {args.warmup:g}+{args.duration:g} s x {args.repeat};"
        f" mix {args.mix}",
        flush=True,
    )
    try:
        pki = generate_dev_pki(tmp / "pki")
        bp.start_generators(gens, args, pki, args.max_guess, 2)  # at least one per node
        pg = start_postgres()
        runs: dict[int, list[Run]] = {1: [], 2: []}
        for n in range(args.repeat):  # interleaved, so drift of the shared machine hits both
            for nodes in (1, 2):
                (run_dir := tmp / f"n{nodes}-run{n + 1}").mkdir()
                r = one_run(args, nodes, run_dir, pki, pg, gens)
                runs[nodes].append(r)
                other = ", ".join(f"{k} x{v}" for k, v in sorted(r.codes.items()) if k != "0000")
                print(
                    f"{nodes} node{'s' if nodes > 1 else ''}, run {n + 1}: accepted"
                    f" {r.accepted:.0f} msgs/s, ack p50 {r.p50:.1f} ms p99 {r.p99:.1f} ms;"
                    f" other RetCodes: {other or 'none'}",
                    flush=True,
                )
        print()
        med = statistics.median
        for nodes, rs in runs.items():
            print(
                f"median of {len(rs)}, {nodes} node{'s' if nodes > 1 else ' '}: accepted"
                f" {med(r.accepted for r in rs):.0f} msgs/s, ack p50 {med(r.p50 for r in rs):.1f}"
                f" ms, p99 {med(r.p99 for r in rs):.1f} ms; load average {os.getloadavg()[0]:.2f}"
            )
    except KeyboardInterrupt:
        print("interrupted: shutting down", file=sys.stderr)
        return 130
    finally:
        bp.stop_generators(gens)
        if pg is not None:
            pg.destroy()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
