"""Bank drafts through the process model (docs/architecture.md §1): the real ``gatewayd``
subprocess with the shipped ``workers.fronts = 2`` answers DRAFT, STATUS and DRAFTRFND
exactly as the single-process daemon does (docs/bank-drafts.md §2).

The fronts proxy DRAFT and DRAFTRFND to the core, where the register is; the same
exchange is run against an in-process daemon without fronts and against the subprocess,
on one private copy of the test PKI (so one draft key, hence one Code), and the two
transcripts must be equal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.net.tls import client_context
from gateway.ops.admin import call
from gateway.sim.erp import ErpClient
from gateway.testing import Broker
from tests.integration.drafts_support import (
    PASSPHRASE,
    PASSPHRASE_ENV,
    application,
    drafts_config,
    ids,
    private_pki,
)
from tests.integration.harness import (
    Erp,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
)

REPO = Path(__file__).resolve().parents[2]
FRIDAY_10 = recent_friday_10()
WAIT = 30.0


async def transcript(client: Callable[[str, str], Any], now: Callable[[], datetime]) -> list[Any]:
    """One applicant's exchange, reduced to what it observes (no instants)."""
    notes = ids("N")
    out: list[Any] = []
    erp: ErpClient = await client("C100000001", "op01")
    try:
        r = await erp.apply_draft("FD-1", now(), application("1234.50"))
        assert r.ret_code == "0000", r.ret_msg
        assert r.draft is not None
        d = r.draft
        out.append(("DRAFT", r.ret_code, r.dup, d.draft_no, d.state, d.amount, d.issue_date,
                    d.expiry_date, d.code))  # fmt: skip
        again = await erp.apply_draft("FD-1", now(), application("1234.50"))
        assert again.draft is not None
        out.append(("replay", again.ret_code, again.dup, again.draft.draft_no, again.draft.code))
        other = await erp.apply_draft("FD-1", now(), application("1.00"))
        out.append(("other body", other.ret_code))
        usd = await erp.apply_draft("FD-2", now(), application("1.00", ccy="USD"))
        out.append(("USD", usd.ret_code))

        issued = await erp.wait_draft_state(notes, now, d.draft_no, "ISSUED", timeout=WAIT)
        assert issued is not None, "no ISSUED notification"
        out.append(("NTFY", issued.kind, issued.orig_msg_id, issued.draft_no, issued.state))
        status = await erp.status("FS-1", now(), "FD-1")
        assert status.draft is not None
        out.append(("STATUS", status.ret_code, status.draft.state, status.draft.code,
                    [s.state for s in status.draft.history]))  # fmt: skip

        refund = await erp.refund_draft("FR-1", now(), d.draft_no, "不再需要")
        assert refund.draft is not None, refund.ret_msg
        out.append(("DRAFTRFND", refund.ret_code, refund.draft.state))
        done = await erp.wait_draft_state(notes, now, d.draft_no, "REFUNDED", timeout=WAIT)
        assert done is not None, "no REFUNDED notification"
        out.append(("NTFY", done.state))
        status = await erp.status("FS-2", now(), "FD-1")
        assert status.draft is not None
        out.append(("STATUS", status.draft.state, [s.state for s in status.draft.history]))
        twice = await erp.refund_draft("FR-2", now(), d.draft_no, "again")
        out.append(("DRAFTRFND again", twice.ret_code, twice.ret_msg))
    finally:
        await erp.close()

    filecert: ErpClient = await client("C100000001", "op02")
    try:
        r = await filecert.apply_draft("FF-1", now(), application("10.00"))
        out.append(("file certificate DRAFT", r.ret_code, r.ret_msg))
        r = await filecert.refund_draft("FF-2", now(), d.draft_no, "x")
        out.append(("file certificate DRAFTRFND", r.ret_code, r.ret_msg))
    finally:
        await filecert.close()
    return out


def overlay(state: Path, pki: DevPki, broker: Broker, start: datetime) -> str:
    """The operator's overlay: the shipped defaults (``workers.fronts = 2``) otherwise."""
    return (
        f'environment = "test"\nstate_dir = {json.dumps(str(state))}\n'
        f'[clock]\nstart = "{start.isoformat()}"\nrate = 1.0\n'
        f"[keys]\ndev_pki = false\ndir = {json.dumps(str(pki.dir))}\n"
        f'passphrase_env = "{PASSPHRASE_ENV}"\n'
        f'[clearing]\nurl = "{broker.url}"\nreceipt_timeout = 5.0\nclient_id = "gw-fronts"\n'
        '[observability]\nmetrics_port = 0\nlog_level = "warning"\n'
        '[[listeners]]\nname = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n'
    )


@contextlib.asynccontextmanager
async def gatewayd(tmp: Path, pki: DevPki, broker: Broker) -> AsyncIterator[tuple[int, Path]]:
    """``gatewayd`` as a subprocess in its own process group: (TLS port, admin socket)."""
    state = tmp / "state"
    tmp.mkdir(parents=True, exist_ok=True)
    conf, ports, log = tmp / "gw.toml", tmp / "ports.json", tmp / "gatewayd.log"
    conf.write_text(overlay(state, pki, broker, FRIDAY_10), encoding="utf-8")
    env = os.environ | {PASSPHRASE_ENV: PASSPHRASE, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.gatewayd", "--config", str(conf),
             "--ports-file", str(ports)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ports.exists():
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "gatewayd not ready"
            await asyncio.sleep(0.05)
        bound = json.loads(ports.read_text())
        yield bound["listeners"]["tls"][1], state / "admin.sock"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def subprocess_clients(pki: DevPki, port: int) -> Callable[[str, str], Any]:
    certs = x509.load_pem_x509_certificates(pki.response_cert.read_bytes())

    async def client(corp_id: str, oper_id: str) -> ErpClient:
        kp, cp = pki.client(corp_id, oper_id)
        c = ErpClient(
            "127.0.0.1",
            port,
            corp_id=corp_id,
            oper_id=oper_id,
            signer=load_signing_key(kp, cp),
            gateway_certs=certs,
            ssl_context=client_context(pki.server_ca, cp, kp),
        )
        await c.connect()
        return c

    return client


async def test_draft_status_and_refund_through_fronts_answer_as_one_process(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, monkeypatch: Any
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    pki = private_pki(dev_pki, tmp_path / "pki")

    # one process: the in-process daemon without fronts
    cfg = drafts_config(tmp_path / "single", pki, broker, workers={"processes": 0, "fronts": 0})
    clock = BusinessClock(FRIDAY_10)
    async with (
        running_clearing_sim(pki, broker.url, tmp_path / "rec-single.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):
        assert gw._fronts is None or not gw._fronts.pids()
        single = await transcript(lambda c, o: Erp(gw, pki).client(c, o), clock.now)

    # the real gatewayd with the shipped two fronts
    sub_clock = BusinessClock(FRIDAY_10)
    async with (
        running_clearing_sim(pki, broker.url, tmp_path / "rec-fronts.jsonl"),
        gatewayd(tmp_path / "fronts", pki, broker) as (port, admin),
    ):
        status = await call(admin, {"op": "status"})
        assert len(status["fronts"]) == 2, status
        fronted = await transcript(subprocess_clients(pki, port), sub_clock.now)

    assert fronted == single
    assert single[0][1:5] == ("0000", False, single[0][3], "PENDING")
    assert [step[0] for step in single] == [
        "DRAFT", "replay", "other body", "USD", "NTFY", "STATUS", "DRAFTRFND", "NTFY",
        "STATUS", "DRAFTRFND again", "file certificate DRAFT", "file certificate DRAFTRFND",
    ]  # fmt: skip
    assert single[1][1:3] == ("0000", True) and single[2][1] == "3001" and single[3][1] == "4004"
    assert single[8][1:] == ("REFUNDED", ["PENDING", "ISSUED", "REFUNDING", "REFUNDED"])
    assert single[9][1] == "1004" and "REFUNDED" in single[9][2]
    assert single[10][1] == single[11][1] == "2006"
