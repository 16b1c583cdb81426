"""Builders for journal test data: requests, items, times, journals of older releases."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from gateway.clock import SHANGHAI
from gateway.journal import postgres_schema, schema
from gateway.journal.records import DailyLimit, NewItem, NewRequest
from gateway.model import BizType, Engine, Priority, State

T0 = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=SHANGHAI)
WORK_DATE = date(2026, 11, 27)
HVPS_RCVR = "104100000004"
BEPS_RCVR = "105100000017"


def item(
    *,
    seq_no: int | None = None,
    state: State = State.QUEUED,
    engine: Engine | None = Engine.HVPS,
    receiver: str | None = HVPS_RCVR,
    amount: str = "1234.56",
    biz_type: BizType = BizType.CREDIT,
    release_at: datetime | None = None,
    reason_code: str | None = None,
    work_date: date | None = WORK_DATE,
) -> NewItem:
    return NewItem(
        seq_no=seq_no,
        payer_acct="6222000011112222",
        payer_name="Acme Trading Co",
        payee_acct="6217000033334444",
        payee_name="Zhang San",
        payee_bank_code=receiver or "999999999999",
        amount=Decimal(amount),
        ccy="CNY",
        priority=Priority.NORM,
        biz_type=biz_type,
        purpose="invoice 42",
        state=state,
        engine=engine,
        receiver=receiver,
        work_date=work_date,
        release_at=release_at,
        reason_code=reason_code,
        reason_text=None if reason_code is None else "bank code not in the directory",
    )


def request(
    msg_id: str,
    *items: NewItem,
    corp_id: str = "C100000001",
    digest: str = "d" * 64,
    received_at: datetime = T0,
    trn_code: str = "PAY",
) -> NewRequest:
    return NewRequest(
        corp_id=corp_id,
        msg_id=msg_id,
        oper_id="op01",
        trn_code=trn_code,
        digest=digest,
        received_at=received_at,
        items=items or (item(),),
    )


#: The daily limit the capped requests carry: 1000.00 on the work date (corplink.md §6).
CAP = DailyLimit(day=WORK_DATE, cap=Decimal("1000.00"))


def capped(msg_id: str, amount: str, *, limit: DailyLimit = CAP, oper: str = "op01") -> NewRequest:
    """A one-item PAY request of ``amount`` under a daily limit for operator ``oper``."""
    base = request(msg_id, item(amount=amount))
    return NewRequest(
        corp_id=base.corp_id,
        msg_id=base.msg_id,
        oper_id=oper,
        trn_code=base.trn_code,
        digest=base.digest,
        received_at=base.received_at,
        items=base.items,
        daily_limit=limit,
    )


def at(seconds: float) -> datetime:
    """T0 plus some seconds."""
    return T0 + timedelta(seconds=seconds)


#: Requests every backend refuses with ``ValueError`` before writing anything.
INVALID_REQUESTS = [
    request("v", item(amount="1.005")),
    request("v", item(amount="NaN")),
    request("v", item(), item()),  # two items without SeqNo
    request("v", item(seq_no=1), item(seq_no=1)),
    request("v", item(state=State.SENT)),
    request("v", item(state=State.HELD)),  # no release_at
    request("v", item(state=State.HELD, release_at=datetime(2026, 11, 27, 11, 0))),  # naive
    request("v", item(engine=None)),
    request("v", item(state=State.REJECTED)),  # no reason code
    request("v", received_at=datetime(2026, 11, 27, 10, 0)),  # naive
]

#: An amount beyond a 64-bit count of fen: refused with ``ValueError`` by both stores.
BEYOND_BIGINT = request("v", item(amount="1E+30"))
INVALID_REQUESTS.append(BEYOND_BIGINT)


# -- journals as an older release left them (migration tests) ---------------------------


def journal_of(backend: str, request: pytest.FixtureRequest) -> Path | str:
    """The test's journal: the SQLite file, or the DSN of the PostgreSQL schema."""
    if backend == "sqlite":
        path: Path = request.getfixturevalue("db_path")
        return path
    dsn: str = request.getfixturevalue("dsn")
    return dsn


async def build_journal_at(
    journal: Path | str,
    version: int,
    *,
    sqlite_rows: Callable[[sqlite3.Connection], None],
    pg_rows: Callable[[asyncpg.Connection], Awaitable[None]],
) -> None:
    """Build ``journal`` as the release at schema ``version`` left it: its first
    ``version`` migrations, then the caller's rows, in one transaction."""
    if isinstance(journal, Path):
        conn = sqlite3.connect(journal, isolation_level=None)
        try:
            conn.executescript(
                "BEGIN;\n"
                + "\n".join(schema.MIGRATIONS[:version])
                + f"\nPRAGMA user_version = {version};\nCOMMIT;"
            )
            sqlite_rows(conn)
        finally:
            conn.close()
        return
    sql = await asyncpg.connect(journal)
    try:
        async with sql.transaction():
            await sql.execute(postgres_schema._VERSION_TABLE)
            for number, migration in enumerate(postgres_schema.MIGRATIONS[:version], start=1):
                await sql.execute(migration)
                await sql.execute(
                    "INSERT INTO schema_version (version, node) VALUES ($1, 'A')", number
                )
            await pg_rows(sql)
    finally:
        await sql.close()


async def version_and_names(
    journal: Path | str, *, sqlite_query: str, pg_query: str
) -> tuple[int, set[str]]:
    """The journal's schema version and the names its catalogue query lists (first column)."""
    if isinstance(journal, Path):
        conn = sqlite3.connect(journal)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            names = {str(r[0]) for r in conn.execute(sqlite_query)}
        finally:
            conn.close()
        return version, names
    sql = await asyncpg.connect(journal)
    try:
        version = int(await sql.fetchval("SELECT max(version) FROM schema_version"))
        return version, {str(r[0]) for r in await sql.fetch(pg_query)}
    finally:
        await sql.close()
