"""Read-only journal views for operations: ``gatewayctl credits|inquiries|netting``.

Suspense credits (clearing.md §6, 暂收款) are the work list of the back
office; open inquiries (corplink.md §4) wait for an answer; netting rounds
(routing.md §5) show both sides' figures when the alert fires.  A bad
argument raises ``ValueError``, which the admin socket answers as
``{"ok": false, "reason": "bad request: ..."}``.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from gateway.clock import Clock
from gateway.journal.records import CreditState, Figures
from gateway.journal.store import Store
from gateway.model import Engine
from gateway.ops.logs import mask_account
from gateway.routing.router import Router

VIEWS: Final = frozenset({"credits", "inquiries", "netting"})


async def journal_view(
    op: str, cmd: dict[str, Any], store: Store, router: Router, clock: Clock
) -> dict[str, Any]:
    """Answer one of :data:`VIEWS`."""
    if op == "credits":
        state = str(cmd.get("state", "SUSPENSE")).upper()
        if state not in CreditState.__members__:
            raise ValueError(f"state must be one of {', '.join(CreditState.__members__)}")
        credits = await store.credits_in_state(CreditState(state), _view_limit(cmd))
        return {"ok": True, "state": state, "credits": [_ops_json(c) for c in credits]}
    if op == "inquiries":  # OPEN, both directions
        found = await store.open_inquiries(_view_limit(cmd))
        return {"ok": True, "inquiries": [_ops_json(i) for i in found]}
    if op == "netting":  # default: the BEPS work date of now (routing.md §4)
        given = cmd.get("work_date")
        day = (
            date.fromisoformat(str(given))
            if given
            else router.schedules[Engine.BEPS].work_date(clock.now(), router.calendar)
        )
        rounds = await store.netting_rounds(day)
        return {"ok": True, "work_date": str(day), "rounds": [_ops_json(r) for r in rounds]}
    raise ValueError(f"unknown view {op!r}")


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
        out[f.name] = value
    if isinstance(record, Figures):
        out["net"] = str(record.net)
    return out
