"""Crash test: SIGKILL the real gatewayd mid-stream, restart it, and check the promise.

Every request answered 0000 reaches the clearing simulator, by EndToEndId,
under exactly one MsgId (a re-send under the same MsgId is allowed and
deduplicated there); nothing reaches it that was not sent; every answered
payment reaches a final state (corplink.md §5, clearing.md §1).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509

from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.net.tls import client_context
from gateway.sim.erp import ErpClient, Payment
from gateway.testing import Broker
from tests.integration.harness import recent_friday_10, running_clearing_sim

START = recent_friday_10()
CODES = ["103290000018", "104100000004", "102290000011", "105584000005", "100022"]


class Daemon:
    """gatewayd as a subprocess on a business clock that survives restarts."""

    def __init__(self, tmp: Path, pki: DevPki, broker: Broker) -> None:
        self.tmp = tmp
        self.pki = pki
        self.broker = broker
        self.t0 = time.time()
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = (tmp / "gatewayd.log").open("ab")

    def now(self) -> datetime:
        return START + timedelta(seconds=time.time() - self.t0)

    async def start(self) -> None:
        ports = self.tmp / "ports.json"
        ports.unlink(missing_ok=True)
        overlay = self.tmp / "gw.toml"
        overlay.write_text(
            f'environment = "test"\nstate_dir = "{self.tmp / "state"}"\n'
            f'[clock]\nstart = "{self.now().isoformat()}"\n'
            f'[keys]\ndev_pki = false\ndir = "{self.pki.dir}"\n'
            f'[clearing]\nurl = "{self.broker.url}"\nreceipt_timeout = 3.0\n'
            '[observability]\nmetrics_port = 0\nlog_level = "warning"\n'
            "[engines.beps]\nmax_wait = 0.3\n"
            "[workers]\nprocesses = 1\n"
            '[[listeners]]\nname = "tcp"\nport = 0\ntls = true\nclient_cert = "optional"\n',
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli.gatewayd",
                "--config",
                str(overlay),
                "--ports-file",
                str(ports),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not ports.exists():
            assert self.proc.poll() is None, "gatewayd died at start"
            assert time.monotonic() < deadline, "gatewayd not ready"
            await asyncio.sleep(0.05)
        self.port = json.loads(ports.read_text())["listeners"]["tcp"][1]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


async def _client(d: Daemon, corp: str, payer: str) -> ErpClient:
    kp, cp = d.pki.client(corp, "op01")
    c = ErpClient(
        "127.0.0.1",
        d.port,
        corp_id=corp,
        oper_id="op01",
        signer=load_signing_key(kp, cp),
        gateway_certs=x509.load_pem_x509_certificates(d.pki.response_cert.read_bytes()),
        ssl_context=client_context(d.pki.server_ca, cp, kp),
    )
    await c.connect()
    return c


async def run_crash_scenario(tmp: Path, pki: DevPki, broker: Broker, seed: int, kills: int) -> None:
    rng = random.Random(seed)
    rec = tmp / "clearing.jsonl"
    answered: dict[str, str] = {}  # msg_id -> corp
    unknown: set[str] = set()
    corps = [("C100000001", "6222000000000001"), ("C100000002", "6222000000000101")]
    d = Daemon(tmp, pki, broker)
    counter = 0
    async with running_clearing_sim(pki, broker.url, rec):
        await d.start()
        try:
            for round_no in range(kills + 1):
                clients = [await _client(d, corp, payer) for corp, payer in corps]
                stop_at = time.monotonic() + (rng.uniform(0.3, 1.5) if round_no < kills else 1.0)

                async def sender(
                    i: int, c: ErpClient, payer: str, stop_at: float = stop_at
                ) -> None:
                    nonlocal counter
                    while time.monotonic() < stop_at:
                        batch = []
                        for _ in range(rng.randint(1, 8)):
                            counter += 1
                            m = f"K{seed}-{counter:06d}"
                            p = Payment(
                                payer,
                                "付款人",
                                f"6217{counter:012d}",
                                "收款人",
                                rng.choice(CODES),
                                Decimal(rng.choice(["12.30", "49999.99", "88000.00"])),
                            )
                            unknown.add(m)
                            batch.append((m, asyncio.ensure_future(c.pay(m, d.now(), p))))
                        for m, fut in batch:
                            try:
                                r = await fut
                            except ConnectionError:
                                await asyncio.gather(*(f for _, f in batch), return_exceptions=True)
                                return
                            assert r.ret_code == "0000", (m, r.ret_code, r.ret_msg)
                            unknown.discard(m)
                            answered[m] = c.corp_id

                tasks = [
                    asyncio.create_task(sender(i, c, corps[i][1])) for i, c in enumerate(clients)
                ]
                if round_no < kills:
                    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
                    d.kill()  # mid-stream: requests in flight, packages open, publishes pending
                    await asyncio.gather(*tasks, return_exceptions=True)
                    for c in clients:
                        await c.close()
                    await d.start()
                else:
                    await asyncio.gather(*tasks)
                    for c in clients:
                        await c.close()
            # drain: every answered payment reaches a final state
            checkers = {corp: await _client(d, corp, payer) for corp, payer in corps}
            deadline = time.monotonic() + 90
            pending = set(answered)
            q = 0
            while pending and time.monotonic() < deadline:
                for m in list(pending)[:200]:
                    q += 1
                    r = await checkers[answered[m]].status(f"Q{seed}-{q}", d.now(), m)
                    if r.state in ("SETTLED", "REJECTED"):
                        pending.discard(m)
                await asyncio.sleep(0.2)
            for c in checkers.values():
                await c.close()
            assert not pending, f"seed {seed}: {len(pending)} answered payments not final"
        finally:
            d.stop()
    seen = [json.loads(x) for x in rec.read_text().splitlines() if x.strip()]
    msgids_by_e2e: dict[str, set[str]] = defaultdict(set)
    for r in seen:
        for e in r["end_to_end_ids"]:
            msgids_by_e2e[e].add(r["msg_id"])
    assert set(answered) <= set(msgids_by_e2e), f"seed {seed}: acknowledged payments lost"
    doubled = {e: m for e, m in msgids_by_e2e.items() if len(m) > 1}
    assert not doubled, f"seed {seed}: EndToEndIds under two MsgIds: {doubled}"
    assert set(msgids_by_e2e) <= set(answered) | unknown, f"seed {seed}: unknown payments sent"
    print(
        f"crash seed {seed}: kills {kills}, answered 0000 {len(answered)}, unanswered {len(unknown)},"
        f" clearing saw {len(msgids_by_e2e)} payments in {len(seen)} messages"
        f" ({sum(1 for r in seen if r['dup'])} re-sends), lost 0, doubled 0"
    )


@pytest.mark.parametrize("seed", [1, 2])
async def test_sigkill_mid_stream_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    pki_dir = Path(shutil.copytree(dev_pki.dir, tmp_path / "pki"))
    await run_crash_scenario(tmp_path, DevPki.open(pki_dir), broker, seed, kills=2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
async def test_sigkill_many_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    pki_dir = Path(shutil.copytree(dev_pki.dir, tmp_path / "pki"))
    await run_crash_scenario(tmp_path, DevPki.open(pki_dir), broker, seed, kills=3)
