"""What operations staff see: /metrics, /readyz, gatewayctl status/reload, SIGHUP, the demo."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.ops.metrics import REGISTRY
from gateway.sim.erp import Payment
from gateway.testing import Broker
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
)

FRIDAY_10 = recent_friday_10()


async def http_get(host: str, port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def sample(exposition: str, series: str) -> float:
    """The value of one series in a Prometheus text exposition (0 when absent)."""
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def payment(code: str = "104100000004", amount: str = "10.00") -> Payment:
    return Payment(
        "6222000000000001", "付款人", "6217000011112222", "收款人", code, Decimal(amount)
    )


async def test_metrics_and_readiness_follow_the_traffic(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "r.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):
        host, port = gw.bound.metrics  # type: ignore[misc]
        for _ in range(50):  # the link comes up right after start
            status, body = await http_get(host, port, "/readyz")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200, body
        status, body = await http_get(host, port, "/healthz")
        assert status == 200
        assert json.loads(body)["business_clock"].startswith(f"{FRIDAY_10:%Y-%m-%d}T10:0")
        _, before = await http_get(host, port, "/metrics")
        c = await Erp(gw, dev_pki).client()
        assert (await c.pay("M-1", clock.now(), payment())).ret_code == "0000"
        assert (await c.pay("M-2", clock.now(), payment("999999999999"))).ret_code == "4001"
        await c.close()
        _, text = await http_get(host, port, "/metrics")
        ok_pay = 'gateway_requests_total{ret_code="0000",trn_code="PAY"}'
        assert sample(text, ok_pay) == sample(before, ok_pay) + 1
        assert 'gateway_refusals_total{reason="bank_code_unknown",stage="business"}' in text
        assert "gateway_ack_latency_seconds_count" in text
        assert "gateway_clearing_link_up 1.0" in text
        assert "C100000001" not in text  # bounded labels only, never a CorpId
        # the broker goes away: readiness drops, and comes back with it
        broker.stop()
        for _ in range(100):
            status, _ = await http_get(host, port, "/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.1)
        assert status == 503
        broker.restart()
        for _ in range(200):
            status, _ = await http_get(host, port, "/readyz")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200


async def test_gatewayctl_status_and_a_refused_directory_reload(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    directory = tmp_path / "directory.csv"
    shutil.copy(Path(__file__).resolve().parents[2] / "routing" / "directory.csv", directory)
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(
        tmp_path / "gw", dev_pki, broker.url, {"routing": {"directory": str(directory)}}
    )
    async with running_gateway(cfg, clock) as gw:
        c = await Erp(gw, dev_pki).client()
        assert (await c.pay("G-1", clock.now(), payment())).ret_code == "0000"
        st = await call(cfg.admin_socket, {"op": "status"})
        assert st["ok"] is True
        assert st["lifecycle"] == "ready"
        assert sum(i["count"] for i in st["items"] if i["engine"] == "BEPS") == 1
        # a directory that drops most codes is refused and the old one kept (routing.md §2)
        lines = directory.read_text(encoding="utf-8").splitlines()
        directory.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
        refused = REGISTRY.get_sample_value("gateway_reloads_total", {"outcome": "refused"})
        answer = await call(cfg.admin_socket, {"op": "reload"})
        assert answer["ok"] is False
        assert "drop" in answer["reason"]
        assert (
            REGISTRY.get_sample_value("gateway_reloads_total", {"outcome": "refused"})
            == (refused or 0) + 1
        )
        assert (await c.pay("G-2", clock.now(), payment("105100000017"))).ret_code == "0000"
        # a directory that removes one bank: accepted, and the bank is gone at once
        directory.write_text(
            "\n".join(ln for ln in lines if not ln.startswith("308584000013")) + "\n",
            encoding="utf-8",
        )
        answer = await call(cfg.admin_socket, {"op": "reload"})
        assert answer["ok"] is True, answer
        assert (await c.pay("G-3", clock.now(), payment("308584000013"))).ret_code == "4001"
        await c.close()
        # the CLI prints the same status as JSON
        assert (
            await asyncio.to_thread(gatewayctl_main, ["--socket", str(cfg.admin_socket), "status"])
            == 0
        )


def test_sigterm_drains_and_exits_zero(tmp_path: Path, dev_pki: DevPki, broker: Broker) -> None:
    overlay = tmp_path / "gw.toml"
    overlay.write_text(
        f'environment = "test"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[keys]\ndev_pki = false\ndir = "{dev_pki.dir}"\n'
        f'[clearing]\nurl = "{broker.url}"\n[observability]\nmetrics_port = 0\n'
        '[[listeners]]\nname = "tcp"\nport = 0\ntls = false\nclient_cert = "none"\n',
        encoding="utf-8",
    )
    ports = tmp_path / "ports.json"
    log_path = tmp_path / "gatewayd.log"
    with log_path.open("wb") as log_fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli.gatewayd",
                "--config",
                str(overlay),
                "--ports-file",
                str(ports),
            ],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not ports.exists():
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)  # reload with nothing changed: stays up
        deadline = time.monotonic() + 30
        while b'"reloaded"' not in log_path.read_bytes():
            assert proc.poll() is None, "gatewayd died on SIGHUP"
            assert time.monotonic() < deadline, "no reload within 30 s of SIGHUP"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    out = log_path.read_text()
    events = [json.loads(x)["event"] for x in out.splitlines() if x.startswith("{")]
    assert "reloaded" in events
    assert "draining" in events
    assert events[-1] == "stopped"


def test_demo_runs_to_its_summary(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli.sim", "demo", "--state-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "summary per engine" in out.stdout
    for engine in ("INTRA", "HVPS", "BEPS"):
        assert f"  {engine}" in out.stdout
    assert "every accepted payment is SETTLED or REJECTED with a reason" in out.stdout
