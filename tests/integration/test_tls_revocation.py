"""Revocation at the handshake of the real daemon, and the same verdict on the signature path.

On a ``client_cert = "required"`` listener (corplink.md §1, §3):

- a certificate on a CRL fails the handshake with the TLS alert
  ``certificate revoked``; the same certificate signing over plain TCP gets
  2004 from the signature path;
- a certificate on the deny list completes the handshake and is closed right
  after it: the client reads EOF without any answer, and
  ``gateway_connection_closes_total{reason="cert_denied"}`` counts it; over
  TCP it gets 2004;
- a reload with a new CRL or deny list reaches new handshakes (the TLS
  context is rebuilt and swapped).

The CRL's window covers both the system clock (what OpenSSL judges it by)
and the business clock (the signature path's), whatever date the suite pins.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.clock import BusinessClock
from gateway.errors import RetCode
from gateway.keys.devpki import DevPki, rewrite_crl
from gateway.keys.trust import fingerprint
from gateway.net.framing import encode_frame
from gateway.net.tls import client_context
from gateway.server import Gateway
from gateway.testing import Broker
from tests.integration.harness import Erp, gateway_config, recent_friday_10, running_gateway
from tests.integration.keys_support import cert_of, copy_pki, pay, sample, scrape

FRIDAY_10 = recent_friday_10()
REVOKED = RetCode.CERT_REVOKED.text
#: "tls" requires a client certificate here; Erp clients present their own.
LISTENERS = [
    {"name": "tls", "port": 0, "tls": True, "client_cert": "required"},
    {"name": "tcp", "port": 0, "tls": False, "client_cert": "none"},
]


def closes(reason: str) -> str:
    return f'gateway_connection_closes_total{{listener="tls",reason="{reason}"}}'


def crl_listing(pki: DevPki, *certs: Path) -> None:
    """A CRL of the client CA listing ``certs``, valid on both clocks."""
    now = datetime.now(UTC)
    rewrite_crl(
        pki,
        [cert_of(c).serial_number for c in certs],
        last_update=min(now, FRIDAY_10) - timedelta(days=1),
        next_update=max(now, FRIDAY_10) + timedelta(days=7),
    )


async def tls_exchange(gw: Gateway, pki: DevPki, key_cert: tuple[Path, Path]) -> bytes:
    """Handshake with ``key_cert``, send one frame, read to EOF: what the daemon sent.

    A TLS alert raises ``ssl.SSLError`` (at the handshake in TLS 1.2, at the
    first read in TLS 1.3).
    """
    host, port = gw.bound.listeners["tls"]
    key, cert = key_cert
    ctx = client_context(pki.server_ca, cert, key)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost"), 10
    )
    try:
        writer.write(encode_frame(b"<CorpLink/>"))  # would get a 1003 if it were read
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.transport.abort()


async def handshake_alert(gw: Gateway, pki: DevPki, key_cert: tuple[Path, Path]) -> str:
    try:
        got = await tls_exchange(gw, pki, key_cert)
    except ssl.SSLError as exc:
        return str(exc.reason)
    return f"no alert; received {got[:40]!r}"


async def test_crl_and_deny_list_at_the_handshake_and_on_the_signature_path(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki = copy_pki(dev_pki, tmp_path / "pki")
    op01 = pki.client("C100000001", "op01")
    op02 = pki.client("C100000001", "op02")
    other = pki.client("C100000002", "op01")
    crl_listing(pki, op02[1])
    pki.deny_list.write_text(f"{fingerprint(cert_of(other[1]))}  # token lost\n")
    cfg = gateway_config(tmp_path / "gw", pki, broker.url, {"listeners": LISTENERS})
    clock = BusinessClock(FRIDAY_10)
    async with running_gateway(cfg, clock) as gw:
        erp = Erp(gw, pki)
        before = await scrape(gw)

        # on the CRL: the handshake fails with the alert; the signature path says 2004
        assert await handshake_alert(gw, pki, op02) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        c = await erp.client("C100000001", "op02", listener="tcp")
        r = await c.pay("TLSREV-1", clock.now(), pay())
        assert (r.ret_code, r.ret_msg) == ("2004", REVOKED)
        await c.close()

        # on the deny list: closed after the handshake, before any frame is read
        assert await tls_exchange(gw, pki, other) == b""
        c = await erp.client("C100000002", "op01", listener="tcp")
        r = await c.pay("TLSREV-2", clock.now(), pay("C100000002"))
        assert (r.ret_code, r.ret_msg) == (
            "2004",
            f"{REVOKED}: certificate on the gateway deny list",
        )
        await c.close()

        # neither: served over mutual TLS
        c = await erp.client("C100000001", "op01")
        r = await c.pay("TLSREV-3", clock.now(), pay())
        assert r.ret_code == "0000", r.ret_msg
        await c.close()

        after = await scrape(gw)
        for reason in ("cert_refused", "cert_denied"):
            assert (sample(after, closes(reason)) or 0) == (sample(before, closes(reason)) or 0) + 1

        # a reload brings a new CRL and a new deny list to new handshakes
        crl_listing(pki, op02[1], op01[1])
        pki.deny_list.write_text("# emptied\n")
        assert (await gw.reload())["ok"]
        assert await handshake_alert(gw, pki, op01) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        c = await erp.client("C100000002", "op01")
        r = await c.pay("TLSREV-4", clock.now(), pay("C100000002"))
        assert r.ret_code == "0000", r.ret_msg
        await c.close()
