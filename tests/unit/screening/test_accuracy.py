"""The screening quality bar: the labelled set at the default threshold.

``labelled_pairs.csv`` holds pairs of a listed name and a screened name,
labelled by what the rules of docs/foreign-currency.md §5 intend, not by what
the score gives: a true match is the same party written differently (word
order, transliteration, legal form, punctuation, diacritics, a missing
middle name, a Chinese name with or without 有限公司 and its relatives); a
near-miss is a different party with a similar name (one different token, a
lone shared surname, a shared legal form only).

Each pair is screened as a payee name against a list holding every listed
name of the set, and counts as a hit when the pair's own entry is hit.  The
test prints recall and the false-positive rate and pins the pairs that go
the other way, each with the reason, so that a change to the matcher shows
up here as a changed list rather than a drifting number.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from gateway.screening.lists import HEADER, ListFile, ScreeningLists
from gateway.screening.screen import Fields, screen
from gateway.screening.settings import ScreeningSettings

PAIRS = Path(__file__).with_name("labelled_pairs.csv")

MATCH_KINDS = {
    "word_order",
    "transliteration",
    "legal_form",
    "punctuation",
    "diacritics",
    "middle_name",
    "chinese",
}
NEAR_MISS_KINDS = {"other_token", "lone_surname", "legal_form_only"}

KNOWN_MISSES = {
    # Dotless ı (U+0131) and đ (U+0111) are letters of their own in Unicode,
    # not i and d with a combining mark, so NFKD keeps them; the one-token
    # difference then costs two letters of a short name.
    "Mehmet Yildiz",
    "Dragan Dordevic",
}
KNOWN_FALSE_POSITIVES = {
    # One token differs by one or two letters in a name of 12+ letters: the
    # fuzzy score cannot tell a different name from a misspelt one.  (Saleh /
    # Saeed, three of five letters, is below the token floor of matching.py.)
    "Zhang Xiaoping",
    "Southern Star Shipping",
    "Baltic Timber Export",
}


def rows() -> list[dict[str, str]]:
    with PAIRS.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def outcome() -> dict[str, list[dict[str, str]]]:
    pairs = rows()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for i, row in enumerate(pairs):
        writer.writerow(["LABELLED", f"P{i}", row["type"], row["listed"], "", ""])
    lists = ScreeningLists([ListFile.parse(out.getvalue(), "labelled.csv")], ScreeningSettings())
    result: dict[str, list[dict[str, str]]] = {"tp": [], "fn": [], "fp": [], "tn": []}
    for i, row in enumerate(pairs):
        decision = screen(lists, Fields(payee_name=row["screened"]))
        hit = any(h.entry_id == f"P{i}" for h in decision.hits)
        # the index must find exactly what scoring every listed name finds
        assert decision == screen(lists, Fields(payee_name=row["screened"]), exhaustive=True)
        if row["label"] == "match":
            result["tp" if hit else "fn"].append(row)
        else:
            result["fp" if hit else "tn"].append(row)
    return result


def test_the_set_has_the_size_and_kinds_the_bar_asks_for() -> None:
    pairs = rows()
    kinds = Counter(r["kind"] for r in pairs)
    labels = Counter(r["label"] for r in pairs)
    assert labels["match"] >= 150
    assert labels["near_miss"] >= 150
    assert set(kinds) == MATCH_KINDS | NEAR_MISS_KINDS
    assert all(kinds[k] >= 15 for k in kinds)
    assert {r["kind"] for r in pairs if r["label"] == "match"} == MATCH_KINDS
    assert {r["kind"] for r in pairs if r["label"] == "near_miss"} == NEAR_MISS_KINDS


def test_recall_and_false_positive_rate_at_the_default_threshold(
    outcome: dict[str, list[dict[str, str]]],
) -> None:
    tp, fn, fp, tn = (len(outcome[k]) for k in ("tp", "fn", "fp", "tn"))
    recall = tp / (tp + fn)
    fpr = fp / (fp + tn)
    print(
        f"\nscreening accuracy at threshold 0.88: recall {recall:.3f} ({tp}/{tp + fn}), "
        f"false positives {fpr:.2%} ({fp}/{fp + tn})"
    )
    for row in outcome["fn"]:
        print(f"  missed      [{row['kind']}] {row['listed']!r} / {row['screened']!r}")
    for row in outcome["fp"]:
        print(f"  false alarm [{row['kind']}] {row['listed']!r} / {row['screened']!r}")
    assert recall >= 0.98
    assert {r["screened"] for r in outcome["fn"]} == KNOWN_MISSES
    assert {r["screened"] for r in outcome["fp"]} == KNOWN_FALSE_POSITIVES
    assert fpr <= 0.02  # the bar: at most 2 % of the near-misses scored as hits


def test_every_kind_of_true_match_is_caught_but_two_diacritics(
    outcome: dict[str, list[dict[str, str]]],
) -> None:
    caught = Counter(r["kind"] for r in outcome["tp"])
    total = Counter(r["kind"] for r in rows() if r["label"] == "match")
    print("\n" + ", ".join(f"{kind} {caught[kind]}/{total[kind]}" for kind in sorted(MATCH_KINDS)))
    assert {
        kind: total[kind] - caught[kind] for kind in MATCH_KINDS if caught[kind] < total[kind]
    } == {"diacritics": 2}


def test_no_lone_surname_and_no_shared_legal_form_hits(
    outcome: dict[str, list[dict[str, str]]],
) -> None:
    assert not [r for r in outcome["fp"] if r["kind"] in {"lone_surname", "legal_form_only"}]
