"""The clearing simulator's MsgId memory: exact within the window, compact and bounded beyond."""

from __future__ import annotations

import tracemalloc

import pytest

from gateway.sim.dedupe import MsgIdMemory, _Ranges

P = "103100000019"


def mid(day: str, seq: int, participant: str = P) -> str:
    return f"{participant}{day}{seq:010d}"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_recent_then_late_then_forgotten_with_its_date() -> None:
    clock = Clock()
    memory: MsgIdMemory[str] = MsgIdMemory(120.0, monotonic=clock)
    a = mid("20261207", 1)
    assert memory.seen(a) == "new"
    memory.remember(a, "answers")
    clock.t = 119.0
    assert (memory.seen(a), memory.answer(a)) == ("recent", "answers")
    clock.t = 121.0
    assert (memory.seen(a), memory.answer(a)) == ("late", None)  # seen, answers gone
    # two later work dates push the first one out of the compact record
    for day, t in (("20261208", 300.0), ("20261209", 600.0)):
        memory.remember(mid(day, 1), None)
        clock.t = t
        memory.seen(mid(day, 1))
    clock.t = 1000.0
    assert memory.seen(mid("20261209", 1)) == "late"
    assert memory.seen(mid("20261208", 1)) == "late"
    assert memory.seen(a) == "new"


def test_other_participants_and_odd_shapes_are_kept_apart() -> None:
    clock = Clock()
    memory: MsgIdMemory[None] = MsgIdMemory(1.0, monotonic=clock)
    for m in (mid("20261207", 5), "ODD-ID-20261207", mid("20261207", 5, "999999999999")):
        memory.remember(m, None)
    clock.t = 5.0
    assert memory.seen(mid("20261207", 5)) == "late"
    assert memory.seen(mid("20261207", 6)) == "new"
    assert memory.seen(mid("20261207", 5, "999999999999")) == "late"
    assert memory.seen(mid("20261207", 5, "888888888888")) == "new"
    assert memory.seen("ODD-ID-20261207") == "late"
    assert memory.seen("ODD-ID-20261208") == "new"


def test_max_recent_bounds_the_answers_kept_whatever_the_window() -> None:
    memory: MsgIdMemory[bytes] = MsgIdMemory(3600.0, max_recent=100)
    for i in range(1000):
        memory.remember(mid("20261207", i), b"x" * 100)
    assert memory.recent_count == 100
    assert memory.seen(mid("20261207", 999)) == "recent"
    assert memory.seen(mid("20261207", 0)) == "late"


def test_a_day_of_consecutive_msg_ids_costs_a_few_ranges_not_a_set() -> None:
    clock = Clock()
    memory: MsgIdMemory[None] = MsgIdMemory(1.0, monotonic=clock)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(200_000):
        clock.t = i * 0.01
        memory.remember(mid("20261207", i * 2 if i % 1000 == 0 else i), None)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert memory.ranges < 500
    assert after - before < 5 * 2**20  # a plain set of 200,000 MsgIds takes ~20 MiB


@pytest.mark.parametrize(
    "adds",
    [[1, 2, 3], [3, 2, 1], [1, 3, 2], [5, 1, 9, 2, 8, 3, 7], list(range(50, 0, -3)), [4, 4, 4]],
)
def test_ranges_hold_exactly_what_was_added(adds: list[int]) -> None:
    r = _Ranges()
    for n in adds:
        r.add(n)
    assert {n for n in range(-1, 60) if n in r} == set(adds)
    assert all(s < e for s, e in zip(r.starts, r.ends, strict=True))
    assert all(e < s for e, s in zip(r.ends, r.starts[1:], strict=False))  # disjoint, merged
