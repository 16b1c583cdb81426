"""corplink.md §6: a file certificate pays below 50,000.00 per item and at most
200,000.00 a day per operator; the daily total is durable and exact."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.sim.erp import Payment
from gateway.testing import Broker
from tests.integration.harness import Erp, gateway_config, recent_friday_10, running_gateway

FRIDAY_10 = recent_friday_10()


def pay(amount: str) -> Payment:
    return Payment(
        "6222000000000001", "付款人", "6217000011112222", "收款人", "105100000017", Decimal(amount)
    )


async def test_file_certificate_daily_cap_holds_across_a_restart(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    async with running_gateway(cfg, clock) as gw:
        c = await Erp(gw, dev_pki).client("C100000001", "op02")
        for i in range(3):
            assert (await c.pay(f"D-{i}", clock.now(), pay("49999.99"))).ret_code == "0000"
        await c.close()
    async with running_gateway(cfg, clock) as gw:  # a restart: the total is in the journal
        c = await Erp(gw, dev_pki).client("C100000001", "op02")
        assert (await c.pay("D-3", clock.now(), pay("50000.03"))).ret_code == "2006"  # per item
        assert (await c.pay("D-4", clock.now(), pay("49999.99"))).ret_code == "0000"
        over = await c.pay("D-5", clock.now(), pay("0.05"))  # 199,999.96 + 0.05
        assert (over.ret_code, over.gw_ref) == ("2006", None)
        assert "daily limit" in over.ret_msg
        assert (await c.pay("D-6", clock.now(), pay("0.04"))).ret_code == "0000"  # exactly 200,000
        # a USBKey operator of the same corporate is not bound by the file cap
        u = await Erp(gw, dev_pki).client("C100000001", "op01")
        assert (await u.pay("U-1", clock.now(), pay("49999.99"))).ret_code == "0000"
        await u.close()
        # a refused request did not count, and its MsgId stays free
        st = await c.status("Q-5", clock.now(), "D-5")
        assert st.state is None
        await c.close()


async def test_daily_cap_is_exact_under_50_concurrent_requests(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    async with running_gateway(cfg, clock) as gw:
        clients = [await Erp(gw, dev_pki).client("C100000001", "op02") for _ in range(5)]
        replies = await asyncio.gather(
            *(clients[i % 5].pay(f"C-{i}", clock.now(), pay("10000.00")) for i in range(50))
        )
        codes = [r.ret_code for r in replies]
        assert codes.count("0000") == 20  # 20 × 10,000.00 = 200,000.00
        assert codes.count("2006") == 30
        for c in clients:
            await c.close()
