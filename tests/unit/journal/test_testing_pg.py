"""The private test server helper: isolated from the machine's own PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from gateway import testing_pg
from gateway.journal.postgres import PostgresStore
from gateway.testing_pg import PgServer

from .helpers import request


async def test_the_private_server_is_local_durable_and_not_the_machines(
    pg_server: PgServer,
) -> None:
    assert pg_server.port != 5432
    conn = await asyncpg.connect(pg_server.dsn())
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW data_directory") == str(pg_server.datadir)
        assert await conn.fetchval("SHOW unix_socket_directories") == str(pg_server.root)
    finally:
        await conn.close()


async def test_the_store_insists_on_synchronous_commit(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
    finally:
        await conn.close()
    store = PostgresStore(database_dsn)
    await store.start()
    try:
        async with store._conn() as pooled:
            assert await pooled.fetchval("SHOW synchronous_commit") == "on"
        assert (await store.accept(request("m-sync"))).created
    finally:
        await store.close()


def test_missing_binaries_name_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(testing_pg, "_PG_DIR", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("GATEWAY_PG_BINDIR", raising=False)
    with pytest.raises(RuntimeError, match=r"apt-get install postgresql"):
        testing_pg.pg_bindir()


def test_bindir_can_be_pointed_at(monkeypatch: pytest.MonkeyPatch, pg_server: PgServer) -> None:
    monkeypatch.setenv("GATEWAY_PG_BINDIR", str(pg_server.bindir))
    assert testing_pg.pg_bindir() == pg_server.bindir
