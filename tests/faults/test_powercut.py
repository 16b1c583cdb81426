"""Power loss: the journal keeps only what was fsynced, and no 0000 may be lost.

The promise (docs/protocol.md §5): a request is answered 0000 only after its
journal write reached stable storage.  ``powercut`` (an ``LD_PRELOAD`` shim on
the daemon's own SQLite driver) takes away every write after the last fsync
at each kill; the node restarts on what is left.  The mutant, the same
daemon with ``PRAGMA synchronous = OFF``, must fail the same check: the test
can tell a durable journal from one that only looks durable.

Default run: the shim's own check, seed 1 with two power losses, and the
mutant with one.  ``-m slow``: seeds 100-119 with three power losses each,
and the mutant on seeds 100-104.  The figures print with ``-s``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.journal.audit import verify
from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from tests.faults.crashkit import make_plan
from tests.faults.powercut import PowerCutRun, build_shim, mutant_path, restore, shim_env


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("powercut"))


def _pki(tmp: Path, dev_pki: DevPki) -> DevPki:
    return DevPki.open(Path(shutil.copytree(dev_pki.dir, tmp / "pki")))


_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA synchronous = " + sys.argv[2])
conn.execute("CREATE TABLE t (n INTEGER)")
for n in range(int(sys.argv[3])):
    conn.execute("INSERT INTO t VALUES (?)", (n,))
    print(n, flush=True)  # committed: the "0000"
time.sleep(600)
"""


@pytest.mark.parametrize(("synchronous", "kept"), [("FULL", 300), ("OFF", 0)])
def test_the_shim_keeps_exactly_what_was_fsynced(
    shim: Path, tmp_path: Path, synchronous: str, kept: int
) -> None:
    """300 commits acknowledged, then the power goes: FULL keeps all 300, OFF none."""
    state = tmp_path / "state"
    state.mkdir()
    db = state / "journal.sqlite3"
    env = os.environ | shim_env(shim, state)
    args = [sys.executable, "-c", _WRITER, str(db), synchronous, "300"]
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        acked = sum(1 for _ in zip(range(300), proc.stdout, strict=False))
        proc.kill()
    assert acked == 300
    killed = shutil.copytree(state, tmp_path / "killed")  # as the kill alone left it
    before = _rows(killed / db.name)
    cut = restore(state)
    after = _rows(db)
    print(f"shim {synchronous}: 300 commits acked, {before} rows before the cut, {after} after;"
          f" undone {cut.writes} writes ({cut.bytes} bytes) in {cut.files} files")  # fmt: skip
    assert before == 300  # a kill alone loses nothing: the kernel keeps the writes
    assert after == kept


def _rows(db: Path) -> int:
    conn = sqlite3.connect(db)  # the journal's own driver: reads the WAL, recovers it
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    except sqlite3.OperationalError:  # no table: the file is as empty as it was created
        return 0
    finally:
        conn.close()


async def _run(tmp: Path, dev_pki: DevPki, broker: Broker, shim: Path, seed: int,
               kills: int) -> None:  # fmt: skip
    run = PowerCutRun(tmp, _pki(tmp, dev_pki), broker, make_plan(seed, kills=kills), shim=shim)
    figures = await run.run()
    undone = sum(c.writes for c in run.cuts)
    print(f"power loss seed {seed}: {len(run.cuts)} cuts undid {undone} unsynced writes,"
          f" 0000s held at each {run.answered_at_cuts}, missing after {run.lost_at_cuts};"
          f" {figures.line()}")  # fmt: skip
    assert len(run.cuts) == kills and run.lost_at_cuts == [0] * kills
    # the audit chain survived the power losses with the rows it links: the daemon's
    # own verification at each start recorded a head, and the final journal verifies
    node = run.nodes["A"]
    archive = node.dir / "state" / "archive"
    report = await verify("sqlite", node.journal_path, archive, "A")
    assert report.ok and report.recorded is not None, report.brk
    assert figures.lost == 0
    assert figures.doubled == 0
    assert figures.answered > 0


async def _mutant(tmp: Path, dev_pki: DevPki, broker: Broker, shim: Path, seed: int) -> None:
    run = PowerCutRun(
        tmp, _pki(tmp, dev_pki), broker, make_plan(seed, kills=1), shim=shim,
        mutant=mutant_path(tmp / "mutant"),
    )  # fmt: skip
    with pytest.raises(AssertionError, match="answered 0000 but lost at power loss 1") as failed:
        await run.run()
    print(f"power loss MUTANT seed {seed}: answered 0000 {run.answered_at_cuts} at the cut,"
          f" lost {run.lost_at_cuts}; the run failed as it must: {str(failed.value)[-120:]}")  # fmt: skip
    assert run.lost_at_cuts[0] > 0


@pytest.mark.parametrize("seed", [1])
async def test_power_loss_loses_no_payment_answered_0000(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, shim: Path, seed: int
) -> None:
    await _run(tmp_path, dev_pki, broker, shim, seed, kills=2)


@pytest.mark.parametrize("seed", [1])
async def test_a_daemon_that_answers_before_fsync_fails_the_power_loss_test(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, shim: Path, seed: int
) -> None:
    await _mutant(tmp_path, dev_pki, broker, shim, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
async def test_power_loss_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, shim: Path, seed: int
) -> None:
    await _run(tmp_path, dev_pki, broker, shim, seed, kills=3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 105))
async def test_mutant_seeds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, shim: Path, seed: int
) -> None:
    await _mutant(tmp_path, dev_pki, broker, shim, seed)
