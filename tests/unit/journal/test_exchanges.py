"""The kept request/response bytes (``gatewayctl messages show``), on both backends: a
burst of exchanges is kept as one write, each readable by its GwRef; a GwRef kept before
keeps its first bytes (once per GwRef), and the rest of the burst is still kept."""

from __future__ import annotations

from datetime import timedelta

from gateway.journal.ops_records import Exchange

from .conftest import JournalStore
from .helpers import T0


def _ex(n: int, response: bytes = b"<Rsp/>") -> Exchange:
    return Exchange(f"G{n:05d}", f"<Req n='{n}'/>".encode(), response, T0 + timedelta(seconds=n))


async def test_a_burst_is_kept_and_each_exchange_reads_back(store: JournalStore) -> None:
    burst = [_ex(n) for n in range(50)]
    await store.record_exchanges(burst)
    for ex in (burst[0], burst[17], burst[49]):
        assert await store.exchange(ex.gw_ref) == ex
    assert await store.exchange("G99999") is None


async def test_a_gw_ref_kept_before_keeps_its_first_bytes(store: JournalStore) -> None:
    first = _ex(1, b"<Rsp>first</Rsp>")
    await store.record_exchange(first)
    await store.record_exchanges([_ex(1, b"<Rsp>again</Rsp>"), _ex(2)])
    assert await store.exchange("G00001") == first
    assert await store.exchange("G00002") == _ex(2)


async def test_an_empty_burst_writes_nothing(store: JournalStore) -> None:
    await store.record_exchanges([])
    assert await store.exchange("G00000") is None
