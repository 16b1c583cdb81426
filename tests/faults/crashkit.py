"""Seeded crash runs against the real ``gatewayd``: the kit behind test_crash.py and
bench/bench_crash.py.

A run starts one or two ``gatewayd`` subprocesses (SQLite, or two nodes A/B on
one PostgreSQL database with shared subscriptions), drives them with
concurrent, pipelining ERP clients, and SIGKILLs a node several times.  The
seed fixes everything that is not wall-clock timing: how many kills, the
shape of each round's load and what the kill waits for, the clearing
simulator's delays, payee banks and amounts.  Shapes aim the kill at a stage
of the payment's path without any hook in the gateway:

- ``frame``: large pipelined batches, killed a few ms after a batch was
  handed to the socket — frames half read, half verified;
- ``journal``: killed the moment the first reply of a large batch arrives —
  the rest of its group commit is journaled but not yet answered;
- ``package``: BEPS-heavy load, ``max_wait`` 2 s, killed inside the window —
  open packages (QUEUED, not yet in an outbound message);
- ``publish``: the broker is SIGSTOPped for a moment, the node killed while
  its publishes wait for PUBACKs, the broker resumed (PENDING outbound);
- ``receipt``: the clearing simulator answers slowly, the node is killed
  while receipts are on their way (SENT, receipts queued in its session).

After each kill the node restarts; some requests that never got an answer
are sent again byte for byte, as an ERP would (same MsgId: deduplicated,
corplink.md §7).  Then load stops and the run drains until every journaled
item is final.  Three sets are compared (corplink.md §5, clearing.md §1):
requests answered 0000, EndToEndIds the clearing simulator received (by
MsgId), and the journal read directly (SQLite file / PostgreSQL tables).

A kill is ``killpg(SIGKILL)`` of the node's process group (gatewayd, its
worker processes, forkserver and resource tracker), like a power cut or
systemd's ``KillMode=control-group``; a bare SIGKILL of gatewayd would leave
those helpers running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
from cryptography import x509

from gateway.clock import SHANGHAI
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.net.tls import client_context
from gateway.sim.erp import ErpClient, Payment, Reply, build_request, transfer_body
from gateway.testing import Broker
from gateway.testing_pg import PgServer, create_database
from tests.integration.harness import recent_friday_10, running_clearing_sim

SHAPES = ("frame", "journal", "package", "publish", "receipt")
FINAL = ("SETTLED", "REJECTED")
REFUSALS = ("5001", "5002")
"""Load refusals: allowed under load, and they promise nothing was journaled (corplink.md §8)."""

CORPS = (("C100000001", "6222000000000001"), ("C100000002", "6222000000000101"))
INTRA = ("103290000018", "100022")  # our own bank: INTRA (routing.md §3)
OTHER = ("104100000004", "102290000011", "105584000005")  # interbank
BEPS_AMOUNTS = ("12.30", "49999.99", "300.00")
HVPS_AMOUNT = "88000.00"  # >= credit_limit: HVPS
DRAIN_TIMEOUT = 120.0
CLIENT_TIMEOUT = 20.0
ROUND_TIMEOUT = 60.0


async def close_quietly(c: ErpClient) -> None:
    """Close a client; a TLS close that never completes must not hang the run."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await c.close()


def business_start() -> datetime:
    """Friday 10:00: a working day, every engine open (routing.md §4)."""
    return recent_friday_10()


class BizClock:
    """The business time shared by the test and every node start (``clock.start``).

    It runs at real speed from ``at``; ``set`` moves it (recovery tests stand
    before 09:00, then after).  Monotonic, like the gateway's BusinessClock.
    """

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(SHANGHAI)
        self._mono = time.monotonic()

    def now(self) -> datetime:
        return self._at + timedelta(seconds=time.monotonic() - self._mono)


# -- one gatewayd node ------------------------------------------------------------


@dataclass
class NodeSettings:
    """What a node's overlay says beyond the defaults (conf/gateway.toml)."""

    letter: str = "A"
    backend: str = "sqlite"
    dsn: str = ""
    shared: bool = False
    beps_max_wait: float = 0.3
    receipt_timeout: float = 3.0
    workers: int = 1
    lease: float = 2.0
    extra: str = ""
    code_root: Path | None = None  # run gatewayd from this copy of the code (see snapshot_code)
    env: dict[str, str] = field(default_factory=dict)  # more environment (e.g. powercut's)


class Daemon:
    """``gatewayd`` as a subprocess in its own process group, restartable on the same state."""

    def __init__(self, root: Path, pki: DevPki, broker_url: str, clock: BizClock,
                 settings: NodeSettings | None = None) -> None:  # fmt: skip
        self.s = settings or NodeSettings()
        self.dir = root / f"node{self.s.letter}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.broker_url = broker_url
        self.clock = clock
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0
        self.starts = 0

    @property
    def journal_path(self) -> Path:
        return self.dir / "state" / "journal.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.dir / "gatewayd.log"

    def overlay(self) -> str:
        s = self.s
        journal = (
            f'[journal]\nbackend = "postgres"\ndsn = "{s.dsn}"\nlease = {s.lease}\n'
            if s.backend == "postgres"
            else ""
        )
        return (
            f'environment = "test"\nstate_dir = "{self.dir / "state"}"\n'
            f'[bank]\nnode = "{s.letter}"\n'
            f'[clock]\nstart = "{self.clock.now().isoformat()}"\n'
            f'[keys]\ndev_pki = false\ndir = "{self.pki.dir}"\n'
            f'[clearing]\nurl = "{self.broker_url}"\nreceipt_timeout = {s.receipt_timeout}\n'
            f'client_id = "gw-node-{s.letter}"\nshared = {"true" if s.shared else "false"}\n'
            '[observability]\nmetrics_port = 0\nlog_level = "warning"\n'
            f"[engines.beps]\nmax_wait = {s.beps_max_wait}\n"
            f"[workers]\nprocesses = {s.workers}\n" + journal + s.extra + "\n"
            '[[listeners]]\nname = "tcp"\nport = 0\ntls = true\nclient_cert = "optional"\n'
        )

    async def start(self) -> None:
        ports = self.dir / "ports.json"
        ports.unlink(missing_ok=True)
        overlay = self.dir / "gw.toml"
        overlay.write_text(self.overlay(), encoding="utf-8")
        root = self.s.code_root
        env = os.environ | ({"PYTHONPATH": str(root)} if root else {}) | self.s.env
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {self.clock.now()}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli.gatewayd", "--config", str(overlay),
                 "--ports-file", str(ports)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                env=env,
                start_new_session=True,  # its own process group: kill() takes the helpers too
            )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + 60
        while not ports.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"gatewayd {self.s.letter} died at start: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gatewayd {self.s.letter} not ready: {self.log_tail()}")
            await asyncio.sleep(0.05)
        bound = json.loads(ports.read_text())
        self.port = bound["listeners"]["tcp"][1]
        self.metrics_port = bound["metrics"][1] if bound.get("metrics") else 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: nothing of the node gets to clean up."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Graceful drain (SIGTERM); the process group is killed if it hangs or leaves helpers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def client(self, corp: str, oper: str = "op01") -> ErpClient:
        kp, cp = self.pki.client(corp, oper)
        c = ErpClient(
            "127.0.0.1",
            self.port,
            corp_id=corp,
            oper_id=oper,
            signer=load_signing_key(kp, cp),
            gateway_certs=x509.load_pem_x509_certificates(self.pki.response_cert.read_bytes()),
            ssl_context=client_context(self.pki.server_ca, cp, kp),
        )
        async with asyncio.timeout(CLIENT_TIMEOUT):  # a node that accepts but never
            await c.connect()  # finishes the handshake fails the run instead of hanging it
        return c


def snapshot_code(dest: Path) -> Path:
    """Copy the gateway package and its data folders to ``dest``: long runs then restart
    every node on the code they started with, whatever changes in the checkout meanwhile."""
    repo = Path(__file__).resolve().parents[2]
    for name in ("gateway", "conf", "codecs", "routing", "keys"):
        if (repo / name).is_dir():
            shutil.copytree(repo / name, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return dest


# -- reading the journal directly ----------------------------------------------------


@dataclass(frozen=True)
class JournalItem:
    corp_id: str
    msg_id: str
    end_to_end_id: str
    state: str
    out_msg_id: str | None
    engine: str | None


_ITEMS_SQL = (
    "SELECT r.corp_id, r.msg_id, i.end_to_end_id, i.state, i.out_msg_id, i.engine"
    " FROM requests r JOIN items i ON i.request_id = r.id"
)


def _ro(path: Path) -> sqlite3.Connection:
    """Read-only: never checkpoints or changes the file a restart will see."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


LANDED = ("open BEPS items", "PENDING outbound", "SENT unreceipted", "journaled unanswered")
"""What a kill left behind, summed over a run's kills (the last one from the ledger)."""
_LANDED_SQL = (
    "SELECT (SELECT count(*) FROM items WHERE engine = 'BEPS' AND state = 'QUEUED'"
    " AND out_msg_id IS NULL), (SELECT count(*) FROM outbound WHERE state = 'PENDING'),"
    " (SELECT count(*) FROM outbound WHERE state = 'SENT')"
)


def _sqlite_landed(path: Path) -> tuple[int, ...]:
    conn = _ro(path)
    try:
        return tuple(conn.execute(_LANDED_SQL).fetchone())
    finally:
        conn.close()


def read_sqlite_items(path: Path) -> list[JournalItem]:
    if not path.exists():
        return []
    conn = _ro(path)
    try:
        return [JournalItem(*row) for row in conn.execute(_ITEMS_SQL)]
    finally:
        conn.close()


def sqlite_outbound(path: Path) -> dict[str, str]:
    """Outbound MsgId → state, read from the file."""
    conn = _ro(path)
    try:
        return dict(conn.execute("SELECT msg_id, state FROM outbound").fetchall())
    finally:
        conn.close()


async def read_pg_items(dsn: str) -> list[JournalItem]:
    conn = await asyncpg.connect(dsn)
    try:
        with contextlib.suppress(asyncpg.UndefinedTableError):
            return [JournalItem(*row) for row in await conn.fetch(_ITEMS_SQL)]
        return []
    finally:
        await conn.close()


# -- the clearing simulator's record ---------------------------------------------------


@dataclass
class ClearingView:
    by_e2e: dict[str, set[str]]  # EndToEndId -> the MsgIds it arrived under
    messages: int
    resends: int
    by_msg: dict[str, list[str]]  # MsgId -> its EndToEndIds (first arrival)


def read_record(path: Path) -> ClearingView:
    by_e2e: dict[str, set[str]] = defaultdict(set)
    by_msg: dict[str, list[str]] = {}
    messages = resends = 0
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if r["msg_id"] is None:
                continue
            messages += 1
            resends += bool(r["dup"])
            by_msg.setdefault(r["msg_id"], list(r["end_to_end_ids"]))
            for e in r["end_to_end_ids"]:
                by_e2e[e].add(r["msg_id"])
    return ClearingView(dict(by_e2e), messages, resends, by_msg)


# -- the plan a seed makes -----------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    shape: str
    victim: str  # node letter
    load_s: float  # seconds of load before the kill trigger arms
    batch: tuple[int, int]  # requests per pipelined batch (min, max)
    beps_share: float
    hvps_share: float
    jitter_s: float  # extra delay between trigger and kill
    stall_s: float  # publish: seconds the broker is stopped before the kill


@dataclass(frozen=True)
class Plan:
    seed: int
    backend: str
    nodes: tuple[str, ...]
    rounds: tuple[Round, ...]  # one per kill
    beps_max_wait: float
    receipt_delay: float
    settle_delay: float
    reject_ratio: float
    resend_share: float

    def describe(self) -> str:
        rs = ", ".join(f"{r.shape}@{r.victim}" for r in self.rounds)
        return (
            f"seed {self.seed} [{self.backend}, nodes {''.join(self.nodes)}]: kills {rs};"
            f" beps max_wait {self.beps_max_wait}s, sim receipt {self.receipt_delay:.2f}s"
            f" settle {self.settle_delay:.2f}s reject {self.reject_ratio:.2f}"
        )


def make_plan(seed: int, *, kills: int, backend: str = "sqlite",
              nodes: tuple[str, ...] = ("A",)) -> Plan:  # fmt: skip
    """Everything but wall-clock timing, from the seed.  The first kill's shape cycles
    with the seed, so consecutive seeds cover every shape."""
    rng = random.Random(f"crash-{seed}")
    shapes = [SHAPES[seed % len(SHAPES)], *(rng.choice(SHAPES) for _ in range(kills - 1))]
    rounds = []
    for shape in shapes:
        big = shape in ("frame", "journal")
        rounds.append(
            Round(
                shape=shape,
                victim=rng.choice(nodes),
                load_s=rng.uniform(0.2, 1.0),
                batch=(16, rng.randint(24, 64)) if big else (1, rng.randint(2, 10)),
                beps_share=0.85 if shape == "package" else rng.uniform(0.2, 0.6),
                hvps_share=0.05 if shape == "package" else rng.uniform(0.1, 0.3),
                jitter_s=rng.uniform(0.0, 0.03) if shape == "frame" else 0.0,
                stall_s=rng.uniform(0.2, 0.8),
            )
        )
    receipt = "receipt" in shapes
    return Plan(
        seed=seed,
        backend=backend,
        nodes=nodes,
        rounds=tuple(rounds),
        beps_max_wait=2.0 if "package" in shapes else 0.3,
        receipt_delay=rng.uniform(0.4, 1.2) if receipt else rng.uniform(0.0, 0.1),
        settle_delay=rng.uniform(0.1, 0.6) if receipt else rng.uniform(0.0, 0.1),
        reject_ratio=rng.choice((0.0, 0.1, 0.2)),
        resend_share=rng.uniform(0.2, 0.8),
    )


# -- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One run's outcome; ``lost`` and ``doubled`` are the promise (both 0)."""

    seed: int
    backend: str
    kills: int
    requests: int  # PAYs sent (first sends)
    answered: int  # 0000
    unanswered: int  # no reply: the node died first
    refused: int  # 5001/5002: nothing journaled
    resent: int  # unanswered PAYs sent again after a restart
    journaled: int  # items in the journal
    clearing_messages: int
    clearing_resends: int  # the same MsgId again (deduplicated by the receiver)
    lost: int
    doubled: int
    landed: tuple[tuple[str, int], ...] = ()

    def line(self) -> str:
        landed = ", ".join(f"{k} {v}" for k, v in self.landed)
        return (
            f"crash seed {self.seed} [{self.backend}]: kills {self.kills}, requests"
            f" {self.requests}, answered 0000 {self.answered}, unanswered {self.unanswered},"
            f" refused {self.refused}, re-sent by ERP {self.resent}, journaled {self.journaled},"
            f" clearing saw {self.clearing_messages} messages ({self.clearing_resends} re-sends),"
            f" lost {self.lost}, doubled {self.doubled}; kills left behind: {landed}"
        )


@dataclass
class _Ledger:
    answered: dict[str, str] = field(default_factory=dict)  # msg_id -> corp
    unknown: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # msg_id -> corp, body
    refused: dict[str, str] = field(default_factory=dict)  # msg_id -> RetCode
    bad: list[str] = field(default_factory=list)
    requests: int = 0
    resent: int = 0

    def record(self, msg_id: str, corp: str, body: bytes, reply: Reply | BaseException) -> None:
        if isinstance(reply, BaseException):
            self.unknown[msg_id] = (corp, body)
        elif reply.ret_code == "0000":
            self.unknown.pop(msg_id, None)
            self.answered[msg_id] = corp
        elif reply.ret_code in REFUSALS and msg_id not in self.answered:
            self.unknown.pop(msg_id, None)
            self.refused[msg_id] = reply.ret_code
        else:
            self.bad.append(f"{msg_id}: {reply.ret_code} {reply.ret_msg}")


class CrashRun:
    """One seeded run; ``await run()`` returns its Figures or raises AssertionError."""

    def __init__(self, tmp: Path, pki: DevPki, broker: Broker, plan: Plan, *,
                 dsn: str = "", workers: int = 1, code_root: Path | None = None,
                 log: Callable[[str], None] = print) -> None:  # fmt: skip
        self.tmp, self.pki, self.broker, self.plan = tmp, pki, broker, plan
        self.clock = BizClock(business_start())
        self.ledger = _Ledger()
        self.log = log
        self.nodes: dict[str, Daemon] = {}
        for letter in plan.nodes:
            settings = NodeSettings(
                letter=letter,
                backend=plan.backend,
                dsn=dsn,
                shared=len(plan.nodes) > 1,
                beps_max_wait=plan.beps_max_wait,
                workers=workers,
                code_root=code_root,
            )
            self.nodes[letter] = Daemon(tmp, pki, broker.url, self.clock, settings)
        self.dsn = dsn
        self.record = tmp / "clearing.jsonl"
        self.landed: dict[str, int] = {}
        self._counter = 0

    # -- load -------------------------------------------------------------------------
    def _payment(self, rng: random.Random, payer: str, n: int, rnd: Round) -> Payment:
        draw = rng.random()
        if draw < rnd.beps_share:
            code, amount = rng.choice(OTHER), rng.choice(BEPS_AMOUNTS)
        elif draw < rnd.beps_share + rnd.hvps_share:
            code, amount = rng.choice(OTHER), HVPS_AMOUNT
        else:
            code, amount = rng.choice(INTRA), rng.choice((*BEPS_AMOUNTS, HVPS_AMOUNT))
        return Payment(payer, "付款人", f"6217{n:012d}", "收款人", code, Decimal(amount))

    def _signed(
        self, c: ErpClient, payer: str, rng: random.Random, rnd: Round
    ) -> tuple[str, bytes]:
        self._counter += 1
        msg_id = f"K{self.plan.seed}-{self._counter:06d}"
        p = self._payment(rng, payer, self._counter, rnd)
        root = build_request(
            "PAY", c.corp_id, c.oper_id, msg_id, self.clock.now(), transfer_body(p)
        )
        return msg_id, c.sign(root)

    async def _sender(self, c: ErpClient, payer: str, rnd: Round, rng: random.Random,
                      stop: asyncio.Event, wrote_big: asyncio.Event,
                      first_reply: asyncio.Event) -> None:  # fmt: skip
        while not stop.is_set():
            batch = [self._signed(c, payer, rng, rnd) for _ in range(rng.randint(*rnd.batch))]
            self.ledger.requests += len(batch)
            for m, body in batch:
                self.ledger.unknown[m] = (c.corp_id, body)
            futs = [asyncio.ensure_future(c.send_raw(body, m)) for m, body in batch]
            await asyncio.sleep(0)  # let the writes start
            if len(batch) >= 16:
                wrote_big.set()
            await asyncio.wait(futs, return_when=asyncio.FIRST_COMPLETED)
            if len(batch) >= 16:
                first_reply.set()
            results = await asyncio.gather(*futs, return_exceptions=True)
            for (m, body), r in zip(batch, results, strict=True):
                self.ledger.record(m, c.corp_id, body, r)
            if any(isinstance(r, BaseException) for r in results):
                return  # the connection died with its node
            await asyncio.sleep(rng.uniform(0.0, 0.02))

    @contextlib.asynccontextmanager
    async def _clients(self) -> AsyncIterator[list[tuple[ErpClient, str]]]:
        """One client per (live node, corporate): load spread over every node."""
        clients = []
        try:
            for d in self.nodes.values():
                for corp, payer in CORPS:
                    clients.append((await d.client(corp), payer))
            yield clients
        finally:
            for c, _ in clients:
                await close_quietly(c)

    async def _round(self, index: int, rnd: Round | None) -> None:
        last = rnd is None
        shape = rnd or Round("tail", "A", 1.0, (1, 8), 0.5, 0.2, 0.0, 0.0)
        stop, wrote_big, first_reply = asyncio.Event(), asyncio.Event(), asyncio.Event()
        async with self._clients() as clients:
            rngs = [random.Random(f"{self.plan.seed}-{index}-{k}") for k in range(len(clients))]
            tasks = [
                asyncio.create_task(
                    self._sender(c, payer, shape, rng, stop, wrote_big, first_reply)
                )
                for (c, payer), rng in zip(clients, rngs, strict=True)
            ]
            try:
                await asyncio.sleep(shape.load_s)
                if last:
                    stop.set()
                else:
                    await self._kill(shape, wrote_big, first_reply)
                    stop.set()
                await asyncio.wait_for(
                    asyncio.gather(*tasks, return_exceptions=True), ROUND_TIMEOUT
                )
            finally:
                stop.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        if not last:
            await self._landed()
            await self.nodes[shape.victim].start()
            await self._resend_unknown(index)

    async def _kill(self, rnd: Round, wrote_big: asyncio.Event, first_reply: asyncio.Event) -> None:
        victim = self.nodes[rnd.victim]
        if rnd.shape == "frame":
            wrote_big.clear()
            await asyncio.wait_for(wrote_big.wait(), 30)
            await asyncio.sleep(rnd.jitter_s)
        elif rnd.shape == "journal":
            first_reply.clear()
            await asyncio.wait_for(first_reply.wait(), 30)
        elif rnd.shape == "package":
            await asyncio.sleep(min(self.plan.beps_max_wait * 0.6, 1.2))  # inside max_wait
        elif rnd.shape == "publish":
            self.broker.proc.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(rnd.stall_s)
                victim.kill()
            finally:
                self.broker.proc.send_signal(signal.SIGCONT)
            return
        victim.kill()

    async def _resend_unknown(self, index: int) -> None:
        """An ERP that got no answer sends the same bytes again (corplink.md §7)."""
        rng = random.Random(f"resend-{self.plan.seed}-{index}")
        picks = sorted(m for m in self.ledger.unknown if rng.random() < self.plan.resend_share)
        if not picks:
            return
        node = self.nodes[rng.choice(self.plan.nodes)]
        by_corp: dict[str, list[str]] = defaultdict(list)
        for m in picks:
            by_corp[self.ledger.unknown[m][0]].append(m)
        for corp, msgs in by_corp.items():
            c = await node.client(corp)
            try:
                bodies = [(m, self.ledger.unknown[m][1]) for m in msgs]
                async with asyncio.timeout(ROUND_TIMEOUT):
                    results = await asyncio.gather(
                        *(c.send_raw(body, m) for m, body in bodies), return_exceptions=True
                    )
                for (m, body), r in zip(bodies, results, strict=True):
                    self.ledger.record(m, corp, body, r)
                self.ledger.resent += len(bodies)
            finally:
                await close_quietly(c)

    async def _landed(self) -> None:
        """What the kill left behind, read from the journal while the node is down:
        evidence that the shapes reach the stages they aim at."""
        if self.plan.backend == "postgres":
            conn = await asyncpg.connect(self.dsn)
            try:
                row = tuple(await conn.fetchrow(_LANDED_SQL) or ())
            finally:
                await conn.close()
        else:
            row = await asyncio.to_thread(_sqlite_landed, self.nodes["A"].journal_path)
        items = await self._journal()
        journaled = {i.msg_id for i in items}
        row = (*row, sum(1 for m in self.ledger.unknown if m in journaled))
        for name, n in zip(LANDED, row, strict=True):
            self.landed[name] = self.landed.get(name, 0) + int(n)

    # -- drain and verdict ------------------------------------------------------------------
    async def _journal(self) -> list[JournalItem]:
        if self.plan.backend == "postgres":
            return await read_pg_items(self.dsn)
        return await asyncio.to_thread(read_sqlite_items, self.nodes["A"].journal_path)

    async def _drain(self) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            items = await self._journal()
            open_ = [i for i in items if i.state not in FINAL]
            if not open_:
                return
            if time.monotonic() > deadline:
                sample = ", ".join(f"{i.msg_id}:{i.state}" for i in open_[:10])
                raise AssertionError(
                    f"{self.plan.describe()}: {len(open_)} journaled items not final after"
                    f" {DRAIN_TIMEOUT:.0f} s ({sample})"
                )
            await asyncio.sleep(0.3)

    async def run(self) -> Figures:
        plan = self.plan
        self.log(plan.describe())
        sim_kw = {
            "receipt_delay": plan.receipt_delay,
            "settle_delay": plan.settle_delay,
            "reject_ratio": plan.reject_ratio,
            "seed": plan.seed,
        }
        async with running_clearing_sim(self.pki, self.broker.url, self.record, **sim_kw):
            try:
                for d in self.nodes.values():
                    await d.start()
                for i, rnd in enumerate(plan.rounds):
                    await self._round(i, rnd)
                await self._round(len(plan.rounds), None)
                await self._drain()
            except BaseException:
                self.log(f"{plan.describe()}: FAILED; node logs under {self.tmp}")
                raise
            finally:
                for d in self.nodes.values():
                    d.stop()
        items = await self._journal()  # after the drain, what the journal holds for good
        figures = verdict(plan, self.ledger, items, read_record(self.record), self.landed)
        self.log(figures.line())
        return figures


def verdict(plan: Plan, ledger: _Ledger, items: Iterable[JournalItem], seen: ClearingView,
            landed: dict[str, int] | None = None) -> Figures:  # fmt: skip
    """Compare answered / journaled / received; raise AssertionError naming the seed."""
    items = list(items)
    who = plan.describe()
    problems: list[str] = []
    if ledger.bad:
        problems.append(f"unexpected RetCodes: {ledger.bad[:5]}")
    journal_msgs = {i.msg_id for i in items}
    journal_e2e = {i.end_to_end_id: i for i in items}
    lost = set(ledger.answered) - journal_msgs
    lost |= {m for m in ledger.answered if m not in seen.by_e2e}
    if lost:
        problems.append(f"answered 0000 but lost: {sorted(lost)[:10]}")
    doubled = {e: sorted(ms) for e, ms in seen.by_e2e.items() if len(ms) > 1}
    if doubled:
        problems.append(f"EndToEndIds under two MsgIds: {dict(list(doubled.items())[:5])}")
    open_ = [f"{i.msg_id}:{i.state}" for i in items if i.state not in FINAL]
    if open_:
        problems.append(f"journaled items not final: {open_[:10]}")
    invented = journal_msgs - set(ledger.answered) - set(ledger.unknown)
    if invented:
        problems.append(f"journaled but never sent, or refused: {sorted(invented)[:10]}")
    unjournaled = set(seen.by_e2e) - set(journal_e2e)
    if unjournaled:
        problems.append(
            f"clearing received payments not in the journal: {sorted(unjournaled)[:10]}"
        )
    unsent = set(journal_e2e) - set(seen.by_e2e)
    if unsent:
        problems.append(f"journaled payments never sent: {sorted(unsent)[:10]}")
    mismatch = [
        e for e, ms in seen.by_e2e.items()
        if e in journal_e2e and len(ms) == 1 and journal_e2e[e].out_msg_id not in ms
    ]  # fmt: skip
    if mismatch:
        problems.append(f"journal and clearing disagree on the MsgId of {mismatch[:10]}")
    if problems:
        raise AssertionError(f"{who}: " + "; ".join(problems))
    return Figures(
        seed=plan.seed,
        backend=plan.backend,
        kills=len(plan.rounds),
        requests=ledger.requests,
        answered=len(ledger.answered),
        unanswered=len(ledger.unknown),
        refused=len(ledger.refused),
        resent=ledger.resent,
        journaled=len(items),
        clearing_messages=seen.messages,
        clearing_resends=seen.resends,
        lost=len(lost),
        doubled=len(doubled),
        landed=tuple((k, (landed or {}).get(k, 0)) for k in LANDED),
    )


async def fresh_pg_database(pg: PgServer, name: str) -> str:
    """CREATE DATABASE ``name`` on the private server; its DSN."""
    return await create_database(pg, name)
