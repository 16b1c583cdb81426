"""Micro-measure: a front's metrics snapshot, and the core's merged /metrics with 2 fronts.

Run on purpose (not a test): ``python bench/bench_metrics_merge.py [--n 2000]``.
Touches every labelled series of ``gateway.ops.metrics`` once (the series created at 0
plus realistic label values for the open ones: listeners, TrnCode x RetCode, stages,
message types...), then times, in this one process:

- ``snapshot()`` of the real registry (what a front sends), and its size;
- decoding one snapshot in the core (``update`` + the decode a scrape triggers);
- ``generate_latest`` of the merge with 2 fronts that each sent a new snapshot, and
  with nothing new since the last scrape; and of the core's registry alone (today).

Prints the median of 5 runs of ``--n`` rounds each, in µs per operation.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from gateway.model import Engine, TrnCode
from gateway.ops import metrics
from gateway.ops.metrics_merge import FrontMetrics, snapshot

LISTENERS = ("corplink", "corplink_tls")
RET_CODES = ("0000", "1002", "2001", "3001", "4001", "9999")
STAGES = ("frame", "parse", "schema", "verify", "decode", "replay", "business", "route")
STAGES += ("journal", "sign", "write")
MSG_TPS = ("hvps.111", "beps.121", "intra.101", "ccms.314")
INBOUND_TPS = ("ccms.990", "hvps.141", "beps.122", "beps.126", "ccms.315", "ccms.314")


def touch_everything() -> None:
    """Give every labelled series a value, as a busy daemon would."""
    for listener in LISTENERS:
        metrics.CONNECTIONS.labels(listener).inc()
        metrics.CONNECTIONS_OPEN.labels(listener).set(3)
        metrics.FRAMES.labels(listener).inc()
        for reason in ("eof", "idle", "header", "frame_timeout", "reset", "cert_denied"):
            metrics.CONNECTION_CLOSES.labels(listener, reason).inc()
        for reason in ("header", "length", "empty", "frame_timeout"):
            metrics.FRAME_ERRORS.labels(listener, reason).inc()
    for trn in TrnCode:
        for code in RET_CODES:
            metrics.REQUESTS.labels(trn.value, code).inc()
    for stage in STAGES:
        metrics.STAGE_SECONDS.labels(stage).observe(0.002)
    for engine in Engine:
        for msg_tp in MSG_TPS:
            for attempt in ("first", "resend"):
                metrics.OUTBOUND.labels(engine.value, msg_tp, attempt).inc()
    for msg_tp in INBOUND_TPS:
        metrics.INBOUND.labels(msg_tp).inc()
    for kind in ("tls", "signing", "clearing"):
        metrics.CERT_EXPIRY.labels(kind, f"{kind}-2026").set(1.8e9)
    metrics.CRL_NEXT_UPDATE.labels("Dev Root CA").set(1.8e9)
    for kind in ("reply", "inquiry", "reply_unknown", "inquiry_unknown"):
        metrics.INQUIRIES.labels("in", kind).inc()
        metrics.INQUIRIES.labels("out", kind).inc()
    for kind in ("balance", "account_check"):
        for outcome in ("ok", "timeout", "error"):
            metrics.CORE_REQUESTS.labels(kind, outcome).inc()
    for state in ("starting", "ready", "draining", "stopped"):
        metrics.LIFECYCLE.labels(state).set(0)
    # then every series that exists, created at 0 or above, once more
    objects = {
        obj.describe()[0].name: obj
        for obj in vars(metrics).values()
        if isinstance(obj, (Counter, Gauge, Histogram))
    }
    for family in metrics.REGISTRY.collect():
        obj = objects[family.name]
        seen = set()
        for s in family.samples:
            labels = tuple((k, v) for k, v in s.labels.items() if k != "le")
            if labels in seen:
                continue
            seen.add(labels)
            child = obj.labels(**dict(labels)) if labels else obj
            if isinstance(child, (Counter, Gauge)):
                child.inc()
            elif isinstance(child, Histogram):
                child.observe(0.004)


def per_op(fn: Callable[[], object], n: int) -> float:
    """Median over 5 runs of n calls, in µs per call."""
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="rounds per run")
    args = ap.parse_args()
    touch_everything()

    families = list(metrics.REGISTRY.collect())
    series = {
        (f.name, tuple((k, v) for k, v in s.labels.items() if k != "le"))
        for f in families
        for s in f.samples
        if not s.name.endswith("_created")
    }
    samples = sum(1 for f in families for s in f.samples if not s.name.endswith("_created"))
    data = snapshot()
    sent = len(pickle.loads(data))  # noqa: S301 - our own bytes
    print(f"registry: {len(families)} families, {len(series)} label series, {samples} samples")
    print(f"snapshot: {len(data)} bytes ({sent} families sent, core-only gauges left out)")
    print(f"snapshot():                              {per_op(snapshot, args.n):8.1f} µs")

    decoder = FrontMetrics(metrics.REGISTRY)

    def decode_one() -> None:
        decoder.update(1, data)
        decoder._refresh(1)  # what a scrape does per front with a new snapshot

    print(f"update + decode one snapshot:            {per_op(decode_one, args.n // 4):8.1f} µs")

    merged = FrontMetrics(metrics.REGISTRY)
    other = snapshot()

    def scrape_fresh() -> bytes:
        merged.update(1, data)
        merged.update(2, other)
        return generate_latest(merged)

    print(f"merged scrape, 2 fronts, both new:       {per_op(scrape_fresh, args.n // 4):8.1f} µs")
    print(
        "merged scrape, 2 fronts, nothing new:    "
        f"{per_op(lambda: generate_latest(merged), args.n // 4):8.1f} µs"
    )
    print(
        "core registry alone (today's /metrics):  "
        f"{per_op(lambda: generate_latest(metrics.REGISTRY), args.n // 4):8.1f} µs"
    )
    print(f"merged body: {len(generate_latest(merged))} bytes")


if __name__ == "__main__":
    main()
