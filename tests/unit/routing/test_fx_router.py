"""Foreign-currency routing (docs/foreign-currency.md §2-§3): INTRA for a payee at our
bank, SWIFT on a settlement path for anyone else, the SWIFT window and its hold policy.

Routed against the shipped configuration and data: conf/gateway.toml (bank.bics
DEMOCNBJ and DEMOHKHH), routing/directory.csv, routing/correspondents.csv,
routing/rma.csv and the calendars, on dates picked from the suite's today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.builders import build_router
from gateway.clock import SHANGHAI
from gateway.config import load_config
from gateway.errors import GatewayError, RetCode
from gateway.routing.fx import FxEngine, FxRoute
from gateway.routing.router import Router
from gateway.routing.settlement_paths import SettlementMethod, SettlementPath
from tests.business_dates import suite_today

ROUTER = build_router(load_config())
CAL = ROUTER.calendar
OUR_PARTICIPANT = "103100000019"
ACCOUNT_USD = "36070012345001"


def router(**overrides: Any) -> Router:
    return build_router(load_config(overrides=overrides))


def working_day() -> date:
    """A working day on or after the suite's today, followed by a working day or not."""
    day = suite_today()
    while not CAL.is_working_day(day):
        day += timedelta(days=1)
    return day


def weekend_day() -> date:
    """A Saturday or Sunday on or after today that is not a make-up working day."""
    day = suite_today()
    while day.weekday() < 5 or CAL.is_working_day(day):
        day += timedelta(days=1)
    return day


def weekday_holiday() -> date:
    """A Monday-Friday public holiday of the shipped calendar, the next one if any."""
    holidays = sorted(d for d in CAL.holidays if d.weekday() < 5)
    upcoming = [d for d in holidays if d >= suite_today()]
    return upcoming[0] if upcoming else holidays[-1]


def make_up_saturday() -> date:
    return min(d for d in CAL.workdays if d.weekday() == 5)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), SHANGHAI)


def nine(day: date) -> datetime:
    return at(day, 9)


D = working_day()
NOON = at(D, 12)


def fx(
    ccy: str = "USD",
    amount: str = "1000.00",
    code: str | None = None,
    bic: str | None = "ABCDUS33",
    now: datetime = NOON,
    via: Router = ROUTER,
) -> FxRoute:
    return via.route_fx(ccy, Decimal(amount), code, bic, now)


def refusal(**kwargs: Any) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        fx(**kwargs)
    return info.value


# -- the settlement path ------------------------------------------------------------------


def test_through_the_correspondent() -> None:
    route = fx("USD", bic="ABCDUS33XXX")
    assert route == FxRoute(
        engine=FxEngine.SWIFT,
        ccy="USD",
        receiver="HUDSUS33",
        work_date=D,
        release_at=None,
        path=SettlementPath(
            method=SettlementMethod.INDA,
            instructing_agent="DEMOCNBJ",
            instructed_agent="HUDSUS33",
            creditor_agent="ABCDUS33XXX",
            intermediary_agent="HUDSUS33",
            settlement_account=ACCOUNT_USD,
        ),
        payee_bank_code=None,
        payee_bic="ABCDUS33XXX",
    )
    assert not route.held and route.path is not None and not route.path.direct


def test_directly_to_a_bank_in_rma() -> None:
    route = fx("EUR", bic="LIONFRPP")
    assert route.engine is FxEngine.SWIFT and route.receiver == "LIONFRPP"
    assert route.path == SettlementPath(
        method=SettlementMethod.INGA,
        instructing_agent="DEMOCNBJ",
        instructed_agent="LIONFRPP",
        creditor_agent="LIONFRPP",
        intermediary_agent=None,
        settlement_account=None,
    )


@pytest.mark.parametrize("bic", ["LIONFRPPXXX", "LIONFRPP123"])
def test_rma_matches_a_bic11_by_its_first_eight(bic: str) -> None:
    path = fx("EUR", bic=bic).path
    assert path is not None and path.direct
    assert path.instructed_agent == path.creditor_agent == bic


def test_a_similar_bic_is_not_the_rma_bank() -> None:
    path = fx("EUR", bic="LIONFRPA").path
    assert path is not None and path.method is SettlementMethod.INDA
    assert path.instructed_agent == "MAINDEFF"


def test_direct_path_needs_no_correspondent_for_the_currency(tmp_path: Path) -> None:
    lone = tmp_path / "correspondents.csv"
    lone.write_text("ccy,bic,account,cutoff\nEUR,MAINDEFF,1,16:30\n")
    via = router(fx={"currencies": {"CHF": 2}}, routing={"correspondents": str(lone)})
    path = fx("CHF", bic="ALPSCHZZ", via=via).path
    assert path is not None and path.direct


def test_no_settlement_path_is_4001(tmp_path: Path) -> None:
    lone = tmp_path / "correspondents.csv"
    lone.write_text("ccy,bic,account,cutoff\nEUR,MAINDEFF,1,16:30\n")
    via = router(routing={"correspondents": str(lone)})
    error = refusal(ccy="USD", via=via)
    assert error.code is RetCode.BANK_CODE_UNKNOWN
    assert error.detail == "no settlement path for USD"
    # a bank in rma.csv still has its direct path
    assert fx("USD", bic="HUDSUS33", via=via).path is not None


# -- the payee at our bank -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bic", ["DEMOCNBJ", "DEMOCNBJXXX", "DEMOCNBJ027", "DEMOHKHH", "DEMOHKHHXXX"]
)
def test_our_bic_goes_intra_to_the_head_office(bic: str) -> None:
    route = fx("HKD", bic=bic)
    assert route == FxRoute(
        engine=FxEngine.INTRA,
        ccy="HKD",
        receiver=OUR_PARTICIPANT,
        work_date=D,
        payee_bic=bic,
    )


def test_a_bic_of_our_city_but_not_ours_goes_swift() -> None:
    assert fx("USD", bic="DEMOCNSH").engine is FxEngine.SWIFT


@pytest.mark.parametrize(
    ("code", "receiver"),
    [("100027", "100027"), ("103290000018", "100018"), ("103100000027", "100027")],
)
def test_our_codes_go_intra_to_the_branch(code: str, receiver: str) -> None:
    for bic in (None, "DEMOCNBJ"):
        route = fx("JPY", "1500", code=code, bic=bic)
        assert (route.engine, route.receiver, route.work_date) == (FxEngine.INTRA, receiver, D)
        assert route.path is None and route.payee_bank_code == code


def test_our_codes_are_checked_as_for_cny() -> None:
    assert refusal(code="12345", bic=None).code is RetCode.BANK_CODE_MALFORMED
    assert refusal(code="990001", bic=None).code is RetCode.BANK_CODE_MALFORMED
    assert refusal(code="109999", bic=None).code is RetCode.BANK_CODE_UNKNOWN
    assert refusal(code="102902", bic=None).code is RetCode.BANK_NOT_ACTIVE  # suspended
    # our branch whose internal code has no own row, as in Router.route
    assert fx(code="103651000068", bic=None).receiver == "100068"


def test_another_banks_code_leaves_the_choice_to_the_bic() -> None:
    route = fx("USD", code="102100099996", bic="ABCDUS33")
    assert route.engine is FxEngine.SWIFT and route.receiver == "HUDSUS33"
    assert route.payee_bank_code == "102100099996"


def test_another_banks_code_with_our_bic_is_refused() -> None:
    error = refusal(code="102100099996", bic="DEMOCNBJ")
    assert error.code is RetCode.BANK_CODE_UNKNOWN
    assert error.detail == "PayeeBankCode and PayeeBIC name different banks"


def test_a_payee_elsewhere_needs_a_bic() -> None:
    error = refusal(code="102100099996", bic=None)
    assert error.code is RetCode.SCHEMA and "PayeeBIC is required" in (error.detail or "")
    assert refusal(code=None, bic=None).code is RetCode.SCHEMA


@pytest.mark.parametrize("bic", ["ABCDUS3", "abcdus33", "ABCDUS33XX", "ABCD1S33", ""])
def test_a_malformed_bic_is_1003(bic: str) -> None:
    assert refusal(bic=bic).code is RetCode.SCHEMA


# -- currency and amount ---------------------------------------------------------------------


def test_currency_and_minor_units_come_first() -> None:
    assert fx("JPY", "1500", bic="SUMDJPJT").ccy == "JPY"
    for ccy, amount in (("JPY", "1500.00"), ("USD", "1.005"), ("CHF", "1.00")):
        assert refusal(ccy=ccy, amount=amount, bic="not a bic").code is RetCode.AMOUNT_INVALID


def test_cny_is_not_routed_here() -> None:
    with pytest.raises(ValueError, match=r"Router\.route"):
        fx("CNY", "1.00")


def test_a_bank_without_bics_takes_cny_only() -> None:
    via = router(bank={"bics": []})
    assert via.fx is None
    error = refusal(via=via)
    assert error.code is RetCode.AMOUNT_INVALID and error.detail == "currency USD is not accepted"


# -- the SWIFT window --------------------------------------------------------------------------


def next_opening(day: date) -> datetime:
    return nine(CAL.next_working_day(day))


def test_the_window_opens_at_nine() -> None:
    early = fx(now=nine(D) - timedelta(microseconds=1))
    assert (early.release_at, early.work_date) == (nine(D), D)
    opened = fx(now=nine(D))
    assert (opened.held, opened.work_date) == (False, D)


def test_the_window_closes_at_the_currency_cutoff() -> None:
    just_before = at(D, 16) - timedelta(microseconds=1)
    assert not fx("USD", now=just_before).held  # USD cutoff 16:00
    late = fx("USD", now=at(D, 16))
    assert late.release_at == next_opening(D)
    assert late.work_date == CAL.next_working_day(D)


def test_each_currency_has_its_own_cutoff() -> None:
    # shipped cutoffs: JPY 14:00, HKD 15:00, USD 16:00, EUR and GBP 16:30
    assert fx("JPY", "1500", bic="ABCDJPJT", now=at(D, 14)).held
    assert not fx("JPY", "1500", bic="ABCDJPJT", now=at(D, 13, 59)).held
    assert fx("HKD", bic="ABCDHKHH", now=at(D, 15)).held
    assert not fx("EUR", bic="ABCDDEFF", now=at(D, 16, 15)).held
    assert fx("USD", now=at(D, 16, 15)).held
    assert fx("GBP", bic="ABCDGB2L", now=at(D, 16, 30)).held


def test_the_cutoff_applies_on_the_direct_path_too() -> None:
    # LIONFRPP is in rma.csv: direct, but still EUR's 16:30 (the correspondent row's)
    assert not fx("EUR", bic="LIONFRPP", now=at(D, 16, 29)).held
    assert fx("EUR", bic="LIONFRPP", now=at(D, 16, 30)).held


def test_a_currency_without_correspondent_uses_the_default_cutoff() -> None:
    via = router(fx={"currencies": {"CHF": 2}})  # ALPSCHZZ is in rma.csv
    assert not fx("CHF", bic="ALPSCHZZ", now=at(D, 15, 59), via=via).held
    assert fx("CHF", bic="ALPSCHZZ", now=at(D, 16), via=via).held
    later = router(fx={"currencies": {"CHF": 2}, "default_cutoff": "17:30"})
    assert not fx("CHF", bic="ALPSCHZZ", now=at(D, 17, 29), via=later).held
    assert fx("CHF", bic="ALPSCHZZ", now=at(D, 17, 30), via=later).held
    # a correspondent row's cutoff still wins over the default
    assert fx("USD", now=at(D, 16), via=later).held


def test_weekends_and_holidays_hold_until_the_next_working_day() -> None:
    for day in (weekend_day(), weekday_holiday()):
        route = fx(now=at(day, 11))
        assert route.release_at == next_opening(day)
        assert route.work_date == CAL.next_working_day(day)
        assert route.release_at.date() == route.work_date


def test_a_make_up_saturday_is_a_working_day() -> None:
    saturday = make_up_saturday()
    assert not fx(now=at(saturday, 11)).held
    assert fx(now=at(saturday, 11)).work_date == saturday


def test_the_time_zone_is_shanghai() -> None:
    # 02:00 UTC is 10:00 in Shanghai: open; 08:00 UTC is 16:00: closed for USD
    utc = at(D, 10).astimezone(UTC)
    assert utc.hour == 2 and not fx(now=utc).held
    with pytest.raises(ValueError, match="aware"):
        fx(now=datetime.combine(D, time(10)))
    assert fx(now=at(D, 16).astimezone(UTC)).held


def test_reject_policy_answers_4005_outside_the_window() -> None:
    via = router(engines={"swift": {"hold_policy": "reject"}})
    error = refusal(now=at(D, 16), via=via)
    assert error.code is RetCode.ENGINE_CLOSED and error.detail == "SWIFT closed"
    assert refusal(now=at(weekend_day(), 11), via=via).code is RetCode.ENGINE_CLOSED
    assert not fx(now=NOON, via=via).held  # open: routed as usual
    # INTRA keeps its own policy
    assert fx(bic="DEMOCNBJ", now=at(weekend_day(), 11), via=via).held


def test_intra_uses_the_intra_window_and_policy() -> None:
    saturday = weekend_day()
    held = fx(bic="DEMOCNBJ", now=at(saturday, 11))
    assert held.engine is FxEngine.INTRA
    # INTRA is open all day on working days: released at the next one's midnight
    assert held.release_at == datetime.combine(CAL.next_working_day(saturday), time(0), SHANGHAI)
    assert not fx(bic="DEMOCNBJ", now=at(D, 20)).held  # after SWIFT's cutoff, INTRA is open
    via = router(engines={"intra": {"hold_policy": "reject"}})
    assert refusal(bic="DEMOCNBJ", now=at(saturday, 11), via=via).code is RetCode.ENGINE_CLOSED
