"""Journal benchmark: accepts/s and accept latency under 1, 16 and 128 concurrent callers.

Run on purpose (not part of the test suite)::

    python bench/bench_journal.py [--backend sqlite|postgres] [--requests 3000] [--runs 3]
                                  [--concurrency 1,16,128] [--operators N]
                                  [--dir DIR]                        # sqlite
                                  [--nodes 1,2] [--pool 20]          # postgres

Every accept is one PAY request with one QUEUED item, acknowledged only after
its commit reached stable storage; the table shows the median of the runs.
Requests are spread over ``--operators`` operators (default: 1 on SQLite,
1000 on PostgreSQL): one operator's requests serialise on its daily total row
(docs/protocol.md §6), so ``--operators 1`` measures that worst case.

``sqlite`` (the default): each run uses a fresh SQLite file in a temporary
directory (on the same file system as ``--dir`` if given: fsync cost depends
on it); the table adds the mean group size (requests per commit) so one can
see group commit at work.

``postgres``: a private PostgreSQL server is started for the whole benchmark
(``gateway.testing_pg``: 127.0.0.1, a free port, fsync on, synchronous_commit
on); every run gets a fresh database.  Each node is its own process with its
own ``PostgresStore`` (as two gateway daemons would be), its callers
splitting the requests; ``--concurrency`` is the number of callers per run,
split evenly over the ``--nodes`` (at least one per node).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
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
from gateway.journal.sqlite import SqliteStore
from gateway.model import BizType, Engine, Priority, State
from gateway.ops.metrics import REGISTRY
from gateway.testing_pg import PgServer, running_postgres

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
DEFAULT_OPERATORS = {"sqlite": 1, "postgres": 1000}


@dataclass(frozen=True)
class RunResult:
    rate: float  # accepts per second, all nodes together
    p50_ms: float
    p99_ms: float
    per_commit: float = float("nan")  # mean requests per group commit (SQLite)


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


# -- the measuring loop, both backends -------------------------------------------------


async def timed_accepts(
    store: SqliteStore | PostgresStore,
    work: Sequence[NewRequest],
    callers: int,
    go: float | None = None,
) -> tuple[list[float], float, float]:
    """``callers`` concurrent callers accept ``work`` between them, each request once.

    Waits until the ``time.monotonic()`` instant ``go`` first, if given (so
    that several node processes start together).  Returns each accept's
    latency in seconds and the monotonic instants the callers started and
    finished.
    """
    todo = iter(work)
    latencies: list[float] = []

    async def caller() -> None:
        for request in todo:
            started = time.perf_counter()
            await store.accept(request)
            latencies.append(time.perf_counter() - started)

    if go is not None:
        await asyncio.sleep(max(0.0, go - time.monotonic()))
    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return latencies, started, time.monotonic()


def run_result(latencies: list[float], elapsed: float, groups: float | None = None) -> RunResult:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return RunResult(
        rate=len(latencies) / elapsed,
        p50_ms=cuts[49] * 1000,
        p99_ms=cuts[98] * 1000,
        per_commit=len(latencies) / groups if groups else float("nan"),
    )


def median_result(results: Sequence[RunResult]) -> RunResult:
    return RunResult(
        rate=statistics.median(r.rate for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        per_commit=statistics.median(r.per_commit for r in results),
    )


# -- SQLite ----------------------------------------------------------------------------


def commits() -> float:
    return REGISTRY.get_sample_value("gateway_journal_commits_total") or 0.0


async def sqlite_run(path: Path, requests: int, concurrency: int, operators: int) -> RunResult:
    store = SqliteStore(path)
    await store.start()
    work = [make_request(n, operators) for n in range(requests)]
    try:
        before = commits()
        latencies, started, ended = await timed_accepts(store, work, concurrency)
        groups = commits() - before
    finally:
        await store.close()
    return run_result(latencies, ended - started, groups)


async def bench_sqlite(
    requests: int, runs: int, levels: Sequence[int], operators: int, where: Path | None
) -> None:
    print(f"journal accept benchmark: {requests} requests per run, median of {runs} runs")
    print(f"{'callers':>8} {'accepts/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'req/commit':>11}")
    for concurrency in levels:
        results = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(dir=where) as tmp:
                path = Path(tmp) / "j.sqlite"
                results.append(await sqlite_run(path, requests, concurrency, operators))
        r = median_result(results)
        print(
            f"{concurrency:>8} {r.rate:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
            f" {r.per_commit:>11.1f}"
        )


# -- PostgreSQL --------------------------------------------------------------------------


async def node_main(
    dsn: str, node: str, numbers: list[int], callers: int, operators: int, pool: int, go: float
) -> tuple[list[float], float, float]:
    """One node: its own store and callers; returns latencies and its start/end instants."""
    store = PostgresStore(dsn, node=node, pool_size=pool)
    await store.start()
    work = [make_request(n, operators) for n in numbers]
    try:
        return await timed_accepts(store, work, callers, go)  # all nodes start together
    finally:
        await store.close()


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


def postgres_run(
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
    return run_result(latencies, elapsed)


def bench_postgres(
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
                r = median_result(
                    [
                        postgres_run(server, requests, nodes, level, operators, pool)
                        for _ in range(runs)
                    ]
                )
                print(
                    f"{nodes:>5} {callers:>8} {r.rate:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}",
                    flush=True,
                )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,128", help="callers per run, all nodes")
    parser.add_argument(
        "--operators", type=int, default=None, help="distinct (CorpId, OperId); 1 / 1000"
    )
    parser.add_argument("--dir", type=Path, default=None, help="sqlite: where the files go")
    parser.add_argument("--nodes", default="1,2", help="postgres: comma-separated node counts")
    parser.add_argument("--pool", type=int, default=20, help="postgres: connections per node")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c]
    operators = DEFAULT_OPERATORS[args.backend] if args.operators is None else args.operators
    if args.backend == "sqlite":
        asyncio.run(bench_sqlite(args.requests, args.runs, levels, operators, args.dir))
    else:
        node_counts = [int(c) for c in args.nodes.split(",") if c]
        bench_postgres(args.requests, args.runs, levels, node_counts, operators, args.pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
