"""Run the real gateway in-process against a real broker, for integration tests.

The daemon is the same ``Gateway`` that ``gatewayd`` runs, built from the
embedded defaults plus overrides (ports 0, the test PKI, the test broker, an
injected clock).  ``running_gateway`` always drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.clock import SHANGHAI, Clock
from gateway.config import Config, load_config
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.net.tls import client_context
from gateway.paths import default_config_path
from gateway.routing.calendar_files import load_calendars
from gateway.server import Gateway
from gateway.sim.clearing import ClearingSimConfig, ClearingSimulator
from gateway.sim.core import CoreSimConfig, CoreSimulator, demo_accounts
from gateway.sim.erp import ErpClient, Payment
from gateway.testing import running_simulator
from tests.business_dates import suite_today


def recent_friday_10() -> datetime:
    """10:00 Asia/Shanghai on the latest working Friday up to today (by the shipped
    calendars; "today" may be pinned with ``GATEWAY_TEST_DATE``): every engine is open, inside the dev PKI's validity whatever day
    the suite runs."""
    cal = load_calendars(default_config_path().parent.parent / "routing" / "calendar")
    d = suite_today()
    d -= timedelta(days=(d.weekday() - 4) % 7)
    while not cal.is_working_day(d):
        d -= timedelta(days=7)
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=SHANGHAI)


def payment(code: str, amount: str, **fields: Any) -> Payment:
    """A PAY of the dev PKI's demo corporate C100000001 from its enrolled account
    6222000000000001 to ``code``'s bank; ``fields`` replace any other Transfer field."""
    values: dict[str, Any] = {
        "payer_acct": "6222000000000001",
        "payer_name": "示范贸易有限公司",
        "payee_acct": "6217000011112222",
        "payee_name": "收款人",
        "payee_bank_code": code,
        "amount": Decimal(amount),
        "purpose": "货款",
    }
    return Payment(**{**values, **fields})


DEMO_LIST = Path(__file__).resolve().parents[2] / "conf" / "screening" / "demo-list.csv"
"""The fictional screening list shipped for the demo (docs/foreign-currency.md §5)."""
FX_SCREENED: dict[str, Any] = {
    "fx": {"enabled": True},
    "screening": {"lists": [str(DEMO_LIST)]},
}
"""Foreign currency on (as shipped), screened against the demo list: without lists (the
shipped configuration) a foreign-currency payment is refused (2006) rather than sent
unscreened."""


def gateway_config(
    state: Path, pki: DevPki, broker_url: str, extra: dict[str, Any] | None = None
) -> Config:
    over: dict[str, Any] = {
        "environment": "test",
        "state_dir": str(state),
        "workers": {"processes": 0, "fronts": 0},
        "keys": {"dev_pki": False, "dir": str(pki.dir)},
        "clearing": {"url": broker_url, "receipt_timeout": 5.0, "client_id": f"gw-{state.name}"},
        "observability": {"metrics_port": 0, "log_level": "warning"},
        "engines": {"beps": {"max_wait": 0.3}},
        "listeners": [
            {"name": "tls", "port": 0, "tls": True, "client_cert": "optional"},
            {"name": "tcp", "port": 0, "tls": False, "client_cert": "none"},
        ],
    }
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(over.get(k), dict):
            over[k] = {**over[k], **v}
        else:
            over[k] = v
    return load_config(None, over)


@contextlib.asynccontextmanager
async def running_gateway(cfg: Config, clock: Clock | None = None) -> AsyncIterator[Gateway]:
    gw = Gateway(cfg, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.serve(stop.wait))
    ready = asyncio.create_task(gw.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the start-up error
    assert ready in done, "gateway did not become ready"
    # Inbound clearing messages published before the link's first subscription are
    # not queued for it (no broker session yet): tests that inject right away wait.
    await asyncio.wait_for(gw.clearing_link_up(), 30)
    try:
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@contextlib.asynccontextmanager
async def running_clearing_sim(
    pki: DevPki,
    broker_url: str,
    record: Path,
    *,
    key_cert: tuple[Path, Path] | None = None,
    **kw: Any,
) -> AsyncIterator[ClearingSimulator]:
    """The clearing simulator, signing with the PKI's clearing-system key or ``key_cert``."""
    key, cert = key_cert or (pki.clearing_system_key, pki.clearing_system_cert)
    sim = ClearingSimulator(
        ClearingSimConfig(
            broker_url=broker_url,
            sign_key=load_signing_key(key, cert),
            gateway_certs=tuple(x509.load_pem_x509_certificates(pki.clearing_cert.read_bytes())),
            record_path=record,
            **kw,
        )
    )
    async with running_simulator(sim):
        yield sim


@contextlib.asynccontextmanager
async def running_core_sim(broker_url: str, **kw: Any) -> AsyncIterator[CoreSimulator]:
    """The core banking simulator with the demo's accounts (clearing.md §5)."""
    kw.setdefault("accounts", demo_accounts())
    async with running_simulator(CoreSimulator(CoreSimConfig(broker_url=broker_url, **kw))) as sim:
        yield sim


@dataclass
class Erp:
    """Factory for ERP clients of the test PKI against a running gateway."""

    gw: Gateway
    pki: DevPki

    def gateway_certs(self) -> Sequence[x509.Certificate]:
        return x509.load_pem_x509_certificates(self.pki.response_cert.read_bytes())

    async def client(
        self,
        corp_id: str = "C100000001",
        oper_id: str = "op01",
        *,
        listener: str = "tls",
        key_cert: tuple[Path, Path] | None = None,
        tls_identity: bool = True,
    ) -> ErpClient:
        host, port = self.gw.bound.listeners[listener]
        kp, cp = key_cert or self.pki.client(corp_id, oper_id)
        ctx = None
        if listener == "tls":
            ctx = client_context(
                self.pki.server_ca, cp if tls_identity else None, kp if tls_identity else None
            )
        c = ErpClient(
            host,
            port,
            corp_id=corp_id,
            oper_id=oper_id,
            signer=load_signing_key(kp, cp),
            gateway_certs=self.gateway_certs(),
            ssl_context=ctx,
        )
        await c.connect()
        return c


async def wait_for_state(
    client: ErpClient, now: datetime, orig_msg_id: str, states: Sequence[str], timeout: float = 20
) -> str:
    """Poll STATUS until the payment is in one of ``states``; returns the state seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    n = 0
    last = None
    while asyncio.get_running_loop().time() < deadline:
        n += 1
        r = await client.status(f"S-{orig_msg_id[:20]}-{n}", now, orig_msg_id)
        last = r.state
        if r.state in states:
            return r.state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{orig_msg_id} stayed {last}, wanted {states}")
