"""The register's state machine and the presentment checks in their order (docs/bank-drafts.md §1, §3).

Table-driven: each row is a register entry, a presentment and the answer the
contract gives, so the order between the checks is read off the table.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from gateway.drafts.code import DraftKey, make_code
from gateway.drafts.records import (
    Answer,
    DraftEntry,
    DraftState,
    Presentment,
    Reason,
    Result,
    Scope,
)
from gateway.drafts.register import (
    NOTIFIED,
    TRANSITIONS,
    DraftEvent,
    TransitionError,
    agent_active,
    allowed_events,
    check_presentment,
    default_province_areas,
    is_notified,
    next_state,
    refundable,
    remainder,
)
from gateway.routing.directory import Directory
from tests.unit.drafts.helpers import AGENT_IN, AGENT_OUT, KEY_A, KEY_B, OURS, entry, presentment

S = DraftState
E = DraftEvent

# ---------------------------------------------------------------- state machine

EXPECTED = {
    (S.PENDING, E.ISSUE_ACSC): S.ISSUED,
    (S.PENDING, E.ISSUE_RJCT): S.REJECTED,
    (S.ISSUED, E.PRESENT_ACCP): S.PAID,
    (S.PAID, E.SETTLE_ACSC): S.SETTLED,
    (S.PAID, E.SETTLE_RJCT): S.PAID,
    (S.ISSUED, E.REFUND_REQUEST): S.REFUNDING,
    (S.REFUNDING, E.REFUND_ACSC): S.REFUNDED,
    (S.REFUNDING, E.REFUND_RJCT): S.ISSUED,
}


@pytest.mark.parametrize(
    ("step", "to"), EXPECTED.items(), ids=lambda v: getattr(v, "value", str(v))
)
def test_allowed_transitions(step: tuple[DraftState, DraftEvent], to: DraftState) -> None:
    assert next_state(*step) is to


def test_the_table_is_exactly_the_contract() -> None:
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize("state", list(DraftState))
@pytest.mark.parametrize("event", list(DraftEvent))
def test_every_other_step_is_refused(state: DraftState, event: DraftEvent) -> None:
    if (state, event) in EXPECTED:
        return
    with pytest.raises(
        TransitionError, match=f"{event.value} is not allowed in state {state.value}"
    ):
        next_state(state, event)


def test_final_states_accept_no_event() -> None:
    for state in DraftState:
        assert state.final == (allowed_events(state) == frozenset()), state
    assert {s for s in DraftState if s.final} == {S.SETTLED, S.REFUNDED, S.REJECTED}


def test_a_second_accepted_presentment_cannot_pay_twice() -> None:
    paid = next_state(S.ISSUED, E.PRESENT_ACCP)
    with pytest.raises(TransitionError):
        next_state(paid, E.PRESENT_ACCP)


def test_what_ntfy_reports() -> None:
    assert {S.ISSUED, S.PAID, S.SETTLED, S.REFUNDED, S.REJECTED} == NOTIFIED
    assert is_notified(S.PENDING, S.ISSUED)
    assert is_notified(S.REFUNDING, S.REFUNDED)
    assert not is_notified(S.ISSUED, S.REFUNDING)  # REFUNDING is not notified
    assert not is_notified(S.PAID, S.PAID)  # a rejected settle is history, not news
    assert is_notified(S.REFUNDING, S.ISSUED)  # back to ISSUED after a rejected refund


def test_refund_only_from_issued() -> None:
    assert [s for s in DraftState if refundable(entry(s))] == [S.ISSUED]


def test_remainder_includes_zero() -> None:
    e = entry(amount="1234.50")
    assert remainder(e, Decimal("1000.00")) == Decimal("234.50")
    assert remainder(e, Decimal("1234.50")) == Decimal(0)
    for bad in ("0.00", "1234.51"):
        with pytest.raises(ValueError, match=r"\(0, Amount\]"):
            remainder(e, Decimal(bad))


# ---------------------------------------------------------------- presentment checks

WORK = date(2026, 11, 20)  # between issue (2 Nov) and expiry (2 Dec)
EXPIRED = date(2026, 12, 3)
KEPT = (KEY_B, KEY_A)
RETIRED = (KEY_B,)  # KEY_A is past its retain_until
OTHER_KEY = DraftKey("d-x", b"\x09" * 32)


def answer(
    e: DraftEntry | None,
    p: Presentment,
    *,
    work: date = WORK,
    active: bool = True,
    areas: frozenset[str] | None = None,
    keys: tuple[DraftKey, ...] = KEPT,
) -> Answer:
    return check_presentment(e, p, work, active, areas, keys)


def rsn(a: Answer) -> str:
    return a.reason.value if a.reason else a.result.value


ISSUED = entry()
GOOD = presentment(ISSUED)
WRONG_CODE = make_code(OTHER_KEY, ISSUED)


def test_a_good_presentment_is_accepted() -> None:
    a = answer(ISSUED, GOOD)
    assert a == Answer(Result.ACCP) and a.accepted and a.reason is None


CASES: list[tuple[str, DraftEntry | None, Presentment, dict[str, object], str]] = [
    # NF: unknown, never issued, inactive agent bank — before everything else
    ("unknown draft", None, GOOD, {}, "NF"),
    ("unknown, expired, wrong code", None, replace(GOOD, code=WRONG_CODE), {"work": EXPIRED}, "NF"),
    ("pending", entry(S.PENDING), GOOD, {}, "NF"),
    ("rejected at issue", entry(S.REJECTED), GOOD, {}, "NF"),
    ("other draft number", ISSUED, replace(GOOD, draft_no=f"{OURS}00000043"), {}, "NF"),
    ("agent bank not active", ISSUED, GOOD, {"active": False}, "NF"),
    ("agent not active beats PD", entry(S.PAID), GOOD, {"active": False}, "NF"),
    # RF: refunding or refunded — before PD, EX, CD
    ("refunding", entry(S.REFUNDING), GOOD, {}, "RF"),
    ("refunded", entry(S.REFUNDED), GOOD, {}, "RF"),
    (
        "refunded, expired, wrong code",
        entry(S.REFUNDED),
        replace(GOOD, code=WRONG_CODE),
        {"work": EXPIRED},
        "RF",
    ),
    # PD: paid or settled — before EX and CD
    ("paid", entry(S.PAID), GOOD, {}, "PD"),
    ("settled", entry(S.SETTLED), GOOD, {}, "PD"),
    ("paid with a wrong code", entry(S.PAID), replace(GOOD, code=WRONG_CODE), {}, "PD"),
    ("settled and expired", entry(S.SETTLED), GOOD, {"work": EXPIRED}, "PD"),
    # EX: after ExpiryDate — before CD (the key may be retired)
    ("expired", ISSUED, GOOD, {"work": EXPIRED}, "EX"),
    ("expired with a wrong code", ISSUED, replace(GOOD, code=WRONG_CODE), {"work": EXPIRED}, "EX"),
    ("expired, key retired", ISSUED, GOOD, {"work": EXPIRED, "keys": RETIRED}, "EX"),
    (
        "expired with a wrong amount",
        ISSUED,
        replace(GOOD, amount=Decimal("1.00")),
        {"work": EXPIRED},
        "EX",
    ),
    ("on ExpiryDate itself", ISSUED, GOOD, {"work": ISSUED.expiry_date}, "ACCP"),
    # CD: the Code over the register's fields, and the registered IssueDate
    ("wrong code", ISSUED, replace(GOOD, code=WRONG_CODE), {}, "CD"),
    (
        "code of another draft",
        ISSUED,
        replace(GOOD, code=make_code(KEY_A, replace(ISSUED, draft_no=f"{OURS}00000043"))),
        {},
        "CD",
    ),
    ("code under a retired key", ISSUED, GOOD, {"keys": RETIRED}, "CD"),
    (
        "wrong IssueDate, good code",
        ISSUED,
        replace(GOOD, issue_date=ISSUED.issue_date + timedelta(days=1)),
        {},
        "CD",
    ),
    (
        "wrong code and wrong amount",
        ISSUED,
        replace(GOOD, code=WRONG_CODE, amount=Decimal("1.00")),
        {},
        "CD",
    ),
    (
        "code made over the presented amount",
        ISSUED,
        replace(
            GOOD,
            amount=Decimal("9999.00"),
            code=make_code(KEY_A, replace(ISSUED, amount=Decimal("9999.00"))),
        ),
        {},
        "CD",
    ),
    (
        "code under the previous kept key",
        ISSUED,
        presentment(ISSUED, KEY_A),
        {"keys": KEPT},
        "ACCP",
    ),
    ("code under the current key", ISSUED, presentment(ISSUED, KEY_B), {"keys": KEPT}, "ACCP"),
    # AM: the presented Amount differs — before SA
    ("amount differs", ISSUED, replace(GOOD, amount=Decimal("1234.51")), {}, "AM"),
    (
        "amount and settle amount wrong",
        ISSUED,
        replace(GOOD, amount=Decimal("1.00"), settle_amount=Decimal(0)),
        {},
        "AM",
    ),
    # SA: SettleAmount in (0, Amount] — before SC
    ("settle zero", ISSUED, replace(GOOD, settle_amount=Decimal("0.00")), {}, "SA"),
    ("settle above amount", ISSUED, replace(GOOD, settle_amount=Decimal("1234.51")), {}, "SA"),
    (
        "settle the whole amount",
        ISSUED,
        replace(GOOD, settle_amount=Decimal("1234.50")),
        {},
        "ACCP",
    ),
    ("settle one fen", ISSUED, replace(GOOD, settle_amount=Decimal("0.01")), {}, "ACCP"),
    (
        "settle above, provincial, outside",
        entry(scope=Scope.PROVINCIAL),
        replace(
            presentment(entry(scope=Scope.PROVINCIAL)),
            agent_bank=AGENT_OUT,
            settle_amount=Decimal("2000.00"),
        ),
        {},
        "SA",
    ),
    # SC: a provincial draft from outside the province
    (
        "provincial, outside",
        entry(scope=Scope.PROVINCIAL),
        replace(presentment(entry(scope=Scope.PROVINCIAL)), agent_bank=AGENT_OUT),
        {},
        "SC",
    ),
    (
        "provincial, inside",
        entry(scope=Scope.PROVINCIAL),
        replace(presentment(entry(scope=Scope.PROVINCIAL)), agent_bank=AGENT_IN),
        {},
        "ACCP",
    ),
    (
        "provincial, area configured",
        entry(scope=Scope.PROVINCIAL),
        replace(presentment(entry(scope=Scope.PROVINCIAL)), agent_bank=AGENT_OUT),
        {"areas": frozenset({"1000", "2900"})},
        "ACCP",
    ),
    (
        "provincial, our area not configured",
        entry(scope=Scope.PROVINCIAL),
        replace(presentment(entry(scope=Scope.PROVINCIAL)), agent_bank=AGENT_IN),
        {"areas": frozenset({"2900"})},
        "SC",
    ),
    ("national, outside", ISSUED, replace(GOOD, agent_bank=AGENT_OUT), {}, "ACCP"),
]


@pytest.mark.parametrize(("name", "e", "p", "kw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_presentment_reason_and_order(
    name: str, e: DraftEntry | None, p: Presentment, kw: dict[str, object], expected: str
) -> None:
    assert rsn(answer(e, p, **kw)) == expected  # type: ignore[arg-type]


def test_every_reason_is_reachable() -> None:
    reached = {expected for *_, expected in CASES}
    assert reached == {r.value for r in Reason} | {"ACCP"}


def test_default_province_is_our_participant_area() -> None:
    assert default_province_areas(OURS) == {"1000"}
    assert AGENT_IN[3:7] == OURS[3:7] != AGENT_OUT[3:7]


def test_answers_carry_a_reason_only_with_rjct() -> None:
    with pytest.raises(ValueError, match="RJCT"):
        Answer(Result.RJCT)
    with pytest.raises(ValueError, match="RJCT"):
        Answer(Result.ACCP, Reason.NF)


DIRECTORY = Directory.parse(
    "code,name,kind,participant,city,status,valid_from,valid_to,internal\n"
    f"{AGENT_IN},Agent in town,cnaps,{AGENT_IN},1000,active,,,\n"
    f"{AGENT_OUT},Agent far away,cnaps,{AGENT_OUT},2900,active,2026-01-01,2026-11-30,\n"
    "104290000028,Suspended agent,cnaps,104290000028,2900,suspended,,,\n",
    "<test>",
)


@pytest.mark.parametrize(
    ("code", "on", "active"),
    [
        (AGENT_IN, WORK, True),
        (AGENT_OUT, date(2026, 11, 30), True),
        (AGENT_OUT, date(2026, 12, 1), False),  # past valid_to
        ("104290000028", WORK, False),  # suspended
        ("105100000017", WORK, False),  # not listed
    ],
)
def test_agent_active_reads_the_directory_on_the_work_date(
    code: str, on: date, active: bool
) -> None:
    assert agent_active(DIRECTORY, code, on) is active
