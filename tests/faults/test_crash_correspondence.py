"""SIGKILL of the real gatewayd around an inquiry (corplink.md §4-§5, clearing.md §1, §4).

An INQ answered 0000 has its ``ccms.314`` journaled in the same transaction
(PENDING), then published.  Whatever instant the node dies at after that
0000 — before the publish, while it waits for the PUBACK, before the
``ccms.990`` or the ``ccms.315`` came back — after a restart:

- the ``ccms.314`` reaches the clearing system under exactly one MsgId (the
  journaled one; the same MsgId more than once is allowed: at-least-once);
- the inquiry is answered and its REPLY notification is there exactly once.

One test stops the broker first, so the ccms.314 is still PENDING in the
journal file when the node dies: only the restarted node's redelivery pass
can publish it.  The seeded test kills after a seed-chosen delay from the
0000, landing anywhere along the inquiry's path (each run prints where); the
default run has one seed, ``-m slow`` twenty more (a failing seed names itself)::

    python -m pytest tests/faults/test_crash_correspondence.py -m slow -k "seed-7" -s
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.keys.devpki import DevPki
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import ErpClient, Payment
from gateway.testing import Broker
from tests.faults.crashkit import BizClock, Daemon, NodeSettings, close_quietly
from tests.integration.correspondence_support import ids, journal_rows, wait_notice
from tests.integration.harness import recent_friday_10, running_clearing_sim, wait_for_state

FRIDAY_10 = recent_friday_10()
OTHER_BANK = "104100000004"  # HVPS from 50,000.00
REPLY_TEXT = "款项已入账 / credited to payee"
DEFAULT_SEED = 4
"""Its kill lands ~30 ms after the 0000: the ccms.314 PUBACKed, its ccms.990 not yet in."""


def _pki(tmp: Path, dev_pki: DevPki) -> DevPki:
    return DevPki.open(Path(shutil.copytree(dev_pki.dir, tmp / "pki")))


@contextlib.asynccontextmanager
async def node(d: Daemon) -> AsyncIterator[Daemon]:
    """A started node that is always stopped (a killed node is simply gone)."""
    await d.start()
    try:
        yield d
    finally:
        d.stop()


async def settled_payment(c: ErpClient, clock: BizClock, msg_id: str) -> None:
    p = Payment("6222000000000001", "付款人", "6217000000000099", "收款人", OTHER_BANK,
                Decimal("88000.00"))  # fmt: skip
    r = await c.pay(msg_id, clock.now(), p)
    assert r.ret_code == "0000", r.ret_msg
    await wait_for_state(c, clock.now(), msg_id, ["SETTLED"])


def ccms314_msg_ids(record: Path) -> list[str]:
    """Every ccms.314 the clearing simulator received, by envelope MsgId, re-sends included."""
    out = []
    for line in record.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r["msg_tp"] == "ccms.314":
            out.append(r["msg_id"])
    return out


def journaled_inquiry(d: Daemon, inq_id: str) -> tuple[str, str, str]:
    """(our ccms.314 MsgId, its outbound state, the inquiry's state) from the journal file."""
    rows = journal_rows(
        d.journal_path,
        "SELECT i.out_msg_id, o.state, i.state FROM inquiries i"
        " JOIN outbound o ON o.msg_id = i.out_msg_id WHERE i.direction = 'OUT' AND i.inq_id = ?",
        (inq_id,),
    )
    assert len(rows) == 1, rows
    out_msg_id, out_state, inq_state = rows[0]
    return str(out_msg_id), str(out_state), str(inq_state)


async def after_restart(
    d: Daemon, clock: BizClock, sim: ClearingSimulator, record: Path, inq_id: str
) -> str:
    """Restart the node and check the promise; returns where the kill had left the ccms.314
    and the inquiry (``PENDING/OPEN`` … ``ACKED/REPLIED``)."""
    out_msg_id, out_state, inq_state = journaled_inquiry(d, inq_id)
    async with node(d):
        c = await d.client("C100000001")
        try:
            reply = await wait_notice(
                c, clock.now, ids("R"), lambda n: n.kind == "REPLY" and n.inq_id == inq_id, 60
            )
            assert reply.text == REPLY_TEXT
            notices = await c.pull_all(ids("S"), clock.now())
        finally:
            await close_quietly(c)
    assert [n for n in notices if n.kind == "REPLY"] == [reply], "REPLY not exactly once"
    assert set(ccms314_msg_ids(record)) == {out_msg_id}, "ccms.314 under another MsgId"
    assert set(sim.inquiries_received) == {inq_id}
    assert sim.inquiries_received[inq_id].orgnl_tx_id is not None
    assert journaled_inquiry(d, inq_id)[2] == "REPLIED"
    return f"{out_state}/{inq_state}"


async def test_sigkill_before_the_ccms314_left_publishes_it_after_restart(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, record = _pki(tmp_path, dev_pki), tmp_path / "clearing.jsonl"
    clock = BizClock(FRIDAY_10)
    d = Daemon(tmp_path, pki, broker.url, clock, NodeSettings(workers=0))
    async with running_clearing_sim(pki, broker.url, record, reply_text=REPLY_TEXT) as sim:
        async with node(d):
            c = await d.client("C100000001")
            try:
                await settled_payment(c, clock, "CP-1")
                # the broker goes away: not one byte of the ccms.314 can leave the node
                # (a stopped-but-alive broker would still read it from its socket buffer)
                broker.stop()
                inq = await c.inquire("CQ-1", clock.now(), "CP-1", "请确认收款人是否入账")
                assert inq.ret_code == "0000" and inq.gw_ref, inq.ret_msg
                d.kill()
            finally:
                await close_quietly(c)
        broker.restart()
        assert await after_restart(d, clock, sim, record, inq.gw_ref) == "PENDING/OPEN"


async def _seeded(tmp: Path, dev_pki: DevPki, broker: Broker, seed: int) -> None:
    rng = random.Random(f"crash-correspondence-{seed}")
    # at once, inside the publish, around the PUBACK and ccms.990, up to past the ccms.315
    delay = rng.choice((0.0, 0.002, 0.01, 0.03, 0.1, 0.3)) * rng.uniform(0.5, 1.5)
    reply_delay = rng.choice((0.0, 0.05, 0.2))
    pki, record = _pki(tmp, dev_pki), tmp / "clearing.jsonl"
    clock = BizClock(FRIDAY_10)
    d = Daemon(tmp, pki, broker.url, clock, NodeSettings(workers=0))
    async with running_clearing_sim(
        pki, broker.url, record, reply_text=REPLY_TEXT, reply_delay=reply_delay
    ) as sim:
        async with node(d):
            c = await d.client("C100000001")
            try:
                await settled_payment(c, clock, f"CP-{seed}")
                inq = await c.inquire(f"CQ-{seed}", clock.now(), f"CP-{seed}", "请确认是否入账")
                assert inq.ret_code == "0000" and inq.gw_ref, inq.ret_msg
                await asyncio.sleep(delay)  # the seed's kill point, measured from the 0000
                d.kill()
            finally:
                await close_quietly(c)
        at_kill = await after_restart(d, clock, sim, record, inq.gw_ref)
    print(f"seed {seed}: killed {delay * 1000:.0f} ms after the 0000, ccms.314/inquiry {at_kill}")


def _ids(seed: int) -> str:
    return f"seed-{seed}"


@pytest.mark.parametrize("seed", [DEFAULT_SEED], ids=_ids)
async def test_sigkill_after_inq_0000_sends_one_ccms314_and_one_reply(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _seeded(tmp_path, dev_pki, broker, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [s for s in range(1, 22) if s != DEFAULT_SEED], ids=_ids)
async def test_sigkill_after_inq_0000_many_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _seeded(tmp_path, dev_pki, broker, seed)
