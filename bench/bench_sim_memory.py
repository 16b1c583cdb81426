"""Clearing simulator memory: what it keeps per message once its dedupe window has passed.

Run on purpose (not part of the test suite)::

    python bench/bench_sim_memory.py [--messages 3000] [--rate 25] [--window 5] [--netting]

A soak of the whole daemon (``bench_pipeline.py --soak``) shows the
simulator's PSS growing; this finds *what* grows, in seconds rather than
minutes.  In this one process, on a temp dir: a dev PKI, a private
mosquitto, the clearing simulator (``ClearingSimulator``, ``dedupe_window``
= ``--window`` seconds instead of 300) and a publisher playing the gateway,
which signs every message beforehand (MsgIds consecutive like the
gateway's; a quarter ``intra.111``, a quarter ``hvps.111``, one item each,
half ``beps.121`` packages of 4 items) and publishes them at ``--rate`` per
second on ``clearing/<engine>/out``, the path a broker delivery takes.

tracemalloc runs from the start.  First a warm-up of three windows'
worth of messages (the MsgId memory fills up to its steady size), then a
snapshot, ``--messages`` more, each answered (ccms.990 and ccms.900), and a
second snapshot; before each snapshot the window passes idle, so that the
answers it holds are gone.  Printed: the bytes kept per measured message
(the difference between the snapshots: what outlives the window) and the
allocation sites that grew most.  Only Python's allocations are traced (libxml2's are not), so the
process's RSS before and after is printed as well.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiomqtt

from gateway.clearing.documents import build_envelope, build_pacs008, out_msg_id, serialize
from gateway.keys.devpki import generate_dev_pki
from gateway.keys.xmldsig import SigningKey, load_signing_key, sign_enveloped
from gateway.model import Engine
from gateway.sim.clearing import ClearingSimConfig, ClearingSimulator
from gateway.testing import running_simulator, start_broker
from tests.unit.clearing.pacs_samples import (
    CREATED,
    OUR_PARTICIPANT,
    PEER_PARTICIPANT,
    WORK_DATE,
    item,
    package,
)


def signed_messages(key: SigningKey, first: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` (topic, payload) as the gateway would publish them, MsgIds from ``first``."""
    out = []
    for seq in range(first, first + count):
        msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, seq)
        if seq % 4 == 0:
            msg_tp, engine, items = "intra.111", "intra", [item(seq, engine=Engine.INTRA)]
        elif seq % 4 == 1:
            msg_tp, engine, items = "hvps.111", "hvps", [item(seq)]
        else:
            msg_tp, engine, items = "beps.121", "beps", package(4)
        doc = build_pacs008(msg_id, CREATED, WORK_DATE, items, OUR_PARTICIPANT)
        root = build_envelope(
            msg_tp, msg_id, OUR_PARTICIPANT, PEER_PARTICIPANT, CREATED, WORK_DATE, doc
        )
        sign_enveloped(root, key)
        out.append((f"clearing/{engine}/out", serialize(root)))
    return out


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def publish_all(
    client: aiomqtt.Client, sim: ClearingSimulator, messages: list[tuple[str, bytes]], rate: float
) -> None:
    """Publish at ``rate`` per second, then wait until every one got its ccms.900."""
    target = sim.stats["statuses"] + len(messages)
    start = time.monotonic()
    for i, (topic, payload) in enumerate(messages):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.publish(topic, payload, qos=1)
    while sim.stats["statuses"] < target:
        await asyncio.sleep(0.05)
    # past the window every MsgId's answers go (on the next look-up): empty at each snapshot
    await asyncio.sleep(sim.msg_ids.window + 0.5)
    sim.msg_ids.seen(out_msg_id(PEER_PARTICIPANT, WORK_DATE, 0))


async def run(args: argparse.Namespace, tmp: Path) -> None:
    pki = generate_dev_pki(tmp / "pki")
    gateway_key = load_signing_key(pki.clearing_key, pki.clearing_cert)
    system_key = load_signing_key(pki.clearing_system_key, pki.clearing_system_cert)
    warm = int(3 * args.window * args.rate)
    t0 = time.monotonic()
    messages = signed_messages(gateway_key, 1, warm + args.messages)
    print(f"signed {len(messages)} messages in {time.monotonic() - t0:.0f} s")
    broker = start_broker(tmp / "broker")
    try:
        config = ClearingSimConfig(
            broker_url=broker.url,
            sign_key=system_key,
            gateway_certs=gateway_key.chain,
            dedupe_window=args.window,
            netting=args.netting,
        )
        tracemalloc.start(args.frames)
        sim = ClearingSimulator(config)
        publisher = aiomqtt.Client(broker.host, broker.port, identifier="bench-gateway")
        async with running_simulator(sim), publisher:
            await publish_all(publisher, sim, messages[:warm], args.rate)
            gc.collect()
            before, rss_before = tracemalloc.take_snapshot(), rss_kib()
            recent_before = sim.msg_ids.recent_count
            await publish_all(publisher, sim, messages[warm:], args.rate)
            gc.collect()
            after, rss_after = tracemalloc.take_snapshot(), rss_kib()
            recent_after = sim.msg_ids.recent_count
    finally:
        broker.stop()
    diff = after.compare_to(before, "traceback")
    total = sum(d.size_diff for d in diff)
    print(
        f"window {args.window:g} s at {args.rate:g}/s, netting {'on' if args.netting else 'off'}:"
        f" {args.messages} messages after {warm} warm-up"
    )
    print(f"  MsgIds with answers kept: {recent_before} then {recent_after}")
    print(f"  traced growth {total / 1024:.0f} KiB = {total / args.messages:.1f} bytes a message")
    print(f"  RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB")
    grown = sorted((d for d in diff if d.size_diff > 0), key=lambda d: -d.size_diff)
    for d in grown[: args.top]:
        here = next(
            (f for f in reversed(d.traceback) if "/gateway/" in f.filename), d.traceback[-1]
        )
        where = f"{here.filename.rsplit('/gateway/', 1)[-1]}:{here.lineno}"
        print(f"  {d.size_diff / args.messages:8.1f} B/msg  {d.count_diff:+7d} blocks  {where}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=3000, help="measured messages")
    p.add_argument("--rate", type=float, default=25.0, help="messages per second")
    p.add_argument("--window", type=float, default=5.0, help="the simulator's dedupe_window (s)")
    p.add_argument("--netting", action="store_true", help="answer BEPS ACSP, net in rounds")
    p.add_argument("--frames", type=int, default=8, help="traceback frames per allocation")
    p.add_argument("--top", type=int, default=8, help="allocation sites printed")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sim-memory-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
