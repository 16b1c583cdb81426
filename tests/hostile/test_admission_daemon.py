"""Admission against the real daemon: per-address and per-CorpId limits, bans, load shedding.

Expected behaviour (issue 5; corplink.md §8 "frame → per-address rate and
gateway load (5001, 5002) → … → per-CorpId rate (5001)"):

- over the per-address connection limit → the connection is closed at once,
  with no response;
- over the per-address frame rate → 5001 with ``Head/RetryAfterMs``, nothing
  journaled;
- over the per-CorpId rate → 5001 with ``RetryAfterMs``, MsgId echoed;
- after ``ban_after_strikes`` bad frames → the address is banned: new
  connections are closed at once for ``ban_seconds``; other addresses are
  unaffected; the ban is counted once (``gateway_address_bans_total``);
- load shedding → 5002, nothing journaled.

The abusive peer binds 127.0.0.2 (loopback is a /8 on Linux); the
well-behaved client stays on 127.0.0.1.  Limits come from the
``[admission]`` and ``[load]`` tables, named like ``AdmissionConfig``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.keys.devpki import DevPki
from gateway.net.framing import encode_frame
from gateway.ops import metrics
from gateway.sim.erp import NS, Reply
from gateway.testing import Broker
from tests.hostile.tools import Hostile, eof_without_data, hostile_daemon, msg_id, payment

OTHER = "127.0.0.2"


@pytest.fixture
def limits() -> dict[str, Any]:
    return {}


@pytest.fixture(params=[0, 2], ids=["one-process", "two-fronts"])
async def gated(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    dev_pki: DevPki,
    broker: Broker,
    limits: dict[str, Any],
) -> AsyncIterator[Hostile]:
    """The daemon serving clients itself, and with two front processes: the limits
    are the core's either way, so they hold for the daemon as a whole
    (docs/architecture.md §1)."""
    workers = {"workers": {"processes": 0, "fronts": request.param}}
    async with hostile_daemon(tmp_path, dev_pki, broker.url, {**limits, **workers}) as h:
        yield h


def retry_after_ms(reply: Reply) -> int | None:
    text = etree.fromstring(reply.raw).findtext(f"{{{NS}}}Head/{{{NS}}}RetryAfterMs")
    return int(text) if text is not None else None


async def pipeline(h: Hostile, bodies: list[bytes], local_ip: str | None = None) -> list[Reply]:
    """Write every frame at once on one connection; the replies in arrival order."""
    reader, writer = await h.open("tcp", local_ip=local_ip)
    try:
        writer.write(b"".join(encode_frame(b) for b in bodies))
        await writer.drain()
        return [await h.read_reply(reader) for _ in bodies]
    finally:
        writer.close()


async def journaled(h: Hostile, mid: str, corp_id: str = "C100000001") -> bool:
    """Whether the journal holds ``mid`` (read from the store: a STATUS request
    would itself be subject to the limits under test)."""
    return await h.gw.store.find_request(corp_id, mid) is not None


@pytest.mark.parametrize("limits", [{"admission": {"max_conns_per_ip": 3}}])
async def test_connection_limit_per_address(gated: Hostile) -> None:
    held = [await gated.open("tcp", local_ip=OTHER) for _ in range(3)]
    for reader, writer in held:  # all three are served
        writer.write(encode_frame(gated.signed_pay()))
        await writer.drain()
        assert (await gated.read_reply(reader)).ret_code == "0000"
    reader, writer = await gated.open("tcp", local_ip=OTHER)
    writer.write(encode_frame(gated.signed_pay()))
    await writer.drain()
    assert await eof_without_data(reader) == b""  # closed at once, no response
    writer.close()
    await gated.serves()  # 127.0.0.1 is not limited by 127.0.0.2's connections
    _, first = held.pop()
    first.close()
    await first.wait_closed()
    reply = None
    for _ in range(50):  # once the daemon has seen the close, there is room again
        reader, writer = await gated.open("tcp", local_ip=OTHER)
        writer.write(encode_frame(gated.signed_pay()))
        await writer.drain()
        try:
            reply = await gated.read_reply(reader)
            break
        except (asyncio.IncompleteReadError, ConnectionError):
            await asyncio.sleep(0.1)
        finally:
            writer.close()
    assert reply is not None
    assert reply.ret_code == "0000"
    for _, w in held:
        w.close()


@pytest.mark.parametrize(
    "limits", [{"admission": {"frame_rate_per_ip": 5.0, "frame_burst_per_ip": 5.0}}]
)
async def test_frame_rate_per_address_is_5001_with_retry_after(gated: Hostile) -> None:
    mids = [msg_id("F") for _ in range(12)]
    replies = await pipeline(gated, [gated.signed_pay(m) for m in mids], local_ip=OTHER)
    by_code: dict[str, list[Reply]] = {}
    for r in replies:
        by_code.setdefault(r.ret_code, []).append(r)
    assert set(by_code) == {"0000", "5001"}, {c: len(v) for c, v in by_code.items()}
    assert 5 <= len(by_code["0000"]) <= 6  # the burst, plus a refill at most
    for r in by_code["5001"]:
        retry = retry_after_ms(r)
        assert retry is not None
        assert 1 <= retry <= 1000
    limited = {m for m in mids if m not in {r.msg_id for r in by_code["0000"]}}
    for mid in limited:
        assert not await journaled(gated, mid)
    await gated.serves()


@pytest.mark.parametrize("limits", [{"admission": {"corp_rate": 2.0, "corp_burst": 2.0}}])
async def test_corp_rate_is_5001_with_retry_after(gated: Hostile) -> None:
    mids = [msg_id("C") for _ in range(6)]
    replies = await pipeline(gated, [gated.signed_pay(m) for m in mids])
    codes = sorted(r.ret_code for r in replies)
    assert codes.count("0000") in (2, 3), codes
    assert set(codes) == {"0000", "5001"}, codes
    for r in replies:
        if r.ret_code == "5001":
            assert r.msg_id in mids  # parsed far enough to echo the MsgId (§8)
            assert retry_after_ms(r) is not None
            assert not await journaled(gated, r.msg_id)
    # another corporate has its own bucket
    other = await gated.erp.client("C100000002", "op01")
    try:
        p = dataclasses.replace(payment(), payer_acct="6222000000000101")
        r = await other.pay(msg_id("C2"), gated.now(), p)
        assert r.ret_code == "0000", r.ret_msg
    finally:
        await other.close()


@pytest.mark.parametrize(
    "limits", [{"admission": {"ban_after_strikes": 5, "ban_window": 60.0, "ban_seconds": 2.0}}]
)
async def test_ban_after_strikes_then_lifted(gated: Hostile) -> None:
    bans = metrics.REGISTRY.get_sample_value("gateway_address_bans_total") or 0.0
    reader, writer = await gated.open("tcp", local_ip=OTHER)
    for _ in range(5):  # malformed XML: answered 1002, the connection stays open
        writer.write(encode_frame(b"<not xml"))
    await writer.drain()
    codes = [(await gated.read_reply(reader)).ret_code for _ in range(5)]
    assert codes == ["1002"] * 5
    writer.write(encode_frame(b"<still not xml"))  # after the ban: not parsed
    await writer.drain()
    writer.close()
    reader, writer = await gated.open("tcp", local_ip=OTHER)
    writer.write(encode_frame(gated.signed_pay()))
    await writer.drain()
    assert await eof_without_data(reader) == b""  # banned: closed at once
    writer.close()
    await gated.serves()  # other addresses are unaffected
    assert (metrics.REGISTRY.get_sample_value("gateway_address_bans_total") or 0.0) == bans + 1
    await asyncio.sleep(2.2)  # ban_seconds
    reader, writer = await gated.open("tcp", local_ip=OTHER)
    writer.write(encode_frame(gated.signed_pay()))
    await writer.drain()
    assert (await gated.read_reply(reader)).ret_code == "0000"
    writer.close()


@pytest.mark.parametrize("limits", [{"admission": {"ban_after_strikes": 3, "ban_seconds": 300.0}}])
async def test_bad_signatures_and_bad_frames_count_as_strikes(gated: Hostile) -> None:
    for _ in range(2):  # two 2001s...
        body = gated.signed_pay().replace(b">1.00<", b">9.00<")
        reader, writer = await gated.open("tcp", local_ip=OTHER)
        writer.write(encode_frame(body))
        await writer.drain()
        assert (await gated.read_reply(reader)).ret_code == "2001"
        writer.close()
    reader, writer = await gated.open("tcp", local_ip=OTHER)  # ...and one 1001
    writer.write(b"NOTDIGIT")
    await writer.drain()
    assert (await gated.read_reply(reader)).ret_code == "1001"
    writer.close()
    reader, writer = await gated.open("tcp", local_ip=OTHER)
    assert await eof_without_data(reader) == b""
    writer.close()
    await gated.serves()


@pytest.mark.parametrize("limits", [{"load": {"max_pending": 1}}])
async def test_load_shedding_is_5002_and_nothing_journaled(gated: Hostile) -> None:
    mids = [msg_id("L") for _ in range(30)]
    replies = await pipeline(gated, [gated.signed_pay(m) for m in mids])
    by_mid = {r.msg_id: r.ret_code for r in replies if r.msg_id}
    shed = [r for r in replies if r.ret_code == "5002"]
    assert shed, sorted(by_mid.values())
    assert {r.ret_code for r in replies} <= {"0000", "5002"}
    for r in shed:
        assert r.gw_ref is None
    accepted = {m for m, code in by_mid.items() if code == "0000"}
    not_accepted = set(mids) - accepted
    assert len(shed) == len(not_accepted)
    for mid in not_accepted:
        assert not await journaled(gated, mid)
    for mid in list(accepted)[:3]:
        assert await journaled(gated, mid)
    await gated.serves()
