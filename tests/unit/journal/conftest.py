"""Fixtures for the journal tests: one behaviour suite, run against both backends.

Every test that asks for ``store``, ``make_store`` or ``new_store`` runs once
per backend (``[sqlite]``: a real journal file in ``tmp_path``; ``[postgres]``:
a private server for the session, a fresh schema per test).  A module that
tests one backend's own machinery overrides ``backend`` with a plain fixture
returning its name, so only that backend runs there.

The PostgreSQL server is started once per session from the Debian binaries on
a free port (never the machine's own PostgreSQL on 5432), and only when a
postgres test runs.  Missing binaries fail loudly with the package to install
(``gateway.testing_pg.MISSING``), never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway.journal.postgres import PostgresStore
from gateway.journal.sqlite import SqliteStore
from gateway.testing_pg import PgServer, start_postgres

JournalStore = SqliteStore | PostgresStore
StoreFactory = Callable[..., Awaitable[JournalStore]]
"""``await make_store(**kwargs)``: a started store on the test's journal."""
NewStore = Callable[..., JournalStore]
"""``new_store(**kwargs)``: a store on the test's journal, not started."""

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which journal backend the test runs on (overridden by backend-only modules)."""
    return str(request.param)


# -- SQLite ---------------------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


# -- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()


async def _admin(server: PgServer, statement: str) -> None:
    admin = await asyncpg.connect(server.dsn())
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture
async def database_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A DSN for a new, empty database (``CREATE DATABASE``), dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(pg_server, f'CREATE DATABASE "{name}"')
    yield pg_server.dsn(name)
    await _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A DSN whose ``search_path`` is a new, empty schema, dropped after the test.

    As isolated as a database per test for the journal (every name it uses
    resolves through the search path) at a fraction of the cost: with fsync on,
    ``CREATE DATABASE`` copies and syncs the whole template, 0.1 to 0.9 s here.
    """
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(pg_server, f'CREATE SCHEMA "{name}"')
    yield pg_server.dsn() + f"?search_path={name}"
    await _admin(pg_server, f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
async def sql(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's PostgreSQL schema, to look under the store."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


# -- either backend -------------------------------------------------------------------


@pytest.fixture
def new_store(backend: str, request: pytest.FixtureRequest) -> NewStore:
    """Build (not start) stores on the test's journal: the SQLite file or the schema.

    The PostgreSQL fixtures are looked up only for the postgres backend, so a
    run of the SQLite tests alone never starts a server.
    """
    if backend == "sqlite":
        path: Path = request.getfixturevalue("db_path")
        return lambda **kwargs: SqliteStore(path, **kwargs)
    if backend == "postgres":
        dsn: str = request.getfixturevalue("dsn")
        return lambda **kwargs: PostgresStore(dsn, **kwargs)
    raise ValueError(f"unknown journal backend {backend!r}")


@pytest.fixture
async def make_store(new_store: NewStore) -> AsyncIterator[StoreFactory]:
    """Start stores (nodes) on the test's journal; all are closed after the test."""
    stores: list[JournalStore] = []

    async def make(**kwargs: object) -> JournalStore:
        store = new_store(**kwargs)
        stores.append(store)
        await store.start()
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> JournalStore:
    return await make_store(node="A")
