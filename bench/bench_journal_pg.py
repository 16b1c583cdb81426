"""PostgreSQL journal benchmark: accepts/s and latency, one node vs two nodes on one database.

Run on purpose (not part of the test suite)::

    python bench/bench_journal_pg.py [--requests 3000] [--runs 3] [--concurrency 1,16,128]
                                     [--nodes 1,2] [--operators 1000] [--pool 20]

A private PostgreSQL server is started for the whole benchmark (``gateway.testing_pg``:
127.0.0.1, a free port, fsync on, synchronous_commit on); every run gets a
fresh database.  Each node is its own process with its own ``PostgresStore``
(as two gateway daemons would be), its callers splitting the requests; a
request is one PAY with one QUEUED item, acknowledged after its commit was
flushed.  ``--concurrency`` is the number of callers per run, split evenly
over the nodes (at least one per node).  Requests are spread over
``--operators`` operators: one operator's requests serialise on its daily
total row (corplink.md §6), so ``--operators 1`` measures that worst case.
The table shows the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

# This repository's ``gateway`` first: an editable install may point at another checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from gateway.clock import SHANGHAI
from gateway.journal.postgres import PostgresStore
from gateway.journal.records import NewItem, NewRequest
from gateway.model import BizType, Engine, Priority, State
from gateway.testing_pg import PgServer, running_postgres

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class RunResult:
    rate: float  # accepts per second, all nodes together
    p50_ms: float
    p99_ms: float


def make_request(n: int, operators: int) -> NewRequest:
    item = NewItem(
        seq_no=None,
        payer_acct="6222000011112222",
        payer_name="Acme Trading Co",
        payee_acct="6217000033334444",
        payee_name="Zhang San",
        payee_bank_code="104100000004",
        amount=Decimal("1234.56"),
        ccy="CNY",
        priority=Priority.NORM,
        biz_type=BizType.CREDIT,
        purpose="bench",
        state=State.QUEUED,
        engine=Engine.HVPS,
        receiver="104100000004",
        work_date=date(2026, 11, 27),
    )
    return NewRequest(
        corp_id=f"C{n % operators:09d}",
        msg_id=f"bench-{n:08d}",
        oper_id="op01",
        trn_code="PAY",
        digest="d" * 64,
        received_at=T0 + timedelta(microseconds=n),
        items=(item,),
    )


async def node_main(
    dsn: str, node: str, numbers: list[int], callers: int, operators: int, pool: int, go: float
) -> tuple[list[float], float, float]:
    """One node: its own store and callers; returns latencies and its start/end instants."""
    store = PostgresStore(dsn, node=node, pool_size=pool)
    await store.start()
    work = [make_request(n, operators) for n in numbers]
    todo = iter(work)
    latencies: list[float] = []

    async def caller() -> None:
        for request in todo:
            started = time.perf_counter()
            await store.accept(request)
            latencies.append(time.perf_counter() - started)

    try:
        await asyncio.sleep(max(0.0, go - time.monotonic()))  # all nodes start together
        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(callers)))
        ended = time.monotonic()
    finally:
        await store.close()
    return latencies, started, ended


def node_process(
    args: tuple[str, str, list[int], int, int, int, float],
) -> tuple[list[float], float, float]:
    return asyncio.run(node_main(*args))


async def fresh_database(server: PgServer, name: str) -> str:
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = server.dsn(name)
    migrate = PostgresStore(dsn)  # migrate once, outside the timed part
    await migrate.start()
    await migrate.close()
    return dsn


def one_run(
    server: PgServer, requests: int, nodes: int, callers: int, operators: int, pool: int
) -> RunResult:
    dsn = asyncio.run(fresh_database(server, "bench"))
    shares = [list(range(k, requests, nodes)) for k in range(nodes)]
    go = time.monotonic() + 2.0  # time for the processes to start and connect
    jobs = [
        (dsn, "ABCDEFGH"[k], shares[k], max(1, callers // nodes), operators, pool, go)
        for k in range(nodes)
    ]
    with mp.get_context("spawn").Pool(nodes) as workers:
        outcomes = workers.map(node_process, jobs)
    latencies = [lat for lats, _, _ in outcomes for lat in lats]
    elapsed = max(e for _, _, e in outcomes) - min(s for _, s, _ in outcomes)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return RunResult(rate=requests / elapsed, p50_ms=cuts[49] * 1000, p99_ms=cuts[98] * 1000)


def bench(
    requests: int, runs: int, levels: Sequence[int], node_counts: Sequence[int], operators: int,
    pool: int,
) -> None:  # fmt: skip
    print(
        f"PostgreSQL journal accept benchmark: {requests} requests per run, median of {runs} runs,"
        f" {operators} operator(s), pool {pool} per node"
    )
    print(f"{'nodes':>5} {'callers':>8} {'accepts/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    with running_postgres() as server:
        for nodes in node_counts:
            for level in levels:
                callers = max(1, level // nodes) * nodes
                results = [
                    one_run(server, requests, nodes, level, operators, pool) for _ in range(runs)
                ]
                rate = statistics.median(r.rate for r in results)
                p50 = statistics.median(r.p50_ms for r in results)
                p99 = statistics.median(r.p99_ms for r in results)
                print(f"{nodes:>5} {callers:>8} {rate:>10.0f} {p50:>8.2f} {p99:>8.2f}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,128", help="callers per run, all nodes")
    parser.add_argument("--nodes", default="1,2", help="comma-separated node counts")
    parser.add_argument("--operators", type=int, default=1000, help="distinct (CorpId, OperId)")
    parser.add_argument("--pool", type=int, default=20, help="connections per node")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c]
    node_counts = [int(c) for c in args.nodes.split(",") if c]
    bench(args.requests, args.runs, levels, node_counts, args.operators, args.pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
