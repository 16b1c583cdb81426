"""SWIFT credits in the journal (docs/foreign-currency.md §4-§5), on both backends: their
currency and minor units, REVIEW with the screening decision, the review's release and
rejection with the operator action, the suspense without an inquiry, and the CREDIT
notification in the credit's currency.

Runs against both backends (``[sqlite]``, ``[postgres]``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from decimal import Decimal

import pytest

from gateway.journal.credit_review_sql import CreditReviewOutcome
from gateway.journal.ops_records import ActionKind, OperatorAction
from gateway.journal.records import CreditState, NewIncomingCredit
from gateway.model import Engine, NoticeKind

from .conftest import JournalStore
from .helpers import WORK_DATE, at

CORP = "C100000001"
DONE = CreditReviewOutcome.DONE
SENDER = "CITIUS33XXX"
HITS = json.dumps(
    {
        "versions": [{"list": "demo-list", "version": "ab" * 32}],
        "hits": [
            {"list": "DEMO", "entry_id": "D-0002", "field": "payer_name", "score": 1.0,
             "listed": "Ivan Sidorenko"},
        ],
    }
)  # fmt: skip


def swift_credit(
    gw_ref: str,
    tx_id: str,
    *,
    amount: str = "250.50",
    ccy: str = "USD",
    minor_units: int = 2,
    state: CreditState = CreditState.CHECKING,
    screening: str | None = None,
) -> NewIncomingCredit:
    return NewIncomingCredit(
        gw_ref=gw_ref,
        engine=Engine.SWIFT,
        msg_id=f"M-{tx_id}",
        tx_id=tx_id,
        end_to_end_id=f"E-{tx_id}",
        sender=SENDER,
        work_date=WORK_DATE,
        debtor_acct="000123456789",
        debtor_name="Overseas Buyer Inc",
        debtor_bank=SENDER,
        creditor_acct="6222000011112222",
        creditor_name="Acme Trading Co",
        amount=Decimal(amount),
        purpose="invoice 7",
        received_at=at(10),
        corp_id=CORP,
        ccy=ccy,
        minor_units=minor_units,
        screening=screening or json.dumps({"versions": [], "hits": []}),
        state=state,
    )


def action(kind: ActionKind, target: str, user: str = "alice", reason: str = "") -> OperatorAction:
    return OperatorAction(at(20), 1001, user, kind, target, reason, forced=False)


async def test_amounts_keep_their_currency_and_minor_units(store: JournalStore) -> None:
    usd = await store.receive_credit(swift_credit("GI1", "T-1"))
    jpy = await store.receive_credit(swift_credit("GI2", "T-2", amount="1500", ccy="JPY",
                                                  minor_units=0))  # fmt: skip
    assert (usd.amount, usd.ccy, usd.state) == (Decimal("250.50"), "USD", CreditState.CHECKING)
    assert (jpy.amount, jpy.ccy) == (Decimal("1500"), "JPY")
    assert jpy.amount.as_tuple().exponent == 0  # 1500 yen, not 1500.00
    assert await store.post_credit("GI1", at(11))
    assert await store.post_credit("GI2", at(12))
    notices = await store.pull_notices(CORP, 0, 10)
    assert [(n.kind, n.gw_ref, n.amount, n.ccy, n.engine) for n in notices] == [
        (NoticeKind.CREDIT, "GI1", Decimal("250.50"), "USD", Engine.SWIFT),
        (NoticeKind.CREDIT, "GI2", Decimal("1500"), "JPY", Engine.SWIFT),
    ]
    assert str(notices[1].amount) == "1500"
    with pytest.raises(ValueError, match="decimals"):  # never rounded into shape
        await store.receive_credit(swift_credit("GI3", "T-3", amount="1500.5", ccy="JPY",
                                                minor_units=0))  # fmt: skip


async def test_a_flagged_credit_waits_in_review_and_is_listed(store: JournalStore) -> None:
    held = await store.receive_credit(
        swift_credit("GI1", "T-1", state=CreditState.REVIEW, screening=HITS)
    )
    await store.receive_credit(swift_credit("GI2", "T-2"))
    assert (held.state, held.next_check_at, held.screening) == (CreditState.REVIEW, None, HITS)
    # redelivered: the same credit, still in review
    again = await store.receive_credit(
        swift_credit("GI9", "T-1", state=CreditState.REVIEW, screening=HITS)
    )
    assert (again.gw_ref, again.state) == ("GI1", CreditState.REVIEW)
    # the checker never sees it; review list does, with hits and versions
    assert [c.gw_ref for c in await store.credits_to_check(at(99), 10)] == ["GI2"]
    (pending,) = await store.pending_credit_reviews(10)
    assert (pending.gw_ref, pending.received_at) == ("GI1", at(10))
    assert [h["entry_id"] for h in pending.hits] == ["D-0002"]
    assert [v["list"] for v in pending.versions] == ["demo-list"]
    assert [c.gw_ref for c in await store.credits_in_state(CreditState.REVIEW, 10)] == ["GI1"]
    assert (await store.live_counts()).credits[CreditState.REVIEW] == 1


async def test_release_sends_it_to_the_account_check_with_the_action(
    store: JournalStore,
) -> None:
    await store.receive_credit(swift_credit("GI1", "T-1", state=CreditState.REVIEW,
                                            screening=HITS))  # fmt: skip
    with pytest.raises(ValueError, match="approve"):
        await store.release_credit_review(
            "GI1", action(ActionKind.REJECT, "GI1", reason="x"), seen=()
        )
    with pytest.raises(ValueError, match="reference"):
        await store.release_credit_review("GI1", action(ActionKind.APPROVE, "GI2"), seen=())
    released = await store.release_credit_review("GI1", action(ActionKind.APPROVE, "GI1"), seen=())
    assert released is CreditReviewOutcome.DONE
    assert await store.credit_state("GI1") is CreditState.CHECKING
    assert [c.gw_ref for c in await store.credits_to_check(at(20), 10)] == ["GI1"]
    assert await store.pending_credit_reviews(10) == []
    again = await store.release_credit_review("GI1", action(ActionKind.APPROVE, "GI1"), seen=())
    assert again is CreditReviewOutcome.NOT_IN_REVIEW
    unknown = await store.release_credit_review("GI7", action(ActionKind.APPROVE, "GI7"), seen=())
    assert unknown is CreditReviewOutcome.UNKNOWN
    _, actions = await store.message_links([], ["GI1"])
    assert [(a.action, a.operator, a.uid, a.at) for a in actions] == [
        (ActionKind.APPROVE, "alice", 1001, at(20))
    ]
    # then the checker's MATCH posts it and the corporate is told, in dollars
    assert await store.post_credit("GI1", at(21))
    (notice,) = await store.pull_notices(CORP, 0, 10)
    assert (notice.gw_ref, notice.ccy, notice.amount) == ("GI1", "USD", Decimal("250.50"))


async def test_reject_books_it_to_suspense_without_a_notice(store: JournalStore) -> None:
    await store.receive_credit(swift_credit("GI1", "T-1", state=CreditState.REVIEW,
                                            screening=HITS))  # fmt: skip
    with pytest.raises(ValueError, match="reason"):
        await store.reject_credit_review(
            "GI1", action(ActionKind.REJECT, "GI1", reason=" "), seen=()
        )
    rejected = await store.reject_credit_review(
        "GI1", action(ActionKind.REJECT, "GI1", user="bob", reason="true match: D-0002"), seen=()
    )
    assert rejected is CreditReviewOutcome.DONE
    assert await store.credit_state("GI1") is CreditState.SUSPENSE
    assert not await store.post_credit("GI1", at(21))  # never posted afterwards
    assert await store.pull_notices(CORP, 0, 10) == []
    assert [c.gw_ref for c in await store.credits_in_state(CreditState.SUSPENSE, 10)] == ["GI1"]
    _, actions = await store.message_links([], ["GI1"])
    assert [(a.action, a.operator, a.reason) for a in actions] == [
        (ActionKind.REJECT, "bob", "true match: D-0002")
    ]
    assert await store.open_inquiries(10) == []


async def test_credit_review_steps_are_conditional_like_a_payments(
    store: JournalStore,
) -> None:
    """docs/foreign-currency.md §5: a first approval is a conditional step of its own, so
    one user's two approvals at once, an approval racing a rejection, or a step decided on
    stale approvals, write nothing."""
    for ref, tx in (("GI1", "T-1"), ("GI2", "T-2")):
        await store.receive_credit(swift_credit(ref, tx, state=CreditState.REVIEW,
                                                screening=HITS))  # fmt: skip
    alice = action(ActionKind.APPROVE, "GI1")
    # alice's two approvals decided at once: both saw none; one is written
    first = await store.approve_credit_review("GI1", alice, seen=())
    twice = await store.approve_credit_review("GI1", alice, seen=())
    assert (first, twice) == (CreditReviewOutcome.DONE, CreditReviewOutcome.SAME_USER)
    assert await store.review_approvals("GI1") == ["alice"]
    assert await store.credit_state("GI1") is CreditState.REVIEW  # one approval: still waits
    # a step decided before alice's approval landed is decided again
    bob = action(ActionKind.APPROVE, "GI1", user="bob")
    stale = await store.approve_credit_review("GI1", bob, seen=())
    reject_stale = await store.reject_credit_review(
        "GI1", action(ActionKind.REJECT, "GI1", user="carol", reason="match"), seen=()
    )
    assert (stale, reject_stale) == (CreditReviewOutcome.CHANGED, CreditReviewOutcome.CHANGED)
    assert await store.credit_state("GI1") is CreditState.REVIEW
    released = await store.release_credit_review("GI1", bob, seen=("alice",))
    assert released is CreditReviewOutcome.DONE
    assert await store.credit_state("GI1") is CreditState.CHECKING
    assert await store.review_approvals("GI1") == ["alice", "bob"]
    # an approval racing a rejection: the rejection landed first, the approval is refused
    rejected = await store.reject_credit_review(
        "GI2", action(ActionKind.REJECT, "GI2", user="carol", reason="match"), seen=()
    )
    late = await store.approve_credit_review("GI2", action(ActionKind.APPROVE, "GI2"), seen=())
    assert (rejected, late) == (CreditReviewOutcome.DONE, CreditReviewOutcome.NOT_IN_REVIEW)
    assert await store.credit_state("GI2") is CreditState.SUSPENSE
    assert await store.review_approvals("GI2") == []
    unknown = await store.approve_credit_review("GI7", action(ActionKind.APPROVE, "GI7"), seen=())
    assert unknown is CreditReviewOutcome.UNKNOWN
    with pytest.raises(ValueError, match="approve"):
        await store.approve_credit_review("GI1", action(ActionKind.REJECT, "GI1", reason="x"),
                                          seen=())  # fmt: skip


async def test_one_users_concurrent_credit_approvals_write_one(store: JournalStore) -> None:
    """Two approvals by alice in flight together (two admin connections, or two nodes):
    exactly one is journaled, on either backend."""
    await store.receive_credit(swift_credit("GI1", "T-1", state=CreditState.REVIEW,
                                            screening=HITS))  # fmt: skip
    alice = action(ActionKind.APPROVE, "GI1")
    outcomes = await asyncio.gather(
        *(store.approve_credit_review("GI1", alice, seen=()) for _ in range(4))
    )
    assert sorted(o.value for o in outcomes) == ["done", "same_user", "same_user", "same_user"]
    assert await store.review_approvals("GI1") == ["alice"]


async def test_every_credit_ever_in_review_is_listed_with_its_state_now(
    store: JournalStore,
) -> None:
    """``review list --all`` (docs/foreign-currency.md §5): credits in REVIEW and those a
    reviewer decided, newest first; a credit never in review is not among them."""
    for ref, tx, minute in (("GI1", "T-1", 10), ("GI2", "T-2", 11), ("GI3", "T-3", 12)):
        await store.receive_credit(
            replace(swift_credit(ref, tx, state=CreditState.REVIEW, screening=HITS),
                    received_at=at(minute))
        )  # fmt: skip
    await store.receive_credit(replace(swift_credit("GI4", "T-4"), received_at=at(13)))
    # a payment's approval names a TxId, never a credit
    await store.record_action(action(ActionKind.APPROVE, "T-4"))
    await store.approve_credit_review("GI1", action(ActionKind.APPROVE, "GI1"), seen=())
    bob = action(ActionKind.APPROVE, "GI1", user="bob")
    assert await store.release_credit_review("GI1", bob, seen=("alice",)) is DONE
    no = action(ActionKind.REJECT, "GI2", user="carol", reason="true match")
    assert await store.reject_credit_review("GI2", no, seen=()) is DONE
    ever = await store.credit_reviews_ever(10)
    assert [(c.gw_ref, c.state) for c in ever] == [
        ("GI3", CreditState.REVIEW),
        ("GI2", CreditState.SUSPENSE),
        ("GI1", CreditState.CHECKING),
    ]
    assert [h["entry_id"] for h in ever[1].hits] == ["D-0002"]
    assert [c.gw_ref for c in await store.credit_reviews_ever(1)] == ["GI3"]
    assert [c.gw_ref for c in await store.pending_credit_reviews(10)] == ["GI3"]


async def test_an_unmatched_swift_credit_goes_to_suspense_unasked(store: JournalStore) -> None:
    await store.receive_credit(swift_credit("GI1", "T-1"))
    assert await store.suspend_credit_unasked("GI1", at(11))
    assert not await store.suspend_credit_unasked("GI1", at(12))
    assert await store.credit_state("GI1") is CreditState.SUSPENSE
    assert await store.open_inquiries(10) == []
    assert await store.pull_notices(CORP, 0, 10) == []
