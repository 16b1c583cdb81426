"""The SQL of the operators' message tools, shared by both journal backends.

Statements are written once with ``?`` placeholders (SQLite's); PostgreSQL
gets them numbered (:func:`numbered`).  The backends differ only in how
values travel (SQLite: integer microseconds, ISO text dates, 0/1; PostgreSQL:
``timestamptz``, ``date``, ``boolean``), which a :class:`Codec` hides.  Reads
go through a ``fetch(sql, args)`` callable, so :func:`search` and
:func:`detail` are the same code on both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from gateway.journal.ops_records import (
    MAX_DETAIL_ITEMS,
    ActionKind,
    Exchange,
    InboundMessage,
    ItemTrail,
    MessageDetail,
    MessageHit,
    MessageQuery,
    OperatorAction,
    TrailStep,
)
from gateway.journal.records import OutboundRecord, OutState, RequestRecord
from gateway.journal.schema import from_fen, to_fen
from gateway.model import Engine, State

Fetch = Callable[[str, Sequence[object]], Awaitable[Sequence[Sequence[Any]]]]


@dataclass(frozen=True)
class Codec:
    """How one backend stores instants, dates and flags."""

    instant_in: Callable[[datetime], object]
    instant_out: Callable[[Any], datetime]
    date_out: Callable[[Any], date]
    flag_out: Callable[[Any], bool]

    def opt_instant(self, value: Any) -> datetime | None:
        return None if value is None else self.instant_out(value)

    def opt_date(self, value: Any) -> date | None:
        return None if value is None else self.date_out(value)


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (none of our SQL quotes a ``?``)."""
    parts = sql.split("?")
    return "".join(p + (f"${n}" if n < len(parts) else "") for n, p in enumerate(parts, 1))


HIT_COLUMNS: Final = (
    "r.gw_ref, r.corp_id, r.msg_id, r.oper_id, r.trn_code, r.received_at, i.tx_id, i.seq_no,"
    " i.end_to_end_id, i.engine, i.receiver, i.work_date, i.state, i.release_at, i.amount_fen,"
    " i.ccy, i.payer_acct, i.payer_name, i.payee_acct, i.payee_name, i.payee_bank_code,"
    " i.reason_code, i.reason_text, i.out_msg_id, i.priority, i.biz_type, i.purpose, i.payee_bic,"
    " i.payee_country, i.chrg_br, i.screening, i.uetr, i.id"
)
FROM: Final = " FROM items i JOIN requests r ON r.id = i.request_id"
_ORDER = " ORDER BY r.received_at, i.tx_id"
_OUTBOUND_COLUMNS: Final = (
    "msg_id, engine, msg_tp, topic, receiver, work_date, payload, state, attempts,"
    " created_at, last_sent_at"
)
_INBOUND_COLUMNS: Final = "msg_id, msg_tp, sndr, topic, ref, payload, received_at"
_ACTION_COLUMNS: Final = "at, uid, operator, action, target, reason, forced"


def search_sql(q: MessageQuery, limit: int, codec: Codec) -> tuple[str, list[object]]:
    """The live journal's part of ``messages search``: SQL and its arguments."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (
        ("r.corp_id", q.corp_id),
        ("r.msg_id", q.msg_id),
        ("r.gw_ref", q.gw_ref),
        ("i.end_to_end_id", q.end_to_end_id),
        ("i.state", None if q.state is None else q.state.value),
        ("i.engine", None if q.engine is None else q.engine.value),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if q.min_amount is not None:
        where.append("i.amount_fen >= ?")
        args.append(to_fen(q.min_amount))
    if q.max_amount is not None:
        where.append("i.amount_fen <= ?")
        args.append(to_fen(q.max_amount))
    if q.received_from is not None:
        where.append("r.received_at >= ?")
        args.append(codec.instant_in(q.received_from))
    if q.received_before is not None:
        where.append("r.received_at < ?")
        args.append(codec.instant_in(q.received_before))
    if q.after is not None:
        at, tx = q.after
        where.append("(r.received_at > ? OR (r.received_at = ? AND i.tx_id > ?))")
        args += [codec.instant_in(at), codec.instant_in(at), tx]
    sql = f"SELECT {HIT_COLUMNS}{FROM}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    args.append(limit)
    return sql + _ORDER + " LIMIT ?", args


def hit(row: Sequence[Any], codec: Codec) -> MessageHit:
    (ref, corp, msg, oper, trn, received, tx, seq, e2e, engine, receiver, day, state, release,
     fen, ccy, payer_acct, payer_name, payee_acct, payee_name, bank, code, text, out,
     priority, biz_type, purpose, payee_bic, payee_country, chrg_br, screening, uetr,
     _id) = row  # fmt: skip
    return MessageHit(
        gw_ref=str(ref),
        corp_id=str(corp),
        msg_id=str(msg),
        oper_id=str(oper),
        trn_code=str(trn),
        received_at=codec.instant_out(received),
        tx_id=str(tx),
        seq_no=None if seq is None else int(seq),
        end_to_end_id=str(e2e),
        engine=None if engine is None else Engine(engine),
        receiver=receiver,
        work_date=codec.opt_date(day),
        state=State(state),
        release_at=codec.opt_instant(release),
        amount=from_fen(int(fen)),
        ccy=str(ccy),
        payer_acct=str(payer_acct),
        payer_name=str(payer_name),
        payee_acct=str(payee_acct),
        payee_name=str(payee_name),
        payee_bank_code=str(bank),
        reason_code=code,
        reason_text=text,
        out_msg_id=out,
        priority=priority,
        biz_type=biz_type,
        purpose=purpose,
        payee_bic=payee_bic,
        payee_country=payee_country,
        chrg_br=chrg_br,
        screening=screening,
        uetr=uetr,
    )


async def search(fetch: Fetch, codec: Codec, q: MessageQuery, limit: int) -> list[MessageHit]:
    sql, args = search_sql(q, limit, codec)
    return [hit(r, codec) for r in await fetch(sql, args)]


def _outbound(row: Sequence[Any], codec: Codec) -> OutboundRecord:
    msg_id, engine, msg_tp, topic, receiver, day, payload, state, attempts, created, sent = row
    return OutboundRecord(
        msg_id=str(msg_id),
        engine=Engine(engine),
        msg_tp=str(msg_tp),
        topic=str(topic),
        receiver=str(receiver),
        work_date=codec.date_out(day),
        payload=bytes(payload),
        state=OutState(state),
        attempts=int(attempts),
        created_at=codec.instant_out(created),
        last_sent_at=codec.opt_instant(sent),
    )


def _inbound(row: Sequence[Any], codec: Codec) -> InboundMessage:
    msg_id, msg_tp, sndr, topic, ref, payload, received = row
    return InboundMessage(
        msg_id=str(msg_id),
        msg_tp=str(msg_tp),
        sndr=str(sndr),
        topic=str(topic),
        ref=ref,
        payload=bytes(payload),
        received_at=codec.instant_out(received),
    )


def _action(row: Sequence[Any], codec: Codec) -> OperatorAction:
    at, uid, operator, action, target, reason, forced = row
    return OperatorAction(
        at=codec.instant_out(at),
        uid=int(uid),
        operator=str(operator),
        action=ActionKind(action),
        target=str(target),
        reason=str(reason),
        forced=codec.flag_out(forced),
    )


def _in_list(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values) or "NULL"


async def detail(fetch: Fetch, codec: Codec, ref: str) -> MessageDetail | None:
    """Everything about ``ref``: a GwRef (the request and its items), a TxId (one
    item) or an outbound MsgId (the message and the items it carried)."""
    scope = (
        ("i.tx_id = ?", None),
        ("r.gw_ref = ?", None),
        ("i.out_msg_id = ?", ref),
    )
    rows: Sequence[Sequence[Any]] = ()
    package: str | None = None
    total = 0
    for cond, pkg in scope:
        found = await fetch(f"SELECT count(*){FROM} WHERE {cond}", [ref])
        total = int(found[0][0])
        if total:
            rows = await fetch(
                f"SELECT {HIT_COLUMNS}{FROM} WHERE {cond} ORDER BY i.id LIMIT ?",
                [ref, MAX_DETAIL_ITEMS],
            )
            package = pkg
            break
    request: RequestRecord | None = None
    if not rows:  # an item-less outbound message (ccms.314 / 315), or nothing
        out = await fetch(f"SELECT {_OUTBOUND_COLUMNS} FROM outbound WHERE msg_id = ?", [ref])  # noqa: S608
        if not out:
            return None
        package = ref
    items: list[ItemTrail] = []
    details: set[str] = set()
    out_ids: set[str] = {package} if package else set()
    for row in rows:
        h = hit(row, codec)
        steps = tuple(
            TrailStep(State(s), codec.instant_out(at), d)
            for s, at, d in await fetch(
                "SELECT state, at, detail FROM transitions WHERE item_id = ? ORDER BY id",
                [row[-1]],
            )
        )
        details.update(s.detail for s in steps if s.detail and s.state in _ROUND_STATES)
        if h.out_msg_id:
            out_ids.add(h.out_msg_id)
        items.append(ItemTrail(h, steps))
    if rows and package is None:
        first = rows[0]
        request = RequestRecord(
            corp_id=str(first[1]),
            msg_id=str(first[2]),
            oper_id=str(first[3]),
            trn_code=str(first[4]),
            digest=str(
                (await fetch("SELECT digest FROM requests WHERE gw_ref = ?", [first[0]]))[0][0]
            ),
            gw_ref=str(first[0]),
            received_at=codec.instant_out(first[5]),
        )
    outs = sorted(out_ids)
    outbound = [
        _outbound(r, codec)
        for r in await fetch(
            f"SELECT {_OUTBOUND_COLUMNS} FROM outbound WHERE msg_id IN ({_in_list(outs)})"  # noqa: S608
            " ORDER BY created_at, msg_id",
            outs,
        )
    ]
    inbound, actions = await links(
        fetch, codec, sorted(out_ids | details), sorted(out_ids | {t.item.tx_id for t in items})
    )
    return MessageDetail(
        request=request,
        items=tuple(items),
        items_total=total,
        outbound=tuple(outbound),
        inbound=tuple(inbound),
        actions=tuple(actions),
        exchange=None if request is None else await exchange(fetch, codec, request.gw_ref),
    )


async def exchange(fetch: Fetch, codec: Codec, gw_ref: str) -> Exchange | None:
    """The signed request and response of ``gw_ref``, if the journal kept them."""
    rows = await fetch("SELECT request, response, at FROM exchanges WHERE gw_ref = ?", [gw_ref])
    if not rows:
        return None
    req, rsp, at = rows[0]
    return Exchange(gw_ref, bytes(req), bytes(rsp), codec.instant_out(at))


async def links(
    fetch: Fetch, codec: Codec, refs: Sequence[str], targets: Sequence[str]
) -> tuple[list[InboundMessage], list[OperatorAction]]:
    """Inbound messages about ``refs`` (outbound MsgIds, netting rounds) and the manual
    actions on ``targets`` (TxIds, outbound MsgIds), oldest first."""
    inbound = [
        _inbound(r, codec)
        for r in await fetch(
            f"SELECT {_INBOUND_COLUMNS} FROM inbound_messages WHERE ref IN ({_in_list(refs)})"  # noqa: S608
            " ORDER BY received_at, msg_id",
            refs,
        )
    ]
    actions = [
        _action(r, codec)
        for r in await fetch(
            f"SELECT {_ACTION_COLUMNS} FROM operator_actions"  # noqa: S608
            f" WHERE target IN ({_in_list(targets)}) ORDER BY id",
            targets,
        )
    ]
    return inbound, actions


_ROUND_STATES: Final = frozenset({State.NETTED, State.SETTLED})
"""Their transitions' detail names the netting round (``schema.netting_detail``)."""

INSERT_EXCHANGE: Final = (
    "INSERT INTO exchanges (gw_ref, request, response, at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
INSERT_ACTION: Final = (
    "INSERT INTO operator_actions (at, uid, operator, action, target, reason, forced)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def action_args(a: OperatorAction, codec: Codec, flag: Callable[[bool], object]) -> list[object]:
    return [codec.instant_in(a.at), a.uid, a.operator, a.action.value, a.target, a.reason,
            flag(a.forced)]  # fmt: skip


def release_detail(a: OperatorAction) -> str:
    """The QUEUED transition's detail of a manual release: who and why, in the trail."""
    return f"released by {a.operator}{' (forced)' if a.forced else ''}: {a.reason}"
