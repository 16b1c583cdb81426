"""The SWIFT link's health as operations staff see it (docs/foreign-currency.md §4,
docs/operations.md "Monitoring"): ``gateway_link_up{link="swift"}`` follows the link,
``/readyz`` reports it under ``advisory``, and losing the SWIFT interface leaves the node
ready for every other payment while the clearing link's own series stay as they were.

The SWIFT link gets a broker of its own (``swift.broker``), so that broker can go away
while the clearing broker stays up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.testing import Broker, start_broker
from tests.integration.harness import gateway_config, recent_friday_10, running_gateway
from tests.integration.test_operations import http_get, sample

FRIDAY_10 = recent_friday_10()
SWIFT_UP = 'gateway_link_up{link="swift"}'
SWIFT_RECONNECTS = 'gateway_link_reconnects_total{link="swift"}'


async def eventually(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    """Poll ``check`` until true; a deadline against hanging, not a timed assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_the_swift_link_is_reported_and_does_not_gate_readiness(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    swift_broker = start_broker(tmp_path / "swift-broker")
    try:
        cfg = gateway_config(
            tmp_path / "gw",
            dev_pki,
            broker.url,
            {"fx": {"enabled": True}, "swift": {"broker": swift_broker.url}},
        )
        async with running_gateway(cfg, BusinessClock(FRIDAY_10)) as gw:
            assert gw.bound.metrics is not None
            host, port = gw.bound.metrics
            seen: dict[str, Any] = {}

            async def observe() -> None:
                seen["status"], body = await http_get(host, port, "/readyz")
                seen["readyz"] = json.loads(body)
                seen["metrics"] = (await http_get(host, port, "/metrics"))[1]

            async def swift_link(up: bool) -> bool:
                await observe()
                return bool(
                    seen["readyz"].get("advisory") == {"swift_link": up}
                    and sample(seen["metrics"], SWIFT_UP) == (1.0 if up else 0.0)
                )

            await eventually("the SWIFT link up", lambda: swift_link(True))
            assert seen["status"] == 200
            assert seen["readyz"]["checks"] == {"journal": True, "clearing_link": True}
            # the clearing link's series: still one, unlabelled
            assert "gateway_clearing_link_up 1.0" in seen["metrics"]
            assert 'gateway_clearing_link_up{link="' not in seen["metrics"]

            swift_broker.stop()
            await eventually("the SWIFT link down", lambda: swift_link(False))
            # still ready: CNY payments and the clearing link do not wait for SWIFT
            assert seen["status"] == 200
            assert seen["readyz"]["status"] == "ready"
            assert "gateway_clearing_link_up 1.0" in seen["metrics"]

            swift_broker.restart()
            await eventually("the SWIFT link back", lambda: swift_link(True))
            assert sample(seen["metrics"], SWIFT_RECONNECTS) >= 1
            assert seen["status"] == 200
    finally:
        swift_broker.stop()


async def test_without_swift_readyz_has_no_advisory(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    # fx.enabled is on as shipped: switched off here, so that no SWIFT link runs
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, {"fx": {"enabled": False}})
    async with running_gateway(cfg, BusinessClock(FRIDAY_10)) as gw:
        assert gw.bound.metrics is not None
        host, port = gw.bound.metrics

        async def ready() -> bool:
            return (await http_get(host, port, "/readyz"))[0] == 200

        await eventually("ready", ready)
        doc = json.loads((await http_get(host, port, "/readyz"))[1])
        assert set(doc) == {"status", "lifecycle", "checks"}
