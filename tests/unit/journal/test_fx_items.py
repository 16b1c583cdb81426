"""The foreign-currency fields of an item (docs/foreign-currency.md §1, §4), on both backends:
PayeeBIC, PayeeCountry and ChrgBr journaled with it and handed to its engine, and the
UETR written with its swift.008 and shown by STATUS."""

from __future__ import annotations

from dataclasses import replace

from gateway.journal.records import NewItem, NewOutbound
from gateway.model import Engine

from .conftest import JournalStore
from .helpers import WORK_DATE, at, item, request

UETR = "8a562c67-ca16-48ba-b074-65581be6f011"


def swift_item() -> NewItem:
    base = item(engine=Engine.SWIFT, receiver="HUDSUS33", amount="250.50")
    return replace(
        base,
        ccy="USD",
        payee_bank_code="",
        payee_bic="CITIUS33XXX",
        payee_country="US",
        chrg_br="DEBT",
    )


async def test_fx_fields_reach_the_engine_and_the_uetr_reaches_status(
    store: JournalStore,
) -> None:
    await store.accept(request("FX-1", swift_item()))
    await store.accept(request("CNY-1"))
    (queued,) = await store.claim_queued(Engine.SWIFT, 10)
    assert (queued.ccy, queued.payee_bic, queued.payee_country, queued.chrg_br) == (
        "USD",
        "CITIUS33XXX",
        "US",
        "DEBT",
    )
    assert str(queued.amount) == "250.50"
    (cny,) = await store.claim_queued(Engine.HVPS, 10)
    assert (cny.payee_bic, cny.payee_country, cny.chrg_br) == (None, None, None)

    before = await store.item_status("C100000001", "FX-1")
    assert before is not None and before.uetr is None
    await store.create_outbound(
        [
            NewOutbound(
                msg_id="DEMOCNBJ202611270000000001",
                engine=Engine.SWIFT,
                msg_tp="swift.008",
                topic="swift/out",
                receiver="HUDSUS33",
                work_date=WORK_DATE,
                payload=b"<ClrMsg/>",
                item_ids=(queued.item_id,),
                created_at=at(1),
                uetr=UETR,
            )
        ]
    )
    after = await store.item_status("C100000001", "FX-1")
    assert after is not None and (after.engine, after.uetr) == (Engine.SWIFT, UETR)
    cny_view = await store.item_status("C100000001", "CNY-1")
    assert cny_view is not None and cny_view.uetr is None
