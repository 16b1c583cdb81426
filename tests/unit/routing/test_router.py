"""Engine choice, receivers, refusals and hold/release (routing.md §1-§4, corplink.md §8).

Routed against the shipped demo directory, routing/directory.csv.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.clock import SHANGHAI
from gateway.errors import GatewayError, RetCode
from gateway.model import BizType, Engine, Priority, Route, Transfer
from gateway.paths import data_root
from gateway.routing.calendar import WorkCalendar
from gateway.routing.directory import HEADER, Directory
from gateway.routing.router import BankIdentity, Router, RoutingPolicy
from gateway.routing.windows import DEFAULT_SCHEDULES, HVPS_2018_PROFILE, EngineSchedule, Session

BANK = BankIdentity(class_code="103", participant="103100000019", internal_type="10")
DIRECTORY = Directory.load(data_root() / "routing" / "directory.csv")
CAL = WorkCalendar(
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
    workdays=frozenset({date(2026, 10, 10)}),
    years=frozenset({2026}),
)
ROUTER = Router(BANK, DIRECTORY, CAL)
FRIDAY_10 = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
ICBC = "102100099996"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def transfer(
    code: str = "102290000011",
    amount: str = "100.00",
    priority: Priority = Priority.NORM,
    biz_type: BizType = BizType.CREDIT,
) -> Transfer:
    return Transfer(
        payer_acct="6222000000000001",
        payer_name="甲公司",
        payee_acct="6222000000000002",
        payee_name="乙公司",
        payee_bank_code=code,
        amount=Decimal(amount),
        priority=priority,
        biz_type=biz_type,
    )


def refusal(t: Transfer, now: datetime = FRIDAY_10, router: Router = ROUTER) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        router.route(t, now)
    return info.value


# -- engine choice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "priority", "biz_type", "engine"),
    [
        ("49999.99", Priority.NORM, BizType.CREDIT, Engine.BEPS),
        ("50000.00", Priority.NORM, BizType.CREDIT, Engine.HVPS),
        ("50000.01", Priority.NORM, BizType.CREDIT, Engine.HVPS),
        ("0.01", Priority.URGT, BizType.CREDIT, Engine.HVPS),
        ("999999999999999.99", Priority.NORM, BizType.DEBIT, Engine.BEPS),
        ("1.00", Priority.URGT, BizType.DEBIT, Engine.BEPS),  # DEBIT is checked first
    ],
)
def test_interbank_engine_rules(
    amount: str, priority: Priority, biz_type: BizType, engine: Engine
) -> None:
    route = ROUTER.route(transfer(amount=amount, priority=priority, biz_type=biz_type), FRIDAY_10)
    assert route == Route(
        engine=engine,
        receiver=ICBC,  # the Shanghai branch clears through ICBC's head office
        payee_bank_code="102290000011",
        work_date=date(2026, 11, 27),
    )


def test_a_direct_participant_is_its_own_receiver() -> None:
    assert ROUTER.route(transfer("104100000004"), FRIDAY_10).receiver == "104100000004"
    assert ROUTER.route(transfer("308290003020"), FRIDAY_10).receiver == "308584000013"


@pytest.mark.parametrize(
    ("code", "receiver"),
    [
        ("103290000018", "100018"),  # own 12-digit -> its internal column
        ("103100000019", "100019"),  # the head office itself
        ("103651000068", "100068"),
        ("100018", "100018"),  # own 6-digit -> itself
        ("101201", "101201"),  # internal-only sub-branch
        ("100068", "100068"),  # known through the 12-digit row's internal column
    ],
)
def test_own_codes_go_intra_whatever_the_amount(code: str, receiver: str) -> None:
    for t in (
        transfer(code, "10000000.00"),
        transfer(code, "1.00", Priority.URGT),
        transfer(code, "1.00", biz_type=BizType.DEBIT),
    ):
        route = ROUTER.route(t, FRIDAY_10)
        assert (route.engine, route.receiver, route.payee_bank_code) == (
            Engine.INTRA,
            receiver,
            code,
        )
        assert (route.work_date, route.release_at) == (date(2026, 11, 27), None)


def test_holiday_credit_limit_applies_on_non_working_days() -> None:
    router = Router(
        BANK, DIRECTORY, CAL, policy=RoutingPolicy(holiday_credit_limit=Decimal("5000000.00"))
    )
    saturday = at("2026-11-28 10:00")
    assert router.route(transfer(amount="100000.00"), saturday).engine is Engine.BEPS
    assert router.route(transfer(amount="5000000.00"), saturday).engine is Engine.HVPS
    assert router.route(transfer(amount="100000.00"), FRIDAY_10).engine is Engine.HVPS
    # default: the holiday limit equals the working-day limit
    assert ROUTER.route(transfer(amount="100000.00"), saturday).engine is Engine.HVPS
    assert ROUTER.route(transfer(amount="49999.99"), at("2026-10-01 10:00")).engine is Engine.BEPS


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "",
        "12345",
        "1021000999",
        "10210009999",
        "1021000999960",
        "10210009999A",
        "ABCDEF",
        " 102100099996",
        "102100099996\n",
        "-10001",
        "".join(chr(0xFF10 + 1) for _ in range(6)),  # full-width digits
        "200001",  # a 6-digit code of another bank type: internal codes are only ours
        "990018",
    ],
)
def test_malformed_codes_are_4002(code: str) -> None:
    err = refusal(transfer(code))
    assert err.code is RetCode.BANK_CODE_MALFORMED
    assert err.detail is not None
    assert err.detail.startswith("PayeeBankCode")
    if code.strip():
        assert code.strip() not in err.detail  # junk input is never echoed


@pytest.mark.parametrize(
    "code",
    [
        "102100099990",  # plausible, wrong check digit: the directory is the authority
        "999999999999",
        "103999999999",  # our class code, but no such branch
        "109999",  # our internal type, but no such branch
    ],
)
def test_unknown_codes_are_4001(code: str) -> None:
    assert refusal(transfer(code)).code is RetCode.BANK_CODE_UNKNOWN


def test_own_12_digit_code_without_internal_code_is_4001() -> None:
    text = ",".join(HEADER) + "\n103301000022,示范银行南京分行,cnaps,103100000019,3010,active,,,\n"
    router = ROUTER.with_directory(Directory.parse(text, "<test>"))
    err = refusal(transfer("103301000022"), router=router)
    assert err.code is RetCode.BANK_CODE_UNKNOWN
    assert err.detail == "PayeeBankCode has no internal code"


@pytest.mark.parametrize(
    ("code", "now"),
    [
        ("102651020123", FRIDAY_10),  # suspended
        ("305584000021", FRIDAY_10),  # closed
        ("103521000089", FRIDAY_10),  # our own closed branch
        ("102902", FRIDAY_10),  # our suspended sub-branch
        ("308651000016", FRIDAY_10),  # not yet valid
        ("105801", FRIDAY_10),  # our sub-branch, not yet open
        ("104110000029", at("2025-04-01 00:00")),  # expired the day before
    ],
)
def test_codes_not_usable_today_are_4003(code: str, now: datetime) -> None:
    assert refusal(transfer(code), now).code is RetCode.BANK_NOT_ACTIVE


def test_usability_is_judged_on_the_calendar_date_not_the_work_date() -> None:
    # 17:00 on New Year's Eve: the BEPS work date is already 2031-01-01, the
    # day the code becomes valid, but today it is not yet usable.
    assert refusal(transfer("308651000016"), at("2030-12-31 17:00")).code is RetCode.BANK_NOT_ACTIVE
    route = ROUTER.route(transfer("308651000016"), at("2031-01-01 00:00"))
    assert route.engine is Engine.BEPS
    assert ROUTER.route(transfer("104110000029"), at("2025-03-31 23:59:59.999")).work_date == date(
        2025, 4, 1
    )


# -- windows, holds and work dates ----------------------------------------------------------------


def test_hvps_before_nine_is_held_until_nine_the_same_day() -> None:
    route = ROUTER.route(transfer(amount="60000.00"), at("2026-11-30 08:59:59"))
    assert (route.engine, route.release_at, route.work_date) == (
        Engine.HVPS,
        at("2026-11-30 09:00"),
        date(2026, 11, 30),
    )


def test_hvps_at_seventeen_on_friday_is_held_until_monday_nine() -> None:
    route = ROUTER.route(transfer(amount="60000.00"), at("2026-11-27 17:00:00"))
    assert route.release_at == at("2026-11-30 09:00")
    assert route.work_date == date(2026, 11, 30)
    route = ROUTER.route(transfer(amount="60000.00"), at("2026-11-27 16:59:59.999"))
    assert (route.release_at, route.work_date) == (None, date(2026, 11, 27))


@pytest.mark.parametrize(
    ("now", "work_date"),
    [
        ("2026-11-27 15:59:59.999", date(2026, 11, 27)),
        ("2026-11-27 16:00:00.000", date(2026, 11, 28)),
    ],
)
def test_beps_work_date_around_the_cutoff(now: str, work_date: date) -> None:
    route = ROUTER.route(transfer(amount="100.00"), at(now))
    assert (route.engine, route.release_at, route.work_date) == (Engine.BEPS, None, work_date)


def test_intra_on_saturday_is_held_until_monday_midnight() -> None:
    route = ROUTER.route(transfer("100018"), at("2026-11-28 11:00"))
    assert (route.engine, route.release_at, route.work_date) == (
        Engine.INTRA,
        at("2026-11-30 00:00"),
        date(2026, 11, 30),
    )


def test_now_in_another_zone_is_read_in_shanghai() -> None:
    route = ROUTER.route(transfer(amount="60000.00"), datetime(2026, 11, 27, 0, 59, tzinfo=UTC))
    assert route.release_at == at("2026-11-27 09:00")
    assert route.release_at is not None
    assert route.release_at.tzinfo is SHANGHAI


def test_reject_policy_answers_4005_only_when_closed() -> None:
    policy = RoutingPolicy(hold_policy={Engine.HVPS: "reject", Engine.INTRA: "reject"})
    router = Router(BANK, DIRECTORY, CAL, policy=policy)
    err = refusal(transfer(amount="60000.00"), at("2026-11-27 17:00"), router)
    assert (err.code, err.detail) == (RetCode.ENGINE_CLOSED, "HVPS closed")
    assert refusal(transfer("100018"), at("2026-11-28 11:00"), router).code is RetCode.ENGINE_CLOSED
    assert router.route(transfer(amount="60000.00"), FRIDAY_10).release_at is None
    assert router.route(transfer(amount="100.00"), at("2026-11-28 11:00")).engine is Engine.BEPS


def test_an_engine_with_no_opening_in_sight_is_4005() -> None:
    start = date(2026, 11, 1)
    closed = WorkCalendar(holidays=frozenset(start + timedelta(days=i) for i in range(61)))
    err = refusal(transfer(amount="60000.00"), at("2026-11-02 10:00"), ROUTER.with_calendar(closed))
    assert (err.code, err.detail) == (RetCode.ENGINE_CLOSED, "HVPS has no opening in the calendar")


def test_the_2018_hvps_profile_routes_evening_payments_to_the_next_working_day() -> None:
    router = Router(BANK, DIRECTORY, CAL, {**DEFAULT_SCHEDULES, Engine.HVPS: HVPS_2018_PROFILE})
    route = router.route(transfer(amount="60000.00"), at("2026-11-29 21:00"))  # Sunday
    assert (route.engine, route.release_at, route.work_date) == (
        Engine.HVPS,
        None,
        date(2026, 11, 30),
    )


# -- reload and construction ------------------------------------------------------------------


def test_with_directory_swaps_only_the_directory() -> None:
    text = ",".join(HEADER) + "\n102100099990,新银行,cnaps,102100099996,1000,active,,,\n"
    new = ROUTER.with_directory(Directory.parse(text, "<new>"))
    assert new.route(transfer("102100099990"), FRIDAY_10).receiver == ICBC
    assert refusal(transfer("102290000011"), router=new).code is RetCode.BANK_CODE_UNKNOWN
    assert refusal(transfer("102100099990")).code is RetCode.BANK_CODE_UNKNOWN  # old unchanged
    assert (new.bank, new.calendar, new.policy) == (ROUTER.bank, ROUTER.calendar, ROUTER.policy)


def test_router_needs_a_schedule_per_engine() -> None:
    with pytest.raises(ValueError, match="no schedule for BEPS"):
        Router(
            BANK,
            DIRECTORY,
            CAL,
            {e: s for e, s in DEFAULT_SCHEDULES.items() if e is not Engine.BEPS},
        )
    mislabelled = EngineSchedule(Engine.INTRA, (Session.parse("09:00-17:00"),))
    with pytest.raises(ValueError, match="labelled INTRA"):
        Router(BANK, DIRECTORY, CAL, {**DEFAULT_SCHEDULES, Engine.HVPS: mislabelled})


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"class_code": "13", "participant": "103100000019", "internal_type": "10"}, "class_code"),
        ({"class_code": "103", "participant": "10310000001", "internal_type": "10"}, "participant"),
        ({"class_code": "103", "participant": "102100099996", "internal_type": "10"}, "start"),
        (
            {"class_code": "103", "participant": "103100000019", "internal_type": "1"},
            "internal_type",
        ),
    ],
)
def test_bank_identity_is_validated(kwargs: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        BankIdentity(**kwargs)


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="credit_limit"):
        RoutingPolicy(credit_limit=Decimal(0))
    with pytest.raises(ValueError, match="holiday_credit_limit"):
        RoutingPolicy(holiday_credit_limit=Decimal("NaN"))
    with pytest.raises(ValueError, match="hold or reject"):
        RoutingPolicy(hold_policy={Engine.HVPS: "queue"})
    assert RoutingPolicy().holds(Engine.HVPS)
    assert RoutingPolicy(hold_policy={}).holds(Engine.INTRA)


def test_a_batch_item_named_by_bic_is_routed_through_the_directory_bic_column() -> None:
    """corplink.md §4: MT101 57A / pain.001 BICFI "a BIC that the directory maps"."""
    from dataclasses import replace

    from gateway.model import BatchItem, State
    from gateway.pipeline import _route_item

    rows = (data_root() / "routing" / "directory.csv").read_text(encoding="utf-8").splitlines()
    with_bic = [rows[0] + ",bic"] + [
        r + (",ICBKCNBJ" if r.startswith(ICBC) else ",") for r in rows[1:] if r
    ]
    router = Router(BANK, Directory.parse("\n".join(with_bic) + "\n", "bic.csv"), CAL)
    by_bic = BatchItem(1, replace(transfer(), payee_bank_code=""), bic="ICBKCNBJ")
    routed = _route_item(router, by_bic, FRIDAY_10)
    assert (routed.state, routed.engine, routed.payee_bank_code) == (
        State.QUEUED,
        Engine.BEPS,
        ICBC,
    )
    unknown = _route_item(router, replace(by_bic, bic="BKCHCNBJ"), FRIDAY_10)
    assert (unknown.state, unknown.reason_code) == (State.REJECTED, "4001")
    assert _route_item(ROUTER, by_bic, FRIDAY_10).reason_code == "4001"  # no bic column
