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


SCHEMA_FILES = (
    "pain.001.001.09.xsd",
    "pacs.002.001.10.xsd",
    "pacs.003.001.08.xsd",
    "pacs.008.001.08.xsd",
)
"""The official ISO 20022 schemas that tests marked ``requires_xsd`` validate against."""


def shared_xsd_dir() -> Path:
    """The official ISO 20022 schemas, used in place (never copied into the repo)."""
    env = os.environ.get("GATEWAY_SHARED_XSD")
    return Path(env) if env else (REPO.parent / "shared" / "xsd").resolve()


def missing_xsd_reason() -> str | None:
    """Why tests marked ``requires_xsd`` cannot run here, or None when they can.

    The schemas are read in place beside the repository, never copied into it,
    so a clone on its own has none: those tests skip with this one reason
    instead of failing, and every other test still runs.
    """
    where = shared_xsd_dir()
    missing = [name for name in SCHEMA_FILES if not (where / name).is_file()]
    if not missing:
        return None
    some = "" if len(missing) == len(SCHEMA_FILES) else f" (no {', '.join(missing)})"
    return (
        f"official ISO 20022 schemas not found at {where}{some}; "
        "set GATEWAY_SHARED_XSD to a folder holding pain.001.001.09.xsd etc."
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the tests marked ``requires_xsd`` when the official schemas are absent."""
    reason = missing_xsd_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("requires_xsd") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


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
