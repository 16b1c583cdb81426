"""What of an incoming swift.008 is screened, and how the decision is journaled
(docs/foreign-currency.md §5; gateway/correspondence/swift_credits.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from gateway.clearing.swift import IncomingSwiftCredit
from gateway.correspondence.swift_credits import UNSCREENED, credit_fields, screen_credit
from gateway.screening.lists import HEADER, ListFile, ScreeningLists
from gateway.screening.screen import Fields
from gateway.screening.settings import ScreeningSettings

LIST = "\n".join(
    (
        ",".join(HEADER),
        "UN,P1,individual,Ivan Petrovich Sidorenko,Ivan Sidorenko,RU",
        "UN,E1,entity,Crimson Harbor Shipping Ltd,,SY",
        "UN,B1,bic,BADBKPPY,,KP",
        "UN,C1,country,KP,,",
    )
)

CLEAN = IncomingSwiftCredit(
    msg_id="CITIUS33202611270000000001",
    uetr="8a562c67-ca16-48ba-b074-65581be6f011",
    end_to_end_id="E1",
    tx_id="T1",
    amount=Decimal("250.50"),
    ccy="USD",
    settle_date=None,
    sending_bic="CITIUS33XXX",
    instructed_agent="DEMOCNBJXXX",
    debtor_agent="CITIUS33XXX",
    creditor_agent="DEMOCNBJXXX",
    debtor_name="Overseas Buyer Inc",
    debtor_acct="000123456789",
    debtor_country="US",
    creditor_name="Demo Manufacturing Ltd.",
    creditor_acct="6222000000000101",
    creditor_country="CN",
    purpose="invoice 7",
)


@pytest.fixture(scope="module")
def lists() -> ScreeningLists:
    return ScreeningLists([ListFile.parse(LIST, "lists/un.csv")], ScreeningSettings())


def hits(lists: ScreeningLists, credit: IncomingSwiftCredit) -> list[tuple[str, str]]:
    held, decision = screen_credit(lists, credit)
    found = json.loads(decision)
    assert held == bool(found["hits"])
    assert [v["list"] for v in found["versions"]] == ["un"]  # recorded, hit or not
    return [(h["entry_id"], h["field"]) for h in found["hits"]]


def test_the_fields_are_read_from_the_credits_side() -> None:
    assert credit_fields(CLEAN) == [
        Fields(
            payer_name="Overseas Buyer Inc",
            payee_name="Demo Manufacturing Ltd.",
            payee_bic="CITIUS33XXX",
            payee_country="US",
            purpose="invoice 7",
        )
    ]


def test_a_clean_credit_is_cleared_with_the_versions(lists: ScreeningLists) -> None:
    assert hits(lists, CLEAN) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"debtor_name": "Ivan Sidorenko"}, [("P1", "payer_name")]),
        ({"creditor_name": "Crimson Harbor Shipping"}, [("E1", "payee_name")]),
        ({"purpose": "freight for crimson harbor shipping"}, [("E1", "purpose")]),
        ({"debtor_country": "KP"}, [("C1", "payee_country")]),
        ({"debtor_agent": "BADBKPPYXXX", "sending_bic": "BADBKPPYXXX"},
         [("B1", "payee_bic"), ("C1", "payee_bic_country")]),
        # a clean ordering bank, but the message came through a listed one
        ({"sending_bic": "BADBKPPY"}, [("B1", "payee_bic"), ("C1", "payee_bic_country")]),
    ],
)  # fmt: skip
def test_each_field_can_hold_a_credit(
    lists: ScreeningLists, change: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    assert sorted(hits(lists, replace(CLEAN, **change))) == sorted(expected)


def test_without_lists_a_credit_waits_unscreened() -> None:
    held, decision = screen_credit(None, CLEAN)
    assert held
    assert json.loads(decision) == {"versions": [], "hits": [], "unscreened": UNSCREENED}
