"""Shared fixtures: a real mosquitto per test, a dev PKI per session, the real daemon."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.testing import Broker, start_broker
from gateway.testing_pg import PgServer, start_postgres
from tests.business_dates import suite_now

REPO = Path(__file__).resolve().parents[1]


def shared_xsd_dir() -> Path:
    """The official ISO 20022 schemas, used in place (never copied into the repo)."""
    env = os.environ.get("GATEWAY_SHARED_XSD")
    return Path(env) if env else (REPO.parent / "shared" / "xsd").resolve()


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """One throwaway PKI for the session (read-only for tests: copy it to change it)."""
    return generate_dev_pki(tmp_path_factory.mktemp("pki"), now=suite_now())


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_broker(tmp_path / "broker")
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server for one test module (its own port and folder)."""
    try:
        server = start_postgres()
    except RuntimeError as exc:  # no server binaries: say so instead of failing obscurely
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.destroy()
