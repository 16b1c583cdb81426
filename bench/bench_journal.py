"""Journal benchmark: accepts/s and accept latency under 1, 16 and 128 concurrent callers.

Run on purpose (not part of the test suite)::

    python bench/bench_journal.py [--requests 3000] [--runs 3] [--concurrency 1,16,128]

Each run uses a fresh SQLite file in a temporary directory (on the same file
system as ``--dir`` if given: fsync cost depends on it).  Every accept is one
PAY request with one QUEUED item, acknowledged only after its group commit
was fsynced; the table shows the median of the runs, and the mean group size
(requests per commit) so one can see group commit at work.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway.clock import SHANGHAI
from gateway.journal.records import NewItem, NewRequest
from gateway.journal.sqlite import SqliteStore
from gateway.model import BizType, Engine, Priority, State
from gateway.ops.metrics import REGISTRY

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class RunResult:
    rate: float  # accepts per second
    p50_ms: float
    p99_ms: float
    per_commit: float  # mean requests per group commit


def make_request(n: int) -> NewRequest:
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
        corp_id="C100000001",
        msg_id=f"bench-{n:08d}",
        oper_id="op01",
        trn_code="PAY",
        digest="d" * 64,
        received_at=T0 + timedelta(microseconds=n),
        items=(item,),
    )


def commits() -> float:
    return REGISTRY.get_sample_value("gateway_journal_commits_total") or 0.0


async def one_run(path: Path, requests: int, concurrency: int) -> RunResult:
    store = SqliteStore(path)
    await store.start()
    latencies: list[float] = []
    counter = iter(range(requests))
    work = [make_request(n) for n in range(requests)]

    async def caller() -> None:
        for n in counter:
            started = time.perf_counter()
            await store.accept(work[n])
            latencies.append(time.perf_counter() - started)

    try:
        before = commits()
        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        groups = commits() - before
    finally:
        await store.close()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return RunResult(
        rate=requests / elapsed,
        p50_ms=cuts[49] * 1000,
        p99_ms=cuts[98] * 1000,
        per_commit=requests / groups if groups else float("nan"),
    )


def median_result(results: Sequence[RunResult]) -> RunResult:
    return RunResult(
        rate=statistics.median(r.rate for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        per_commit=statistics.median(r.per_commit for r in results),
    )


async def bench(requests: int, runs: int, levels: Sequence[int], where: Path | None) -> None:
    print(f"journal accept benchmark: {requests} requests per run, median of {runs} runs")
    print(f"{'callers':>8} {'accepts/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'req/commit':>11}")
    for concurrency in levels:
        results = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(dir=where) as tmp:
                results.append(await one_run(Path(tmp) / "j.sqlite", requests, concurrency))
        r = median_result(results)
        print(
            f"{concurrency:>8} {r.rate:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
            f" {r.per_commit:>11.1f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,128", help="comma-separated caller counts")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the journal files")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c]
    asyncio.run(bench(args.requests, args.runs, levels, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
