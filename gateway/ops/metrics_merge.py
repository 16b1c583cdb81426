"""TEMPORARY stand-in (the helper's module replaces it)."""

from __future__ import annotations

import pickle


def snapshot() -> bytes:
    return pickle.dumps([], protocol=5)


class FrontMetrics:
    def __init__(self) -> None:
        self.fronts: dict[int, bytes] = {}

    def update(self, front_id: int, data: bytes) -> None:
        self.fronts[front_id] = data

    def forget(self, front_id: int) -> None:
        self.fronts.pop(front_id, None)
