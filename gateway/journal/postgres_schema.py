"""The PostgreSQL journal's layout: tables, migrations, value encoding, row mapping.

Also the pure parts of its statements: building an accept's parameters and
deciding what a ccms.900's lines change (:func:`tx_status_changes`).

The same tables and state machine as the SQLite journal (``schema.py``,
docs/architecture.md §7 "Storage"), in PostgreSQL types: instants are ``timestamptz``
(microseconds, exact), work dates ``date``, amounts ``bigint`` fen, payloads
``bytea``.  Validation rules and identifier formats (GwRef, TxId, EndToEndId)
are not repeated here: they come from ``schema.py``, so both backends accept
and produce exactly the same values.

Two additions serve several gateway nodes on one database:

- ``items.claimed_by`` / ``items.claimed_until``: the lease a node takes on
  QUEUED items it is packaging (see ``postgres.py``);
- ``requests.node`` and ``outbound.node``: which node accepted a request and
  which packaged a message (audit; the GwRef carries the node letter too).

Schema versions are rows of ``schema_version``; ``MIGRATIONS[n]`` brings a
database from version ``n`` to ``n + 1``.  :func:`migrate` runs every missing
step in one transaction under a transaction-scoped advisory lock, so two
nodes starting together never both migrate: the second waits, then finds
the schema current.  A database newer than this code is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import asyncpg

from gateway.clock import SHANGHAI
from gateway.journal import audit_chain, schema
from gateway.journal.records import (
    NewItem,
    NewRequest,
    OutboundRecord,
    OutState,
    QueuedItem,
    RequestRecord,
    TxResult,
)
from gateway.model import BizType, Engine, Priority, State

MAX_FEN: Final = 2**63 - 1
"""``bigint`` bound: an amount beyond it is refused (no real CNY amount comes near)."""

MIGRATION_LOCK: Final = 0x67_77_6A_6F_75_72_6E  # "gwjourn": the advisory lock key
"""Advisory lock held while migrating; advisory locks are per database."""

# -- value encoding -------------------------------------------------------------


def aware(at: datetime) -> datetime:
    """Refuse naive datetimes (asyncpg would silently take them as UTC)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("journal times must carry a UTC offset")
    return at


def shanghai(at: datetime) -> datetime:
    """A ``timestamptz`` read back, in the clock's zone (docs/architecture.md §7, principle 5)."""
    return at.astimezone(SHANGHAI)


def opt_shanghai(at: datetime | None) -> datetime | None:
    return None if at is None else shanghai(at)


def fen(amount: Decimal) -> int:
    """Integer fen (``schema.to_fen``: more than two decimals is an error), within bigint."""
    value = schema.to_fen(amount)
    if abs(value) > MAX_FEN:
        raise ValueError("amount is out of range")
    return value


def work_day(day: object) -> date:
    """A work date from a ``date`` or an ISO string (``schema.date_text`` rules)."""
    return date.fromisoformat(schema.date_text(day))


def lease_interval(seconds: float) -> timedelta:
    if not seconds > 0:
        raise ValueError("lease must be a positive number of seconds")
    return timedelta(seconds=seconds)


# -- accept: one statement, one round trip, one commit -----------------------------

ITEM_COLUMNS: Final = (
    ("seq_no", "int4"),
    ("end_to_end_id", "text"),
    ("engine", "text"),
    ("receiver", "text"),
    ("payee_bank_code", "text"),
    ("work_date", "date"),
    ("state", "text"),
    ("release_at", "timestamptz"),
    ("payer_acct", "text"),
    ("payer_name", "text"),
    ("payee_acct", "text"),
    ("payee_name", "text"),
    ("amount_fen", "int8"),
    ("ccy", "text"),
    ("priority", "text"),
    ("biz_type", "text"),
    ("purpose", "text"),
    ("reason_code", "text"),
    ("reason_text", "text"),
    ("queued_at", "timestamptz"),
    ("payee_bic", "text"),
    ("payee_country", "text"),
    ("chrg_br", "text"),
    ("screening", "text"),
)
"""Item columns passed as parallel arrays (``unnest``), in this order."""

_FIRST_ARRAY = 12  # $1..$11 are the request's own parameters
_ARRAYS = ", ".join(f"${_FIRST_ARRAY + n}::{t}[]" for n, (_, t) in enumerate(ITEM_COLUMNS))
_NAMES = ", ".join(name for name, _ in ITEM_COLUMNS)

ACCEPT: Final = f"""
WITH req AS (
    INSERT INTO requests (id, corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at, node)
    SELECT n.id, $1, $2, $3, $4, $5,
           $6 || lpad(n.id::text, greatest(9, length(n.id::text)), '0'), $7, $8
      FROM (SELECT nextval('request_ids') AS id) AS n
     WHERE NOT EXISTS (SELECT 1 FROM requests WHERE corp_id = $1 AND msg_id = $2)
    ON CONFLICT (corp_id, msg_id) DO NOTHING
    RETURNING id, gw_ref
), total AS (
    INSERT INTO daily_totals (corp_id, oper_id, day, total_fen)
    SELECT $1, $3, $9, $10 FROM req WHERE $11::bigint IS NULL OR $10 <= $11::bigint
    ON CONFLICT (corp_id, oper_id, day) DO UPDATE
       SET total_fen = daily_totals.total_fen + excluded.total_fen
     WHERE $11::bigint IS NULL OR daily_totals.total_fen + excluded.total_fen <= $11::bigint
    RETURNING total_fen
), new_items AS (
    INSERT INTO items (request_id, tx_id, {_NAMES}, updated_at)
    SELECT req.id,
           CASE WHEN u.seq_no IS NULL THEN req.gw_ref ELSE req.gw_ref || '-' || u.seq_no END,
           {", ".join("u." + name for name, _ in ITEM_COLUMNS)}, $7
      FROM req, total, unnest({_ARRAYS}) WITH ORDINALITY AS u({_NAMES}, ord)
     ORDER BY u.ord
    RETURNING id, state, reason_code
), trail AS (
    INSERT INTO transitions (item_id, state, at, detail)
    SELECT t.item_id, t.state, $7, t.detail
      FROM (SELECT id AS item_id, 'ACCEPTED' AS state, NULL::text AS detail, 0 AS step
              FROM new_items
            UNION ALL
            SELECT id, state, reason_code, 1 FROM new_items) AS t
     ORDER BY t.step, t.item_id
)
SELECT req.id, req.gw_ref, EXISTS (SELECT 1 FROM total) AS within_limit FROM req
"""  # noqa: S608 (built from our own constants; values are $n parameters)
"""Insert the request (unless (CorpId, MsgId) exists), add to the operator's
daily total, insert its items and their first transitions: one statement.

- The GwRef number comes from the ``request_ids`` sequence, shared by all
  nodes, so GwRefs are unique across nodes; ``$6`` is the ``GW`` + date +
  node prefix made by ``schema.gw_ref`` (docs/protocol.md §5), and the number is
  padded to 9 digits and widens beyond, as there.  A sequence never hands a
  number out twice, but an accept that loses a race or fails consumes one:
  GwRef numbers may have gaps (``NOT EXISTS`` keeps ordinary duplicates from
  consuming any).
- ``ON CONFLICT DO NOTHING`` makes the dedupe race-safe across nodes
  (docs/protocol.md §7): the loser returns no row, adds nothing to the daily
  total (``total`` selects from ``req``), and the caller reads the winner's.
- Daily limit (docs/protocol.md §6, ``$9`` day, ``$10`` counted fen, ``$11`` cap or
  NULL): the total row is added to only while it stays within the cap; its
  row lock orders one operator's concurrent requests, on every node, so the
  cap is exact.  Over the cap, ``within_limit`` is false with the request
  row already inserted: the caller runs capped accepts in a transaction
  and rolls it back.  Uncapped accepts never fail it and run in autocommit.
- ``INSERT ... SELECT ... ORDER BY`` assigns ids in that order, so items keep
  the request's order and each ACCEPTED row precedes its item's first state.
"""


def accept_args(request: NewRequest, node: str) -> tuple[list[object], bool]:
    """Validate (same rules as SQLite) and build ``ACCEPT``'s parameters.

    Also says whether the request is capped (then it must run in a transaction).
    """
    received = aware(request.received_at)
    schema.check_seq_nos(request.items)
    for item in request.items:
        schema.item_params(item, 0)  # the shared first-state and routing rules
    prefix = schema.gw_ref(received, node, 0)[:-9]
    columns: list[list[object]] = [[] for _ in ITEM_COLUMNS]
    for item in request.items:
        values = _item_values(item, received, request.msg_id)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    # docs/protocol.md §6: what counts is every item not refused at routing.
    counted = sum(fen(item.amount) for item in request.items if item.state is not State.REJECTED)
    limit = request.daily_limit
    day = limit.day if limit else received.astimezone(SHANGHAI).date()
    cap = None if limit is None else fen(limit.cap)
    args: list[object] = [
        request.corp_id,
        request.msg_id,
        request.oper_id,
        request.trn_code,
        request.digest,
        prefix,
        received,
        node,
        day,
        counted,
        cap,
        *columns,
    ]
    return args, cap is not None


def _item_values(item: NewItem, received: datetime, msg_id: str) -> tuple[object, ...]:
    return (
        item.seq_no,
        schema.end_to_end_id(msg_id, item.seq_no),
        None if item.engine is None else item.engine.value,
        item.receiver,
        item.payee_bank_code,
        None if item.work_date is None else work_day(item.work_date),
        item.state.value,
        None if item.release_at is None else aware(item.release_at),
        item.payer_acct,
        item.payer_name,
        item.payee_acct,
        item.payee_name,
        fen(item.amount),
        item.ccy,
        item.priority.value,
        item.biz_type.value,
        item.purpose,
        item.reason_code,
        item.reason_text,
        received if item.state is State.QUEUED else None,
        item.payee_bic,
        item.payee_country,
        item.chrg_br,
        item.screening,
    )


# -- rows -> records ----------------------------------------------------------------

REQUEST_COLUMNS: Final = "corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at"
QUEUED_COLUMNS: Final = (
    "i.id, i.tx_id, i.end_to_end_id, r.corp_id, r.msg_id, i.seq_no, i.engine, i.receiver,"
    " i.work_date, i.payer_acct, i.payer_name, i.payee_acct, i.payee_name, i.payee_bank_code,"
    " i.amount_fen, i.ccy, i.priority, i.biz_type, i.purpose, i.queued_at,"
    " i.payee_bic, i.payee_country, i.chrg_br"
)
OUTBOUND_COLUMNS: Final = (
    "msg_id, engine, msg_tp, topic, receiver, work_date, payload, state, attempts,"
    " created_at, last_sent_at"
)

FIND_REQUEST: Final = (
    f"SELECT {REQUEST_COLUMNS} FROM requests"  # noqa: S608 (constant fragments)
    " WHERE corp_id = $1 AND msg_id = $2"
)
"""The (CorpId, MsgId) lookup of dedupe (docs/protocol.md §7); rows for :func:`request_record`."""


def request_record(row: asyncpg.Record) -> RequestRecord:
    return RequestRecord(
        corp_id=row["corp_id"],
        msg_id=row["msg_id"],
        oper_id=row["oper_id"],
        trn_code=row["trn_code"],
        digest=row["digest"],
        gw_ref=row["gw_ref"],
        received_at=shanghai(row["received_at"]),
    )


def queued_item(row: asyncpg.Record) -> QueuedItem:
    seq: Any = row["seq_no"]
    return QueuedItem(
        item_id=row["id"],
        tx_id=row["tx_id"],
        end_to_end_id=row["end_to_end_id"],
        corp_id=row["corp_id"],
        msg_id=row["msg_id"],
        seq_no=None if seq is None else int(seq),
        engine=Engine(row["engine"]),
        receiver=row["receiver"],
        work_date=row["work_date"],
        payer_acct=row["payer_acct"],
        payer_name=row["payer_name"],
        payee_acct=row["payee_acct"],
        payee_name=row["payee_name"],
        payee_bank_code=row["payee_bank_code"],
        amount=schema.from_fen(row["amount_fen"]),
        ccy=row["ccy"],
        priority=Priority(row["priority"]),
        biz_type=BizType(row["biz_type"]),
        purpose=row["purpose"],
        queued_at=shanghai(row["queued_at"]),
        payee_bic=row["payee_bic"],
        payee_country=row["payee_country"],
        chrg_br=row["chrg_br"],
    )


def outbound_record(row: asyncpg.Record) -> OutboundRecord:
    return OutboundRecord(
        msg_id=row["msg_id"],
        engine=Engine(row["engine"]),
        msg_tp=row["msg_tp"],
        topic=row["topic"],
        receiver=row["receiver"],
        work_date=row["work_date"],
        payload=bytes(row["payload"]),
        state=OutState(row["state"]),
        attempts=row["attempts"],
        created_at=shanghai(row["created_at"]),
        last_sent_at=opt_shanghai(row["last_sent_at"]),
    )


# -- ccms.900 lines -> item changes --------------------------------------------------


def tx_status_changes(
    rows: Sequence[asyncpg.Record], results: Sequence[TxResult]
) -> list[tuple[int, str, str | None, str | None]]:
    """Match ccms.900 lines to items (TxId first, else a unique EndToEndId) and
    decide each change, in order: ACSC → SETTLED, RJCT → REJECTED; ACSP and
    items already final change nothing (the first final state wins)."""
    by_tx: dict[str, int] = {r["tx_id"]: r["id"] for r in rows}
    by_e2e: dict[str, list[int]] = {}
    for r in rows:
        by_e2e.setdefault(r["end_to_end_id"], []).append(r["id"])
    state: dict[int, State] = {r["id"]: State(r["state"]) for r in rows}
    updates: list[tuple[int, str, str | None, str | None]] = []
    for result in results:
        found = by_tx.get(result.tx_id) if result.tx_id is not None else None
        if found is None and result.end_to_end_id is not None:
            # EndToEndId is the corporate's MsgId, unique only per CorpId: two
            # corporates' items in one package may share it.  Ambiguous → skip.
            candidates = by_e2e.get(result.end_to_end_id, [])
            found = candidates[0] if len(candidates) == 1 else None
        if found is None or state[found].final or result.status == "ACSP":
            continue
        if result.status == "ACSC":
            state[found] = State.SETTLED
            updates.append((found, State.SETTLED.value, None, None))
        else:
            state[found] = State.REJECTED
            updates.append((found, State.REJECTED.value, result.reason_code, result.reason_text))
    return updates


# -- the schema -------------------------------------------------------------------

_STATES = "'ACCEPTED', 'HELD', 'QUEUED', 'SENT', 'ACKED', 'NETTED', 'SETTLED', 'REJECTED'"

_V1 = f"""
CREATE SEQUENCE request_ids AS bigint;  -- the number in the GwRef, shared by all nodes

CREATE TABLE requests (
    id          bigint      PRIMARY KEY DEFAULT nextval('request_ids'),
    corp_id     text        NOT NULL,
    msg_id      text        NOT NULL,
    oper_id     text        NOT NULL,
    trn_code    text        NOT NULL,
    digest      text        NOT NULL,
    gw_ref      text        NOT NULL UNIQUE,
    received_at timestamptz NOT NULL,
    node        text        NOT NULL,                -- the node that accepted it
    UNIQUE (corp_id, msg_id)                         -- docs/protocol.md §7
);
ALTER SEQUENCE request_ids OWNED BY requests.id;

CREATE TABLE outbound (
    msg_id       text        PRIMARY KEY,            -- assigned once, reused on re-send
    engine       text        NOT NULL,
    msg_tp       text        NOT NULL,
    topic        text        NOT NULL,
    receiver     text        NOT NULL,
    work_date    date        NOT NULL,
    payload      bytea       NOT NULL,
    state        text        NOT NULL CHECK (state IN ('PENDING', 'SENT', 'ACKED')),
    attempts     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    last_sent_at timestamptz,
    acked_at     timestamptz,
    node         text        NOT NULL                -- the node that packaged it
);

CREATE TABLE items (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      bigint      NOT NULL REFERENCES requests (id),
    seq_no          integer,
    tx_id           text        NOT NULL UNIQUE,
    end_to_end_id   text        NOT NULL,
    engine          text        CHECK (engine IN ('INTRA', 'HVPS', 'BEPS')),
    receiver        text,
    payee_bank_code text        NOT NULL,
    work_date       date,
    state           text        NOT NULL CHECK (state IN ({_STATES})),
    release_at      timestamptz,
    payer_acct      text        NOT NULL,
    payer_name      text        NOT NULL,
    payee_acct      text        NOT NULL,
    payee_name      text        NOT NULL,
    amount_fen      bigint      NOT NULL,
    ccy             text        NOT NULL,
    priority        text        NOT NULL,
    biz_type        text        NOT NULL,
    purpose         text,
    reason_code     text,
    reason_text     text,
    out_msg_id      text        REFERENCES outbound (msg_id),
    queued_at       timestamptz,
    updated_at      timestamptz NOT NULL,
    claimed_by      text,                            -- lease: node packaging it
    claimed_until   timestamptz,                     -- lease end (database clock)
    UNIQUE (request_id, seq_no)
);

-- Partial indexes hold only the live rows the engines poll, so they stay
-- small while the table keeps 400 days of history (docs/protocol.md §7).
CREATE INDEX items_unpackaged ON items (engine, queued_at, id)
    WHERE state = 'QUEUED' AND out_msg_id IS NULL;
CREATE INDEX items_unpackaged_group ON items (engine, receiver, biz_type, work_date, queued_at, id)
    WHERE state = 'QUEUED' AND out_msg_id IS NULL;
CREATE INDEX items_held ON items (release_at, id) WHERE state = 'HELD';
CREATE INDEX items_by_outbound ON items (out_msg_id) WHERE out_msg_id IS NOT NULL;
CREATE INDEX items_summary ON items (engine, state, reason_code);

CREATE TABLE transitions (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id bigint      NOT NULL REFERENCES items (id),
    state   text        NOT NULL,
    at      timestamptz NOT NULL,
    detail  text
);
CREATE INDEX transitions_by_item ON transitions (item_id, id);

CREATE INDEX outbound_pending ON outbound (created_at, msg_id) WHERE state = 'PENDING';
CREATE INDEX outbound_sent ON outbound (last_sent_at, msg_id) WHERE state = 'SENT';

CREATE TABLE sequences (
    name  text   PRIMARY KEY,
    value bigint NOT NULL
);
"""

_V2 = """
CREATE TABLE daily_totals (                          -- docs/protocol.md §6 daily limits
    corp_id   text   NOT NULL,
    oper_id   text   NOT NULL,
    day       date   NOT NULL,                       -- business date, Asia/Shanghai
    total_fen bigint NOT NULL,
    PRIMARY KEY (corp_id, oper_id, day)
);
"""

_V3 = """
-- retention passes (gateway.journal.retention) select requests by age
CREATE INDEX requests_received ON requests (received_at, id);
"""

_V4 = """
-- correspondence (docs/protocol.md §4 NTFY/INQ/RPLY, docs/clearing-link.md §4-§6,
-- docs/routing-rules.md §5);
-- the same tables as schema.py's version 4.

ALTER TABLE items ADD COLUMN netting_round integer;  -- with work_date: the BEPS round
CREATE INDEX items_ledger ON items (receiver, work_date, id)
    WHERE engine = 'BEPS' AND state = 'ACKED';
CREATE INDEX items_netted ON items (work_date, netting_round, id) WHERE state = 'NETTED';

-- ntfy_id is the NTFY cursor (never reused); writers serialise per corporate
-- (postgres.py) so that a corporate's ids become visible in increasing order.
CREATE TABLE notifications (
    ntfy_id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    corp_id           text        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('CREDIT', 'STATUS', 'INQUIRY', 'REPLY')),
    at                timestamptz NOT NULL,
    orig_msg_id       text,
    seq_no            integer,
    gw_ref            text,
    inq_id            text,
    state             text,
    reason_code       text,
    engine            text,
    work_date         date,
    acct              text,
    amount_fen        bigint,
    counterparty_acct text,
    counterparty_name text,
    counterparty_bank text,
    text              text
);
CREATE INDEX notifications_by_corp ON notifications (corp_id, ntfy_id);

CREATE TABLE inquiries (
    direction      text        NOT NULL CHECK (direction IN ('OUT', 'IN')),
    inq_id         text        NOT NULL,
    state          text        NOT NULL CHECK (state IN ('OPEN', 'REPLIED')),
    counterparty   text        NOT NULL,
    text           text        NOT NULL,
    created_at     timestamptz NOT NULL,
    corp_id        text,
    msg_id         text,
    seq_no         integer,
    credit_ref     text,
    orgnl_msg_id   text,
    orgnl_tx_id    text,
    request_msg_id text,                             -- the INQ (OUT) or RPLY (IN) request
    out_msg_id     text,                             -- our ccms.314 (OUT) or ccms.315 (IN)
    reply_text     text,
    replied_at     timestamptz,
    PRIMARY KEY (direction, inq_id)
);
CREATE INDEX inquiries_by_request ON inquiries (corp_id, request_msg_id)
    WHERE request_msg_id IS NOT NULL;

CREATE TABLE incoming_credits (
    gw_ref         text        PRIMARY KEY,
    engine         text        NOT NULL CHECK (engine IN ('INTRA', 'HVPS', 'BEPS')),
    msg_id         text        NOT NULL,
    tx_id          text        NOT NULL,
    end_to_end_id  text        NOT NULL,
    sender         text        NOT NULL,
    work_date      date        NOT NULL,
    debtor_acct    text        NOT NULL,
    debtor_name    text        NOT NULL,
    debtor_bank    text        NOT NULL,
    creditor_acct  text        NOT NULL,
    creditor_name  text        NOT NULL,
    amount_fen     bigint      NOT NULL,
    purpose        text,
    received_at    timestamptz NOT NULL,
    corp_id        text,
    state          text        NOT NULL CHECK (state IN ('CHECKING', 'POSTED', 'SUSPENSE')),
    check_attempts integer     NOT NULL DEFAULT 0,
    next_check_at  timestamptz,
    netting_round  integer,
    updated_at     timestamptz NOT NULL,
    node           text        NOT NULL,             -- the node that received it
    UNIQUE (sender, tx_id)
);
CREATE INDEX credits_checking ON incoming_credits (received_at, gw_ref)
    WHERE state = 'CHECKING';
CREATE INDEX credits_ledger ON incoming_credits (sender, work_date)
    WHERE engine = 'BEPS' AND netting_round IS NULL;

CREATE TABLE netting_rounds (
    work_date     date        NOT NULL,
    round         integer     NOT NULL,
    counterparty  text        NOT NULL,
    our_dbt_cnt   integer     NOT NULL,
    our_dbt_fen   bigint      NOT NULL,
    our_cdt_cnt   integer     NOT NULL,
    our_cdt_fen   bigint      NOT NULL,
    their_dbt_cnt integer     NOT NULL,
    their_dbt_fen bigint      NOT NULL,
    their_cdt_cnt integer     NOT NULL,
    their_cdt_fen bigint      NOT NULL,
    matched       boolean     NOT NULL,
    items_netted  integer     NOT NULL,
    at            timestamptz NOT NULL,
    node          text        NOT NULL,
    PRIMARY KEY (work_date, round, counterparty)
);
"""

_V5 = """
-- retention passes (gateway.journal.retention_tables): one index per correspondence table
-- on (the time column its rule bounds, primary key), the keyset order of the pass; the same
-- indexes as schema.py's version 5.  Plain CREATE INDEX: migrate() is one transaction.
CREATE INDEX notifications_at ON notifications (at, ntfy_id);
CREATE INDEX inquiries_created ON inquiries (created_at, direction, inq_id);
CREATE INDEX credits_final ON incoming_credits (received_at, gw_ref)
    WHERE state IN ('POSTED', 'SUSPENSE');
CREATE INDEX outbound_acked ON outbound (created_at, msg_id) WHERE state = 'ACKED';
"""

_V6 = """
-- the clearing link an inquiry travels on (docs/clearing-link.md §2), as schema.py's version 6: an
-- IN
-- inquiry's ccms.315 goes back on the link its ccms.314 arrived on; older rows stay NULL.
ALTER TABLE inquiries ADD COLUMN engine text CHECK (engine IN ('INTRA', 'HVPS', 'BEPS'));
"""

_V7 = """
-- the suspense account's credits for the gateway_credits gauge, as schema.py's version 7:
-- only SUSPENSE rows, counted every few seconds (gateway.journal.gauges).
CREATE INDEX credits_suspense ON incoming_credits (received_at, gw_ref)
    WHERE state = 'SUSPENSE';
"""

_V8_OPERATOR_ACTIONS = """
-- operators' message tools, as schema.py's version 8: manual actions with who and why, the
-- verified inbound clearing messages and the signed requests / responses, as exact bytes.
CREATE TABLE operator_actions (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL,
    uid      bigint      NOT NULL,
    operator text        NOT NULL,
    action   text        NOT NULL CHECK (action IN ('release', 'resend')),
    target   text        NOT NULL,
    reason   text        NOT NULL,
    forced   boolean     NOT NULL
);
CREATE INDEX operator_actions_target ON operator_actions (target, id);
CREATE INDEX operator_actions_at ON operator_actions (at, id);

CREATE TABLE inbound_messages (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id      text        NOT NULL,
    msg_tp      text        NOT NULL,
    sndr        text        NOT NULL,
    topic       text        NOT NULL,
    ref         text,
    payload     bytea       NOT NULL,
    received_at timestamptz NOT NULL,
    UNIQUE (sndr, msg_id)
);
CREATE INDEX inbound_by_ref ON inbound_messages (ref) WHERE ref IS NOT NULL;
CREATE INDEX inbound_received ON inbound_messages (received_at, id);

CREATE TABLE exchanges (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gw_ref   text        NOT NULL UNIQUE,
    request  bytea       NOT NULL,
    response bytea       NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX exchanges_at ON exchanges (at, id);
"""

_V9_AUDIT_CHAIN = audit_chain.PG_V9_AUDIT_CHAIN

_DRAFT_STATES = "'PENDING', 'ISSUED', 'PAID', 'SETTLED', 'REFUNDING', 'REFUNDED', 'REJECTED'"

_V10_DRAFTS = f"""
-- the draft register (docs/bank-drafts.md §1-§3): the same tables as schema.py's version 10,
-- kept for ever, never archived.  The Code is never stored.
CREATE TABLE drafts (
    draft_no          text        PRIMARY KEY,        -- participant + 8-digit 'draft' sequence
    corp_id           text        NOT NULL,
    msg_id            text        NOT NULL,           -- the DRAFT request
    scope             text        NOT NULL CHECK (scope IN ('NATIONAL', 'PROVINCIAL')),
    amount_fen        bigint      NOT NULL CHECK (amount_fen > 0),
    payer_acct        text        NOT NULL,
    payer_name        text        NOT NULL,
    payee_name        text        NOT NULL,
    purpose           text,
    issue_date        date        NOT NULL,
    expiry_date       date        NOT NULL,
    code_key          text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ({_DRAFT_STATES})),
    release_at        timestamptz,
    paid_on           date,
    settle_amount_fen bigint,
    created_at        timestamptz NOT NULL,
    node              text        NOT NULL,           -- the node that journaled it
    UNIQUE (corp_id, msg_id)
);
CREATE INDEX drafts_state ON drafts (state, created_at, draft_no);
CREATE INDEX drafts_created ON drafts (created_at, draft_no);

CREATE TABLE draft_steps (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    draft_no    text        NOT NULL REFERENCES drafts (draft_no),
    state       text        NOT NULL CHECK (state IN ({_DRAFT_STATES})),
    at          timestamptz NOT NULL,
    reason_code text,
    reason_text text
);
CREATE INDEX draft_steps_by_draft ON draft_steps (draft_no, id);

CREATE TABLE draft_refunds (
    corp_id  text    NOT NULL,
    msg_id   text    NOT NULL,
    draft_no text    NOT NULL REFERENCES drafts (draft_no),
    attempt  integer NOT NULL,
    PRIMARY KEY (corp_id, msg_id),
    UNIQUE (draft_no, attempt)
);

CREATE TABLE draft_messages (
    msg_id    text        PRIMARY KEY REFERENCES outbound (msg_id),
    draft_no  text        NOT NULL REFERENCES drafts (draft_no),
    kind      text        NOT NULL CHECK (kind IN ('issue', 'settle', 'refund')),
    attempt   integer     NOT NULL,
    status    text        CHECK (status IN ('ACSC', 'RJCT')),
    status_at timestamptz,
    UNIQUE (draft_no, kind, attempt)
);

CREATE TABLE draft_presentments (
    agent_bank        text        NOT NULL,
    prsntmt_id        text        NOT NULL,
    draft_no          text        NOT NULL,
    result            text        NOT NULL CHECK (result IN ('ACCP', 'RJCT')),
    reason            text,
    msg_id            text        NOT NULL REFERENCES outbound (msg_id),
    settle_amount_fen bigint      NOT NULL,
    holder_acct       text        NOT NULL,
    holder_name       text        NOT NULL,
    received_at       timestamptz NOT NULL,
    node              text        NOT NULL,
    PRIMARY KEY (agent_bank, prsntmt_id)
);
CREATE UNIQUE INDEX draft_presentments_one_accp ON draft_presentments (draft_no)
    WHERE result = 'ACCP';
-- retention keeps an answer's outbound row (it asks for each candidate), and FK checks
CREATE INDEX draft_presentments_by_msg ON draft_presentments (msg_id);

-- NTFY kind DRAFT (docs/bank-drafts.md §2)
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('CREDIT', 'STATUS', 'INQUIRY', 'REPLY', 'DRAFT'));
ALTER TABLE notifications ADD COLUMN draft_no text;
"""

_V11_FX_STATES = f"""
-- State REVIEW and engine SWIFT (docs/foreign-currency.md §1, §5); an incoming
-- foreign-currency credit arrives over SWIFT too.
ALTER TABLE items DROP CONSTRAINT items_state_check;
ALTER TABLE items ADD CONSTRAINT items_state_check CHECK (state IN ({_STATES}, 'REVIEW'));
ALTER TABLE items DROP CONSTRAINT items_engine_check;
ALTER TABLE items ADD CONSTRAINT items_engine_check
    CHECK (engine IN ('INTRA', 'HVPS', 'BEPS', 'SWIFT'));
ALTER TABLE incoming_credits DROP CONSTRAINT incoming_credits_engine_check;
ALTER TABLE incoming_credits ADD CONSTRAINT incoming_credits_engine_check
    CHECK (engine IN ('INTRA', 'HVPS', 'BEPS', 'SWIFT'));
"""

_V12_FX_ITEMS = """
-- docs/foreign-currency.md §1, §4: the payee's BIC and country, who bears the charges, and
-- the SWIFT payment's UETR (set with its swift.008).  NULL on CNY items.
ALTER TABLE items ADD COLUMN payee_bic text;
ALTER TABLE items ADD COLUMN payee_country text;
ALTER TABLE items ADD COLUMN chrg_br text;
ALTER TABLE items ADD COLUMN uetr text;
"""

_V13_SWIFT_CREDITS = """
-- Incoming SWIFT credits, as schema.py's version 13: currency, minor units (amount_fen
-- counts minor units of ccy), the screening decision as JSON, state REVIEW; the currency
-- of a CREDIT notification; operator actions approve and reject (docs/foreign-currency.md §5).
ALTER TABLE incoming_credits DROP CONSTRAINT incoming_credits_state_check;
ALTER TABLE incoming_credits ADD CONSTRAINT incoming_credits_state_check
    CHECK (state IN ('CHECKING', 'POSTED', 'SUSPENSE', 'REVIEW'));
ALTER TABLE operator_actions DROP CONSTRAINT operator_actions_action_check;
ALTER TABLE operator_actions ADD CONSTRAINT operator_actions_action_check
    CHECK (action IN ('release', 'resend', 'approve', 'reject'));
ALTER TABLE incoming_credits ADD COLUMN ccy text NOT NULL DEFAULT 'CNY';
ALTER TABLE incoming_credits ADD COLUMN minor_units integer NOT NULL DEFAULT 2;
ALTER TABLE incoming_credits ADD COLUMN screening text;
ALTER TABLE notifications ADD COLUMN ccy text;
ALTER TABLE notifications ADD COLUMN minor_units integer;
CREATE INDEX credits_review ON incoming_credits (received_at, gw_ref) WHERE state = 'REVIEW';
"""

_V14_ITEM_SCREENING = """
-- docs/foreign-currency.md §5: every screened outbound item records the list versions that
-- decided it and its hits (JSON; NULL when not screened), read by `gatewayctl messages show`
-- and `review`; the pending reviews and every item ever reviewed are found by partial
-- indexes.  (Version 13 already admits the operator actions approve and reject.)
ALTER TABLE items ADD COLUMN screening text;
CREATE INDEX items_review ON items (updated_at, id) WHERE state = 'REVIEW';
CREATE INDEX transitions_review ON transitions (item_id) WHERE state = 'REVIEW';
"""

MIGRATIONS: tuple[str, ...] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _V5,
    _V6,
    _V7,
    _V8_OPERATOR_ACTIONS,
    _V9_AUDIT_CHAIN,
    _V10_DRAFTS + audit_chain.PG_V10_DRAFT_CHAIN,
    _V11_FX_STATES,
    _V12_FX_ITEMS,
    _V13_SWIFT_CREDITS,
    _V14_ITEM_SCREENING,  # keep last; renumber on merge if another migration lands first
)
"""``MIGRATIONS[n]`` takes a database from version n to n + 1.  Append, never edit."""

SCHEMA_VERSION: Final = len(MIGRATIONS)

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    node       text        NOT NULL
)
"""


async def migrate(conn: asyncpg.Connection, node: str) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found.

    One transaction holding ``pg_advisory_xact_lock``: concurrent starters
    queue on the lock, DDL is transactional, so a crash mid-migration leaves
    the old version whole and the lock is released with the transaction.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_VERSION_TABLE)
        version = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"journal schema version {version} is newer than this gateway ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            await conn.execute(MIGRATIONS[target - 1])
            await conn.execute(
                "INSERT INTO schema_version (version, node) VALUES ($1, $2)", target, node
            )
    return version


async def check_version(conn: asyncpg.Connection) -> None:
    """A read-only open migrates nothing: the schema must be this code's."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    version = (
        int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
        if exists
        else 0
    )
    if version != SCHEMA_VERSION:
        raise RuntimeError(
            f"journal schema version {version}, this gateway reads {SCHEMA_VERSION}:"
            " start gatewayd once to migrate it"
        )
