"""Crash runs on purpose: N seeded SIGKILL runs of the real gatewayd, and their figures.

The same runs as ``tests/faults/test_crash.py`` (``tests/faults/crashkit.py``
explains the kill shapes), many at once, outside pytest::

    python bench/bench_crash.py                          # 100 SQLite seeds (100-199), 3 kills each
    python bench/bench_crash.py --backend postgres       # 20 seeds, two nodes on one database
    python bench/bench_crash.py --backend both
    python bench/bench_crash.py --seeds 107 112          # just these seeds (reproduce a failure)

The daemons run from a copy of the code taken at start, so edits in the
checkout during a long run cannot change it half-way.  Each seed gets a
fresh mosquitto, a fresh journal (SQLite file, or a fresh PostgreSQL
database on one private server) and a copy of one dev PKI.  A
failing seed is reported and the run goes on; the exit status is 1 if any
seed failed.  Printed at the end, per backend: runs, requests, answered,
unanswered, re-sent, journaled, clearing messages and re-sends, what the
kills left behind, **losses** and **duplicates** (both must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

# This repository's ``gateway`` and ``tests`` first: an editable install may point elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.ops.logs import configure_logging
from gateway.testing import start_broker
from gateway.testing_pg import PgServer, start_postgres
from tests.faults.crashkit import (
    LANDED,
    CrashRun,
    Figures,
    fresh_pg_database,
    make_plan,
    snapshot_code,
)


async def one_seed(
    tmp: Path, pki: DevPki, seed: int, backend: str, kills: int, pg: PgServer | None, code: Path
) -> Figures:
    run_dir = tmp / f"{backend}-seed-{seed}"
    run_dir.mkdir()
    seed_pki = DevPki.open(Path(shutil.copytree(pki.dir, run_dir / "pki")))
    broker = start_broker(run_dir / "broker")
    try:
        if backend == "postgres":
            assert pg is not None
            dsn = await fresh_pg_database(pg, f"crash_{seed}_{uuid.uuid4().hex[:8]}")
            plan = make_plan(seed, kills=kills, backend="postgres", nodes=("A", "B"))
            return await CrashRun(run_dir, seed_pki, broker, plan, dsn=dsn, code_root=code).run()
        plan = make_plan(seed, kills=kills)
        return await CrashRun(run_dir, seed_pki, broker, plan, code_root=code).run()
    finally:
        broker.stop()


SEED_TIMEOUT = 900.0
"""A seed that takes longer has hung: reported as failed, and the run goes on."""

COUNTED = (
    *("requests", "answered", "unanswered", "refused", "resent", "journaled"),
    *("clearing_messages", "clearing_resends", "lost", "doubled", "kills"),
)


def summary(backend: str, figs: list[Figures], failed: list[int], took: float) -> str:
    total: Counter[str] = Counter()
    for f in figs:
        for name in COUNTED:
            total[name] += getattr(f, name)
        for name, n in f.landed:
            total[name] += n
    landed = ", ".join(f"{k} {total[k]}" for k in LANDED)
    return (
        f"{backend}: runs {len(figs) + len(failed)} ({len(failed)} failed{': ' if failed else ''}"
        f"{' '.join(map(str, failed))}), kills {total['kills']}, requests {total['requests']},"
        f" answered 0000 {total['answered']}, unanswered {total['unanswered']}, refused"
        f" {total['refused']}, re-sent by ERP {total['resent']}, journaled {total['journaled']},"
        f" clearing messages {total['clearing_messages']} (re-sends"
        f" {total['clearing_resends']}); LOSSES {total['lost']}, DUPLICATES {total['doubled']};"
        f" kills left behind: {landed}; {took:.0f} s"
    )


async def main_async(args: argparse.Namespace) -> int:
    configure_logging("warning")
    tmp = Path(tempfile.mkdtemp(prefix="gw-crash-"))
    pg: PgServer | None = None
    lines: list[str] = []
    status = 0
    try:
        pki = generate_dev_pki(tmp / "pki")
        code = snapshot_code(tmp / "code")  # every restart runs the code the bench started with
        backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
        for backend in backends:
            if backend == "postgres" and pg is None:
                pg = start_postgres()
            count = args.runs if args.runs else (100 if backend == "sqlite" else 20)
            seeds = args.seeds or list(range(args.start, args.start + count))
            figs: list[Figures] = []
            failed: list[int] = []
            t0 = time.monotonic()
            for seed in seeds:
                try:
                    run = one_seed(tmp, pki, seed, backend, args.kills, pg, code)
                    figs.append(await asyncio.wait_for(run, SEED_TIMEOUT))
                except Exception:  # report the seed and go on
                    failed.append(seed)
                    print(f"SEED {seed} [{backend}] FAILED:\n{traceback.format_exc()}", flush=True)
            lines.append(summary(backend, figs, failed, time.monotonic() - t0))
            status |= bool(failed) or any(f.lost or f.doubled for f in figs)
        print("\n" + "\n".join(lines))
    finally:
        if pg is not None:
            pg.destroy()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return int(status)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Seeded SIGKILL runs of gatewayd (bench/README.md).")
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    p.add_argument("--runs", type=int, default=0, help="seeds per backend (100 sqlite, 20 pg)")
    p.add_argument("--start", type=int, default=100, help="first seed")
    p.add_argument("--seeds", type=int, nargs="*", help="exactly these seeds")
    p.add_argument("--kills", type=int, default=3, help="SIGKILLs per run")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (node logs, journals)")
    args = p.parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
