"""Inbound correspondence applied to a real SQLite journal (clearing.md §4, §6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path

import pytest

from gateway.clearing.ccms import InquiryDoc
from gateway.clock import SHANGHAI, FrozenClock
from gateway.correspondence.inbound import AccountIndex, InboundCorrespondence
from gateway.desk import InboundClearing
from gateway.journal.records import InquiryDirection
from gateway.journal.sqlite import SqliteStore
from gateway.keys.enrolment import Registry
from gateway.model import Engine
from gateway.ops.metrics import REGISTRY

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "journal.sqlite")
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def inbound(store: SqliteStore) -> InboundCorrespondence:
    empty = Registry({})
    return InboundCorrespondence(store, FrozenClock(T0), AccountIndex(lambda: empty), lambda: None)


def inquiry(inq_id: str) -> InboundClearing:
    return InboundClearing(
        "ccms.314",
        "104100000004202611270000000001",
        sndr="104100000004",
        work_date=date(2026, 11, 27),
        inquiry=InquiryDoc(inq_id, "X", "GW20261127A000000001", "请核实"),
    )


def _count(kind: str) -> float:
    v = REGISTRY.get_sample_value("gateway_inquiries_total", {"direction": "in", "kind": kind})
    return v or 0.0


async def test_an_inquiry_id_corplink_cannot_carry_is_counted_not_journaled(
    store: SqliteStore,
) -> None:
    before = _count("inquiry_unusable_id")
    assert await inbound(store).handle(inquiry("Q#1/2026"), Engine.BEPS)
    assert _count("inquiry_unusable_id") == before + 1
    assert await store.find_inquiry("Q#1/2026", InquiryDirection.IN) is None


async def test_an_inquiry_about_nothing_we_know_is_counted(store: SqliteStore) -> None:
    before = _count("inquiry_unknown")
    assert await inbound(store).handle(inquiry("Q-2"), Engine.BEPS)
    assert _count("inquiry_unknown") == before + 1
    assert await store.find_inquiry("Q-2", InquiryDirection.IN) is None


async def test_a_message_that_is_not_correspondence_is_left_to_the_caller(
    store: SqliteStore,
) -> None:
    plain = InboundClearing("ccms.990", "M1")
    assert not await inbound(store).handle(plain, Engine.HVPS)
