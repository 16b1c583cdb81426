"""The hostile suite's daemon: the real gateway with the hostile listeners (tools.LISTENERS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from tests.hostile.tools import Hostile, hostile_daemon


@pytest.fixture
async def hostile(tmp_path: Path, dev_pki: DevPki, broker: Broker) -> AsyncIterator[Hostile]:
    async with hostile_daemon(tmp_path, dev_pki, broker.url) as h:
        yield h
