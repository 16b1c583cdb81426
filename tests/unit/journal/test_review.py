"""The review steps of the journal, on both backends (docs/foreign-currency.md §5): an item
journaled REVIEW with its screening decision, two approvals by two users release it with
its new route, one rejection ends it REJECTED RR04 with a STATUS notice, and every write is
conditional on the approvals the decision saw."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from gateway.journal.ops_records import ActionKind, OperatorAction
from gateway.journal.review_records import REJECT_CODE, ReviewOutcome, ReviewStep
from gateway.model import Engine, State

from .conftest import JournalStore
from .helpers import T0, WORK_DATE, item, request

SCREENING = json.dumps(
    {
        "versions": [{"list": "demo", "version": "ab" * 32}],
        "hits": [{"list": "DEMO", "entry_id": "D-1", "field": "payee_name", "score": 1.0,
                  "listed": "Zhang San"}],
    }
)  # fmt: skip
LATER = T0 + timedelta(minutes=5)


def _action(user: str, kind: ActionKind = ActionKind.APPROVE, reason: str = "ok") -> OperatorAction:
    return OperatorAction(LATER, 0, user, kind, "", reason, False)


async def _in_review(store: JournalStore, msg_id: str) -> str:
    outcome = await store.accept(
        request(msg_id, replace(item(state=State.REVIEW), screening=SCREENING))
    )
    assert outcome.record is not None
    return f"{outcome.record.gw_ref}"


async def test_two_approvals_by_two_users_release_the_item(store: JournalStore) -> None:
    tx = await _in_review(store, "RV-1")
    view = await store.item_status("C100000001", "RV-1")
    assert view is not None and view.state is State.REVIEW
    assert await store.claim_queued(Engine.HVPS, 10) == []
    (pending,) = await store.review_list(everything=False, limit=10)
    assert (pending.tx_id, pending.state, pending.screening) == (tx, State.REVIEW, SCREENING)

    def step(user: str, seen: tuple[str, ...], state: State, **kw: object) -> ReviewStep:
        return ReviewStep(tx, replace(_action(user), target=tx), seen, state, f"by {user}", **kw)  # type: ignore[arg-type]

    assert await store.review_step(step("alice", (), State.REVIEW)) is ReviewOutcome.DONE
    assert await store.review_approvals(tx) == ["alice"]
    # the same user again, and a decision taken on a stale view, write nothing
    assert await store.review_step(step("alice", ("alice",), State.QUEUED)) is (
        ReviewOutcome.SAME_USER
    )
    assert await store.review_step(step("bob", (), State.QUEUED)) is ReviewOutcome.CHANGED
    done = step("bob", ("alice",), State.QUEUED, engine=Engine.HVPS, receiver="104100000004",
                work_date=WORK_DATE)  # fmt: skip
    assert await store.review_step(done) is ReviewOutcome.DONE
    assert await store.review_approvals(tx) == ["alice", "bob"]
    (queued,) = await store.claim_queued(Engine.HVPS, 10)
    assert queued.tx_id == tx
    assert await store.review_step(step("carol", ("alice", "bob"), State.QUEUED)) is (
        ReviewOutcome.NOT_IN_REVIEW
    )
    assert await store.review_list(everything=False, limit=10) == []
    (ever,) = await store.review_list(everything=True, limit=10)
    assert ever.tx_id == tx
    detail = await store.message_detail(tx)
    assert detail is not None
    assert [(s.state, s.detail) for s in detail.items[0].transitions] == [
        (State.ACCEPTED, None), (State.REVIEW, None), (State.REVIEW, "by alice"),
        (State.QUEUED, "by bob"),
    ]  # fmt: skip
    assert [(a.operator, a.action) for a in detail.actions] == [
        ("alice", ActionKind.APPROVE), ("bob", ActionKind.APPROVE),
    ]  # fmt: skip
    assert detail.items[0].item.screening == SCREENING
    counts = await store.live_counts()
    assert counts.review_pending == 0


async def test_one_rejection_ends_it_rr04_with_a_status_notice(store: JournalStore) -> None:
    tx = await _in_review(store, "RV-2")
    counts = await store.live_counts()
    assert counts.review_pending == 1 and counts.review_since is not None
    reject = ReviewStep(
        tx, replace(_action("carol", ActionKind.REJECT, "listed"), target=tx), (),
        State.REJECTED, "rejected by carol: listed", reason_code=REJECT_CODE, reason_text="listed",
    )  # fmt: skip
    assert await store.review_step(reject) is ReviewOutcome.DONE
    view = await store.item_status("C100000001", "RV-2")
    assert view is not None
    assert (view.state, view.reason_code, view.reason_text) == (State.REJECTED, "RR04", "listed")
    notices = await store.pull_notices("C100000001", 0, 10)
    assert [(n.orig_msg_id, n.state, n.reason_code) for n in notices] == [
        ("RV-2", State.REJECTED, "RR04")
    ]
    assert (await store.live_counts()).review_pending == 0
