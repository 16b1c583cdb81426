"""Reading docs/ pages for the documentation tests: the example requests of
docs/protocol.md with the RetCode written by hand beside each, and the spec's
tables that the pages must agree with."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PROTOCOL = DOCS / "protocol.md"

_MARK = re.compile(r"<!-- example (?P<opts>[^>]*?)\s*-->\s*```xml\n(?P<xml>.*?)```", re.S)
_XML_BLOCK = re.compile(r"```xml\n(.*?)```", re.S)


@dataclass(frozen=True)
class Example:
    """One example request of the guide and what the page says about it."""

    line: int  # in docs/protocol.md, for messages
    expect: str  # the RetCode written by hand in the page source
    request: str
    response: str | None  # the response example that follows it, if any
    opts: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"docs/protocol.md:{self.line}"


def examples(text: str | None = None) -> list[Example]:
    """The marked examples of the page in page order, each with the next
    ``CorpLinkRsp`` block before the following example (its response)."""
    text = PROTOCOL.read_text(encoding="utf-8") if text is None else text
    marks = list(_MARK.finditer(text))
    out = []
    for i, m in enumerate(marks):
        opts = dict(kv.split("=", 1) for kv in m.group("opts").split())
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        response = next(
            (
                b.group(1)
                for b in _XML_BLOCK.finditer(text, m.end(), end)
                if b.group(1).lstrip().startswith("<CorpLinkRsp")
            ),
            None,
        )
        expect = opts.pop("expect")
        line = text.count("\n", 0, m.start()) + 1
        out.append(Example(line, expect, m.group("xml"), response, opts))
    return out


def fenced_after(marker: str, text: str | None = None) -> str:
    """The fenced block right after ``<!-- marker -->`` in docs/protocol.md."""
    text = PROTOCOL.read_text(encoding="utf-8") if text is None else text
    m = re.search(rf"<!-- {re.escape(marker)} -->\s*```\w*\n(.*?)```", text, re.S)
    assert m, f"no <!-- {marker} --> block in docs/protocol.md"
    return m.group(1)


# -- the spec, which the pages must agree with --------------------------------------------


def spec_dir() -> Path:
    """The contract the docs restate (outside the repository; tests only)."""
    env = os.environ.get("GATEWAY_SHARED_SPEC")
    return Path(env) if env else (REPO.parent / "shared" / "spec").resolve()


def section(text: str, number: int) -> str:
    """The text of ``## <number>.`` up to the next ``## `` heading."""
    m = re.search(rf"^## {number}\.[^\n]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"no section {number}"
    return m.group(1)


def first_column(text: str, pattern: str) -> list[str]:
    """The first cell of each table row whose first cell matches ``pattern``
    (backticks stripped), in order."""
    out = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cell = line.split("|")[1].strip().strip("`").strip()
        if re.fullmatch(pattern, cell):
            out.append(cell)
    return out
