"""A compact map from envelope MsgIds to a small value, for the clearing simulator's
long-lived bookkeeping (which bank a message went to, which MsgIds were answered).

A dict keyed by MsgId strings costs some 250 bytes a message (the MsgId, the
value's objects, the slot); under a soak at 235 payments a second that
alone grew the simulator by 17 MiB or more per 10 minutes.  Envelope
MsgIds are participant + yyyymmdd + a sequence (docs/clearing-link.md §3),
and a sender's sequences are close to consecutive, so each (participant,
date) keeps sorted *runs* of consecutive sequences that share one value:
two 8-byte bounds and a 4-byte value index per run, in ``array``s, with the
few distinct values held once per (participant, date).  A message costs at
most one run, usually a share of one.

Bounded two ways: with ``days`` only that many latest dates are kept (like
the MsgId memory's compact record), and with ``max_runs`` the oldest runs
(oldest date, lowest sequences) go first once there are more, an eighth of
``max_runs`` at a time so that eviction stays cheap.
MsgIds of another shape are kept as they are, in arrival order, under the
same bounds.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Hashable
from typing import Generic, TypeVar

from gateway.sim.dedupe import split_msg_id

V = TypeVar("V", bound=Hashable)


class _Runs(Generic[V]):
    """Sorted, disjoint, half-open runs ``[start, end)`` of one (participant, date)."""

    def __init__(self) -> None:
        self.starts = array("q")
        self.ends = array("q")
        self.vals = array("I")
        self.values: list[V] = []  # the distinct values, index = vals entry
        self._index: dict[V, int] = {}

    def __len__(self) -> int:
        return len(self.starts)

    def get(self, n: int) -> V | None:
        i = bisect.bisect_right(self.starts, n) - 1
        if i >= 0 and n < self.ends[i]:
            return self.values[self.vals[i]]
        return None

    def put(self, n: int, value: V) -> None:
        v = self._index.get(value)
        if v is None:
            v = self._index[value] = len(self.values)
            self.values.append(value)
        i = bisect.bisect_right(self.starts, n) - 1
        if i >= 0 and n < self.ends[i]:
            if self.vals[i] != v:
                self._split(i, n, v)
            return
        joins_left = i >= 0 and self.ends[i] == n and self.vals[i] == v
        joins_right = i + 1 < len(self.starts) and self.starts[i + 1] == n + 1
        joins_right = joins_right and self.vals[i + 1] == v
        if joins_left and joins_right:
            self.ends[i] = self.ends[i + 1]
            self._delete(i + 1, i + 2)
        elif joins_left:
            self.ends[i] = n + 1
        elif joins_right:
            self.starts[i + 1] = n
        else:
            self._insert(i + 1, n, n + 1, v)

    def drop_oldest(self, count: int) -> None:
        """Forget the ``count`` runs of the lowest sequences."""
        self._delete(0, count)

    def _split(self, i: int, n: int, v: int) -> None:
        """``n`` inside run ``i`` takes another value (a MsgId remembered again)."""
        start, end, old = self.starts[i], self.ends[i], self.vals[i]
        self._delete(i, i + 1)
        pieces = [(start, n, old), (n, n + 1, v), (n + 1, end, old)]
        for start_, end_, val in reversed(pieces):
            if start_ < end_:
                self._insert(i, start_, end_, val)

    def _insert(self, i: int, start: int, end: int, v: int) -> None:
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        self.vals.insert(i, v)

    def _delete(self, i: int, j: int) -> None:
        del self.starts[i:j], self.ends[i:j], self.vals[i:j]


class MsgIdRuns(Generic[V]):
    """MsgId → value, compact and bounded (see the module docstring)."""

    def __init__(self, *, days: int | None = 2, max_runs: int | None = None) -> None:
        if (days is not None and days < 1) or (max_runs is not None and max_runs < 1):
            raise ValueError("days >= 1 and max_runs >= 1")
        self._days = days
        self._max = max_runs
        self._books: dict[tuple[str, str], _Runs[V]] = {}
        self._odd: dict[str, dict[str, V]] = {}  # other MsgIds, per date digits
        self._size = 0

    def __contains__(self, msg_id: str) -> bool:
        return self.get(msg_id) is not None

    def get(self, msg_id: str) -> V | None:
        """The value last put for ``msg_id``, unless forgotten."""
        key, seq = split_msg_id(msg_id)
        if seq is None:
            return self._odd.get(key[1], {}).get(msg_id)
        book = self._books.get(key)
        return None if book is None else book.get(seq)

    def put(self, msg_id: str, value: V) -> None:
        """Remember ``value`` for ``msg_id`` (replacing what it had)."""
        key, seq = split_msg_id(msg_id)
        if seq is None:
            odd = self._odd.setdefault(key[1], {})
            self._size += msg_id not in odd
            odd.pop(msg_id, None)
            odd[msg_id] = value  # last put last: evicted in arrival order
        else:
            book = self._books.setdefault(key, _Runs())
            before = len(book)
            book.put(seq, value)
            self._size += len(book) - before
        if self._days is not None and len(self._dates()) > self._days:
            self._trim_days(self._days)
        if self._max is not None and self._size > self._max:
            self._evict(self._size - self._max + self._max // 8)

    @property
    def size(self) -> int:
        """Runs plus MsgIds of another shape held: the memory, roughly (some 20 bytes each)."""
        return self._size

    # -- inside -------------------------------------------------------------------

    def _dates(self) -> set[str]:
        return {d for _p, d in self._books} | set(self._odd)

    def _trim_days(self, days: int) -> None:
        for old in sorted(self._dates())[:-days]:
            for key in [k for k in self._books if k[1] == old]:
                self._size -= len(self._books.pop(key))
            self._size -= len(self._odd.pop(old, {}))

    def _evict(self, count: int) -> None:
        """Forget ``count`` entries, oldest date first: its odd MsgIds, then its lowest runs."""
        for day in sorted(self._dates()):
            odd = self._odd.get(day, {})
            while odd and count > 0:
                del odd[next(iter(odd))]
                self._size -= 1
                count -= 1
            if not odd:
                self._odd.pop(day, None)
            for key in sorted(k for k in self._books if k[1] == day):
                book = self._books[key]
                n = min(count, len(book))
                book.drop_oldest(n)
                self._size -= n
                count -= n
                if not book:
                    del self._books[key]
            if count <= 0:
                return


__all__ = ["MsgIdRuns"]
