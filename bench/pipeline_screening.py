"""bench_pipeline.py ``--screening``: what screening every payment costs the request path.

docs/foreign-currency.md §5 lets a bank screen every payment
(``screening.scope = "all"``), not only foreign-currency ones.  This mode
measures what that adds, on the real daemon, at half of its unscreened max:

1. one closed-loop max run with ``scope = "fx"`` (the bench's CNY payments are
   then not screened) gives the rate, unless ``--rate`` is given;
2. ``--pairs`` pairs of open-loop runs at that rate, interleaved (fx, all, fx,
   all, ...) so that the machine's drift over the minutes falls on both sides;
   both sides load the same generated list (``--list-entries`` entries with 3
   aliases each, ``bench_screening.py``'s generator), so memory and start-up
   are the same and only the screening differs;
3. the medians of each side's p99 ack and gatewayd CPU per accepted payment,
   and their differences (the bar: p99 + ≤ 1 ms, CPU + ≤ 15 %).

Every run also reports how many answers were not 0000: a payment that went to
REVIEW would be a hit on the random list, which the names the bench sends
(Chinese payer and payee names) should never be.
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

import bench_pipeline as bp
import pipeline_modes as pm
from bench_screening import Pools, write_list

from gateway.keys.devpki import DevPki

SEED = 1


class ScreeningHooks(bp.Hooks):
    """The run's screening table: the generated list, and the scope under test."""

    def __init__(self, lists: Path, scope: str) -> None:
        self.overlay = f'[screening]\nlists = ["{lists}"]\nscope = "{scope}"\n\n'


def compare(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: pm.Gens) -> int:
    lists = tmp / "bench-list.csv"
    write_list(lists, Pools(random.Random(SEED)), args.list_entries, 3)
    print(f"list: {args.list_entries:,} entries with 3 aliases each ({lists.stat().st_size:,} B)")
    rate = float(args.rate) if args.rate else 0.0
    if not rate:
        margs = pm._with(args, duration=args.max_duration)
        bp.start_generators(gens, margs, pki, args.max_guess, 1)
        try:
            mx = pm._run(margs, tmp, pki, gens, "max", 0.0, ScreeningHooks(lists, "fx"))
        finally:
            bp.stop_generators(gens)
        rate = 0.5 * mx.accepted
    bp.start_generators(gens, args, pki, rate, 1)
    runs: dict[str, list[bp.RunStats]] = {"fx": [], "all": []}
    try:
        for n in range(args.pairs):
            for scope in ("fx", "all"):
                runs[scope].append(
                    pm._run(
                        args, tmp, pki, gens, f"{scope}{n + 1}", rate, ScreeningHooks(lists, scope)
                    )
                )
    finally:
        bp.stop_generators(gens)
    report(runs, rate)
    return 0


def report(runs: dict[str, list[bp.RunStats]], rate: float) -> None:
    med = statistics.median
    p99 = {k: med(r.lat_ms[2] for r in v) for k, v in runs.items()}
    cpu = {k: med(r.cpu_us for r in v) for k, v in runs.items()}
    acc = {k: med(r.accepted for r in v) for k, v in runs.items()}
    other = {k: sum(sum(c for code, c in r.codes.items() if code != "0000") for r in v)
             for k, v in runs.items()}  # fmt: skip
    n = len(runs["fx"])
    print(f"\nSCREENING scope all vs fx at {rate:.0f} msgs/s, median of {n} runs each:")
    for k in ("fx", "all"):
        print(
            f"  scope {k:3s}: accepted {acc[k]:.0f} msgs/s, p99 ack {p99[k]:.2f} ms,"
            f" {cpu[k]:.0f} µs CPU/payment; answers other than 0000: {other[k]}"
        )
    d_p99, d_cpu = p99["all"] - p99["fx"], cpu["all"] / cpu["fx"] - 1
    print(
        f"  difference: p99 {d_p99:+.2f} ms (bar <= +1 ms: {'pass' if d_p99 <= 1 else 'FAIL'}),"
        f" CPU/payment {d_cpu:+.1%} (bar <= +15 %: {'pass' if d_cpu <= 0.15 else 'FAIL'})"
    )
