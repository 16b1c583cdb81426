"""The redelivery pass publishes what was left unsent, and nothing the engine already sent.

docs/clearing-link.md §1: a message goes out again only under the same MsgId and
only when its outcome is unknown (no PUBACK, or no receipt in time); the
clearing system deduplicates by MsgId, so a second copy of a message that was
PUBACKed is our double publish.  The redelivery pass reads the PENDING rows
once and then publishes them one by one: a row whose engine publish was in
flight at that read, and whose PUBACK was journaled while the pass was busy
with an earlier row, is no longer unsent when the pass reaches it.

Real parts: the HVPS ``EngineRunner`` and ``Redelivery`` on a real SQLite
journal, a real worker desk (signing), a real clearing link to a real
mosquitto and the clearing simulator counting duplicate MsgIds.  The broker is
paused (SIGSTOP) to hold PUBACKs back and the link's window is as small as the
engine's batch, which fixes the order of events: the engine's publishes are in
flight when the pass reads its list, and their PUBACKs come back (and are
journaled) while the pass's publish of an older leftover waits for the link's
window and then for its own PUBACK, as a pass's publish waits behind the
engines' in a busy gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.clearing import documents
from gateway.clearing.link import ClearingLink, LinkConfig
from gateway.clearing.receipts import ReceiptHandler
from gateway.clock import FrozenClock
from gateway.engines.runner import EngineRunner, EngineSettings, Redelivery
from gateway.journal.records import NewOutbound, OutState
from gateway.journal.sqlite import SqliteStore
from gateway.keys.devpki import DevPki
from gateway.model import Engine
from gateway.server import desk_setup
from gateway.sim.clearing import ClearingSimulator
from gateway.testing import Broker
from gateway.workers import WorkerPool
from tests.integration.harness import gateway_config, recent_friday_10, running_clearing_sim
from tests.unit.journal.helpers import HVPS_RCVR, item, request

FRIDAY_10 = recent_friday_10()
HVPS_TP = "hvps.111"
LIMIT = 20.0  # seconds any wait may take before the test fails instead of hanging


@dataclass
class Hvps:
    """The HVPS engine wired to real parts, the clearing simulator's record beside it."""

    runner: EngineRunner
    store: SqliteStore
    pool: WorkerPool
    link: ClearingLink
    clock: FrozenClock
    sim: ClearingSimulator
    record: Path
    participant: str

    async def journal(self, *msg_ids: str) -> None:
        """PAYs as the pipeline journals them: QUEUED for HVPS, not yet in a message."""
        for msg_id in msg_ids:
            new = item(engine=Engine.HVPS, receiver=HVPS_RCVR, work_date=FRIDAY_10.date())
            outcome = await self.store.accept(request(msg_id, new, received_at=self.clock.now()))
            assert outcome.created

    async def leftover(self) -> str:
        """One QUEUED item sealed and journaled PENDING but never published: what a
        crash between the journal write and the publish leaves behind."""
        (queued,) = await self.store.claim_queued(Engine.HVPS, 1)
        now = self.clock.now()
        seq = await self.store.next_sequence(documents.out_sequence(now.date()), 1)
        msg_id = documents.out_msg_id(self.participant, now.date(), seq)
        payload = await self.pool.seal(
            HVPS_TP, msg_id, self.participant, HVPS_RCVR, now, queued.work_date, [queued]
        )
        await self.store.create_outbound(
            [
                NewOutbound(
                    msg_id=msg_id,
                    engine=Engine.HVPS,
                    msg_tp=HVPS_TP,
                    topic=self.runner.topic,
                    receiver=HVPS_RCVR,
                    work_date=queued.work_date,
                    payload=payload,
                    item_ids=(queued.item_id,),
                    created_at=now,
                )
            ]
        )
        return msg_id

    def received(self) -> list[str]:
        """MsgIds in the order the clearing simulator received them, re-sends included."""
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        return [json.loads(line)["msg_id"] for line in lines if line.strip()]

    async def state(self, msg_id: str) -> OutState:
        rec = await self.store.outbound_message(msg_id)
        assert rec is not None
        return rec.state


async def eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(LIMIT):
        while not check():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def hvps_engine(
    tmp_path: Path, pki: DevPki, broker: Broker, link_window: int = 100
) -> AsyncIterator[Hvps]:
    cfg = gateway_config(tmp_path / "gw", pki, broker.url)
    clock = FrozenClock(FRIDAY_10)
    pool = WorkerPool(desk_setup(cfg), 0)
    await pool.start()
    store = SqliteStore(tmp_path / "journal.sqlite")
    await store.start()
    runners: list[EngineRunner] = []

    def receipted(msg_id: str) -> None:
        for r in runners:
            r.receipted(msg_id)  # the engine's window slot, as the daemon wires it

    receipts = ReceiptHandler(store, lambda: pool, clock, on_receipt=[receipted])
    link = ClearingLink(
        LinkConfig(
            url=broker.url,
            client_id="gw-redelivery",
            subscriptions=("clearing/+/in",),
            max_inflight=link_window,
        ),
        receipts,
    )
    link_task = asyncio.create_task(link.run())
    record = tmp_path / "clearing.jsonl"
    try:
        async with running_clearing_sim(pki, broker.url, record) as sim:
            await asyncio.wait_for(link.wait_connected(), LIMIT)
            settings = EngineSettings(
                engine=Engine.HVPS,
                participant=cfg.bank.participant,
                topic_prefix="clearing",
                rate=1000.0,
                max_inflight=100,
            )
            runner = EngineRunner(settings, store, lambda: pool, link, clock)
            runners.append(runner)
            yield Hvps(runner, store, pool, link, clock, sim, record, cfg.bank.participant)
    finally:
        await link.close()
        link_task.cancel()
        await asyncio.gather(link_task, return_exceptions=True)
        await store.close()
        await pool.close()


@contextlib.asynccontextmanager
async def running(*coros: Any) -> AsyncIterator[None]:
    """Background tasks, cancelled and awaited at the end."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_message_sent_while_the_pass_was_busy_is_not_published_again(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """The pass reads [leftover, E1..E5] while E1..E5 fill the link's window of 5,
    waiting for their PUBACKs; its publish of the leftover waits for a slot, and by
    the time the leftover's PUBACK is journaled the engine has journaled E1..E5 as
    SENT and dropped its claim.  Before the fix the pass then published E1..E5 a
    second time (the clearing simulator's ``duplicates``), and ``attempts`` stayed
    1 because a first-send PUBACK of a SENT row changes nothing."""
    async with hvps_engine(tmp_path, dev_pki, broker, link_window=5) as gw:
        await gw.journal("LEFT", "E1", "E2", "E3", "E4", "E5")
        leftover = await gw.leftover()
        redelivery = Redelivery(
            {Engine.HVPS: gw.runner}, gw.store, gw.link, gw.clock, receipt_timeout=3600
        )
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            async with running(gw.runner.run()):
                # the engine's five publishes are journaled PENDING and on the wire
                async with asyncio.timeout(LIMIT):
                    while len(await gw.store.unsent_outbound(10)) < 6:
                        await asyncio.sleep(0.01)
                await eventually(lambda: len(gw.runner.publishing) == 5)
                engine_sent = sorted(gw.runner.publishing)
                async with running(redelivery.run()):
                    # the pass has its list and waits for the leftover's PUBACK
                    await eventually(lambda: leftover in gw.runner.publishing)
                    gw.clock.advance(1)  # PUBACKs from here on are after the pass's "now"
                    os.kill(broker.proc.pid, signal.SIGCONT)
                    await eventually(lambda: not gw.runner.publishing)  # the pass is done
                    # one more message on the same topic: once the simulator has it,
                    # it has everything published before it
                    await gw.journal("LAST")
                    gw.runner.wake()
                    await eventually(lambda: len(set(gw.received())) == 7)
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        received = gw.received()
        assert gw.sim.stats["duplicates"] == 0, received
        assert sorted(received) == sorted(set(received))
        assert set(engine_sent) | {leftover} <= set(received)  # the leftover did go out
        for msg_id in [*engine_sent, leftover]:
            rec = await gw.store.outbound_message(msg_id)
            assert rec is not None
            assert rec.attempts == 1
            assert rec.state in (OutState.SENT, OutState.ACKED)


async def test_a_stale_record_is_not_published_again(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """``EngineRunner.publish`` with a record read before the message's PUBACK was
    journaled (a first send) or before its receipt came (a re-send) publishes
    nothing and says so; a message still unsent goes out, and so does a message
    re-sent in the very state it was read in (the operator's forced re-send)."""
    async with hvps_engine(tmp_path, dev_pki, broker) as gw:
        await gw.journal("S1", "S2")
        sent = await gw.leftover()
        unsent = await gw.leftover()
        (stale_sent, stale_unsent) = await gw.store.unsent_outbound(10)
        assert (stale_sent.msg_id, stale_unsent.msg_id) == (sent, unsent)
        r = gw.runner

        assert await r.publish(sent, HVPS_TP, r.topic, stale_sent.payload, resend=False)
        await eventually(lambda: sent in gw.received())
        # the same stale record again: already SENT, not published a second time
        assert not await r.publish(sent, HVPS_TP, r.topic, stale_sent.payload, resend=False)
        # a re-send after the receipt came: nothing to re-send
        async with asyncio.timeout(LIMIT):
            while await gw.state(sent) is not OutState.ACKED:
                await asyncio.sleep(0.01)
        assert not await r.publish(sent, HVPS_TP, r.topic, stale_sent.payload, resend=True)
        # the message still unsent does go out, once
        assert await r.publish(unsent, HVPS_TP, r.topic, stale_unsent.payload, resend=False)
        await eventually(lambda: unsent in gw.received())
        assert gw.received() == [sent, unsent]
        assert gw.sim.stats["duplicates"] == 0
        assert await gw.state(unsent) in (OutState.SENT, OutState.ACKED)
        # an operator's forced re-send of the receipted message (gatewayctl resend
        # --force) was read ACKED and is meant: it goes out, the simulator counts it
        assert await r.publish(
            sent, HVPS_TP, r.topic, stale_sent.payload, resend=True, seen=OutState.ACKED
        )
        await eventually(lambda: len(gw.received()) == 3)
        assert gw.received() == [sent, unsent, sent]
        assert gw.sim.stats["duplicates"] == 1
