"""Correspondence benchmark: netting reconciliation, NTFY pulls and incoming credits.

Run on purpose (not part of the test suite)::

    python bench/bench_correspondence.py [--backend sqlite|postgres] [--quick] [--repeat 3]
                                         [--sizes 1000,10000] [--counterparties 4]
                                         [--notices 100000] [--corporates 100] [--page 500]
                                         [--credits 500] [--concurrency 32]
                                         [--only netting,ntfy,credits,settle-latency]
                                         [--settle-items 10000] [--settle-chunks 1000000000,500]
                                         [--rate 200] [--lead 1.0]
                                         [--dir DIR] [--pool 10]

Three measurements on the journal's correspondence methods (gateway/journal/store.py),
each with a fresh journal, medians over ``--repeat`` runs:

1. **Netting reconciliation** (docs/routing-rules.md §5, docs/clearing-link.md §4): N BEPS items
   (``--sizes``) to ``--counterparties`` counterparties (one in five a debit
   collection), plus N/10 incoming credits from them, brought to ACKED the way
   the engines do it: ``accept`` → ``claim_queued`` per (receiver, BizType) in
   packages of 1,000 (``engines.beps.max_items``) → ``create_outbound`` →
   ``mark_sent_many`` → ``apply_receipt`` (ccms.990).  Then timed: ``ledger()``
   per counterparty (5 reads each), ``apply_netting()`` per counterparty with
   the matching figures (one beps.netting round), and one ``apply_settlement()``
   for the round.  µs per item divides by our items the call covers (N/K for
   ledger and netting, N for settlement; incoming credits not counted).
2. **NTFY pull** (docs/protocol.md §4): ``--notices`` STATUS notifications of
   ``--corporates`` corporates (requests of 10 items round-robin over the
   corporates, so one corporate's notices are spread through the table), made
   by settling that many BEPS items through the same store methods.  Timed:
   ``pull_notices(corp, after, --page)`` page by page through every
   corporate's whole backlog until a short page (with 1,000 notices each:
   pages of 500, 500, then an empty call).  p50/p99 are over the pages with
   rows; pages/s is those pages over the walks' time (one caller, the empty
   calls included).
3. **Incoming credits** (docs/clearing-link.md §5-§6): ``receive_credit`` then
   ``post_credit`` (MATCH: POSTED plus a CREDIT notification), for
   ``--credits`` credits, one caller and ``--concurrency`` callers.  The daemon
   also reserves a ``next_sequence("credit")`` per credit (not timed here).
4. **Accept latency during a settlement** (``--only settle-latency``, not in
   the default set; docs/protocol.md §5: no 0000 before the journal write):
   ``--settle-items`` BEPS items netted in one round as in 1., then a steady
   stream of one-item PAY ``accept()`` calls (``--rate`` per second, open
   loop: each call its own concurrent caller, started at its due time, as
   independent ERP sessions send) runs for ``--lead`` seconds, then while
   ``apply_settlement()`` runs, then ``--lead`` / 2 seconds more.  An
   accept's latency counts from its due time to its return (the journal
   write is durable: the 0000 could go out).  Once per ``--settle-chunks``
   value (``settle_chunk``: items per settlement transaction; 1,000,000,000
   is the whole round in one transaction, as before chunking).

``sqlite``: every journal is a fresh file in a temp dir (on the file system of
``--dir`` if given).  ``postgres``: one private server for the whole run
(``gateway.testing_pg``: fsync on, synchronous_commit on), a fresh schema per
journal, one ``PostgresStore`` with ``--pool`` connections (the daemon's default 10).

``--quick``: one run, N = 1,000, 20,000 notices, 300 credits, 2,000 items settled (10-25 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

# This repository's ``gateway`` first: an editable install may point at another checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from gateway.clock import SHANGHAI
from gateway.journal.postgres import PostgresStore
from gateway.journal.records import NewIncomingCredit, NewItem, NewOutbound, NewRequest
from gateway.journal.sqlite import SqliteStore
from gateway.model import BizType, Engine, Priority, State
from gateway.testing_pg import PgServer, running_postgres

JournalStore = SqliteStore | PostgresStore
T = TypeVar("T")
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
WORK_DATE = date(2026, 11, 27)
#: BEPS participants we pay and collect from (12-digit bank codes, as the directory has them).
COUNTERPARTIES = tuple(f"10{k}100000{k:03d}" for k in range(1, 10))
PACKAGE = 1000  # engines.beps.max_items, the daemon's default
PER_REQUEST = 10  # items per request when journaling
ACCEPT_CALLERS = 16
LEDGER_READS = 5


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def corp(n: int) -> str:
    return f"C{n:09d}"


# -- a fresh journal per run ---------------------------------------------------------------


Journal = Callable[[], contextlib.AbstractAsyncContextManager[JournalStore]]


def sqlite_journal(where: Path | None) -> Journal:
    @contextlib.asynccontextmanager
    async def fresh() -> AsyncIterator[JournalStore]:
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            store = SqliteStore(Path(tmp) / "j.sqlite")
            await store.start()
            try:
                yield store
            finally:
                await store.close()

    return fresh


async def _admin(server: PgServer, statement: str) -> None:
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def postgres_journal(server: PgServer, pool: int) -> Journal:
    """A new schema per journal (as the journal tests do: far cheaper than CREATE DATABASE)."""

    @contextlib.asynccontextmanager
    async def fresh() -> AsyncIterator[JournalStore]:
        name = f"b_{uuid.uuid4().hex[:12]}"
        await _admin(server, f'CREATE SCHEMA "{name}"')
        store = PostgresStore(server.dsn() + f"?search_path={name}", pool_size=pool)
        await store.start()
        try:
            yield store
        finally:
            await store.close()
            await _admin(server, f'DROP SCHEMA "{name}" CASCADE')

    return fresh


# -- building the journal's content (the engines' store calls) --------------------------


def beps_request(r: int, corporates: int, counterparties: int) -> NewRequest:
    """Request ``r``: PER_REQUEST BEPS items, receivers round-robin, one in five a debit."""
    items = []
    for k in range(PER_REQUEST):
        i = r * PER_REQUEST + k
        items.append(
            NewItem(
                seq_no=k + 1,
                payer_acct="6222000011112222",
                payer_name="Acme Trading Co",
                payee_acct=f"62170000{i:08d}",
                payee_name="Zhang San",
                payee_bank_code=COUNTERPARTIES[i % counterparties],
                amount=Decimal(i % 997 + 1) + Decimal(i % 100) / 100,
                ccy="CNY",
                priority=Priority.NORM,
                biz_type=BizType.DEBIT if i % 5 == 4 else BizType.CREDIT,
                purpose="payroll",
                state=State.QUEUED,
                engine=Engine.BEPS,
                receiver=COUNTERPARTIES[i % counterparties],
                work_date=WORK_DATE,
            )
        )
    return NewRequest(
        corp_id=corp(r % corporates),
        msg_id=f"B{r:08d}",
        oper_id="op01",
        trn_code="PAYROLL",
        digest="d" * 64,
        received_at=at(r / 1000),
        items=tuple(items),
    )


async def in_parallel(
    callers: int, job: Callable[[T], Awaitable[object]], work: Iterable[T]
) -> None:
    """``job(w)`` for each ``w`` of ``work``, by ``callers`` concurrent callers."""
    todo = iter(work)

    async def caller() -> None:
        for w in todo:
            await job(w)

    await asyncio.gather(*(caller() for _ in range(callers)))


async def journal_acked(
    store: JournalStore, items: int, corporates: int, counterparties: int
) -> dict[str, float]:
    """``items`` BEPS items journaled, packaged, PUBACKed and receipted: all ACKED.

    Returns the seconds each step took (accept, package, PUBACK + ccms.990).
    """
    steps: dict[str, float] = {}
    t = time.perf_counter()
    requests = [beps_request(r, corporates, counterparties) for r in range(items // PER_REQUEST)]
    await in_parallel(ACCEPT_CALLERS, store.accept, requests)
    steps["accept"] = time.perf_counter() - t
    t = time.perf_counter()
    sent: list[str] = []

    async def package(cpty: str, biz: BizType) -> None:
        while claimed := await store.claim_queued(
            Engine.BEPS, PACKAGE, receiver=cpty, biz_type=biz, work_date=WORK_DATE
        ):
            msg_id = f"P{len(sent):08d}"
            sent.append(msg_id)
            await store.create_outbound(
                [
                    NewOutbound(
                        msg_id=msg_id,
                        engine=Engine.BEPS,
                        msg_tp="beps.121" if biz is BizType.CREDIT else "beps.125",
                        topic="clearing/beps/out",
                        receiver=cpty,
                        work_date=WORK_DATE,
                        payload=b"<Document/>",
                        item_ids=tuple(i.item_id for i in claimed),
                        created_at=at(100),
                    )
                ]
            )

    # The groups one at a time each (as the BEPS runner packages them), groups side by side.
    await asyncio.gather(
        *(
            package(cpty, biz)
            for cpty in COUNTERPARTIES[:counterparties]
            for biz in (BizType.CREDIT, BizType.DEBIT)
        )
    )
    steps["package"] = time.perf_counter() - t
    t = time.perf_counter()
    await store.mark_sent_many(sent, at(101))

    async def receipt(msg_id: str) -> None:
        assert await store.apply_receipt(msg_id, at(102))

    await in_parallel(8, receipt, sent)
    steps["PUBACK + ccms.990"] = time.perf_counter() - t
    return steps


def incoming(n: int, sender: str, corp_id: str | None) -> NewIncomingCredit:
    return NewIncomingCredit(
        gw_ref=f"GI20261127{n:010d}",
        engine=Engine.BEPS,
        msg_id=f"M{n // 10:08d}",
        tx_id=f"T{n:010d}",
        end_to_end_id=f"E{n:010d}",
        sender=sender,
        work_date=WORK_DATE,
        debtor_acct="6228480000000001",
        debtor_name="Li Si",
        debtor_bank=sender,
        creditor_acct=f"62220000{n % 100:08d}",
        creditor_name="Acme Trading Co",
        amount=Decimal(n % 500 + 1),
        purpose="refund",
        received_at=at(50 + n / 1000),
        corp_id=corp_id,
    )


# -- 1. netting reconciliation -----------------------------------------------------------------


@dataclass(frozen=True)
class NettingRun:
    ledger_ms: float  # median over counterparties x reads
    netting_ms: float  # median over counterparties
    settle_ms: float
    setup_s: float


async def netting_run(journal: Journal, n: int, counterparties: int) -> NettingRun:
    async with journal() as store:
        started = time.perf_counter()
        await journal_acked(store, n, 100, counterparties)
        credits = [incoming(c, COUNTERPARTIES[c % counterparties], None) for c in range(n // 10)]
        await in_parallel(32, store.receive_credit, credits)
        setup = time.perf_counter() - started
        cptys = COUNTERPARTIES[:counterparties]
        reads: list[float] = []
        figures = {}
        for _ in range(LEDGER_READS):
            for cpty in cptys:
                t = time.perf_counter()
                figures[cpty] = await store.ledger(WORK_DATE, cpty)
                reads.append(time.perf_counter() - t)
        nets: list[float] = []
        netted = 0
        for cpty in cptys:
            t = time.perf_counter()
            out = await store.apply_netting(WORK_DATE, 1, cpty, figures[cpty], at(200))
            nets.append(time.perf_counter() - t)
            assert out.matched
            netted += out.items_netted
        assert netted == n, netted
        t = time.perf_counter()
        settled = await store.apply_settlement(WORK_DATE, 1, at(300))
        settle = time.perf_counter() - t
        assert settled.items_settled == n
    return NettingRun(
        ledger_ms=statistics.median(reads) * 1e3,
        netting_ms=statistics.median(nets) * 1e3,
        settle_ms=settle * 1e3,
        setup_s=setup,
    )


async def bench_netting(
    journal: Journal, sizes: Sequence[int], counterparties: int, repeat: int
) -> list[list[str]]:
    rows = []
    for n in sizes:
        runs = [await netting_run(journal, n, counterparties) for _ in range(repeat)]
        per_cpty = n / counterparties
        ledger = statistics.median(r.ledger_ms for r in runs)
        netting = statistics.median(r.netting_ms for r in runs)
        settle = statistics.median(r.settle_ms for r in runs)
        setup = statistics.median(r.setup_s for r in runs)
        rows.append([
            f"{n:,}", f"{ledger:.1f}", f"{ledger * 1e3 / per_cpty:.1f}", f"{netting:.1f}",
            f"{netting * 1e3 / per_cpty:.1f}", f"{settle:.1f}", f"{settle * 1e3 / n:.1f}",
            f"{setup:.1f}",
        ])  # fmt: skip
    return rows


# -- 2. NTFY pull ----------------------------------------------------------------------------------


async def journal_notices(store: JournalStore, notices: int, corporates: int) -> dict[str, float]:
    """``notices`` STATUS notifications: that many BEPS items settled in one round."""
    steps = await journal_acked(store, notices, corporates, 4)
    t = time.perf_counter()
    for cpty in COUNTERPARTIES[:4]:
        figures = await store.ledger(WORK_DATE, cpty)
        assert (await store.apply_netting(WORK_DATE, 1, cpty, figures, at(200))).matched
    steps["net"] = time.perf_counter() - t
    t = time.perf_counter()
    assert (await store.apply_settlement(WORK_DATE, 1, at(300))).items_settled == notices
    steps["settle"] = time.perf_counter() - t
    return steps


async def walk(store: JournalStore, corp_id: str, page: int) -> list[tuple[float, int]]:
    """One corporate's whole backlog, page by page until a short page: (seconds, rows) each."""
    after, calls = 0, []
    while True:
        t = time.perf_counter()
        got = await store.pull_notices(corp_id, after, page)
        calls.append((time.perf_counter() - t, len(got)))
        if len(got) < page:
            return calls
        after = got[-1].ntfy_id


def pct(values: Sequence[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def bench_ntfy(
    journal: Journal, notices: int, corporates: int, page: int, repeat: int
) -> tuple[list[str], dict[str, float]]:
    """Pages/s and p50/p99 count pages with rows; the walk's time includes its last, short call."""
    async with journal() as store:
        steps = await journal_notices(store, notices, corporates)
        rates, p50s, p99s, walks, calls = [], [], [], [], 0
        for _ in range(repeat):
            pages: list[float] = []
            started = time.perf_counter()
            for c in range(corporates):
                walked = await walk(store, corp(c), page)
                assert sum(rows for _, rows in walked) == notices // corporates
                pages += [seconds for seconds, rows in walked if rows]
                walks.append(sum(seconds for seconds, _ in walked))
                calls = len(walked)
            rates.append(len(pages) / (time.perf_counter() - started))
            p50s.append(pct(pages, 50))
            p99s.append(pct(pages, 99))
    row = [
        f"{notices:,} / {corporates}", f"{page}", f"{calls}",
        f"{statistics.median(rates):,.0f}", f"{statistics.median(p50s) * 1e3:.2f}",
        f"{statistics.median(p99s) * 1e3:.2f}", f"{statistics.median(walks) * 1e3:.1f}",
    ]  # fmt: skip
    return row, steps


# -- 3. incoming credits ----------------------------------------------------------------------


async def credits_run(journal: Journal, credits: int, callers: int) -> tuple[float, float, float]:
    """credits/s, p50 and p99 seconds of one credit (receive + post)."""
    work = [incoming(n, COUNTERPARTIES[n % 4], corp(n % 100)) for n in range(credits)]
    latencies: list[float] = []
    async with journal() as store:

        async def one(c: NewIncomingCredit) -> None:
            t = time.perf_counter()
            got = await store.receive_credit(c)
            assert await store.post_credit(got.gw_ref, at(400))
            latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await in_parallel(callers, one, work)
        elapsed = time.perf_counter() - started
        assert len(await store.pull_notices(corp(0), 0, credits)) == len(range(0, credits, 100))
    return credits / elapsed, pct(latencies, 50), pct(latencies, 99)


async def bench_credits(
    journal: Journal, credits: int, levels: Sequence[int], repeat: int
) -> list[list[str]]:
    rows = []
    for callers in levels:
        runs = [await credits_run(journal, credits, callers) for _ in range(repeat)]
        rows.append([
            f"{callers}", f"{credits:,}", f"{statistics.median(r[0] for r in runs):,.0f}",
            f"{statistics.median(r[1] for r in runs) * 1e3:.2f}",
            f"{statistics.median(r[2] for r in runs) * 1e3:.2f}",
        ])  # fmt: skip
    return rows


# -- 4. accept latency during a settlement ----------------------------------------------------


def pay_request(n: int) -> NewRequest:
    """A one-item PAY (HVPS, QUEUED): what the stream journals while the round settles."""
    payment = NewItem(
        seq_no=None,
        payer_acct="6222000011112222",
        payer_name="Acme Trading Co",
        payee_acct=f"62170000{n:08d}",
        payee_name="Zhang San",
        payee_bank_code="104100000004",
        amount=Decimal(n % 997 + 1),
        ccy="CNY",
        priority=Priority.NORM,
        biz_type=BizType.CREDIT,
        purpose="invoice",
        state=State.QUEUED,
        engine=Engine.HVPS,
        receiver="104100000004",
        work_date=WORK_DATE,
    )
    return NewRequest(
        corp_id="P000000001",
        msg_id=f"PAY{n:08d}",
        oper_id="op01",
        trn_code="PAY",
        digest="d" * 64,
        received_at=at(400 + n / 1000),
        items=(payment,),
    )


@dataclass(frozen=True)
class LatencyRun:
    settle_s: float
    before: list[float]  # latencies (s) of accepts finished before the settlement began
    during: list[float]  # latencies (s) of accepts whose [due, done] overlaps the settlement


async def settle_latency_run(
    journal: Journal, n: int, chunk: int, rate: float, lead: float
) -> LatencyRun:
    async with journal() as store:
        await journal_acked(store, n, 100, 4)
        for cpty in COUNTERPARTIES[:4]:
            figures = await store.ledger(WORK_DATE, cpty)
            assert (await store.apply_netting(WORK_DATE, 1, cpty, figures, at(200))).matched
        store.settle_chunk = chunk
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        samples: list[tuple[float, float]] = []  # (due, done), loop time
        inflight: set[asyncio.Task[None]] = set()

        async def send(k: int, due: float) -> None:
            assert (await store.accept(pay_request(k))).created
            samples.append((due, loop.time()))

        async def stream() -> None:
            """Open loop: one task per request at its due time, however many are waiting."""
            start = loop.time()
            for k in itertools.count():
                due = start + k / rate
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if stop.is_set():
                    return
                task = asyncio.create_task(send(k, due))
                inflight.add(task)
                task.add_done_callback(inflight.discard)

        sender = asyncio.create_task(stream())
        await asyncio.sleep(lead)
        began = loop.time()
        out = await store.apply_settlement(WORK_DATE, 1, at(300))
        ended = loop.time()
        assert out.items_settled == n, out
        await asyncio.sleep(lead / 2)
        stop.set()
        await sender
        await asyncio.gather(*inflight)
    return LatencyRun(
        settle_s=ended - began,
        before=[done - due for due, done in samples if done < began],
        during=[done - due for due, done in samples if due < ended and done > began],
    )


async def bench_settle_latency(
    journal: Journal, args: argparse.Namespace, repeat: int
) -> list[list[str]]:
    rows = []
    for chunk in args.settle_chunks:
        runs = [
            await settle_latency_run(journal, args.settle_items, chunk, args.rate, args.lead)
            for _ in range(repeat)
        ]

        def med(values: Iterable[float]) -> str:
            return f"{statistics.median(values) * 1e3:.1f}"

        label = "whole round" if chunk >= args.settle_items else f"{chunk:,}"
        rows.append([
            label, med(r.settle_s for r in runs),
            f"{statistics.median(len(r.during) for r in runs):.0f}",
            med(pct(r.before, 50) for r in runs), med(pct(r.before, 99) for r in runs),
            med(pct(r.during, 50) for r in runs), med(pct(r.during, 99) for r in runs),
            f"{max(max(r.during) for r in runs) * 1e3:.1f}",
        ])  # fmt: skip
    return rows


# -- output ---------------------------------------------------------------------------------------


def table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(title)
    print("  " + "  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print(flush=True)


@contextlib.contextmanager
def journals(backend: str, where: Path | None, pool: int) -> Iterator[Journal]:
    if backend == "sqlite":
        yield sqlite_journal(where)
        return
    with running_postgres() as server:
        yield postgres_journal(server, pool)


async def run(args: argparse.Namespace, journal: Journal) -> None:
    parts = set(args.only.split(","))
    repeat = args.repeat
    if "netting" in parts:
        rows = await bench_netting(journal, args.sizes, args.counterparties, repeat)
        table(
            f"1. netting reconciliation, {args.counterparties} counterparties,"
            f" N/10 incoming credits, median of {repeat}",
            ["N items", "ledger ms", "µs/item", "apply_netting ms", "µs/item",
             "apply_settlement ms", "µs/item", "setup s"],
            rows,
        )  # fmt: skip
    if "ntfy" in parts:
        row, steps = await bench_ntfy(journal, args.notices, args.corporates, args.page, repeat)
        table(
            f"2. NTFY pull_notices, every corporate's backlog walked, median of {repeat}",
            ["notices / corps", "page", "calls/walk", "pages/s", "p50 ms", "p99 ms", "walk ms"],
            [row],
        )
        print(
            "  (setup: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()) + ")\n",
            flush=True,
        )
    if "credits" in parts:
        rows = await bench_credits(journal, args.credits, [1, args.concurrency], repeat)
        table(
            f"3. incoming credits, receive_credit + post_credit, median of {repeat}",
            ["callers", "credits", "credits/s", "p50 ms", "p99 ms"],
            rows,
        )
    if "settle-latency" in parts:
        rows = await bench_settle_latency(journal, args, repeat)
        table(
            f"4. accept() latency while apply_settlement() of {args.settle_items:,} items runs,"
            f" {args.rate:g} accepts/s (open loop), median of {repeat}"
            " (max: over all runs)",
            ["settle_chunk", "settle ms", "accepts during", "before p50 ms", "p99 ms",
             "during p50 ms", "p99 ms", "max ms"],
            rows,
        )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="one small run of each (10-25 s)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per figure (3; quick 1)")
    parser.add_argument("--sizes", default=None, help="netting: items per round (1000,10000)")
    parser.add_argument("--counterparties", type=int, default=4, choices=range(1, 10))
    parser.add_argument("--notices", type=int, default=None, help="ntfy: total (100000)")
    parser.add_argument("--corporates", type=int, default=100)
    parser.add_argument("--page", type=int, default=500, help="ntfy: pull_notices limit")
    parser.add_argument("--credits", type=int, default=None, help="credits per run (500)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", default="netting,ntfy,credits", help="or settle-latency")
    parser.add_argument("--settle-items", type=int, default=None, help="settle-latency (10000)")
    parser.add_argument(
        "--settle-chunks", default="1000000000,500", help="settle-latency: settle_chunk values"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="settle-latency: accepts/s")
    parser.add_argument("--lead", type=float, default=1.0, help="settle-latency: s before")
    parser.add_argument("--dir", type=Path, default=None, help="sqlite: where the files go")
    parser.add_argument("--pool", type=int, default=10, help="postgres: connections")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeat = args.repeat or (1 if quick else 3)
    args.sizes = [int(s) for s in (args.sizes or ("1000" if quick else "1000,10000")).split(",")]
    args.notices = args.notices or (20_000 if quick else 100_000)
    args.credits = args.credits or (300 if quick else 500)
    args.settle_items = args.settle_items or (2_000 if quick else 10_000)
    args.settle_chunks = [int(c) for c in args.settle_chunks.split(",")]
    sizes = [*args.sizes, args.settle_items]
    if args.notices % (PER_REQUEST * args.corporates) or any(s % PER_REQUEST for s in sizes):
        parser.error(f"--notices must be a multiple of {PER_REQUEST} x --corporates,"
                     f" --sizes and --settle-items of {PER_REQUEST}")  # fmt: skip
    print(f"correspondence benchmark, backend {args.backend}", flush=True)
    started = time.perf_counter()
    with journals(args.backend, args.dir, args.pool) as journal:
        asyncio.run(run(args, journal))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
