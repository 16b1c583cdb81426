"""BEPS debit packages (beps.127, pacs.003) end to end (routing.md §3, §5; clearing.md §2, §4).

Two levels.  The engine level runs the real BEPS ``EngineRunner`` on a real
SQLite journal, a real worker desk (signing), a real clearing link to a real
mosquitto, and the clearing simulator validating every Document against the
official ISO 20022 schemas, under a frozen clock: DEBIT items become beps.127
packages, never mixed with credits or with another work date, closed by
``max_items``, ``max_wait`` or the 16:00 cutoff, and they settle.  The daemon
level sends a DEBIT PAY through the whole gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from lxml import etree

from gateway.clearing import documents
from gateway.clearing.link import ClearingLink, LinkConfig
from gateway.clearing.receipts import ReceiptHandler
from gateway.clock import SHANGHAI, BusinessClock, FrozenClock
from gateway.engines.runner import EngineRunner, EngineSettings
from gateway.journal.sqlite import SqliteStore
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import verify_pinned
from gateway.model import BizType, Engine, State
from gateway.server import desk_setup
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import Payment
from gateway.testing import Broker
from gateway.workers import WorkerPool
from tests.conftest import shared_xsd_dir
from tests.integration.harness import (
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)
from tests.unit.journal.helpers import item, request

pytestmark = pytest.mark.requires_xsd  # the simulator validates every Document

FRIDAY_10 = recent_friday_10()
#: a BEPS participant other than ours (the shipped directory)
RCVR = "105100000017"
CORP = "C100000001"
PACS003_XSD = shared_xsd_dir() / "pacs.003.001.08.xsd"


def records(path: Path) -> list[dict[str, Any]]:
    """The clearing simulator's record: one JSON line per message it received."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_type(path: Path, msg_tp: str) -> list[list[str]]:
    """EndToEndIds of each (first, not re-sent) message of ``msg_tp``, in arrival order."""
    return [r["end_to_end_ids"] for r in records(path) if r["msg_tp"] == msg_tp and not r["dup"]]


# -- the engine level ---------------------------------------------------------------


@dataclass
class Beps:
    """The BEPS engine wired to real parts; ``inbound`` gets one entry per applied receipt."""

    runner: EngineRunner
    store: SqliteStore
    pool: WorkerPool
    clock: FrozenClock
    sim: ClearingSimulator
    record: Path
    inbound: asyncio.Queue[str]
    participant: str

    async def journal(self, msg_id: str, at: datetime, amount: str, biz: BizType, wd: date) -> None:
        """One PAY to ``RCVR`` as the pipeline journals it: QUEUED for BEPS at ``at``."""
        new = item(engine=Engine.BEPS, receiver=RCVR, amount=amount, biz_type=biz, work_date=wd)
        outcome = await self.store.accept(request(msg_id, new, received_at=at))
        assert outcome.created

    async def state(self, msg_id: str) -> State:
        view = await self.store.item_status(CORP, msg_id)
        assert view is not None
        return view.state

    async def until_final(self, msg_ids: Iterable[str]) -> dict[str, State]:
        """Wait, receipt by receipt (no polling), until every item is SETTLED or REJECTED."""
        while True:
            states = {m: await self.state(m) for m in msg_ids}
            if all(s.final for s in states.values()):
                return states
            await asyncio.wait_for(self.inbound.get(), 20)


@contextlib.asynccontextmanager
async def beps_engine(
    tmp_path: Path, pki: DevPki, broker: Broker, start: datetime, **settings: Any
) -> AsyncIterator[Beps]:
    cfg = gateway_config(tmp_path / "gw", pki, broker.url)
    clock = FrozenClock(start)
    pool = WorkerPool(desk_setup(cfg), 0)
    await pool.start()
    store = SqliteStore(tmp_path / "journal.sqlite")
    await store.start()
    inbound: asyncio.Queue[str] = asyncio.Queue()
    receipts = ReceiptHandler(store, lambda: pool, clock)

    async def on_message(topic: str, payload: bytes, props: dict[str, str]) -> None:
        await receipts(topic, payload, props)
        inbound.put_nowait(props.get("MsgTp", ""))

    link = ClearingLink(
        LinkConfig(url=broker.url, client_id="gw-debit", subscriptions=("clearing/+/in",)),
        on_message,
    )
    link_task = asyncio.create_task(link.run())
    record = tmp_path / "clearing.jsonl"
    try:
        async with running_clearing_sim(pki, broker.url, record, xsd_dir=shared_xsd_dir()) as sim:
            await asyncio.wait_for(link.wait_connected(), 15)
            runner = EngineRunner(
                EngineSettings(
                    engine=Engine.BEPS,
                    participant=cfg.bank.participant,
                    topic_prefix="clearing",
                    rate=1000.0,
                    max_inflight=100,
                    **settings,
                ),
                store,
                lambda: pool,
                link,
                clock,
            )
            yield Beps(runner, store, pool, clock, sim, record, inbound, cfg.bank.participant)
    finally:
        await link.close()
        link_task.cancel()
        await asyncio.gather(link_task, return_exceptions=True)
        await store.close()
        await pool.close()


def test_the_official_pacs003_schema_is_there() -> None:
    """The simulator validates beps.127 only if it finds this file: it must be among
    the schemas whose presence lets this module run (tests/conftest.py)."""
    assert PACS003_XSD.is_file(), f"{PACS003_XSD} missing (set GATEWAY_SHARED_XSD)"


async def test_credits_and_debits_to_one_receiver_travel_in_separate_packages(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """Same receiver, same work date: 3 debits → beps.127 of 2 + 1 (max_items=2), 2 credits
    → one beps.121; every Document valid (the simulator checks the XSD), all SETTLED."""
    t0 = FRIDAY_10
    async with beps_engine(tmp_path, dev_pki, broker, t0, max_items=2, max_wait=3600) as beps:
        wd = t0.date()
        for n, amount in enumerate(("80000.00", "0.01", "1234.50"), start=1):  # any amount
            await beps.journal(f"DR-{n}", t0, amount, BizType.DEBIT, wd)
        for n in (1, 2):
            await beps.journal(f"CR-{n}", t0, "100.00", BizType.CREDIT, wd)

        assert not await beps.runner.run_once()  # both groups full: nothing left waiting
        debits, credits = ["DR-1", "DR-2", "DR-3"], ["CR-1", "CR-2"]
        states = await beps.until_final(debits + credits)
        assert set(states.values()) == {State.SETTLED}

        assert by_type(beps.record, "beps.127") == [["DR-1", "DR-2"], ["DR-3"]]
        assert by_type(beps.record, "beps.121") == [credits]
        assert all(r["valid"] and r["topic"] == "clearing/beps/out" for r in records(beps.record))
        assert (beps.sim.stats["invalid"], beps.sim.stats["schema_invalid"]) == (0, 0)


async def test_the_1600_cutoff_closes_an_open_debit_package(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """routing.md §5: a package closes at the cutoff and never takes the next work date's items."""
    day = FRIDAY_10.date()
    before = datetime(day.year, day.month, day.day, 15, 59, 58, tzinfo=SHANGHAI)
    async with beps_engine(tmp_path, dev_pki, broker, before, max_items=1000, max_wait=60) as beps:
        await beps.journal("DR-D", before, "500.00", BizType.DEBIT, day)
        beps.clock.set(before + timedelta(seconds=1, microseconds=999_999))  # 15:59:59.999999
        assert await beps.runner.run_once()  # still open: not full, not 60 s old, before 16:00
        assert await beps.state("DR-D") is State.QUEUED

        # 16:00:00.5: work date D+1 has begun (routing.md §4); a debit for it arrives
        beps.clock.set(before + timedelta(seconds=2.5))
        await beps.journal("DR-D1", beps.clock.now(), "700.00", BizType.DEBIT, day + timedelta(1))
        beps.clock.set(before + timedelta(seconds=3))
        assert await beps.runner.run_once()  # D closed by the cutoff; D+1 keeps filling
        assert await beps.state("DR-D1") is State.QUEUED
        assert await beps.until_final(["DR-D"]) == {"DR-D": State.SETTLED}
        assert by_type(beps.record, "beps.127") == [["DR-D"]]

        # max_wait after its first item closes the D+1 package on its own
        beps.clock.set(before + timedelta(seconds=2.5 + 60))
        assert not await beps.runner.run_once()
        assert await beps.until_final(["DR-D1"]) == {"DR-D1": State.SETTLED}
        assert by_type(beps.record, "beps.127") == [["DR-D"], ["DR-D1"]]
        assert beps.sim.stats["schema_invalid"] == 0


async def test_the_desk_seals_a_debit_package_as_a_signed_pacs003(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """What goes on the wire: a signed ClrMsg, MsgTp beps.127, whose Document validates."""
    async with beps_engine(tmp_path, dev_pki, broker, FRIDAY_10) as beps:
        wd = FRIDAY_10.date()
        await beps.journal("DR-W", FRIDAY_10, "49999.99", BizType.DEBIT, wd)
        (queued,) = await beps.store.claim_queued(Engine.BEPS, 10)
        msg_id = documents.out_msg_id(beps.participant, wd, 7)
        raw = await beps.pool.seal(
            "beps.127", msg_id, beps.participant, RCVR, FRIDAY_10, wd, [queued]
        )
    certs = x509.load_pem_x509_certificates(dev_pki.clearing_cert.read_bytes())
    signed = verify_pinned(documents.parse_message(raw, documents.hardened_parser()), certs)
    env = documents.parse_envelope(signed.signed_root)
    assert (env.msg_tp, env.msg_id, env.sndr, env.rcvr, env.work_date) == (
        "beps.127",
        msg_id,
        beps.participant,
        RCVR,
        wd,
    )
    xsd = etree.XMLSchema(etree.parse(str(PACS003_XSD)))
    assert xsd.validate(etree.ElementTree(env.document)), xsd.error_log
    header, (tx,) = documents.parse_pacs003(env.document)
    assert (header.msg_id, header.ctrl_sum, header.settle_date) == (
        msg_id,
        Decimal("49999.99"),
        wd,
    )
    assert (tx.creditor_acct, tx.creditor_agent) == (queued.payer_acct, beps.participant)
    assert (tx.debtor_acct, tx.debtor_agent) == (queued.payee_acct, queued.payee_bank_code)
    assert (tx.end_to_end_id, tx.tx_id) == (queued.end_to_end_id, queued.tx_id)


# -- the daemon level ---------------------------------------------------------------


def pay(code: str, amount: str, **kw: str) -> Payment:
    """C100000001's enrolled account (the payer) collects from the cheque's drawer (the payee)."""
    return payment(code, amount, payee_name="出票人", purpose="支票截留 No.00012345", **kw)


async def test_a_debit_pay_settles_through_a_beps127_package(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    record = tmp_path / "rec.jsonl"
    async with (
        running_clearing_sim(dev_pki, broker.url, record, xsd_dir=shared_xsd_dir()) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        cases = {
            "DEBIT-BIG": pay(RCVR, "80000.00", biz_type="DEBIT"),  # any amount → BEPS
            "DEBIT-URGT": pay(RCVR, "10.00", biz_type="DEBIT", priority="URGT"),  # still BEPS
            "CREDIT-1": pay(RCVR, "100.00"),  # same receiver and work date, other package
        }
        replies = await asyncio.gather(*(erp.pay(m, clock.now(), p) for m, p in cases.items()))
        for m, r in zip(cases, replies, strict=True):
            assert (r.ret_code, r.msg_id, r.engine, r.state) == ("0000", m, "BEPS", "QUEUED")
        for m in cases:
            assert await wait_for_state(erp, clock.now(), m, ["SETTLED"]) == "SETTLED"
        await erp.close()
    debit_ids = sorted(e for ids in by_type(record, "beps.127") for e in ids)
    credit_ids = sorted(e for ids in by_type(record, "beps.121") for e in ids)
    assert (debit_ids, credit_ids) == (["DEBIT-BIG", "DEBIT-URGT"], ["CREDIT-1"])
    assert all(r["valid"] for r in records(record))
    assert (sim.stats["invalid"], sim.stats["schema_invalid"]) == (0, 0)
