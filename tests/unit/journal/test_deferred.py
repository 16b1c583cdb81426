"""Evidence rows written in bursts: nothing lost at close, a failed row does not stop others."""

from __future__ import annotations

import asyncio

from gateway.journal.deferred import DeferredWrites


async def test_rows_wait_for_the_interval_then_go_together() -> None:
    written: list[tuple[int, float]] = []
    loop = asyncio.get_running_loop()

    async def write(row: int) -> None:
        written.append((row, loop.time()))

    d: DeferredWrites[int] = DeferredWrites(write, interval=0.2)
    t0 = loop.time()
    for i in range(3):
        d.add(i)
    await asyncio.sleep(0.05)
    assert written == []  # not one commit each
    await asyncio.sleep(0.3)
    assert [r for r, _ in written] == [0, 1, 2]
    assert all(t - t0 >= 0.19 for _, t in written)


async def test_a_full_batch_goes_at_once_and_close_writes_the_rest() -> None:
    written: list[int] = []

    async def write(row: int) -> None:
        written.append(row)

    d: DeferredWrites[int] = DeferredWrites(write, interval=60, max_pending=4)
    for i in range(6):
        d.add(i)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert written == [0, 1, 2, 3]
    await d.close()
    assert written == [0, 1, 2, 3, 4, 5]


async def test_a_failing_row_is_logged_and_the_others_are_written() -> None:
    written: list[int] = []

    async def write(row: int) -> None:
        if row == 1:
            raise OSError("disk full")
        written.append(row)

    d: DeferredWrites[int] = DeferredWrites(write, interval=60)
    for i in range(3):
        d.add(i)
    await d.close()
    assert written == [0, 2]
