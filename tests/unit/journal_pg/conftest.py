"""Fixtures for the PostgreSQL journal tests: a private server, a fresh database per test.

The server is started once per session from the Debian binaries on a free
port (never the machine's own PostgreSQL on 5432); each test gets its own
database, so tests are isolated.  Missing binaries fail loudly with the
package to install (``gateway.testing_pg.MISSING``), never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from gateway.journal.postgres import PostgresStore
from gateway.testing_pg import PgServer, start_postgres

StoreFactory = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def database_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A DSN for a new, empty database (``CREATE DATABASE``), dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield pg_server.dsn(name)
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A DSN whose ``search_path`` is a new, empty schema, dropped after the test.

    As isolated as a database per test for the journal (every name it uses
    resolves through the search path) at a fraction of the cost: with fsync on,
    ``CREATE DATABASE`` copies and syncs the whole template, 0.1 to 0.9 s here.
    """
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await admin.close()
    yield pg_server.dsn() + f"?search_path={name}"
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await admin.close()


@pytest.fixture
async def make_store(dsn: str) -> AsyncIterator[StoreFactory]:
    """Start stores (nodes) on the test's database; all are closed after the test."""
    stores: list[PostgresStore] = []

    async def make(**kwargs: object) -> PostgresStore:
        store = PostgresStore(dsn, **kwargs)  # type: ignore[arg-type]
        stores.append(store)
        await store.start()
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> PostgresStore:
    return await make_store(node="A")


@pytest.fixture
async def sql(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's database, to look under the store."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()
