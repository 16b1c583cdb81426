"""The candidate index: which listed names one screened name must be scored against.

Scoring a payment against every listed name costs a hundred milliseconds
and more for a list of tens of thousands of names.  The index finds, without
scoring them, every listed name that could reach the threshold; only those
are scored.  ``tests/unit/screening`` checks that it gives exactly the
decisions of scoring every name.

**Near tokens.**  Every distinct listed token is filed under each string it
becomes with up to two letters deleted (its *deletion neighbourhood*), in
one table per number of letters deleted.  A screened token's neighbourhood,
looked up there, finds every listed token within an Indel distance (letters
inserted plus deleted) of 2: two tokens are that close exactly when deleting
``d1`` letters from one and ``d2`` from the other, ``d1 + d2 ≤ 2``, leaves
the same non-empty string (a pair with nothing in common loses all its
letters, which the bound below allows for).

**The bound.**  The token alignment of ``gateway.screening.matching`` loses
``Na + Nb − 2 × matched`` letters of the two names' ``Na`` and ``Nb``; a
score ``≥ t`` allows at most ``(1 − t)(Na + Nb)``, and since the loss is at
least ``|Na − Nb|``, at most ``U = 2(1 − t)Na / t``.  A screened token with
no near token in a listed name loses at least ``c = min(3, its length)``
there.  The index takes the screened tokens rarest first.  A listed name
first found through the j-th token has none of the earlier ones' near
tokens, so it loses their ``c`` letters and must be long enough to afford
them: ``Nb ≥ Σc / (1 − t) − Na``.  Each token's listed names are kept sorted
by length, so the common tokens, which come last, contribute only their
long names, and the walk stops when no name can be long enough.  When even
all tokens cannot carry the bound (long tokens: one of 11 letters allows
``U`` of 3), the longest are searched just far enough beyond distance 2:
distance 3 by deleting a third letter from the screened token plus the
listed tokens exactly 3 letters longer, wider by rapidfuzz over the listed
tokens of a compatible length.

**The letters bound.**  No alignment matches more letters than the two
names have in common, so the similarity of their sorted letters bounds it
(``matching.upper_bound``); the lone-token rule needs at least ``t²`` of it
(``lone_cutoff``).  The names found above go through that bound in one
rapidfuzz call (in C) per group of tokens before any is scored in Python.

**The other rules.**  The subset rule's names are found exactly: a listed
name of two or more tokens is filed under its rarest token (found when the
screened name holds it), and a screened name of two or more tokens
intersects the names of all its tokens.  Words written together
(``Abdulaziz`` against ``Abdul Aziz``) are found exactly too: the names
holding all the listed tokens a screened token splits into, and the names
holding a listed token that adjacent screened tokens make together.

**Memory.**  Every process that screens (the core and each front) holds
its own index, so it is kept in arrays rather than Python objects: the
deletion neighbourhoods (a million variants for 20,000 entries with three
aliases each) as sorted 64-bit hashes, a found token confirmed by its Indel
distance (so a collision of hashes finds nothing more); the names holding
each token in one array with offsets.  The bench (bench/README.md) measures
some 80 MiB resident for that list: the index about 20 of them, the
``Name`` and ``Listed`` objects of its names about as much again.

**Memory of recent names.**  A process screens the same names again (a
corporate's own name is the payer of all its payments) and the same common
words, so the hits of recent names and the near tokens of recent words are
remembered with the index (which never changes: a reload builds a new one).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import NoReturn, cast

from rapidfuzz import process
from rapidfuzz.distance import Indel

from gateway.screening.matching import Name, is_subset, rejoin, score, upper_bound

MAX_DELETIONS = 2
"""The radius of the deletion neighbourhoods (Indel distance ≤ 2)."""

NEAR_CACHE = 16_384
"""Screened tokens whose near tokens are remembered (then forgotten all at once)."""

HITS_CACHE = 4_096
"""Screened names whose hits are remembered (then forgotten all at once)."""

_SLACK = 1e-9
"""Rounding in the bounds always errs towards one more candidate."""

_SHORT_POSTINGS = 8
"""A token held by this many names or fewer: examine them all rather than cut by length."""

_SPELLINGS = 8
"""Ways of splitting one screened token into listed tokens that are looked up."""

_SHORT_INTERSECTION = 64
"""Names of the rarest token checked one by one for the others (more: a set intersection)."""

_HASH_MASK = (1 << 64) - 1
"""``hash`` as an unsigned 64-bit number (the packed tables' keys)."""

_DIRECTORY_BITS = 20
"""At most this many leading bits of the hash index a packed table's directory."""

_UNMATCHED_LOSS = MAX_DELETIONS + 1
"""Letters a screened token loses at least without a near token (capped by its length)."""


def deletions(token: str, most: int = MAX_DELETIONS) -> Iterator[tuple[str, int]]:
    """``(variant, letters deleted)`` for every distinct non-empty variant of
    ``token`` with up to ``most`` letters deleted, the token itself first.

    Positions are deleted left to right (each variant remembers the first
    position a further deletion may take), so a set of positions is visited
    once rather than once per order.
    """
    yield token, 0
    seen = {token}
    level = {token: 0}
    for k in range(1, most + 1):
        following: dict[str, int] = {}
        for variant, start in level.items():
            if len(variant) < 2:
                continue
            for j in range(start, len(variant)):
                shorter = variant[:j] + variant[j + 1 :]
                if shorter not in seen and following.get(shorter, j) >= j:
                    following[shorter] = j
        for variant in following:
            yield variant, k
        seen.update(following)
        level = following


def neighbourhood(token: str) -> tuple[list[str], list[str]]:
    """``deletions(token, 2)`` without the token, as two lists (one letter
    deleted, two letters deleted; repeats possible): the hot path's form."""
    n = len(token)
    ones = [token[:i] + token[i + 1 :] for i in range(n)] if n > 1 else []
    twos = (
        [one[:j] + one[j + 1 :] for i, one in enumerate(ones) for j in range(i, n - 1)]
        if n > 2
        else []
    )
    return ones, twos


def lone_cutoff(threshold: float) -> float:
    """The letters bound a hit needs when exactly one name is a lone token.

    The lone-token rule scores ``LCS / N`` (``N``: the longer name's letters)
    only when the lone token is within the threshold of one token of the
    longer name, so it is at most ``(2 − t)/t`` times that token and the
    letters bound ``2H / (n + N)`` is then at least ``t²`` (``H ≥ LCS ≥ tN``).
    """
    return threshold * threshold


@dataclass(frozen=True, slots=True)
class Probe:
    """The names one screened name must be scored against, and what it took."""

    candidates: frozenset[int]
    examined: int  # names put through the letters bound
    widened: int  # long tokens searched beyond distance 2


class _Packed:
    """A read-only multimap from hashable keys to ints, packed in two arrays.

    The deletion-neighbourhood tables hold about a million (variant, token)
    pairs for a list of 20,000 entries: as a ``dict`` of ``str`` that is some
    70 MiB per process, packed it is 12 bytes a pair.  A key is stored as
    its 64-bit ``hash`` only, sorted, with a directory on the hash's top bits
    so that a lookup bisects a handful of slots.  Two keys with the same hash
    share their values: the callers check what they find exactly (an Indel
    distance, a phrase's tokens), so a collision costs at most a candidate.
    ``hash`` of a string differs between processes (hash randomisation), so
    the table is built in the process that uses it and never pickled.
    """

    __slots__ = ("_keys", "_shift", "_sieve", "_sieve_shift", "_starts", "_values", "distinct")

    def __init__(self, pairs: Iterable[tuple[Hashable, int]], *, sieve: bool = False) -> None:
        # One int per pair (hash above, value below) sorts both at once.
        packed = [((hash(key) & _HASH_MASK) << 32) | value for key, value in pairs]
        packed.sort()
        bits = min(_DIRECTORY_BITS, max(0, len(packed).bit_length() - 2))  # ~4 slots a bucket
        self._shift = 64 - bits
        self._keys = array("Q", [item >> 32 for item in packed])
        self._values = array("I", [item & 0xFFFF_FFFF for item in packed])
        del packed
        counts = [0] * ((1 << bits) + 1)
        # ``sieve``: a byte per 1/16 of a directory slot, set where some key
        # falls; most keys ``union`` looks up are absent, and one byte read
        # turns four in five of them away (without: one byte, set unless empty).
        sieve_bits = min(_DIRECTORY_BITS + 2, bits + 4) if sieve else 0
        self._sieve_shift = 64 - sieve_bits
        sieve_table = bytearray(1 << sieve_bits)
        distinct = 0
        previous = -1
        shift, sieve_shift = self._shift, self._sieve_shift
        for key in self._keys:
            counts[(key >> shift) + 1] += 1
            sieve_table[key >> sieve_shift] = 1
            if key != previous:
                distinct += 1
                previous = key
        self._sieve = bytes(sieve_table)
        self._starts = array("I", accumulate(counts))
        self.distinct = distinct
        """Distinct keys (hashes) in the table."""

    def get(self, key: Hashable) -> array[int]:
        """The values filed under ``key`` (and under any key of the same hash)."""
        code = hash(key) & _HASH_MASK
        bucket = code >> self._shift
        keys = self._keys
        end = self._starts[bucket + 1]
        start = bisect_left(keys, code, self._starts[bucket], end)
        if start == end or keys[start] != code:
            return _NONE
        return self._values[start : bisect_right(keys, code, start, end)]

    def union(self, keys: Iterable[Hashable]) -> set[int]:
        """The values filed under any of ``keys``: ``get`` written out for the hot path."""
        found: set[int] = set()
        table, starts, values, shift = self._keys, self._starts, self._values, self._shift
        sieve, sieve_shift = self._sieve, self._sieve_shift
        for key in keys:
            code = hash(key) & _HASH_MASK
            if not sieve[code >> sieve_shift]:
                continue
            bucket = code >> shift
            end = starts[bucket + 1]
            start = bisect_left(table, code, starts[bucket], end)
            if start < end and table[start] == code:
                found.update(values[start : bisect_right(table, code, start, end)])
        return found

    def __len__(self) -> int:
        return len(self._keys)

    def __reduce__(self) -> NoReturn:
        msg = "a packed table holds this process's string hashes: rebuild it, do not pickle it"
        raise TypeError(msg)


_NONE: array[int] = array("I")


def _grouped(groups: Iterable[Sequence[int]]) -> tuple[array[int], array[int]]:
    """Lists of ints as one flat array and the offsets of each list (one more)."""
    flat = array("I")
    starts = array("I", [0])
    for group in groups:
        flat.extend(group)
        starts.append(len(flat))
    return flat, starts


class NameIndex:
    """Candidate names for a screened name, over one version's listed names.

    ``names[i]`` is the i-th listed name (a primary name or an alias); the
    caller maps an id back to its list entry.

    Memory: everything per name or per token is packed in arrays (the names
    holding a token, sorted by length, in one array with offsets; the
    deletion neighbourhoods as ``_Packed`` tables); the ``Name`` objects and
    the vocabulary are the only Python objects per item.
    """

    __slots__ = (
        "_anchor_starts",
        "_anchored",
        "_by_length",
        "_deleted",
        "_hits_cache",
        "_near_cache",
        "_post_chars",
        "_post_ids",
        "_post_letters",
        "_post_starts",
        "_single",
        "_threshold",
        "_vocab",
        "_words",
        "names",
    )

    def __init__(self, names: Sequence[Name], threshold: float) -> None:
        self.names = tuple(names)
        self._threshold = threshold
        self._near_cache: dict[str, frozenset[int]] = {}
        self._hits_cache: dict[tuple[str, ...], tuple[tuple[int, float], ...]] = {}
        self._vocab: dict[str, int] = {}
        holders: list[list[int]] = []
        for nid, name in enumerate(self.names):
            for token in name.tokens:
                tid = self._vocab.setdefault(token, len(holders))
                if tid == len(holders):
                    holders.append([])
                if not holders[tid] or holders[tid][-1] != nid:
                    holders[tid].append(nid)
        self._words = tuple(self._vocab)
        # The names holding each token, sorted by length (stable: then by id),
        # all in one array; their letters and sorted letters aligned with it.
        letters = [name.letters for name in self.names]
        for ids in holders:
            ids.sort(key=letters.__getitem__)
        self._post_ids, self._post_starts = _grouped(holders)
        self._post_letters = array("I", [letters[nid] for nid in self._post_ids])
        self._post_chars = tuple(self.names[nid].chars for nid in self._post_ids)
        del holders, letters
        self._single = bytes(len(name.tokens) == 1 for name in self.names)
        self._by_length: dict[int, tuple[list[str], list[int]]] = {}
        for token, tid in self._vocab.items():
            words, ids = self._by_length.setdefault(len(token), ([], []))
            words.append(token)
            ids.append(tid)
        # One table per number of letters deleted from the listed token (none:
        # the vocabulary itself), so that a lookup takes a whole entry.
        # Only the first is looked up once per variant of a screened token.
        self._deleted = (
            _Packed(self._neighbours(1), sieve=True),
            _Packed(self._neighbours(2)),
        )
        # subset rule: each name of two or more distinct tokens under its rarest token
        anchored: list[list[int]] = [[] for _ in self._words]
        for nid, name in enumerate(self.names):
            distinct = {self._vocab[t] for t in name.tokens}
            if len(distinct) >= 2:
                anchor = min(distinct, key=lambda tid: (self._holding(tid), tid))
                anchored[anchor].append(nid)
        self._anchored, self._anchor_starts = _grouped(anchored)

    def _neighbours(self, deleted: int) -> Iterator[tuple[str, int]]:
        for token, tid in self._vocab.items():
            for variant in dict.fromkeys(neighbourhood(token)[deleted - 1]):
                yield variant, tid

    def _holding(self, tid: int) -> int:
        """How many names hold the token ``tid``."""
        return self._post_starts[tid + 1] - self._post_starts[tid]

    def _holders(self, tid: int) -> array[int]:
        """The names holding the token ``tid``, shortest first."""
        return self._post_ids[self._post_starts[tid] : self._post_starts[tid + 1]]

    def _holding_all(self, tids: Iterable[int]) -> set[int]:
        """The names holding every token of ``tids``.

        The rarest token's names, kept when they hold the others too: a few
        names looked at in Python, or a set intersection in C when even the
        rarest token is common.
        """
        ordered = sorted(set(tids), key=self._holding)
        if not ordered:
            return set()
        rarest = self._holders(ordered[0])
        if len(ordered) == 1:
            return set(rarest)
        if len(rarest) <= _SHORT_INTERSECTION:
            words = [self._words[tid] for tid in ordered[1:]]
            return {nid for nid in rarest if all(w in self.names[nid].tokens for w in words)}
        out = set(rarest)
        for tid in ordered[1:]:
            out.intersection_update(self._holders(tid))
        return out

    def __len__(self) -> int:
        return len(self.names)

    @property
    def vocabulary(self) -> int:
        """Distinct listed tokens."""
        return len(self._vocab)

    @property
    def variants(self) -> int:
        """Keys of the deletion-neighbourhood tables (their size drives the memory)."""
        return len(self._vocab) + sum(table.distinct for table in self._deleted)

    # -- near tokens ------------------------------------------------------------

    def near(self, token: str) -> frozenset[int]:
        """Ids of the listed tokens within Indel distance 2 of ``token``.

        Remembered for the last ``NEAR_CACHE`` tokens: the same words (a
        corporate's own name, "trading") come back payment after payment.
        """
        found = self._near_cache.get(token)
        if found is None:
            if len(self._near_cache) >= NEAR_CACHE:
                self._near_cache.clear()
            found = self._near_cache[token] = self._near(token)
        return found

    def clear_cache(self) -> None:
        """Forget the remembered near tokens and hits (the bench measures without)."""
        self._near_cache.clear()
        self._hits_cache.clear()

    def _near(self, token: str) -> frozenset[int]:
        """``_lookup(token, 2)`` written out: every screened name pays for it."""
        # Not found: a pair with nothing in common ("a", "b"), which loses all
        # its letters anyway, at least ``min(3, len(token))`` as the bound assumes.
        ones, twos = neighbourhood(token)
        vocab = self._vocab
        one, two = self._deleted
        found: set[int | None] = {vocab.get(token)}
        found.update(map(vocab.get, ones))
        found.update(map(vocab.get, twos))
        found.discard(None)
        exact = cast("set[int]", found)
        packed = one.union([token, *ones])
        packed.update(two.get(token))
        return frozenset(exact) | self._exact(token, packed - exact, MAX_DELETIONS)

    def _exact(self, token: str, tids: set[int], radius: int) -> frozenset[int]:
        """``tids`` found in the packed tables that are within ``radius`` of
        ``token``: all of them but for a collision of 64-bit hashes."""
        words = self._words
        return frozenset(
            tid for tid in tids if Indel.distance(token, words[tid], score_cutoff=radius) <= radius
        )

    def _lookup(self, token: str, radius: int) -> set[int]:
        """Listed tokens reached by deleting ``k`` letters from ``token`` and
        ``d`` (≤ 2, in the tables) from them, ``k + d ≤ radius``."""
        found: set[int] = set()
        packed: set[int] = set()
        for variant, k in deletions(token, radius):
            tid = self._vocab.get(variant)
            if tid is not None:
                found.add(tid)
            for table in self._deleted[: radius - k]:
                packed.update(table.get(variant))
        return found | self._exact(token, packed - found, radius)

    def within(self, token: str, radius: int) -> frozenset[int]:
        """Ids of the listed tokens within Indel distance ``radius`` of ``token``.

        Beyond the neighbourhoods' radius: rapidfuzz over the listed tokens of
        a compatible length (for the long tokens that need it).
        """
        if radius <= MAX_DELETIONS:
            return self.near(token)
        found: set[int] = set()
        lengths = range(max(1, len(token) - radius), len(token) + radius + 1)
        if radius == MAX_DELETIONS + 1:
            # Deleting up to 3 from the token against the table's 2 finds every
            # pair but a listed token 3 letters longer that contains it whole.
            found = self._lookup(token, radius)
            lengths = range(len(token) + radius, len(token) + radius + 1)
        for length in lengths:
            bucket = self._by_length.get(length)
            if bucket:
                words, ids = bucket
                for _, _, i in process.extract(
                    token, words, scorer=Indel.distance, score_cutoff=radius, limit=None
                ):
                    found.add(ids[i])
        return frozenset(found)

    # -- hits ---------------------------------------------------------------------

    def hits(self, query: Name, *, exhaustive: bool = False) -> tuple[tuple[int, float], ...]:
        """``(name id, score)`` of the listed names ``query`` scores at least the
        threshold against: the candidates of ``probe`` scored, or with
        ``exhaustive`` every listed name (the same result, slowly: for tests).

        Remembered for the last ``HITS_CACHE`` names: a corporate's own name is
        the payer of all its payments, and suppliers are paid again.
        """
        if exhaustive:
            return self._hits(query, range(len(self.names)))
        found = self._hits_cache.get(query.tokens)
        if found is None:
            if len(self._hits_cache) >= HITS_CACHE:
                self._hits_cache.clear()
            found = self._hits_cache[query.tokens] = self._hits(query, self.probe(query).candidates)
        return found

    def _hits(self, query: Name, candidates: Iterable[int]) -> tuple[tuple[int, float], ...]:
        thr = self._threshold
        out = []
        for nid in candidates:
            listed = self.names[nid]
            if is_subset(query, listed):
                value = 1.0
            elif upper_bound(query, listed) < lone_cutoff(thr):
                continue  # every rule but the subset rule needs that much (lone_cutoff)
            else:
                value = score(query, listed, thr)
            if value >= thr:
                out.append((nid, value))
        return tuple(sorted(out))

    # -- candidates ---------------------------------------------------------------

    def probe(self, query: Name) -> Probe:
        """The names ``query`` must be scored against (see the module docstring)."""
        if not query:
            return Probe(frozenset(), 0, 0)
        thr = self._threshold
        tokens = query.tokens
        budget = 2 * (1 - thr) * query.letters / thr + _SLACK  # U
        longest = query.letters + budget  # no listed name longer can reach t
        out: set[int] = set()
        examined = 0

        def scan(tids: frozenset[int], shortest: float) -> None:
            nonlocal examined
            examined += self._scan(tids, query, shortest, out)

        volume = {w: self._holding(self._vocab[w]) if w in self._vocab else 0 for w in tokens}
        lost = 0.0  # Σ c of the tokens already looked up
        for token in sorted(tokens, key=lambda w: (volume[w], w)):
            shortest = lost / (1 - thr) - query.letters - _SLACK
            if shortest > longest:
                break
            scan(self.near(token), shortest)
            lost += min(_UNMATCHED_LOSS, len(token))
        widened = 0
        if lost / (1 - thr) - query.letters - _SLACK <= longest:
            # Long tokens: distance 2 is not enough; widen the longest, each
            # just enough that a name without it would lose more than U.
            for token in sorted(tokens, key=lambda w: (-len(w), w)):
                counted = min(_UNMATCHED_LOSS, len(token))
                needed = math.floor(budget - (lost - counted))  # radius + 1 > budget - the rest
                radius = min(len(token) - 1, max(MAX_DELETIONS + 1, needed))
                scan(self.within(token, radius), float("-inf"))
                lost += min(radius + 1, len(token)) - counted
                widened += 1
                if lost / (1 - thr) - query.letters - _SLACK > longest:
                    break
        out |= self._subset(tokens)
        together = self._written_together(tokens) - out
        if together:
            # Words written together may leave one name a lone token: t² is the
            # bound, and only the names whose tokens do rejoin are kept.
            cut = lone_cutoff(thr)
            for nid in together:
                listed = self.names[nid]
                if Indel.normalized_similarity(
                    query.chars, listed.chars, score_cutoff=cut
                ) and rejoin(query, listed) != (query, listed):
                    out.add(nid)
            examined += len(together)
        return Probe(frozenset(out), examined, widened)

    def _scan(self, tids: frozenset[int], query: Name, shortest: float, out: set[int]) -> int:
        """Add the names holding one of the tokens ``tids``, at least ``shortest``
        letters long, that pass the letters bound; return how many were examined.

        Whatever the rule, a name outside ``[Na·t/(2 − t), Na·(2 − t)/t]``
        letters cannot reach ``t`` against a name of ``Na`` (the letters bound
        is at most ``2·min/(Na + Nb)``), so only that slice of a long postings
        list is examined; a short one is examined whole (the bound decides).
        """
        thr = self._threshold
        low = max(shortest, query.letters * thr / (2 - thr) - _SLACK)
        high = query.letters * (2 - thr) / thr + _SLACK
        post_ids, post_letters, post_chars = self._post_ids, self._post_letters, self._post_chars
        starts = self._post_starts
        chars: list[str] = []
        ends: list[int] = []  # of each token's slice in ``chars``
        shifts: list[int] = []  # from a place in ``chars`` to its place in the postings
        for tid in tids:
            start, end = starts[tid], starts[tid + 1]
            if end - start > _SHORT_POSTINGS:
                start = bisect_left(post_letters, low, start, end)
                end = bisect_right(post_letters, high, start, end)
            if start < end:
                shifts.append(start - len(chars))
                chars += post_chars[start:end]
                ends.append(len(chars))
        if not chars:
            return 0
        lone = len(query.tokens) == 1
        single = self._single
        for _, value, i in process.extract(
            query.chars,
            chars,
            scorer=Indel.normalized_similarity,
            score_cutoff=lone_cutoff(thr),
            limit=None,
        ):
            nid = post_ids[i + shifts[bisect_right(ends, i)]]
            if value >= thr or single[nid] != lone:  # one lone token: t² is the bound
                out.add(nid)
        return len(chars)

    def _written_together(self, tokens: tuple[str, ...]) -> set[int]:
        """The names that the rule of words written together may change.

        A screened token that is two or more listed tokens written together:
        the names holding all of them.  Two or more adjacent screened tokens
        that are one listed token written together: the names holding it.
        """
        out: set[int] = set()
        for token in tokens:
            for pieces in self._spellings(token, limit=_SPELLINGS):
                out |= self._holding_all(pieces)
        for i in range(len(tokens)):
            for j in range(i + 2, len(tokens) + 1):
                tid = self._vocab.get("".join(tokens[i:j]))
                if tid is not None:
                    out.update(self._holders(tid))
        return out

    def _spellings(self, token: str, *, limit: int) -> list[tuple[int, ...]]:
        """Up to ``limit`` ways to write ``token`` as two or more listed tokens."""
        ways: dict[str, list[tuple[int, ...]]] = {}

        def ending(rest: str) -> list[tuple[int, ...]]:  # ways to write rest, one token or more
            if rest not in ways:
                found: list[tuple[int, ...]] = []
                whole = self._vocab.get(rest)
                if whole is not None:
                    found.append((whole,))
                for cut in range(1, len(rest)):
                    head = self._vocab.get(rest[:cut])
                    if head is not None:
                        found += [(head, *tail) for tail in ending(rest[cut:])[:limit]]
                ways[rest] = found[:limit]
            return ways[rest]

        return [w for w in ending(token) if len(w) > 1][:limit]

    def _subset(self, tokens: tuple[str, ...]) -> set[int]:
        """The names the subset rule may accept, exactly (then verified by scoring)."""
        exact = [self._vocab[t] for t in tokens if t in self._vocab]
        out: set[int] = set()
        # listed name ⊆ screened name: the names filed under a screened token
        for tid in exact:
            out.update(self._anchored[self._anchor_starts[tid] : self._anchor_starts[tid + 1]])
        # screened name ⊆ listed name: the names holding every screened token
        if len(set(tokens)) >= 2 and len(exact) == len(tokens):
            out |= self._holding_all(exact)
        return out


@dataclass(frozen=True, slots=True)
class Listed:
    """One name, alias, BIC or country code of a list entry, as matched."""

    list: str
    entry_id: str
    type: str  # individual | entity | bic | country
    value: str  # as written in the file
    name: Name | None  # normalised, for individual and entity rows


class ListIndex:
    """Everything one payment is looked up in, for one version of the lists.

    Names and aliases go to the ``NameIndex``; names of two or more tokens
    also to the remittance-text table, under their first two tokens (a name
    appears in the text as a whole-word substring only where those two stand
    side by side); BICs under their first 8 characters; country codes as
    they are.
    """

    __slots__ = ("_bics", "_countries", "_owner", "_phrases", "listed", "names")

    def __init__(self, listed: Sequence[Listed], threshold: float) -> None:
        self.listed = tuple(listed)
        owner = array("I")
        names: list[Name] = []
        phrases: list[tuple[tuple[str, str], int]] = []
        self._bics: dict[str, list[int]] = {}
        self._countries: dict[str, list[int]] = {}
        for i, item in enumerate(self.listed):
            if item.name is not None:
                if len(item.name.tokens) >= 2:
                    first, second = item.name.tokens[:2]
                    phrases.append(((first, second), len(names)))
                owner.append(i)
                names.append(item.name)
            elif item.type == "bic":
                self._bics.setdefault(item.value[:8], []).append(i)
            else:
                self._countries.setdefault(item.value, []).append(i)
        self._owner = owner
        self._phrases = _Packed(phrases)
        del phrases
        self.names = NameIndex(names, threshold)

    def owner(self, nid: int) -> Listed:
        """The entry a name id of ``names`` belongs to."""
        return self.listed[self._owner[nid]]

    def in_text(self, tokens: tuple[str, ...]) -> Iterator[int]:
        """Name ids of the names of two or more tokens that occur in ``tokens``
        as a run of whole tokens (docs/foreign-currency.md §5, remittance text)."""
        for start in range(len(tokens) - 1):
            for nid in self._phrases.get((tokens[start], tokens[start + 1])):
                phrase = self.names.names[nid].tokens
                if tokens[start : start + len(phrase)] == phrase:
                    yield nid

    def by_bic(self, bic: str) -> list[Listed]:
        """``bic`` rows whose first 8 characters are ``bic``'s."""
        if len(bic) < 8:
            return []
        return [self.listed[i] for i in self._bics.get(bic[:8].upper(), ())]

    def by_country(self, code: str) -> list[Listed]:
        """``country`` rows with exactly this code."""
        return [self.listed[i] for i in self._countries.get(code.upper(), ())]
