"""SIGKILL of the real gatewayd around bank drafts (docs/bank-drafts.md §2-§3).

The promises under test:

- A presentment is answered exactly once, keyed by (AgentBank, PrsntmtId), and
  its answer is journaled with the draft's move to PAID before it is
  published.  A node killed between that journal write and the publish
  publishes the journaled answer after the restart (the link's redelivery of
  unsent outbound), under the journaled MsgId: the clearing centre never sees
  a second answer under another MsgId (the simulator's
  ``draft_answers_repeated`` stays 0), the same presentment delivered again
  gets the same answer, another one gets PD.
- DRAFT's 0000 means journaled (docs/bank-drafts.md §2): a node killed right
  after it still has the draft after the restart (a replay of the same bytes
  gets the same DraftNo), and the ``intra.draft.issue`` reaches the centre
  under exactly one MsgId, the journaled one; the draft becomes ISSUED.
- Two nodes on one PostgreSQL database: when the node that took a
  presentment dies between the journal write and the publish, the other
  node's redelivery publishes that answer, under its journaled MsgId, while
  the dead node is still down; its restart sends nothing new.

Kill points.  "At the 0000": the test kills the node's process group the
moment the reply arrives.  "Journaled, not published": a ``sitecustomize``
that only this test puts on the node's ``PYTHONPATH`` (the way
test_powercut.py makes its mutant) wraps ``DraftLink._send_soon``, the step
after the journal transaction returned and before the publish: for a message
of the chosen MsgTp it writes the MsgId to a marker file and SIGKILLs its own
process group.  The gateway has no hook of its own.

The seeded tests kill at a seed-chosen delay instead, landing anywhere on the
path (each run prints where); the default run has one seed each on SQLite,
``-m slow`` twenty more each, and ten seeds killing one of two PostgreSQL
nodes while presenting (a failing seed names itself)::

    python -m pytest tests/faults/test_crash_drafts.py -m slow -k "seed-7" -s
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.keys.devpki import DevPki
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import DraftApplication, ErpClient, Reply, build_request, draft_apply_body
from gateway.sim.present import CentreLink, present
from gateway.testing import Broker
from gateway.testing_pg import PgServer, create_database
from tests.faults.crashkit import BizClock, Daemon, NodeSettings, close_quietly
from tests.integration.correspondence_support import ids, journal_rows
from tests.integration.harness import recent_friday_10, running_clearing_sim

FRIDAY_10 = recent_friday_10()
AGENT = "104100000004"  # another bank's direct participant, inside our province
PASSPHRASE = "draft keys of the crash tests only"
CRASH_ENV = "DRAFT_CRASH_BEFORE_PUBLISH"
MARKER_ENV = "DRAFT_CRASH_MARKER"
WAIT = 60.0
SLOW_SEEDS = range(1, 22)
ISSUE_SEED = 6
"""Its kill comes 0 ms after DRAFT's 0000: the issue message not yet journaled or not yet
published (wall-clock timing decides which)."""
PRESENT_SEED = 1
"""Its kill comes ~30 ms into presenting: typically the answer published, its ccms.990
not yet in."""
PG_SEEDS = range(1, 11)

KILL_HOOK = f'''\
"""The drafts crash test's kill point (tests/faults/test_crash_drafts.py): SIGKILL this
gatewayd's process group once a draft message of MsgTp ${CRASH_ENV} is journaled,
before it is published.  The marker file ${MARKER_ENV} gets the message's MsgId; when it
exists already (another node died there), nothing happens: one kill per test.  Only
that test puts this file on a node's PYTHONPATH."""
import os
import signal

_AT = os.environ.get("{CRASH_ENV}")
if _AT:
    import gateway.draftsvc.link as _link

    _send_soon = _link.DraftLink._send_soon

    def _kill_before_publish(self, out):
        if out.msg_tp == _AT:
            try:
                fd = os.open(os.environ["{MARKER_ENV}"], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                fd = -1
            if fd >= 0:
                os.write(fd, out.msg_id.encode())
                os.fsync(fd)
                os.close(fd)
                os.killpg(os.getpgrp(), signal.SIGKILL)
        _send_soon(self, out)

    _link.DraftLink._send_soon = _kill_before_publish
'''


def _pki(tmp: Path, dev_pki: DevPki) -> DevPki:
    """A copy of the test PKI without draft keys: node A makes them at its first start."""
    pki = DevPki.open(Path(shutil.copytree(dev_pki.dir, tmp / "pki")))
    for stale in pki.dir.glob("draft-keys.toml*"):
        stale.unlink()
    return pki


def hook_path(dest: Path) -> Path:
    """A folder whose ``sitecustomize.py`` is :data:`KILL_HOOK`."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    return dest


def _pg_params(sql: str) -> str:
    """``?`` placeholders (SQLite) as ``$1``, ``$2`` … (PostgreSQL)."""
    parts = sql.split("?")
    return "".join(f"{p}${i}" for i, p in enumerate(parts[:-1], 1)) + parts[-1]


class DraftNodes:
    """gatewayd with bank drafts enabled: one node on SQLite, or nodes A and B on one
    PostgreSQL database with the shared clearing subscription; their clearing
    centre, and ERPs.  Every node opens the same keys folder (one ``draft-keys.toml``)."""

    def __init__(self, tmp: Path, pki: DevPki, broker: Broker, sim: ClearingSimulator,
                 dsn: str = "") -> None:  # fmt: skip
        self.clock = BizClock(FRIDAY_10)
        self.dsn = dsn
        self.nodes = {
            letter: Daemon(tmp, pki, broker.url, self.clock, NodeSettings(
                letter=letter, backend="postgres" if dsn else "sqlite", dsn=dsn,
                shared=bool(dsn), workers=0))
            for letter in (("A", "B") if dsn else ("A",))
        }  # fmt: skip
        self.marker = tmp / "killed-at-msg-id"
        self.hooks = hook_path(tmp / "hook")
        self.sim = sim
        self.link = CentreLink.of_simulator(sim.config)
        self.notes = ids("N")
        assert sim.config.record_path is not None
        self.record = sim.config.record_path
        self.arm(None)

    def arm(self, msg_tp: str | None) -> None:
        """Every node's next start dies before publishing a draft message of ``msg_tp``
        (the first node to get there only); None: no kill point."""
        for d in self.nodes.values():
            env = {"GATEWAY_KEY_PASSPHRASE": PASSPHRASE}
            if msg_tp is not None:
                path = os.pathsep.join(
                    p for p in (str(self.hooks), os.environ.get("PYTHONPATH", "")) if p
                )
                env |= {"PYTHONPATH": path, CRASH_ENV: msg_tp, MARKER_ENV: str(self.marker)}
            d.s.env = env

    async def start(self) -> None:
        """Start every node that is not running (A first: it makes the draft keys)."""
        for d in self.nodes.values():
            if not d.alive:
                await d.start()

    def stop(self) -> None:
        for d in self.nodes.values():
            d.stop()

    def kill(self) -> None:
        for d in self.nodes.values():
            d.kill()

    async def died(self) -> Daemon:
        """The node its own kill point took down (a SIGKILL, nothing else)."""
        async with asyncio.timeout(WAIT):
            while all(d.alive for d in self.nodes.values()):
                await asyncio.sleep(0.02)
        dead = next(d for d in self.nodes.values() if not d.alive)
        assert dead.proc is not None
        code = dead.proc.wait()
        assert code == -9, f"gatewayd exited {code}, not by SIGKILL: {dead.log_tail()}"
        return dead

    @contextlib.asynccontextmanager
    async def erp(self, letter: str = "A") -> AsyncIterator[ErpClient]:
        c = await self.nodes[letter].client("C100000001")
        try:
            yield c
        finally:
            await close_quietly(c)

    def signed_draft(self, c: ErpClient, msg_id: str, amount: str) -> bytes:
        """DRAFT's signed bytes, kept so an ERP without an answer can send them again."""
        app = DraftApplication("6222000000000001", "示范贸易有限公司", "收款公司", Decimal(amount))
        root = build_request(
            "DRAFT", c.corp_id, c.oper_id, msg_id, self.clock.now(), draft_apply_body(app)
        )
        return c.sign(root)

    async def issued(self, c: ErpClient, msg_id: str, body: bytes) -> Reply:
        """Send ``body`` (a DRAFT) and wait until its draft is ISSUED; the 0000 reply."""
        r = await c.send_raw(body, msg_id)
        assert r.ret_code == "0000" and r.draft is not None, r.ret_msg
        seen = await c.wait_draft_state(
            self.notes, self.clock.now, r.draft.draft_no, "ISSUED", timeout=WAIT
        )
        assert seen is not None, f"{r.draft.draft_no} never ISSUED"
        return r

    async def present(self, r: Reply, prsntmt_id: str, settle: str) -> tuple[str, str | None]:
        d = r.draft
        assert d is not None
        return await present(
            self.link,
            draft_no=d.draft_no,
            code=d.code,
            amount=d.amount,
            settle_amount=Decimal(settle),
            agent_bank=AGENT,
            issue_date=d.issue_date,
            prsntmt_id=prsntmt_id,
            work_date=self.clock.now().date(),
            timeout=WAIT,
        )

    # -- what the journal and the clearing centre hold -----------------------------------
    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Read the journal directly (the nodes may be running or dead)."""
        if not self.dsn:
            return journal_rows(self.nodes["A"].journal_path, sql, params)
        conn = await asyncpg.connect(self.dsn)
        try:
            return [tuple(r) for r in await conn.fetch(_pg_params(sql), *params)]
        finally:
            await conn.close()

    async def answer_in_journal(self, prsntmt_id: str) -> tuple[str, str, str] | None:
        """(the answer's MsgId, its outbound state, Result) of a journaled presentment."""
        rows = await self.rows(
            "SELECT p.msg_id, o.state, p.result FROM draft_presentments p"
            " JOIN outbound o ON o.msg_id = p.msg_id WHERE p.agent_bank = ? AND p.prsntmt_id = ?",
            AGENT,
            prsntmt_id,
        )
        assert len(rows) <= 1, rows
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    async def issue_in_journal(self, draft_no: str) -> tuple[str, str] | None:
        """(the issue message's MsgId, its outbound state) of a draft."""
        rows = await self.rows(
            "SELECT m.msg_id, o.state FROM draft_messages m JOIN outbound o"
            " ON o.msg_id = m.msg_id WHERE m.draft_no = ? AND m.kind = 'issue'",
            draft_no,
        )
        assert len(rows) <= 1, rows
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    async def draft_state(self, draft_no: str) -> str | None:
        rows = await self.rows("SELECT state FROM drafts WHERE draft_no = ?", draft_no)
        return str(rows[0][0]) if rows else None

    def received(self, msg_tp: str, draft_no: str) -> list[str]:
        """The MsgIds the centre received ``msg_tp`` for ``draft_no`` under, re-sends too."""
        out = []
        for line in self.record.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["msg_tp"] == msg_tp and draft_no in r["tx_ids"]:
                out.append(r["msg_id"])
        return out


@contextlib.asynccontextmanager
async def draft_nodes(
    tmp: Path, dev_pki: DevPki, broker: Broker, dsn: str = ""
) -> AsyncIterator[DraftNodes]:
    pki = _pki(tmp, dev_pki)
    async with running_clearing_sim(pki, broker.url, tmp / "clearing.jsonl") as sim:
        n = DraftNodes(tmp, pki, broker, sim, dsn)
        try:
            yield n
        finally:
            n.stop()


async def _answered_once_after_restart(
    n: DraftNodes, r: Reply, prsntmt_id: str, first: asyncio.Task[tuple[str, str | None]]
) -> tuple[str, str]:
    """Restart the killed node and check the presentment promise; returns
    (where the kill had left the answer, its Result)."""
    journaled = await n.answer_in_journal(prsntmt_id)
    landed = "not journaled" if journaled is None else journaled[1]
    assert r.draft is not None
    paid_at_kill = await n.draft_state(r.draft.draft_no)
    if journaled is not None:  # the answer and the move to PAID are one transaction
        assert (paid_at_kill == "PAID") == (journaled[2] == "ACCP"), (journaled, paid_at_kill)
    n.arm(None)
    await n.start()
    assert await first == ("ACCP", None)
    answer = await asyncio.wait_for(n.sim.wait_draft_answer(prsntmt_id), WAIT)
    after = await n.answer_in_journal(prsntmt_id)
    assert after is not None and answer.msg_id == after[0], "answer under another MsgId"
    if journaled is not None:
        assert journaled[0] == after[0], "the journaled answer was replaced"
    # delivered again, whatever it now says: the first answer, under its MsgId
    assert await n.present(r, prsntmt_id, "1.00") == ("ACCP", None)
    assert await n.present(r, f"{prsntmt_id}-2", "600.00") == ("RJCT", "PD")
    pd = await asyncio.wait_for(n.sim.wait_draft_answer(f"{prsntmt_id}-2"), WAIT)
    assert n.sim.stats["draft_answers_repeated"] == 0
    assert set(n.received("intra.draft.answer", r.draft.draft_no)) == {after[0], pd.msg_id}
    async with n.erp() as c:
        paid = await c.wait_draft_state(
            n.notes, n.clock.now, r.draft.draft_no, "PAID", timeout=WAIT
        )
        assert paid is not None and paid.settle_amount == Decimal("600.00")
        notices = await c.pull_all(n.notes, n.clock.now())
    assert [x.state for x in notices if x.kind == "DRAFT"] == ["ISSUED", "PAID"]
    return landed, after[2]


async def test_sigkill_between_answer_journal_and_publish_sends_that_answer_once(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    async with draft_nodes(tmp_path, dev_pki, broker) as n:
        n.arm("intra.draft.answer")
        await n.start()
        async with n.erp() as c:
            r = await n.issued(c, "D-1", n.signed_draft(c, "D-1", "1000.00"))
        first = asyncio.create_task(n.present(r, "PR-1", "600.00"))
        await n.died()
        killed_at = n.marker.read_text(encoding="ascii")
        journaled = await n.answer_in_journal("PR-1")
        assert journaled == (killed_at, "PENDING", "ACCP")  # journaled, never published
        assert "PR-1" not in n.sim.draft_answers
        assert await _answered_once_after_restart(n, r, "PR-1", first) == ("PENDING", "ACCP")


async def _draft_after_restart(
    n: DraftNodes, msg_id: str, body: bytes, first: Reply | None
) -> tuple[str, str]:
    """Restart the killed node; a replay of the DRAFT gets the same DraftNo, the draft
    becomes ISSUED, its issue message reached the centre under one MsgId.  Returns
    (where the kill had left the issue message, the DraftNo)."""
    n.arm(None)
    await n.start()
    async with n.erp() as c:
        again = await c.send_raw(body, msg_id)  # an ERP that did not see the 0000 would
        assert again.ret_code == "0000" and again.draft is not None, again.ret_msg
        if first is not None:
            assert again.dup and first.draft is not None
            assert again.draft.draft_no == first.draft.draft_no
            assert again.draft.code == first.draft.code
        draft_no = again.draft.draft_no
        seen = await c.wait_draft_state(n.notes, n.clock.now, draft_no, "ISSUED", timeout=WAIT)
        assert seen is not None, f"{draft_no} never ISSUED"
        notices = await c.pull_all(n.notes, n.clock.now())
    assert [x.state for x in notices if x.kind == "DRAFT"] == ["ISSUED"]
    issue = await n.issue_in_journal(draft_no)
    assert issue is not None and set(n.received("intra.draft.issue", draft_no)) == {issue[0]}
    assert n.sim.stats["draft_statuses"] == 1
    return draft_no, issue[0]


async def test_sigkill_between_issue_journal_and_publish_sends_that_issue_once(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    async with draft_nodes(tmp_path, dev_pki, broker) as n:
        n.arm("intra.draft.issue")
        await n.start()
        async with n.erp() as c:
            body = n.signed_draft(c, "D-2", "500.00")
            try:
                first: Reply | None = await c.send_raw(body, "D-2")
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                first = None  # the node died before the reply left: the ERP sends again
            await n.died()
        killed_at = n.marker.read_text(encoding="ascii")
        print(f"DRAFT's reply {'arrived' if first else 'was lost'} before the kill")
        if first is not None:
            assert first.ret_code == "0000" and first.draft is not None, first.ret_msg
            draft_no = first.draft.draft_no
            assert await n.issue_in_journal(draft_no) == (killed_at, "PENDING")
            assert n.received("intra.draft.issue", draft_no) == []
        _, issue_msg_id = await _draft_after_restart(n, "D-2", body, first)
        assert issue_msg_id == killed_at


async def _kill_after_draft_0000(tmp: Path, dev_pki: DevPki, broker: Broker, seed: int) -> None:
    rng = random.Random(f"crash-drafts-issue-{seed}")
    delay = rng.choice((0.0, 0.0, 0.002, 0.01, 0.03, 0.1)) * rng.uniform(0.5, 1.5)
    async with draft_nodes(tmp, dev_pki, broker) as n:
        await n.start()
        async with n.erp() as c:
            body = n.signed_draft(c, f"D-{seed}", "300.00")
            first = await c.send_raw(body, f"D-{seed}")
            await asyncio.sleep(delay)  # the seed's kill point, measured from the 0000
            n.kill()
        assert first.ret_code == "0000" and first.draft is not None, first.ret_msg
        draft_no = first.draft.draft_no
        issue = await n.issue_in_journal(draft_no)
        landed = "not journaled" if issue is None else issue[1]
        assert await n.draft_state(draft_no) is not None  # 0000 means journaled
        await _draft_after_restart(n, f"D-{seed}", body, first)
    print(f"seed {seed}: killed {delay * 1000:.0f} ms after DRAFT's 0000, issue message {landed}")


async def _kill_while_presenting(
    tmp: Path, dev_pki: DevPki, broker: Broker, seed: int, dsn: str = ""
) -> None:
    rng = random.Random(f"crash-drafts-present-{seed}")
    delay = rng.choice((0.0, 0.01, 0.03, 0.06, 0.1, 0.2)) * rng.uniform(0.5, 1.5)
    async with draft_nodes(tmp, dev_pki, broker, dsn) as n:
        victim = n.nodes[rng.choice(sorted(n.nodes))]
        await n.start()
        async with n.erp() as c:
            r = await n.issued(c, f"D-{seed}", n.signed_draft(c, f"D-{seed}", "1000.00"))
        first = asyncio.create_task(n.present(r, f"PR-{seed}", "600.00"))
        await asyncio.sleep(delay)  # the seed's kill point, measured from the presenting
        victim.kill()
        landed, result = await _answered_once_after_restart(n, r, f"PR-{seed}", first)
    print(
        f"seed {seed}: node {victim.s.letter} of {len(n.nodes)} killed {delay * 1000:.0f} ms"
        f" into presenting, answer {landed}, {result}"
    )


async def test_sigkill_of_one_postgres_node_between_answer_journal_and_publish(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer
) -> None:
    """Two nodes on one database: the node that took the presentment dies with its answer
    journaled and unpublished; the other node's redelivery publishes that answer, under the
    journaled MsgId, while the dead node is still down."""
    dsn = await create_database(pg)
    async with draft_nodes(tmp_path, dev_pki, broker, dsn) as n:
        n.arm("intra.draft.answer")
        await n.start()
        async with n.erp("B") as c:
            r = await n.issued(c, "D-1", n.signed_draft(c, "D-1", "1000.00"))
        first = asyncio.create_task(n.present(r, "PR-1", "600.00"))
        dead = await n.died()
        killed_at = n.marker.read_text(encoding="ascii")
        journaled = await n.answer_in_journal("PR-1")
        assert journaled is not None and (journaled[0], journaled[2]) == (killed_at, "ACCP")
        by = await n.rows("SELECT node FROM draft_presentments WHERE prsntmt_id = ?", "PR-1")
        assert by == [(dead.s.letter,)]
        assert await first == ("ACCP", None)  # sent by the survivor
        assert not dead.alive
        answer = await asyncio.wait_for(n.sim.wait_draft_answer("PR-1"), WAIT)
        assert answer.msg_id == killed_at
        print(f"node {dead.s.letter} died with the answer journaled; the other node sent it")
        _, result = await _answered_once_after_restart(n, r, "PR-1", first)
        assert result == "ACCP"


def _ids(seed: int) -> str:
    return f"seed-{seed}"


@pytest.mark.parametrize("seed", [ISSUE_SEED], ids=_ids)
async def test_sigkill_right_after_draft_0000_keeps_the_draft_and_sends_one_issue(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _kill_after_draft_0000(tmp_path, dev_pki, broker, seed)


@pytest.mark.parametrize("seed", [PRESENT_SEED], ids=_ids)
async def test_sigkill_while_presenting_answers_once(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _kill_while_presenting(tmp_path, dev_pki, broker, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [s for s in SLOW_SEEDS if s != ISSUE_SEED], ids=_ids)
async def test_sigkill_after_draft_0000_many_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _kill_after_draft_0000(tmp_path, dev_pki, broker, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [s for s in SLOW_SEEDS if s != PRESENT_SEED], ids=_ids)
async def test_sigkill_while_presenting_many_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _kill_while_presenting(tmp_path, dev_pki, broker, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", PG_SEEDS, ids=_ids)
async def test_sigkill_of_one_postgres_node_while_presenting_many_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer, seed: int
) -> None:
    await _kill_while_presenting(tmp_path, dev_pki, broker, seed, await create_database(pg))
