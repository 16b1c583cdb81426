"""Read-only journal views with the daemon stopped (``gatewayctl`` without a daemon).

When the admin socket does not answer, ``gatewayctl credits|inquiries|netting|
messages|held list`` open the journal themselves, read-only: SQLite through a
``mode=ro`` URI (nothing is created, migrated or written), PostgreSQL with
``default_transaction_read_only`` (every transaction read-only, no migration).
They answer with the very code the daemon uses (:func:`journal_view`).

This needs read access to the journal: the daemon's user or root for SQLite
(the state folder is 0700), a database role for PostgreSQL.  "Now" is the
machine's clock (a test environment's business clock lives in the daemon):
``netting`` without ``--work-date`` takes today's BEPS work date by it.

SQLite creates the ``-wal`` / ``-shm`` side files even for a read-only
reader when they are missing; run as root, they would then belong to root
and the daemon's user could not open its own journal.  So side files this
reader created are handed to the journal file's owner afterwards.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from gateway.clock import SystemClock
from gateway.config import Config
from gateway.journal.postgres import PostgresStore
from gateway.journal.sqlite import SqliteStore
from gateway.journal.store import Store
from gateway.ops.views import journal_view
from gateway.server import build_router

_SIDE_FILES = ("-wal", "-shm")


def readonly_store(cfg: Config) -> SqliteStore | PostgresStore:
    if cfg.journal.backend == "postgres":
        return PostgresStore(cfg.journal.dsn, node=cfg.bank.node, pool_size=1, readonly=True)
    return SqliteStore(cfg.journal_path, node=cfg.bank.node, readonly=True)


async def offline_view(cfg: Config, op: str, cmd: dict[str, Any]) -> dict[str, Any]:
    """Answer a read-only view from the journal itself (``OSError`` / ``RuntimeError``
    when it cannot be opened; ``ValueError`` for a bad request)."""
    store = readonly_store(cfg)
    before = _side_files(cfg) if isinstance(store, SqliteStore) else set()
    await store.start()
    try:
        router = build_router(cfg)  # the daemon's own: directory, calendars, windows
        return await journal_view(
            op, cmd, _as_store(store), router, SystemClock(), cfg.archive_path
        )
    finally:
        await store.close()
        if isinstance(store, SqliteStore):
            _hand_back(store.path, _side_files(cfg) - before)


def _as_store(store: SqliteStore | PostgresStore) -> Store:
    return store


def _side_files(cfg: Config) -> set[Path]:
    base = cfg.journal_path
    return {p for p in (Path(f"{base}{s}") for s in _SIDE_FILES) if p.exists()}


def _hand_back(journal: Path, created: set[Path]) -> None:
    """Side files this reader created go to the journal's owner (module docstring)."""
    if not created:
        return
    try:
        st = journal.stat()
    except OSError:
        return
    for path in created:
        with contextlib.suppress(OSError):
            if path.stat().st_uid != st.st_uid:
                os.chown(path, st.st_uid, st.st_gid)
                os.chmod(path, st.st_mode & 0o666)
