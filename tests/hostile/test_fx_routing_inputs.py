"""Hostile input to foreign-currency routing: whatever the settlement-path files or a
payment hold, the answer is a refusal naming the problem, never another exception
(docs/foreign-currency.md §2-§3)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.builders import build_router
from gateway.clock import SHANGHAI
from gateway.config import load_config
from gateway.errors import GatewayError
from gateway.routing.currencies import CurrencyTable
from gateway.routing.fx import FxRoute
from gateway.routing.settlement_paths import Correspondents, RmaDirectory, SettlementFileError

FAST = settings(max_examples=300, deadline=None, database=None)
ROUTER = build_router(load_config())
CURRENCIES = CurrencyTable()
CELL = st.text(alphabet=st.sampled_from('USDEURJPY09:,"\n\r\t\x00 \ufeffABCXZ-/'), max_size=20)


@FAST
@given(st.lists(st.lists(CELL, min_size=0, max_size=6), max_size=6))
def test_any_correspondents_file_parses_or_is_refused(rows: list[list[str]]) -> None:
    text = "ccy,bic,account,cutoff\n" + "\n".join(",".join(row) for row in rows)
    try:
        table = Correspondents.parse(text, "c.csv", CURRENCIES)
    except SettlementFileError as exc:
        refusal = str(exc)
    else:
        assert all(row.ccy in CURRENCIES and row.ccy != "CNY" for row in table)
        return
    assert refusal.startswith("c.csv")


@FAST
@given(st.text(max_size=200))
def test_any_rma_text_parses_or_is_refused(text: str) -> None:
    try:
        banks = RmaDirectory.parse(text, "r.csv")
    except SettlementFileError as exc:
        refusal = str(exc)
    else:
        assert all(bank.name for bank in banks)
        return
    assert refusal.startswith("r.csv")


@FAST
@given(
    ccy=st.sampled_from(["USD", "EUR", "JPY", "HKD", "GBP", "XAU", "usd", "", "US$"]),
    amount=st.decimals(allow_nan=True, allow_infinity=True, places=None),
    code=st.none() | st.text(alphabet="0123456789x", max_size=13),
    bic=st.none() | st.text(alphabet="ABCDEMOCNBJUS3LIONFRP0x", max_size=12),
    hour=st.integers(0, 23),
)
def test_any_payment_is_routed_or_refused(
    ccy: str, amount: Decimal, code: str | None, bic: str | None, hour: int
) -> None:
    now = datetime(2026, 11, 27, hour, tzinfo=SHANGHAI)
    try:
        route = ROUTER.route_fx(ccy, amount, code, bic, now)
    except GatewayError:
        return
    assert isinstance(route, FxRoute) and route.ccy == ccy
