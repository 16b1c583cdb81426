"""docs/foreign-currency.md §1: a file certificate may not send a foreign-currency payment
(2006), judged with the credentials, before the amount rules (docs/protocol.md §8)."""

from __future__ import annotations

from pathlib import Path

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from tests.integration.harness import (
    FX_SCREENED,
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_gateway,
)

FRIDAY_10 = recent_friday_10()


FX_ON = FX_SCREENED
"""Foreign currency is on as shipped but refused without lists; these tests add the demo list."""


async def test_a_file_certificate_is_refused_a_foreign_currency_pay(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    clock = BusinessClock(FRIDAY_10)
    usd = payment("105100000017", "10.00", ccy="USD")
    async with running_gateway(cfg, clock) as gw:
        file_cert = await Erp(gw, dev_pki).client("C100000001", "op02")
        refused = await file_cert.pay("F-1", clock.now(), usd)
        assert (refused.ret_code, refused.gw_ref) == ("2006", None)
        assert "foreign-currency" in refused.ret_msg
        # the same operator's CNY payment goes through
        assert (
            await file_cert.pay("F-2", clock.now(), payment("105100000017", "10.00"))
        ).ret_code == "0000"
        await file_cert.close()
        # a USBKey may send foreign currency: what it gets is not a credential refusal
        usbkey = await Erp(gw, dev_pki).client("C100000001", "op01")
        assert (await usbkey.pay("U-1", clock.now(), usd)).ret_code != "2006"
        await usbkey.close()
