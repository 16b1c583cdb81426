"""Bank drafts on two gateway nodes sharing one PostgreSQL journal (docs/bank-drafts.md §1-§3).

Two in-process daemons, nodes A and B, on one database, with the shared
clearing subscription the two-node tests use (``clearing.shared``): the
broker hands each inbound message to one of them, in turn.  Both open the
same ``draft-keys.toml`` (one keys folder), so a Code made on one node
verifies on the other.  The promises under test:

- DraftNos issued concurrently on both nodes never collide: the sequence is
  the journal's, not a node's.
- Two presentments of one ISSUED draft published at the same moment, each
  taken by whichever node the broker picks, give one ACCP and one RJCT PD;
  the register shows the draft PAID once, and its applicant is notified once.
- At the next working day's settlement both nodes run their pass at once:
  each PAID draft's ``intra.draft.settle`` is journaled once and reaches the
  centre under one MsgId, and the draft is SETTLED.

The business clock is one ``FrozenClock`` for both nodes, on a working
Friday 10:00, moved by hand to the next working day's 00:05.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.clock import SHANGHAI, FrozenClock
from gateway.config import Config
from gateway.keys.devpki import DevPki
from gateway.server import Gateway
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import DraftApplication, DraftInfo, ErpClient
from gateway.sim.present import CentreLink, present
from gateway.testing import Broker
from gateway.testing_pg import PgServer, create_database
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
)
from tests.integration.test_drafts import calendar_next_working_day, ids

FRIDAY_10 = recent_friday_10()
AGENT = "104100000004"  # another bank's direct participant, inside our province
PASSPHRASE_ENV = "GATEWAY_TEST_DRAFT_PASSPHRASE"
WAIT = 60.0


@dataclass(frozen=True)
class Shape:
    per_node: int  # DRAFTs sent to each node at once
    presented: int  # drafts presented several times at one moment
    copies: int  # presentments of one draft published together (other PrsntmtIds)
    together: bool  # every presented draft's copies at once, not draft by draft

    def __str__(self) -> str:
        how = "together" if self.together else "one-by-one"
        return f"{self.per_node}x2-drafts-{self.presented}x{self.copies}-{how}"


DEFAULT = Shape(per_node=8, presented=6, copies=2, together=False)
LONG = (Shape(16, 16, 3, together=True), Shape(24, 12, 4, together=False),
        Shape(12, 12, 2, together=True))  # fmt: skip


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "draft keys of the two-node test only")


def _pki(tmp: Path, dev_pki: DevPki) -> DevPki:
    """The test PKI without draft keys: node A makes them at its start, B opens them."""
    pki = DevPki.open(Path(shutil.copytree(dev_pki.dir, tmp / "pki")))
    for stale in pki.dir.glob("draft-keys.toml*"):
        stale.unlink()
    return pki


def node_config(tmp: Path, pki: DevPki, broker: Broker, dsn: str, letter: str) -> Config:
    return gateway_config(
        tmp / f"gw{letter}",
        pki,
        broker.url,
        {
            "bank": {"node": letter},
            "journal": {"backend": "postgres", "dsn": dsn, "lease": 2.0},
            "clearing": {"shared": True, "client_id": f"gw-node-{letter}"},
            "keys": {"passphrase_env": PASSPHRASE_ENV},
        },
    )


def application(n: int) -> DraftApplication:
    return DraftApplication("6222000000000001", "示范贸易有限公司", f"收款公司{n}",
                            Decimal(f"{100 + n}.00"))  # fmt: skip


class Pair:
    """Nodes A and B on one database, the clearing centre, and one ERP per node."""

    def __init__(self, a: Gateway, b: Gateway, sim: ClearingSimulator, dsn: str,
                 clock: FrozenClock, record: Path, erps: tuple[ErpClient, ErpClient]) -> None:  # fmt: skip
        self.nodes = {"A": a, "B": b}
        self.sim, self.dsn, self.clock, self.record = sim, dsn, clock, record
        self.erps = erps
        self.link = CentreLink.of_simulator(sim.config)
        self.notes = ids("N")

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def wait_states(self, draft_nos: list[str], state: str) -> None:
        """Until every draft of ``draft_nos`` is in ``state`` in the shared register."""
        async with asyncio.timeout(WAIT):
            while True:
                rows = await self.rows(
                    "SELECT draft_no FROM drafts WHERE state = $1 AND draft_no = ANY($2)",
                    state,
                    draft_nos,
                )
                if len(rows) == len(draft_nos):
                    return
                await asyncio.sleep(0.1)

    async def present(
        self, d: DraftInfo, prsntmt_id: str, settle: Decimal
    ) -> tuple[str, str | None]:
        return await present(
            self.link,
            draft_no=d.draft_no,
            code=d.code,
            amount=d.amount,
            settle_amount=settle,
            agent_bank=AGENT,
            issue_date=d.issue_date,
            prsntmt_id=prsntmt_id,
            work_date=self.clock.now().date(),
            timeout=WAIT,
        )

    def received(self, msg_tp: str) -> dict[str, set[str]]:
        """DraftNo → the MsgIds the centre received ``msg_tp`` for it under."""
        seen: dict[str, set[str]] = defaultdict(set)
        for line in self.record.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["msg_tp"] == msg_tp:
                for draft_no in r["tx_ids"]:
                    seen[draft_no].add(r["msg_id"])
        return dict(seen)


@contextlib.asynccontextmanager
async def two_nodes(
    tmp: Path, dev_pki: DevPki, broker: Broker, pg: PgServer
) -> AsyncIterator[Pair]:
    dsn = await create_database(pg)
    pki = _pki(tmp, dev_pki)
    clock = FrozenClock(FRIDAY_10)
    record = tmp / "clearing.jsonl"
    async with (
        running_clearing_sim(pki, broker.url, record) as sim,
        running_gateway(node_config(tmp, pki, broker, dsn, "A"), clock) as a,
        running_gateway(node_config(tmp, pki, broker, dsn, "B"), clock) as b,
    ):
        ea, eb = await Erp(a, pki).client(), await Erp(b, pki).client()
        try:
            yield Pair(a, b, sim, dsn, clock, record, (ea, eb))
        finally:
            await ea.close()
            await eb.close()


def _msg_ids(prefix: str, count: int) -> Iterator[str]:
    return (f"{prefix}-{n}" for n in range(count))


async def _present_at_once(t: Pair, d: DraftInfo, copies: int) -> None:
    """``copies`` presentments of ``d`` (other PrsntmtIds) published together."""
    settle = d.amount - Decimal("10.00")
    results = await asyncio.gather(
        *(t.present(d, f"P-{d.draft_no[-4:]}-{k}", settle) for k in range(copies))
    )
    want = [("ACCP", None)] + [("RJCT", "PD")] * (copies - 1)
    assert sorted(results, key=str) == want, (d.draft_no, results)


async def _two_nodes_drafts(
    tmp: Path, dev_pki: DevPki, broker: Broker, pg: PgServer, shape: Shape
) -> None:
    async with two_nodes(tmp, dev_pki, broker, pg) as t:
        ea, eb = t.erps
        now = t.clock.now()
        n = shape.per_node
        replies = await asyncio.gather(
            *(ea.apply_draft(m, now, application(i)) for i, m in enumerate(_msg_ids("DA", n))),
            *(eb.apply_draft(m, now, application(i)) for i, m in enumerate(_msg_ids("DB", n))),
        )
        assert [r.ret_code for r in replies] == ["0000"] * 2 * n, [
            (r.ret_code, r.ret_msg) for r in replies
        ]
        drafts = [r.draft for r in replies if r.draft is not None]
        draft_nos = [d.draft_no for d in drafts]
        assert len(set(draft_nos)) == 2 * n, "a DraftNo issued twice"
        journaled_on = await t.rows("SELECT draft_no, node FROM drafts")
        assert Counter(r["node"] for r in journaled_on) == {"A": n, "B": n}
        await t.wait_states(draft_nos, "ISSUED")

        # each draft presented several times at one moment; the broker picks each one's node
        chosen = drafts[:: (2 * n) // shape.presented][: shape.presented]
        if shape.together:
            await asyncio.gather(*(_present_at_once(t, d, shape.copies) for d in chosen))
        else:
            for d in chosen:
                await _present_at_once(t, d, shape.copies)

        paid = [d.draft_no for d in chosen]
        answers = await t.rows(
            "SELECT draft_no, result, reason, node FROM draft_presentments ORDER BY draft_no"
        )
        by_draft: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        for r in answers:
            by_draft[r["draft_no"]].append((r["result"], r["reason"]))
        want = [("ACCP", None)] + [("RJCT", "PD")] * (shape.copies - 1)
        assert {k: sorted(v, key=str) for k, v in by_draft.items()} == dict.fromkeys(paid, want)
        answered_by = {r["node"] for r in answers}
        assert answered_by == {"A", "B"}, "one node took every presentment"
        split = sum(1 for p in paid if len({r["node"] for r in answers if r["draft_no"] == p}) == 2)
        print(f"{shape}: {split} of {len(paid)} drafts were presented on both nodes")
        steps = await t.rows(
            "SELECT draft_no, count(*) AS n FROM draft_steps WHERE state = 'PAID' GROUP BY draft_no"
        )
        assert {r["draft_no"]: r["n"] for r in steps} == dict.fromkeys(paid, 1)
        # the presenters saw every answer; the simulator records each when its own copy
        # arrives, which may be a moment later
        async with asyncio.timeout(WAIT):
            while len(t.sim.draft_answers) < shape.presented * shape.copies:
                await asyncio.sleep(0.05)
        assert len(t.sim.draft_answers) == shape.presented * shape.copies
        assert t.sim.stats["draft_answers_repeated"] == 0

        # the next working day, 00:05: both nodes' settlement passes run at once
        monday = calendar_next_working_day(FRIDAY_10.date())
        t.clock.set(datetime(monday.year, monday.month, monday.day, 0, 5, tzinfo=SHANGHAI))
        for _ in range(3):
            for gw in t.nodes.values():
                gw.drafts.link.wake()
            await asyncio.sleep(0.05)
        await t.wait_states(paid, "SETTLED")
        settles = await t.rows(
            "SELECT m.draft_no, o.node FROM draft_messages m JOIN outbound o"
            " ON o.msg_id = m.msg_id WHERE m.kind = 'settle'"
        )
        assert sorted(r["draft_no"] for r in settles) == sorted(paid)
        received = t.received("intra.draft.settle")
        assert {n: len(m) for n, m in received.items()} == dict.fromkeys(paid, 1)
        print(f"settle sent by nodes {dict(Counter(r['node'] for r in settles))}")

        # the applicant hears of each state once, whichever node it asks
        notices = await eb.pull_all(t.notes, t.clock.now())
        states: dict[str, list[str]] = defaultdict(list)
        for note in notices:
            if note.kind == "DRAFT" and note.draft_no is not None:
                states[note.draft_no].append(note.state or "")
        for no in draft_nos:
            assert states[no] == (["ISSUED", "PAID", "SETTLED"] if no in paid else ["ISSUED"]), no


async def test_two_nodes_issue_unique_draft_nos_pay_each_draft_once_and_settle_once(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer, passphrase: None
) -> None:
    await _two_nodes_drafts(tmp_path, dev_pki, broker, pg, DEFAULT)


@pytest.mark.slow
@pytest.mark.parametrize("shape", LONG, ids=str)
async def test_two_nodes_drafts_many_presentments(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer, passphrase: None, shape: Shape
) -> None:
    await _two_nodes_drafts(tmp_path, dev_pki, broker, pg, shape)
