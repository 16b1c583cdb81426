"""Crash consistency: SIGKILL the real gatewayd at seeded points under concurrent load.

The promise under test (corplink.md §5, clearing.md §1): no request answered
0000 is lost, no payment reaches the clearing system under two MsgIds, and
every journaled item reaches a final state.  ``crashkit`` explains how each
seed's rounds aim the kill at frame reading, the journal/reply gap, open
BEPS packages, publishing and receipt handling.

A failing seed names itself and reproduces its plan (load shapes, kill
triggers, simulator delays; wall-clock timing varies)::

    python -m pytest tests/faults/test_crash.py -m slow -k "seed-107" -s
    python bench/bench_crash.py --seeds 107          # the same, outside pytest

Default run: seeds 1–5 on SQLite (each shape is the first kill of one seed)
and seed 1 with two nodes on PostgreSQL.  ``-m slow``: 100 SQLite seeds
(100–199, three kills each) and 20 two-node PostgreSQL seeds (100–119).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from gateway.testing_pg import PgServer
from tests.faults.crashkit import CrashRun, fresh_pg_database, make_plan


def _ids(seed: int) -> str:
    return f"seed-{seed}"


def _pki(tmp: Path, dev_pki: DevPki) -> DevPki:
    return DevPki.open(Path(shutil.copytree(dev_pki.dir, tmp / "pki")))


async def _sqlite(tmp: Path, dev_pki: DevPki, broker: Broker, seed: int, kills: int) -> None:
    figures = await CrashRun(tmp, _pki(tmp, dev_pki), broker, make_plan(seed, kills=kills)).run()
    assert figures.lost == 0
    assert figures.doubled == 0
    assert figures.answered > 0


async def _two_nodes(
    tmp: Path, dev_pki: DevPki, broker: Broker, pg: PgServer, seed: int, kills: int
) -> None:
    dsn = await fresh_pg_database(pg, f"crash_{seed}_{uuid.uuid4().hex[:8]}")
    plan = make_plan(seed, kills=kills, backend="postgres", nodes=("A", "B"))
    figures = await CrashRun(tmp, _pki(tmp, dev_pki), broker, plan, dsn=dsn).run()
    assert figures.lost == 0
    assert figures.doubled == 0
    assert figures.answered > 0


@pytest.mark.parametrize("seed", range(1, 6), ids=_ids)
async def test_sigkill_sqlite_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _sqlite(tmp_path, dev_pki, broker, seed, kills=2)


@pytest.mark.parametrize("seed", [1], ids=_ids)
async def test_sigkill_two_postgres_nodes_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer, seed: int
) -> None:
    await _two_nodes(tmp_path, dev_pki, broker, pg, seed, kills=2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 200), ids=_ids)
async def test_sigkill_sqlite_many_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, seed: int
) -> None:
    await _sqlite(tmp_path, dev_pki, broker, seed, kills=3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120), ids=_ids)
async def test_sigkill_two_postgres_nodes_many_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer, seed: int
) -> None:
    await _two_nodes(tmp_path, dev_pki, broker, pg, seed, kills=3)
