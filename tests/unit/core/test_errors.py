"""The RetCode table matches corplink.md §8 exactly (STYLE.md habit 7)."""

from __future__ import annotations

import re

from gateway.errors import RET_TEXT, RetCode
from tests.conftest import REPO


def spec_codes() -> set[str]:
    spec = (REPO.parent / "shared" / "spec" / "corplink.md").read_text(encoding="utf-8")
    section = spec.split("## 8. Return codes", 1)[1]
    return set(re.findall(r"^\| (\d{4}) \|", section, flags=re.M))


def test_every_spec_code_is_in_the_table_and_nothing_else() -> None:
    assert {c.value for c in RetCode} == spec_codes()


def test_every_code_has_text_and_a_bounded_reason_word() -> None:
    for code in RetCode:
        assert RET_TEXT[code]
        assert re.fullmatch(r"[a-z_0-9]+", code.reason)
