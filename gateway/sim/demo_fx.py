"""The demo's foreign-currency tour (docs/foreign-currency.md §1–§4), as a treasury sees it.

The demo's overlay switches ``fx.enabled`` on, and the SWIFT simulator runs
beside the clearing simulator as the bank's SWIFT interface.  A corporate then
pays in three currencies:

- USD to Citibank New York (``CITIUS33``), a bank we have no relation with
  (not in ``routing/rma.csv``): the message goes to our USD correspondent
  (``routing/correspondents.csv``), which the SWIFT interface sees as its
  ``Rcvr`` (§3);
- EUR to Banque du Lion Paris (``LIONFRPPXXX``), a bank in ``rma.csv``: the
  message goes straight to it, although the EUR correspondent is another bank;
- JPY 1500.50, refused 4004: the yen has no minor units (§1).

The first two are followed through STATUS to SETTLED (the simulator's
swift.002 ACSC), with the UETR the gateway gave them.  The path each one took
is read from the SWIFT simulator's record — what crossed the wire — never from
the gateway's journal.

Why 10:00 works on any date: the demo's business clock starts at 10:00 on a
working day of the CNY calendar, the SWIFT window is 09:00 to the currency's
cutoff on those same days (§2), and the earliest shipped cutoff is 14:00 (JPY).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Final

from gateway.clock import BusinessClock
from gateway.sim.erp import ErpClient, Payment, Reply
from gateway.sim.swift import SwiftSimulator

ClientFor = Callable[[str, str], Awaitable[ErpClient]]

FINAL: Final = ("SETTLED", "REJECTED")
WAIT: Final = 30.0
"""Seconds the tour waits for a SWIFT payment's final state (the simulator answers at once)."""


def _say(msg: str) -> None:
    print(msg, flush=True)


@dataclass(frozen=True)
class FxCase:
    """One foreign-currency PAY of the tour and what the demo expects of it."""

    tag: str
    payment: Payment
    ret_code: str
    path: str  # how the payment should travel, in words, for the printed line
    rcvr: str | None = None  # the BIC the SWIFT interface should see as Rcvr


def _pay(ccy: str, amount: str, bic: str, country: str, name: str) -> Payment:
    return Payment(
        payer_acct="6222000000000001",  # C100000001's enrolled account
        payer_name="示范贸易有限公司",
        payee_acct="000123456789",
        payee_name=name,
        payee_bank_code="",  # a BIC names the payee's bank (docs/foreign-currency.md §1)
        amount=Decimal(amount),
        ccy=ccy,
        purpose="invoice 2026-118",
        payee_bic=bic,
        payee_country=country,
    )


CASES: Final = (
    FxCase(
        "USD",
        _pay("USD", "12500.00", "CITIUS33", "US", "Hudson Valley Tools Inc"),
        "0000",
        "no relation with CITIUS33: through our USD correspondent HUDSUS33",
        "HUDSUS33",
    ),
    FxCase(
        "EUR",
        _pay("EUR", "8400.50", "LIONFRPPXXX", "FR", "Atelier Marais SARL"),
        "0000",
        "LIONFRPP is in rma.csv: straight to it, not via the EUR correspondent MAINDEFF",
        "LIONFRPPXXX",
    ),
    FxCase(
        "JPY",
        _pay("JPY", "1500.50", "MIZUJPJT", "JP", "Kanda Precision KK"),
        "4004",
        "JPY 1500 would be accepted",
    ),
)


@dataclass(frozen=True)
class FxDemo:
    """What the foreign-currency tours work with: this one and the screening and review
    tour (:mod:`gateway.sim.demo_review`)."""

    client_for: ClientFor
    clock: BusinessClock
    swift: SwiftSimulator
    run: str  # the demo run's MsgId prefix
    config: Path  # the demo's overlay: ``gatewayctl --config`` talks to this daemon


@dataclass
class FxTour:
    """What the tour leaves for the summary: the accepted SWIFT payments with their final
    STATUS (None if none came in time), the refusals, and the steps that did not work out."""

    sent: list[tuple[Reply, Reply | None]] = field(default_factory=list)
    refused: list[Reply] = field(default_factory=list)
    failures: int = 0


def wire_record(path: Path | None) -> dict[str, dict[str, object]]:
    """The SWIFT simulator's record of each swift.008, by EndToEndId (the corporate's MsgId)."""
    if path is None or not path.exists():
        return {}
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return {str(x["end_to_end_id"]): x for x in lines if "end_to_end_id" in x}


async def final_status(erp: ErpClient, clock: BusinessClock, msg_id: str) -> Reply | None:
    """STATUS until the payment is SETTLED or REJECTED, as an ERP would poll."""
    deadline = time.monotonic() + WAIT
    n = 0
    while time.monotonic() < deadline:
        n += 1
        st = await erp.status(f"{msg_id}-Q{n}", clock.now(), msg_id)
        if st.state in FINAL:
            return st
        await asyncio.sleep(0.3)
    return None


async def fx_tour(demo: FxDemo) -> FxTour:
    """Run the tour; prints one line per ask and answer, then each final state."""
    tour = FxTour()
    clock, run = demo.clock, demo.run
    erp = await demo.client_for("C100000001", "op01")
    _say("")
    _say("demo: foreign currency over the SWIFT link (fx.enabled in the demo's overlay)")
    accepted: list[tuple[FxCase, Reply]] = []
    for case in CASES:
        p = case.payment
        r = await erp.pay(f"{run}-FX{case.tag}", clock.now(), p)
        what = f"PAY {p.ccy} {p.amount} to {p.payee_bic} ({p.payee_country})"
        ok = r.ret_code == case.ret_code
        if r.ret_code == "0000":
            _say(f"  {what} -> 0000 {r.engine} {r.state} GwRef {r.gw_ref}; {case.path}")
            accepted.append((case, r))
            ok = ok and r.engine == "SWIFT"
        else:
            _say(f"  {what} -> {r.ret_code} {r.ret_msg}; {case.path}")
            tour.refused.append(r)
        if not ok:
            tour.failures += 1
            _say(f"    expected {case.ret_code}{' on SWIFT' if case.ret_code == '0000' else ''}")

    for case, r in accepted:
        final = await final_status(erp, clock, r.msg_id)
        tour.sent.append((r, final))
        if final is None:
            tour.failures += 1
            _say(f"  STATUS {r.msg_id} -> no final state within {WAIT:.0f} s")
            continue
        rcvr = wire_record(demo.swift.config.record_path).get(r.msg_id, {}).get("rcvr")
        settled = final.state == "SETTLED"
        detail = "swift.002 ACSC" if settled else f"reason {final.reason}"
        _say(
            f"  STATUS {r.msg_id} -> {final.state} ({detail}) UETR {final.uetr};"
            f" the SWIFT interface saw Rcvr {rcvr}"
        )
        if not settled or final.uetr is None or rcvr != case.rcvr:
            tour.failures += 1
            _say(f"    expected SETTLED with a UETR, sent to {case.rcvr}")
    return tour


__all__ = ["CASES", "FxCase", "FxDemo", "FxTour", "final_status", "fx_tour", "wire_record"]
