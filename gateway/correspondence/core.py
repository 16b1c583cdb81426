"""Adapters from the core banking link (docs/clearing-link.md §5) to what CorpLink needs.

The link raises its own timeout and malformed-answer errors; both mean "no
usable answer in time" here: 6001 for BAL, a later retry for a credit check.
"""

from __future__ import annotations

from gateway.clearing.core import CoreError, CoreLink, CoreTimeout
from gateway.correspondence.corplink import BalanceAsk, CoreUnavailable
from gateway.correspondence.credits import AccountCheck
from gateway.model import Balance


def core_functions(link: CoreLink) -> tuple[BalanceAsk, AccountCheck]:
    """``(balance, check_account)`` over ``link``, raising :class:`CoreUnavailable`."""

    async def balance(acct: str) -> Balance | None:
        try:
            ans = await link.balance(acct)
        except CoreTimeout:
            raise CoreUnavailable("core banking system did not answer in time") from None
        except CoreError:
            raise CoreUnavailable("core banking system answered unreadably") from None
        if ans.result != "OK" or ans.balance is None:
            return None
        return Balance(
            acct=acct,
            ccy=ans.ccy or "CNY",
            balance=ans.balance,
            available=ans.available if ans.available is not None else ans.balance,
        )

    async def check_account(acct: str, name: str) -> str:
        try:
            return await link.check_account(acct, name)
        except (CoreTimeout, CoreError):
            raise CoreUnavailable("core banking system did not answer") from None

    return balance, check_account
