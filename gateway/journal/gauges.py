"""Live counts for the dashboard gauges, one query text for both backends.

``gateway_items{engine,state}`` and ``gateway_credits{state}`` are read from the
journal every few seconds, so each count must cost what is live, never what
the journal keeps: the journal holds 400 days of history (docs/protocol.md §7).

- Items: an index range over ``items_summary (engine, state, ...)`` for each
  (engine, non-final state) pair, covering, so it reads only the index entries
  of live items, however many SETTLED and REJECTED ones lie beside them.
- Incoming credits: CHECKING through the partial index ``credits_checking``,
  SUSPENSE through ``credits_suspense`` (migration 7), REVIEW (SWIFT credits the
  screening holds) through ``credits_review`` (migration 13).  POSTED, the bulk, is
  never counted (``gateway_incoming_credits_total`` counts postings).

The text is plain SQL that SQLite and PostgreSQL both accept; the plans are
checked by tests/unit/journal/test_gauges.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from gateway.journal.records import CreditState
from gateway.model import Engine, State

LIVE_STATES: Final = tuple(s for s in State if not s.final)
"""Item states an item leaves again (docs/architecture.md, principle 2)."""
GAUGED_CREDIT_STATES: Final = (CreditState.CHECKING, CreditState.SUSPENSE, CreditState.REVIEW)
"""Credit states whose rows have a partial index of their own."""


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


ITEMS_SQL: Final = (
    "SELECT engine, state, COUNT(*) FROM items"  # noqa: S608 - enum constants only
    f" WHERE engine IN ({_sql_list(e.value for e in Engine)})"
    f" AND state IN ({_sql_list(s.value for s in LIVE_STATES)})"
    " GROUP BY engine, state"
)
"""(engine, state, count) of every live pair that has items."""

CREDITS_SQL: Final = (
    "SELECT (SELECT COUNT(*) FROM incoming_credits WHERE state = 'CHECKING'),"
    " (SELECT COUNT(*) FROM incoming_credits WHERE state = 'SUSPENSE'),"
    " (SELECT COUNT(*) FROM incoming_credits WHERE state = 'REVIEW')"
)
"""One row: CHECKING, SUSPENSE, REVIEW; each WHERE is its partial index's, word for word."""

REVIEW_SQL: Final = (
    "SELECT (SELECT COUNT(*) FROM items WHERE state = 'REVIEW'),"
    " (SELECT MIN(updated_at) FROM items WHERE state = 'REVIEW'),"
    " (SELECT MIN(received_at) FROM incoming_credits WHERE state = 'REVIEW')"
)
"""One row: the items waiting for review, when the oldest entered it, and when the oldest
credit in REVIEW arrived (docs/foreign-currency.md §5); through the partial indexes
``items_review`` (migration 14) and ``credits_review`` (13).  A REVIEW item's
``updated_at`` is its accept instant until its review ends."""


@dataclass(frozen=True, slots=True)
class LiveCounts:
    """Items per (engine, live state) and incoming credits per gauged state; every
    pair is present, at 0 when nothing is in it."""

    items: dict[tuple[Engine, State], int] = field(default_factory=dict)
    credits: dict[CreditState, int] = field(default_factory=dict)
    review_pending: int = 0  # payments and incoming credits in REVIEW
    review_since: datetime | None = None  # when the oldest pending review began


def live_counts(
    item_rows: Iterable[Sequence[Any]],
    credit_row: Sequence[Any],
    review: tuple[int, datetime | None, datetime | None] = (0, None, None),
) -> LiveCounts:
    """The rows of :data:`ITEMS_SQL`, the row of :data:`CREDITS_SQL` and the pending
    reviews (:data:`REVIEW_SQL`, its instant decoded by the backend) as counts."""
    items = {(e, s): 0 for e in Engine for s in LIVE_STATES}
    for engine, state, count in item_rows:
        items[(Engine(str(engine)), State(str(state)))] = int(count)
    checking, suspense, held = credit_row
    credits = {
        CreditState.CHECKING: int(checking),
        CreditState.SUSPENSE: int(suspense),
        CreditState.REVIEW: int(held),
    }
    items_waiting, item_since, credit_since = review
    since = [at for at in (item_since, credit_since) if at is not None]
    return LiveCounts(
        items=items,
        credits=credits,
        review_pending=items_waiting + credits[CreditState.REVIEW],
        review_since=min(since) if since else None,
    )
