"""Names reduced to the tokens that screening compares (docs/foreign-currency.md §5).

The rule, in order: NFKD with every combining mark dropped, then NFKC;
case-folded; punctuation replaced by a space; whitespace collapsed; the
legal-form words of ``screening.legal_forms`` dropped.  "Punctuation" here is
everything that is neither a letter nor a digit (Unicode categories P, S, C
and Z): a name is carried by its letters and digits, so ``&``, ``/`` and
``(…)`` separate words just as ``,`` and ``-`` do.

**Chinese (and Japanese kana) have no spaces between words**, so a space
there is not a word boundary: the characters of those scripts that follow one
another, with only spaces or punctuation between them, form *one* token
(``广州 南方贸易`` and ``广州南方贸易`` are the same token), and a change of
script starts a new token (``ABC贸易`` is ``abc`` and ``贸易``).  Such a token
is compared character by character by the fuzzy score (docs/foreign-currency.md
§5: "Chinese is compared by characters"); it is never split into characters
for the token rules, because the order of characters in a Chinese name
carries meaning where the order of words in a Latin name does not.

**Legal forms.**  A legal form that normalises to a Latin word is dropped
wherever it stands as a whole token; one written with its letters apart
(``S.A.``, ``L.L.C.``, which the punctuation rule turns into ``s a``,
``l l c``) is dropped when those single letters end the name, where legal
forms stand.  A legal form in Chinese (``有限公司``, ``股份有限公司``,
``有限责任公司``, ``集团``) is a suffix with no space before it, so it is cut
out of the Chinese token wherever it occurs, longest first.  A configured
form of several words (``Co Ltd``) is dropped as that sequence of tokens.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from functools import cache

DEFAULT_LEGAL_FORMS: tuple[str, ...] = (
    "LTD",
    "LIMITED",
    "CO",
    "CORP",
    "INC",
    "LLC",
    "PLC",
    "GMBH",
    "SA",
    "AG",
    "有限公司",
    "股份有限公司",
    "有限责任公司",
    "集团",
)
"""``screening.legal_forms``' default, docs/foreign-currency.md §5."""

_UNSPACED_RANGES: tuple[tuple[int, int], ...] = (
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x3038, 0x303C),
    (0x3040, 0x30FA),  # hiragana, katakana (not the middle dot U+30FB)
    (0x30FC, 0x30FF),
    (0x31F0, 0x31FF),  # katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3134F),  # CJK extensions B-G
)
"""Scripts written without spaces between words: Han and kana."""

_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _UNSPACED_RANGES)
_UNSPACED = re.compile(f"[{_CLASS}]")
_JOIN = re.compile(f"(?<=[{_CLASS}]) (?=[{_CLASS}])")
_SPLIT = re.compile(f"(?<=[{_CLASS}])(?=[^{_CLASS} ])|(?<=[^{_CLASS} ])(?=[{_CLASS}])")
_NOT_WORD = re.compile(r"[\W_]+")

_MARK_PLANES = (range(0x10000), range(0x10000, 0x20000), range(0xE0000, 0xE1000))
"""Unicode puts combining marks only in planes 0, 1 and 14 (a unit test checks
this for the running Python's Unicode version)."""


def _mark_class(planes: Iterable[range]) -> re.Pattern[str]:
    ranges: list[tuple[int, int]] = []
    for plane in planes:
        for cp in plane:
            if unicodedata.category(chr(cp))[0] != "M":
                continue
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    body = "".join(re.escape(chr(lo)) + "-" + re.escape(chr(hi)) for lo, hi in ranges)
    return re.compile(f"[{body}]+")


@cache
def _marks() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Every combining mark (categories Mn, Mc, Me): the BMP's, and the others.

    Two classes because one limited to the BMP compiles to a bitmap, several
    times faster than a list of ranges; names outside the BMP are rare.
    """
    return _mark_class(_MARK_PLANES[:1]), _mark_class(_MARK_PLANES[1:])


def _drop_marks(text: str) -> str:
    bmp, astral = _marks()
    text = bmp.sub("", text)
    return astral.sub("", text) if max(text, default="") > "\uffff" else text


def fold(text: str) -> str:
    """The rule without the legal forms: marks dropped, case-folded, punctuation
    to spaces, whitespace collapsed (docs/foreign-currency.md §5)."""
    if not text.isascii():  # ASCII is its own NFKD and NFKC form and has no marks
        text = _drop_marks(unicodedata.normalize("NFKD", text))
        text = unicodedata.normalize("NFKC", text)
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def is_unspaced(token: str) -> bool:
    """True for a token of Chinese or kana characters (compared by characters)."""
    return bool(_UNSPACED.match(token))


def split_tokens(folded: str) -> list[str]:
    """Tokens of folded text: spaces split Latin words; runs of Chinese join."""
    if folded.isascii():
        return folded.split()
    return _SPLIT.sub(" ", _JOIN.sub("", folded)).split()


class LegalFormError(ValueError):
    """A configured legal form that normalises to nothing or mixes scripts."""


class Normaliser:
    """The normalisation of docs/foreign-currency.md §5 with one list of legal forms.

    Built once per list version (the configured forms are normalised here, by
    the same rule, so ``Co.`` in the configuration means the token ``co``).
    """

    __slots__ = ("_phrases", "_spelled", "_suffixes", "_words", "legal_forms")

    def __init__(self, legal_forms: Iterable[str] = DEFAULT_LEGAL_FORMS) -> None:
        self.legal_forms = tuple(legal_forms)
        words: set[str] = set()
        phrases: set[tuple[str, ...]] = set()
        suffixes: set[str] = set()
        for form in self.legal_forms:
            tokens = split_tokens(fold(form))
            if not tokens:
                raise LegalFormError(f"legal form {form!r} is empty once normalised")
            if any(is_unspaced(t) for t in tokens):
                if len(tokens) != 1:
                    raise LegalFormError(f"legal form {form!r} mixes Chinese and other words")
                suffixes.add(tokens[0])
            elif len(tokens) == 1:
                words.add(tokens[0])
            else:
                phrases.add(tuple(tokens))
        self._words = frozenset(words)
        self._phrases = tuple(sorted(phrases, key=len, reverse=True))
        self._suffixes = tuple(sorted(suffixes, key=len, reverse=True))
        self._spelled = tuple(
            sorted({tuple(w) for w in words if len(w) > 1 and not is_unspaced(w)}, key=len)
        )

    def tokens(self, text: str) -> tuple[str, ...]:
        """The normalised tokens of ``text`` (empty when nothing but legal forms)."""
        out: list[str] = []
        for token in split_tokens(fold(text)):
            if is_unspaced(token):
                kept = self._cut_suffixes(token)
                if kept:
                    out.append(kept)
            else:
                out.append(token)
        if self._phrases:  # before the words, which may be part of a phrase
            out = self._drop_phrases(out)
        out = [token for token in out if token not in self._words]
        return tuple(self._drop_spelled_tail(out))

    def text(self, text: str) -> str:
        """The normalised tokens joined by single spaces."""
        return " ".join(self.tokens(text))

    def _cut_suffixes(self, token: str) -> str:
        changed = True
        while changed and token:
            changed = False
            for suffix in self._suffixes:
                if suffix in token:
                    token = token.replace(suffix, "")
                    changed = True
        return token

    def _drop_phrases(self, tokens: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(tokens):
            for phrase in self._phrases:
                if tuple(tokens[i : i + len(phrase)]) == phrase:
                    i += len(phrase)
                    break
            else:
                out.append(tokens[i])
                i += 1
        return out

    def _drop_spelled_tail(self, tokens: list[str]) -> list[str]:
        changed = True
        while changed and tokens:
            changed = False
            for letters in self._spelled:
                n = len(letters)
                if len(tokens) >= n and tuple(tokens[-n:]) == letters:
                    del tokens[-n:]
                    changed = True
                    break
        return tokens


def marks_outside_known_planes() -> int:
    """How many combining marks lie outside the planes that ``fold`` scans (0 expected)."""
    return sum(
        1
        for cp in range(sys.maxunicode + 1)
        if not any(cp in plane for plane in _MARK_PLANES)
        and unicodedata.category(chr(cp))[0] == "M"
    )
