"""The guide's sample client (docs/examples/corplink_client.py) against the real daemon.

It is run as an integrator would run it: a separate Python process with only
signxml, lxml and cryptography, wall-clock SendTime, mutual TLS, the dev PKI's
files.  The daemon runs on the wall clock too (no business clock), so the PAY
goes to BEPS, which is open every day (docs/routing-rules.md §4): the answers
do not depend on the date the suite runs.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from gateway.keys.devpki import generate_dev_pki
from gateway.testing import Broker
from tests.integration.harness import gateway_config, running_gateway

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "docs" / "examples" / "corplink_client.py"


async def run_client(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
async def test_sample_client_pays_and_asks_status(
    tmp_path: Path, broker: Broker, key_type: str
) -> None:
    # valid now: the client signs with the wall clock; ECDSA or RSA by the key it finds
    pki = generate_dev_pki(tmp_path / "pki", key_type=key_type)
    cfg = gateway_config(tmp_path / "gw", pki, broker.url)
    async with running_gateway(cfg) as gw:
        host, port = gw.bound.listeners["tls"]
        code, out, err = await run_client(host, str(port), str(pki.dir))
    assert code == 0, err
    rows = {line.split()[0]: line.split(maxsplit=6) for line in out.splitlines()}
    assert sorted(rows) == ["NTFY", "PAY", "STATUS"], out
    _, msg_id, ret, gw_ref, state, engine, _ = rows["PAY"]
    assert (ret, engine) == ("0000", "BEPS") and gw_ref.startswith("GW"), out
    assert state in ("QUEUED", "SENT", "ACKED"), out
    _, st_id, st_ret, _, _, st_engine, _ = rows["STATUS"]
    assert (st_id, st_ret, st_engine) == (f"ST-{msg_id}", "0000", "BEPS"), out
    assert rows["NTFY"][2] == "0000", out


async def test_sample_client_is_refused_for_an_account_not_enrolled(
    tmp_path: Path, broker: Broker
) -> None:
    """The client prints what the gateway said: here 4006 (docs/protocol.md §8)."""
    pki = generate_dev_pki(tmp_path / "pki")
    cfg = gateway_config(tmp_path / "gw", pki, broker.url)
    async with running_gateway(cfg) as gw:
        host, port = gw.bound.listeners["tls"]
        code, out, err = await run_client(
            host, str(port), str(pki.dir), "C100000001", "op01", "6222999999999999"
        )
    assert code == 0, err
    pay = next(line.split() for line in out.splitlines() if line.startswith("PAY"))
    assert (pay[2], pay[3]) == ("4006", "None"), out  # refused: no GwRef
