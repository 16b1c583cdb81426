"""The store protocol: the journal is the truth (DESIGN.md principle 1).

Every method that changes state returns only after the change is on stable
storage (SQLite: WAL + ``synchronous=FULL``, one writer committing in groups),
so the caller may acknowledge it.  Every item state change writes a row to the
transition table with its time (DESIGN.md principle 2).  All times are passed
in by the caller (the injected clock); the store never reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from gateway.journal.records import (
    AcceptOutcome,
    NewOutbound,
    NewRequest,
    OutboundRecord,
    PendingGroup,
    QueuedItem,
    RequestRecord,
    StateCount,
    TxResult,
)
from gateway.model import BizType, Engine, StatusView


class Store(Protocol):
    """What the pipeline, engines and receipt handler need from the journal."""

    async def start(self) -> None:
        """Open (creating or migrating the schema) and start the writer."""

    async def close(self) -> None:
        """Flush pending writes and close; idempotent."""

    # -- the request side -------------------------------------------------
    async def find_request(self, corp_id: str, msg_id: str) -> RequestRecord | None:
        """The journaled request with this (CorpId, MsgId), if any."""

    async def accept(self, request: NewRequest) -> AcceptOutcome:
        """Journal a request and its items durably; assign its GwRef.

        Writes ACCEPTED then each item's next state (QUEUED / HELD / REJECTED)
        as transition rows.  If (CorpId, MsgId) already exists, nothing is
        written and ``created`` is False with the existing record (the caller
        compares digests: Dup replay or 3001, corplink.md §7).

        Every request adds its non-rejected items' amounts to the operator's
        daily total for ``request.daily_limit.day`` (or the received date);
        with a ``daily_limit``, a request that would take the total past the
        cap writes nothing and returns ``over_limit`` (2006, corplink.md §6).
        The check and the write are one transaction: exact under concurrency
        and across nodes.
        """

    async def item_status(
        self, corp_id: str, msg_id: str, seq_no: int | None = None
    ) -> StatusView | None:
        """Status with transition history of one item (the first, for a PAY)."""

    # -- the engine side --------------------------------------------------
    async def release_held(self, now: datetime, limit: int) -> int:
        """Move at most ``limit`` HELD items whose release_at <= now to QUEUED."""

    async def pending_groups(self, engine: Engine) -> list[PendingGroup]:
        """QUEUED items not yet in an outbound message, grouped for packaging."""

    async def claim_queued(
        self,
        engine: Engine,
        limit: int,
        *,
        receiver: str | None = None,
        biz_type: BizType | None = None,
        work_date: object | None = None,
    ) -> list[QueuedItem]:
        """QUEUED items without an outbound message, oldest first (optionally one group)."""

    async def next_sequence(self, name: str, count: int = 1) -> int:
        """Reserve ``count`` numbers of a named durable sequence; returns the first."""

    async def create_outbound(self, messages: Sequence[NewOutbound]) -> None:
        """Journal outbound messages (PENDING) and link their items, atomically.

        Raises ``ValueError`` if an item is no longer QUEUED or already linked.
        """

    async def unsent_outbound(self, limit: int) -> list[OutboundRecord]:
        """PENDING outbound messages, oldest first (never PUBACKed: publish them)."""

    async def mark_sent(self, msg_id: str, at: datetime) -> None:
        """PUBACK arrived: outbound PENDING→SENT (attempts+1), its items QUEUED→SENT."""

    async def mark_sent_many(self, msg_ids: Sequence[str], at: datetime) -> None:
        """``mark_sent`` for several messages in one write (a burst of PUBACKs)."""

    async def due_for_resend(self, sent_before: datetime, limit: int) -> list[OutboundRecord]:
        """SENT messages without ccms.990 whose last send is at or before ``sent_before``."""

    async def mark_resent(self, msg_id: str, at: datetime) -> None:
        """A re-publish under the same MsgId got its PUBACK: attempts+1, last_sent_at."""

    async def apply_receipt(self, msg_id: str, at: datetime) -> bool:
        """ccms.990 for an outbound MsgId: message ACKED, items SENT→ACKED.

        Idempotent; False when the MsgId is unknown.
        """

    async def apply_tx_status(self, msg_id: str, results: Sequence[TxResult], at: datetime) -> int:
        """ccms.900: ACSC→SETTLED, RJCT→REJECTED(reason), ACSP→ACKED.

        Matches items of outbound ``msg_id`` by TxId (else EndToEndId).  Final
        states never move; re-applying is a no-op.  Returns items changed.
        """

    async def summary(self) -> list[StateCount]:
        """Item counts by engine, state and reason code."""
