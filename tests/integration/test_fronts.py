"""Front processes (docs/architecture.md §1): the same answers, limits that hold for the
whole daemon, a dead front replaced, a reload that reaches every front."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from pathlib import Path

import pytest

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.server import Gateway
from gateway.sim.erp import ErpClient
from gateway.testing import Broker
from tests.integration.harness import (
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)
from tests.integration.keys_support import sample, scrape

FRIDAY_10 = recent_friday_10()
FRONTS = {"workers": {"processes": 0, "fronts": 2}}


def front_pids(gw: Gateway) -> list[int]:
    assert gw._fronts is not None
    return gw._fronts.pids()


async def clients(gw: Gateway, pki: DevPki, n: int) -> list[ErpClient]:
    """``n`` connections: SO_REUSEPORT spreads them over the fronts by their ports."""
    return [await Erp(gw, pki).client() for _ in range(n)]


async def test_fronts_answer_as_the_single_process_does(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FRONTS)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "r.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):
        pids = front_pids(gw)
        assert len(pids) == 2
        assert os.getpid() not in pids
        paid = 'gateway_requests_total{ret_code="0000",trn_code="PAY"}'
        by_front = 'gateway_core_desk_calls_total{where="front"}'
        by_core = 'gateway_core_desk_calls_total{where="core"}'
        start = await scrape(gw)
        before = sample(start, paid) or 0.0
        front_desk, core_desk = sample(start, by_front) or 0.0, sample(start, by_core) or 0.0
        cs = await clients(gw, dev_pki, 6)
        rs = await asyncio.gather(
            *(
                cs[i % 6].pay(f"F-{i}", clock.now(), payment("105100000017", f"{i + 1}.00"))
                for i in range(48)
            )
        )
        assert [r.ret_code for r in rs] == ["0000"] * 48
        assert len({r.gw_ref for r in rs}) == 48

        # replay on another connection (maybe another front): the journal decides
        again = await cs[5].pay("F-0", clock.now(), payment("105100000017", "1.00"))
        assert (again.ret_code, again.dup, again.gw_ref) == ("0000", True, rs[0].gw_ref)
        other = await cs[4].pay("F-0", clock.now(), payment("105100000017", "9.99"))
        assert other.ret_code == "3001"
        bad = await cs[3].pay("F-BAD", clock.now(), payment("999999999999", "1.00"))
        assert bad.ret_code == "4001"
        assert await wait_for_state(cs[2], clock.now(), "F-47", ["SETTLED", "REJECTED"])

        # /metrics adds up the fronts' counters and connection gauges (heartbeat: 1 s)
        async def merged() -> tuple[float, float | None]:
            text = await scrape(gw)
            opened = sample(text, 'gateway_connections_open{listener="tls"}')
            return (sample(text, paid) or 0.0) - before, opened

        for _ in range(50):
            if await merged() == (49.0, 6.0):  # 48 payments and one replay (Dup)
                break
            await asyncio.sleep(0.1)
        assert await merged() == (49.0, 6.0)
        # the core's signing and receipt checks ran in the fronts, not in the core:
        # at least one BEPS package signed, its ccms.990 and ccms.900 verified
        end = await scrape(gw)
        assert (sample(end, by_front) or 0.0) - front_desk >= 3
        assert (sample(end, by_core) or 0.0) - core_desk == 0
        for c in cs:
            await c.close()


async def test_the_connection_limit_holds_across_fronts(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """The per-address connection limit is the core's, so two fronts do not double it
    (the frame and CorpId rates: tests/hostile/test_admission_daemon.py, run with
    fronts too)."""
    clock = BusinessClock(FRIDAY_10)
    admission = {
        "max_conns_per_ip": 4,
        "accept_rate_per_ip": 1000.0,
    }
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, {**FRONTS, "admission": admission})
    async with running_gateway(cfg, clock) as gw:
        opened: list[ErpClient] = []
        refused = 0
        for _ in range(8):
            try:
                c = await Erp(gw, dev_pki).client()
                # a refused connection is aborted right after the accept: the first
                # exchange on it fails
                r = await c.status(f"Q-{len(opened)}", clock.now(), "NONE")
                assert r.ret_code in {"0000", "3003", "5001"}, r.ret_msg
                opened.append(c)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
                refused += 1
        assert (len(opened), refused) == (4, 4)
        for c in opened:
            await c.close()


async def test_a_dead_front_is_replaced_and_the_others_keep_serving(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FRONTS)
    async with running_gateway(cfg, clock) as gw:
        before = front_pids(gw)
        os.kill(before[0], signal.SIGKILL)
        for _ in range(200):
            now_pids = front_pids(gw)
            if len(now_pids) == 2 and before[0] not in now_pids:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"front not replaced: {front_pids(gw)}")
        assert before[1] in front_pids(gw)
        # the replacement took over the dead one's socket: every connection is served
        cs = await clients(gw, dev_pki, 8)
        rs = await asyncio.gather(
            *(
                c.pay(f"K-{i}", clock.now(), payment("105100000017", "1.00"))
                for i, c in enumerate(cs)
            )
        )
        assert [r.ret_code for r in rs] == ["0000"] * 8
        status = await gw._admin_command({"op": "status"}, None)  # type: ignore[arg-type]
        assert sorted(status["fronts"]) == sorted(front_pids(gw))
        for c in cs:
            await c.close()


async def test_a_reload_reaches_every_front(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """A deny-list change (read by each front at the handshake) after ``reload``."""
    from tests.integration.test_tls_revocation import cert_of, copy_pki, fingerprint

    pki = copy_pki(dev_pki, tmp_path / "pki")
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", pki, broker.url, FRONTS)
    async with running_gateway(cfg, clock) as gw:
        cs = await clients(gw, pki, 4)
        for i, c in enumerate(cs):
            assert (
                await c.pay(f"D-{i}", clock.now(), payment("105100000017", "1.00"))
            ).ret_code == "0000"
        _key, cert = pki.client("C100000001", "op01")
        pki.deny_list.write_text(f"{fingerprint(cert_of(cert))}  # token lost\n")
        assert (await gw.reload())["ok"]
        await asyncio.sleep(0.5)  # the push reaches the fronts within a loop turn or two
        closed = 0
        for _ in range(6):  # new connections land on both fronts
            c = await Erp(gw, pki).client()
            try:
                r = await c.pay("D-X", clock.now(), payment("105100000017", "1.00"))
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
                closed += 1
            else:
                pytest.fail(f"denied certificate served after reload: {r.ret_code}")
        assert closed == 6
        for c in cs:
            await c.close()
