"""Clearing-link throughput: QoS 1 publishes/s of 2 KiB to a local mosquitto.

Each publisher awaits its PUBACK before the next publish (as the outbox pump
does), so the concurrency is the number of messages in flight from the
gateway's side.  docs/architecture.md §9 measured 9-12k/s with 20-100 in flight on this
kind of machine; this bench checks ``ClearingLink`` keeps that.

    python bench/bench_link.py [--count 6000] [--rounds 3] [--inflight 100]

It spawns its own mosquitto on 127.0.0.1 and a free port, runs a bounded
number of publishes per round (and gives up after 120 s), and stops the
broker at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.clearing.link import ClearingLink, LinkConfig
from gateway.testing import running_broker

PAYLOAD = bytes(2048)
CONCURRENCY = (1, 20, 100)


async def _ignore(topic: str, payload: bytes, props: dict[str, str]) -> None:
    return None


async def _round(link: ClearingLink, publishers: int, count: int) -> float:
    """Publishes per second for ``count`` publishes spread over ``publishers`` tasks."""
    per_task = max(1, count // publishers)

    async def publisher(n: int) -> None:
        for i in range(per_task):
            await link.publish(
                "clearing/beps/out", PAYLOAD, msg_tp="beps.121", msg_id=f"B{n:03d}{i:08d}"
            )

    started = time.perf_counter()
    async with asyncio.timeout(120):
        await asyncio.gather(*(publisher(n) for n in range(publishers)))
    return per_task * publishers / (time.perf_counter() - started)


async def _bench(url: str, count: int, rounds: int, inflight: int) -> dict[int, list[float]]:
    cfg = LinkConfig(url=url, client_id="bench-link", subscriptions=(), max_inflight=inflight)
    link = ClearingLink(cfg, _ignore)
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            await link.wait_connected()
        await _round(link, 20, min(count, 1000))  # warm-up
        results: dict[int, list[float]] = {}
        for publishers in CONCURRENCY:
            results[publishers] = [
                await _round(link, publishers, count if publishers > 1 else count // 3)
                for _ in range(rounds)
            ]
        return results
    finally:
        await link.close()
        await task


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="publishes per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument("--inflight", type=int, default=100, help="paho in-flight window")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, running_broker(Path(tmp)) as broker:
        results = asyncio.run(_bench(broker.url, args.count, args.rounds, args.inflight))
    print(f"QoS 1, {len(PAYLOAD)} B payload, max_inflight={args.inflight}, mosquitto local")
    for publishers, rates in results.items():
        spread = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"{publishers:4d} concurrent: {statistics.median(rates):10,.0f} publishes/s"
            f"  (rounds: {spread})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
