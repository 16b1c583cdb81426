"""Helpers for the calendar edge tests: dates from the shipped calendars, a daemon on a
business clock, reading what a response says about time, and a tap on the clearing link.

The edges (routing.md §4, §5) are instants on the business clock.  Each test starts
the real daemon with ``clock.start`` a second before its edge (``environment =
"test"``, ``clock.rate = 1.0``), so the edge passes while the test watches.  Dates
are found in the shipped calendar files relative to today, within the dev PKI's
validity (certificates backdated 400 days, CRLs fresh for 7 days), so the tests
run whatever day the suite runs; a kind of day the calendars no longer offer in
that range skips the test rather than fail it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from lxml import etree

from gateway.clearing.documents import (
    hardened_parser,
    parse_envelope,
    parse_message,
    transaction_ids,
)
from gateway.clock import SHANGHAI, Clock
from gateway.config import Config
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import verify_pinned
from gateway.paths import default_config_path
from gateway.routing.calendar import WorkCalendar
from gateway.routing.calendar_files import load_calendars
from gateway.server import Gateway
from gateway.sim.erp import ErpClient, Reply
from gateway.testing import Broker
from tests.business_dates import suite_today
from tests.integration.harness import Erp, gateway_config, running_clearing_sim, running_gateway

CAL: WorkCalendar = load_calendars(default_config_path().parent.parent / "routing" / "calendar")
"""The shipped calendars (routing/calendar/*.toml), as the daemon loads them."""

LEAD = timedelta(seconds=1.5)
"""How far before its edge a test's business clock starts (the daemon is ready in ~50 ms;
the margin is for a loaded machine: each test checks its first answer came before the edge)."""

SEARCH_BACK_DAYS = 390
"""How far back a date may lie: the dev PKI's certificates are backdated 400 days."""

INTRA_CODE = "103290000018"  # one of our branches → INTRA
HVPS_CODE = "104100000004"  # BOC, a direct participant
BEPS_CODE = "105100000017"  # CCB, a direct participant (its own receiver)
HVPS_AMOUNT = "80000.00"  # ≥ 50,000.00 → HVPS (routing.md §3)
BEPS_AMOUNT = "100.00"

_NS = {"c": "urn:corplink:1"}


def shanghai(day: date, hh: int, mm: int = 0, ss: int = 0, ms: int = 0) -> datetime:
    """``day hh:mm:ss.ms`` Asia/Shanghai."""
    return datetime.combine(day, time(hh, mm, ss, ms * 1000), SHANGHAI)


def latest_day(pred: Callable[[date], bool], what: str) -> date:
    """The latest date up to today (Asia/Shanghai) for which ``pred`` holds.

    Skips the test when the shipped calendars offer none within the dev PKI's
    validity (the calendar files then need their next year).
    """
    today = suite_today()
    for back in range(SEARCH_BACK_DAYS + 1):
        day = today - timedelta(days=back)
        if pred(day):
            return day
    pytest.skip(f"no {what} in the shipped calendars within {SEARCH_BACK_DAYS} days")


def is_weekday_holiday(day: date) -> bool:
    """A listed holiday falling Monday-Friday: closed only because of the calendar."""
    return day in CAL.holidays and day.weekday() < 5


def clocked_config(
    tmp: Path, pki: DevPki, broker: Broker, start: datetime, extra: dict[str, Any] | None = None
) -> Config:
    """The harness config with the daemon's own business clock (routing.md §4:
    ``clock.start`` ISO 8601 with offset, ``clock.rate``, ``environment = "test"``)."""
    over: dict[str, Any] = {"clock": {"start": start.isoformat(), "rate": 1.0}}
    return gateway_config(tmp, pki, broker.url, {**over, **(extra or {})})


@contextlib.asynccontextmanager
async def clocked_gateway(
    tmp: Path,
    pki: DevPki,
    broker: Broker,
    start: datetime,
    extra: dict[str, Any] | None = None,
    *,
    clearing: bool = True,
) -> AsyncIterator[tuple[Gateway, ErpClient]]:
    """The daemon on its business clock from ``start`` (:func:`clocked_config`, state in
    ``tmp/gw``), the clearing simulator beside it unless ``clearing`` is False (record
    ``tmp/rec.jsonl``), and a connected ERP client of C100000001, closed at the end."""
    cfg = clocked_config(tmp / "gw", pki, broker, start, extra)
    async with contextlib.AsyncExitStack() as stack:
        if clearing:
            sim = running_clearing_sim(pki, broker.url, tmp / "rec.jsonl")
            await stack.enter_async_context(sim)
        gw = await stack.enter_async_context(running_gateway(cfg))
        erp = await Erp(gw, pki).client()
        try:
            yield gw, erp
        finally:
            await erp.close()


async def until(clock: Clock, instant: datetime) -> None:
    """Wait until the business clock reads ``instant`` or later.

    The edge itself is the event the tests wait for; it can only be observed by
    reading the clock, so this sleeps on the clock (never a fixed delay).
    """
    rate = float(getattr(clock, "rate", 1.0))
    while (left := (instant - clock.now()).total_seconds()) > 0:
        await asyncio.sleep(left / rate + 0.005)


@dataclass(frozen=True)
class Answer:
    """What a signed CorpLink response says about time (corplink.md §5)."""

    ret_code: str
    state: str | None
    engine: str | None
    work_date: date | None
    release_at: datetime | None
    rsp_time: datetime
    gw_ref: str | None
    dup: bool
    history: tuple[tuple[str, datetime], ...]

    def stepped(self, state: str) -> datetime:
        """When the item entered ``state`` (its History step)."""
        for name, at in self.history:
            if name == state:
                return at
        raise AssertionError(f"no {state} step in {self.history}")


def answer(reply: Reply) -> Answer:
    """Read ``RspTime``, ``WorkDate``, ``ReleaseAt`` and ``History`` from a verified reply."""
    root = etree.fromstring(reply.raw, etree.XMLParser(resolve_entities=False, no_network=True))

    def text(path: str) -> str | None:
        found = root.find(path, _NS)
        return found.text if found is not None else None

    rsp_time = text("c:Head/c:RspTime")
    assert rsp_time is not None, "every response carries RspTime (corplink.md §5)"
    work = text("c:Body/c:Status/c:WorkDate")
    release = text("c:Body/c:Status/c:ReleaseAt")
    steps = root.findall("c:Body/c:Status/c:History/c:Step", _NS)
    return Answer(
        ret_code=reply.ret_code,
        state=reply.state,
        engine=reply.engine,
        work_date=date.fromisoformat(work) if work else None,
        release_at=datetime.fromisoformat(release) if release else None,
        rsp_time=datetime.fromisoformat(rsp_time),
        gw_ref=reply.gw_ref,
        dup=reply.dup,
        history=tuple(
            (s.get("State") or "", datetime.fromisoformat(s.get("At") or "")) for s in steps
        ),
    )


@dataclass(frozen=True)
class Sent:
    """One message the gateway published to the clearing system (clearing.md §3 header)."""

    msg_tp: str
    msg_id: str
    work_date: date
    end_to_end_ids: tuple[str, ...]


@contextlib.asynccontextmanager
async def clearing_tap(broker: Broker, pki: DevPki) -> AsyncIterator[dict[str, Sent]]:
    """Listen beside the clearing simulator to what the gateway publishes.

    Yields a dict MsgId → :class:`Sent` that fills as messages arrive (a re-send
    under the same MsgId is one entry): the envelope's ``WorkDt`` says which
    work date a BEPS package belongs to, which the simulator's record does not.
    Messages are verified against the gateway's clearing certificate first.
    """
    certs = x509.load_pem_x509_certificates(pki.clearing_cert.read_bytes())
    parser = hardened_parser()
    seen: dict[str, Sent] = {}
    async with aiomqtt.Client(
        broker.host, broker.port, identifier="calendar-tap", protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe("clearing/+/out", qos=1)

        async def read() -> None:
            async for message in client.messages:
                data = message.payload if isinstance(message.payload, bytes) else b""
                env = parse_envelope(verify_pinned(parse_message(data, parser), certs).signed_root)
                ids = tuple(e2e for e2e, _ in transaction_ids(env.document) if e2e is not None)
                seen[env.msg_id] = Sent(env.msg_tp, env.msg_id, env.work_date, ids)

        task = asyncio.create_task(read())
        try:
            yield seen
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
