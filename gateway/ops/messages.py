"""Finding single messages: the live journal and the retention archives together.

``gatewayctl messages search`` and ``messages show`` (docs/operations.md)
must find a payment whether it is still in the journal or already in an
archive file (docs/protocol.md §7: requests leave after the retention
period).  The journal answers in SQL; archive files are read here, with the
same filters (:meth:`MessageQuery.matches`), and both are merged in one order
(received_at, TxId), so a page cursor works across both.  Archives are
at-least-once: an item found in the journal and in a file is listed once.
An archive file whose name's days (``journal-<first>-<last>-...``) lie
outside the date range is not opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import structlog

from gateway.clock import SHANGHAI
from gateway.journal.archive import (
    ArchivedItem,
    ArchivedOutbound,
    ArchivedRequest,
    read_archive,
)
from gateway.journal.ops_records import (
    MAX_DETAIL_ITEMS,
    Exchange,
    InboundMessage,
    ItemTrail,
    MessageDetail,
    MessageHit,
    MessageQuery,
    OperatorAction,
    TrailStep,
)
from gateway.journal.records import OutboundRecord
from gateway.journal.store import Store
from gateway.model import State

log = structlog.get_logger("gateway.ops")

_ROUND_STATES = frozenset({State.NETTED, State.SETTLED})


def _files(archive_dir: Path | None, q: MessageQuery | None = None) -> Iterator[Path]:
    if archive_dir is None or not archive_dir.is_dir():
        return
    first = q.received_from.astimezone(SHANGHAI).date() if q and q.received_from else None
    last = q.received_before.astimezone(SHANGHAI).date() if q and q.received_before else None
    for path in sorted(archive_dir.glob("journal-*.jsonl.gz")):
        days = _file_days(path.name.split("-"))
        if days is not None:
            lo, hi = days
            if (first is not None and hi < first) or (last is not None and lo > last):
                continue
        yield path


def _file_days(parts: list[str]) -> tuple[date, date] | None:
    """The first and last day a file's name announces (``journal-YYYYMMDD-YYYYMMDD-...``)."""
    try:
        return (
            datetime.strptime(parts[1], "%Y%m%d").date(),
            datetime.strptime(parts[2], "%Y%m%d").date(),
        )
    except (ValueError, IndexError):
        return None


def _archived_hit(req: ArchivedRequest, item: ArchivedItem, source: str) -> MessageHit:
    r = req.record
    return MessageHit(
        gw_ref=r.gw_ref, corp_id=r.corp_id, msg_id=r.msg_id, oper_id=r.oper_id,
        trn_code=r.trn_code, received_at=r.received_at, tx_id=item.tx_id, seq_no=item.seq_no,
        end_to_end_id=item.end_to_end_id, engine=item.engine, receiver=item.receiver,
        work_date=item.work_date, state=item.state, release_at=item.release_at,
        amount=item.amount, ccy=item.ccy, payer_acct=item.payer_acct,
        payer_name=item.payer_name, payee_acct=item.payee_acct, payee_name=item.payee_name,
        payee_bank_code=item.payee_bank_code, reason_code=item.reason_code,
        reason_text=item.reason_text, out_msg_id=item.out_msg_id, archive=source,
        priority=item.priority.value, biz_type=item.biz_type.value, purpose=item.purpose,
        payee_bic=item.payee_bic, payee_country=item.payee_country, chrg_br=item.chrg_br,
        screening=item.screening, uetr=item.uetr,
    )  # fmt: skip


def _read(path: Path) -> Iterator[object]:
    try:
        yield from read_archive(path)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("archive_unreadable", file=str(path), error=str(exc)[:200])


def archived_hits(archive_dir: Path | None, q: MessageQuery, limit: int) -> list[MessageHit]:
    """The first ``limit`` archived items matching ``q``, in search order."""
    found: dict[str, MessageHit] = {}
    for path in _files(archive_dir, q):
        for rec in _read(path):
            if isinstance(rec, ArchivedRequest):
                for item in rec.items:
                    h = _archived_hit(rec, item, path.name)
                    if h.tx_id not in found and q.matches(h):
                        found[h.tx_id] = h
    return sorted(found.values(), key=lambda h: h.cursor)[:limit]


async def search(
    store: Store, archive_dir: Path | None, q: MessageQuery, limit: int
) -> list[MessageHit]:
    """Live and archived hits merged (the journal's copy wins), oldest first."""
    live = await store.search_messages(q, limit)
    seen = {h.tx_id for h in live}
    old = [h for h in archived_hits(archive_dir, q, limit + len(live)) if h.tx_id not in seen]
    return sorted([*live, *old], key=lambda h: h.cursor)[:limit]


async def detail(store: Store, archive_dir: Path | None, ref: str) -> MessageDetail | None:
    """The journal's detail of ``ref``; else the archive's, with the inbound messages
    and manual actions the journal still keeps about it."""
    found = await store.message_detail(ref)
    if found is not None:
        return found
    for path in _files(archive_dir):
        for rec in _read(path):
            if isinstance(rec, ArchivedRequest) and (
                rec.record.gw_ref == ref or any(i.tx_id == ref for i in rec.items)
            ):
                return await _from_archive(store, archive_dir, rec, ref, path.name)
            if isinstance(rec, ArchivedOutbound) and rec.msg_id == ref:
                inbound, actions = await store.message_links([ref], [ref])
                return MessageDetail(None, (), 0, (rec,), tuple(inbound), tuple(actions), path.name)
    return None


async def _from_archive(
    store: Store, archive_dir: Path | None, req: ArchivedRequest, ref: str, source: str
) -> MessageDetail:
    items = [i for i in req.items if ref in (req.record.gw_ref, i.tx_id)]
    trails = tuple(
        ItemTrail(
            _archived_hit(req, i, source),
            tuple(TrailStep(t.state, t.at, t.detail) for t in i.transitions),
        )
        for i in items[:MAX_DETAIL_ITEMS]
    )
    out_ids = {i.out_msg_id for i in items if i.out_msg_id}
    rounds = {
        t.detail
        for i in items
        for t in i.transitions
        if t.detail and t.state in _ROUND_STATES and " round " in t.detail
    }
    refs, targets = out_ids | rounds, out_ids | {i.tx_id for i in items}
    outbound: dict[str, OutboundRecord] = {}
    inbound, actions = await store.message_links(sorted(refs), sorted(targets))
    exchange = await store.exchange(req.record.gw_ref)
    seen_in = {(m.sndr, m.msg_id) for m in inbound}
    seen_actions = {(a.at, a.target, a.action) for a in actions}
    for path in _files(archive_dir):  # what left the journal with (or after) the request
        for rec in _read(path):
            if isinstance(rec, ArchivedOutbound) and rec.msg_id in out_ids:
                outbound.setdefault(rec.msg_id, rec)
            elif isinstance(rec, Exchange) and rec.gw_ref == req.record.gw_ref:
                exchange = exchange or rec
            elif isinstance(rec, InboundMessage) and rec.ref in refs:
                if (rec.sndr, rec.msg_id) not in seen_in:
                    seen_in.add((rec.sndr, rec.msg_id))
                    inbound.append(rec)
            elif (
                isinstance(rec, OperatorAction)
                and rec.target in targets
                and (rec.at, rec.target, rec.action) not in seen_actions
            ):
                seen_actions.add((rec.at, rec.target, rec.action))
                actions.append(rec)
    inbound.sort(key=lambda m: (m.received_at, m.msg_id))
    actions.sort(key=lambda a: a.at)
    return MessageDetail(
        request=req.record,
        items=trails,
        items_total=len(items),
        outbound=tuple(sorted(outbound.values(), key=lambda o: (o.created_at, o.msg_id))),
        inbound=tuple(inbound),
        actions=tuple(actions),
        archive=source,
        exchange=exchange,
    )


__all__ = ["archived_hits", "detail", "search"]
