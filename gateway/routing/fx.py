"""Foreign-currency routing data and the SWIFT window (docs/foreign-currency.md §2-§3).

``FxSettings`` is everything the router needs beyond the CNY rules: our BICs
(``bank.bics``), the currency table, the two settlement-path files, the
default cutoff and the SWIFT hold policy.  It is immutable and travels
inside the ``Router``, so a reload swaps directory, calendars and these
files as one unit (docs/routing-rules.md §2).  ``Router.route_fx`` applies
the rules; this module holds the data, the answer (``FxRoute``) and the
window arithmetic.

The engine is a string enum local to this module (``FxEngine``): SWIFT is
not a ``gateway.model.Engine`` yet, and INTRA here has the same value as
``Engine.INTRA`` so an integrator can map one onto the other by value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Final

from gateway.clock import SHANGHAI
from gateway.routing.calendar import WorkCalendar
from gateway.routing.currencies import CurrencyTable
from gateway.routing.directory import DEFAULT_MAX_DROP
from gateway.routing.settlement_paths import (
    SWIFT_OPENING,
    Correspondents,
    RmaDirectory,
    SettlementPath,
    bic8,
    is_bic,
)
from gateway.routing.windows import Placement, local

DEFAULT_CUTOFF: Final = time(16, 0)
"""``fx.default_cutoff``: the end of the SWIFT window for a currency without a correspondent."""

HOLD: Final = "hold"
REJECT: Final = "reject"


class FxEngine(StrEnum):
    """Who carries a foreign-currency payment (docs/foreign-currency.md §2)."""

    INTRA = "INTRA"  # the payee is at our bank: intra.111 in that currency
    SWIFT = "SWIFT"  # anyone else: pacs.008 over the SWIFT link


@dataclass(frozen=True, slots=True)
class FxRoute:
    """Engine, receiver, settlement path, work date and release time of one FX payment.

    ``receiver`` is what the engine addresses: for INTRA the branch's 6-digit
    internal code, or our 12-digit participant code (the head office) when
    only our BIC named the payee; for SWIFT the ``InstdAgt`` BIC.
    ``release_at`` is set when the engine is closed and the payment is HELD.
    """

    engine: FxEngine
    ccy: str
    receiver: str
    work_date: date
    release_at: datetime | None = None
    path: SettlementPath | None = None  # SWIFT only
    payee_bank_code: str | None = None
    payee_bic: str | None = None

    @property
    def held(self) -> bool:
        return self.release_at is not None


@dataclass(frozen=True, slots=True)
class FxSettings:
    """One consistent version of the foreign-currency routing data."""

    bics: tuple[str, ...]  # bank.bics; the first is ours on the wire (InstgAgt, DbtrAgt)
    currencies: CurrencyTable
    correspondents: Correspondents
    rma: RmaDirectory
    default_cutoff: time = DEFAULT_CUTOFF
    hold_policy: str = HOLD  # engines.swift.hold_policy

    def __post_init__(self) -> None:
        if not self.bics:
            raise ValueError("bank.bics must name at least our own BIC")
        for bic in self.bics:
            if not is_bic(bic):
                raise ValueError(f"bank.bics: {bic!r} is not a BIC (8 or 11 characters)")
        if len({bic8(bic) for bic in self.bics}) != len(self.bics):
            raise ValueError("bank.bics: a BIC is listed twice (the first 8 characters repeat)")
        if self.hold_policy not in (HOLD, REJECT):
            raise ValueError("engines.swift.hold_policy must be hold or reject")
        if self.default_cutoff <= SWIFT_OPENING:
            raise ValueError("fx.default_cutoff must be after the 09:00 opening")
        for row in self.correspondents:
            if row.ccy not in self.currencies:
                raise ValueError(f"{self.correspondents.source}: {row.ccy} is not in fx.currencies")

    @property
    def our_bic(self) -> str:
        return self.bics[0]

    def is_ours(self, bic: str) -> bool:
        """A BIC whose first 8 characters are among ``bank.bics`` (BIC8 and BIC11 alike)."""
        return bic8(bic) in {bic8(own) for own in self.bics}

    def cutoff(self, ccy: str) -> time:
        """The currency's SWIFT cutoff: its correspondent row's, else ``fx.default_cutoff``."""
        row = self.correspondents.get(ccy)
        return row.cutoff if row is not None else self.default_cutoff

    @property
    def holds(self) -> bool:
        return self.hold_policy == HOLD

    def check_replacement(self, new: FxSettings, *, max_drop: float = DEFAULT_MAX_DROP) -> None:
        """The shrink guard of docs/routing-rules.md §2 for both files."""
        self.correspondents.check_replacement(new.correspondents, max_drop=max_drop)
        self.rma.check_replacement(new.rma, max_drop=max_drop)


def swift_placement(now: datetime, cutoff: time, cal: WorkCalendar) -> Placement:
    """Where ``now`` falls in the SWIFT window: working days, 09:00 ≤ t < ``cutoff``.

    Open: the work date is today.  Closed: the release time is the next
    09:00 of a working day (today's, before the opening) and the work date is
    that day (docs/foreign-currency.md §2: ``IntrBkSttlmDt`` is the work date).
    """
    at = local(now)
    day = at.date()
    if cal.is_working_day(day):
        if SWIFT_OPENING <= at.time() < cutoff:
            return Placement(True, None, day)
        opening_day = day if at.time() < SWIFT_OPENING else cal.next_working_day(day)
    else:
        opening_day = cal.next_working_day(day)
    release = datetime.combine(opening_day, SWIFT_OPENING, SHANGHAI)
    return Placement(False, release, opening_day)
