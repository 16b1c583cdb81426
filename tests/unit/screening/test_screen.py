"""Screening decisions: which field hit which entry, and the versions (docs/foreign-currency.md §5)."""

from __future__ import annotations

import pytest

from gateway.screening.lists import HEADER, ListFile, ListVersion, ScreeningLists
from gateway.screening.screen import Decision, Field, Fields, Hit, screen
from gateway.screening.settings import ScreeningSettings

SANCTIONS = "\n".join(
    (
        ",".join(HEADER),
        "UN,P1,individual,John Michael Smith,Smith Johnny Michael,GB",
        "UN,E1,entity,Orion Shipping Ltd,Orion Maritime Lines;奥利安航运有限公司,CY",
        "UN,E2,entity,Zentrix GmbH,,DE",
        "UN,B1,bic,ORIOCY2L,KPBKKPPY,",
        "UN,C1,country,KP,IR,",
        "UN,P2,individual,Kuznetsov,,RU",
    )
)
LOCAL = "\n".join((",".join(HEADER), "LOCAL,L1,entity,Huaxin Trading,,CN"))


@pytest.fixture(scope="module")
def lists() -> ScreeningLists:
    return ScreeningLists(
        [ListFile.parse(SANCTIONS, "lists/un.csv"), ListFile.parse(LOCAL, "lists/local.csv")],
        ScreeningSettings(),
    )


def hits(lists: ScreeningLists, **fields: str) -> list[tuple[str, Field, float]]:
    decision = screen(lists, Fields(**fields))
    assert decision == screen(lists, Fields(**fields), exhaustive=True)
    return [(h.entry_id, h.field, round(h.score, 3)) for h in decision.hits]


def test_no_hit_clears_the_payment_and_still_records_every_version(lists: ScreeningLists) -> None:
    decision = screen(lists, Fields(payer_name="Demo Trading Co", payee_name="Jane Doe"))
    assert decision == Decision((), lists.versions)
    assert not decision.hit
    assert [v.list for v in decision.versions] == ["un", "local"]
    assert all(isinstance(v, ListVersion) and len(v.version) == 64 for v in decision.versions)


def test_a_name_hit_names_list_entry_field_and_score(lists: ScreeningLists) -> None:
    decision = screen(lists, Fields(payee_name="SMITH, John"))
    assert decision.hit
    assert decision.hits == (Hit("UN", "P1", Field.PAYEE_NAME, 1.0, "John Michael Smith"),)
    assert decision.versions == lists.versions


def test_the_payer_name_is_screened_too(lists: ScreeningLists) -> None:
    assert hits(lists, payer_name="Orion Shipping Limited") == [("E1", Field.PAYER_NAME, 1.0)]


def test_aliases_hit_and_one_entry_hits_once_per_field(lists: ScreeningLists) -> None:
    assert hits(lists, payee_name="Orion Maritime Line") == [("E1", Field.PAYEE_NAME, 0.971)]
    assert hits(lists, payee_name="奥利安航运") == [("E1", Field.PAYEE_NAME, 1.0)]
    # the name and an alias both match: one hit, the better score
    assert hits(lists, payee_name="Smith Johnny Michael") == [("P1", Field.PAYEE_NAME, 1.0)]


def test_fuzzy_and_lone_surname(lists: ScreeningLists) -> None:
    assert hits(lists, payee_name="Jon Michael Smith") == [("P1", Field.PAYEE_NAME, 0.968)]
    assert hits(lists, payee_name="Smith") == []
    assert hits(lists, payee_name="Kuznetsov") == [("P2", Field.PAYEE_NAME, 1.0)]
    assert hits(lists, payee_name="Ivan Kuznetsov") == []  # the listed name is a lone surname


def test_bic_rows_match_on_the_first_eight_characters(lists: ScreeningLists) -> None:
    assert hits(lists, payee_bic="ORIOCY2LXXX") == [("B1", Field.PAYEE_BIC, 1.0)]
    assert hits(lists, payee_bic="ORIOCY2L123") == [("B1", Field.PAYEE_BIC, 1.0)]
    assert hits(lists, payee_bic="kpbkkppy") == [
        ("B1", Field.PAYEE_BIC, 1.0),
        ("C1", Field.PAYEE_BIC_COUNTRY, 1.0),  # and the BIC's country, characters 5-6
    ]
    assert hits(lists, payee_bic="ORIOCY2M") == []
    assert hits(lists, payee_bic="ORIO") == []


def test_country_rows_match_the_payee_country_and_the_bic_country(lists: ScreeningLists) -> None:
    assert hits(lists, payee_country="KP") == [("C1", Field.PAYEE_COUNTRY, 1.0)]
    assert hits(lists, payee_country="ir") == [("C1", Field.PAYEE_COUNTRY, 1.0)]  # an alias code
    assert hits(lists, payee_bic="BANKIRTH") == [("C1", Field.PAYEE_BIC_COUNTRY, 1.0)]
    assert hits(lists, payee_country="DE") == []  # the country column of a name row is not a rule


def test_remittance_text_holds_a_listed_name_as_whole_words(lists: ScreeningLists) -> None:
    assert hits(lists, purpose="Freight for ORION SHIPPING, inv. 2026-118") == [
        ("E1", Field.PURPOSE, 1.0)
    ]
    assert hits(lists, purpose="goods via huaxin trading co ltd") == [("L1", Field.PURPOSE, 1.0)]
    assert hits(lists, purpose="per John Michael Smith's order") == [("P1", Field.PURPOSE, 1.0)]


def test_remittance_text_needs_whole_words_and_two_tokens(lists: ScreeningLists) -> None:
    assert hits(lists, purpose="Orion Shippingline charter") == []  # not a whole word
    assert hits(lists, purpose="Shipping Orion goods") == []  # words in the listed order
    assert hits(lists, purpose="Kuznetsov consulting fee") == []  # a one-token name is not searched
    assert hits(lists, purpose="Zentrix GmbH spare parts") == []  # one token once normalised


def test_several_fields_several_hits_sorted(lists: ScreeningLists) -> None:
    got = hits(
        lists,
        payer_name="Huaxin Trading Co",
        payee_name="Orion Shipping",
        payee_bic="ORIOCY2L",
        payee_country="KP",
        purpose="for John Michael Smith",
    )
    # by score, then field, list and entry: the same order every time
    assert got == [
        ("B1", Field.PAYEE_BIC, 1.0),
        ("C1", Field.PAYEE_COUNTRY, 1.0),
        ("E1", Field.PAYEE_NAME, 1.0),
        ("L1", Field.PAYER_NAME, 1.0),
        ("P1", Field.PURPOSE, 1.0),
    ]


def test_a_higher_threshold_is_stricter() -> None:
    lists = ScreeningLists([ListFile.parse(SANCTIONS, "un.csv")], ScreeningSettings(threshold=0.97))
    assert screen(lists, Fields(payee_name="Jon Michael Smith")).hits == ()
    assert screen(lists, Fields(payee_name="Smith John")).hit  # the subset rule scores 1
