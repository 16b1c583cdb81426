"""Journaled outbound ccms.314 / ccms.315 messages (docs/clearing-link.md §1, §4).

A message is built and signed here, journaled by the caller together with
the state change it belongs to (one transaction), then published at once;
if that publish fails, the redelivery pass publishes it later under the same
MsgId, as for payments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from gateway.clearing.envelope import out_msg_id, out_sequence, out_topic
from gateway.clock import SHANGHAI
from gateway.journal.records import NewOutbound
from gateway.journal.store import Store
from gateway.model import Engine
from gateway.workers import WorkerPool

log = structlog.get_logger("gateway.correspondence")


Publish = Callable[[NewOutbound], Awaitable[bool]]


@dataclass(frozen=True)
class OutboxSettings:
    participant: str  # our 12-digit direct participant (envelope Sndr)
    topic_prefix: str


async def dated_ref(store: Store, prefix: str, sequence: str, now: datetime) -> str:
    """``prefix`` + date (Asia/Shanghai) + a 10-digit number of a journal sequence:
    unique across nodes sharing one journal (InqIds ``IQ…``, credit refs ``GI…``)."""
    seq = await store.next_sequence(sequence)
    return f"{prefix}{now.astimezone(SHANGHAI):%Y%m%d}{seq:010d}"


class CcmsOutbox:
    """Builds ccms messages and publishes them after the caller journaled them."""

    def __init__(
        self,
        settings: OutboxSettings,
        store: Store,
        pool: Callable[[], WorkerPool],
        publish: Publish,
    ) -> None:
        self.s = settings
        self._store = store
        self._pool = pool
        self._publish = publish
        self._tasks: set[asyncio.Task[None]] = set()

    async def new_inq_id(self, now: datetime) -> str:
        """``IQ`` + date + 10-digit journal sequence: unique across nodes, 20 characters."""
        return await dated_ref(self._store, "IQ", "inq", now)

    async def build(
        self,
        msg_tp: str,
        engine: Engine,
        receiver: str,
        fields: tuple[str, ...],
        now: datetime,
    ) -> NewOutbound:
        """A signed ccms message with a fresh outbound MsgId (shared with the engines);
        its WorkDt is the calendar date of ``now``."""
        wd = now.astimezone(SHANGHAI).date()
        seq = await self._store.next_sequence(out_sequence(wd))
        msg_id = out_msg_id(self.s.participant, wd, seq)
        payload = await self._pool().seal_ccms(
            msg_tp, msg_id, self.s.participant, receiver, now, wd, fields
        )
        return NewOutbound(
            msg_id=msg_id,
            engine=engine,
            msg_tp=msg_tp,
            topic=out_topic(self.s.topic_prefix, engine),
            receiver=receiver,
            work_date=wd,
            payload=payload,
            item_ids=(),
            created_at=now,
        )

    def send_soon(self, out: NewOutbound) -> None:
        """Publish a journaled message in the background (redelivery covers a failure)."""
        task = asyncio.ensure_future(self._send(out))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, out: NewOutbound) -> None:
        try:
            await self._publish(out)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - journaled: the redelivery pass sends it later
            log.warning("ccms_publish_deferred", out_msg_id=out.msg_id, msg_tp=out.msg_tp)
