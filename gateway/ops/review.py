"""The four-eyes review of screened payments, over the admin socket (docs/foreign-currency.md §5).

``review.list`` (pending; ``all``: every payment and credit ever in review), ``review.show REF``,
``review.approve REF``, ``review.reject REF reason``.  REF is a GwRef (it acts on
the request's items in REVIEW) or a TxId.

Who: the admin socket's ``SO_PEERCRED`` user, who must be a member (primary or
supplementary) of ``screening.review_group``; with the group unset every review
op is refused.  ``as`` (``gatewayctl review --as NAME``) names the reviewer only
with ``environment = "test"``, so that one test user can act as two reviewers;
the socket's user must still be a member.

What: two approvals by two different users release an item; the same user
approving twice is refused; one rejection ends it as REJECTED with Reason Code
RR04 and the reviewer's text (the corporate learns it by STATUS and NTFY).  The
release routes the item again with the router in force *now*: the window open →
QUEUED and the engine woken; closed → HELD until its next opening (the HELD
release takes it from there); refused now (e.g. no path) → REJECTED with that
code.  Every step is one journal transaction (``Store.review_step``): the
operator action, the item's transition naming the users (in the audit chain),
and the item's new state.  Nothing is kept in memory, so a restart or a crash
between two approvals loses nothing: the first approval stands.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import structlog

from gateway.clock import Clock
from gateway.errors import GatewayError
from gateway.journal.credit_review_sql import CreditReviewOutcome
from gateway.journal.ops_records import ActionKind, MessageHit, OperatorAction
from gateway.journal.records import CreditReview, CreditState
from gateway.journal.review_records import REJECT_CODE, ReviewOutcome, ReviewStep
from gateway.journal.store import Store
from gateway.model import BizType, Engine, Priority, Route, State, Transfer
from gateway.ops import metrics
from gateway.ops.admin import Peer
from gateway.ops.views import hit_json, record_json

log = structlog.get_logger("gateway.ops.review")

REVIEW_OPS: Final = frozenset({"review.list", "review.show", "review.approve", "review.reject"})
APPROVALS_NEEDED: Final = 2
"""docs/foreign-currency.md §5: release needs two approvals by two different users."""
MAX_REASON: Final = 500
_RETRIES: Final = 3
"""Decisions re-taken when another reviewer's step landed in between (``CHANGED``)."""


@dataclass(frozen=True)
class ReviewDesk:
    """What a review step needs of the daemon, always as in force now: ``route`` is the
    request path's routing (``pipeline.route_transfer`` with the router of the moment),
    ``review_group`` the setting ``screening.review_group``."""

    store: Store
    route: Callable[[Transfer, datetime], Route]
    clock: Clock
    wake: Callable[[Engine], None]
    review_group: Callable[[], str | None]
    environment: str


@dataclass(frozen=True)
class Reviewer:
    uid: int
    name: str


class Refused(Exception):
    """A review request refused, with the reason the operator reads."""


def is_member(uid: int, group: str) -> bool:
    """``uid`` is in ``group`` as its primary group or a supplementary member."""
    try:
        g = grp.getgrnam(group)
    except KeyError:
        return False
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    return user.pw_gid == g.gr_gid or user.pw_name in g.gr_mem


def reviewer(cmd: dict[str, Any], peer: Peer, group: str | None, env: str) -> Reviewer:
    """Who is reviewing, or ``Refused`` (module docstring "Who")."""
    if not group:
        raise Refused("screening.review_group is not set: nobody may review payments")
    stand_in = cmd.get("as")
    if stand_in is not None and env != "test":
        raise Refused('--as is accepted only with environment = "test"; reviews are attributed'
                      " to the OS user of the admin socket")  # fmt: skip
    if not is_member(peer.uid, group):
        raise Refused(f"{peer.name} is not a member of the review group {group}")
    if stand_in is None:
        return Reviewer(peer.uid, peer.name)
    if not isinstance(stand_in, str) or not 1 <= len(stand_in) <= 64:
        raise Refused("--as needs a user name of 1-64 characters")
    return Reviewer(peer.uid, stand_in)


async def review_command(
    op: str, cmd: dict[str, Any], peer: Peer, desk: ReviewDesk
) -> dict[str, Any]:
    """Carry out one of :data:`REVIEW_OPS`; ``ValueError`` for a malformed request."""
    try:
        who = reviewer(cmd, peer, desk.review_group(), desk.environment)
        if op == "review.list":
            return await _list(desk, everything=bool(cmd.get("all", False)))
        ref = cmd.get("ref")
        if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
            raise ValueError("ref is required: a GwRef or TxId")
        if op == "review.show":
            return await _show(desk, ref)
        if op == "review.approve":
            return await _decide(desk, who, ref, None)
        if op == "review.reject":
            reason = cmd.get("reason")
            if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
                raise ValueError(f"reason is required: why, in 1-{MAX_REASON} characters")
            return await _decide(desk, who, ref, reason.strip())
    except Refused as exc:
        metrics.REVIEW_DECISIONS.labels("refused").inc()
        return {"ok": False, "reason": str(exc)}
    raise ValueError(f"unknown review op {op!r}")


# -- views ---------------------------------------------------------------------------


def _item_json(h: MessageHit, approvals: list[str]) -> dict[str, Any]:
    out = {"kind": "payment", **hit_json(h)}
    out["approvals"] = approvals
    return out


async def _list(desk: ReviewDesk, *, everything: bool) -> dict[str, Any]:
    """Payments (kind ``payment``), then incoming SWIFT credits (kind ``credit``): pending
    ones oldest first, or with ``everything`` each ever in review newest first, in the state
    its review left it (CHECKING, POSTED, SUSPENSE...)."""
    hits = await desk.store.review_list(everything=everything, limit=1000)
    items = [_item_json(h, await desk.store.review_approvals(h.tx_id)) for h in hits]
    if everything:
        credits = await desk.store.credit_reviews_ever(1000)
    else:
        credits = await desk.store.pending_credit_reviews(1000)
    for credit in credits:
        items.append(await _credit_json(desk, credit.gw_ref, credit.state, credit))
    return {"ok": True, "items": items}


async def _credit_json(
    desk: ReviewDesk, gw_ref: str, state: CreditState, pending: CreditReview | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "credit", "gw_ref": gw_ref, "state": state.value}
    if pending is not None:
        out["received_at"] = pending.received_at.isoformat()
        out["screening"] = {"versions": pending.versions, "hits": pending.hits}
    out["approvals"] = await desk.store.review_approvals(gw_ref)
    return out


async def _credit(desk: ReviewDesk, ref: str) -> tuple[CreditState, CreditReview | None]:
    """An incoming credit's state (and its screening while in REVIEW), or ``Refused``."""
    state = await desk.store.credit_state(ref)
    if state is None:
        raise Refused(f"no payment or incoming credit {ref} in the journal (a GwRef or TxId)")
    pending = None
    if state is CreditState.REVIEW:
        found = [c for c in await desk.store.pending_credit_reviews(1000) if c.gw_ref == ref]
        pending = found[0] if found else None
    return state, pending


async def _show(desk: ReviewDesk, ref: str) -> dict[str, Any]:
    detail = await desk.store.message_detail(ref)
    if detail is None or detail.request is None:
        state, pending = await _credit(desk, ref)
        return {"ok": True, "items": [await _credit_json(desk, ref, state, pending)]}
    items = []
    for trail in detail.items:
        if trail.item.screening is None:
            continue
        out = _item_json(trail.item, await desk.store.review_approvals(trail.item.tx_id))
        out["transitions"] = [record_json(step) for step in trail.transitions]
        out["decisions"] = [
            record_json(a)
            for a in detail.actions
            if a.target == trail.item.tx_id and a.action in (ActionKind.APPROVE, ActionKind.REJECT)
        ]
        items.append(out)
    if not items:
        raise Refused(f"{ref} was not screened")
    return {"ok": True, "items": items}


# -- decisions -------------------------------------------------------------------------


async def _decide(
    desk: ReviewDesk, who: Reviewer, ref: str, reject_reason: str | None
) -> dict[str, Any]:
    """Approve (``reject_reason`` None) or reject every REVIEW item of ``ref``, or the
    incoming credit ``ref``."""
    detail = await desk.store.message_detail(ref)
    if detail is None or detail.request is None:
        return await _decide_credit(desk, who, ref, reject_reason)
    screened = [t.item for t in detail.items if t.item.screening is not None]
    pending = [h for h in screened if h.state is State.REVIEW]
    if not pending:
        raise Refused(f"{ref} has no item in REVIEW")
    results = [await _decide_item(desk, who, h, reject_reason) for h in pending]
    woken = {r["engine"] for r in results if r.get("state") == State.QUEUED.value}
    for engine in woken:
        desk.wake(Engine(engine))
    ok = all(r["ok"] for r in results)
    answer: dict[str, Any] = {"ok": ok, "items": results}
    if not ok:
        answer["reason"] = "; ".join(r["reason"] for r in results if not r["ok"])
    return answer


async def _decide_credit(
    desk: ReviewDesk, who: Reviewer, ref: str, reject_reason: str | None
) -> dict[str, Any]:
    """An incoming SWIFT credit in REVIEW (docs/foreign-currency.md §5), with a payment's
    steps: the first approval is journaled as the action (the credit stays in REVIEW); the
    second, by another user, releases it to its account check (REVIEW → CHECKING); a
    rejection books it to suspense (SUSPENSE, no notice).  Each step is conditional on the
    approvals it saw, like ``_decide_item``'s."""
    state, _ = await _credit(desk, ref)
    if state is not CreditState.REVIEW:
        raise Refused(f"{ref} has no item in REVIEW (the credit is {state.value})")
    out: dict[str, Any] = {"kind": "credit", "gw_ref": ref, "user": who.name}
    for _ in range(_RETRIES):
        approvals = tuple(await desk.store.review_approvals(ref))
        now = desk.clock.now()
        if reject_reason is not None:
            action = OperatorAction(
                now, who.uid, who.name, ActionKind.REJECT, ref, reject_reason, False
            )
            outcome = await desk.store.reject_credit_review(ref, action, seen=approvals)
            decision, new_state = "reject", CreditState.SUSPENSE
        else:
            action = OperatorAction(
                now, who.uid, who.name, ActionKind.APPROVE, ref, "approved in review", False
            )
            if len(approvals) + 1 < APPROVALS_NEEDED or who.name in approvals:
                # a second approval by the same user is refused by the store (SAME_USER)
                outcome = await desk.store.approve_credit_review(ref, action, seen=approvals)
                decision, new_state = "approve", CreditState.REVIEW
            else:
                outcome = await desk.store.release_credit_review(ref, action, seen=approvals)
                decision, new_state = "release", CreditState.CHECKING
        if outcome is not CreditReviewOutcome.CHANGED:
            break
    if outcome is not CreditReviewOutcome.DONE:
        metrics.REVIEW_DECISIONS.labels("refused").inc()
        reason = _REFUSALS[ReviewOutcome(outcome.value)].format(user=who.name)
        log.info("review_refused", gw_ref=ref, user=who.name, uid=who.uid,
                 outcome=outcome.value, kind="credit")  # fmt: skip
        return {"ok": False, "reason": f"{ref}: {reason}", "items": [{**out, "ok": False}]}
    metrics.REVIEW_DECISIONS.labels(decision).inc()
    log.info("review_step", gw_ref=ref, user=who.name, uid=who.uid, decision=decision,
             state=new_state.value, kind="credit")  # fmt: skip
    after = list(approvals) if decision == "reject" else [*approvals, who.name]
    item = {**out, "ok": True, "decision": decision, "state": new_state.value, "approvals": after}
    return {"ok": True, "items": [item]}


async def _decide_item(
    desk: ReviewDesk, who: Reviewer, h: MessageHit, reject_reason: str | None
) -> dict[str, Any]:
    for _ in range(_RETRIES):
        approvals = await desk.store.review_approvals(h.tx_id)
        step = _step(desk, who, h, tuple(approvals), reject_reason)
        outcome = await desk.store.review_step(step)
        if outcome is not ReviewOutcome.CHANGED:
            break
    return _result(who, h, step, outcome)


def _step(
    desk: ReviewDesk,
    who: Reviewer,
    h: MessageHit,
    approvals: tuple[str, ...],
    reject_reason: str | None,
) -> ReviewStep:
    now = desk.clock.now()
    kind = ActionKind.APPROVE if reject_reason is None else ActionKind.REJECT
    action = OperatorAction(
        now, who.uid, who.name, kind, h.tx_id, reject_reason or "approved in review", False
    )
    if reject_reason is not None:
        return ReviewStep(
            h.tx_id, action, approvals, State.REJECTED,
            f"rejected in review by {who.name}: {reject_reason}",
            reason_code=REJECT_CODE, reason_text=reject_reason,
        )  # fmt: skip
    users = [*approvals, who.name]
    if len(users) < APPROVALS_NEEDED or who.name in approvals:
        # a second approval by the same user is refused by the store (SAME_USER)
        return ReviewStep(
            h.tx_id, action, approvals, State.REVIEW,
            f"approved by {who.name} ({len(users)} of {APPROVALS_NEEDED})",
        )  # fmt: skip
    detail = f"released in review, approved by {' and '.join(users)}"
    try:
        route = desk.route(_transfer(h), now)
    except GatewayError as exc:
        text = exc.detail or exc.code.text
        return ReviewStep(
            h.tx_id, action, approvals, State.REJECTED, f"{detail}; refused by routing: {text}",
            reason_code=exc.code.value, reason_text=text,
        )  # fmt: skip
    state = State.HELD if route.release_at is not None else State.QUEUED
    return ReviewStep(
        h.tx_id, action, approvals, state, detail,
        engine=route.engine, receiver=route.receiver, payee_bank_code=route.payee_bank_code,
        work_date=route.work_date, release_at=route.release_at,
    )  # fmt: skip


def _transfer(h: MessageHit) -> Transfer:
    """The journaled item as the transfer the router takes."""
    return Transfer(
        payer_acct=h.payer_acct,
        payer_name=h.payer_name,
        payee_acct=h.payee_acct,
        payee_name=h.payee_name,
        payee_bank_code=h.payee_bank_code,
        amount=Decimal(h.amount),
        ccy=h.ccy,
        priority=Priority(h.priority) if h.priority else Priority.NORM,
        biz_type=BizType(h.biz_type) if h.biz_type else BizType.CREDIT,
        purpose=h.purpose,
        payee_bic=h.payee_bic,
        payee_country=h.payee_country,
        chrg_br=h.chrg_br or "SHAR",
    )


_REFUSALS: Final = {
    ReviewOutcome.UNKNOWN: "no such item",
    ReviewOutcome.NOT_IN_REVIEW: "no longer in REVIEW (decided meanwhile)",
    ReviewOutcome.CHANGED: "other reviewers are deciding it right now; try again",
    ReviewOutcome.SAME_USER: "already approved by {user}: the second approval must be"
    " another user's (four eyes)",
}


def _result(
    who: Reviewer, h: MessageHit, step: ReviewStep, outcome: ReviewOutcome
) -> dict[str, Any]:
    out: dict[str, Any] = {"tx_id": h.tx_id, "gw_ref": h.gw_ref, "user": who.name}
    if outcome is not ReviewOutcome.DONE:
        metrics.REVIEW_DECISIONS.labels("refused").inc()
        reason = _REFUSALS[outcome].format(user=who.name)
        log.info("review_refused", tx_id=h.tx_id, user=who.name, uid=who.uid, outcome=outcome.value)
        return {**out, "ok": False, "reason": f"{h.tx_id}: {reason}"}
    if step.action.action is ActionKind.REJECT:
        decision = "reject"
    elif step.state is State.REVIEW:
        decision = "approve"
    else:
        decision = "release"
    metrics.REVIEW_DECISIONS.labels(decision).inc()
    log.info(
        "review_step", tx_id=h.tx_id, user=who.name, uid=who.uid, decision=decision,
        state=step.state.value, reason_code=step.reason_code,
    )  # fmt: skip
    out.update(
        ok=True,
        decision=decision,
        state=step.state.value,
        approvals=[*step.approvals, who.name] if decision != "reject" else list(step.approvals),
    )
    if step.engine is not None:
        out["engine"] = step.engine.value
    if step.release_at is not None:
        out["release_at"] = step.release_at.isoformat()
    if step.reason_code is not None:
        out["reason_code"] = step.reason_code
        out["reason_text"] = step.reason_text
    return out
