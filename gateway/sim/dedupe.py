"""The clearing simulator's memory of MsgIds: exact within a window, compact beyond it.

The clearing system deduplicates by envelope MsgId (docs/clearing-link.md §1):
a re-send gets the very answers of the first delivery.  Keeping every MsgId
with its signed answers for ever made the simulator grow by some 190 MiB per
10 minutes under a soak, so:

- for ``window`` seconds after a MsgId was first seen (at least twice the
  gateway's receipt timeout, after which it re-sends), its answers are kept
  and replayed byte for byte;
- beyond the window only the fact that it was seen is kept, compactly: the
  sequence numbers of each (participant, date) as sorted ranges (a day's
  MsgIds are close to consecutive, so a day costs a few ranges), for the two
  latest dates.  A MsgId found there is a *late* redelivery: counted, and
  decided again (decisions are pure functions of the transaction, so the
  outcome is the same).
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

A = TypeVar("A")

Seen = Literal["new", "recent", "late"]

_PARTICIPANT_LEN = 12
_DATE_LEN = 8
_MSG_ID_LEN = 30  # participant + yyyymmdd + 10-digit sequence


@dataclass
class _Ranges:
    """A set of integers as sorted, disjoint, half-open ranges ``[start, end)``."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def __contains__(self, n: int) -> bool:
        i = bisect.bisect_right(self.starts, n) - 1
        return i >= 0 and n < self.ends[i]

    def add(self, n: int) -> None:
        i = bisect.bisect_right(self.starts, n) - 1
        if i >= 0 and n < self.ends[i]:
            return
        joins_left = i >= 0 and self.ends[i] == n
        joins_right = i + 1 < len(self.starts) and self.starts[i + 1] == n + 1
        if joins_left and joins_right:
            self.ends[i] = self.ends[i + 1]
            del self.starts[i + 1], self.ends[i + 1]
        elif joins_left:
            self.ends[i] = n + 1
        elif joins_right:
            self.starts[i + 1] = n
        else:
            self.starts.insert(i + 1, n)
            self.ends.insert(i + 1, n + 1)

    def __len__(self) -> int:
        return len(self.starts)


class MsgIdMemory(Generic[A]):
    """Which MsgIds were seen, and the answers of the recent ones (see the module docstring)."""

    def __init__(
        self,
        window: float,
        *,
        max_recent: int = 100_000,
        days: int = 2,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if window <= 0 or max_recent < 1 or days < 1:
            raise ValueError("window > 0, max_recent >= 1, days >= 1")
        self.window = window
        self.max_recent = max_recent
        self._days = days
        self._now = monotonic
        self._recent: OrderedDict[str, tuple[float, A | None]] = OrderedDict()
        self._old: dict[tuple[str, str], _Ranges] = {}
        self._odd: dict[str, set[str]] = {}  # MsgIds of another shape, per date prefix

    def seen(self, msg_id: str) -> Seen:
        """``recent`` within the window, ``late`` beyond it, else ``new``."""
        self._expire()
        if msg_id in self._recent:
            return "recent"
        return "late" if self._in_old(msg_id) else "new"

    def answer(self, msg_id: str) -> A | None:
        """The answers kept for a recent MsgId."""
        entry = self._recent.get(msg_id)
        return None if entry is None else entry[1]

    def remember(self, msg_id: str, answer: A | None) -> None:
        """Record ``msg_id`` (first sight, or a late one decided again) with its answers."""
        self._recent.pop(msg_id, None)
        self._recent[msg_id] = (self._now(), answer)
        self._expire()

    @property
    def recent_count(self) -> int:
        return len(self._recent)

    @property
    def ranges(self) -> int:
        """How many ranges the compact record holds (its memory, roughly)."""
        return sum(len(r) for r in self._old.values()) + sum(len(s) for s in self._odd.values())

    # -- inside -------------------------------------------------------------------

    def _expire(self) -> None:
        horizon = self._now() - self.window
        while self._recent:
            msg_id, (at, _answer) = next(iter(self._recent.items()))
            if at >= horizon and len(self._recent) <= self.max_recent:
                break
            del self._recent[msg_id]
            self._to_old(msg_id)

    def _to_old(self, msg_id: str) -> None:
        key, seq = split_msg_id(msg_id)
        if seq is None:
            self._odd.setdefault(key[1], set()).add(msg_id)
        else:
            self._old.setdefault(key, _Ranges()).add(seq)
        self._trim_days()

    def _in_old(self, msg_id: str) -> bool:
        key, seq = split_msg_id(msg_id)
        if seq is None:
            return msg_id in self._odd.get(key[1], ())
        ranges = self._old.get(key)
        return ranges is not None and seq in ranges

    def _trim_days(self) -> None:
        dates = sorted({d for _p, d in self._old} | set(self._odd))
        for old in dates[: -self._days]:
            for key in [k for k in self._old if k[1] == old]:
                del self._old[key]
            self._odd.pop(old, None)


def split_msg_id(msg_id: str) -> tuple[tuple[str, str], int | None]:
    """``((participant, yyyymmdd), sequence)`` of a MsgId of the envelope's shape, else
    ``(("", prefix), None)`` with the digits where the date would be."""
    if len(msg_id) == _MSG_ID_LEN and msg_id.isdigit():
        date_end = _PARTICIPANT_LEN + _DATE_LEN
        return (msg_id[:_PARTICIPANT_LEN], msg_id[_PARTICIPANT_LEN:date_end]), int(
            msg_id[date_end:]
        )
    return ("", msg_id[_PARTICIPANT_LEN : _PARTICIPANT_LEN + _DATE_LEN]), None
