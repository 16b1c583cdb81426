"""The candidate index finds what scoring every listed name finds (docs/foreign-currency.md §5).

The index decides which names are scored at all, so a name it leaves out is
a hit lost without a trace.  These tests compare it with scoring every name:
its pieces (deletion neighbourhoods, wider searches for long tokens) against
brute force, and whole decisions on a generated list against ``exhaustive``
screening, for names varied the ways that stress the bounds.
"""

from __future__ import annotations

import csv
import io
import pickle
import random
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Indel

from gateway.screening import index as index_module
from gateway.screening.index import NameIndex, deletions, neighbourhood
from gateway.screening.lists import HEADER, ListFile, ScreeningLists
from gateway.screening.matching import Name
from gateway.screening.screen import Fields, screen
from gateway.screening.settings import ScreeningSettings

letters = st.text(alphabet="abcdm", min_size=1, max_size=9)


def reference(token: str, most: int) -> dict[str, int]:
    out = {token: 0}
    for k in range(1, min(most, len(token) - 1) + 1):
        for drop in combinations(range(len(token)), k):
            out.setdefault("".join(c for i, c in enumerate(token) if i not in drop), k)
    return out


@settings(max_examples=300, deadline=None)
@given(letters, st.integers(min_value=0, max_value=3))
def test_deletions_visit_each_variant_once_with_its_fewest_deletions(token: str, most: int) -> None:
    found = list(deletions(token, most))
    assert len(found) == len({v for v, _ in found})
    assert dict(found) == reference(token, most)


@settings(max_examples=200, deadline=None)
@given(letters)
def test_the_hot_path_neighbourhood_is_the_same_set(token: str) -> None:
    ones, twos = neighbourhood(token)
    expected = reference(token, 2)
    assert set(ones) == {v for v, k in expected.items() if k == 1}
    assert set(twos) == {v for v, k in expected.items() if k == 2}


@settings(max_examples=150, deadline=None)
@given(st.lists(letters, min_size=1, max_size=40, unique=True), letters, st.integers(3, 5))
def test_near_and_within_find_exactly_the_tokens_that_close(
    vocabulary: list[str], token: str, radius: int
) -> None:
    index = NameIndex([Name.of((w,)) for w in vocabulary], 0.88)
    ids = {w: i for i, w in enumerate(vocabulary)}  # one token per name: token id = name id
    for r, found in ((2, index.near(token)), (radius, index.within(token, radius))):
        expected = {ids[w] for w in vocabulary if Indel.distance(token, w) <= r}
        # a pair with nothing in common is not found; the bound counts it as lost
        assert {
            i
            for i in expected
            if Indel.distance(token, vocabulary[i]) < len(token) + len(vocabulary[i])
        } <= found
        assert found <= expected


@settings(max_examples=100, deadline=None)
@given(st.lists(letters, min_size=1, max_size=40, unique=True), letters)
def test_colliding_hashes_add_no_token_that_is_not_close(vocabulary: list[str], token: str) -> None:
    # The packed tables keep only a hash of each variant; with 3 bits of it
    # nearly every lookup finds strangers, and the exact check must drop them.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_module, "_HASH_MASK", 0b111)
        index = NameIndex([Name.of((w,)) for w in vocabulary], 0.88)
        found = {2: index.near(token), 3: index.within(token, 3)}
    for radius, ids in found.items():
        expected = {i for i, w in enumerate(vocabulary) if Indel.distance(token, w) <= radius}
        assert ids <= expected
        assert {
            i
            for i in expected
            if Indel.distance(token, vocabulary[i]) < len(token) + len(vocabulary[i])
        } <= ids


def test_an_index_is_not_carried_to_another_process(
    generated: tuple[ScreeningLists, list[str]],
) -> None:
    # Its tables are keyed by this process's string hashes (randomised per process).
    with pytest.raises(TypeError, match="rebuild"):
        pickle.dumps(generated[0].index)


# -- whole decisions on a generated list -------------------------------------------------

SYLLABLES = ("ka", "ro", "mi", "tan", "sel", "vor", "lu", "den", "ha", "ri", "bo", "zan", "ke",
             "mar", "ti", "sa", "no", "vel", "ra", "gu", "lin", "fa", "dor")  # fmt: skip
GENERIC = ["trading", "shipping", "international", "group", "bank"]


def word(rng: random.Random, low: int = 2, high: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(low, high)))


def edit(rng: random.Random, token: str, n: int) -> str:
    for _ in range(n):
        i = rng.randrange(len(token) + 1)
        op = rng.randrange(3)
        if op == 0 and len(token) > 2:
            token = token[:i] + token[i + 1 :]
        elif op == 1:
            token = token[:i] + rng.choice("aeiouyk") + token[i:]
        else:
            token = token[:i] + rng.choice("aeiouyk") + token[i + 1 :]
    return token


def variations(rng: random.Random, tokens: list[str]) -> list[str]:
    """Ways of writing a listed name that stress the index's bounds."""
    out = []
    i = rng.randrange(len(tokens))
    for n in (1, 2, 3):
        changed = list(tokens)
        changed[i] = edit(rng, changed[i], n)
        out.append(" ".join(changed))
    longer = list(tokens)
    longer[i] += rng.choice(["ini", "ovich", "son"])  # a token 3+ letters longer
    out.append(" ".join(longer))
    out.append(" ".join(rng.sample(tokens, len(tokens))))
    if len(tokens) > 2:
        out.append(" ".join(tokens[:1] + tokens[2:]))
    if len(tokens) > 1:
        out.append("".join(tokens[:2]) + " " + " ".join(tokens[2:]))  # joined
        out.append(tokens[-1])  # a lone token
    out.append(" ".join([*tokens, rng.choice(GENERIC)]))
    return out


@pytest.fixture(scope="module")
def generated() -> tuple[ScreeningLists, list[str]]:
    text, queries = generated_list()
    return ScreeningLists([ListFile.parse(text, "gen.csv")], ScreeningSettings()), queries


def generated_list() -> tuple[str, list[str]]:
    """A list file's text and the names screened against it (the same each time)."""
    rng = random.Random(20261207)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    names: list[list[str]] = []
    given_names = [word(rng, 1, 2) for _ in range(30)]  # few and common, like real given names
    for n in range(700):
        roll = rng.random()
        if roll < 0.1:
            tokens = [word(rng, 4, 6)]  # one long token: the index widens its search
        elif roll < 0.4:
            tokens = [word(rng), *rng.sample(GENERIC, rng.randint(0, 2))]
        else:
            tokens = [
                rng.choice(given_names),
                word(rng),
                *([word(rng)] if rng.random() < 0.4 else []),
            ]
        names.append(tokens)
        alias = ";".join(" ".join(rng.sample(tokens, len(tokens))) for _ in range(2))
        writer.writerow(
            ["GEN", f"G{n}", "entity" if roll < 0.4 else "individual", " ".join(tokens), alias, ""]
        )
    writer.writerow(["GEN", "CJK1", "entity", "华东远洋运输集团有限公司", "华东远洋", ""])
    queries = [q for tokens in rng.sample(names, 120) for q in variations(rng, tokens)]
    queries += [" ".join([rng.choice(given_names), word(rng)]) for _ in range(100)]
    queries += [word(rng, 4, 6) for _ in range(40)]
    queries += ["华东远洋运输", "华东远洋运翰有限公司", "华东", "远洋运输华东"]
    return out.getvalue(), queries


def test_the_index_gives_the_decisions_of_scoring_every_name(
    generated: tuple[ScreeningLists, list[str]],
) -> None:
    lists, queries = generated
    differ = [
        q
        for q in queries
        if screen(lists, Fields(payee_name=q))
        != screen(lists, Fields(payee_name=q), exhaustive=True)
    ]
    hits = sum(screen(lists, Fields(payee_name=q)).hit for q in queries)
    assert not differ
    assert hits > len(queries) // 3  # the variations do hit: the comparison is not vacuous


def test_the_index_examines_a_small_share_of_the_names(
    generated: tuple[ScreeningLists, list[str]],
) -> None:
    lists, queries = generated
    index = lists.index.names
    probes = [index.probe(Name.of(lists.normaliser.tokens(q))) for q in queries]
    examined = sorted(p.examined for p in probes)
    assert examined[len(examined) // 2] < len(index) // 10
    assert any(p.widened for p in probes)  # the long-token path was taken


def test_colliding_hashes_change_no_decision() -> None:
    text, queries = generated_list()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_module, "_HASH_MASK", (1 << 10) - 1)  # ~1,000 distinct hashes
        crowded = ScreeningLists([ListFile.parse(text, "gen.csv")], ScreeningSettings())
        sample = queries[::7]
        for q in sample:
            fields = Fields(payee_name=q, purpose=f"paid to {q} for goods")
            assert screen(crowded, fields) == screen(crowded, fields, exhaustive=True)
        assert sum(screen(crowded, Fields(purpose=f"to {q} now")).hit for q in sample) > 10
