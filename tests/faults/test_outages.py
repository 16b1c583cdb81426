"""Outages the gateway must live through without losing or doubling a payment
(corplink.md §5, clearing.md §1): the broker going away under load, and a full disk
under the journal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.sim.erp import ErpClient, Payment
from gateway.testing import Broker
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)

FRIDAY_10 = recent_friday_10()
CODES = ["103290000018", "104100000004", "102290000011", "105584000005"]


def pay(i: int, code: str | None = None) -> Payment:
    return Payment(
        "6222000000000001",
        "付款人",
        f"6217{i:012d}",
        "收款人",
        code or CODES[i % len(CODES)],
        Decimal(f"{10 + i % 90000}.00"),
    )


async def test_broker_outage_under_load_loses_nothing_and_resends_under_the_same_msgids(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    rec = tmp_path / "clearing.jsonl"
    cfg = gateway_config(
        tmp_path / "gw",
        dev_pki,
        broker.url,
        {"clearing": {"receipt_timeout": 2.0, "publish_timeout": 2.0}},
    )
    answered: list[str] = []
    async with running_clearing_sim(dev_pki, broker.url, rec), running_gateway(cfg, clock) as gw:
        c = await Erp(gw, dev_pki).client()
        stop = asyncio.Event()

        async def load() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                r = await c.pay(f"O-{i}", clock.now(), pay(i))
                assert r.ret_code == "0000", r.ret_msg  # the ERP side never notices
                answered.append(f"O-{i}")
                await asyncio.sleep(0.01)

        task = asyncio.create_task(load())
        await asyncio.sleep(1.0)
        broker.stop()
        await asyncio.sleep(2.5)  # payments keep being journaled and answered 0000
        during = len(answered)
        broker.restart()
        await asyncio.sleep(1.0)
        stop.set()
        await task
        assert during > 20
        for m in answered:
            await wait_for_state(c, clock.now(), m, ["SETTLED", "REJECTED"], timeout=60)
        await c.close()
    by_e2e: dict[str, set[str]] = defaultdict(set)
    for line in rec.read_text().splitlines():
        r = json.loads(line)
        for e in r["end_to_end_ids"]:
            by_e2e[e].add(r["msg_id"])
    assert set(answered) <= set(by_e2e)
    assert all(len(m) == 1 for m in by_e2e.values()), "an EndToEndId under two MsgIds"


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (root only), to fill up on purpose."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode()[:200]}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # unbuffered: a partial write must not come back as an error from close()
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 65536)
            os.fsync(fh.fileno())
    return filler


async def _pay_until_refused(c: ErpClient, now: object, prefix: str, n: int) -> list[str]:
    codes = []
    for i in range(n):
        r = await c.pay(f"{prefix}-{i}", now, pay(i, "105100000017"))  # type: ignore[arg-type]
        codes.append(r.ret_code)
    return codes


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
async def test_full_disk_under_the_journal_acknowledges_nothing_and_recovers(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    with small_disk(tmp_path / "disk") as disk:
        cfg = gateway_config(
            tmp_path / "gw",
            dev_pki,
            broker.url,
            {"journal": {"path": str(disk / "journal.sqlite3")}},
        )
        async with running_gateway(cfg, clock) as gw:
            c = await Erp(gw, dev_pki).client()
            assert (await c.pay("F-ok", clock.now(), pay(1, "105100000017"))).ret_code == "0000"
            filler = fill(disk)
            codes = await _pay_until_refused(c, clock.now(), "F-full", 30)
            refused = [x for x in codes if x != "0000"]
            assert refused, "a full disk must refuse"
            assert set(refused) <= {"9999", "5002"}
            # nothing refused was journaled: STATUS knows none of them
            for i, code in enumerate(codes):
                if code != "0000":
                    st = await c.status(f"FQ-{i}", clock.now(), f"F-full-{i}")
                    assert st.state is None, f"F-full-{i} answered {code} but was journaled"
            filler.unlink()  # space returns
            r = None
            for i in range(50):
                r = await c.pay(f"F-back-{i}", clock.now(), pay(i, "105100000017"))
                if r.ret_code == "0000":
                    break
                await asyncio.sleep(0.1)
            assert r is not None and r.ret_code == "0000"
            await c.close()
