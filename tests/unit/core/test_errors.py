"""The RetCode table matches corplink.md §8 exactly (STYLE.md habit 7)."""

from __future__ import annotations

import re

import pytest

from gateway.errors import RET_TEXT, RetCode
from tests.docs.pages import spec_dir


def spec_codes() -> set[str]:
    path = spec_dir() / "corplink.md"
    if not path.is_file():  # as tests/docs/test_docs_match_spec.py: a clone on its own
        pytest.skip(f"the contract is not beside the repository ({path})")
    spec = path.read_text(encoding="utf-8")
    section = spec.split("## 8. Return codes", 1)[1]
    return set(re.findall(r"^\| (\d{4}) \|", section, flags=re.M))


def test_every_spec_code_is_in_the_table_and_nothing_else() -> None:
    assert {c.value for c in RetCode} == spec_codes()


def test_every_code_has_text_and_a_bounded_reason_word() -> None:
    for code in RetCode:
        assert RET_TEXT[code]
        assert re.fullmatch(r"[a-z_0-9]+", code.reason)
