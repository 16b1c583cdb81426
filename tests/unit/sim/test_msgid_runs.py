"""The clearing simulator's compact MsgId bookkeeping stays right and stays small.

A soak of the gateway's benchmark kept the simulator growing by every
message's receiver (kept so that an injected ccms.314 comes from the bank
the payment went to); these tests hold the bounded form to the same answers.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Coroutine
from datetime import date
from typing import Any

from lxml import etree

from gateway.clearing.ccms import parse_inquiry
from gateway.clearing.envelope import (
    build_envelope,
    out_msg_id,
    parse_envelope,
    parse_message,
    serialize,
)
from gateway.keys.xmldsig import SigningKey, verify_pinned
from gateway.sim.clearing import ClearingSimConfig
from gateway.sim.clearing_rounds import ClearingRounds
from gateway.sim.msgid_runs import MsgIdRuns
from tests.unit.clearing.pacs_samples import CREATED, OUR_PARTICIPANT, WORK_DATE

BANKS = ("104100000004", "105100000017", "102100099996")
DAY = date(2026, 11, 27)


def msg_id(seq: int, day: date = DAY) -> str:
    return out_msg_id(OUR_PARTICIPANT, day, seq)


def bank_of(seq: int) -> str:
    """Batches of five consecutive MsgIds to one bank, as the engines seal them."""
    return BANKS[(seq // 5) % len(BANKS)]


def test_every_msg_id_gets_its_value_back_from_few_runs() -> None:
    runs: MsgIdRuns[tuple[str, date]] = MsgIdRuns(days=None)
    for seq in range(1, 10_001):
        runs.put(msg_id(seq), (bank_of(seq), DAY))
    runs.put("X-1", ("999999999999", DAY))  # another shape is kept as it is
    assert all(runs.get(msg_id(seq)) == (bank_of(seq), DAY) for seq in range(1, 10_001))
    assert runs.get("X-1") == ("999999999999", DAY)
    assert runs.get(msg_id(10_001)) is None
    assert runs.get(msg_id(1, date(2026, 11, 28))) is None
    assert runs.size <= 10_000 // 5 + 2  # one run per batch, not one entry per message


def test_a_msg_id_put_again_takes_its_new_value_and_spares_its_neighbours() -> None:
    runs: MsgIdRuns[str] = MsgIdRuns()
    for seq in range(1, 11):
        runs.put(msg_id(seq), "a")
    runs.put(msg_id(5), "b")
    runs.put(msg_id(11), "a")
    assert [runs.get(msg_id(seq)) for seq in range(1, 12)] == [*"aaaab", *"aaaaaa"]


def test_max_runs_bounds_the_size_and_forgets_the_oldest_first() -> None:
    runs: MsgIdRuns[str] = MsgIdRuns(days=None, max_runs=800)
    for seq in range(1, 20_001):
        runs.put(msg_id(seq), "ab"[seq % 2])  # worst case: every message a run of its own
        assert runs.size <= 800
    assert runs.size >= 700  # an eighth evicted at a time
    assert all(runs.get(msg_id(seq)) == "ab"[seq % 2] for seq in range(19_301, 20_001))
    assert msg_id(1) not in runs


def test_days_keeps_only_the_latest_dates() -> None:
    runs: MsgIdRuns[bool] = MsgIdRuns(days=2)
    days = [date(2026, 11, d) for d in (27, 28, 29)]
    for day in days:
        runs.put(msg_id(7, day), True)
        runs.put(f"{OUR_PARTICIPANT}{day:%Y%m%d}-odd", True)  # another shape
    assert [msg_id(7, day) in runs for day in days] == [False, True, True]
    assert f"{OUR_PARTICIPANT}20261127-odd" not in runs
    assert f"{OUR_PARTICIPANT}20261129-odd" in runs
    assert runs.size == 4


async def test_a_soak_of_gateway_messages_keeps_inquiry_senders_right_in_little_memory(
    system_key: SigningKey, gateway_key: SigningKey
) -> None:
    """ClearingRounds remembers each gateway message's receiver for an injected ccms.314.

    Kept in a dict this cost some 250 bytes a message for ever (up to the
    ``remember`` bound); now a few bytes, and the inquiries still come from
    the bank each payment went to.
    """
    config = ClearingSimConfig(
        broker_url="mqtt://127.0.0.1:1", sign_key=system_key, gateway_certs=gateway_key.chain
    )
    published: list[bytes] = []

    async def publish(topic: str, payload: bytes, msg_tp: str, mid: str) -> None:
        published.append(payload)

    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        tasks.add(asyncio.get_running_loop().create_task(coro))

    seq = iter(range(1, 10**6))
    rounds = ClearingRounds(
        config,
        {},
        publish=publish,
        spawn=spawn,
        next_msg_id=lambda day: out_msg_id(config.participant, day, next(seq)),
    )

    def deliver(first: int, last: int) -> None:
        for n in range(first, last):
            root = build_envelope(
                "hvps.111", msg_id(n), OUR_PARTICIPANT, bank_of(n), CREATED, WORK_DATE,
                etree.Element("Document"),
            )  # fmt: skip
            rounds.note(parse_envelope(parse_message(serialize(root))))  # fresh strings

    deliver(1, 5_001)
    gc.collect()
    tracing = tracemalloc.is_tracing()  # e.g. under -X tracemalloc: leave it on
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        deliver(5_001, 15_001)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        if not tracing:
            tracemalloc.stop()
    assert grown / 10_000 < 40  # bytes kept per message (a dict kept ~250)

    for n in (1, 7, 14_999):
        inq_id = await rounds.inject_inquiry(orgnl_msg_id=msg_id(n), orgnl_tx_id="T", text="?")
        verified = verify_pinned(parse_message(published[-1]), system_key.chain)
        sent = parse_envelope(verified.signed_root)
        assert (sent.sndr, sent.work_date) == (bank_of(n), WORK_DATE)
        assert parse_inquiry(sent.document).inq_id == inq_id
