"""The tables archived row by row, each by its own rule of "old and final".

The draft register's tables (migration 10) are not here: the register is kept for ever.

Notifications, inquiries, incoming credits, netting rounds (migration 4),
item-less outbound messages (ccms.314 / ccms.315) and the operators' tools'
rows (migration 8: manual actions, inbound clearing messages, and the signed
request / response bytes, which wait for their request) have no items to wait for
(docs/protocol.md §7 counts the retention period from a request; these rows are
its correspondence): each table has its own rule, and the same two steps of
:mod:`gateway.journal.retention`.  Rows are exported in keyset batches,
oldest first: by the time column the rule bounds (``since``), then the
primary key, which is exactly what the table's migration-5 index holds, so
a batch reads only old rows and the last one stops at the cutoff instead of
walking every younger row (netting rounds: their primary key starts with
the work date).  They are deleted by their key *and* the exported value of
the columns that can still change (``guard``), so a row that moved between
export and delete (an inquiry replied, a credit netted) stays for the next
pass, which archives it anew.

Each :class:`Table` is data: its columns as archive line fields (encoded as
:mod:`gateway.journal.archive` says), its rule, and the statements built
from them once for both backends (:data:`STATEMENTS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from gateway.journal.archive import (
    amount_text,
    day_text,
    instant_text,
    opt_amount_text,
    payload_text,
)
from gateway.journal.schema import from_minor, to_fen


def _same(value: Any) -> Any:
    return value


def minor_amount(line: dict[str, Any]) -> None:
    """A SWIFT credit's amount counts minor units of its currency (migration 13): written
    with exactly those (``1500`` JPY), not as fen; CNY lines stay as they were."""
    units = line.get("minor_units")
    if units is not None and line.get("amount") is not None:
        count = to_fen(Decimal(line["amount"]))  # amount_text's fen, back to the stored count
        line["amount"] = str(from_minor(count, int(units)))


Cols = tuple[tuple[str, str, Callable[[Any], Any]], ...]
"""(column, line field, encoding), in SELECT order; ``node`` exists on PostgreSQL only."""


@dataclass(frozen=True)
class Table:
    line: str  # the archive line kind
    field: str  # the ArchiveResult count
    table: str
    key: tuple[str, ...]  # primary key: what the delete matches
    guard: tuple[str, ...]  # what may still change: re-checked by the delete
    pg_types: tuple[str, ...]  # of key + guard: the delete's unnest() arrays
    cols: Cols
    rule: str  # old and final; ``{b}`` is the cutoff
    by_day: bool  # the cutoff is the Asia/Shanghai date, else the instant
    day_of: str  # line field whose date names the file
    since: str | None  # the timestamptz column the rule bounds; None: the key starts with it
    finish: Callable[[dict[str, Any]], None] | None = None  # a line's last touch (amounts)

    @property
    def match(self) -> str:
        return ", ".join((*self.key, *self.guard))

    @property
    def seek(self) -> tuple[str, ...]:
        """Keyset order, oldest first: the columns of the index that serves :meth:`select`."""
        return self.key if self.since is None else (self.since, *self.key)

    @property
    def seek_types(self) -> tuple[str, ...]:
        """PostgreSQL types of :attr:`seek`: the keyset parameters' casts."""
        key_types = self.pg_types[: len(self.key)]
        return key_types if self.since is None else ("timestamptz", *key_types)

    def select(self, mark: str, keyset: bool) -> str:
        """Candidates, oldest first: ``{mark}1`` cutoff, ``2`` limit, ``3..`` keyset.

        Columns: the match values (key, guard), the keyset position
        (:attr:`seek`), then the line's columns.
        """
        pg = mark == "$"
        cols = ", ".join("NULL" if c == "node" and not pg else c for c, _, _ in self.cols)
        seek = ", ".join(self.seek)
        after = ""
        if keyset:
            marks = ", ".join(
                f"${n + 3}::{ty}" if pg else f"?{n + 3}" for n, ty in enumerate(self.seek_types)
            )
            after = f" AND ({seek}) > ({marks})"
        return (
            f"SELECT {self.match}, {seek}, {cols} FROM {self.table}"  # noqa: S608 (constants)
            f" WHERE {self.rule.format(b=f'{mark}1')}{after}"
            f" ORDER BY {seek} LIMIT {mark}2"
        )

    def delete(self, mark: str) -> str:
        """The exported rows that still match and still qualify, in one statement."""
        n = len(self.pg_types)
        if mark == "$":
            arrays = ", ".join(f"${i + 1}::{ty}[]" for i, ty in enumerate(self.pg_types))
            rows, bound = f"SELECT * FROM unnest({arrays})", f"${n + 1}"  # noqa: S608 (constants)
        else:
            values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(n))
            rows, bound = f"SELECT {values} FROM json_each(?1)", "?2"  # noqa: S608 (constants)
        return (
            f"DELETE FROM {self.table} WHERE ({self.match}) IN ({rows})"  # noqa: S608 (constants)
            f" AND {self.rule.format(b=bound)}"
        )

    def line_of(self, row: Sequence[Any]) -> dict[str, Any]:
        """A row's exported columns (after the match values and the position) → one line."""
        n = len(self.key) + len(self.guard) + len(self.seek)
        line: dict[str, Any] = {"kind": self.line}
        line.update((name, enc(v)) for (_, name, enc), v in zip(self.cols, row[n:], strict=True))
        if self.finish is not None:
            self.finish(line)
        return line

    def rows(self, found: Sequence[Sequence[Any]]) -> Rows:
        """What :meth:`select` found (either backend) → one batch."""
        n = len(self.key) + len(self.guard)
        last = tuple(found[-1][n : n + len(self.seek)]) if found else None
        return Rows([tuple(r[:n]) for r in found], [self.line_of(r) for r in found], last)


TABLES: Final = (
    Table(
        "notification", "notifications", "notifications", ("ntfy_id",), (), ("bigint",),
        (("ntfy_id", "ntfy_id", int), ("corp_id", "corp_id", _same),
         ("kind", "notice_kind", _same), ("at", "at", instant_text),
         ("orig_msg_id", "orig_msg_id", _same), ("seq_no", "seq_no", _same),
         ("gw_ref", "gw_ref", _same), ("inq_id", "inq_id", _same), ("state", "state", _same),
         ("reason_code", "reason_code", _same), ("engine", "engine", _same),
         ("work_date", "work_date", day_text), ("acct", "acct", _same),
         ("amount_fen", "amount", opt_amount_text),
         ("counterparty_acct", "counterparty_acct", _same),
         ("counterparty_name", "counterparty_name", _same),
         ("counterparty_bank", "counterparty_bank", _same), ("text", "text", _same),
         ("draft_no", "draft_no", _same), ("ccy", "ccy", _same),
         ("minor_units", "minor_units", _same)),
        "at < {b}", by_day=False, day_of="at", since="at", finish=minor_amount,
    ),
    # any state: an inquiry nobody answered in 400 days is history too (docs/protocol.md §7)
    Table(
        "inquiry", "inquiries", "inquiries", ("direction", "inq_id"), ("state",),
        ("text", "text", "text"),
        (("direction", "direction", _same), ("inq_id", "inq_id", _same),
         ("state", "state", _same), ("counterparty", "counterparty", _same),
         ("text", "text", _same), ("created_at", "created_at", instant_text),
         ("corp_id", "corp_id", _same), ("msg_id", "msg_id", _same),
         ("seq_no", "seq_no", _same), ("credit_ref", "credit_ref", _same),
         ("orgnl_msg_id", "orgnl_msg_id", _same), ("orgnl_tx_id", "orgnl_tx_id", _same),
         ("request_msg_id", "request_msg_id", _same), ("out_msg_id", "out_msg_id", _same),
         ("reply_text", "reply_text", _same), ("replied_at", "replied_at", instant_text),
         ("engine", "engine", _same)),
        "created_at < {b}", by_day=False, day_of="created_at", since="created_at",
    ),
    # final states only: a CHECKING credit is still waiting for the core (docs/clearing-link.md §6)
    Table(
        "incoming_credit", "incoming_credits", "incoming_credits", ("gw_ref",),
        ("state", "coalesce(netting_round, -1)"), ("text", "text", "integer"),
        (("gw_ref", "gw_ref", _same), ("engine", "engine", _same), ("msg_id", "msg_id", _same),
         ("tx_id", "tx_id", _same), ("end_to_end_id", "end_to_end_id", _same),
         ("sender", "sender", _same), ("work_date", "work_date", day_text),
         ("debtor_acct", "debtor_acct", _same), ("debtor_name", "debtor_name", _same),
         ("debtor_bank", "debtor_bank", _same), ("creditor_acct", "creditor_acct", _same),
         ("creditor_name", "creditor_name", _same), ("amount_fen", "amount", amount_text),
         ("purpose", "purpose", _same), ("received_at", "received_at", instant_text),
         ("corp_id", "corp_id", _same), ("state", "state", _same),
         ("check_attempts", "check_attempts", int),
         ("next_check_at", "next_check_at", instant_text),
         ("netting_round", "netting_round", _same), ("updated_at", "updated_at", instant_text),
         ("node", "node", _same), ("ccy", "ccy", _same), ("minor_units", "minor_units", _same),
         ("screening", "screening", _same)),
        "received_at < {b} AND state IN ('POSTED', 'SUSPENSE')", by_day=False,
        day_of="received_at", since="received_at", finish=minor_amount,
    ),
    # a round stays while items it netted still wait for their beps.settle (docs/routing-rules.md
    # §5)
    Table(
        "netting_round", "netting_rounds", "netting_rounds", ("work_date", "round", "counterparty"),
        (), ("date", "integer", "text"),
        (("work_date", "work_date", day_text), ("round", "round", int),
         ("counterparty", "counterparty", _same), ("our_dbt_cnt", "our_dbt_cnt", int),
         ("our_dbt_fen", "our_dbt_sum", amount_text), ("our_cdt_cnt", "our_cdt_cnt", int),
         ("our_cdt_fen", "our_cdt_sum", amount_text), ("their_dbt_cnt", "their_dbt_cnt", int),
         ("their_dbt_fen", "their_dbt_sum", amount_text), ("their_cdt_cnt", "their_cdt_cnt", int),
         ("their_cdt_fen", "their_cdt_sum", amount_text), ("matched", "matched", bool),
         ("items_netted", "items_netted", int), ("at", "at", instant_text),
         ("node", "node", _same)),
        "work_date < {b} AND NOT EXISTS (SELECT 1 FROM items i WHERE i.state = 'NETTED'"
        " AND i.work_date = netting_rounds.work_date AND i.netting_round = netting_rounds.round)",
        by_day=True, day_of="work_date", since=None,
    ),
    # item-less messages (ccms.314 / 315): receipted, so the outbox is done with them; a draft's
    # messages and presentment answers stay with the register, which is kept (docs/bank-drafts.md)
    Table(
        "outbound", "outbound", "outbound", ("msg_id",), (), ("text",),
        (("msg_id", "msg_id", _same), ("engine", "engine", _same), ("msg_tp", "msg_tp", _same),
         ("topic", "topic", _same), ("receiver", "receiver", _same),
         ("work_date", "work_date", day_text), ("payload", "payload_b64", payload_text),
         ("state", "state", _same), ("attempts", "attempts", int),
         ("created_at", "created_at", instant_text), ("last_sent_at", "last_sent_at", instant_text),
         ("acked_at", "acked_at", instant_text)),
        "created_at < {b} AND state = 'ACKED'"
        " AND NOT EXISTS (SELECT 1 FROM items i WHERE i.out_msg_id = outbound.msg_id)"
        " AND NOT EXISTS (SELECT 1 FROM draft_messages m WHERE m.msg_id = outbound.msg_id)"
        " AND NOT EXISTS (SELECT 1 FROM draft_presentments p WHERE p.msg_id = outbound.msg_id)",
        by_day=False, day_of="created_at", since="created_at",
    ),
    # migration 8 (the operators' tools): a request's signed bytes leave after the request
    Table(
        "exchange", "exchanges", "exchanges", ("id",), (), ("bigint",),
        (("id", "id", int), ("gw_ref", "gw_ref", _same), ("request", "request_b64", payload_text),
         ("response", "response_b64", payload_text), ("at", "at", instant_text)),
        "at < {b} AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.gw_ref = exchanges.gw_ref)",
        by_day=False, day_of="at", since="at",
    ),
    Table(
        "inbound_message", "inbound_messages", "inbound_messages", ("id",), (), ("bigint",),
        (("id", "id", int), ("msg_id", "msg_id", _same), ("msg_tp", "msg_tp", _same),
         ("sndr", "sndr", _same), ("topic", "topic", _same), ("ref", "ref", _same),
         ("payload", "payload_b64", payload_text), ("received_at", "received_at", instant_text)),
        "received_at < {b}", by_day=False, day_of="received_at", since="received_at",
    ),
    Table(
        "operator_action", "operator_actions", "operator_actions", ("id",), (), ("bigint",),
        (("id", "id", int), ("at", "at", instant_text), ("uid", "uid", int),
         ("operator", "operator", _same), ("action", "action", _same),
         ("target", "target", _same), ("reason", "reason", _same), ("forced", "forced", bool)),
        "at < {b}", by_day=False, day_of="at", since="at",
    ),
    # links of the audit chain (journal migration 9) leave by age, each keeping its seq and
    # hashes: verification stitches the archives and the journal together by seq
    Table(
        "state_change", "state_changes", "state_changes", ("id",), (), ("bigint",),
        (("id", "id", int), ("kind", "change_kind", _same), ("subject", "subject", _same),
         ("state", "state", _same), ("at", "at", instant_text), ("detail", "detail", _same),
         ("node", "node", _same), ("seq", "seq", _same), ("prev_hash", "prev_hash", _same),
         ("hash", "hash", _same)),
        "at < {b}", by_day=False, day_of="at", since="at",
    ),
)  # fmt: skip
STATEMENTS: Final = {
    (t.line, mark): (t.select(mark, keyset=False), t.select(mark, keyset=True), t.delete(mark))
    for t in TABLES
    for mark in ("?", "$")
}
"""(line kind, parameter mark) → (first batch, next batches, delete), built once."""


@dataclass
class Rows:
    """One keyset batch of a :data:`TABLES` table."""

    matches: list[tuple[Any, ...]]  # key + guard values, what the delete re-checks
    lines: list[dict[str, Any]]
    last: tuple[Any, ...] | None  # the last row's keyset position: the next batch's start


__all__ = ["STATEMENTS", "TABLES", "Cols", "Rows", "Table"]
