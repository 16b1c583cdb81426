"""Name normalisation, rule by rule (docs/foreign-currency.md §5)."""

from __future__ import annotations

import pytest

from gateway.screening.normalise import (
    DEFAULT_LEGAL_FORMS,
    LegalFormError,
    Normaliser,
    fold,
    is_unspaced,
    marks_outside_known_planes,
    split_tokens,
)

N = Normaliser()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # NFKD, combining marks dropped, NFKC
        ("José María García", ("jose", "maria", "garcia")),
        ("Şükrü Öztürk", ("sukru", "ozturk")),
        ("Nguyễn Văn Đức", ("nguyen", "van", "đuc")),  # đ has no decomposition
        ("مُحَمَّد عَلِي", ("محمد", "علي")),  # Arabic vowel marks are combining marks
        ("ＡＢＣ Ｔｒａｄｉｎｇ", ("abc", "trading")),  # full-width forms
        ("ﬁnance", ("finance",)),  # a ligature
        # case folding
        ("GRÜNE STRASSE", ("grune", "strasse")),
        ("Grüne Straße", ("grune", "strasse")),
        ("İbrahim", ("ibrahim",)),
        ("Γιώργος", ("γιωργοσ",)),  # final sigma folds to σ
        # punctuation and symbols become spaces; whitespace collapses
        ("O'Brien-Smith, John", ("o", "brien", "smith", "john")),
        ("Acme & Sons / (Overseas)", ("acme", "sons", "overseas")),
        ("  many\t\n spaces  ", ("many", "spaces")),
        ("snake_case", ("snake", "case")),
        ("东方航运（香港）", ("东方航运香港",)),
    ],
)
def test_the_rule(text: str, tokens: tuple[str, ...]) -> None:
    assert N.tokens(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Orion Shipping Ltd", ("orion", "shipping")),
        ("Orion Shipping Co., Ltd.", ("orion", "shipping")),
        ("Orion LIMITED Shipping", ("orion", "shipping")),  # a whole token, wherever it is
        ("Redwood GmbH", ("redwood",)),
        ("Andes Mining S.A.", ("andes", "mining")),  # spelled out at the end
        ("Kronos L.L.C.", ("kronos",)),
        ("A.G. Smith", ("a", "g", "smith")),  # initials, not the end: kept
        ("Coal Company", ("coal", "company")),  # only whole tokens: "co" is not a prefix rule
        ("Ltd", ()),  # nothing but a legal form
    ],
)
def test_latin_legal_forms(text: str, tokens: tuple[str, ...]) -> None:
    assert N.tokens(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("华东远洋运输有限公司", ("华东远洋运输",)),
        ("北方精密机械股份有限公司", ("北方精密机械",)),  # longest first, no 股份 left
        ("天津海港物流有限责任公司", ("天津海港物流",)),
        ("中原能源集团有限公司", ("中原能源",)),  # both suffixes
        ("中国银行股份有限公司上海分行", ("中国银行上海分行",)),  # inside the name too
        ("广州 南方贸易 有限公司", ("广州南方贸易",)),  # a space is no word boundary in Chinese
        ("ABC贸易有限公司", ("abc", "贸易")),  # a change of script is
        ("有限公司", ()),
    ],
)
def test_chinese_names(text: str, tokens: tuple[str, ...]) -> None:
    assert N.tokens(text) == tokens


def test_kana_joins_like_chinese() -> None:
    assert N.tokens("トヨタ 自動車") == ("トヨタ自動車",)
    assert is_unspaced("トヨタ") and is_unspaced("银行") and not is_unspaced("bank")


def test_configured_legal_forms_are_normalised_by_the_same_rule() -> None:
    n = Normaliser(["Co.", "S.A.S.", "Co Ltd", "有限公司", "JSC"])
    assert n.tokens("Kazan JSC") == ("kazan",)
    assert n.tokens("Rhone S.A.S.") == ("rhone",)  # configured with dots: a phrase
    assert n.tokens("Rhone SAS") == ("rhone", "sas")  # not configured as a word
    assert n.tokens("Delta Co Ltd Trading") == ("delta", "trading")
    assert n.tokens("Delta Ltd") == ("delta", "ltd")  # LTD is not in this list


@pytest.mark.parametrize("form", ["", "...", "有限 Ltd"])
def test_a_legal_form_that_is_empty_or_mixes_scripts_is_refused(form: str) -> None:
    with pytest.raises(LegalFormError):
        Normaliser([form])


def test_the_default_legal_forms() -> None:
    assert DEFAULT_LEGAL_FORMS == (
        "LTD", "LIMITED", "CO", "CORP", "INC", "LLC", "PLC", "GMBH", "SA", "AG",
        "有限公司", "股份有限公司", "有限责任公司", "集团",
    )  # fmt: skip


def test_fold_and_split_are_the_rule_without_legal_forms() -> None:
    assert fold(" Müller  &  Co. ") == "muller co"
    assert split_tokens("abc贸易 有限公司 xyz") == ["abc", "贸易有限公司", "xyz"]


def test_every_combining_mark_is_in_the_planes_the_rule_scans() -> None:
    assert marks_outside_known_planes() == 0
