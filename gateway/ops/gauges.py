"""The journal's live counts as gauges: ``gateway_items`` and ``gateway_credits``.

Counted by the journal (``Store.live_counts``, gateway/journal/gauges.py) at
a fixed interval rather than kept by the code that changes states: with
PostgreSQL several nodes change one journal, and a count kept in memory would
see only its own node's changes.  Each refresh reads index entries of live
rows only.  With PostgreSQL every node reports the same shared journal, so
the dashboard takes ``max`` over instances, never ``sum``.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from gateway.journal.gauges import LiveCounts
from gateway.journal.store import Store
from gateway.ops import metrics

log = structlog.get_logger("gateway.ops.gauges")

REFRESH_SECONDS = 5.0
"""How often the counts are read: well under a 15 s scrape interval."""


def publish(counts: LiveCounts) -> None:
    for (engine, state), n in counts.items.items():
        metrics.ITEMS.labels(engine.value, state.value).set(n)
    for credit_state, n in counts.credits.items():
        metrics.CREDITS.labels(credit_state.value).set(n)
    # docs/foreign-currency.md §5: the review alert watches the oldest pending review
    metrics.REVIEW_PENDING.set(counts.review_pending)
    since = counts.review_since
    metrics.REVIEW_OLDEST.set(0.0 if since is None else max(0.0, time.time() - since.timestamp()))


async def refresh_journal_gauges(store: Store, interval: float = REFRESH_SECONDS) -> None:
    """Count, publish, sleep; a failed count keeps the last values and is logged."""
    while True:
        try:
            publish(await store.live_counts())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a gauge must never stop the daemon
            log.warning("journal_gauges_failed", error=str(exc)[:200])
        await asyncio.sleep(interval)
