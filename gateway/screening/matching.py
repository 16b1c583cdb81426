"""The fuzzy name score and the exact rules of docs/foreign-currency.md §5.

A name is compared as its normalised tokens (``gateway.screening.normalise``).
The score, in [0, 1], is a **token alignment**: each token of one name pairs
with at most one token of the other, in any order, greedily by the length
of their longest common subsequence (rapidfuzz's ``LCSseq``; ties broken by
the tokens' text, so the result does not depend on the order of the
tokens), and the score is ``2 × matched letters / letters of both names``,
rapidfuzz's normalised Indel similarity summed over the pairs.  A
transliterated or misspelt token (``Mohammed``/``Muhammad``, 0.75) costs only
its differing letters; an unpaired token costs all of its letters.  Two tokens
whose own similarity is below :data:`TOKEN_FLOOR` are different words, not one
word spelt two ways, and are not paired (``Saleh``/``Saeed`` share three of five
letters): otherwise a long name with one different short token would still
score as a match.  (Two names of one token each are not aligned but compared:
their score is the tokens' similarity, floor or not.)

Before it, in this order:

- **subset**: a name of at least two distinct tokens all of which are among
  the other name's tokens scores 1 (a missing middle name still matches);
- **words written together**: two or more adjacent tokens of one name that,
  written together, are a token of the other become that token
  (``Abdul Aziz``/``Abdulaziz``, ``O'Brien``/``OBrien``, ``A.B.C.``/``ABC``);
  only adjacent tokens, so this one rule looks at the order;
- **lone token**: a name of one token against a name of several, where that
  token alone is as close as the threshold to one of the other's tokens, is a
  lone surname, which does not match: it scores only its share of the other
  name's letters (``Smith`` against ``John Smith``: 5/9).

Chinese tokens are single tokens compared by characters (``normalise``), so
for them the score is the character-level similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import Indel, LCSseq

DEFAULT_THRESHOLD = 0.88
"""``screening.threshold``, docs/foreign-currency.md §5."""
TOKEN_FLOOR = 0.65
"""The least similarity (normalised Indel) at which two tokens may pair in the alignment.
The labelled set's transliterations go down to 0.67 (``Đuc``/``Duc``: NFKD keeps ``đ``)
and 0.73 (``Fyodor``/``Fedor``); different words that share letters sit lower."""


@dataclass(frozen=True, slots=True)
class Name:
    """A normalised name with what the score and the candidate index reuse."""

    tokens: tuple[str, ...]
    letters: int  # letters of all tokens (spaces not counted)
    chars: str  # the letters sorted: their multiset, for the upper bound

    @classmethod
    def of(cls, tokens: tuple[str, ...]) -> Name:
        joined = "".join(tokens)
        return cls(tokens, len(joined), "".join(sorted(joined)))

    def __bool__(self) -> bool:
        return bool(self.tokens)


def upper_bound(a: Name, b: Name) -> float:
    """A bound no alignment of ``a`` and ``b`` exceeds, rejoined words or not.

    The similarity of the sorted letters: the longest common subsequence of
    two sorted strings is their common letters, and no alignment matches more
    letters than the two names share.  (The subset and lone-token rules are
    not alignments; ``gateway.screening.index`` bounds them on its own.)
    """
    return Indel.normalized_similarity(a.chars, b.chars)


def is_subset(a: Name, b: Name) -> bool:
    """docs/foreign-currency.md §5: at least two tokens, all among the other's."""
    sa, sb = set(a.tokens), set(b.tokens)
    small, large = (sa, sb) if len(sa) <= len(sb) else (sb, sa)
    return len(small) >= 2 and small <= large


def lone_share(a: Name, b: Name, threshold: float) -> float | None:
    """The lone-token rule: ``None`` unless one name is a lone token standing for
    one token of the other (then: the share of the other's letters it covers)."""
    if (len(a.tokens) == 1) == (len(b.tokens) == 1):
        return None
    lone, other = (a, b) if len(a.tokens) == 1 else (b, a)
    token = lone.tokens[0]
    best = max(other.tokens, key=lambda t: (Indel.normalized_similarity(token, t), t))
    if Indel.normalized_similarity(token, best) < threshold:
        return None
    return LCSseq.similarity(token, best) / other.letters


def aligned(a: Name, b: Name) -> float:
    """Token alignment: ``2 × Σ LCS of the pairs / (letters of a + letters of b)``."""
    pairs = sorted(
        (
            (LCSseq.similarity(x, y), x, y, i, j)
            for i, x in enumerate(a.tokens)
            for j, y in enumerate(b.tokens)
        ),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    matched = 0
    # one token each (a Chinese name, a lone word): the score is their similarity itself
    floor = TOKEN_FLOOR if len(a.tokens) > 1 or len(b.tokens) > 1 else 0.0
    for lcs, x, y, i, j in pairs:
        if lcs == 0:
            break
        if i in used_a or j in used_b:
            continue
        if 2 * lcs < floor * (len(x) + len(y)):
            continue  # different words (TOKEN_FLOOR); each may still pair with another
        used_a.add(i)
        used_b.add(j)
        matched += lcs
    return 2 * matched / (a.letters + b.letters)


def score(a: Name, b: Name, threshold: float = DEFAULT_THRESHOLD) -> float:
    """The score of two normalised names in [0, 1] (docs/foreign-currency.md §5)."""
    if not a or not b:
        return 0.0
    if is_subset(a, b):
        return 1.0
    a, b = rejoin(a, b)
    share = lone_share(a, b, threshold)
    if share is not None:
        return share
    return aligned(a, b)


def rejoin(a: Name, b: Name) -> tuple[Name, Name]:
    """Each name with its adjacent tokens that the other writes as one token merged."""
    merged_a = _merge(a.tokens, frozenset(b.tokens))
    merged_b = _merge(b.tokens, frozenset(a.tokens))
    return (
        a if merged_a == a.tokens else Name.of(merged_a),
        b if merged_b == b.tokens else Name.of(merged_b),
    )


def _merge(tokens: tuple[str, ...], words: frozenset[str]) -> tuple[str, ...]:
    if len(tokens) < 2:
        return tokens
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for j in range(len(tokens), i + 1, -1):  # the longest run first
            together = "".join(tokens[i:j])
            if together in words:
                out.append(together)
                i = j
                break
        else:
            out.append(tokens[i])
            i += 1
    return tuple(out)


def bic_country(bic: str) -> str | None:
    """The country of a BIC: characters 5-6 (docs/foreign-currency.md §5)."""
    return bic[4:6].upper() if len(bic) >= 8 else None
