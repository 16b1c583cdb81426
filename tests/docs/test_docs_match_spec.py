"""docs/ agrees with the contract it restates, and with the code.

The TrnCodes, RetCodes, payment states, engines and clearing message types
that the pages list are read from the pages' own tables and compared with
the spec's (read from the contract folder beside the repository — tests may
look outside it; the pages may not) and with the gateway's enums.  The pages
keep the spec's section numbers, so ``docs/protocol.md §n`` is corplink's
§n: every numbered section of the spec has its namesake in the page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.errors import RetCode
from gateway.model import Engine, State, TrnCode
from tests.docs.pages import DOCS, first_column, section, spec_dir

PAGES = {  # docs page -> the spec file it restates
    "protocol.md": "corplink.md",
    "routing-rules.md": "routing.md",
    "clearing-link.md": "clearing.md",
}


def _spec(name: str) -> str:
    path = spec_dir() / name
    if not path.is_file():
        pytest.skip(f"the contract is not beside the repository ({path})")
    return path.read_text(encoding="utf-8")


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _first_table(text: str) -> str:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def _listed(sentence_start: str, text: str) -> set[str]:
    """Upper-case words of the list that follows ``sentence_start``, parentheses dropped."""
    m = re.search(
        re.escape(sentence_start) + r"(.*?)(?:;|\.\s|$)", re.sub(r"\([^)]*\)", "", text), re.S
    )
    assert m, sentence_start
    return set(re.findall(r"\b[A-Z]{4,}\b", m.group(1)))


@pytest.mark.parametrize(("page", "spec"), sorted(PAGES.items()))
def test_pages_keep_the_spec_section_numbers(page: str, spec: str) -> None:
    numbers = re.findall(r"^## (\d+)\.", _spec(spec), re.M)
    ours = re.findall(r"^## (\d+)\.", _page(page), re.M)
    assert numbers and ours[: len(numbers)] == numbers


def test_trncodes() -> None:
    """corplink's TrnCodes, then the two that the drafts contract adds (its §2 table)."""
    spec = first_column(_first_table(section(_spec("corplink.md"), 4)), r"[A-Z0-9]+")
    spec += first_column(_first_table(section(_spec("drafts.md"), 2)), r"[A-Z0-9]+")
    ours = first_column(_first_table(section(_page("protocol.md"), 4)), r"[A-Z0-9]+")
    assert ours == spec
    assert set(ours) == {t.value for t in TrnCode}
    assert {"DRAFT", "DRAFTRFND"} <= set(ours)


def test_retcodes() -> None:
    spec = first_column(section(_spec("corplink.md"), 8), r"\d{4}")
    ours = first_column(_first_table(section(_page("protocol.md"), 8)), r"\d{4}")
    assert ours == spec
    assert set(ours) == {c.value for c in RetCode}


def test_states_and_engines() -> None:
    """corplink's states and engines, plus the ones the foreign-currency contract adds (§1)."""
    spec = section(_spec("corplink.md"), 5)
    fx = section(_spec("fx.md"), 1)
    added_states = set(re.findall(r"States \(corplink\.md §5\) gain `([A-Z]+)`", fx))
    added_engines = set(re.findall(r"`Engine` gains `([A-Z]+)`", fx))
    assert added_states == {"REVIEW"} and added_engines == {"SWIFT"}
    page = section(_page("protocol.md"), 5)
    states = set(first_column(page, r"[A-Z]+"))
    assert states == _listed("`State` ∈", spec) | added_states
    assert states == {s.value for s in State}
    engines = set(re.findall(r"`([A-Z]+)`", page.split("`Engine` is one of", 1)[1].split(";")[0]))
    assert engines == _listed("`Engine` ∈", spec) | added_engines == {e.value for e in Engine}


def test_clearing_message_types() -> None:
    pattern = r"[a-z]+\.[a-z0-9.]+"
    spec = first_column(_first_table(section(_spec("clearing.md"), 4)), pattern)
    ours = first_column(_first_table(section(_page("clearing-link.md"), 4)), pattern)
    assert ours == spec
    assert len(ours) == 10


def test_the_parsers_see_what_they_compare() -> None:
    """A parser that found nothing would make the comparisons above pass vacuously."""
    text = "| `PAY` | x |\n| `9999` | y |\n| not `a` code | z |\n"
    assert first_column(text, r"[A-Z0-9]+") == ["PAY", "9999"]
    assert _listed("`State` ∈", "`State` ∈ ACCEPTED, HELD (see `ReleaseAt`; later), SENT; x") == {
        "ACCEPTED",
        "HELD",
        "SENT",
    }
    assert Path(DOCS / "protocol.md").is_file()
