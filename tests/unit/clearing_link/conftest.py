"""Fixtures for the clearing-link tests: real mosquitto brokers, no mocks.

The plain ``broker`` comes from tests/conftest.py; this adds brokers with extra settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.unit.clearing_link.helpers import CustomBroker


@pytest.fixture
def custom_broker(tmp_path: Path) -> Iterator[Callable[[list[str]], CustomBroker]]:
    started: list[CustomBroker] = []

    def make(extra: list[str]) -> CustomBroker:
        workdir = tmp_path / f"custom{len(started)}"
        workdir.mkdir()
        b = CustomBroker(workdir, extra).start()
        started.append(b)
        return b

    try:
        yield make
    finally:
        for b in started:
            b.stop()
