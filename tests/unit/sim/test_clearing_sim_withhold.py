"""The clearing simulator's load-test hooks: withheld answers, counters in a file.

A benchmark withholds every answer for a while and then releases them all
at once (a burst of receipts and statuses for the gateway to apply), and
reads the simulator's counters from a JSON file since the simulator runs as
a process of its own there.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.clearing.documents import parse_pacs002, parse_receipt
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey
from gateway.testing import Broker
from tests.unit.sim.test_clearing_sim import (
    WAIT,
    gateway_side,
    running,
    signed_message,
    sim_config,
)


async def _until(cond: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not cond():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"never: {what}") from None


async def test_withheld_answers_go_out_only_on_release(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        sim.toggle_withhold()
        assert sim.withholding
        ids = []
        for seq in (71, 72):
            msg_id, payload = signed_message(gateway_key, seq)
            ids.append(msg_id)
            await gw.send(payload)
        # each payment's receipt is decided, signed and then held back
        await _until(lambda: sim.holding == 2, "two receipts held")
        assert gw.inbox.empty()
        assert sim.stats["receipts"] == 0

        sim.toggle_withhold()  # release: everything held goes out, then the statuses
        assert not sim.withholding
        answers = [await gw.next() for _ in range(4)]
        receipts = [a for a in answers if a.env.msg_tp == "ccms.990"]
        statuses = [a for a in answers if a.env.msg_tp == "ccms.900"]
        assert sorted(parse_receipt(a.env.document).orgnl_msg_id for a in receipts) == ids
        assert sorted(parse_pacs002(a.env.document)[0] for a in statuses) == ids
        assert sim.stats["withheld"] == 2
        assert sim.holding == 0


async def test_scheduled_withholding_and_stats_file(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, tmp_path: Path
) -> None:
    stats = tmp_path / "stats.json"
    config = sim_config(
        broker,
        system_key,
        gateway_key,
        withhold_after=0.0,
        withhold_for=3600.0,
        stats_path=stats,
        stats_every=0.05,
    )
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        await _until(lambda: sim.withholding, "withholding by schedule")
        _, payload = signed_message(gateway_key, 81)
        await gw.send(payload)
        await gw.send(payload)  # a re-send: the same answers, counted as a duplicate
        await _until(lambda: sim.holding == 2, "receipt and its replay held")
        await _until(
            lambda: stats.exists() and json.loads(stats.read_text())["holding"] == 2, "stats"
        )
        seen = json.loads(stats.read_text())
        assert seen["withholding"] is True
        assert seen["received"] == 2
        assert seen["duplicates"] == 1
        sim.release()
        assert {(await gw.next()).env.msg_tp for _ in range(2)} >= {"ccms.990"}
    final = json.loads(stats.read_text())  # written once more on exit
    assert final["withholding"] is False
    assert final["duplicates"] == 1
    assert final["late_duplicates"] == 0
    assert final["withheld"] >= 2


def test_cli_toggles_on_sigusr1_and_writes_stats(
    broker: Broker, dev_pki: DevPki, tmp_path: Path
) -> None:
    """The process a benchmark runs: SIGUSR1 toggles withholding, SIGTERM writes the stats."""
    stats = tmp_path / "stats.json"
    argv = [sys.executable, "-m", "gateway.cli.sim", "clearing", "--broker", broker.url]
    argv += ["--key", str(dev_pki.clearing_system_key), "--cert", str(dev_pki.clearing_system_cert)]
    argv += ["--gateway-cert", str(dev_pki.clearing_cert), "--client-id", "sim-withhold"]
    argv += ["--stats-file", str(stats), "--stats-every", "0.05"]
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_file(stats, lambda d: d["withholding"] is False, proc)
        proc.send_signal(signal.SIGUSR1)
        _wait_file(stats, lambda d: d["withholding"] is True, proc)
        proc.send_signal(signal.SIGUSR1)
        _wait_file(stats, lambda d: d["withholding"] is False, proc)
    finally:
        proc.terminate()
        err = proc.communicate(timeout=WAIT)[1]
    assert proc.returncode == 0, err
    assert json.loads(stats.read_text())["received"] == 0


def _wait_file(
    path: Path, cond: Callable[[dict[str, Any]], bool], proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the simulator exited"
        with contextlib.suppress(OSError, ValueError):
            if cond(json.loads(path.read_text())):
                return
        time.sleep(0.02)
    raise AssertionError(f"{path} never showed the expected state")
