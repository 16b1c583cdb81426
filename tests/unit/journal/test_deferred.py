"""Evidence rows written in bursts: one write per burst, nothing lost at close, a failed
row does not stop others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.journal.deferred import DeferredWrites


class Sink:
    """Records each burst and each single-row write; rows in ``bad`` fail."""

    def __init__(self, bad: frozenset[int] = frozenset()) -> None:
        self.bursts: list[list[int]] = []
        self.singles: list[int] = []
        self.bad = bad

    async def many(self, rows: Sequence[int]) -> None:
        if self.bad & set(rows):
            raise OSError("constraint failed")  # the whole statement fails, nothing kept
        self.bursts.append(list(rows))

    async def one(self, row: int) -> None:
        if row in self.bad:
            raise OSError("constraint failed")
        self.singles.append(row)


async def test_rows_wait_for_the_interval_then_go_as_one_write() -> None:
    loop = asyncio.get_running_loop()
    sink = Sink()
    d: DeferredWrites[int] = DeferredWrites(sink.many, sink.one, interval=0.2)
    t0 = loop.time()
    for i in range(3):
        d.add(i)
    await asyncio.sleep(0.05)
    assert sink.bursts == []  # not one commit each
    await asyncio.sleep(0.3)
    assert sink.bursts == [[0, 1, 2]]
    assert sink.singles == []
    assert loop.time() - t0 >= 0.19


async def test_a_full_batch_goes_at_once_and_close_writes_the_rest() -> None:
    sink = Sink()
    d: DeferredWrites[int] = DeferredWrites(sink.many, sink.one, interval=60, max_pending=4)
    for i in range(6):
        d.add(i)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sink.bursts == [[0, 1, 2, 3]]
    await d.close()
    assert sink.bursts == [[0, 1, 2, 3], [4, 5]]


async def test_a_failing_row_is_logged_and_the_others_are_written() -> None:
    sink = Sink(bad=frozenset({1}))
    d: DeferredWrites[int] = DeferredWrites(sink.many, sink.one, interval=60)
    for i in range(3):
        d.add(i)
    await d.close()
    assert sink.bursts == []
    assert sink.singles == [0, 2]
