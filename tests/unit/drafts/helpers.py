"""Shared values for the draft tests: the shipped calendars, a participant, keys, an entry."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

from gateway.drafts.code import DraftKey, make_code
from gateway.drafts.records import DraftEntry, DraftState, Presentment, Scope
from gateway.routing.calendar import WorkCalendar
from gateway.routing.calendar_files import load_calendars

REPO = Path(__file__).resolve().parents[3]
OURS = "103100000019"  # bank.participant of the shipped configuration (area 1000)
AGENT_IN = "103100000027"  # same area 1000
AGENT_OUT = "104290000010"  # another area (2900)

KEY_A = DraftKey("d-a", bytes(range(32)))
KEY_B = DraftKey("d-b", bytes(range(100, 132)))


@cache
def shipped_calendar() -> WorkCalendar:
    """The calendars under routing/calendar, as the daemon loads them."""
    return load_calendars(REPO / "routing" / "calendar")


def working_days(cal: WorkCalendar) -> list[date]:
    """Every working day of the loaded years, in order."""
    out = []
    for year in sorted(cal.years):
        d = date(year, 1, 1)
        while d.year == year:
            if cal.is_working_day(d):
                out.append(d)
            d += timedelta(days=1)
    return out


def entry(
    state: DraftState = DraftState.ISSUED,
    *,
    scope: Scope = Scope.NATIONAL,
    amount: str = "1234.50",
    issue: date = date(2026, 11, 2),
    expiry: date = date(2026, 12, 2),
) -> DraftEntry:
    return DraftEntry(
        draft_no=f"{OURS}00000042",
        scope=scope,
        amount=Decimal(amount),
        payer_acct="6222000000000001",
        payer_name="Demo Trading Co.",
        payee_name="Beta Components Ltd",
        issue_date=issue,
        expiry_date=expiry,
        state=state,
        code_key=KEY_A.key_id,
    )


def presentment(of: DraftEntry, key: DraftKey = KEY_A, **changes: object) -> Presentment:
    """A presentment that passes every check for ``of``, with ``changes`` applied."""
    p = Presentment(
        prsntmt_id="AG-0001",
        draft_no=of.draft_no,
        code=make_code(key, of),
        issue_date=of.issue_date,
        amount=of.amount,
        settle_amount=of.amount - Decimal("234.50"),
        agent_bank=AGENT_IN,
        holder_acct="6217000011112222",
        holder_name="Beta Components Ltd",
    )
    return replace(p, **changes)  # type: ignore[arg-type]
