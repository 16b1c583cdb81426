"""bench_pipeline.py's modes that measure the goals (bench/README.md, "Goals and modes").

- ``--goals``: the max (closed loop), then open loop at 10, 50 and 100 % of it,
  each a fresh daemon, then the floor; a table of goals 1-4 with pass/fail.
- ``--soak``: open loop at 50 % of max (or ``--rate``) for ``--soak-minutes``,
  sampling every ``--sample-every`` seconds: per engine the oldest QUEUED
  item's age, the items accepted and not yet ACKED or later, inbound clearing
  messages/s, and every process's PSS; at the end the PSS slopes (minutes
  5-15 of 15, i.e. the last two thirds) and goal 5's verdicts, with the
  clearing simulator's duplicate counts.
- ``--burst``: the same load; the clearing simulator withholds every answer
  for ``--withhold-for`` seconds (SIGUSR1), then releases them all at once:
  how fast the gateway applies the burst against the steady inbound rate.
- ``--idle-connections N``: N idle mutual-TLS connections (holder processes)
  plus the goal-3 load (50 % of max): gatewayd's memory and the p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import bench_pipeline as bp
import pipeline_floor as pf
import pipeline_probe as probe

from gateway.keys.devpki import DevPki
from gateway.net.tls import client_context

Gens = list[tuple[BaseProcess, Connection]]


def run_mode(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: Gens) -> int:
    if args.goals:
        return goals(args, tmp, pki, gens)
    if args.soak:
        return soak(args, tmp, pki, gens)
    if args.burst:
        return burst(args, tmp, pki, gens)
    return idle(args, tmp, pki, gens)


def _with(args: argparse.Namespace, **kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**(vars(args) | kw))


def _run(
    args: argparse.Namespace,
    tmp: Path,
    pki: DevPki,
    gens: Gens,
    name: str,
    rate: float,
    hooks: bp.Hooks | None = None,
) -> bp.RunStats:
    (run_dir := tmp / name).mkdir()
    label = f"{rate:.0f} msgs/s open loop" if rate else "max, closed loop"
    print(f"\n== {name}: {label}, {args.warmup:g}+{args.duration:g} s", flush=True)
    s = bp.one_run(args, run_dir, pki, gens, hooks, rate)
    bp.print_run(1, s)
    return s


def find_max(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: Gens) -> bp.RunStats:
    """One closed-loop run of ``--max-duration`` seconds (its own pre-signed load)."""
    margs = _with(args, duration=args.max_duration)
    bp.start_generators(gens, margs, pki, args.max_guess, 1)
    try:
        return _run(margs, tmp, pki, gens, "max", 0.0)
    finally:
        bp.stop_generators(gens)


def _rate(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: Gens) -> float:
    """``--rate``, else half of a measured max (goal 3's and goal 5's load)."""
    if args.rate:
        return float(args.rate)
    return 0.5 * find_max(args, tmp, pki, gens).accepted


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


# ---------------------------------------------------------------------- goals


def goals(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: Gens) -> int:
    bp.start_generators(gens, args, pki, args.max_guess, 1)
    mx = _run(args, tmp, pki, gens, "max", 0.0)
    runs = {
        frac: _run(args, tmp, pki, gens, f"at{int(frac * 100)}", frac * mx.accepted)
        for frac in (0.1, 0.5, 1.0)
    }
    bp.stop_generators(gens)
    fl = bp.measure_floor(args, tmp, pki)
    bp.print_floor(args, fl)
    floor_us, acc_us, inline_us = fl[pf.FLOOR][0], fl[pf.ACCEPTANCE][0], fl[pf.INLINE][0]
    floor_rate = 1e6 / floor_us
    print(
        f"\nGOALS, {bp.workers_label(args)} (floor {floor_us:.0f} µs/payment ="
        f" {floor_rate:.0f} msgs/s per core; acceptance steps {acc_us:.0f} µs)"
    )
    rows: list[tuple[str, str, str, str, bool]] = []
    full = runs[1.0]
    r1 = mx.accepted / floor_rate
    rows.append(
        (
            "1 throughput",
            f"max {mx.accepted:.0f} msgs/s; at 100 % "
            f"{'keeps up' if full.keeps_up() else 'FALLS BEHIND'}",
            f"{r1:.2f}x floor rate",
            ">= 1.5x, cycle keeps up",
            r1 >= 1.5 and full.keeps_up(),
        )
    )
    for frac, s in runs.items():
        r2 = s.cpu_us / floor_us
        rows.append(
            (
                f"2 cost at {frac:.0%}",
                f"{s.cpu_us:.0f} µs/payment at {s.accepted:.0f}/s",
                f"{r2:.2f}x floor",
                "<= 1.3x",
                r2 <= 1.3,
            )
        )
    for frac, bound in ((0.5, 20.0), (0.1, 5.0)):
        s = runs[frac]
        rows.append(
            (
                f"3 p99 at {frac:.0%}",
                f"p99 {s.lat_ms[2]:.1f} ms at {s.accepted:.0f}/s;"
                f" fsync p99 {s.fsync_p99_ms:.1f} ms",
                "",
                f"<= {bound:g} ms",
                s.lat_ms[2] <= bound,
            )
        )
    r4 = inline_us / acc_us
    rows.append(
        (
            "4 single process",
            f"{inline_us:.0f} µs/payment ({1e6 / inline_us:.0f}/s/core)",
            f"{r4:.2f}x acceptance steps",
            "<= 1.15x",
            r4 <= 1.15,
        )
    )
    w = max(len(r[1]) for r in rows)
    for goal, figure, ratio, limit, ok in rows:
        print(f"  {goal:18s} {figure:{w}s}  {ratio:24s} {limit:26s} {_verdict(ok)}")
    cold = fl[pf.COLD][0] / fl[pf.INSPECT][0]
    print(
        f"  (info) inspect run cold, one every {pf.COLD_GAP_S * 1000:.0f} ms:"
        f" {fl[pf.COLD][0]:.0f} µs, {cold:.2f}x back to back (goal 2's floor is back to back)"
    )
    print("  5 and 6: --soak, --burst and --idle-connections (bench/README.md)")
    print(
        "  others' CPU (cores) at max: "
        + ", ".join(f"{k} {v:.2f}" for k, v in mx.cores.items() if not k.startswith("gw "))
    )
    return 0


# ----------------------------------------------------------------------- soak


@dataclass
class Sample:
    t: float  # seconds since the measured window began
    backlog: probe.Backlog
    inbound_per_s: float
    pss_kib: dict[str, int]
    rss_kib: dict[str, int]


class SoakHooks(bp.Hooks):
    """Samples the journal, the metrics and every process's memory during the run."""

    def __init__(
        self, every: float, on_sample: Callable[[SoakHooks, bp.RunCtx, float], None] | None = None
    ) -> None:
        self.every = every
        self.samples: list[Sample] = []
        self.on_sample = on_sample
        self.sim_stats: dict[str, Any] = {}

    def measure(self, ctx: bp.RunCtx) -> None:
        start, last = time.monotonic(), probe.scrape(ctx.metrics_url)
        t_last = start
        while (now := time.monotonic()) < ctx.t_end:
            time.sleep(max(0.0, min(ctx.t_end, t_last + self.every) - now))
            m, t = probe.scrape(ctx.metrics_url), time.monotonic()
            procs = probe.labelled(ctx.roots())
            mem = {k: probe.memory_kib(p) for k, p in procs.items()}
            s = Sample(
                t - start,
                probe.backlog(ctx.journal),
                (m.inbound - last.inbound) / max(1e-9, t - t_last),
                {k: v[1] for k, v in mem.items()},
                {k: v[0] for k, v in mem.items()},
            )
            self.samples.append(s)
            print_sample(s, ctx.rate)
            last, t_last = m, t
            if self.on_sample is not None:
                self.on_sample(self, ctx, s.t)

    def after(self, ctx: bp.RunCtx) -> None:
        if ctx.sim is not None:  # its final counters are written on SIGTERM
            bp.stop_proc(ctx.sim, 10)
        with contextlib.suppress(OSError, ValueError):
            self.sim_stats = json.loads(ctx.sim_stats.read_text())


def _short(name: str) -> str:
    return name.replace("load generators", "gen").replace("clearing sim", "sim")


def print_sample(s: Sample, rate: float) -> None:
    b = s.backlog
    ages = " ".join(f"{e}={a:.1f}" for e, a in sorted(b.oldest_queued_s.items())) or "-"
    mem = " ".join(f"{_short(k)}={v / 1024:.0f}" for k, v in s.pss_kib.items())
    print(
        f"  t={s.t:6.0f}s oldest QUEUED s: {ages:28s} unfinished {b.unfinished:6d}"
        f" (bound {2 * rate:.0f}) inbound {s.inbound_per_s:6.0f}/s  PSS MiB: {mem}",
        flush=True,
    )


def soak_summary(args: argparse.Namespace, h: SoakHooks, rate: float, minutes: float) -> bool:
    """Goal 5's verdicts from the samples; True when every one passes."""
    if not h.samples:
        print("no samples")
        return False
    t_from = minutes * 60 / 3  # minutes 5-15 of a 15-minute soak
    ages = [max(s.backlog.oldest_queued_s.values(), default=0.0) for s in h.samples]
    unf = [s.backlog.unfinished for s in h.samples]
    inbound = [s.inbound_per_s for s in h.samples]
    print(
        f"\nSOAK {minutes:g} min at {rate:.0f} msgs/s, {len(h.samples)} samples:"
        f" inbound clearing {statistics.median(inbound):.0f}/s median"
    )
    slopes = {}
    for name in h.samples[-1].pss_kib:
        pts = [(s.t, s.pss_kib[name]) for s in h.samples if s.t >= t_from and name in s.pss_kib]
        slopes[name] = probe.slope_mib_per_10min(pts)
    print(
        f"  PSS slope over minutes {t_from / 60:g}-{minutes:g} (MiB per 10 min; last PSS, RSS MiB):"
    )
    last = h.samples[-1]
    for name, sl in slopes.items():
        print(
            f"    {name:40s} {sl:+8.2f}   {last.pss_kib[name] / 1024:7.1f} "
            f"{last.rss_kib[name] / 1024:7.1f}  {_verdict(not sl >= 5.0)}"
        )
    ok_age, ok_unf = max(ages) <= 5.0, max(unf) <= 2 * rate
    ok_mem = all(not s >= 5.0 for s in slopes.values())
    print(
        f"  5a oldest QUEUED age, max over samples {max(ages):.1f} s (<= 5 s): {_verdict(ok_age)}"
    )
    print(
        f"  5b unfinished items, max {max(unf)} (<= 2 s x {rate:.0f}/s = {2 * rate:.0f}):"
        f" {_verdict(ok_unf)}"
    )
    print(f"  5c PSS slope of every process < 5 MiB/10 min: {_verdict(ok_mem)}")
    st = h.sim_stats
    print(
        f"  clearing simulator: received {st.get('received', '?')}, duplicates"
        f" {st.get('duplicates', '?')}, late_duplicates {st.get('late_duplicates', '?')},"
        f" invalid {st.get('invalid', '?')}"
    )
    return ok_age and ok_unf and ok_mem


def soak(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: Gens) -> int:
    rate = _rate(args, tmp, pki, gens)
    sargs = _with(args, duration=args.soak_minutes * 60)
    bp.start_generators(gens, sargs, pki, rate, 1)
    h = SoakHooks(args.sample_every)
    s = _run(sargs, tmp, pki, gens, "soak", rate, h)
    ok = soak_summary(args, h, rate, args.soak_minutes)
    print(
        f"  acceptance over the soak: {s.accepted:.0f} msgs/s, p99 {s.lat_ms[2]:.1f} ms,"
        f" {s.cpu_us:.0f} µs CPU/payment; goal 5: {_verdict(ok)}"
    )
    return 0


# ---------------------------------------------------------------------- burst


@dataclass
class BurstState:
    steady: list[float] = field(default_factory=list)
    released_at: float = math.nan
    counts: list[tuple[float, float]] = field(default_factory=list)  # (t, inbound total)


class BurstHooks(bp.Hooks):
    """Steady phase, then SIGUSR1 (withhold) for ``hold`` s, SIGUSR1 (release), then drain."""

    def __init__(self, steady: float, hold: float) -> None:
        self.steady_s, self.hold = steady, hold
        self.st = BurstState()
        self.sim_stats: dict[str, Any] = {}

    def measure(self, ctx: bp.RunCtx) -> None:
        assert ctx.sim is not None, "--burst needs the clearing simulator"
        t0, c0 = time.monotonic(), probe.scrape(ctx.metrics_url).inbound
        time.sleep(self.steady_s)
        t1, c1 = time.monotonic(), probe.scrape(ctx.metrics_url).inbound
        self.st.steady.append((c1 - c0) / (t1 - t0))
        os.kill(ctx.sim.pid, signal.SIGUSR1)
        print(
            f"  steady inbound {self.st.steady[0]:.0f}/s; withholding for {self.hold:g} s",
            flush=True,
        )
        time.sleep(self.hold)
        self.st.released_at = time.monotonic()
        self.st.counts.append((self.st.released_at, probe.scrape(ctx.metrics_url).inbound))
        os.kill(ctx.sim.pid, signal.SIGUSR1)
        while (now := time.monotonic()) < ctx.t_end:
            time.sleep(min(0.5, max(0.0, ctx.t_end - now)))
            self.st.counts.append((time.monotonic(), probe.scrape(ctx.metrics_url).inbound))

    def after(self, ctx: bp.RunCtx) -> None:
        if ctx.sim is not None:
            bp.stop_proc(ctx.sim, 10)
        with contextlib.suppress(OSError, ValueError):
            self.sim_stats = json.loads(ctx.sim_stats.read_text())


def burst(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: Gens) -> int:
    rate = _rate(args, tmp, pki, gens)
    dur = args.steady + args.withhold_for + max(args.steady, 30.0)
    bargs = _with(args, duration=dur)
    bp.start_generators(gens, bargs, pki, rate, 1)
    h = BurstHooks(args.steady, args.withhold_for)
    s = _run(bargs, tmp, pki, gens, "burst", rate, h)
    steady = h.st.steady[0] if h.st.steady and h.st.steady[0] > 0 else math.nan
    pts = h.st.counts
    if len(pts) < 2:
        print("\nBURST: no samples after the release")
        return 1
    rates = [
        (t1 - pts[0][0], (c1 - c0) / (t1 - t0)) for (t0, c0), (t1, c1) in itertools.pairwise(pts)
    ]
    # Withholding skipped ~steady x hold messages.  The burst is over at the end of the last
    # fast 0.5-s step once 90 % of those were applied: the rate is back near the steady one.
    missed = steady * args.withhold_for
    t_r, c_r = pts[0]
    end = next(
        (
            i - 1
            for i in range(2, len(pts))
            if pts[i][1] - c_r >= 0.9 * missed and rates[i - 1][1] <= 1.5 * steady
        ),
        None,
    )
    last = end if end is not None else len(pts) - 1
    applied, took = pts[last][1] - c_r, pts[last][0] - t_r
    brate = applied / took if took > 0 else math.nan
    peak = max((r for _, r in rates), default=math.nan)
    caught = f"burst over after {took:.1f} s" if end is not None else "NOT caught up by the end"
    print(
        f"\nBURST at {rate:.0f} msgs/s: withheld {h.sim_stats.get('withheld', '?')} answers"
        f" for {args.withhold_for:g} s (~{missed:.0f} inbound messages missed); after the"
        f" release the gateway applied {applied:.0f} inbound messages, {caught}: {brate:.0f}/s"
        f" (peak 0.5-s {peak:.0f}/s) vs steady {steady:.0f}/s: {brate / steady:.2f}x"
        f" (>= 2x: {_verdict(end is not None and brate >= 2 * steady)})"
    )
    print(
        "  inbound/s after the release, 0.5-s steps: "
        + " ".join(f"{r:.0f}" for _, r in rates[: last + 4])
    )
    print(
        f"  clearing simulator: duplicates {h.sim_stats.get('duplicates', '?')},"
        f" late_duplicates {h.sim_stats.get('late_duplicates', '?')}; acceptance"
        f" {s.accepted:.0f} msgs/s, p99 {s.lat_ms[2]:.1f} ms"
    )
    return 0


# ----------------------------------------------------------------------- idle


def holder_main(pki_dir: Path, host: str, port: int, n: int, pipe: Connection) -> None:
    """A process holding ``n`` idle mutual-TLS connections until told to close them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def hold() -> None:
        pki, loop = DevPki.open(pki_dir), asyncio.get_running_loop()
        kp, cp = pki.client(*bp.OPERATORS[0][:2])
        ctx = client_context(pki.server_ca, cp, kp)
        transports: list[asyncio.BaseTransport] = []
        failed: list[str] = []
        sem = asyncio.Semaphore(32)

        async def one() -> None:
            async with sem:
                try:
                    tr, _ = await loop.create_connection(
                        asyncio.Protocol, host, port, ssl=ctx, server_hostname="localhost"
                    )
                    transports.append(tr)
                except OSError as exc:
                    failed.append(repr(exc))

        await asyncio.gather(*(one() for _ in range(n)))
        alive = sum(1 for t in transports if not t.is_closing())
        pipe.send((alive, failed[:3], len(failed)))
        await loop.run_in_executor(None, pipe.recv)
        alive = sum(1 for t in transports if not t.is_closing())
        for t in transports:
            t.close()
        pipe.send(alive)

    asyncio.run(hold())


class IdleHooks(bp.Hooks):
    """Opens N idle connections before the load; memory with them, idle and loaded."""

    PER_PROC = 2500

    def __init__(self, n: int, pki_dir: Path) -> None:
        self.n, self.pki_dir = n, pki_dir
        self.admission = {"max_conns_per_ip": n + 1000, "accept_rate_per_ip": 1e6}
        self.max_connections = n + 1000
        self.holders: Gens = []
        self.idle_mem = (math.nan, math.nan)
        self.alive_end = 0

    def before_load(self, ctx: bp.RunCtx) -> None:
        host, port = json.loads((ctx.run_dir / "ports.json").read_text())["listeners"]["tls"]
        mpc, t = mp.get_context("fork"), time.monotonic()
        procs = max(1, math.ceil(self.n / self.PER_PROC))
        for k in range(procs):
            share = self.n // procs + (1 if k < self.n % procs else 0)
            parent, child = mpc.Pipe()
            proc = mpc.Process(
                target=holder_main, args=(self.pki_dir, host, port, share, child), daemon=True
            )
            proc.start()
            self.holders.append((proc, parent))
        opened = 0
        for _, pipe in self.holders:
            alive, errors, nfail = pipe.recv()
            opened += alive
            if nfail:
                print(f"  {nfail} connections failed, e.g. {errors}")
        mem = [probe.memory_kib(p) for p in probe.tree(ctx.gw.pid)]
        self.idle_mem = (sum(m[0] for m in mem) / 1024, sum(m[1] for m in mem) / 1024)
        print(
            f"  {opened} idle mutual-TLS connections open in {time.monotonic() - t:.0f} s;"
            f" gatewayd RSS {self.idle_mem[0]:.0f} MiB, PSS {self.idle_mem[1]:.0f} MiB (idle)",
            flush=True,
        )

    def others(self) -> dict[str, list[int]]:
        return {"idle holders": [p.pid or 0 for p, _ in self.holders]}

    def after(self, ctx: bp.RunCtx) -> None:
        for _, pipe in self.holders:
            pipe.send(None)
        self.alive_end = sum(pipe.recv() for _, pipe in self.holders if pipe.poll(30))
        for proc, _ in self.holders:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


def idle(args: argparse.Namespace, tmp: Path, pki: DevPki, gens: Gens) -> int:
    rate = _rate(args, tmp, pki, gens)
    bp.start_generators(gens, args, pki, rate, 1)
    h = IdleHooks(args.idle_connections, pki.dir)
    s = _run(args, tmp, pki, gens, "idle", rate, h)
    ok_mem, ok_p99 = s.gw_rss_mib < 1024, s.lat_ms[2] <= 20.0
    print(
        f"\nIDLE {args.idle_connections} connections (still open at the end: {h.alive_end})"
        f" + {rate:.0f} msgs/s: gatewayd (all processes) RSS {s.gw_rss_mib:.0f} MiB,"
        f" PSS {s.gw_pss_mib:.0f} MiB (< 1 GiB: {_verdict(ok_mem)}); idle only: RSS"
        f" {h.idle_mem[0]:.0f}, PSS {h.idle_mem[1]:.0f} MiB; p99 {s.lat_ms[2]:.1f} ms"
        f" (<= 20 ms: {_verdict(ok_p99)}); fsync p99 {s.fsync_p99_ms:.1f} ms"
    )
    return 0
