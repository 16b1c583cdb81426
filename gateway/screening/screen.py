"""One screening decision: a payment's fields against one version of the lists.

docs/foreign-currency.md §5.  The fields are the payer's and the payee's
names, the payee's BIC and country, the country of that BIC (its characters
5–6) and the remittance text (``Purpose``).  A hit is a list entry and the
field it matched, with its score; the decision carries the hits and the
version of every list file, hit or not, because every decision records the
versions that cleared it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from gateway.screening.index import Listed
from gateway.screening.lists import ListVersion, ScreeningLists
from gateway.screening.matching import Name, bic_country


class Field(str, Enum):
    """The screened fields, as recorded in a hit."""

    PAYER_NAME = "payer_name"
    PAYEE_NAME = "payee_name"
    PAYEE_BIC = "payee_bic"
    PAYEE_COUNTRY = "payee_country"
    PAYEE_BIC_COUNTRY = "payee_bic_country"
    PURPOSE = "purpose"


@dataclass(frozen=True, slots=True)
class Fields:
    """What is screened of one payment or incoming credit (empty = absent)."""

    payer_name: str = ""
    payee_name: str = ""
    payee_bic: str = ""
    payee_country: str = ""
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """One possible match: journaled with the payment and shown to the reviewers."""

    list: str  # the row's ``list`` column
    entry_id: str
    field: Field
    score: float  # 1.0 for BIC, country, remittance text and the subset rule
    listed: str  # the name, alias, BIC or code that matched, as written in the file


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of screening: no hits clears the payment; any hit sends it to REVIEW."""

    hits: tuple[Hit, ...]
    versions: tuple[ListVersion, ...]

    @property
    def hit(self) -> bool:
        return bool(self.hits)


def screen(lists: ScreeningLists, fields: Fields, *, exhaustive: bool = False) -> Decision:
    """Screen ``fields`` against ``lists`` (one whole version of every file).

    ``exhaustive`` scores every listed name instead of the index's
    candidates: the same decision, slower (the tests and the bench compare).
    """
    index = lists.index
    normalise = lists.normaliser
    best: dict[tuple[str, str, Field], tuple[float, int, Hit]] = {}

    def found(item: Listed, field: Field, value: float, order: int = 0) -> None:
        """Keep the best score per entry and field; on a tie the name listed first."""
        key = (item.list, item.entry_id, field)
        if key not in best or (-value, order) < (-best[key][0], best[key][1]):
            best[key] = (value, order, Hit(item.list, item.entry_id, field, value, item.value))

    for field, text in (
        (Field.PAYER_NAME, fields.payer_name),
        (Field.PAYEE_NAME, fields.payee_name),
    ):
        query = Name.of(normalise.tokens(text)) if text else None
        if not query:
            continue
        for nid, value in index.names.hits(query, exhaustive=exhaustive):
            found(index.owner(nid), field, value, nid)
    if fields.purpose:
        for nid in index.in_text(normalise.tokens(fields.purpose)):
            found(index.owner(nid), Field.PURPOSE, 1.0, nid)
    bic = fields.payee_bic.strip()
    if bic:
        for item in index.by_bic(bic):
            found(item, Field.PAYEE_BIC, 1.0)
        country = bic_country(bic)
        if country:
            for item in index.by_country(country):
                found(item, Field.PAYEE_BIC_COUNTRY, 1.0)
    if fields.payee_country.strip():
        for item in index.by_country(fields.payee_country.strip()):
            found(item, Field.PAYEE_COUNTRY, 1.0)
    hits = sorted(
        (h for _, _, h in best.values()),
        key=lambda h: (-h.score, h.field.value, h.list, h.entry_id),
    )
    return Decision(tuple(hits), lists.versions)


def decision_json(decision: Decision) -> str:
    """How the journal keeps a decision (``items.screening``, an incoming credit's
    ``screening``): every list version and every hit, compact JSON."""
    doc = {
        "versions": [{"list": v.list, "version": v.version} for v in decision.versions],
        "hits": [
            {
                "list": h.list,
                "entry_id": h.entry_id,
                "field": h.field.value,
                "score": round(h.score, 4),
                "listed": h.listed,
            }
            for h in decision.hits
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
