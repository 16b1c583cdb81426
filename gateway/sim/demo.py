"""``gateway-sim demo``: the real daemon switching signed payments, end to end.

It starts a private mosquitto on a free port, runs the real ``gatewayd`` as a
subprocess on its embedded defaults (plus an overlay that points it at that
broker, picks free ports and sets a business clock at 10:00 on a working day
so every engine is open), plays the clearing systems with the clearing
simulator (BEPS netting rounds every 3 s, then settlement notices) and the
core banking system with the core simulator, drives a few corporate ERP
clients, and ends with a summary per engine: sent, settled, rejected with
reasons.  Its second half (:mod:`gateway.sim.demo_tour`) is correspondence:
BAL, an inquiry and its reply, incoming credits (one matching, one into
suspense with an automatic inquiry) and another bank's inquiry answered.
Before it, :mod:`gateway.sim.demo_fx` pays in foreign currency over the SWIFT
link, answered by the SWIFT simulator (the overlay switches ``fx.enabled`` on),
and :mod:`gateway.sim.demo_review` shows screening against the demo list and
the four-eyes review (复核) of the payments it holds.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cryptography import x509

from gateway.clock import SHANGHAI, BusinessClock
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.net.tls import client_context
from gateway.paths import data_root
from gateway.routing.calendar_files import load_calendars
from gateway.sim.clearing import ClearingSimConfig, ClearingSimulator
from gateway.sim.core import CoreSimConfig, CoreSimulator, demo_accounts
from gateway.sim.demo_console import log_to_console, state_hints, stats_lines
from gateway.sim.demo_drafts import AGENT_BANK, drafts_day_one, drafts_day_two
from gateway.sim.demo_fx import FxDemo, fx_tour
from gateway.sim.demo_review import review_tour
from gateway.sim.demo_tour import correspondence_tour
from gateway.sim.erp import ErpClient, Payment, Reply, build_request, transfer_body
from gateway.sim.swift import SwiftSimConfig, SwiftSimulator
from gateway.testing import start_broker

FINAL = ("SETTLED", "REJECTED")


def _say(msg: str) -> None:
    print(msg, flush=True)


DEMO_PASSPHRASE = "demo keys passphrase (test environment only)"
"""Seals the demo's draft keys (docs/bank-drafts.md §5); the demo's other keys are clear."""


def next_working_day_start(start: datetime) -> datetime:
    """00:05 Asia/Shanghai of the working day after ``start`` (the settlement pass)."""
    cal = load_calendars(data_root() / "routing" / "calendar")
    d = cal.next_working_day(start.astimezone(SHANGHAI).date())
    return datetime(d.year, d.month, d.day, 0, 5, tzinfo=SHANGHAI)


def business_start(now: datetime | None = None) -> datetime:
    """10:00 Asia/Shanghai on today, or the next working day by the shipped calendars."""
    cal = load_calendars(data_root() / "routing" / "calendar")
    d = (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI).date()
    while not cal.is_working_day(d):
        d += timedelta(days=1)
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Planned:
    corp_id: str
    oper_id: str
    msg_id: str
    payment: Payment
    note: str


def plan(run: str) -> list[Planned]:
    """A morning's payments across the three engines, with some that must be refused."""
    out: list[Planned] = []
    n = 0

    def add(corp: str, oper: str, payer: str, code: str, amount: str, note: str, **kw: str) -> None:
        nonlocal n
        n += 1
        out.append(
            Planned(
                corp,
                oper,
                f"{run}-{n:04d}",
                Payment(
                    payer_acct=payer,
                    payer_name="示范贸易有限公司",
                    payee_acct=f"62170000{n:08d}",
                    payee_name="收款单位" + str(n),
                    payee_bank_code=code,
                    amount=Decimal(amount),
                    purpose="货款",
                    **kw,
                ),
                note,
            )
        )

    a1, a2, b1 = "6222000000000001", "6222000000000002", "6222000000000101"
    for i in range(8):  # intra-bank: our own branches
        add(
            "C100000001",
            "op01",
            a1,
            ["103100000027", "103290000018", "100022"][i % 3],
            f"{1200 + i * 311}.50",
            "intra",
        )
    for i in range(6):  # HVPS: large, or urgent
        add(
            "C100000001",
            "op01",
            a2,
            ["102100099996", "104100000004", "105290036005"][i % 3],
            f"{50000 + i * 12345}.00",
            "hvps",
        )
    add("C100000002", "op01", b1, "308584000013", "8800.00", "hvps-urgent", priority="URGT")
    for i in range(24):  # BEPS: small credits, packaged per receiving participant
        add(
            "C100000002" if i % 2 else "C100000001",
            "op01",
            b1 if i % 2 else a1,
            ["102290000011", "104290003791", "105584000005", "301100000025"][i % 4],
            "49999.99" if i == 0 else f"{100 + i * 37}.{i:02d}",
            "beps",
        )
    add("C100000001", "op02", a1, "105100000017", "1000.00", "file-cert-small")
    # refusals the ERP must see with the right RetCode
    add("C100000001", "op02", a1, "105100000017", "50000.00", "file-cert-over-limit:2006")
    add("C100000001", "op01", a1, "999999999999", "10.00", "unknown-bank:4001")
    add("C100000001", "op01", a1, "12345", "10.00", "malformed-bank:4002")
    add("C100000001", "op01", a1, "102651020123", "10.00", "suspended-bank:4003")
    add(
        "C100000001", "op01", "6222999999999999", "104100000004", "10.00", "payer-not-enrolled:4006"
    )
    return out


async def _wait_ports(
    path: Path, proc: subprocess.Popen[bytes], timeout: float
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gatewayd exited with {proc.returncode} before it was ready")
        if path.exists():
            data: dict[str, object] = json.loads(path.read_text())
            return data
        await asyncio.sleep(0.1)
    raise RuntimeError("gatewayd was not ready in time")


async def run_demo(state: Path, *, reject_ratio: float, keep: bool) -> int:
    _say(f"demo: state folder {state}")
    broker = start_broker(state / "broker")
    _say(f"demo: mosquitto {broker.url} (a private broker on a free port)")
    start = business_start()
    overlay = state / "demo.toml"
    ports_file = state / "ports.json"
    log_path = state / "gatewayd.log"
    # the demo's review steps go over the admin socket as the user running the demo, who
    # must be in screening.review_group (docs/foreign-currency.md §5): that user's group
    review_group = grp.getgrgid(os.getgid()).gr_name

    def launch(clock_start: datetime) -> subprocess.Popen[bytes]:
        """The real gatewayd on the demo overlay, its business clock at ``clock_start``."""
        overlay.write_text(
            f'environment = "test"\nstate_dir = "{state / "gateway"}"\n'
            f'[clock]\nstart = "{clock_start.isoformat()}"\n'
            f'[clearing]\nurl = "{broker.url}"\nreceipt_timeout = 15.0\n'
            "[observability]\nmetrics_port = 0\n"
            "[engines.beps]\nmax_wait = 1.0\n"
            # foreign currency is off as shipped; the demo shows it (docs/foreign-currency.md),
            # screened against the fictional demo list (without lists it would be refused)
            "[fx]\nenabled = true\n"
            f'[screening]\nlists = ["{data_root() / "conf" / "screening" / "demo-list.csv"}"]\n'
            f'review_group = "{review_group}"\n'
            '[[listeners]]\nname = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n',
            encoding="utf-8",
        )
        ports_file.unlink(missing_ok=True)
        with log_path.open("ab") as log_fh:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli.gatewayd",
                    "--config",
                    str(overlay),
                    "--ports-file",
                    str(ports_file),
                ],
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, "GATEWAY_KEY_PASSPHRASE": DEMO_PASSPHRASE},
            )

    clock = BusinessClock(start)
    log_to_console(clock)
    proc = launch(start)
    sim_task: asyncio.Task[None] | None = None
    core_task: asyncio.Task[None] | None = None
    swift_task: asyncio.Task[None] | None = None
    try:
        ports = await _wait_ports(ports_file, proc, 60)
        listeners = ports["listeners"]
        assert isinstance(listeners, dict)  # noqa: S101
        host, port = listeners["tls"]
        metrics = ports["metrics"]
        assert isinstance(metrics, list)  # noqa: S101
        _say(
            f"demo: gatewayd pid {proc.pid} ready: CorpLink TLS {host}:{port}, "
            f"metrics http://{metrics[0]}:{metrics[1]}/metrics, log {log_path}"
        )
        _say(
            f"demo: business clock starts at {start.isoformat()}"
            " (the simulators' log lines below show business time)"
        )
        pki = DevPki.open(state / "gateway" / "pki")
        gw_clearing = x509.load_pem_x509_certificates(pki.clearing_cert.read_bytes())
        sim = ClearingSimulator(
            ClearingSimConfig(
                broker_url=broker.url,
                sign_key=load_signing_key(pki.clearing_system_key, pki.clearing_system_cert),
                gateway_certs=tuple(gw_clearing),
                reject_ratio=reject_ratio,
                receipt_delay=0.05,
                settle_delay=0.3,
                record_path=state / "clearing-record.jsonl",
                seed=7,
                netting=True,
                netting_interval=3.0,
                settle_delay_rounds=0.5,
                reply_delay=0.3,
            )
        )
        ready = asyncio.Event()
        sim_task = asyncio.create_task(sim.run(ready))
        await asyncio.wait_for(ready.wait(), 15)
        core = CoreSimulator(CoreSimConfig(broker_url=broker.url, accounts=demo_accounts()))
        core_ready = asyncio.Event()
        core_task = asyncio.create_task(core.run(core_ready))
        await asyncio.wait_for(core_ready.wait(), 15)
        # the bank's SWIFT interface; the dev PKI has no SWIFT key, the clearing
        # system's stands in (the gateway pins it as swift_peer too)
        swift = SwiftSimulator(
            SwiftSimConfig(
                broker_url=broker.url,
                sign_key=load_signing_key(pki.clearing_system_key, pki.clearing_system_cert),
                gateway_certs=tuple(gw_clearing),
                settle_delay=0.3,
                record_path=state / "swift-record.jsonl",
                seed=7,
            )
        )
        swift_ready = asyncio.Event()
        swift_task = asyncio.create_task(swift.run(swift_ready))
        await asyncio.wait_for(swift_ready.wait(), 15)
        _say(
            "demo: clearing simulator subscribed (HVPS, BEPS with netting rounds every 3 s,"
            " intra-bank clearing centre); core banking simulator answering core/req;"
            " SWIFT simulator answering swift/out"
        )

        gw_certs = x509.load_pem_x509_certificates(pki.response_cert.read_bytes())
        tls = client_context(pki.server_ca)
        clients: dict[tuple[str, str], ErpClient] = {}
        planned = plan(f"D{int(time.time()) % 100000:05d}")
        for p in planned:
            key = (p.corp_id, p.oper_id)
            if key not in clients:
                kp, cp = pki.client(*key)
                ctx = client_context(pki.server_ca, cp, kp)
                c = ErpClient(
                    host,
                    int(port),
                    corp_id=p.corp_id,
                    oper_id=p.oper_id,
                    signer=load_signing_key(kp, cp),
                    gateway_certs=gw_certs,
                    ssl_context=ctx,
                )
                await c.connect()
                clients[key] = c
        del tls
        _say(
            f"demo: {len(clients)} ERP clients connected over mutual TLS; "
            f"sending {len(planned)} signed PAYs, pipelined"
        )
        sent_at = clock.now()  # one SendTime, so a resend below is the very same request
        replies: list[Reply] = list(
            await asyncio.gather(
                *(
                    clients[(p.corp_id, p.oper_id)].pay(p.msg_id, sent_at, p.payment)
                    for p in planned
                )
            )
        )
        accepted = [(p, r) for p, r in zip(planned, replies, strict=True) if r.ret_code == "0000"]
        refused = [(p, r) for p, r in zip(planned, replies, strict=True) if r.ret_code != "0000"]
        _say(f"demo: {len(accepted)} accepted (0000, durably journaled), {len(refused)} refused:")
        for p, r in refused:
            _say(f"    {p.msg_id} {p.note:28s} -> {r.ret_code} {r.ret_msg}")
        # idempotency, as an ERP that lost a response would see it
        c1 = clients[("C100000001", "op01")]
        first = next(p for p, _ in accepted if p.corp_id == "C100000001" and p.oper_id == "op01")
        again = await c1.pay(first.msg_id, sent_at, first.payment)
        _say(
            f"demo: resend of {first.msg_id}: {again.ret_code} Dup={str(again.dup).lower()} "
            f"GwRef={again.gw_ref} (no second payment)"
        )
        changed = Payment(**{**first.payment.__dict__, "amount": first.payment.amount + 1})
        other = await c1.request("PAY", first.msg_id, clock.now(), transfer_body(changed))
        _say(f"demo: same MsgId, different amount: {other.ret_code} {other.ret_msg}")
        bad = build_request(
            "PAY", "C100000001", "op01", "TAMPERED-1", clock.now(), transfer_body(first.payment)
        )
        signed = c1.sign(bad).replace(b"<PayeeAcct>", b"<PayeeAcct>9", 1)
        tampered = await c1.send_raw(signed, "TAMPERED-1")
        _say(f"demo: a payment altered after signing: {tampered.ret_code} {tampered.ret_msg}")

        # follow every accepted payment to a final state through STATUS, as an ERP would
        deadline = time.monotonic() + 90
        final: dict[str, Reply] = {}
        q = 0
        last = ""
        while time.monotonic() < deadline:
            todo = [p for p, _ in accepted if p.msg_id not in final]
            if not todo:
                break
            states: Counter[str] = Counter()
            for p in todo:
                q += 1
                r = await clients[(p.corp_id, p.oper_id)].status(f"Q{q:07d}", clock.now(), p.msg_id)
                states[r.state or "?"] += 1
                if r.state in FINAL:
                    final[p.msg_id] = r
            line = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
            if line != last:
                _say(f"demo: waiting for clearing: {len(final)}/{len(accepted)} final; now {line}")
                last = line
            await asyncio.sleep(0.5)

        async def client_for(corp_id: str, oper_id: str) -> ErpClient:
            if (corp_id, oper_id) not in clients:
                kp, cp = pki.client(corp_id, oper_id)
                c = ErpClient(
                    host,
                    int(port),
                    corp_id=corp_id,
                    oper_id=oper_id,
                    signer=load_signing_key(kp, cp),
                    gateway_certs=gw_certs,
                    ssl_context=client_context(pki.server_ca, cp, kp),
                )
                await c.connect()
                clients[(corp_id, oper_id)] = c
            return clients[(corp_id, oper_id)]

        settled_c1 = [
            r
            for p, r in accepted
            if p.corp_id == "C100000001"
            and p.oper_id == "op01"
            and final.get(p.msg_id) is not None
            and final[p.msg_id].state == "SETTLED"
        ]
        hvps = [r for r in settled_c1 if r.engine == "HVPS"] or settled_c1
        run = planned[0].msg_id.split("-")[0]
        fx_demo = FxDemo(client_for, clock, swift, run, overlay)
        fx = await fx_tour(fx_demo)
        reviewed = await review_tour(fx_demo, fx)
        tour_failures = await correspondence_tour(
            client_for, clock, sim, hvps[0], settled_c1[-1], run
        )
        drafts = await drafts_day_one(client_for, clock, sim, run)
        for c in clients.values():
            await c.close()
        clients.clear()

        # the next working day: gatewayd restarts at 00:05 and settles the paid draft
        day_two = next_working_day_start(start)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        _say("")
        _say(f"demo: gatewayd stopped; restarting at {day_two.isoformat()} (the next working day)")
        proc = launch(day_two)
        clock = BusinessClock(day_two)
        log_to_console(clock)
        ports = await _wait_ports(ports_file, proc, 60)
        listeners = ports["listeners"]
        assert isinstance(listeners, dict)  # noqa: S101
        host, port = listeners["tls"]
        _say(f"demo: gatewayd pid {proc.pid} ready again: CorpLink TLS {host}:{port}")
        draft_failures = await drafts_day_two(client_for, clock, drafts)
        for c in clients.values():
            await c.close()

        by_engine: dict[str, Counter[str]] = defaultdict(Counter)
        reasons: dict[str, Counter[str]] = defaultdict(Counter)
        for p, r in accepted:
            fr = final.get(p.msg_id)
            eng = r.engine or "?"
            by_engine[eng]["sent"] += 1
            if fr is None:
                by_engine[eng]["not final"] += 1
            else:
                by_engine[eng][fr.state or "?"] += 1
                if fr.state == "REJECTED":
                    reasons[eng][fr.reason or "?"] += 1
        for _, fr in fx.sent:
            by_engine["SWIFT"]["sent"] += 1
            by_engine["SWIFT"]["not final" if fr is None else fr.state or "?"] += 1
            if fr is not None and fr.state == "REJECTED":
                reasons["SWIFT"][fr.reason or "?"] += 1
        _say("")
        _say("summary per engine (as the ERP clients saw it through STATUS):")
        _say(f"  {'engine':6s} {'sent':>5s} {'settled':>8s} {'rejected':>9s}  reasons")
        for eng in ("INTRA", "HVPS", "BEPS", "SWIFT"):
            n = by_engine.get(eng, Counter())
            why = "; ".join(f"{k} x{v}" for k, v in reasons[eng].items()) or "-"
            _say(f"  {eng:6s} {n['sent']:5d} {n['SETTLED']:8d} {n['REJECTED']:9d}  {why}")
        at_door = [r for _, r in refused] + fx.refused + [other, tampered]
        codes = sorted({r.ret_code for r in at_door})
        _say(f"  refused at the door: {len(at_door)} ({', '.join(codes)})")
        _say(f"  {reviewed.line()}")
        _say(
            f"  BEPS netting: {sim.stats['netting_rounds']} rounds reconciled and settled"
            f" ({sim.stats['accepted_for_netting']} items netted, NETTED -> SETTLED)"
        )
        _say(
            f"  bank drafts: 2 issued, 1 paid through agent bank {AGENT_BANK} (a second"
            " presentment refused PD) and settled next working day, 1 refunded"
        )
        for line in stats_lines(sim.stats, core.stats, swift.stats):
            _say(f"  {line}")
        missing = sum(c["not final"] for c in by_engine.values())
        if missing:
            _say(f"demo: {missing} payments did not reach a final state in time")
            return 1
        if tour_failures:
            _say(f"demo: {tour_failures} correspondence steps did not work out")
            return 1
        if fx.failures:
            _say(
                f"demo: {fx.failures} foreign-currency, screening or review steps did not work out"
            )
            return 1
        if draft_failures:
            _say(f"demo: {draft_failures} bank-draft steps did not work out")
            return 1
        _say("demo: every accepted payment is SETTLED or REJECTED with a reason")
        return 0
    finally:
        for task in (sim_task, core_task, swift_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()
        if not keep:
            shutil.rmtree(state, ignore_errors=True)
        else:
            journal = state / "gateway" / "journal.sqlite3"
            for line in state_hints(state, overlay, journal, log_path):
                _say(line)


def main_demo(state_dir: str | None, reject_ratio: float, keep: bool) -> int:
    state = Path(state_dir).resolve() if state_dir else Path(tempfile.mkdtemp(prefix="gw-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(run_demo(state, reject_ratio=reject_ratio, keep=keep or bool(state_dir)))
