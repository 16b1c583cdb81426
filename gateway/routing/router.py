"""Choosing the engine, the receiver, the work date and the release time (docs/routing-rules.md
§1-§4).

Pure: ``route(transfer, now)`` reads only its arguments and the immutable
directory, calendar and schedules it was built with.  A directory or calendar
reload builds a new ``Router`` (``with_directory`` / ``with_calendar``) and
swaps the reference, so each message is routed against one whole version
(docs/routing-rules.md §2).

Refusals are ``GatewayError`` with the docs/protocol.md §8 codes, checked in this
order (first failure answers):

1. 4002 — ``PayeeBankCode`` is not exactly 6 or 12 ASCII digits, or is a
   6-digit code whose 2-digit bank type is not ours: internal codes exist
   only for our own branches (docs/routing-rules.md §1: "anything else is malformed").
2. 4001 — the code is not in the directory; also one of our own 12-digit
   codes whose row has no ``internal`` column (it cannot be addressed on the
   internal network, and the directory is the only authority).
3. 4003 — the code is known but not usable on the **calendar date of now**
   in Asia/Shanghai (docs/routing-rules.md §2 says "not usable today"; the work date of a
   BEPS message after 16:00 is tomorrow, but the directory speaks of today).
4. 4005 — the engine is closed and its hold policy is ``reject``
   (docs/routing-rules.md §4); also when no opening can be found within
   ``windows.SEARCH_DAYS`` (a message we cannot schedule is not journaled).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType

from gateway.errors import GatewayError, RetCode
from gateway.model import BizType, Engine, Priority, Route, Transfer
from gateway.routing.calendar import WorkCalendar
from gateway.routing.currencies import HOME_CURRENCY
from gateway.routing.directory import (
    CODE_LENGTH,
    DEFAULT_MAX_DROP,
    BankEntry,
    Directory,
    is_digits,
)
from gateway.routing.fx import FxEngine, FxRoute, FxSettings, swift_placement
from gateway.routing.settlement_paths import SettlementPath, choose_path, is_bic
from gateway.routing.windows import (
    DEFAULT_SCHEDULES,
    EngineSchedule,
    Placement,
    ScheduleError,
    local,
)

FIELD = "PayeeBankCode"
"""The element named in refusal details (docs/protocol.md §4, §8)."""
BIC_FIELD = "PayeeBIC"

HOLD = "hold"
REJECT = "reject"
HOLD_POLICIES = frozenset({HOLD, REJECT})


@dataclass(frozen=True, slots=True)
class BankIdentity:
    """Our own bank, from configuration ``bank.*`` (docs/routing-rules.md §3)."""

    class_code: str  # 3-digit bank class (行别), e.g. "103"
    participant: str  # our 12-digit direct-participant code
    internal_type: str  # 2-digit internal bank type, the XX of our 6-digit codes

    def __post_init__(self) -> None:
        if not is_digits(self.class_code, 3):
            raise ValueError("bank.class_code must be 3 digits")
        if not is_digits(self.participant, 12):
            raise ValueError("bank.participant must be 12 digits")
        if not self.participant.startswith(self.class_code):
            raise ValueError("bank.participant must start with bank.class_code")
        if not is_digits(self.internal_type, 2):
            raise ValueError("bank.internal_type must be 2 digits")


def _all_hold() -> Mapping[Engine, str]:
    return MappingProxyType(dict.fromkeys(Engine, HOLD))


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Amount limits and closed-engine policy (docs/routing-rules.md §3, §4)."""

    credit_limit: Decimal = Decimal("50000.00")  # beps.credit_limit, exclusive
    holiday_credit_limit: Decimal | None = None  # beps.holiday_credit_limit; None = same
    hold_policy: Mapping[Engine, str] = field(default_factory=_all_hold)

    def __post_init__(self) -> None:
        for name, limit in (
            ("credit_limit", self.credit_limit),
            ("holiday_credit_limit", self.holiday_credit_limit),
        ):
            if limit is not None and not (limit.is_finite() and limit > 0):
                raise ValueError(f"beps.{name} must be a positive amount")
        for engine, policy in self.hold_policy.items():
            if policy not in HOLD_POLICIES:
                raise ValueError(f"{engine.value} hold policy must be hold or reject")

    def limit_on(self, working_day: bool) -> Decimal:
        """The BEPS credit limit for a working or non-working calendar day."""
        if working_day or self.holiday_credit_limit is None:
            return self.credit_limit
        return self.holiday_credit_limit

    def holds(self, engine: Engine) -> bool:
        """True when a message for a closed ``engine`` is HELD (the default) rather than 4005."""
        return self.hold_policy.get(engine, HOLD) == HOLD


class Router:
    """Routes one transfer at a time (each PAYROLL / PAIN001 / MT101 item on its own)."""

    __slots__ = ("bank", "calendar", "directory", "fx", "policy", "schedules")

    def __init__(
        self,
        bank: BankIdentity,
        directory: Directory,
        calendar: WorkCalendar,
        schedules: Mapping[Engine, EngineSchedule] = DEFAULT_SCHEDULES,
        policy: RoutingPolicy = RoutingPolicy(),
        fx: FxSettings | None = None,
    ) -> None:
        # SWIFT's window is the currency's (docs/foreign-currency.md §2), not a schedule.
        missing = [
            engine.value
            for engine in Engine
            if engine is not Engine.SWIFT and engine not in schedules
        ]
        if missing:
            raise ValueError(f"no schedule for {', '.join(missing)}")
        for engine, schedule in schedules.items():
            if schedule.engine is not engine:
                raise ValueError(f"schedule for {engine.value} is labelled {schedule.engine.value}")
        self.bank = bank
        self.directory = directory
        self.calendar = calendar
        self.schedules: Mapping[Engine, EngineSchedule] = MappingProxyType(dict(schedules))
        self.policy = policy
        self.fx = fx  # foreign-currency data (docs/foreign-currency.md §2-§3); None: CNY only

    def with_directory(self, directory: Directory) -> Router:
        """A router identical but for the directory (atomic reload, docs/routing-rules.md §2)."""
        return Router(self.bank, directory, self.calendar, self.schedules, self.policy, self.fx)

    def with_calendar(self, calendar: WorkCalendar) -> Router:
        """A router identical but for the calendar (calendars reload like the directory)."""
        return Router(self.bank, self.directory, calendar, self.schedules, self.policy, self.fx)

    def with_fx(self, fx: FxSettings) -> Router:
        """A router identical but for the settlement-path files (reloaded with the directory)."""
        return Router(self.bank, self.directory, self.calendar, self.schedules, self.policy, fx)

    def check_replacement(self, new: Router, *, max_drop: float = DEFAULT_MAX_DROP) -> None:
        """The shrink guard of docs/routing-rules.md §2 for every file ``new`` would replace:
        the directory, and the correspondents and RMA files when both routers have them.

        Raises ``DirectoryError`` naming the file; the old router stays in force.
        """
        self.directory.check_replacement(new.directory, max_drop=max_drop)
        if self.fx is not None and new.fx is not None:
            self.fx.check_replacement(new.fx, max_drop=max_drop)

    def route(self, transfer: Transfer, now: datetime) -> Route:
        """Engine, receiver, work date and release time for ``transfer`` arriving at ``now``.

        Raises ``GatewayError`` 4001, 4002, 4003 or 4005 (see the module docstring).
        """
        at = local(now)
        today = at.date()
        code = transfer.payee_bank_code
        entry = self._lookup(code)
        ours = self._is_ours(code)
        receiver = self._internal_code(code, entry) if ours else entry.participant
        if not entry.usable_on(today):
            raise GatewayError(RetCode.BANK_NOT_ACTIVE, f"{FIELD} not active on {today}")
        engine = Engine.INTRA if ours else self._interbank_engine(transfer, today)
        placement = self._placement(engine, at)
        return Route(
            engine=engine,
            receiver=receiver,
            payee_bank_code=code,
            work_date=placement.work_date,
            release_at=placement.release_at,
        )

    def route_fx(
        self,
        ccy: str,
        amount: Decimal,
        payee_bank_code: str | None,
        payee_bic: str | None,
        now: datetime,
    ) -> FxRoute:
        """Engine, receiver, settlement path, work date and release time of a payment in a
        currency other than CNY (docs/foreign-currency.md §2-§3).

        Refusals, first failure answers: 4004 unknown currency or too many
        decimals (any currency but CNY when ``bank.bics`` is empty); 1003 a
        malformed ``PayeeBIC``, or none for a payee outside our bank; 4002 /
        4001 / 4003 for a ``PayeeBankCode`` as in :meth:`route` (a 12-digit
        code of another bank is not looked up: the BIC names that payee);
        4001 a code of another bank with one of our BICs, or no settlement
        path; 4005 the engine is closed under ``reject``.
        """
        if ccy == HOME_CURRENCY:
            raise ValueError("CNY payments are routed by Router.route")
        fx = self.fx
        if fx is None:  # no bank.bics: the bank takes CNY only
            raise GatewayError(RetCode.AMOUNT_INVALID, f"currency {ccy} is not accepted")
        fx.currencies.check_amount(ccy, amount)
        if payee_bic is not None and not is_bic(payee_bic):
            raise GatewayError(RetCode.SCHEMA, f"{BIC_FIELD} must be 8 or 11 characters")
        at = local(now)
        ours_by_code = payee_bank_code is not None and self._is_ours_code(payee_bank_code)
        ours_by_bic = payee_bic is not None and fx.is_ours(payee_bic)
        if ours_by_code or ours_by_bic:
            if payee_bank_code is not None and not ours_by_code:
                raise GatewayError(
                    RetCode.BANK_CODE_UNKNOWN, f"{FIELD} and {BIC_FIELD} name different banks"
                )
            return self._fx_intra(ccy, payee_bank_code, payee_bic, at)
        if payee_bic is None:
            raise GatewayError(
                RetCode.SCHEMA, f"{BIC_FIELD} is required for a payee at another bank"
            )
        path = choose_path(ccy, payee_bic, fx.our_bic, fx.correspondents, fx.rma)
        placement = swift_placement(at, fx.cutoff(ccy), self.calendar)
        if not placement.is_open and not fx.holds:
            raise GatewayError(RetCode.ENGINE_CLOSED, f"{FxEngine.SWIFT} closed")
        return FxRoute(
            engine=FxEngine.SWIFT,
            ccy=ccy,
            receiver=path.instructed_agent,
            work_date=placement.work_date,
            release_at=placement.release_at,
            path=path,
            payee_bank_code=payee_bank_code,
            payee_bic=payee_bic,
        )

    def settlement_path(self, ccy: str, payee_bic: str) -> SettlementPath:
        """The path of a SWIFT payment with the routing data in force (docs/foreign-currency.md
        §3), asked again when its swift.008 is built; 4001 when there is none any more."""
        if self.fx is None:
            raise GatewayError(RetCode.AMOUNT_INVALID, f"currency {ccy} is not accepted")
        fx = self.fx
        return choose_path(ccy, payee_bic, fx.our_bic, fx.correspondents, fx.rma)

    # -- the rules ----------------------------------------------------------------

    def _placement(self, engine: Engine, at: datetime) -> Placement:
        """Open, or HELD until the next opening; 4005 under ``reject`` or with no opening."""
        try:
            placement = self.schedules[engine].place(at, self.calendar)
        except ScheduleError:
            raise GatewayError(
                RetCode.ENGINE_CLOSED, f"{engine.value} has no opening in the calendar"
            ) from None
        if not placement.is_open and not self.policy.holds(engine):
            raise GatewayError(RetCode.ENGINE_CLOSED, f"{engine.value} closed")
        return placement

    def _check_format(self, code: str) -> None:
        """docs/routing-rules.md §1: 12 or 6 ASCII digits, a 6-digit code of our type (4002)."""
        if not (is_digits(code, CODE_LENGTH["cnaps"]) or is_digits(code, CODE_LENGTH["internal"])):
            raise GatewayError(RetCode.BANK_CODE_MALFORMED, f"{FIELD} must be 12 or 6 digits")
        if len(code) == CODE_LENGTH["internal"] and not code.startswith(self.bank.internal_type):
            raise GatewayError(
                RetCode.BANK_CODE_MALFORMED, f"{FIELD} 6-digit code of another bank type"
            )

    def _is_ours_code(self, code: str) -> bool:
        """Format first (4002, as in :meth:`route`), then docs/routing-rules.md §3 rule 1."""
        self._check_format(code)
        return self._is_ours(code)

    def _fx_intra(self, ccy: str, code: str | None, bic: str | None, at: datetime) -> FxRoute:
        """docs/foreign-currency.md §2 rule 2: INTRA, to the branch the code names, else to
        the head office (our participant code); the INTRA window and hold policy apply."""
        if code is None:
            receiver = self.bank.participant
        else:
            entry = self._lookup(code)
            receiver = self._internal_code(code, entry)
            if not entry.usable_on(at.date()):
                raise GatewayError(RetCode.BANK_NOT_ACTIVE, f"{FIELD} not active on {at.date()}")
        placement = self._placement(Engine.INTRA, at)
        return FxRoute(
            engine=FxEngine.INTRA,
            ccy=ccy,
            receiver=receiver,
            work_date=placement.work_date,
            release_at=placement.release_at,
            payee_bank_code=code,
            payee_bic=bic,
        )

    def _lookup(self, code: str) -> BankEntry:
        """docs/routing-rules.md §1 format, then the directory (4002, then 4001)."""
        self._check_format(code)
        internal = len(code) == CODE_LENGTH["internal"]
        # A 6-digit code is known from its own ``internal`` row or, failing
        # that, from the 12-digit row of the branch that maps to it.
        entry = self.directory.get(code)
        if entry is None and internal:
            entry = self.directory.by_internal(code)
        if entry is None:
            raise GatewayError(RetCode.BANK_CODE_UNKNOWN, f"{FIELD} not in the directory")
        return entry

    def _is_ours(self, code: str) -> bool:
        """docs/routing-rules.md §3 rule 1: our internal type (6 digits) or our class code (12
        digits)."""
        if len(code) == CODE_LENGTH["internal"]:
            return code.startswith(self.bank.internal_type)
        return code.startswith(self.bank.class_code)

    def _internal_code(self, code: str, entry: BankEntry) -> str:
        """INTRA is addressed to the branch's 6-digit internal code (docs/routing-rules.md §3)."""
        if len(code) == CODE_LENGTH["internal"]:
            return code
        if entry.internal is None:
            raise GatewayError(RetCode.BANK_CODE_UNKNOWN, f"{FIELD} has no internal code")
        return entry.internal

    def _interbank_engine(self, transfer: Transfer, today: date) -> Engine:
        """docs/routing-rules.md §3 rule 2, in its order: DEBIT, URGT, amount below the limit."""
        if transfer.biz_type == BizType.DEBIT:
            return Engine.BEPS
        if transfer.priority == Priority.URGT:
            return Engine.HVPS
        limit = self.policy.limit_on(self.calendar.is_working_day(today))
        return Engine.BEPS if transfer.amount < limit else Engine.HVPS
