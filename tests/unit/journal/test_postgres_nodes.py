"""Several gateway nodes on one PostgreSQL database (DESIGN.md "Storage").

What must hold when nodes work at the same time: no item in two outbound
messages (clearing.md §1: one payment, one MsgId) yet every item packaged;
leases keep other nodes off claimed work until they end, so a dead node's
work is taken over; migrations, HELD release, sequences and receipts happen
once whoever races.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import pytest

from gateway.journal import postgres_schema
from gateway.journal.postgres import PostgresStore
from gateway.journal.records import NewOutbound, QueuedItem, TxResult
from gateway.model import Engine, State

from .conftest import StoreFactory
from .helpers import BEPS_RCVR, at, item, request

OTHER_RCVR = "313100000013"


@pytest.fixture
def backend() -> str:
    """PostgreSQL only in this module."""
    return "postgres"


def package(msg_id: str, items: list[QueuedItem]) -> NewOutbound:
    """A BEPS package whose payload lists its item ids, so the test can audit payloads."""
    return NewOutbound(
        msg_id=msg_id,
        engine=Engine.BEPS,
        msg_tp="beps.121",
        topic="clearing/beps/out",
        receiver=items[0].receiver,
        work_date=items[0].work_date,
        payload=",".join(str(i.item_id) for i in items).encode(),
        item_ids=tuple(i.item_id for i in items),
        created_at=at(1),
    )


async def accept_beps(store: PostgresStore, requests: int, per_request: int) -> None:
    """PAYROLL requests of BEPS items for two receivers (two packaging groups)."""
    for r in range(requests):
        items = [
            item(seq_no=s, engine=Engine.BEPS, receiver=(BEPS_RCVR, OTHER_RCVR)[s % 2])
            for s in range(1, per_request + 1)
        ]
        await store.accept(request(f"pr-{r}", *items, trn_code="PAYROLL"))


async def wait_for_claim(store: PostgresStore, limit: int = 100) -> list[QueuedItem]:
    """Claim until something comes back (a lease has to expire first); 20 s at most."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if items := await store.claim_queued(Engine.BEPS, limit):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError("nothing became claimable")


async def test_two_nodes_packaging_at_once_put_every_item_in_exactly_one_message(
    make_store: StoreFactory, sql: asyncpg.Connection
) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    await accept_beps(a, requests=10, per_request=100)
    conflicts = Counter[str]()

    async def packer(store: PostgresStore) -> None:
        while groups := await store.pending_groups(Engine.BEPS):
            g = groups[0]
            items = await store.claim_queued(
                Engine.BEPS, 25, receiver=g.receiver, biz_type=g.biz_type, work_date=g.work_date
            )
            if not items:
                await asyncio.sleep(0)  # a sibling holds the rows right now
                continue
            seq = await store.next_sequence("out-beps")
            try:
                await store.create_outbound([package(f"BEPS{seq:08d}", items)])
            except ValueError:
                conflicts[store.node] += 1  # someone linked one of them first: nothing written

    await asyncio.gather(*(packer(node) for _ in range(20) for node in (a, b)))

    rows = await sql.fetch("SELECT msg_id, payload, node FROM outbound")
    in_payloads = Counter(int(i) for r in rows for i in bytes(r["payload"]).decode().split(","))
    all_ids = [r["id"] for r in await sql.fetch("SELECT id FROM items")]
    assert len(all_ids) == 1000
    assert set(in_payloads) == set(all_ids)  # every item packaged
    assert max(in_payloads.values()) == 1  # none in two messages
    linked = await sql.fetch("SELECT id, out_msg_id FROM items")
    by_payload = {
        int(i): r["msg_id"] for r in rows for i in bytes(r["payload"]).decode().split(",")
    }
    assert {r["id"]: r["out_msg_id"] for r in linked} == by_payload
    assert {r["node"] for r in rows} == {"A", "B"}  # both nodes did work
    assert await sql.fetchval("SELECT count(*) FROM items WHERE claimed_by IS NOT NULL") == 0


async def test_a_live_lease_keeps_other_nodes_off_and_its_holder_on(
    make_store: StoreFactory,
) -> None:
    a = await make_store(node="A", lease=60)
    b = await make_store(node="B", lease=60)
    await accept_beps(a, requests=1, per_request=6)  # 3 items per receiver
    mine = await a.claim_queued(Engine.BEPS, 2, receiver=BEPS_RCVR)
    assert [i.item_id for i in mine] == [2, 4]  # even SeqNos go to BEPS_RCVR
    # B sees and gets only what A has not leased.
    groups_b = {g.receiver: g.count for g in await b.pending_groups(Engine.BEPS)}
    assert groups_b == {BEPS_RCVR: 1, OTHER_RCVR: 3}
    groups_a = {g.receiver: g.count for g in await a.pending_groups(Engine.BEPS)}
    assert groups_a == {BEPS_RCVR: 3, OTHER_RCVR: 3}
    theirs = await b.claim_queued(Engine.BEPS, 10, receiver=BEPS_RCVR)
    assert [i.item_id for i in theirs] == [6]
    with pytest.raises(ValueError, match="not a QUEUED"):
        await b.create_outbound([package("B-steal", mine)])
    # A may claim its own rows again (the lease is renewed), and package them.
    again = await a.claim_queued(Engine.BEPS, 2, receiver=BEPS_RCVR)
    assert [i.item_id for i in again] == [i.item_id for i in mine]
    await a.create_outbound([package("A-1", mine)])
    await b.create_outbound([package("B-1", theirs)])
    assert await a.claim_queued(Engine.BEPS, 10, receiver=BEPS_RCVR) == []


async def test_a_crashed_nodes_lease_is_taken_over_when_it_ends(make_store: StoreFactory) -> None:
    crashed = await make_store(node="A", lease=0.5)
    await accept_beps(crashed, requests=1, per_request=4)
    claimed = await crashed.claim_queued(Engine.BEPS, 10)
    assert len(claimed) == 4
    await crashed.close()  # gone without packaging: its leases stay in the database

    b = await make_store(node="B", lease=30)
    taken = await wait_for_claim(b)
    assert [i.item_id for i in taken] == [i.item_id for i in claimed]
    assert sum(g.count for g in await b.pending_groups(Engine.BEPS)) == 4
    by_receiver: dict[str, list[QueuedItem]] = {}
    for i in taken:
        by_receiver.setdefault(i.receiver, []).append(i)
    await b.create_outbound([package(f"B-{r}", its) for r, its in sorted(by_receiver.items())])
    assert await b.claim_queued(Engine.BEPS, 10) == []


async def test_a_slow_holder_whose_lease_ended_cannot_package_what_another_took(
    make_store: StoreFactory,
) -> None:
    slow = await make_store(node="A", lease=0.5)
    fast = await make_store(node="B", lease=30)
    await accept_beps(slow, requests=1, per_request=1)
    claimed = await slow.claim_queued(Engine.BEPS, 1)
    taken = await wait_for_claim(fast, limit=1)
    assert [i.item_id for i in taken] == [i.item_id for i in claimed]
    with pytest.raises(ValueError, match="not a QUEUED"):
        await slow.create_outbound([package("A-late", claimed)])
    await fast.create_outbound([package("B-on-time", taken)])
    assert [r.msg_id for r in await fast.unsent_outbound(10)] == ["B-on-time"]


async def test_a_restarted_node_resumes_its_own_leases_at_once(make_store: StoreFactory) -> None:
    before = await make_store(node="A", lease=60)
    await accept_beps(before, requests=1, per_request=3)
    claimed = await before.claim_queued(Engine.BEPS, 10)
    await before.close()
    after = await make_store(node="A", lease=60)
    assert await after.claim_queued(Engine.BEPS, 10) == claimed
    other = await make_store(node="B")
    assert await other.claim_queued(Engine.BEPS, 10) == []


async def test_single_payment_engines_share_work_the_same_way(make_store: StoreFactory) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    for n in range(40):
        await a.accept(request(f"h-{n}"))
    first_a, first_b = await asyncio.gather(
        a.claim_queued(Engine.HVPS, 25), b.claim_queued(Engine.HVPS, 25)
    )
    ids_a = {i.item_id for i in first_a}
    ids_b = {i.item_id for i in first_b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 40


async def test_nodes_starting_together_migrate_once(database_dsn: str) -> None:
    """A fresh database (its default ``public`` schema) and six nodes starting at once."""
    stores = [PostgresStore(database_dsn, node=letter) for letter in "ABCDEF"]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        outcomes = await asyncio.gather(*(s.accept(request(f"m-{s.node}")) for s in stores))
        assert all(o.created for o in outcomes)
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    sql = await asyncpg.connect(database_dsn)
    try:
        rows = await sql.fetch("SELECT version FROM public.schema_version ORDER BY version")
    finally:
        await sql.close()
    assert [r["version"] for r in rows] == list(range(1, postgres_schema.SCHEMA_VERSION + 1))


async def test_gwrefs_and_sequences_are_unique_across_nodes(make_store: StoreFactory) -> None:
    nodes = [await make_store(node=letter) for letter in "ABC"]
    outcomes = await asyncio.gather(*(nodes[n % 3].accept(request(f"u-{n}")) for n in range(90)))
    refs = [o.record.gw_ref for o in outcomes if o.record is not None]
    assert len(set(refs)) == 90
    assert {r[10] for r in refs} == {"A", "B", "C"}
    assert len({r[11:] for r in refs}) == 90  # the numbers alone are unique too
    firsts = await asyncio.gather(
        *(nodes[n % 3].next_sequence("out-20261127", 5) for n in range(30))
    )
    assert sorted(firsts) == list(range(1, 150, 5))  # disjoint ranges, none lost


async def test_two_nodes_releasing_held_items_release_each_once(
    make_store: StoreFactory, sql: asyncpg.Connection
) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    for n in range(100):
        await a.accept(request(f"held-{n}", item(state=State.HELD, release_at=at(n))))

    async def releaser(store: PostgresStore) -> int:
        moved = 0
        while n := await store.release_held(at(500), 7):
            moved += n
        return moved

    counts = await asyncio.gather(*(releaser(s) for _ in range(5) for s in (a, b)))
    assert sum(counts) == 100
    per_item = await sql.fetch(
        "SELECT item_id, count(*) AS n FROM transitions WHERE state = 'QUEUED' GROUP BY item_id"
    )
    assert len(per_item) == 100
    assert {r["n"] for r in per_item} == {1}


async def test_receipts_applied_by_two_nodes_at_once_apply_once(
    make_store: StoreFactory, sql: asyncpg.Connection
) -> None:
    a = await make_store(node="A")
    b = await make_store(node="B")
    await accept_beps(a, requests=1, per_request=10)
    items = await a.claim_queued(Engine.BEPS, 10, receiver=BEPS_RCVR)
    await a.create_outbound([package("pkg-1", items)])
    results = [
        TxResult(tx_id=i.tx_id, end_to_end_id=None, status="ACSC" if n % 2 else "RJCT",
                 reason_code=None if n % 2 else "AC04")
        for n, i in enumerate(items)
    ]  # fmt: skip
    calls = []
    for node in (a, b):
        calls += [node.mark_sent("pkg-1", at(2)), node.mark_resent("pkg-1", at(3))]
        calls += [node.apply_receipt("pkg-1", at(4))]
        calls += [node.apply_tx_status("pkg-1", results, at(5)) for _ in range(3)]
    await asyncio.gather(*calls)
    rows = await sql.fetch(
        "SELECT t.state, count(*) AS n FROM transitions t JOIN items i ON i.id = t.item_id"
        " WHERE i.out_msg_id = 'pkg-1' GROUP BY t.state"
    )
    assert {r["state"]: r["n"] for r in rows} == {
        "ACCEPTED": 5, "QUEUED": 5, "SENT": 5, "ACKED": 5, "SETTLED": 2, "REJECTED": 3,
    }  # fmt: skip
    view = await b.item_status("C100000001", "pr-0", items[0].seq_no)
    assert view is not None
    assert [t.state for t in view.history] == [
        State.ACCEPTED, State.QUEUED, State.SENT, State.ACKED, State.REJECTED,
    ]  # fmt: skip
    (out,) = await sql.fetch("SELECT state, attempts FROM outbound")
    assert out["state"] == "ACKED"
    assert out["attempts"] in (1, 2)  # the re-send counts unless it was the first PUBACK


async def test_an_item_leased_by_another_node_is_not_rejected(make_store: StoreFactory) -> None:
    a = await make_store(node="A", lease=60)
    b = await make_store(node="B", lease=60)
    await a.accept(request("p1", item(engine=Engine.BEPS, receiver=BEPS_RCVR)))
    (leased,) = await a.claim_queued(Engine.BEPS, 10)

    assert not await b.reject_queued(leased.item_id, Engine.BEPS, "4001", "gone", at(5))
    assert await a.reject_queued(leased.item_id, Engine.BEPS, "4001", "gone", at(5))
    view = await a.item_status("C100000001", "p1")
    assert view is not None
    assert (view.state, view.reason_code) == (State.REJECTED, "4001")
