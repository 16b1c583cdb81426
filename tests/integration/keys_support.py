"""Helpers for the key lifecycle tests (issue 4): a private PKI copy, gatewayctl
in-process, TLS peer certificates, response signatures and /metrics samples."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.config import Config
from gateway.errors import GatewayError
from gateway.keys.devpki import DevPki, PrivateKey, renew_certificate, rewrite_crl
from gateway.keys.ring import KeyRing, KeyVersion
from gateway.keys.xmldsig import verify_pinned
from gateway.net.tls import client_context
from gateway.server import Gateway
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import Payment
from tests.integration.harness import Erp, gateway_config, running_clearing_sim

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
PAYERS = {"C100000001": "6222000000000001", "C100000002": "6222000000000101"}


def pay(corp_id: str = "C100000001", code: str = "104100000004", amount: str = "10.00") -> Payment:
    """A small HVPS payment (routing.md §3) from the corporate's first account."""
    return Payment(PAYERS[corp_id], "付款人", "6217000011112222", "收款人", code, Decimal(amount))


def copy_pki(src: DevPki, dest: Path) -> DevPki:
    """A private copy of the session PKI (modes kept) for a test that changes keys."""
    shutil.copytree(src.dir, dest)
    return DevPki.open(dest)


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def newest(pki: DevPki, role: str) -> KeyVersion:
    """The latest ring version of ``role`` (the one a rotate appended)."""
    return KeyRing.load(pki.ring, pki.dir, None, with_keys=False).versions(role)[-1]


def renewed_for_400_days(
    pki: DevPki, template: x509.Certificate
) -> tuple[PrivateKey, x509.Certificate]:
    """A new key and a certificate like ``template``, valid 400 days either side of ``pki.now``."""
    return renew_certificate(
        pki,
        template,
        not_before=pki.now - timedelta(days=400),
        not_after=pki.now + timedelta(days=400),
    )


async def fresh_client_pays(gw: Gateway, pki: DevPki, msg_id: str, now: datetime) -> str:
    """The RetCode a new mutual-TLS client of C100000002 (op01) gets for one payment."""
    fresh = await Erp(gw, pki).client("C100000002", "op01")
    ret_code = (await fresh.pay(msg_id, now, pay("C100000002"))).ret_code
    await fresh.close()
    return ret_code


# ------------------------------------------------------------------ gatewayctl


def ctl_overlay(tmp_path: Path, cfg: Config) -> Path:
    """The overlay gatewayctl reads to find the keys folder (as an operator's would)."""
    p = tmp_path / "gatewayctl.toml"
    p.write_text(
        'environment = "test"\n'
        f"state_dir = {json.dumps(str(cfg.state_path))}\n"
        "[keys]\ndev_pki = false\n"
        f"dir = {json.dumps(str(cfg.keys_dir))}\n",
        encoding="utf-8",
    )
    return p


def ctl_setup(tmp_path: Path, dev_pki: DevPki, broker_url: str) -> tuple[DevPki, Config, Path]:
    """The usual start of a key test: a private PKI copy, a gateway config on it
    (state under ``tmp_path/gw``) and the gatewayctl overlay that finds its keys."""
    pki = copy_pki(dev_pki, tmp_path / "pki")
    cfg = gateway_config(tmp_path / "gw", pki, broker_url)
    return pki, cfg, ctl_overlay(tmp_path, cfg)


async def gatewayctl_keys(overlay: Path, cfg: Config, *args: str) -> int:
    """``gatewayctl --config OVERLAY --socket SOCK keys ARGS`` in-process (it blocks: thread)."""
    argv = ["--config", str(overlay), "--socket", str(cfg.admin_socket), "keys", *args]
    return await asyncio.to_thread(gatewayctl_main, argv)


# ------------------------------------------------------------------ CRLs


def crl_file(
    pki: DevPki,
    out: Path,
    revoked: list[Path],
    *,
    last_update: datetime,
    next_update: datetime | None = None,
    encoding: serialization.Encoding = serialization.Encoding.DER,
) -> Path:
    """A CRL of the client CA listing ``revoked`` certificates, written to ``out``.

    ``devpki.rewrite_crl`` always writes ``client-crl.pem`` of its PKI, so it
    runs on a scratch PKI holding only the client CA: the installed CRL stays
    untouched until ``gatewayctl keys import-crl`` installs the new one.
    """
    work = out.parent / f"{out.stem}-work"
    work.mkdir()
    for p in (pki.client_ca, pki.client_ca_key):
        shutil.copy2(p, work / p.name)
    scratch = replace(pki, dir=work)
    serials = [cert_of(p).serial_number for p in revoked]
    rewrite_crl(scratch, serials, last_update=last_update, next_update=next_update)
    crl = x509.load_pem_x509_crl(scratch.client_crl.read_bytes())
    out.write_bytes(crl.public_bytes(encoding))
    shutil.rmtree(work)
    return out


# ------------------------------------------------------------------ TLS and signatures


async def server_cert_der(gw: Gateway, pki: DevPki) -> bytes:
    """The certificate the gateway presents on a NEW TLS handshake (DER)."""
    host, port = gw.bound.listeners["tls"]
    _, writer = await asyncio.open_connection(
        host, port, ssl=client_context(pki.server_ca), server_hostname="localhost"
    )
    try:
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    assert isinstance(peer, bytes)
    return peer


def verifies_with(raw: bytes, cert: x509.Certificate) -> bool:
    """Does this response verify with ``cert`` alone pinned (corplink.md §5)?"""
    try:
        verify_pinned(etree.fromstring(raw, PARSER), [cert])
    except GatewayError:
        return False
    return True


async def sleep_until(clock_now: Callable[[], datetime], instant: datetime) -> None:
    """Sleep until the business clock (rate 1) passes ``instant``."""
    while (left := (instant - clock_now()).total_seconds()) >= 0:
        await asyncio.sleep(left + 0.05)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> bool:
    """Poll ``check`` until true or ``timeout`` seconds pass; returns the last result."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------ metrics


async def scrape(gw: Gateway) -> str:
    """GET /metrics from the daemon's ops port."""
    assert gw.bound.metrics is not None
    host, port = gw.bound.metrics
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return raw.decode().partition("\r\n\r\n")[2]


def sample(exposition: str, series: str) -> float | None:
    """The value of one series (exact name and labels) in a text exposition, or None."""
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


# ------------------------------------------------------------------ clearing side


@contextlib.asynccontextmanager
async def clearing_sim(
    pki: DevPki, broker_url: str, key: Path, cert: Path, record: Path
) -> AsyncIterator[ClearingSimulator]:
    """The clearing simulator signing with ``key``/``cert`` (a clearing system's key)."""
    async with running_clearing_sim(pki, broker_url, record, key_cert=(key, cert)) as sim:
        yield sim


def overlap_days(delta: timedelta) -> str:
    """``--overlap-days`` for a short overlap (the ring takes fractions of a day)."""
    return repr(delta.total_seconds() / 86_400)
