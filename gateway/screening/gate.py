"""Screening on the request path: which payments are screened, and what is journaled.

docs/foreign-currency.md §5.  Every routed outbound payment whose currency is
not CNY is screened, and every payment when ``screening.scope = "all"``,
before the answer: a hit sends it to REVIEW (journaled, answered 0000 with
State REVIEW, nothing sent), no hit lets it go on.  Either way the decision,
with the version of every list that made it, is journaled with the item.

A payment that must be screened while no list is loaded is refused
(``NOT_PERMITTED``, 2006: the bank does not offer the service without its
lists) rather than sent unscreened.  The same gate runs in the core and in
every front (docs/architecture.md §1), each over its own copy of the lists.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.errors import GatewayError, RetCode
from gateway.model import Transfer
from gateway.ops import metrics
from gateway.screening.lists import ScreeningLists
from gateway.screening.screen import Decision, Fields, screen
from gateway.screening.settings import ScreeningSettings

NO_LISTS = "no screening list is loaded (screening.lists): the payment cannot be screened"
"""The refusal's detail when a payment must be screened and nothing can screen it."""


def must_screen(foreign: bool, settings: ScreeningSettings) -> bool:
    """docs/foreign-currency.md §5 "What is screened": Ccy ≠ CNY (``foreign``, the
    router's judgement of the currency), or every payment with scope ``all``."""
    return foreign or settings.scope == "all"


def fields_of(transfer: Transfer) -> Fields:
    """The screened fields of one transfer (the BIC's country is screen()'s own)."""
    return Fields(
        payer_name=transfer.payer_name,
        payee_name=transfer.payee_name,
        payee_bic=transfer.payee_bic or "",
        payee_country=transfer.payee_country or "",
        purpose=transfer.purpose or "",
    )


class Screener:
    """The gate of one process: its settings and the lists it has in force.

    ``current`` gives the lists in force now (None while none is loaded), so a
    reload that swaps them is seen by the next payment.
    """

    def __init__(
        self,
        settings: Callable[[], ScreeningSettings],
        current: Callable[[], ScreeningLists | None],
    ) -> None:
        self._settings = settings
        self._current = current

    @classmethod
    def unloaded(cls) -> Screener:
        """No lists, default scope: foreign currency is refused, CNY goes on unscreened."""
        settings = ScreeningSettings()
        return cls(lambda: settings, lambda: None)

    def check(self, transfer: Transfer, *, foreign: bool) -> Decision | None:
        """The decision for ``transfer`` (``foreign``: its Ccy is not CNY); None when it
        is not screened.

        Raises ``GatewayError`` (2006) when it must be screened and no list is loaded.
        """
        if not must_screen(foreign, self._settings()):
            return None
        lists = self._current()
        if lists is None:
            raise GatewayError(RetCode.NOT_PERMITTED, NO_LISTS)
        decision = screen(lists, fields_of(transfer))
        metrics.SCREENING_TOTAL.labels("hit" if decision.hit else "clear", "outbound").inc()
        return decision
