"""Power loss for the journal: every write after the last fsync is taken away.

A SIGKILL (``crashkit``) loses the process but not its writes: the kernel
still has them and puts them on disk.  A power loss keeps only what was
fsynced.  ``powercut.c``, compiled at test time with ``cc``, is preloaded
into ``gatewayd`` (``LD_PRELOAD``): it keeps an undo log of every write to the
journal's files and empties it at each fsync of the file.  After the node's
process group is killed, :func:`restore` applies the undo logs backwards, so
the files are exactly what their last fsync made durable; then the node
restarts on them.  The daemon runs its own SQLite driver (Python's
``sqlite3``, the system libsqlite3), unchanged.

:class:`PowerCutRun` is a crash run (``crashkit.CrashRun``: seeded load,
kills, restarts, ERP re-sends, drain, verdict) whose every kill is a power
loss.  The mutant (:data:`MUTANT`) is the same daemon with ``PRAGMA
synchronous = OFF`` put in by a ``sitecustomize`` only this test puts on its
``PYTHONPATH``: it answers 0000 before the commit is durable, and the test
checks that it loses answered payments, so the test provably has teeth.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.crashkit import CrashRun, JournalItem

SOURCE = Path(__file__).with_name("powercut.c")
JOURNAL_NAME = "journal.sqlite3"
_HEAD = struct.Struct("<qqq")  # offset, old_len, old_size (x86-64 little-endian int64)

MUTANT = '''\
"""The power-loss test's mutant: the journal's commits are not fsynced (answers too early)."""
import gateway.journal.schema as _schema

_connect = _schema.connect


def _unsafe(path, *, readonly=False):
    conn = _connect(path, readonly=readonly)
    conn.execute("PRAGMA synchronous = OFF")
    return conn


_schema.connect = _unsafe
'''


def build_shim(dest: Path) -> Path:
    """Compile ``powercut.c`` into ``dest/powercut.so`` (``cc`` must exist)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler: install gcc (Debian package gcc)")
    out = dest / "powercut.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(out), str(SOURCE),
         "-ldl", "-lpthread"],
        check=True,
    )  # fmt: skip
    return out


def mutant_path(dest: Path) -> Path:
    """A folder whose ``sitecustomize.py`` turns a gatewayd into the mutant."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "sitecustomize.py").write_text(MUTANT, encoding="utf-8")
    return dest


def shim_env(shim: Path, state_dir: Path) -> dict[str, str]:
    return {
        "LD_PRELOAD": str(shim),
        "POWERCUT_DIR": str(state_dir.resolve()),
        "POWERCUT_NAME": JOURNAL_NAME,
    }


@dataclass(frozen=True)
class Cut:
    """What one power loss took away: files touched, writes undone, bytes put back."""

    files: int
    writes: int
    bytes: int


def restore(state_dir: Path) -> Cut:
    """Undo every write after each file's last fsync (the writer must be dead)."""
    files = writes = size = 0
    for undo in sorted(state_dir.glob(f"{JOURNAL_NAME}*.undo")):
        data = undo.read_bytes()
        records: list[tuple[int, bytes, int]] = []
        pos = 0
        while pos + _HEAD.size <= len(data):
            off, old_len, old_size = _HEAD.unpack_from(data, pos)
            pos += _HEAD.size
            records.append((off, data[pos : pos + old_len], old_size))
            pos += old_len
        target = undo.with_suffix("")
        if records and target.exists():
            files += 1
            with target.open("r+b") as fh:
                for off, old, old_size in reversed(records):
                    fh.seek(off)
                    fh.write(old)
                    fh.truncate(old_size)
                    writes += 1
                    size += len(old)
        undo.write_bytes(b"")
    return Cut(files, writes, size)


class PowerCutRun(CrashRun):
    """A crash run whose kills are power losses (module docstring); ``mutant`` breaks it."""

    def __init__(self, *args: Any, shim: Path, mutant: Path | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cuts: list[Cut] = []
        self.lost_at_cuts: list[int] = []  # 0000s missing right after each power loss
        self.answered_at_cuts: list[int] = []  # 0000s the ERPs held at each power loss
        for d in self.nodes.values():
            env = shim_env(shim, d.dir / "state")
            if mutant is not None:
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (str(mutant), os.environ.get("PYTHONPATH", "")) if p
                )
            d.s.env = env

    async def _landed(self) -> None:
        """After each kill, before the restart: the power loss, then at once the promise
        (every 0000 so far is in what is left), then what the kill left (crashkit)."""
        for d in self.nodes.values():
            if not d.alive:
                self.cuts.append(restore(d.dir / "state"))
                self.answered_at_cuts.append(len(self.ledger.answered))
        missing = await self.lost_after_failure()
        self.lost_at_cuts.append(len(missing))
        if missing:
            raise AssertionError(
                f"{self.plan.describe()}: answered 0000 but lost at power loss"
                f" {len(self.cuts)}: {len(missing)}, e.g. {sorted(missing)[:5]}"
            )
        await super()._landed()

    async def lost_after_failure(self) -> set[str]:
        """MsgIds answered 0000 that the journal does not have (now)."""
        try:
            items: list[JournalItem] = await self._journal()
        except sqlite3.OperationalError:  # not even the tables were durable (the mutant)
            items = []
        return set(self.ledger.answered) - {i.msg_id for i in items}
