"""The journal's hash chain: every row that records a change of state, linked.

Banks must be able to show that their audit trail was not edited (log
integrity: SWIFT CSCF 6.4, PCI DSS 10.3).  So each row that records a change
of state carries

- ``seq``: a gap-free sequence number.  It comes from the counter row
  ``audit_head``, updated in the same transaction as the row (a database
  sequence is not gap-free: a rolled-back transaction burns its numbers);
- ``prev_hash``: the previous row's ``hash``, 64 zeros for the first row;
- ``hash``: SHA-256 of ``prev_hash`` and the row's content (:func:`link_hash`).

The rows are the item ``transitions`` (kind ``item``; principle 2's
audit trail, docs/architecture.md) and ``state_changes`` for everything
else whose state moves: an outbound message (``outbound``: PENDING, SENT,
ACKED), an incoming credit (``credit``), an inquiry (``inquiry``: OPEN,
REPLIED), a netting round (``netting``: MATCHED or MISMATCHED), and from
migration 10 a draft's step (``draft``) and a presentment's answer
(``presentment``).  Later
features join by writing a ``state_changes`` row (or a trigger that does).

The database writes the chain itself, in triggers, so no write path can
forget it and every writer of a node shares one counter: on SQLite one chain
per journal file, whose triggers build the text in SQL and hash it with the
``audit_sha256`` function that :func:`register` installs on every connection
(a connection without it cannot write a chained row at all); on PostgreSQL one chain per node
(``bank.node``, sent as the ``gateway.node`` setting of every connection; a
node of the release before, during a rolling upgrade, is known by its
``application_name``),
hashed by ``pgcrypto``-free built-ins (``sha256``).  PostgreSQL keeps the
head of the open transaction in a transaction-local setting and writes the
counter row once per statement, not once per row: a 50,000-item batch
would otherwise make 100,000 versions of one row inside one transaction.

Rows from before the chain's migration stay unchained (``seq`` NULL): the
chain starts with the first change after the upgrade.  Verification and the
recorded head are in :mod:`gateway.journal.audit`.
"""

# ruff: noqa: S608 (this module builds DDL from its own constants; no value comes from outside)
from __future__ import annotations

import hashlib
import sqlite3
from typing import Final

GENESIS: Final = "0" * 64
"""``prev_hash`` of a chain's first row."""

KINDS: Final = ("item", "outbound", "credit", "inquiry", "netting", "draft", "presentment")


def _field(value: str | None) -> str:
    """Length-prefixed, so no value can pass for two (``None`` is ``-``, ``""`` is ``0:``)."""
    return "-" if value is None else f"{len(value.encode())}:{value}"


def link_hash(
    prev: str | None,
    seq: int,
    kind: str,
    subject: object,
    state: str,
    at_us: int,
    detail: str | None,
) -> str:
    """SHA-256 (hex) of a chained row: the previous hash, then the row's content.

    ``at_us`` is the row's instant in microseconds since the epoch.  The
    SQLite triggers (:func:`_sq_text`) and the PostgreSQL function ``audit_hash``
    hash the same bytes.
    """
    text = ",".join(
        _field(v) for v in (prev, str(seq), kind, str(subject), state, str(at_us), detail)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def register(conn: sqlite3.Connection) -> None:
    """Install ``audit_sha256`` on a SQLite connection (the chain triggers call it)."""
    conn.create_function("audit_sha256", 1, _sha256_hex, deterministic=True)


# -- SQLite: journal migration 9 ("audit chain") -----------------------------------------


def _sq_field(x: str) -> str:
    """:func:`_field` in SQLite SQL: the text is built in C, one call into Python hashes it."""
    return f"CASE WHEN {x} IS NULL THEN '-' ELSE length(CAST({x} AS BLOB)) || ':' || {x} END"


def _sq_text(*values: str) -> str:
    return " || ',' || ".join(_sq_field(v) for v in values)


_SQ_CHAIN = """
CREATE TRIGGER {table}_chain AFTER INSERT ON {table} BEGIN
    UPDATE {table} SET seq = h.seq + 1, prev_hash = h.hash, hash = audit_sha256({text})
      FROM audit_head AS h WHERE {table}.id = NEW.id;
    UPDATE audit_head SET seq = seq + 1, hash = (SELECT hash FROM {table} WHERE id = NEW.id);
END;
"""


def _sq_change(name: str, table: str, event: str, when: str, values: str) -> str:
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {table}{when} BEGIN\n"
        "    INSERT INTO state_changes (kind, subject, state, at, detail)"
        f" VALUES ({values});\nEND;\n"
    )


SQLITE_V9_AUDIT_CHAIN: Final = (
    """
-- the tamper-evident chain (gateway.journal.audit_chain): gap-free seq, SHA-256 links
ALTER TABLE transitions ADD COLUMN seq INTEGER;
ALTER TABLE transitions ADD COLUMN prev_hash TEXT;
ALTER TABLE transitions ADD COLUMN hash TEXT;
CREATE TABLE state_changes (
    id        INTEGER PRIMARY KEY,
    kind      TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    state     TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    detail    TEXT,
    seq       INTEGER,
    prev_hash TEXT,
    hash      TEXT
) STRICT;
CREATE INDEX state_changes_at ON state_changes (at, id);  -- retention's keyset order
CREATE TABLE audit_head (                                  -- the per-journal counter row
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
) STRICT;
"""
    + f"INSERT INTO audit_head VALUES (1, 0, '{GENESIS}');\n"
    + _SQ_CHAIN.format(
        table="transitions",
        text=_sq_text("h.hash", "(h.seq + 1)", "'item'", "NEW.item_id", "NEW.state", "NEW.at",
                      "NEW.detail"),
    )
    + _SQ_CHAIN.format(
        table="state_changes",
        text=_sq_text("h.hash", "(h.seq + 1)", "NEW.kind", "NEW.subject", "NEW.state", "NEW.at",
                      "NEW.detail"),
    )
    + _sq_change(
        "outbound_created", "outbound", "INSERT", "",
        "'outbound', NEW.msg_id, NEW.state, NEW.created_at, NEW.msg_tp",
    )
    + _sq_change(
        "outbound_moved", "outbound", "UPDATE OF state", " WHEN NEW.state IS NOT OLD.state",
        "'outbound', NEW.msg_id, NEW.state, coalesce(CASE NEW.state WHEN 'SENT' THEN"
        " NEW.last_sent_at WHEN 'ACKED' THEN NEW.acked_at END, NEW.created_at), NULL",
    )
    + _sq_change(
        "credit_received", "incoming_credits", "INSERT", "",
        "'credit', NEW.gw_ref, NEW.state, NEW.received_at, NULL",
    )
    + _sq_change(
        "credit_moved", "incoming_credits", "UPDATE OF state", " WHEN NEW.state IS NOT OLD.state",
        "'credit', NEW.gw_ref, NEW.state, NEW.updated_at, NULL",
    )
    + _sq_change(
        "inquiry_opened", "inquiries", "INSERT", "",
        "'inquiry', NEW.direction || ' ' || NEW.inq_id, NEW.state, NEW.created_at, NULL",
    )
    + _sq_change(
        "inquiry_moved", "inquiries", "UPDATE OF state", " WHEN NEW.state IS NOT OLD.state",
        "'inquiry', NEW.direction || ' ' || NEW.inq_id, NEW.state,"
        " coalesce(NEW.replied_at, NEW.created_at), NULL",
    )
    + _sq_change(
        "netting_reconciled", "netting_rounds", "INSERT", "",
        "'netting', NEW.work_date || ' ' || NEW.round || ' ' || NEW.counterparty,"
        " CASE WHEN NEW.matched THEN 'MATCHED' ELSE 'MISMATCHED' END, NEW.at,"
        " CAST(NEW.items_netted AS TEXT)",
    )
)  # fmt: skip
"""SQLite migration 9: the chain columns, ``state_changes``, ``audit_head``, the triggers."""


# -- PostgreSQL: journal migration 9 ("audit chain") -------------------------------------


def _pg_change(name: str, table: str, event: str, when: str, values: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"    INSERT INTO state_changes (kind, subject, state, at, detail) VALUES ({values});\n"
        "    RETURN NULL;\nEND $$;\n"
        f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{when}"
        f" EXECUTE FUNCTION {name}();\n"
    )


PG_V9_AUDIT_CHAIN: Final = (
    """
-- the tamper-evident chain (gateway.journal.audit_chain): one chain per node
ALTER TABLE transitions ADD COLUMN node text, ADD COLUMN seq bigint,
                        ADD COLUMN prev_hash text, ADD COLUMN hash text;
CREATE TABLE state_changes (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind      text        NOT NULL,
    subject   text        NOT NULL,
    state     text        NOT NULL,
    at        timestamptz NOT NULL,
    detail    text,
    node      text,
    seq       bigint,
    prev_hash text,
    hash      text
);
CREATE INDEX state_changes_at ON state_changes (at, id);  -- retention's keyset order
CREATE TABLE audit_head (                                  -- one counter row per node
    node text   PRIMARY KEY,
    seq  bigint NOT NULL,
    hash text   NOT NULL
);

CREATE FUNCTION audit_field(v text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
    SELECT CASE WHEN v IS NULL THEN '-' ELSE octet_length(v)::text || ':' || v END
$$;
CREATE FUNCTION audit_hash(prev text, seq bigint, kind text, subject text, state text,
                           at timestamptz, detail text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
    SELECT encode(sha256(convert_to(concat_ws(',', audit_field(prev), audit_field(seq::text),
        audit_field(kind), audit_field(subject), audit_field(state),
        audit_field(((extract(epoch FROM at) * 1000000)::bigint)::text), audit_field(detail)),
        'UTF8')), 'hex')
$$;

-- The head of this transaction: locked counter row, cached as 'node seq hash' in a
-- transaction-local setting (rolled back with the transaction or savepoint).
CREATE FUNCTION audit_begin() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n text := current_setting('gateway.node', true);
    cached text := current_setting('gateway.audit_head', true);
    h record;
BEGIN
    IF n IS NULL OR n = '' THEN  -- a node of the release before: its application_name
        n := substring(current_setting('application_name') FROM '^gateway-([A-Z])$');
    END IF;
    IF n IS NULL THEN
        RAISE EXCEPTION 'audit chain: the gateway.node setting is missing';
    END IF;
    IF cached IS NOT NULL AND split_part(cached, ' ', 1) = n THEN
        RETURN cached;
    END IF;
    INSERT INTO audit_head VALUES (n, 0, repeat('0', 64)) ON CONFLICT (node) DO NOTHING;
    SELECT seq, hash INTO h FROM audit_head WHERE node = n FOR UPDATE;
    cached := n || ' ' || h.seq || ' ' || h.hash;
    PERFORM set_config('gateway.audit_head', cached, true);
    RETURN cached;
END $$;

CREATE FUNCTION audit_link(kind text, subject text, state text, at timestamptz, detail text,
                           OUT node text, OUT seq bigint, OUT prev_hash text, OUT hash text)
LANGUAGE plpgsql AS $$
DECLARE
    cached text := audit_begin();
BEGIN
    node := split_part(cached, ' ', 1);
    seq := split_part(cached, ' ', 2)::bigint + 1;
    prev_hash := split_part(cached, ' ', 3);
    hash := audit_hash(prev_hash, seq, kind, subject, state, at, detail);
    PERFORM set_config('gateway.audit_head', node || ' ' || seq || ' ' || hash, true);
END $$;

CREATE FUNCTION audit_chain_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT l.node, l.seq, l.prev_hash, l.hash INTO NEW.node, NEW.seq, NEW.prev_hash, NEW.hash
      FROM audit_link('item', NEW.item_id::text, NEW.state, NEW.at, NEW.detail) AS l;
    RETURN NEW;
END $$;
CREATE FUNCTION audit_chain_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT l.node, l.seq, l.prev_hash, l.hash INTO NEW.node, NEW.seq, NEW.prev_hash, NEW.hash
      FROM audit_link(NEW.kind, NEW.subject, NEW.state, NEW.at, NEW.detail) AS l;
    RETURN NEW;
END $$;
-- once per statement: the counter row catches up with the cached head
CREATE FUNCTION audit_flush() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cached text := current_setting('gateway.audit_head', true);
BEGIN
    IF cached IS NOT NULL AND cached <> '' THEN
        UPDATE audit_head SET seq = split_part(cached, ' ', 2)::bigint,
                              hash = split_part(cached, ' ', 3)
         WHERE node = split_part(cached, ' ', 1) AND seq < split_part(cached, ' ', 2)::bigint;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER transitions_chain BEFORE INSERT ON transitions
    FOR EACH ROW EXECUTE FUNCTION audit_chain_item();
CREATE TRIGGER transitions_flush AFTER INSERT ON transitions
    FOR EACH STATEMENT EXECUTE FUNCTION audit_flush();
CREATE TRIGGER state_changes_chain BEFORE INSERT ON state_changes
    FOR EACH ROW EXECUTE FUNCTION audit_chain_change();
CREATE TRIGGER state_changes_flush AFTER INSERT ON state_changes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_flush();
"""
    + _pg_change(
        "outbound_created", "outbound", "INSERT", "",
        "'outbound', NEW.msg_id, NEW.state, NEW.created_at, NEW.msg_tp",
    )
    + _pg_change(
        "outbound_moved", "outbound", "UPDATE OF state",
        " WHEN (NEW.state IS DISTINCT FROM OLD.state)",
        "'outbound', NEW.msg_id, NEW.state, coalesce(CASE NEW.state WHEN 'SENT' THEN"
        " NEW.last_sent_at WHEN 'ACKED' THEN NEW.acked_at END, NEW.created_at), NULL",
    )
    + _pg_change(
        "credit_received", "incoming_credits", "INSERT", "",
        "'credit', NEW.gw_ref, NEW.state, NEW.received_at, NULL",
    )
    + _pg_change(
        "credit_moved", "incoming_credits", "UPDATE OF state",
        " WHEN (NEW.state IS DISTINCT FROM OLD.state)",
        "'credit', NEW.gw_ref, NEW.state, NEW.updated_at, NULL",
    )
    + _pg_change(
        "inquiry_opened", "inquiries", "INSERT", "",
        "'inquiry', NEW.direction || ' ' || NEW.inq_id, NEW.state, NEW.created_at, NULL",
    )
    + _pg_change(
        "inquiry_moved", "inquiries", "UPDATE OF state",
        " WHEN (NEW.state IS DISTINCT FROM OLD.state)",
        "'inquiry', NEW.direction || ' ' || NEW.inq_id, NEW.state,"
        " coalesce(NEW.replied_at, NEW.created_at), NULL",
    )
    + _pg_change(
        "netting_reconciled", "netting_rounds", "INSERT", "",
        "'netting', to_char(NEW.work_date, 'YYYY-MM-DD') || ' ' || NEW.round || ' '"
        " || NEW.counterparty, CASE WHEN NEW.matched THEN 'MATCHED' ELSE 'MISMATCHED' END,"
        " NEW.at, NEW.items_netted::text",
    )
)  # fmt: skip
"""PostgreSQL migration 9: as :data:`SQLITE_V9_AUDIT_CHAIN`, one chain per node."""

# -- migration 10: the draft register joins the chain ------------------------------------

_DRAFT_STEP = "'draft', NEW.draft_no, NEW.state, NEW.at, NEW.reason_code"
_PRESENTMENT = (
    "'presentment', NEW.agent_bank || ' ' || NEW.prsntmt_id, NEW.result, NEW.received_at,"
    " NEW.reason"
)

SQLITE_V10_DRAFT_CHAIN: Final = _sq_change(
    "draft_stepped", "draft_steps", "INSERT", "", _DRAFT_STEP
) + _sq_change("presentment_answered", "draft_presentments", "INSERT", "", _PRESENTMENT)
"""SQLite migration 10: every step of a draft (``draft``: its DraftNo, the state reached,
the reason code) and every presentment answer (``presentment``: AgentBank and PrsntmtId,
ACCP or RJCT, the reason) is a link (docs/bank-drafts.md §1: every change is journaled)."""

PG_V10_DRAFT_CHAIN: Final = _pg_change(
    "draft_stepped", "draft_steps", "INSERT", "", _DRAFT_STEP
) + _pg_change("presentment_answered", "draft_presentments", "INSERT", "", _PRESENTMENT)
"""PostgreSQL migration 10: as :data:`SQLITE_V10_DRAFT_CHAIN`."""

PG_BEGIN: Final = "SELECT audit_begin()"
"""First statement of a node's write transaction: take the node's counter row before any
other lock, so two transactions never wait for each other across it (no deadlock)."""
