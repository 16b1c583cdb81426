"""Helpers for the bank-draft edge tests (docs/bank-drafts.md): a private copy of the test
PKI with its own enrolment rules and no draft keys yet, business dates picked from the
shipped calendars, a running daemon with the clearing simulator and an ERP client, and
reading the daemon's /metrics.

Dates are found counting back from "today" (``tests/business_dates.py``) so that every
instant a test moves the ``FrozenClock`` to lies in the past: the dev PKI's CRL is only
fresh for a few days after the session made it, and the certificates were backdated.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import SHANGHAI, FrozenClock
from gateway.config import Config
from gateway.drafts.keystore import DEFAULT_STORE_NAME
from gateway.keys.devpki import DevPki, render_registry
from gateway.paths import default_config_path
from gateway.routing.calendar import WorkCalendar
from gateway.routing.calendar_files import load_calendars
from gateway.server import Gateway
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import DraftApplication, DraftInfo, ErpClient, Notification, Reply
from gateway.sim.present import CentreLink, present
from gateway.testing import Broker
from tests.business_dates import suite_today
from tests.integration.harness import Erp, gateway_config, running_clearing_sim, running_gateway
from tests.integration.keys_support import copy_pki, sample, scrape

CAL: WorkCalendar = load_calendars(default_config_path().parent.parent / "routing" / "calendar")
PARTICIPANT = "103100000019"
AGENT = "104100000004"  # another bank's direct participant in our area (1000)
PASSPHRASE_ENV = "GATEWAY_TEST_DRAFT_EDGES_PASSPHRASE"
PASSPHRASE = "draft keys of the edge tests only"
PAYER = "6222000000000001"  # C100000001's first enrolled account
PAYER_MASKED = "6222********0001"
WAIT = 20.0
SEARCH_BACK_DAYS = 380  # the dev PKI's certificates are backdated 400 days


def ids(prefix: str) -> Iterator[str]:
    return (f"{prefix}-{n}" for n in itertools.count(1))


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), SHANGHAI)


def latest_day(pred: Callable[[date], bool], what: str) -> date:
    """The latest working day up to today for which ``pred`` holds; skips when the shipped
    calendars offer none (they then need their next year)."""
    today = suite_today()
    for back in range(SEARCH_BACK_DAYS + 1):
        day = today - timedelta(days=back)
        if CAL.is_working_day(day) and pred(day):
            return day
    pytest.skip(f"no {what} in the shipped calendars within {SEARCH_BACK_DAYS} days")


def application(amount: str, payer: str = PAYER, **kw: Any) -> DraftApplication:
    values: dict[str, Any] = {
        "payer_acct": payer,
        "payer_name": "示范贸易有限公司",
        "payee_name": "收款公司",
        "amount": Decimal(amount),
    }
    return DraftApplication(**{**values, **kw})


def private_pki(dev_pki: DevPki, dest: Path) -> DevPki:
    """A copy of the session PKI without draft keys: the daemon makes its own at start."""
    pki = copy_pki(dev_pki, dest)
    (pki.dir / DEFAULT_STORE_NAME).unlink(missing_ok=True)
    return pki


def edit_enrolment(pki: DevPki, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite ``enrolment.toml`` after ``change`` edits one corporate's table (by CorpId
    in ``change``'s closure); the registry format is keys/enrolment.example.toml."""
    data = tomllib.loads(pki.enrolment.read_text(encoding="utf-8"))
    for corp in data["corporate"]:
        change(corp)
    pki.enrolment.write_text(render_registry(data["corporate"]), encoding="utf-8")


def drafts_config(state: Path, pki: DevPki, broker: Broker, **extra: Any) -> Config:
    over: dict[str, Any] = {"keys": {"passphrase_env": PASSPHRASE_ENV}}
    over.update(extra)
    return gateway_config(state, pki, broker.url, over)


async def metric(gw: Gateway, series: str) -> float:
    """One series of the daemon's /metrics, read over HTTP (0 when absent)."""
    return sample(await scrape(gw), series) or 0.0


async def metric_reaches(gw: Gateway, series: str, value: float) -> float:
    """Poll /metrics until ``series`` is ``value`` (gauges refresh after each draft pass)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    seen = await metric(gw, series)
    while seen != value and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        seen = await metric(gw, series)
    return seen


class Teller:
    """A running daemon and clearing simulator, an ERP client, and a presenter."""

    def __init__(
        self,
        gw: Gateway,
        sim: ClearingSimulator | None,
        erp: ErpClient,
        clock: FrozenClock,
        pki: DevPki,
        cfg: Config,
    ) -> None:
        self.gw, self.sim, self.erp, self.clock, self.pki, self.cfg = gw, sim, erp, clock, pki, cfg
        self.link = CentreLink.of_simulator(sim.config) if sim is not None else None
        self.notes = ids("N")
        self.statuses = ids("S")

    def move(self, when: datetime) -> None:
        """Move the business clock and run the draft pass (settlement, gauges) at once."""
        self.clock.set(when)
        self.gw.drafts.link.wake()

    async def apply(self, msg_id: str, amount: str, **kw: Any) -> Reply:
        r = await self.erp.apply_draft(msg_id, self.clock.now(), application(amount, **kw))
        assert r.ret_code == "0000", r.ret_msg
        assert r.draft is not None
        return r

    async def present(self, draft: Any, **kw: Any) -> tuple[str, str | None]:
        assert self.link is not None
        values: dict[str, Any] = {
            "draft_no": draft.draft_no,
            "code": draft.code,
            "amount": draft.amount,
            "settle_amount": draft.amount,
            "agent_bank": AGENT,
            "issue_date": draft.issue_date,
            "work_date": self.clock.now().date(),
            "timeout": WAIT,
        }
        values.update(kw)
        return await present(self.link, **values)

    async def state(self, draft_no: str, state: str) -> Notification:
        seen = await self.erp.wait_draft_state(
            self.notes, self.clock.now, draft_no, state, timeout=WAIT
        )
        assert seen is not None, f"no DRAFT notification {state} for {draft_no}"
        return seen

    async def notices(self, draft_no: str) -> list[Notification]:
        """Every DRAFT notification of ``draft_no`` so far, in NtfyId order."""
        found = await self.erp.pull_all(self.notes, self.clock.now())
        return [n for n in found if n.kind == "DRAFT" and n.draft_no == draft_no]

    async def status(self, orig_msg_id: str) -> Reply:
        r = await self.erp.status(next(self.statuses), self.clock.now(), orig_msg_id)
        assert r.ret_code == "0000" and r.draft is not None, r.ret_msg
        return r

    async def history_until(self, orig_msg_id: str, done: Callable[[DraftInfo], bool]) -> Reply:
        """STATUS until its ``Draft`` is ``done`` (a step without NTFY, e.g. a rejected
        settle, shows only here)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        r = await self.status(orig_msg_id)
        while not done(_draft(r)) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            r = await self.status(orig_msg_id)
        return r


def _draft(r: Reply) -> DraftInfo:
    assert r.draft is not None
    return r.draft


@contextlib.asynccontextmanager
async def running_teller(
    tmp_path: Path,
    pki: DevPki,
    broker: Broker,
    clock: FrozenClock,
    *,
    clearing: bool = True,
    **sim_kw: Any,
) -> AsyncIterator[Teller]:
    """The daemon (state in ``tmp_path/gw``) on ``pki``, the clearing simulator unless
    ``clearing`` is False, and an ERP client of C100000001 op01 (USBKey)."""
    cfg = drafts_config(tmp_path / "gw", pki, broker)
    async with contextlib.AsyncExitStack() as stack:
        sim = None
        if clearing:
            sim = await stack.enter_async_context(
                running_clearing_sim(pki, broker.url, tmp_path / "rec.jsonl", **sim_kw)
            )
        gw = await stack.enter_async_context(running_gateway(cfg, clock))
        erp = await Erp(gw, pki).client()
        try:
            yield Teller(gw, sim, erp, clock, pki, cfg)
        finally:
            await erp.close()
