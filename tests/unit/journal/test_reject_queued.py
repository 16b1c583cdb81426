"""A claimed QUEUED item the engine can no longer build a message for becomes REJECTED
with its reason (docs/foreign-currency.md §3: a SWIFT settlement path removed by a
reload → 4001), with its transition and STATUS notice, on both backends."""

from __future__ import annotations

from dataclasses import replace

from gateway.journal.records import NewItem, NewOutbound
from gateway.model import Engine, NoticeKind, State

from .conftest import JournalStore
from .helpers import T0, WORK_DATE, at, item, request

CORP = "C100000001"
GONE = "the settlement path for USD is no longer configured"


def swift_item(ccy: str = "USD") -> NewItem:
    base = item(engine=Engine.SWIFT, receiver="HUDSUS33", amount="250.50")
    return replace(base, ccy=ccy, payee_bank_code="", payee_bic="CITIUS33XXX", payee_country="US")


async def test_a_claimed_item_is_rejected_with_its_reason_and_notice(store: JournalStore) -> None:
    await store.accept(request("FX-USD", swift_item()))
    await store.accept(request("FX-EUR", swift_item("EUR")))
    usd, eur = await store.claim_queued(Engine.SWIFT, 10)
    assert usd.msg_id == "FX-USD"

    assert await store.reject_queued(usd.item_id, Engine.SWIFT, "4001", GONE, at(5))

    view = await store.item_status(CORP, "FX-USD")
    assert view is not None
    assert (view.state, view.reason_code, view.reason_text) == (State.REJECTED, "4001", GONE)
    assert [(t.state, t.at) for t in view.history] == [
        (State.ACCEPTED, T0),
        (State.QUEUED, T0),
        (State.REJECTED, at(5)),
    ]
    (notice,) = await store.pull_notices(CORP, 0, 100)
    assert (notice.kind, notice.orig_msg_id, notice.state) == (
        NoticeKind.STATUS, "FX-USD", State.REJECTED,
    )  # fmt: skip
    assert (notice.reason_code, notice.text, notice.at) == ("4001", GONE, at(5))
    # The other item of the same claim is untouched and still goes out.
    assert [q.item_id for q in await store.claim_queued(Engine.SWIFT, 10)] == [eur.item_id]
    await store.create_outbound([outbound("SWIFT-1", eur.item_id)])


def outbound(msg_id: str, item_id: int) -> NewOutbound:
    return NewOutbound(
        msg_id=msg_id,
        engine=Engine.SWIFT,
        msg_tp="swift.008",
        topic="swift/out",
        receiver="HUDSUS33",
        work_date=WORK_DATE,
        payload=b"<ClrMsg/>",
        item_ids=(item_id,),
        created_at=at(1),
    )


async def test_only_a_queued_unlinked_item_of_the_engine_is_rejected(
    store: JournalStore,
) -> None:
    await store.accept(request("FX-1", swift_item()))
    await store.accept(request("FX-2", swift_item()))
    first, second = await store.claim_queued(Engine.SWIFT, 10)
    await store.create_outbound([outbound("SWIFT-1", first.item_id)])

    assert not await store.reject_queued(first.item_id, Engine.SWIFT, "4001", GONE, at(5))
    assert not await store.reject_queued(second.item_id, Engine.HVPS, "4001", GONE, at(5))
    assert await store.reject_queued(second.item_id, Engine.SWIFT, "4001", GONE, at(5))
    assert not await store.reject_queued(second.item_id, Engine.SWIFT, "4001", GONE, at(6))

    linked = await store.item_status(CORP, "FX-1")
    assert linked is not None
    assert linked.state is State.QUEUED
    rejected = await store.item_status(CORP, "FX-2")
    assert rejected is not None
    assert [t.state for t in rejected.history].count(State.REJECTED) == 1
    assert len(await store.pull_notices(CORP, 0, 100)) == 1
