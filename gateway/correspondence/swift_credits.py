"""Incoming SWIFT credits: screened, then journaled (docs/foreign-currency.md §4-§5).

A verified incoming ``swift.008`` is a foreign-currency credit to one of our
customers.  It is always screened, whatever ``screening.scope`` says, with
the fields of docs/foreign-currency.md §5 read from the credit's side:

=====================  =====================================================
screened as            taken from the swift.008
=====================  =====================================================
payer name             ``Dbtr/Nm`` (the ordering customer abroad)
payee name             ``Cdtr/Nm`` (our customer)
payee BIC and the      ``DbtrAgt`` (the ordering customer's bank), and also
country inside it      ``InstgAgt`` (the sending bank) when its first 8
                       characters differ
payee country          ``Dbtr/PstlAdr/Ctry``, when given
remittance text        ``RmtInf/Ustrd``
=====================  =====================================================

No hit: the credit is journaled CHECKING and goes to the account check
(:mod:`.credits`).  A hit: it is journaled REVIEW with the hits and the
list versions; nothing is posted and nobody is notified until the review
releases it (or rejects it to suspense).  With no lists configured nothing
can clear it, so it waits in REVIEW too, marked unscreened.  The decision,
hit or not, is journaled with the credit as JSON.

A re-delivered swift.008 is the same credit: (sender BIC, TxId — else the
UETR) is unique in the journal, so it is journaled once and counted once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import structlog

from gateway.clearing.swift import IncomingSwiftCredit
from gateway.clock import SHANGHAI, Clock
from gateway.correspondence.inbound import AccountIndex
from gateway.correspondence.outbox import dated_ref
from gateway.desk import InboundClearing
from gateway.journal.records import CreditState, NewIncomingCredit
from gateway.journal.store import Store
from gateway.model import Engine
from gateway.ops import metrics
from gateway.ops.logs import mask_account
from gateway.screening.lists import ScreeningLists
from gateway.screening.screen import Decision, Fields, Hit, decision_json, screen

log = structlog.get_logger("gateway.correspondence")

UNSCREENED = "no screening lists configured"
"""Why a credit waits in REVIEW without hits (journaled in its screening JSON)."""


def credit_fields(c: IncomingSwiftCredit) -> list[Fields]:
    """The screened fields of one credit (module docstring): one set, plus the sending
    bank's BIC on its own when it is another bank than the debtor's agent."""
    fields = [
        Fields(
            payer_name=c.debtor_name,
            payee_name=c.creditor_name,
            payee_bic=c.debtor_agent,
            payee_country=c.debtor_country or "",
            purpose=c.purpose or "",
        )
    ]
    if c.sending_bic[:8] != c.debtor_agent[:8]:
        fields.append(Fields(payee_bic=c.sending_bic))
    return fields


def screen_credit(lists: ScreeningLists | None, c: IncomingSwiftCredit) -> tuple[bool, str]:
    """(held for review, the decision as journaled JSON)."""
    if lists is None:
        return True, json.dumps({"versions": [], "hits": [], "unscreened": UNSCREENED})
    decisions = [screen(lists, f) for f in credit_fields(c)]
    hits: dict[tuple[str, str, str, str], Hit] = {}
    for d in decisions:
        for h in d.hits:
            hits.setdefault((h.list, h.entry_id, h.field.value, h.listed), h)
    return bool(hits), decision_json(Decision(tuple(hits.values()), decisions[0].versions))


class SwiftCreditIntake:
    """Screens and journals verified incoming swift.008 credits (module docstring)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        accounts: AccountIndex,
        lists: Callable[[], ScreeningLists | None],
        wake_credits: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._accounts = accounts
        self._lists = lists
        self._wake_credits = wake_credits

    async def handle(self, msg: InboundClearing, now: datetime) -> None:
        c = msg.swift_credit
        if c is None or msg.minor_units is None:
            raise ValueError("not an incoming swift.008")
        lists = self._lists()
        held, decision = screen_credit(lists, c)
        gw_ref = await dated_ref(self._store, "GI", "credit", now)
        credit = await self._store.receive_credit(
            NewIncomingCredit(
                gw_ref=gw_ref,
                engine=Engine.SWIFT,
                msg_id=msg.msg_id,
                tx_id=c.tx_id or c.uetr,
                end_to_end_id=c.end_to_end_id,
                sender=msg.sndr,
                work_date=c.settle_date or msg.work_date or now.astimezone(SHANGHAI).date(),
                debtor_acct=c.debtor_acct or "",
                debtor_name=c.debtor_name,
                debtor_bank=c.debtor_agent,
                creditor_acct=c.creditor_acct,
                creditor_name=c.creditor_name,
                amount=c.amount,
                purpose=c.purpose,
                received_at=now,
                corp_id=self._accounts.corp_for(c.creditor_acct),
                ccy=c.ccy,
                minor_units=msg.minor_units,
                screening=decision,
                state=CreditState.REVIEW if held else CreditState.CHECKING,
            )
        )
        if credit.gw_ref != gw_ref:  # a re-delivery: journaled and counted the first time
            log.info("swift_credit_redelivered", gw_ref=credit.gw_ref, msg_id=msg.msg_id)
            return
        metrics.INCOMING_CREDITS.labels("received").inc()
        if lists is not None:  # unscreened is no decision: it is logged below instead
            metrics.SCREENING_TOTAL.labels("hit" if held else "clear", "inbound").inc()
        log.info(
            "credit_received",
            gw_ref=gw_ref,
            engine=Engine.SWIFT.value,
            acct=mask_account(c.creditor_acct),
            amount=str(c.amount),
            ccy=c.ccy,
            enrolled=credit.corp_id is not None,
            uetr=c.uetr,
            screening="review" if held else "clear",
        )
        if held:
            found = json.loads(decision)
            log.warning(
                "credit_review",
                gw_ref=gw_ref,
                hits=len(found["hits"]),
                unscreened=found.get("unscreened"),
            )
        else:
            self._wake_credits()
