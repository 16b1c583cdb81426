"""Manual actions through the admin socket: ``held release`` and ``resend``.

Each is journaled with who (the admin socket's ``SO_PEERCRED`` operator, never
a name the client sends) and why (``reason``, required), so the journal
answers "who released this payment early, and why" (docs/operations.md).

- ``held.release``: a HELD item (a TxId, or every HELD item of a GwRef) goes
  to QUEUED now, instead of at its engine's next opening, where the throttled
  release would take it (docs/routing-rules.md §4).  Refused while the
  engine's window is closed (a release then only moves the wait into the
  outbox) unless ``force``.  The move, its transition (detail: who and why)
  and the action are one transaction.
- ``resend``: an outbound message is re-published under its own MsgId
  (docs/clearing-link.md §1: receivers deduplicate).  Refused once its
  receipt (ccms.990, or a ccms.900 that implies it) is journaled, since the
  clearing system has it (docs/routing-rules.md §5), unless ``force``.  The
  action is journaled before the publish, so a crash in between still shows
  who asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog

from gateway.clock import Clock
from gateway.journal.ops_records import ActionKind, OperatorAction, ReleaseOutcome
from gateway.journal.records import OutboundRecord, OutState
from gateway.journal.store import Store
from gateway.model import Engine, State
from gateway.ops.admin import Peer
from gateway.routing.router import Router
from gateway.routing.windows import ScheduleError

log = structlog.get_logger("gateway.ops")

ACTIONS: Final = frozenset({"held.release", "resend"})
MAX_REASON: Final = 500

Republish = Callable[[OutboundRecord], Awaitable[bool]]


def _reason(cmd: dict[str, Any]) -> str:
    reason = cmd.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise ValueError(f"reason is required: why, in 1-{MAX_REASON} characters")
    return reason.strip()


def _ref(cmd: dict[str, Any], key: str) -> str:
    ref = cmd.get(key)
    if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
        raise ValueError(f"{key} is required")
    return ref


def _force(cmd: dict[str, Any]) -> bool:
    force = cmd.get("force", False)
    if not isinstance(force, bool):
        raise TypeError("force must be true or false")
    return force


async def manual_action(
    op: str,
    cmd: dict[str, Any],
    peer: Peer,
    store: Store,
    router: Router,
    clock: Clock,
    wake: Callable[[Engine], None],
    republish: Republish,
) -> dict[str, Any]:
    """Carry out one of :data:`ACTIONS` for ``peer``; ``ValueError`` for a bad request."""
    reason, force = _reason(cmd), _force(cmd)
    if op == "held.release":
        return await _release(_ref(cmd, "ref"), reason, force, peer, store, router, clock, wake)
    if op == "resend":
        return await _resend(_ref(cmd, "msg_id"), reason, force, peer, store, clock, republish)
    raise ValueError(f"unknown action {op!r}")


async def _release(
    ref: str,
    reason: str,
    force: bool,
    peer: Peer,
    store: Store,
    router: Router,
    clock: Clock,
    wake: Callable[[Engine], None],
) -> dict[str, Any]:
    detail = await store.message_detail(ref)
    if detail is None or detail.request is None:
        return {"ok": False, "reason": f"no payment {ref} in the journal (a GwRef or TxId)"}
    held = [t.item for t in detail.items if t.item.state is State.HELD and t.item.engine]
    if not held:
        return {"ok": False, "reason": f"{ref} has no HELD item"}
    now = clock.now()
    for item in held:
        assert item.engine is not None  # noqa: S101 - filtered above
        schedule = router.schedules[item.engine]
        if not force and not schedule.is_open(now, router.calendar):
            try:
                opens = f" (it opens at {schedule.next_opening(now, router.calendar).isoformat()})"
            except ScheduleError:
                opens = ""
            return {
                "ok": False,
                "reason": f"the {item.engine.value} window is closed{opens}: the item would"
                " only wait in the outbox; add --force to release it anyway",
            }
    released: list[str] = []
    for item in held:
        action = OperatorAction(
            now, peer.uid, peer.name, ActionKind.RELEASE, item.tx_id, reason, force
        )
        if await store.release_item(item.tx_id, action) is ReleaseOutcome.RELEASED:
            released.append(item.tx_id)
            log.info(
                "held_released",
                operator=peer.name,
                uid=peer.uid,
                tx_id=item.tx_id,
                engine=item.engine.value if item.engine else None,
                reason=reason,
                forced=force,
            )
    for engine in {i.engine for i in held if i.engine is not None}:
        wake(engine)
    if not released:
        return {"ok": False, "reason": f"{ref} is no longer HELD (released meanwhile)"}
    return {"ok": True, "released": released, "operator": peer.name}


async def _resend(
    msg_id: str,
    reason: str,
    force: bool,
    peer: Peer,
    store: Store,
    clock: Clock,
    republish: Republish,
) -> dict[str, Any]:
    rec = await store.outbound_message(msg_id)
    if rec is None:
        return {"ok": False, "reason": f"no outbound message {msg_id} in the journal"}
    if rec.state is OutState.ACKED and not force:
        return {
            "ok": False,
            "reason": f"the clearing system's receipt (ccms.990) for {msg_id} is journaled:"
            " it has the message; add --force to send it again anyway",
        }
    await store.record_action(
        OperatorAction(clock.now(), peer.uid, peer.name, ActionKind.RESEND, msg_id, reason, force)
    )
    log.info(
        "resend_requested", operator=peer.name, uid=peer.uid, out_msg_id=msg_id,
        msg_tp=rec.msg_tp, reason=reason, forced=force,
    )  # fmt: skip
    published = await republish(rec)
    if not published:
        return {
            "ok": False,
            "reason": f"{msg_id} was not published (the clearing link is down or it is being"
            " sent right now); the request is journaled",
        }
    return {"ok": True, "msg_id": msg_id, "msg_tp": rec.msg_tp, "operator": peer.name}
