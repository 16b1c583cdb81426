"""Read-only journal views for operations: ``gatewayctl credits|inquiries|netting``,
``messages search|show`` and ``held list``.

Suspense credits (docs/clearing-link.md §6, 暂收款) are the work list of the back
office; open inquiries (docs/protocol.md §4) wait for an answer; netting rounds
(docs/routing-rules.md §5) show both sides' figures when the alert fires.  A bad
argument raises ``ValueError``, which the admin socket answers as
``{"ok": false, "reason": "bad request: ..."}``.

The same views answer through the daemon's admin socket and, with the daemon
stopped, from a journal ``gatewayctl`` opens read-only (``gateway.cli.offline``).
Message payloads travel as base64 (``payload_b64``): the exact signed bytes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields, is_dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, Final

from gateway.clock import SHANGHAI, Clock
from gateway.journal.draft_records import DraftRecord, DraftState
from gateway.journal.ops_records import MessageDetail, MessageHit, MessageQuery
from gateway.journal.records import CreditState, Figures
from gateway.journal.store import Store
from gateway.model import Engine, State
from gateway.ops import messages
from gateway.ops.logs import mask_account
from gateway.routing.router import Router

VIEWS: Final = frozenset(
    {
        "credits",
        "inquiries",
        "netting",
        "messages.search",
        "messages.show",
        "held.list",
        "drafts.list",
        "drafts.show",
        "drafts.settle-list",
    }
)


async def journal_view(
    op: str,
    cmd: dict[str, Any],
    store: Store,
    router: Router,
    clock: Clock,
    archive_dir: Path | None = None,
) -> dict[str, Any]:
    """Answer one of :data:`VIEWS` (``archive_dir``: where retention archives are)."""
    if op in ("messages.search", "held.list"):
        query = message_query(cmd, held=op == "held.list")
        limit = _view_limit(cmd)
        hits = await messages.search(store, archive_dir, query, limit)
        return {
            "ok": True,
            "messages": [hit_json(h) for h in hits],
            "next": cursor_text(hits[-1]) if len(hits) == limit else None,
        }
    if op == "messages.show":
        ref = cmd.get("ref")
        if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
            raise ValueError("ref must be a GwRef, TxId or outbound MsgId")
        shown = await messages.detail(store, archive_dir, ref)
        if shown is None:
            return {"ok": False, "reason": f"no message {ref} in the journal or the archives"}
        return {"ok": True, "ref": ref, **detail_json(shown)}
    if op.startswith("drafts."):
        return await drafts_view(op, cmd, store, clock)
    if op == "credits":
        state = str(cmd.get("state", "SUSPENSE")).upper()
        if state not in CreditState.__members__:
            raise ValueError(f"state must be one of {', '.join(CreditState.__members__)}")
        credits = await store.credits_in_state(CreditState(state), _view_limit(cmd))
        return {"ok": True, "state": state, "credits": [credit_json(c) for c in credits]}
    if op == "inquiries":  # OPEN, both directions
        found = await store.open_inquiries(_view_limit(cmd))
        return {"ok": True, "inquiries": [_ops_json(i) for i in found]}
    if op == "netting":  # default: the BEPS work date of now (docs/routing-rules.md §4)
        given = cmd.get("work_date")
        day = (
            date.fromisoformat(str(given))
            if given
            else router.schedules[Engine.BEPS].work_date(clock.now(), router.calendar)
        )
        rounds = await store.netting_rounds(day)
        return {"ok": True, "work_date": str(day), "rounds": [_ops_json(r) for r in rounds]}
    raise ValueError(f"unknown view {op!r}")


async def drafts_view(op: str, cmd: dict[str, Any], store: Store, clock: Clock) -> dict[str, Any]:
    """``gatewayctl drafts list|show|settle-list``: the register (docs/bank-drafts.md §4).

    Never a Code: the register does not hold one.  ``list`` carries the
    outstanding total (the ISSUED drafts); ``settle-list`` is the day's
    auto-settlement list (自动结清清单) with its remainders summed.
    """
    if op == "drafts.show":
        draft_no = cmd.get("draft_no")
        if not isinstance(draft_no, str) or not (len(draft_no) == 20 and draft_no.isdigit()):
            raise ValueError("draft_no must be 20 digits")
        found = await store.find_draft(draft_no)
        if found is None:
            return {"ok": False, "reason": f"no draft {draft_no} in the register"}
        return {"ok": True, "draft": _draft_json(found)}
    if op == "drafts.list":
        state_text = _text(cmd, "state")
        state = None
        if state_text is not None:
            if state_text.upper() not in DraftState.__members__:
                raise ValueError(f"state must be one of {', '.join(DraftState.__members__)}")
            state = DraftState(state_text.upper())
        before_text = _text(cmd, "expiring_before")
        before = _date_arg(before_text, "expiring_before") if before_text else None
        listed = await store.list_drafts(state, before, _view_limit(cmd))
        count, total = await store.outstanding_drafts()
        return {
            "ok": True,
            "outstanding": {"count": count, "amount": str(total)},
            "drafts": [_draft_json(d) for d in listed],
        }
    if op == "drafts.settle-list":
        day_text = _text(cmd, "date")
        day = _date_arg(day_text, "date") if day_text else clock.now().astimezone(SHANGHAI).date()
        due = await store.settle_list(day)
        remainders = sum(
            (d.entry.amount - (d.settle_amount or Decimal(0)) for d in due), Decimal(0)
        )
        return {
            "ok": True,
            "date": day.isoformat(),
            "count": len(due),
            "remainders": str(remainders),
            "drafts": [_draft_json(d) for d in due],
        }
    raise ValueError(f"unknown view {op!r}")


def _date_arg(text: str, key: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key} must be YYYY-MM-DD") from None


def _draft_json(d: DraftRecord) -> dict[str, Any]:
    """A register entry flat, as operators read it: the entry's fields first."""
    out = _ops_json(d.entry)
    rest = _ops_json(d)
    rest.pop("entry", None)
    out.update(rest)
    return out


def _text(cmd: dict[str, Any], key: str) -> str | None:
    value = cmd.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"{key} must be text of at most 64 characters")
    return value


def _amount(cmd: dict[str, Any], key: str) -> Decimal | None:
    text = _text(cmd, key)
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{key} must be an amount such as 1000.00") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{key} must be an amount such as 1000.00")
    return value


def _day_start(cmd: dict[str, Any], key: str, plus: int = 0) -> datetime | None:
    """A calendar date (Asia/Shanghai, as GwRefs and work dates count) as an instant."""
    text = _text(cmd, key)
    if text is None:
        return None
    day = date.fromisoformat(text) + timedelta(days=plus)
    return datetime.combine(day, time(), SHANGHAI)


def message_query(cmd: dict[str, Any], *, held: bool = False) -> MessageQuery:
    """The filters of ``messages search`` / ``held list`` from an admin request.

    ``from`` / ``to`` are received dates, both included; ``after`` is the
    ``next`` of the previous page.
    """
    state = _text(cmd, "state")
    engine = _text(cmd, "engine")
    if state is not None and state.upper() not in State.__members__:
        raise ValueError(f"state must be one of {', '.join(State.__members__)}")
    if engine is not None and engine.upper() not in Engine.__members__:
        raise ValueError(f"engine must be one of {', '.join(Engine.__members__)}")
    after = _text(cmd, "after")
    cursor: tuple[datetime, str] | None = None
    if after is not None:
        at, sep, tx = after.partition("|")
        if not sep or not tx:
            raise ValueError("after must be the next cursor of a previous page")
        cursor = (datetime.fromisoformat(at), tx)
    return MessageQuery(
        corp_id=_text(cmd, "corp_id"),
        msg_id=_text(cmd, "msg_id"),
        gw_ref=_text(cmd, "gw_ref"),
        end_to_end_id=_text(cmd, "end_to_end_id"),
        state=State.HELD if held else (None if state is None else State(state.upper())),
        engine=None if engine is None else Engine(engine.upper()),
        min_amount=_amount(cmd, "min_amount"),
        max_amount=_amount(cmd, "max_amount"),
        received_from=_day_start(cmd, "from"),
        received_before=_day_start(cmd, "to", plus=1),
        after=cursor,
    )


def cursor_text(h: MessageHit) -> str:
    """The page cursor after ``h``: its received instant and TxId (search order)."""
    return f"{h.received_at.isoformat()}|{h.tx_id}"


def hit_json(h: MessageHit) -> dict[str, Any]:
    """One item as printed; its screening decision (list versions and hits, docs/foreign-currency.md
    §5) as an object, null when it was not screened."""
    out = _ops_json(h)
    raw = out.get("screening")
    out["screening"] = json.loads(raw) if isinstance(raw, str) else None
    return out


def credit_json(credit: object) -> dict[str, Any]:
    """An incoming credit as printed; its screening decision as an object, like an item's
    (an incoming SWIFT credit is screened, docs/foreign-currency.md §5; null otherwise)."""
    out = _ops_json(credit)
    raw = out.get("screening")
    if isinstance(raw, str):
        out["screening"] = json.loads(raw)
    return out


def record_json(record: object) -> dict[str, Any]:
    """Any journal record as ``gatewayctl`` prints it (``_ops_json``)."""
    return _ops_json(record)


def detail_json(d: MessageDetail) -> dict[str, Any]:
    """A detail as ``gatewayctl messages show`` prints it; payloads in base64 (exact bytes)."""
    items = []
    for t in d.items:
        item = hit_json(t.item)
        item["transitions"] = [_ops_json(step) for step in t.transitions]
        items.append(item)
    request = None if d.request is None else _ops_json(d.request)
    if request is not None and d.exchange is not None:
        request["payload_b64"] = base64.b64encode(d.exchange.request).decode()
    return {
        "request": request,
        "response": None if d.request is None else _response(d),
        "items": items,
        "items_total": d.items_total,
        "outbound": [_payload_json(o) for o in d.outbound],
        "inbound": [_payload_json(i) for i in d.inbound],
        "actions": [_ops_json(a) for a in d.actions],
        "archive": d.archive,
    }


def _response(d: MessageDetail) -> dict[str, Any]:
    """What the 0000 told the corporate: every journaled request was answered with its
    GwRef (docs/protocol.md §5; refusals are never journaled), and the signed bytes
    when the journal kept them (a request journaled before migration 8 has none)."""
    assert d.request is not None  # noqa: S101 - the caller checked
    at = d.request.received_at if d.exchange is None else d.exchange.at
    out: dict[str, Any] = {"ret_code": "0000", "gw_ref": d.request.gw_ref, "at": at.isoformat()}
    if d.exchange is not None and d.exchange.response:
        out["payload_b64"] = base64.b64encode(d.exchange.response).decode()
    elif d.exchange is not None:  # a DRAFT's answer: it carries the Code, never stored
        out["withheld"] = "the answer carries the draft's Code, which is never stored"
    return out


def _payload_json(record: object) -> dict[str, Any]:
    out = _ops_json(record)
    out["payload_b64"] = base64.b64encode(out.pop("payload")).decode()
    return out


def _view_limit(cmd: dict[str, Any]) -> int:
    """``limit`` of a journal view: 100 by default, at most 1000 (one admin answer)."""
    limit = cmd.get("limit", 100)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise ValueError("limit must be a whole number from 1 to 1000")
    return limit


def _ops_json(record: object) -> dict[str, Any]:
    """A journal record as ``gatewayctl`` prints it: account numbers (``*_acct``)
    masked as in the logs (``mask_account``), amounts as strings (no float ever
    touches money), enums by value, instants in ISO 8601, figures with their net."""
    assert is_dataclass(record)  # noqa: S101 - the store speaks in dataclasses only
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name.endswith("_acct") and isinstance(value, str):
            value = mask_account(value)
        elif is_dataclass(value):
            value = _ops_json(value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, date):  # datetime too
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, tuple) and all(is_dataclass(v) for v in value):
            value = [_ops_json(v) for v in value]
        out[f.name] = value
    if isinstance(record, Figures):
        out["net"] = str(record.net)
    return out
