"""Memory stays bounded while the daemon is attacked (issue 5, "Done when").

``gatewayd`` runs as its own process (two worker processes, as deployed) so
that its peak resident set can be read from ``/proc/<pid>/status`` (VmHWM).
For a few seconds many connections from 127.0.0.2 pipeline bad frames and
big-but-limited bodies at it: 1 MiB of garbage (1002), 1 MiB documents with
one huge text node (1003), unsigned requests, headers that are not digits or
announce too much (1001), lying lengths that stall.  A well-behaved client
on 127.0.0.1 keeps paying meanwhile and must get 0000 (or 5002, never
anything else); afterwards it still gets 0000.  The peak RSS of the daemon
and of each worker is printed and bounded.

Two variants: with the default ``[admission]`` (the attacker is banned after
20 bad frames: the cheap path), and with admission relaxed (no bans, huge
rates), as when the attack comes from many addresses: every frame reaches
the parser, the worst case for memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest
from cryptography import x509

from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.net.framing import HEADER_LEN, encode_frame
from gateway.net.tls import client_context
from gateway.sim.erp import ErpClient
from gateway.testing import Broker
from tests.hostile.tools import FRIDAY_10, MIB, DaemonProcess, msg_id, payment

PEAK_RSS_BOUND_MIB = 300
ATTACKER = "127.0.0.2"  # loopback 127.0.0.0/8: a second source address on Linux
RELAXED_ADMISSION = (
    "[admission]\nmax_conns_per_ip = 100000\naccept_rate_per_ip = 100000.0\n"
    "frame_rate_per_ip = 1000000.0\nframe_burst_per_ip = 1000000.0\n"
    "ban_after_strikes = 100000000\n"
)


def garbage_frame() -> bytes:
    return encode_frame(os.urandom(MIB - 16))


def big_text_frame() -> bytes:
    head = (
        b'<CorpLink xmlns="urn:corplink:1"><Head><TrnCode>PAY</TrnCode><CorpId>C100000001'
        b"</CorpId><OperId>op01</OperId><MsgId>BIG-1</MsgId><SendTime>2026-11-27T10:00:00+08:00"
        b"</SendTime></Head><Body><Transfer><PayerAcct>6222000000000001</PayerAcct><PayerName>"
    )
    tail = b"</PayerName></Transfer></Body></CorpLink>"
    return encode_frame(head + b"A" * (MIB - len(head) - len(tail)) + tail)


def unsigned_frame(i: int) -> bytes:
    return encode_frame(
        b'<CorpLink xmlns="urn:corplink:1"><Head><TrnCode>PAY</TrnCode><CorpId>C100000001'
        b"</CorpId><OperId>op01</OperId><MsgId>U-%d</MsgId><SendTime>2026-11-27T10:00:00+08:00"
        b"</SendTime></Head><Body/></CorpLink>" % i
    )


async def _discard(reader: asyncio.StreamReader) -> int:
    n = 0
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            header = await reader.readexactly(HEADER_LEN)
            await reader.readexactly(int(header))
            n += 1
    return n


async def pipeliner(host: str, port: int, frames: list[bytes], stop: float) -> int:
    """Pipelines ``frames`` round-robin as fast as the daemon lets it; returns replies read."""
    replies = 0
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(ATTACKER, 0))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        reading = asyncio.create_task(_discard(reader))
        try:
            i = 0
            while time.monotonic() < stop:
                writer.write(frames[i % len(frames)])
                i += 1
                async with asyncio.timeout(max(0.1, stop - time.monotonic())):
                    await writer.drain()
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            writer.transport.abort()
            replies += await reading
    return replies


async def bad_headers(host: str, port: int, stop: float) -> int:
    """Connections that break framing: non-digits, too long, lying lengths."""
    sent = 0
    kinds = [b"GARBAGE!", b"99999999", b"%08d" % (MIB + 1), b"%08d" % 900_000 + b"<Corp"]
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(ATTACKER, 0))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.write(kinds[sent % len(kinds)])
        sent += 1
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        if sent % len(kinds) == 0:
            await asyncio.sleep(0.05)  # the lying one stalls; leave it open until the end
            continue
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(2):
                await reader.read()
        writer.transport.abort()
    return sent


async def flood(d: DaemonProcess, seconds: float, connections: int) -> dict[str, int]:
    host, port = d.ports["tcp"]
    stop = time.monotonic() + seconds
    frames = [garbage_frame(), big_text_frame()] + [unsigned_frame(i) for i in range(8)]
    tasks = [
        asyncio.create_task(pipeliner(host, port, frames, stop)) for _ in range(connections)
    ] + [asyncio.create_task(bad_headers(host, port, stop)) for _ in range(8)]
    results = await asyncio.gather(*tasks)
    return {
        "replies": sum(results[:connections]),
        "bad_header_connections": sum(results[connections:]),
    }


async def good_client(d: DaemonProcess, pki: DevPki) -> ErpClient:
    host, port = d.ports["tls"]
    kp, cp = pki.client("C100000001", "op01")
    c = ErpClient(
        host,
        port,
        corp_id="C100000001",
        oper_id="op01",
        signer=load_signing_key(kp, cp),
        gateway_certs=x509.load_pem_x509_certificates(pki.response_cert.read_bytes()),
        ssl_context=client_context(pki.server_ca, cp, kp),
    )
    await c.connect()
    return c


async def attack_and_measure(
    tmp: Path, pki: DevPki, broker: Broker, seconds: float, connections: int, admission: str
) -> None:
    d = DaemonProcess(tmp, pki, broker.url, admission)
    d.start(workers=2)
    try:
        before = d.peak_rss_kib()
        served: list[str] = []

        async def keep_paying(stop: float) -> None:
            c = await good_client(d, pki)
            try:
                while time.monotonic() < stop:
                    r = await asyncio.wait_for(c.pay(msg_id("M"), FRIDAY_10, payment()), 60)
                    served.append(r.ret_code)
                    await asyncio.sleep(0.05)
            finally:
                await c.close()

        good = asyncio.create_task(keep_paying(time.monotonic() + seconds))
        stats = await flood(d, seconds, connections)
        await good
        assert d.proc is not None and d.proc.poll() is None, d.log_tail()
        after = await good_client(d, pki)
        try:
            r = await asyncio.wait_for(after.pay(msg_id("M"), FRIDAY_10, payment()), 30)
            assert r.ret_code == "0000", r.ret_msg
        finally:
            await after.close()
        peak = d.peak_rss_kib()
    finally:
        d.stop()
    codes = {c: served.count(c) for c in sorted(set(served))}
    print(
        f"\nflood {seconds:.0f} s, {connections} pipelining connections"
        f" ({'relaxed' if admission else 'default'} admission): {stats};"
        f" good client answers during the flood {codes}"
    )
    for name, kib in peak.items():
        print(
            f"  peak RSS {name}: {kib / 1024:.0f} MiB (at start {before.get(name, 0) / 1024:.0f})"
        )
    assert served, "the good client got no answer during the flood"
    assert set(served) <= {"0000", "5002"}, codes
    for name, kib in peak.items():
        assert kib < PEAK_RSS_BOUND_MIB * 1024, f"{name} peaked at {kib // 1024} MiB"


async def test_peak_rss_stays_bounded_under_attack(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    await attack_and_measure(tmp_path, dev_pki, broker, 4.0, 40, admission="")


async def test_peak_rss_stays_bounded_when_admission_does_not_help(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    await attack_and_measure(tmp_path, dev_pki, broker, 4.0, 40, admission=RELAXED_ADMISSION)


@pytest.mark.slow
async def test_peak_rss_stays_bounded_under_a_long_attack(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    await attack_and_measure(tmp_path, dev_pki, broker, 30.0, 200, admission=RELAXED_ADMISSION)
