"""Retention and archive: journal rows past retention go to compressed files, then away.

corplink.md §7: ``(CorpId, MsgId)`` is unique *for the retention period*
(default 400 days).  So a request may leave the journal only when it is older
than the retention period **and** every item of it is final (SETTLED or
REJECTED: nothing will ever change it again).  Once it has left, its MsgId is
free: a replay of it is treated as a new request.  That is the spec's
retention semantics, not a leak — and in practice such a replay already
fails freshness (3002: its SendTime is 400 days old), while a re-sent MsgId
with a fresh SendTime is different content, which was 3001 before and is a
new payment after.  Banks keep the archive files for their audit period.

:func:`archive_once` runs one pass, in two phases, so that a crash at any
moment loses nothing:

1. **Export.**  Eligible requests are read in small keyset batches (oldest
   first) with their items, each item's transitions, the outbound messages
   those items went out in, and the operators' daily totals of those days;
   they are written as gzip JSON lines to a temporary file in ``out_dir``,
   which is fsynced, renamed to its final name and the folder fsynced.
2. **Remove.**  Only then are the exported requests deleted, again in small
   batches, each its own short transaction that re-checks the rule (older
   than ``before``, every item final).  An outbound message is deleted with
   the last item that references it; a daily total with its day.

The correspondence tables (migration 4) and item-less outbound messages
have no items to wait for; each leaves by its own rule of "old and final",
in the same two phases (exported in keyset batches, deleted in batches that
re-check the rule and that the row did not change since it was exported):

- notifications (NTFY, corplink.md §4) by ``at``: the NtfyId cursor is never
  reused (AUTOINCREMENT / identity), so a client's ``After`` stays valid;
- inquiries (ccms.314 / 315, clearing.md §4) by ``created_at``, in any
  state: one unanswered for the whole retention period is history too;
- incoming credits (clearing.md §6) by ``received_at``, only POSTED or
  SUSPENSE: a CHECKING credit still waits for the core and never leaves;
- netting rounds (routing.md §5) by work date before the cutoff's date,
  unless an item the round netted still waits (NETTED) for its beps.settle;
- outbound messages without items (ccms.314 / 315) by ``created_at``, once
  receipted (ACKED): the outbox is done with them.

A crash between the phases leaves rows that are already archived: the next
pass archives them again (archive files are at-least-once; readers dedupe by
GwRef, outbound MsgId, NtfyId, (direction, InqId), credit GwRef and
(work date, round, counterparty)).  A crash inside phase 1 leaves a ``*.tmp``
file and no deletion.  These tables have no foreign keys between them, so a
crash between two of their batches leaves a journal as consistent as before.

Not blocking the hot path: every batch is its own short transaction.
SQLite: a separate connection on the same file with ``busy_timeout``; WAL
lets the gateway's writer and readers go on, and its group-commit writer
waits (its own ``busy_timeout``) for at most one batch's delete.  The
SQLite work runs in a thread, so the event loop never waits on it.
PostgreSQL: a separate asyncpg connection on the same DSN with
``synchronous_commit = on`` and a ``lock_timeout``; a session advisory lock
makes one node archive at a time (the others return ``skipped``).

File format (``format`` 2), one JSON object per line, UTF-8: a header
``{"kind": "archive", ...}``, then ``request`` lines (the request with its
items, each with its ``transitions``), ``outbound`` lines (``payload_b64``),
``notification``, ``inquiry``, ``incoming_credit`` and ``netting_round``
lines (their table's columns; ``amount_fen`` as ``amount``, a notification's
``kind`` as ``notice_kind``, a round's ``*_fen`` as ``*_sum``) and
``daily_total`` lines.  Format 1 is format 2 without the four new kinds.
Instants are ISO 8601 in Asia/Shanghai with microseconds, work dates ISO
dates, amounts decimal strings.  The name is
``journal-<first day>-<last day>-<content hash>.jsonl.gz``: the dates of the
records inside (a request's received date, a notification's time, ...).
:func:`read_archive` reads it back into records.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final, Protocol, TypeVar

import asyncpg

from gateway.clock import SHANGHAI
from gateway.journal import schema
from gateway.journal.records import (
    CreditState,
    Figures,
    IncomingCredit,
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    OutboundRecord,
    OutState,
    RequestRecord,
)
from gateway.model import (
    BizType,
    Engine,
    Notice,
    NoticeKind,
    Priority,
    State,
    StatusView,
    Transition,
)

T = TypeVar("T")

FORMAT: Final = 2
"""Archive line format version, in each file's header line (2: the correspondence lines)."""

READABLE_FORMATS: Final = frozenset({1, 2})
"""What :func:`read_archive` reads: version 1 files are version 2 without the new kinds."""

ARCHIVE_LOCK: Final = 0x67_77_61_72_63_68  # "gwarch": PostgreSQL advisory lock key
"""Held for a whole pass, so two nodes never archive at once (PostgreSQL)."""

LOCK_TIMEOUT_MS: Final = 2000
"""PostgreSQL: a batch gives up rather than wait longer for a row the hot path holds."""

_ITEM_COLS: Final = (
    "id, request_id, seq_no, tx_id, end_to_end_id, engine, receiver, payee_bank_code,"
    " work_date, state, release_at, payer_acct, payer_name, payee_acct, payee_name,"
    " amount_fen, ccy, priority, biz_type, purpose, reason_code, reason_text, out_msg_id,"
    " queued_at, updated_at"
)
_OUT_COLS: Final = (
    "msg_id, engine, msg_tp, topic, receiver, work_date, payload, state, attempts,"
    " created_at, last_sent_at, acked_at"
)


# -- what a pass reports, and what a file reads back as ---------------------------------


@dataclass(frozen=True)
class ArchiveResult:
    """One pass: rows removed (all of them are in ``path``), or ``skipped``.

    ``outbound`` counts every outbound row removed: the messages of archived
    requests and the item-less ones (ccms.314 / ccms.315).
    """

    requests: int = 0
    items: int = 0
    transitions: int = 0
    outbound: int = 0
    daily_totals: int = 0
    path: Path | None = None  # None: nothing was old and final enough
    first_received: datetime | None = None  # of the requests archived
    last_received: datetime | None = None
    skipped: bool = False  # PostgreSQL: another node was archiving
    notifications: int = 0
    inquiries: int = 0
    incoming_credits: int = 0
    netting_rounds: int = 0

    def counts(self) -> dict[str, int]:
        """Rows removed per kind, for the pass's one log line."""
        return {
            "requests": self.requests, "items": self.items, "transitions": self.transitions,
            "outbound": self.outbound, "daily_totals": self.daily_totals,
            "notifications": self.notifications, "inquiries": self.inquiries,
            "incoming_credits": self.incoming_credits, "netting_rounds": self.netting_rounds,
        }  # fmt: skip

    @property
    def removed(self) -> int:
        """Rows removed in all; 0 when the pass found nothing (or was skipped)."""
        return sum(self.counts().values())


@dataclass(frozen=True)
class ArchivedTransition:
    state: State
    at: datetime
    detail: str | None


@dataclass(frozen=True)
class ArchivedItem:
    seq_no: int | None
    tx_id: str
    end_to_end_id: str
    engine: Engine | None
    receiver: str | None
    payee_bank_code: str
    work_date: date | None
    state: State
    release_at: datetime | None
    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    amount: Decimal
    ccy: str
    priority: Priority
    biz_type: BizType
    purpose: str | None
    reason_code: str | None
    reason_text: str | None
    out_msg_id: str | None
    queued_at: datetime | None
    updated_at: datetime
    transitions: tuple[ArchivedTransition, ...]

    def view(self) -> StatusView:
        """What STATUS answered for this item while it was in the journal (corplink.md §5)."""
        return StatusView(
            state=self.state,
            engine=self.engine,
            work_date=self.work_date,
            release_at=self.release_at,
            reason_code=self.reason_code,
            reason_text=self.reason_text,
            seq_no=self.seq_no,
            history=tuple(Transition(t.state, t.at) for t in self.transitions),
        )


@dataclass(frozen=True)
class ArchivedRequest:
    record: RequestRecord
    node: str | None
    items: tuple[ArchivedItem, ...]


@dataclass(frozen=True)
class ArchivedOutbound(OutboundRecord):
    """An outbound message as archived: the journal record plus when it was receipted."""

    acked_at: datetime | None


@dataclass(frozen=True)
class ArchivedDailyTotal:
    corp_id: str
    oper_id: str
    day: date
    total: Decimal


@dataclass(frozen=True)
class ArchivedNotification:
    """An NTFY notification (corplink.md §4) and the corporate it was for."""

    corp_id: str
    notice: Notice


@dataclass(frozen=True)
class ArchivedInquiry(InquiryRecord):
    """An inquiry (clearing.md §4 ccms.314 / 315) plus the outbound message of it."""

    out_msg_id: str | None


@dataclass(frozen=True)
class ArchivedCredit(IncomingCredit):
    """An incoming credit in a final state (clearing.md §6), with what the journal kept."""

    end_to_end_id: str
    received_at: datetime
    netting_round: int | None
    updated_at: datetime
    node: str | None  # PostgreSQL: the node that received it; SQLite keeps none


@dataclass(frozen=True)
class ArchivedNettingRound:
    """One reconciled ``CptyPos`` of a beps.netting round (routing.md §5)."""

    work_date: date
    round: int
    counterparty: str
    ours: Figures
    theirs: Figures
    matched: bool
    items_netted: int
    at: datetime
    node: str | None


Archived = (
    ArchivedRequest | ArchivedOutbound | ArchivedDailyTotal | ArchivedNotification
    | ArchivedInquiry | ArchivedCredit | ArchivedNettingRound
)  # fmt: skip


# -- value encoding, the same for both backends -------------------------------------------


def _instant(value: object) -> str | None:
    """SQLite integer microseconds or a PostgreSQL timestamptz → ISO 8601, Asia/Shanghai."""
    if value is None:
        return None
    at = value if isinstance(value, datetime) else schema.from_micros(int(str(value)))
    return at.astimezone(SHANGHAI).isoformat(timespec="microseconds")


def _day(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _amount(fen: object) -> str:
    return str(schema.from_fen(int(str(fen))))


def _item_line(row: Sequence[Any], trail: list[dict[str, Any]]) -> dict[str, Any]:
    (_id, _req, seq, tx, e2e, engine, receiver, bank, day, state, release, payer_acct,
     payer_name, payee_acct, payee_name, fen, ccy, priority, biz, purpose, code, text, out,
     queued, updated) = row  # fmt: skip
    return {
        "seq_no": seq, "tx_id": tx, "end_to_end_id": e2e, "engine": engine,
        "receiver": receiver, "payee_bank_code": bank, "work_date": _day(day), "state": state,
        "release_at": _instant(release), "payer_acct": payer_acct, "payer_name": payer_name,
        "payee_acct": payee_acct, "payee_name": payee_name, "amount": _amount(fen), "ccy": ccy,
        "priority": priority, "biz_type": biz, "purpose": purpose, "reason_code": code,
        "reason_text": text, "out_msg_id": out, "queued_at": _instant(queued),
        "updated_at": _instant(updated), "transitions": trail,
    }  # fmt: skip


def _outbound_line(row: Sequence[Any]) -> dict[str, Any]:
    msg_id, engine, msg_tp, topic, receiver, day, payload, state, attempts, created, sent, acked = (
        row
    )
    return {
        "kind": "outbound", "msg_id": msg_id, "engine": engine, "msg_tp": msg_tp,
        "topic": topic, "receiver": receiver, "work_date": _day(day),
        "payload_b64": base64.b64encode(bytes(payload)).decode("ascii"), "state": state,
        "attempts": attempts, "created_at": _instant(created), "last_sent_at": _instant(sent),
        "acked_at": _instant(acked),
    }  # fmt: skip


@dataclass
class _Batch:
    """One batch read for export: its lines and what phase 2 needs."""

    keys: list[tuple[object, int]]  # (received_at as stored, request id), keyset order
    lines: list[dict[str, Any]]
    received: list[datetime]  # of the requests, Asia/Shanghai: the file name, the result


def _assemble(
    requests: Sequence[Sequence[Any]],
    items: Sequence[Sequence[Any]],
    trails: Sequence[Sequence[Any]],
    outbound: Sequence[Sequence[Any]],
    node_of: dict[int, str | None],
) -> _Batch:
    """Rows of both backends (same column order) → archive lines."""
    by_item: dict[int, list[dict[str, Any]]] = {}
    for item_id, state, at, detail in trails:
        by_item.setdefault(int(item_id), []).append(
            {"state": state, "at": _instant(at), "detail": detail}
        )
    by_request: dict[int, list[dict[str, Any]]] = {}
    for row in items:
        by_request.setdefault(int(row[1]), []).append(_item_line(row, by_item.get(int(row[0]), [])))
    lines: list[dict[str, Any]] = []
    keys: list[tuple[object, int]] = []
    instants: list[datetime] = []
    for rid, corp, msg, oper, trn, digest, ref, received in requests:
        at = _instant(received)
        keys.append((received, int(rid)))
        instants.append(datetime.fromisoformat(str(at)))
        lines.append({
            "kind": "request", "gw_ref": ref, "corp_id": corp, "msg_id": msg, "oper_id": oper,
            "trn_code": trn, "digest": digest, "received_at": at, "node": node_of.get(int(rid)),
            "items": by_request.get(int(rid), []),
        })  # fmt: skip
    lines.extend(_outbound_line(row) for row in outbound)
    return _Batch(keys, lines, instants)


# -- tables archived row by row ---------------------------------------------------------------
# Notifications, inquiries, incoming credits, netting rounds (migration 4) and item-less
# outbound messages (ccms.314 / ccms.315) have no items to wait for: each table has its own
# rule of "old and final", and the same two steps.  Rows are exported in keyset batches
# (primary key order), and deleted by their key *and* the exported value of the columns
# that can still change (``guard``), so a row that moved between export and delete (an
# inquiry replied, a credit netted) stays for the next pass, which archives it anew.


def _same(value: Any) -> Any:
    return value


def _opt_amount(fen: object) -> str | None:
    return None if fen is None else _amount(fen)


def _payload(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


_Cols = tuple[tuple[str, str, Callable[[Any], Any]], ...]
"""(column, line field, encoding), in SELECT order; ``node`` exists on PostgreSQL only."""


@dataclass(frozen=True)
class _Table:
    line: str  # the archive line kind
    field: str  # the ArchiveResult count
    table: str
    key: tuple[str, ...]  # primary key: keyset order
    guard: tuple[str, ...]  # what may still change: re-checked by the delete
    pg_types: tuple[str, ...]  # of key + guard: the delete's unnest() arrays
    cols: _Cols
    rule: str  # old and final; ``{b}`` is the cutoff
    by_day: bool  # the cutoff is the Asia/Shanghai date, else the instant
    day_of: str  # line field whose date names the file

    @property
    def match(self) -> str:
        return ", ".join((*self.key, *self.guard))

    def select(self, mark: str, keyset: bool) -> str:
        """Candidates, oldest key first: ``{mark}1`` cutoff, ``2`` limit, ``3..`` keyset."""
        pg = mark == "$"
        cols = ", ".join("NULL" if c == "node" and not pg else c for c, _, _ in self.cols)
        after = ""
        if keyset:
            marks = ", ".join(
                f"${n + 3}::{ty}" if pg else f"?{n + 3}"
                for n, ty in enumerate(self.pg_types[: len(self.key)])
            )
            after = f" AND ({', '.join(self.key)}) > ({marks})"
        return (
            f"SELECT {self.match}, {cols} FROM {self.table}"  # noqa: S608 (constant fragments)
            f" WHERE {self.rule.format(b=f'{mark}1')}{after}"
            f" ORDER BY {', '.join(self.key)} LIMIT {mark}2"
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
        """A row's exported columns (after the match values) → one archive line."""
        n = len(self.key) + len(self.guard)
        line: dict[str, Any] = {"kind": self.line}
        line.update((name, enc(v)) for (_, name, enc), v in zip(self.cols, row[n:], strict=True))
        return line


_TABLES: Final = (
    _Table(
        "notification", "notifications", "notifications", ("ntfy_id",), (), ("bigint",),
        (("ntfy_id", "ntfy_id", int), ("corp_id", "corp_id", _same),
         ("kind", "notice_kind", _same), ("at", "at", _instant),
         ("orig_msg_id", "orig_msg_id", _same), ("seq_no", "seq_no", _same),
         ("gw_ref", "gw_ref", _same), ("inq_id", "inq_id", _same), ("state", "state", _same),
         ("reason_code", "reason_code", _same), ("engine", "engine", _same),
         ("work_date", "work_date", _day), ("acct", "acct", _same),
         ("amount_fen", "amount", _opt_amount),
         ("counterparty_acct", "counterparty_acct", _same),
         ("counterparty_name", "counterparty_name", _same),
         ("counterparty_bank", "counterparty_bank", _same), ("text", "text", _same)),
        "at < {b}", by_day=False, day_of="at",
    ),
    # any state: an inquiry nobody answered in 400 days is history too (corplink.md §7)
    _Table(
        "inquiry", "inquiries", "inquiries", ("direction", "inq_id"), ("state",),
        ("text", "text", "text"),
        (("direction", "direction", _same), ("inq_id", "inq_id", _same),
         ("state", "state", _same), ("counterparty", "counterparty", _same),
         ("text", "text", _same), ("created_at", "created_at", _instant),
         ("corp_id", "corp_id", _same), ("msg_id", "msg_id", _same),
         ("seq_no", "seq_no", _same), ("credit_ref", "credit_ref", _same),
         ("orgnl_msg_id", "orgnl_msg_id", _same), ("orgnl_tx_id", "orgnl_tx_id", _same),
         ("request_msg_id", "request_msg_id", _same), ("out_msg_id", "out_msg_id", _same),
         ("reply_text", "reply_text", _same), ("replied_at", "replied_at", _instant)),
        "created_at < {b}", by_day=False, day_of="created_at",
    ),
    # final states only: a CHECKING credit is still waiting for the core (clearing.md §6)
    _Table(
        "incoming_credit", "incoming_credits", "incoming_credits", ("gw_ref",),
        ("state", "coalesce(netting_round, -1)"), ("text", "text", "integer"),
        (("gw_ref", "gw_ref", _same), ("engine", "engine", _same), ("msg_id", "msg_id", _same),
         ("tx_id", "tx_id", _same), ("end_to_end_id", "end_to_end_id", _same),
         ("sender", "sender", _same), ("work_date", "work_date", _day),
         ("debtor_acct", "debtor_acct", _same), ("debtor_name", "debtor_name", _same),
         ("debtor_bank", "debtor_bank", _same), ("creditor_acct", "creditor_acct", _same),
         ("creditor_name", "creditor_name", _same), ("amount_fen", "amount", _amount),
         ("purpose", "purpose", _same), ("received_at", "received_at", _instant),
         ("corp_id", "corp_id", _same), ("state", "state", _same),
         ("check_attempts", "check_attempts", int),
         ("next_check_at", "next_check_at", _instant),
         ("netting_round", "netting_round", _same), ("updated_at", "updated_at", _instant),
         ("node", "node", _same)),
        "received_at < {b} AND state IN ('POSTED', 'SUSPENSE')", by_day=False,
        day_of="received_at",
    ),
    # a round stays while items it netted still wait for their beps.settle (routing.md §5)
    _Table(
        "netting_round", "netting_rounds", "netting_rounds", ("work_date", "round", "counterparty"),
        (), ("date", "integer", "text"),
        (("work_date", "work_date", _day), ("round", "round", int),
         ("counterparty", "counterparty", _same), ("our_dbt_cnt", "our_dbt_cnt", int),
         ("our_dbt_fen", "our_dbt_sum", _amount), ("our_cdt_cnt", "our_cdt_cnt", int),
         ("our_cdt_fen", "our_cdt_sum", _amount), ("their_dbt_cnt", "their_dbt_cnt", int),
         ("their_dbt_fen", "their_dbt_sum", _amount), ("their_cdt_cnt", "their_cdt_cnt", int),
         ("their_cdt_fen", "their_cdt_sum", _amount), ("matched", "matched", bool),
         ("items_netted", "items_netted", int), ("at", "at", _instant),
         ("node", "node", _same)),
        "work_date < {b} AND NOT EXISTS (SELECT 1 FROM items i WHERE i.state = 'NETTED'"
        " AND i.work_date = netting_rounds.work_date AND i.netting_round = netting_rounds.round)",
        by_day=True, day_of="work_date",
    ),
    # item-less messages (ccms.314 / 315): receipted, so the outbox is done with them
    _Table(
        "outbound", "outbound", "outbound", ("msg_id",), (), ("text",),
        (("msg_id", "msg_id", _same), ("engine", "engine", _same), ("msg_tp", "msg_tp", _same),
         ("topic", "topic", _same), ("receiver", "receiver", _same),
         ("work_date", "work_date", _day), ("payload", "payload_b64", _payload),
         ("state", "state", _same), ("attempts", "attempts", int),
         ("created_at", "created_at", _instant), ("last_sent_at", "last_sent_at", _instant),
         ("acked_at", "acked_at", _instant)),
        "created_at < {b} AND state = 'ACKED'"
        " AND NOT EXISTS (SELECT 1 FROM items i WHERE i.out_msg_id = outbound.msg_id)",
        by_day=False, day_of="created_at",
    ),
)  # fmt: skip
_STATEMENTS: Final = {
    (t.line, mark): (t.select(mark, keyset=False), t.select(mark, keyset=True), t.delete(mark))
    for t in _TABLES
    for mark in ("?", "$")
}
"""(line kind, parameter mark) → (first batch, next batches, delete), built once."""


@dataclass
class _Rows:
    """One keyset batch of a :data:`_TABLES` table."""

    matches: list[tuple[Any, ...]]  # key + guard values, what the delete re-checks
    lines: list[dict[str, Any]]


# -- the archive file -----------------------------------------------------------------------


class _ArchiveFile:
    """gzip JSON lines into a temp file; ``commit`` makes it durable under its final name."""

    def __init__(self, out_dir: Path, header: dict[str, Any]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.dir = out_dir
        self.tmp = out_dir / f".journal-{uuid.uuid4().hex}.jsonl.gz.tmp"
        self._raw: IO[bytes] = self.tmp.open("xb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
        self._hash = hashlib.sha256()
        self.write([header])

    def write(self, lines: Sequence[dict[str, Any]]) -> None:
        for line in lines:
            data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            self._hash.update(data)
            self._gz.write(data)

    def commit(self, first_day: str, last_day: str) -> Path:
        """fsync, rename to the final name, fsync the folder (the rename is durable)."""
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        name = (
            f"journal-{first_day.replace('-', '')}-{last_day.replace('-', '')}"
            f"-{self._hash.hexdigest()[:12]}.jsonl.gz"
        )
        final = self.dir / name
        os.replace(self.tmp, final)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return final

    def discard(self) -> None:
        """Close and remove the temp file; closing may fail again (a full disk)."""
        try:
            for f in (self._gz, self._raw):
                with contextlib.suppress(OSError):
                    f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


# -- blocking work, one thread per pass -------------------------------------------------------


class _Serial:
    """One worker thread for a pass's blocking work (SQLite, the file).

    Serial on purpose: when the pass is cancelled (gateway shutdown), the
    call in progress still runs to its end in the thread, and the clean-up
    (discard the temp file, close the connection) queues behind it instead
    of racing it.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="journal-archive")

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False)  # callers awaited their last call


# -- SQLite ---------------------------------------------------------------------------------


# Statements.  A request qualifies when it is older than the cutoff and no item of it is
# outside a final state (corplink.md §7).  SQLite takes id lists as one JSON array
# parameter (json_each), so every statement is a constant.
_NOT_FINAL = (
    "SELECT 1 FROM items i WHERE i.request_id = r.id AND i.state NOT IN ('SETTLED', 'REJECTED')"
)
_SQ_CANDIDATES = f"""
SELECT id, corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at FROM requests r
 WHERE received_at < ?1 AND (received_at, id) > (?2, ?3) AND NOT EXISTS ({_NOT_FINAL})
 ORDER BY received_at, id LIMIT ?4
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_ITEMS = f"""
SELECT {_ITEM_COLS} FROM items
 WHERE request_id IN (SELECT value FROM json_each(?1)) ORDER BY id
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_TRAILS = """
SELECT item_id, state, at, detail FROM transitions
 WHERE item_id IN (SELECT value FROM json_each(?1)) ORDER BY id
"""
_SQ_OUTBOUND = f"""
SELECT {_OUT_COLS} FROM outbound
 WHERE msg_id IN (SELECT value FROM json_each(?1)) ORDER BY created_at, msg_id
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_STILL = f"""
SELECT id FROM requests r
 WHERE id IN (SELECT value FROM json_each(?1)) AND received_at < ?2 AND NOT EXISTS ({_NOT_FINAL})
"""  # noqa: S608 (constant fragments; values are parameters)
_SQ_OUTS_OF = """
SELECT DISTINCT out_msg_id FROM items
 WHERE request_id IN (SELECT value FROM json_each(?1)) AND out_msg_id IS NOT NULL
"""
_SQ_DELETE = (
    "DELETE FROM transitions WHERE item_id IN"
    " (SELECT id FROM items WHERE request_id IN (SELECT value FROM json_each(?1)))",
    "DELETE FROM items WHERE request_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM requests WHERE id IN (SELECT value FROM json_each(?1))",
)
_SQ_ORPHANS = """
DELETE FROM outbound WHERE msg_id IN (SELECT value FROM json_each(?1))
   AND NOT EXISTS (SELECT 1 FROM items i WHERE i.out_msg_id = outbound.msg_id)
"""
_TOTALS = (
    "SELECT corp_id, oper_id, day, total_fen FROM daily_totals WHERE day < {p}"
    " ORDER BY day, corp_id, oper_id"
)

_PG_CANDIDATES = f"""
SELECT id, corp_id, msg_id, oper_id, trn_code, digest, gw_ref, received_at, node FROM requests r
 WHERE received_at < $1 AND ($2::timestamptz IS NULL OR (received_at, id) > ($2, $3))
   AND NOT EXISTS ({_NOT_FINAL})
 ORDER BY received_at, id LIMIT $4
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_ITEMS = f"""
SELECT {_ITEM_COLS} FROM items WHERE request_id = ANY($1::bigint[]) ORDER BY id
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_TRAILS = """
SELECT item_id, state, at, detail FROM transitions WHERE item_id = ANY($1::bigint[]) ORDER BY id
"""
_PG_OUTBOUND = f"""
SELECT {_OUT_COLS} FROM outbound WHERE msg_id = ANY($1::text[]) ORDER BY created_at, msg_id
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_STILL = f"""
SELECT id FROM requests r
 WHERE id = ANY($1::bigint[]) AND received_at < $2 AND NOT EXISTS ({_NOT_FINAL})
   FOR UPDATE
"""  # noqa: S608 (constant fragments; values are parameters)
_PG_OUTS_OF = """
SELECT DISTINCT out_msg_id FROM items WHERE request_id = ANY($1::bigint[])
   AND out_msg_id IS NOT NULL
"""
_PG_DELETE = (
    "DELETE FROM transitions WHERE item_id IN"
    " (SELECT id FROM items WHERE request_id = ANY($1::bigint[]))",
    "DELETE FROM items WHERE request_id = ANY($1::bigint[])",
    "DELETE FROM requests WHERE id = ANY($1::bigint[])",
)
_PG_ORPHANS = """
DELETE FROM outbound o WHERE msg_id = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM items i WHERE i.out_msg_id = o.msg_id)
"""


class _Sqlite:
    """Synchronous; every method runs on the pass's worker thread (:class:`_Serial`)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no journal file at {path}")
        self.conn = schema.connect(path)  # busy_timeout, foreign keys, synchronous=FULL
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version != schema.SCHEMA_VERSION:
            self.conn.close()
            raise RuntimeError(
                f"journal schema version {version}, archive expects {schema.SCHEMA_VERSION}:"
                " start the gateway once to migrate"
            )

    def close(self) -> None:
        self.conn.close()

    def read(self, before: int, after: tuple[object, int] | None, limit: int) -> _Batch:
        c = self.conn
        key = after or (-(2**63), -1)  # before any instant
        c.execute("BEGIN")  # one snapshot for the whole batch
        try:
            requests = c.execute(_SQ_CANDIDATES, (before, key[0], key[1], limit)).fetchall()
            ids = json.dumps([int(r[0]) for r in requests])
            items = c.execute(_SQ_ITEMS, (ids,)).fetchall()
            trails = c.execute(_SQ_TRAILS, (json.dumps([int(r[0]) for r in items]),)).fetchall()
            outs = json.dumps(sorted({str(r[22]) for r in items if r[22] is not None}))
            outbound = c.execute(_SQ_OUTBOUND, (outs,)).fetchall()
        finally:
            c.execute("COMMIT")
        # SQLite keeps no node column: the node letter is the GwRef's 11th character
        nodes = {int(r[0]): (str(r[6])[10] if r[6] and len(str(r[6])) > 10 else None)
                 for r in requests}  # fmt: skip
        return _assemble(requests, items, trails, outbound, nodes)

    def old_totals(self, before_day: str) -> list[Sequence[Any]]:
        return self.conn.execute(_TOTALS.format(p="?"), (before_day,)).fetchall()

    def delete(self, ids: Sequence[int], before: int) -> tuple[int, int, int, int]:
        """One short write transaction: requests ``ids`` that still qualify, and orphans."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            ok = json.dumps(
                [int(r[0]) for r in c.execute(_SQ_STILL, (json.dumps(list(ids)), before))]
            )
            outs = json.dumps([str(r[0]) for r in c.execute(_SQ_OUTS_OF, (ok,))])
            trails, items, requests = (c.execute(sql, (ok,)).rowcount for sql in _SQ_DELETE)
            outbound = c.execute(_SQ_ORPHANS, (outs,)).rowcount
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return requests, items, trails, outbound

    def delete_totals(self, before_day: str) -> int:
        return self._write("DELETE FROM daily_totals WHERE day < ?", (before_day,))

    def read_table(
        self, t: _Table, bound: object, after: tuple[Any, ...] | None, limit: int
    ) -> _Rows:
        first, rest, _ = _STATEMENTS[t.line, "?"]
        sql = first if after is None else rest
        rows = self.conn.execute(sql, (bound, limit, *(after or ()))).fetchall()
        n = len(t.key) + len(t.guard)
        return _Rows([tuple(r[:n]) for r in rows], [t.line_of(r) for r in rows])

    def delete_table(self, t: _Table, bound: object, matches: Sequence[tuple[Any, ...]]) -> int:
        return self._write(_STATEMENTS[t.line, "?"][2], (json.dumps(list(matches)), bound))

    def _write(self, sql: str, params: Sequence[object]) -> int:
        """One statement in its own short write transaction; the rows it changed."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            n = c.execute(sql, params).rowcount
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return n


class _SqliteOps:
    """The pass's operations on SQLite, each on the worker thread."""

    def __init__(self, db: _Sqlite, before: datetime, call: _Serial) -> None:
        self.db = db
        self.call = call
        self.cutoff = schema.to_micros(before)
        self.before_day = before.astimezone(SHANGHAI).date().isoformat()

    async def read(self, after: tuple[object, int] | None, limit: int) -> _Batch:
        return await self.call(self.db.read, self.cutoff, after, limit)

    async def totals(self) -> list[Sequence[Any]]:
        return await self.call(self.db.old_totals, self.before_day)

    async def delete(self, ids: Sequence[int]) -> tuple[int, int, int, int]:
        return await self.call(self.db.delete, ids, self.cutoff)

    async def delete_totals(self) -> int:
        return await self.call(self.db.delete_totals, self.before_day)

    async def read_table(self, t: _Table, after: tuple[Any, ...] | None, limit: int) -> _Rows:
        bound = self.before_day if t.by_day else self.cutoff
        return await self.call(self.db.read_table, t, bound, after, limit)

    async def delete_table(self, t: _Table, matches: Sequence[tuple[Any, ...]]) -> int:
        bound = self.before_day if t.by_day else self.cutoff
        return await self.call(self.db.delete_table, t, bound, matches)


# -- PostgreSQL ------------------------------------------------------------------------------


class _PgOps:
    """The pass's operations on PostgreSQL, on one dedicated connection."""

    def __init__(self, conn: asyncpg.Connection, before: datetime) -> None:
        self.conn = conn
        self.before = before
        self.before_day = before.astimezone(SHANGHAI).date()

    async def read(self, after: tuple[object, int] | None, limit: int) -> _Batch:
        conn = self.conn
        key = after or (None, -1)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            requests = await conn.fetch(_PG_CANDIDATES, self.before, key[0], key[1], limit)
            items = await conn.fetch(_PG_ITEMS, [r["id"] for r in requests])
            trails = await conn.fetch(_PG_TRAILS, [r["id"] for r in items])
            outs = sorted({r["out_msg_id"] for r in items if r["out_msg_id"] is not None})
            outbound = await conn.fetch(_PG_OUTBOUND, outs)
        nodes = {int(r["id"]): r["node"] for r in requests}
        return await asyncio.to_thread(
            _assemble, [tuple(r)[:8] for r in requests], [tuple(r) for r in items],
            [tuple(r) for r in trails], [tuple(r) for r in outbound], nodes,
        )  # fmt: skip

    async def totals(self) -> list[Sequence[Any]]:
        return [tuple(r) for r in await self.conn.fetch(_TOTALS.format(p="$1"), self.before_day)]

    async def delete(self, ids: Sequence[int]) -> tuple[int, int, int, int]:
        conn = self.conn
        async with conn.transaction():
            ok = [r["id"] for r in await conn.fetch(_PG_STILL, list(ids), self.before)]
            outs = [r[0] for r in await conn.fetch(_PG_OUTS_OF, ok)]
            trails, items, requests = [_count(await conn.execute(sql, ok)) for sql in _PG_DELETE]
            outbound = _count(await conn.execute(_PG_ORPHANS, outs))
        return requests, items, trails, outbound

    async def delete_totals(self) -> int:
        status = await self.conn.execute("DELETE FROM daily_totals WHERE day < $1", self.before_day)
        return _count(status)

    async def read_table(self, t: _Table, after: tuple[Any, ...] | None, limit: int) -> _Rows:
        first, rest, _ = _STATEMENTS[t.line, "$"]
        bound = self.before_day if t.by_day else self.before
        if after is None:
            rows = await self.conn.fetch(first, bound, limit)
        else:
            rows = await self.conn.fetch(rest, bound, limit, *after)
        n = len(t.key) + len(t.guard)
        lines = await asyncio.to_thread(lambda: [t.line_of(tuple(r)) for r in rows])
        return _Rows([tuple(r)[:n] for r in rows], lines)

    async def delete_table(self, t: _Table, matches: Sequence[tuple[Any, ...]]) -> int:
        """One statement: PostgreSQL re-checks the rule and the guard on the row it locks."""
        bound = self.before_day if t.by_day else self.before
        columns = [list(c) for c in zip(*matches, strict=True)]
        return _count(await self.conn.execute(_STATEMENTS[t.line, "$"][2], *columns, bound))


def _count(status: str) -> int:
    """``DELETE 12`` → 12 (asyncpg returns the command tag)."""
    return int(status.rsplit(" ", 1)[-1])


# -- the pass, the same for both backends ----------------------------------------------------


class _Ops(Protocol):
    async def read(self, after: tuple[object, int] | None, limit: int) -> _Batch: ...
    async def totals(self) -> list[Sequence[Any]]: ...
    async def delete(self, ids: Sequence[int]) -> tuple[int, int, int, int]: ...
    async def delete_totals(self) -> int: ...
    async def read_table(self, t: _Table, after: tuple[Any, ...] | None, limit: int) -> _Rows: ...
    async def delete_table(self, t: _Table, matches: Sequence[tuple[Any, ...]]) -> int: ...


def _write_once(lines: Sequence[dict[str, Any]], seen_out: set[str]) -> list[dict[str, Any]]:
    """Lines without outbound messages already in the file (shared by several requests)."""
    kept = [ln for ln in lines if ln["kind"] != "outbound" or ln["msg_id"] not in seen_out]
    seen_out.update(ln["msg_id"] for ln in kept if ln["kind"] == "outbound")
    return kept


async def _export_table(
    ops: _Ops, call: _Serial, file: _ArchiveFile, t: _Table, pace: tuple[int, int, float],
    seen_out: set[str],
) -> tuple[list[tuple[Any, ...]], list[str]]:  # fmt: skip
    """Phase 1 for one of :data:`_TABLES`: its rows to delete, the dates of their lines."""
    batch, limit, pause = pace
    matches: list[tuple[Any, ...]] = []
    days: list[str] = []
    after: tuple[Any, ...] | None = None
    while len(matches) < limit:
        got = await ops.read_table(t, after, min(batch, limit - len(matches)))
        if not got.matches:
            break
        await call(file.write, _write_once(got.lines, seen_out))
        matches.extend(got.matches)
        days.extend(str(ln[t.day_of])[:10] for ln in got.lines)
        after = got.matches[-1][: len(t.key)]
        await asyncio.sleep(pause)
    return matches, days


async def _run(
    ops: _Ops, call: _Serial, backend: str, out_dir: Path, before: datetime, batch: int,
    max_requests: int, pause: float,
) -> ArchiveResult:  # fmt: skip
    """Phase 1 (export, durable file), then phase 2 (delete in batches): module docstring."""
    header: dict[str, Any] = {
        "kind": "archive",
        "format": FORMAT,
        "backend": backend,
        "before": before.astimezone(SHANGHAI).isoformat(timespec="microseconds"),
    }
    exported: list[int] = []
    received: list[datetime] = []
    days: list[str] = []  # of every record in the file: its name
    rows: dict[str, list[tuple[Any, ...]]] = {}  # per table: what phase 2 deletes
    file = await call(_ArchiveFile, out_dir, header)
    try:
        after: tuple[object, int] | None = None
        seen_out: set[str] = set()
        while len(exported) < max_requests:
            got = await ops.read(after, min(batch, max_requests - len(exported)))
            if not got.keys:
                break
            await call(file.write, _write_once(got.lines, seen_out))
            exported.extend(rid for _, rid in got.keys)
            received.extend(got.received)
            after = got.keys[-1]
            await asyncio.sleep(pause)
        days.extend(at.date().isoformat() for at in received)
        for t in _TABLES:
            rows[t.field], more = await _export_table(
                ops, call, file, t, (batch, max_requests, pause), seen_out
            )
            days.extend(more)
        old_totals = await ops.totals()
        if not exported and not old_totals and not any(rows.values()):
            await call(file.discard)
            return ArchiveResult()
        await call(file.write, [
            {"kind": "daily_total", "corp_id": c, "oper_id": o, "day": _day(d), "total": _amount(f)}
            for c, o, d, f in old_totals
        ])  # fmt: skip
        first = min(days) if days else header["before"][:10]
        path = await call(file.commit, first, max(days) if days else first)
    except BaseException:
        await call(file.discard)
        raise
    counts = [0, 0, 0, 0]
    for start in range(0, len(exported), batch):
        done = await ops.delete(exported[start : start + batch])
        counts = [a + b for a, b in zip(counts, done, strict=True)]
        await asyncio.sleep(pause)
    removed: dict[str, int] = {}
    for t in _TABLES:
        removed[t.field] = 0
        for start in range(0, len(rows[t.field]), batch):
            removed[t.field] += await ops.delete_table(t, rows[t.field][start : start + batch])
            await asyncio.sleep(pause)
    totals_removed = await ops.delete_totals() if old_totals else 0
    return ArchiveResult(
        requests=counts[0],
        items=counts[1],
        transitions=counts[2],
        outbound=counts[3] + removed["outbound"],
        daily_totals=totals_removed,
        path=path,
        first_received=min(received) if received else None,
        last_received=max(received) if received else None,
        notifications=removed["notifications"],
        inquiries=removed["inquiries"],
        incoming_credits=removed["incoming_credits"],
        netting_rounds=removed["netting_rounds"],
    )


async def archive_once(
    backend: str,
    target: Path | str,
    out_dir: Path,
    *,
    before: datetime,
    batch: int = 500,
    max_requests: int = 100_000,
    pause: float = 0.01,
) -> ArchiveResult:
    """Archive and remove the requests received before ``before`` whose items are all final,
    and the correspondence rows and item-less outbound messages old and final enough
    (module docstring).

    ``backend`` is ``"sqlite"`` (``target``: the journal file) or ``"postgres"``
    (``target``: the DSN, without a password).  The caller passes ``before`` =
    now − retention (corplink.md §7, default 400 days); it must be an aware
    datetime.  At most ``max_requests`` requests, and as many rows of each other
    table, per pass; ``batch`` per transaction, ``pause`` seconds between batches
    (room for the hot path's writer).
    """
    if before.tzinfo is None or before.utcoffset() is None:
        raise ValueError("before must carry a UTC offset")
    if not 1 <= batch <= 10_000:
        raise ValueError("batch must be 1..10000")
    if max_requests < 1:
        raise ValueError("max_requests must be at least 1")
    if backend not in ("sqlite", "postgres"):
        raise ValueError("backend must be sqlite or postgres")
    call = _Serial()
    try:
        if backend == "sqlite":
            db = await call(_Sqlite, Path(target))
            try:
                ops: _Ops = _SqliteOps(db, before, call)
                return await _run(ops, call, backend, out_dir, before, batch, max_requests, pause)
            finally:
                await call(db.close)
        settings = {
            "synchronous_commit": "on",  # a delete is as durable as the archive before it
            "application_name": "gateway-archive",
            "lock_timeout": f"{LOCK_TIMEOUT_MS}ms",
        }
        conn = await asyncpg.connect(str(target), server_settings=settings)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ARCHIVE_LOCK):
                return ArchiveResult(skipped=True)
            ops = _PgOps(conn, before)
            return await _run(ops, call, backend, out_dir, before, batch, max_requests, pause)
        finally:
            await conn.close()  # also releases the advisory lock
    finally:
        call.close()


# -- reading an archive back ------------------------------------------------------------------


def _opt_at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _item(d: dict[str, Any]) -> ArchivedItem:
    return ArchivedItem(
        seq_no=d["seq_no"], tx_id=d["tx_id"], end_to_end_id=d["end_to_end_id"],
        engine=None if d["engine"] is None else Engine(d["engine"]), receiver=d["receiver"],
        payee_bank_code=d["payee_bank_code"],
        work_date=None if d["work_date"] is None else date.fromisoformat(d["work_date"]),
        state=State(d["state"]), release_at=_opt_at(d["release_at"]),
        payer_acct=d["payer_acct"], payer_name=d["payer_name"], payee_acct=d["payee_acct"],
        payee_name=d["payee_name"], amount=Decimal(d["amount"]), ccy=d["ccy"],
        priority=Priority(d["priority"]), biz_type=BizType(d["biz_type"]), purpose=d["purpose"],
        reason_code=d["reason_code"], reason_text=d["reason_text"], out_msg_id=d["out_msg_id"],
        queued_at=_opt_at(d["queued_at"]), updated_at=datetime.fromisoformat(d["updated_at"]),
        transitions=tuple(
            ArchivedTransition(State(t["state"]), datetime.fromisoformat(t["at"]), t["detail"])
            for t in d["transitions"]
        ),
    )  # fmt: skip


def _parse(d: dict[str, Any]) -> Archived:
    kind = d.get("kind")
    if kind == "request":
        record = RequestRecord(
            corp_id=d["corp_id"], msg_id=d["msg_id"], oper_id=d["oper_id"],
            trn_code=d["trn_code"], digest=d["digest"], gw_ref=d["gw_ref"],
            received_at=datetime.fromisoformat(d["received_at"]),
        )  # fmt: skip
        return ArchivedRequest(record, d["node"], tuple(_item(i) for i in d["items"]))
    if kind == "outbound":
        return ArchivedOutbound(
            msg_id=d["msg_id"], engine=Engine(d["engine"]), msg_tp=d["msg_tp"],
            topic=d["topic"], receiver=d["receiver"], work_date=date.fromisoformat(d["work_date"]),
            payload=base64.b64decode(d["payload_b64"], validate=True),
            state=OutState(d["state"]), attempts=int(d["attempts"]),
            created_at=datetime.fromisoformat(d["created_at"]),
            last_sent_at=_opt_at(d["last_sent_at"]), acked_at=_opt_at(d["acked_at"]),
        )  # fmt: skip
    if kind == "daily_total":
        return ArchivedDailyTotal(
            d["corp_id"], d["oper_id"], date.fromisoformat(d["day"]), Decimal(d["total"])
        )
    reader = _READERS.get(str(kind))
    if reader is None:
        raise ValueError(f"unknown archive line kind {kind!r}")
    return reader(d)


def _opt_day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _notification(d: dict[str, Any]) -> ArchivedNotification:
    return ArchivedNotification(d["corp_id"], Notice(
        ntfy_id=int(d["ntfy_id"]), kind=NoticeKind(d["notice_kind"]),
        at=datetime.fromisoformat(d["at"]), orig_msg_id=d["orig_msg_id"], seq_no=d["seq_no"],
        gw_ref=d["gw_ref"], inq_id=d["inq_id"],
        state=None if d["state"] is None else State(d["state"]), reason_code=d["reason_code"],
        engine=None if d["engine"] is None else Engine(d["engine"]),
        work_date=_opt_day(d["work_date"]), acct=d["acct"],
        amount=None if d["amount"] is None else Decimal(d["amount"]),
        counterparty_acct=d["counterparty_acct"], counterparty_name=d["counterparty_name"],
        counterparty_bank=d["counterparty_bank"], text=d["text"],
    ))  # fmt: skip


def _inquiry(d: dict[str, Any]) -> ArchivedInquiry:
    return ArchivedInquiry(
        inq_id=d["inq_id"], direction=InquiryDirection(d["direction"]),
        state=InquiryState(d["state"]), counterparty=d["counterparty"], text=d["text"],
        created_at=datetime.fromisoformat(d["created_at"]), corp_id=d["corp_id"],
        msg_id=d["msg_id"], seq_no=d["seq_no"], credit_ref=d["credit_ref"],
        orgnl_msg_id=d["orgnl_msg_id"], orgnl_tx_id=d["orgnl_tx_id"],
        request_msg_id=d["request_msg_id"], reply_text=d["reply_text"],
        replied_at=_opt_at(d["replied_at"]), out_msg_id=d["out_msg_id"],
    )  # fmt: skip


def _credit(d: dict[str, Any]) -> ArchivedCredit:
    return ArchivedCredit(
        gw_ref=d["gw_ref"], engine=Engine(d["engine"]), msg_id=d["msg_id"], tx_id=d["tx_id"],
        sender=d["sender"], work_date=date.fromisoformat(d["work_date"]),
        creditor_acct=d["creditor_acct"], creditor_name=d["creditor_name"],
        debtor_acct=d["debtor_acct"], debtor_name=d["debtor_name"],
        debtor_bank=d["debtor_bank"], amount=Decimal(d["amount"]), purpose=d["purpose"],
        corp_id=d["corp_id"], state=CreditState(d["state"]),
        check_attempts=int(d["check_attempts"]), next_check_at=_opt_at(d["next_check_at"]),
        end_to_end_id=d["end_to_end_id"], received_at=datetime.fromisoformat(d["received_at"]),
        netting_round=d["netting_round"], updated_at=datetime.fromisoformat(d["updated_at"]),
        node=d["node"],
    )  # fmt: skip


def _netting_round(d: dict[str, Any]) -> ArchivedNettingRound:
    def side(who: str) -> Figures:
        return Figures(
            int(d[f"{who}_dbt_cnt"]), Decimal(d[f"{who}_dbt_sum"]),
            int(d[f"{who}_cdt_cnt"]), Decimal(d[f"{who}_cdt_sum"]),
        )  # fmt: skip

    return ArchivedNettingRound(
        work_date=date.fromisoformat(d["work_date"]), round=int(d["round"]),
        counterparty=d["counterparty"], ours=side("our"), theirs=side("their"),
        matched=bool(d["matched"]), items_netted=int(d["items_netted"]),
        at=datetime.fromisoformat(d["at"]), node=d["node"],
    )  # fmt: skip


_READERS: Final[dict[str, Callable[[dict[str, Any]], Archived]]] = {
    "notification": _notification,
    "inquiry": _inquiry,
    "incoming_credit": _credit,
    "netting_round": _netting_round,
}


def read_archive(path: Path) -> Iterator[Archived]:
    """The records of one archive file, in file order; ``ValueError`` on a foreign file."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline() or "{}")
        if header.get("kind") != "archive" or header.get("format") not in READABLE_FORMATS:
            raise ValueError("not a journal archive of a known format")
        for line in fh:
            if line.strip():
                yield _parse(json.loads(line))


__all__ = [
    "ARCHIVE_LOCK",
    "FORMAT",
    "READABLE_FORMATS",
    "ArchiveResult",
    "Archived",
    "ArchivedCredit",
    "ArchivedDailyTotal",
    "ArchivedInquiry",
    "ArchivedItem",
    "ArchivedNettingRound",
    "ArchivedNotification",
    "ArchivedOutbound",
    "ArchivedRequest",
    "ArchivedTransition",
    "archive_once",
    "read_archive",
]
