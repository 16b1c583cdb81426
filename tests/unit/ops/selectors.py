"""The series a PromQL expression reads, and whether an exposition holds them.

Enough of PromQL for the project's own rules and dashboard: every
``gateway_...`` vector selector with its label matchers.  Recording rules'
names (``gateway:...``) and other exporters' metrics (``up``) are not ours to
create, so they are left out.  A regex matcher that is a plain alternation
(``stage=~"signature|credentials"``) asks for a series of each alternative;
matchers on the target labels ``job`` and ``instance`` are Prometheus's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_SELECTOR = re.compile(r"(?<![\w:])(gateway_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_PLAIN_ALTERNATION = re.compile(r"[\w\-]+(\|[\w\-]+)+")

Sample = tuple[str, dict[str, str]]

TARGET_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus adds to every scraped series: no exporter exposes them."""


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]

    def __str__(self) -> str:
        inner = ",".join(f'{k}{op}"{v}"' for k, op, v in self.matchers)
        return f"{self.name}{{{inner}}}"

    def matches(self, sample: Sample) -> bool:
        name, labels = sample
        if name != self.name:
            return False
        for key, op, value in self.matchers:
            have = labels.get(key, "")
            hit = re.fullmatch(value, have) is not None if "~" in op else have == value
            if hit != (op in ("=", "=~")):
                return False
        return True


def selectors(expr: str) -> Iterator[Selector]:
    """Every ``gateway_`` selector of ``expr``; a plain alternation gives one per word."""
    for m in _SELECTOR.finditer(expr):
        matchers = [
            (key, op, value)
            for key, op, value in _MATCHER.findall(m.group(2) or "")
            if key not in TARGET_LABELS
        ]
        variants: list[list[tuple[str, str, str]]] = [[]]
        for key, op, value in matchers:
            if op == "=~" and _PLAIN_ALTERNATION.fullmatch(value):
                variants = [[*v, (key, "=", word)] for v in variants for word in value.split("|")]
            else:
                variants = [[*v, (key, op, value)] for v in variants]
        for v in variants:
            yield Selector(m.group(1), tuple(v))


def samples(exposition: str) -> list[Sample]:
    """(name, labels) of every sample in a Prometheus text exposition."""
    return [
        (s.name, dict(s.labels))
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    ]


def unmatched(wanted: Iterable[Selector], exposed: list[Sample]) -> list[str]:
    """The selectors no exposed sample satisfies, as text."""
    return sorted({str(sel) for sel in wanted if not any(sel.matches(s) for s in exposed)})
