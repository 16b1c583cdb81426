"""The ``keys_rotated`` log line: only when an active key version changed, serials in hex.

A plain reload (SIGHUP, ``gatewayctl reload``) rebuilds the ring from the same
files: nothing rotated, so nothing is logged as rotated. When an activation
instant passes, the line names the role and the new certificate's serial the
way ``gatewayctl keys list`` shows it, so an operator can match the two.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from gateway.clock import BusinessClock
from gateway.config import Config
from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.testing import Broker
from tests.integration.harness import recent_friday_10, running_gateway
from tests.integration.keys_support import (
    ctl_setup,
    eventually,
    gatewayctl_keys,
    newest,
    sleep_until,
)

FRIDAY_10 = recent_friday_10()
LEAD = timedelta(seconds=3)  # room for gatewayctl and its reload before the activation


async def keys_list_serials(overlay: Path, cfg: Config) -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert await gatewayctl_keys(overlay, cfg, "list", "--json") == 0
    return {row["serial"] for row in json.loads(out.getvalue())["items"] if row.get("serial")}


async def test_plain_reload_logs_no_rotation_and_an_activation_logs_the_hex_serial(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    with capture_logs() as logs:
        async with running_gateway(cfg, clock):
            for _ in range(2):
                assert (await call(cfg.admin_socket, {"op": "reload"}))["ok"] is True
            activate = (clock.now() + LEAD).replace(microsecond=0)
            args = ["rotate", "tls", "--activate", activate.isoformat(), "--overlap-days", "1"]
            assert await gatewayctl_keys(overlay, cfg, *args) == 0  # itself a reload
            new = newest(pki, "tls").cert
            await sleep_until(clock.now, activate)

            def rotations() -> list[dict[str, object]]:
                return [e for e in logs if e["event"] == "keys_rotated"]

            async def logged() -> bool:
                return bool(rotations())

            assert await eventually(logged, timeout=10.0)
            listed = await keys_list_serials(overlay, cfg)
    reloads = [e for e in logs if e["event"] == "reloaded"]
    assert len(reloads) >= 3, [e["event"] for e in logs]
    # The three reloads before the activation rotated nothing: one line, at the activation.
    (line,) = rotations()
    fields = {k: v for k, v in line.items() if k not in ("event", "log_level")}
    assert fields == {"tls": f"{new.serial_number:x}"}
    assert fields["tls"] in listed  # the same spelling as `gatewayctl keys list`
