"""Recovery at start: work the journal holds resumes exactly where it was (DESIGN.md
principle 1, clearing.md §1, routing.md §4-§5).

Each test puts payments into one state, SIGKILLs the real gatewayd (its whole
process group), checks that state in the journal file itself, restarts the
daemon on the same journal and follows the payments to a final state:

- HELD (HVPS before its 09:00 opening): still HELD after a restart before
  09:00, released at 09:00 and not before, sent once;
- QUEUED (broker down while accepting): packaged and sent once after a
  restart with the broker back;
- PENDING (journaled and signed, never PUBACKed: the broker stalled): the
  same bytes published under the same MsgId;
- SENT without receipt (no clearing system listening): re-sent under the
  original MsgId once one listens;
- open BEPS packages (items QUEUED inside ``max_wait``): packaged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.journal.schema import from_micros
from gateway.keys.devpki import DevPki
from gateway.sim.erp import ErpClient, Payment
from gateway.testing import Broker
from tests.faults.crashkit import BizClock, Daemon, NodeSettings, read_record, read_sqlite_items
from tests.integration.harness import recent_friday_10, running_clearing_sim

FRIDAY_10 = recent_friday_10()
FINAL = ("SETTLED", "REJECTED")


def payment(i: int, code: str, amount: str) -> Payment:
    return Payment("6222000000000001", "付款人", f"6217{i:012d}", "收款人", code, Decimal(amount))


def _pki(tmp: Path, dev_pki: DevPki) -> DevPki:
    return DevPki.open(Path(shutil.copytree(dev_pki.dir, tmp / "pki")))


def journal_rows(path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Read the journal file directly, read-only (the daemon may be dead or alive)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def states(d: Daemon, msg_ids: Sequence[str]) -> dict[str, str]:
    return {i.msg_id: i.state for i in read_sqlite_items(d.journal_path) if i.msg_id in msg_ids}


async def wait_journal(d: Daemon, msg_ids: Sequence[str], wanted: Sequence[str],
                       timeout: float = 60) -> dict[str, str]:  # fmt: skip
    """Poll the journal file until every item of ``msg_ids`` is in one of ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        now = states(d, msg_ids)
        if len(now) == len(msg_ids) and all(s in wanted for s in now.values()):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"wanted {wanted}, journal has {now}; log: {d.log_tail()}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def node(d: Daemon) -> AsyncIterator[Daemon]:
    """A started node that is always stopped (killed tests kill it themselves first)."""
    await d.start()
    try:
        yield d
    finally:
        d.stop()


async def pay_all(d: Daemon, clock: BizClock, specs: Sequence[tuple[str, str, str]]) -> list[str]:
    """Pay each (msg_id, code, amount) pipelined on one connection; all must be 0000."""
    c: ErpClient = await d.client("C100000001")
    try:
        replies = await asyncio.gather(
            *(
                c.pay(m, clock.now(), payment(i, code, amt))
                for i, (m, code, amt) in enumerate(specs)
            )
        )
    finally:
        await c.close()
    for r in replies:
        assert r.ret_code == "0000", (r.msg_id, r.ret_code, r.ret_msg)
    return [r.state or "" for r in replies]


def once_each(record: Path, msg_ids: Sequence[str]) -> dict[str, str]:
    """Every payment reached the clearing side under exactly one MsgId; e2e → that MsgId."""
    seen = read_record(record)
    out = {}
    for m in msg_ids:
        got = seen.by_e2e.get(m, set())
        assert len(got) == 1, f"{m} arrived under {sorted(got)}"
        out[m] = next(iter(got))
    return out


def out_msg_ids(d: Daemon, msg_ids: Sequence[str]) -> dict[str, str | None]:
    return {
        i.msg_id: i.out_msg_id for i in read_sqlite_items(d.journal_path) if i.msg_id in msg_ids
    }


# -- HELD -------------------------------------------------------------------------------


async def test_held_survives_a_restart_before_the_opening_and_is_released_at_0900(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, rec = _pki(tmp_path, dev_pki), tmp_path / "clearing.jsonl"
    opening = FRIDAY_10.replace(hour=9, minute=0)
    clock = BizClock(opening - timedelta(seconds=60))
    d = Daemon(tmp_path, pki, broker.url, clock, NodeSettings(workers=0))
    ids = [f"H-{i}" for i in range(4)]
    async with running_clearing_sim(pki, broker.url, rec):
        async with node(d):
            got = await pay_all(d, clock, [(m, "104100000004", "88000.00") for m in ids])
            assert got == ["HELD"] * len(ids)  # HVPS opens at 09:00 (routing.md §4)
            d.kill()
        assert set(states(d, ids).values()) == {"HELD"}
        release = journal_rows(d.journal_path, "SELECT DISTINCT release_at FROM items")
        assert [from_micros(int(r[0])) for r in release] == [opening]

        clock.set(opening - timedelta(seconds=30))  # restart, still before 09:00
        async with node(d):
            await asyncio.sleep(2.5)  # two passes of the release loop
            assert clock.now() < opening
            assert set(states(d, ids).values()) == {"HELD"}
            d.kill()
        assert not read_record(rec).by_e2e, "nothing may leave before the opening"

        clock.set(opening - timedelta(seconds=2))  # restart just before 09:00
        async with node(d):
            await wait_journal(d, ids, FINAL)
    once_each(rec, ids)
    queued_at = journal_rows(d.journal_path, "SELECT at FROM transitions WHERE state = 'QUEUED'")
    assert len(queued_at) == len(ids)
    assert all(from_micros(int(r[0])) >= opening for r in queued_at)


# -- QUEUED -------------------------------------------------------------------------------


async def test_queued_while_the_broker_was_down_is_sent_once_after_a_restart(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, rec = _pki(tmp_path, dev_pki), tmp_path / "clearing.jsonl"
    clock = BizClock(FRIDAY_10)
    d = Daemon(tmp_path, pki, broker.url, clock, NodeSettings(workers=0))
    specs = [
        ("Q-intra", "103290000018", "100.00"),
        ("Q-hvps", "104100000004", "88000.00"),
        ("Q-beps-1", "102290000011", "12.30"),
        ("Q-beps-2", "102290000011", "45.60"),
    ]
    ids = [m for m, _, _ in specs]
    broker.stop()
    async with node(d):
        assert await pay_all(d, clock, specs) == ["QUEUED"] * len(specs)  # 0000: journaled
        await asyncio.sleep(1.0)  # engines would package now if they could publish
        d.kill()
    assert set(states(d, ids).values()) == {"QUEUED"}
    assert set(out_msg_ids(d, ids).values()) == {None}, "packaged while the broker was down"
    assert journal_rows(d.journal_path, "SELECT count(*) FROM outbound") == [(0,)]

    broker.restart()
    async with running_clearing_sim(pki, broker.url, rec), node(d):
        await wait_journal(d, ids, FINAL)
    sent = once_each(rec, ids)
    assert sent["Q-beps-1"] == sent["Q-beps-2"], "one BEPS package for one receiver"
    assert len(set(sent.values())) == 3
    journaled = out_msg_ids(d, ids)
    assert journaled == sent


# -- PENDING: journaled, signed, never PUBACKed --------------------------------------------------


async def test_pending_outbound_is_published_under_its_journaled_msgid(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, rec = _pki(tmp_path, dev_pki), tmp_path / "clearing.jsonl"
    clock = BizClock(FRIDAY_10)
    d = Daemon(tmp_path, pki, broker.url, clock, NodeSettings(workers=0))
    ids = [f"P-{i}" for i in range(5)]
    async with running_clearing_sim(pki, broker.url, rec):
        async with node(d):
            await asyncio.sleep(0.5)  # the link is up
            broker.proc.send_signal(signal.SIGSTOP)  # PUBLISHes get no PUBACK
            try:
                await pay_all(d, clock, [(m, "103290000018", "10.00") for m in ids])
                deadline = time.monotonic() + 20
                while None in out_msg_ids(d, ids).values():  # packaged and journaled
                    assert time.monotonic() < deadline, d.log_tail()
                    await asyncio.sleep(0.1)
                d.kill()
            finally:
                broker.proc.send_signal(signal.SIGCONT)
        pending = out_msg_ids(d, ids)
        assert set(states(d, ids).values()) == {"QUEUED"}
        states_out = journal_rows(d.journal_path, "SELECT msg_id, state FROM outbound")
        assert {s for _, s in states_out} == {"PENDING"}
        async with node(d):
            await wait_journal(d, ids, FINAL)
    assert once_each(rec, ids) == pending
    assert len(journal_rows(d.journal_path, "SELECT msg_id FROM outbound")) == len(ids)


# -- SENT without receipt ------------------------------------------------------------------------


async def test_sent_without_receipt_is_resent_under_the_original_msgid(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, rec = _pki(tmp_path, dev_pki), tmp_path / "clearing.jsonl"
    clock = BizClock(FRIDAY_10)
    d = Daemon(tmp_path, pki, broker.url, clock, NodeSettings(workers=0, receipt_timeout=2.0))
    specs = [(f"S-{i}", ("103290000018", "104100000004")[i % 2], ("10.00", "88000.00")[i % 2])
             for i in range(6)]  # fmt: skip
    ids = [m for m, _, _ in specs]
    async with node(d):  # no clearing system listens: the broker PUBACKs into the void
        await pay_all(d, clock, specs)
        await wait_journal(d, ids, ["SENT"])
        d.kill()
    original = out_msg_ids(d, ids)
    assert None not in original.values()
    assert set(states(d, ids).values()) == {"SENT"}
    # restart first, then the clearing system returns: the re-send at start finds no
    # listener, the one after receipt_timeout does
    async with node(d), running_clearing_sim(pki, broker.url, rec):
        await wait_journal(d, ids, FINAL)
    assert once_each(rec, ids) == original  # re-sent, never re-packaged (clearing.md §1)
    assert len(journal_rows(d.journal_path, "SELECT msg_id FROM outbound")) == len(ids)
    attempts = journal_rows(d.journal_path, "SELECT attempts FROM outbound")
    assert all(int(a) >= 2 for (a,) in attempts)


# -- open BEPS packages -----------------------------------------------------------------------------


async def test_open_beps_packages_are_packaged_once_after_a_kill(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, rec = _pki(tmp_path, dev_pki), tmp_path / "clearing.jsonl"
    clock = BizClock(FRIDAY_10)
    d = Daemon(tmp_path, pki, broker.url, clock, NodeSettings(workers=0, beps_max_wait=4.0))
    receivers = ("102290000011", "105584000005")  # two participants: two packages
    specs = [(f"B-{i}", receivers[i % 2], f"{10 + i}.00") for i in range(12)]
    ids = [m for m, _, _ in specs]
    async with running_clearing_sim(pki, broker.url, rec):
        async with node(d):
            t0 = time.monotonic()
            await pay_all(d, clock, specs)
            d.kill()
            assert time.monotonic() - t0 < 4.0, "killed after max_wait: the test proves nothing"
        assert set(states(d, ids).values()) == {"QUEUED"}
        assert set(out_msg_ids(d, ids).values()) == {None}
        async with node(d):
            await wait_journal(d, ids, FINAL)
    sent = once_each(rec, ids)
    packages = journal_rows(d.journal_path, "SELECT msg_id, msg_tp, receiver FROM outbound")
    assert len(packages) == 2
    assert {str(tp) for _, tp, _ in packages} == {"beps.121"}
    by_msg = read_record(rec).by_msg
    for msg_id, _, _ in packages:
        members = sorted(by_msg[str(msg_id)])
        assert len(members) == 6
        assert all(sent[m] == msg_id for m in members)
