"""Live counts for the dashboard gauges: right, and read through indexes of live rows only.

``Store.live_counts`` is read every few seconds (gateway/ops/gauges.py) on a
journal that keeps 400 days of history.  The counts are checked through the
store protocol on both backends; the cost is checked by putting each query to
the database's own planner on a journal that holds mostly history (SETTLED
items, POSTED credits): a plan that scans a table fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import pytest

from gateway.journal import gauges, schema
from gateway.journal.records import CreditState, InquiryDirection, NewInquiry
from gateway.model import Engine, State
from gateway.ops import metrics
from gateway.ops.gauges import refresh_journal_gauges

from .conftest import JournalStore
from .helpers import BEPS_RCVR, at, item, request
from .test_correspondence import credit, message

HISTORY = 3000
"""Final rows beside the live ones: enough for the planners to prefer an index."""


def auto_inquiry(gw_ref: str, tx_id: str) -> NewInquiry:
    return NewInquiry(
        inq_id=f"IQ{gw_ref}", direction=InquiryDirection.OUT, counterparty=BEPS_RCVR,
        text="creditor account unknown", created_at=at(20), orgnl_msg_id=f"M-{tx_id}",
        orgnl_tx_id=tx_id, credit_ref=gw_ref, engine=Engine.BEPS,
    )  # fmt: skip


async def test_an_empty_journal_counts_zero_for_every_pair(store: JournalStore) -> None:
    counts = await store.live_counts()
    assert counts.items == {(e, s): 0 for e in Engine for s in gauges.LIVE_STATES}
    assert counts.credits == {
        CreditState.CHECKING: 0,
        CreditState.SUSPENSE: 0,
        CreditState.REVIEW: 0,
    }


async def test_counts_follow_items_and_credits(store: JournalStore) -> None:
    await store.accept(request("m-q1"))  # HVPS QUEUED
    await store.accept(request("m-q2"))
    await store.accept(
        request("m-h", item(engine=Engine.BEPS, state=State.HELD, release_at=at(3600)))
    )
    # a batch with one item refused at routing: REJECTED is final, never counted
    await store.accept(
        request(
            "m-b",
            item(seq_no=1, engine=Engine.INTRA),
            item(seq_no=2, state=State.REJECTED, engine=None, receiver=None, reason_code="4001"),
        )
    )
    for n in range(3):
        await store.receive_credit(credit(f"GI{n}", f"T{n}"))
    assert await store.suspend_credit("GI1", at(20), auto_inquiry("GI1", "T1"), message("Q1"))
    assert await store.post_credit("GI2", at(20))

    counts = await store.live_counts()
    live = {pair: n for pair, n in counts.items.items() if n}
    assert live == {
        (Engine.HVPS, State.QUEUED): 2,
        (Engine.BEPS, State.HELD): 1,
        (Engine.INTRA, State.QUEUED): 1,
    }
    assert counts.credits == {
        CreditState.CHECKING: 1,
        CreditState.SUSPENSE: 1,
        CreditState.REVIEW: 0,
    }


# -- cost: the planners' own verdict on a journal full of history -----------------------


async def _fill_history(store: JournalStore) -> None:
    """HISTORY settled BEPS items, HISTORY posted credits, a few live rows of each."""
    items = [item(seq_no=n, engine=Engine.BEPS) for n in range(1, HISTORY + 11)]
    await store.accept(request("m-history", *items))
    await store.receive_credit(credit("GI-live", "T-live"))
    await store.receive_credit(credit("GI-susp", "T-susp"))
    assert await store.suspend_credit(
        "GI-susp", at(20), auto_inquiry("GI-susp", "T-susp"), message("Q1")
    )


_SETTLE = f"UPDATE items SET state = 'SETTLED' WHERE seq_no <= {HISTORY}"  # noqa: S608
_POSTED = (
    "INSERT INTO incoming_credits (gw_ref, engine, msg_id, tx_id, end_to_end_id, sender,"
    " work_date, debtor_acct, debtor_name, debtor_bank, creditor_acct, creditor_name,"
    " amount_fen, received_at, state, updated_at{node})"
    " SELECT 'GH' || i, 'BEPS', 'M' || i, 'H' || i, 'E' || i, '104100000004', {d}, '1', 'a',"
    " '104100000004', '2', 'b', 100, {t}, 'POSTED', {t}{node_value} FROM {n}"
)


def _sqlite_plans(path: Path) -> list[str]:
    conn = schema.connect(path)
    try:
        conn.execute(_SETTLE)
        series = (
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"  # noqa: S608
            f" WHERE i < {HISTORY}) SELECT i FROM s)"
        )
        conn.execute(_POSTED.format(t="i", d="'2026-11-27'", n=series, node="", node_value=""))
        conn.execute("ANALYZE")
        return [
            "\n".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in (gauges.ITEMS_SQL, gauges.CREDITS_SQL)
        ]
    finally:
        conn.close()


async def _postgres_plans(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn, server_settings={"gateway.node": "A"})  # audit chain
    try:
        await conn.execute(_SETTLE)
        await conn.execute(
            _POSTED.format(
                t="now() - i * interval '1 minute'",
                d="current_date",
                n=f"generate_series(1, {HISTORY}) AS i",
                node=", node",
                node_value=", 'A'",
            )
        )
        await conn.execute("ANALYZE")
        return [
            "\n".join(str(r[0]) for r in await conn.fetch(f"EXPLAIN {sql}"))
            for sql in (gauges.ITEMS_SQL, gauges.CREDITS_SQL)
        ]
    finally:
        await conn.close()


async def test_counts_read_only_live_index_entries(
    store: JournalStore, backend: str, request: pytest.FixtureRequest
) -> None:
    await _fill_history(store)
    if backend == "sqlite":
        items_plan, credits_plan = _sqlite_plans(request.getfixturevalue("db_path"))
        assert items_plan.startswith(
            "SEARCH items USING COVERING INDEX items_summary (engine=? AND state=?)"
        ), items_plan
        assert "SCAN incoming_credits USING INDEX credits_checking" in credits_plan
        assert "SCAN incoming_credits USING INDEX credits_suspense" in credits_plan
        assert "SCAN incoming_credits USING INDEX credits_review" in credits_plan
        assert "SCAN items\n" not in items_plan + "\n"
        assert "TEMP B-TREE" not in items_plan + credits_plan
    else:
        items_plan, credits_plan = await _postgres_plans(request.getfixturevalue("dsn"))
        assert "Seq Scan" not in items_plan + credits_plan, items_plan + "\n" + credits_plan
        assert "items_summary" in items_plan, items_plan
        assert "credits_checking" in credits_plan, credits_plan
        assert "credits_suspense" in credits_plan, credits_plan
        assert "credits_review" in credits_plan, credits_plan
    counts = await store.live_counts()
    assert counts.items[(Engine.BEPS, State.QUEUED)] == 10
    assert counts.credits == {
        CreditState.CHECKING: 1,
        CreditState.SUSPENSE: 1,
        CreditState.REVIEW: 0,
    }


async def test_the_refresh_publishes_the_counts_as_gauges(store: JournalStore) -> None:
    """gateway_items / gateway_credits follow the journal within one refresh."""
    await store.accept(
        request("m-g", item(engine=Engine.INTRA, state=State.HELD, release_at=at(3600)))
    )
    await store.receive_credit(credit("GI-g", "T-g"))
    assert await store.suspend_credit("GI-g", at(20), auto_inquiry("GI-g", "T-g"), message("Q9"))

    def value(name: str, **labels: str) -> float | None:
        return metrics.REGISTRY.get_sample_value(name, labels)

    metrics.ITEMS.labels("INTRA", "HELD").set(-1)  # whatever an earlier test left
    task = asyncio.create_task(refresh_journal_gauges(store, interval=0.05))
    try:
        for _ in range(200):
            if value("gateway_items", engine="INTRA", state="HELD") == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert value("gateway_items", engine="INTRA", state="HELD") == 1
    assert value("gateway_items", engine="HVPS", state="QUEUED") == 0
    assert value("gateway_credits", state="SUSPENSE") == 1
    assert value("gateway_credits", state="CHECKING") == 0
