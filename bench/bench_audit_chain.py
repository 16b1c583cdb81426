"""What the audit chain costs an accept: CPU per request on the SQLite journal.

Run on purpose (not part of the test suite), once on this checkout and once on
a checkout without the chain, to compare::

    python bench/bench_audit_chain.py [--requests 3000] [--items 1,50] [--runs 3]

Each run accepts ``--requests`` PAY requests of N QUEUED items through
``SqliteStore`` (128 concurrent callers, group commit) into a fresh file and
reports the process's CPU time per request and per item (the writer thread's
SQL, triggers and hashing included; fsync waits are not CPU) and the wall
throughput; the median of ``--runs``.  Every item writes two transitions
(ACCEPTED, QUEUED), so two links of the chain.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from gateway.clock import SHANGHAI
from gateway.journal.records import NewItem, NewRequest
from gateway.journal.sqlite import SqliteStore
from gateway.model import BizType, Engine, Priority, State

CALLERS = 128
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)


def _item(seq_no: int | None) -> NewItem:
    return NewItem(
        seq_no=seq_no, payer_acct="6222000011112222", payer_name="Acme",
        payee_acct="6217000033334444", payee_name="Zhang San", payee_bank_code="104100000004",
        amount=Decimal("12.30"), ccy="CNY", priority=Priority.NORM, biz_type=BizType.CREDIT,
        purpose=None, state=State.QUEUED, engine=Engine.BEPS, receiver="104100000004",
        work_date=date(2026, 11, 27),
    )  # fmt: skip


def _request(n: int, items: int) -> NewRequest:
    made = tuple(_item(None if items == 1 else k + 1) for k in range(items))
    return NewRequest("C100000001", f"M{n:08d}", "op01", "PAY", "d" * 64, T0, made)


async def _run(folder: Path, requests: int, items: int) -> tuple[float, float]:
    store = SqliteStore(folder / "journal.sqlite3")
    await store.start()
    work = [_request(n, items) for n in range(requests)]
    queue: asyncio.Queue[NewRequest] = asyncio.Queue()
    for r in work:
        queue.put_nowait(r)

    async def caller() -> None:
        while not queue.empty():
            await store.accept(queue.get_nowait())

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await store.close()
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--items", default="1,50", help="items per request, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'items':>5} {'CPU us/request':>15} {'CPU us/item':>12} {'requests/s':>11}")
    for items in (int(x) for x in args.items.split(",")):
        cpus, walls = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                cpu, wall = asyncio.run(_run(Path(tmp), args.requests, items))
            cpus.append(cpu)
            walls.append(wall)
        cpu, wall = statistics.median(cpus), statistics.median(walls)
        per = cpu / args.requests * 1e6
        print(f"{items:>5} {per:>15.0f} {per / items:>12.1f} {args.requests / wall:>11.0f}")


if __name__ == "__main__":
    main()
