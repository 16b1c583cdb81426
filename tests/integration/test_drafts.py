"""Bank drafts through the real daemon (docs/bank-drafts.md): DRAFT and DRAFTRFND on
CorpLink, the draft messages on the INTRA link with the clearing simulator answering
them, presentments by an agent bank, the next-working-day settlement and refunds —
against a real mosquitto, a real SQLite journal and the test PKI.

The business clock is a ``FrozenClock`` on a working Friday, 10:00, moved by hand to
the next working day's 00:05 for the settlement pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import SHANGHAI, FrozenClock
from gateway.config import Config
from gateway.keys.devpki import DevPki
from gateway.routing.calendar import WorkCalendar
from gateway.routing.calendar_files import load_calendars
from gateway.server import Gateway
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import DraftApplication, ErpClient
from gateway.sim.present import CentreLink, present
from gateway.testing import Broker
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
)
from tests.integration.keys_support import copy_pki

FRIDAY_10 = recent_friday_10()
PARTICIPANT = "103100000019"
AGENT = "104100000004"  # another bank's direct participant in area 1000, as ours
AGENT_ELSEWHERE = "103290000018"  # our Shanghai branch: area 2900, outside the province
PASSPHRASE_ENV = "GATEWAY_TEST_DRAFT_PASSPHRASE"
WAIT = 20.0


def ids(prefix: str) -> Iterator[str]:
    return (f"{prefix}-{n}" for n in itertools.count(1))


def calendar() -> WorkCalendar:
    return load_calendars(Path(__file__).resolve().parents[2] / "routing" / "calendar")


def calendar_next_working_day(d: date) -> date:
    return calendar().next_working_day(d)


def application(amount: str, **kw: Any) -> DraftApplication:
    values: dict[str, Any] = {
        "payer_acct": "6222000000000001",
        "payer_name": "示范贸易有限公司",
        "payee_name": "收款公司",
        "amount": Decimal(amount),
    }
    return DraftApplication(**{**values, **kw})


def drafts_config(tmp_path: Path, pki: DevPki, broker: Broker, **extra: Any) -> Config:
    """The daemon on a private copy of the session PKI: it writes draft-keys.toml there."""
    own = copy_pki(pki, tmp_path / "pki")
    over: dict[str, Any] = {"keys": {"passphrase_env": PASSPHRASE_ENV}}
    over.update(extra)
    return gateway_config(tmp_path / "gw", own, broker.url, over)


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "draft keys of the test suite only")


class Tour:
    """A running gateway and clearing simulator, an ERP client, and a presenter."""

    def __init__(
        self, gw: Gateway, sim: ClearingSimulator, erp: ErpClient, clock: FrozenClock
    ) -> None:
        self.gw, self.sim, self.erp, self.clock = gw, sim, erp, clock
        self.link = CentreLink.of_simulator(sim.config)
        self.notes = ids("N")

    async def present(self, draft: Any, **kw: Any) -> tuple[str, str | None]:
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

    async def state(self, draft_no: str, state: str) -> Any:
        seen = await self.erp.wait_draft_state(
            self.notes, self.clock.now, draft_no, state, timeout=WAIT
        )
        assert seen is not None, f"no DRAFT notification {state} for {draft_no}"
        return seen


@contextlib.asynccontextmanager
async def _tour(
    tmp_path: Path,
    pki: DevPki,
    broker: Broker,
    clock: FrozenClock,
    gw_extra: dict[str, Any] | None = None,
    **sim_kw: Any,
) -> AsyncIterator[Tour]:
    cfg = drafts_config(tmp_path, pki, broker, **(gw_extra or {}))
    async with (
        running_clearing_sim(pki, broker.url, tmp_path / "rec.jsonl", **sim_kw) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, pki).client()
        try:
            yield Tour(gw, sim, erp, clock)
        finally:
            await erp.close()


async def test_issue_present_once_and_settle_the_remainder_next_working_day(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None
) -> None:
    clock = FrozenClock(FRIDAY_10)
    async with _tour(tmp_path, dev_pki, broker, clock) as t:
        r = await t.erp.apply_draft("D-1", clock.now(), application("1000.00"))
        assert r.ret_code == "0000", r.ret_msg
        d = r.draft
        assert d is not None
        assert d.draft_no.startswith(PARTICIPANT) and len(d.draft_no) == 20
        assert d.state == "PENDING" and d.amount == Decimal("1000.00")
        assert d.issue_date == FRIDAY_10.date()
        assert d.expiry_date > d.issue_date and len(d.code) == 16 and d.code.isdigit()
        # a replay gets the same DraftNo and Code; another body under the MsgId is 3001
        again = await t.erp.apply_draft("D-1", clock.now(), application("1000.00"))
        assert again.ret_code == "0000" and again.dup
        assert again.draft is not None and again.draft.draft_no == d.draft_no
        assert again.draft.code == d.code
        other = await t.erp.apply_draft("D-1", clock.now(), application("999.00"))
        assert other.ret_code == "3001"

        await t.state(d.draft_no, "ISSUED")
        # the checks, each with its reason, before the one that pays
        assert await t.present(d, code="0" * 16) == ("RJCT", "CD")
        assert await t.present(d, amount=Decimal("1000.01")) == ("RJCT", "AM")
        assert await t.present(d, settle_amount=Decimal("1000.01")) == ("RJCT", "SA")
        assert await t.present(d, agent_bank="999999999999") == ("RJCT", "NF")
        paid = await t.present(d, settle_amount=Decimal("800.00"), prsntmt_id="PR-1")
        assert paid == ("ACCP", None)
        # the same presentment delivered again: the same answer; another one: PD
        assert await t.present(d, settle_amount=Decimal("1.00"), prsntmt_id="PR-1") == (
            "ACCP",
            None,
        )
        assert await t.present(d, prsntmt_id="PR-2") == ("RJCT", "PD")
        assert t.sim.stats.get("draft_answers_repeated", 0) == 0
        note = await t.state(d.draft_no, "PAID")
        assert note.settle_amount == Decimal("800.00") and note.orig_msg_id == "D-1"

        status = await t.erp.status("S-1", clock.now(), "D-1")
        assert status.ret_code == "0000" and status.draft is not None
        assert [s.state for s in status.draft.history] == ["PENDING", "ISSUED", "PAID"]
        assert status.draft.code == d.code

        # the next working day, 00:05: the remainder goes back and the entry closes
        monday = calendar_next_working_day(FRIDAY_10.date())
        clock.set(datetime(monday.year, monday.month, monday.day, 0, 5, tzinfo=SHANGHAI))
        t.gw.drafts.link.wake()
        settled = await t.state(d.draft_no, "SETTLED")
        assert settled.remainder == Decimal("200.00")
        assert await t.present(d, prsntmt_id="PR-3") == ("RJCT", "PD")
        # the Code was answered, presented and checked, and is nowhere in the journal
        journal = b"".join(p.read_bytes() for p in (tmp_path / "gw").glob("journal*"))
        assert journal and d.code.encode() not in journal


async def test_refund_and_what_drftrfnd_refuses(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None
) -> None:
    clock = FrozenClock(FRIDAY_10)
    async with _tour(tmp_path, dev_pki, broker, clock) as t:
        r = await t.erp.apply_draft("D-2", clock.now(), application("500.00"))
        assert r.ret_code == "0000" and r.draft is not None
        d = r.draft
        early = await t.erp.refund_draft("R-0", clock.now(), d.draft_no, "退回")
        if early.ret_code != "0000":  # still PENDING: refused, the draft must be ISSUED
            assert early.ret_code == "1004" and "ISSUED" in early.ret_msg
        await t.state(d.draft_no, "ISSUED")

        stranger = await Erp(t.gw, dev_pki).client("C100000002")
        try:
            foreign = await stranger.refund_draft("R-1", clock.now(), d.draft_no, "not mine")
            assert foreign.ret_code == "1004"
            assert "this CorpId" in foreign.ret_msg  # reads as unknown: no oracle
        finally:
            await stranger.close()
        unknown = await t.erp.refund_draft("R-2", clock.now(), PARTICIPANT + "99999999", "?")
        assert unknown.ret_code == "1004"

        ok = await t.erp.refund_draft("R-3", clock.now(), d.draft_no, "不再需要")
        assert ok.ret_code == "0000", ok.ret_msg
        assert ok.draft is not None and ok.draft.state == "REFUNDING"
        await t.state(d.draft_no, "REFUNDED")
        twice = await t.erp.refund_draft("R-4", clock.now(), d.draft_no, "again")
        assert twice.ret_code == "1004" and "REFUNDED" in twice.ret_msg
        assert await t.present(d) == ("RJCT", "RF")

        # a foreign currency is 4004; another TrnCode's body shape does not matter here
        usd = await t.erp.apply_draft("D-3", clock.now(), application("10.00", ccy="USD"))
        assert usd.ret_code == "4004"


async def test_provincial_draft_from_outside_the_province_and_a_rejected_issue(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None
) -> None:
    clock = FrozenClock(FRIDAY_10)
    async with _tour(
        tmp_path, dev_pki, broker, clock, draft_reject_fen={"intra.draft.issue": 77}
    ) as t:
        r = await t.erp.apply_draft("D-4", clock.now(), application("300.00", scope="PROVINCIAL"))
        assert r.ret_code == "0000" and r.draft is not None
        d = r.draft
        await t.state(d.draft_no, "ISSUED")
        assert await t.present(d, agent_bank=AGENT_ELSEWHERE) == ("RJCT", "SC")
        assert await t.present(d) == ("ACCP", None)

        bad = await t.erp.apply_draft("D-5", clock.now(), application("300.77"))
        assert bad.ret_code == "0000" and bad.draft is not None
        rejected = await t.state(bad.draft.draft_no, "REJECTED")
        assert rejected.reason_code == "AM04"  # the centre's reason, as the simulator gave it
        assert await t.present(bad.draft) == ("RJCT", "NF")


async def test_a_draft_on_a_non_working_day_is_held_until_the_next_one(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None
) -> None:
    saturday = FRIDAY_10 + timedelta(days=1)  # or the first day off after it (make-up Saturdays)
    while calendar().is_working_day(saturday.date()):
        saturday += timedelta(days=1)
    clock = FrozenClock(saturday)
    async with _tour(tmp_path, dev_pki, broker, clock) as t:
        r = await t.erp.apply_draft("D-6", clock.now(), application("100.00"))
        assert r.ret_code == "0000", r.ret_msg
        assert "HELD" in r.ret_msg
        assert r.draft is not None and r.draft.state == "PENDING"
        monday = calendar_next_working_day(saturday.date())
        assert r.draft.issue_date == monday
        await asyncio.sleep(0.5)
        assert t.sim.stats.get("draft_statuses", 0) == 0  # nothing sent before the opening
        clock.set(datetime(monday.year, monday.month, monday.day, 9, 0, tzinfo=SHANGHAI))
        t.gw.drafts.link.wake()
        await t.state(r.draft.draft_no, "ISSUED")


async def test_without_a_keys_passphrase_drafts_answer_not_enabled(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    clock = FrozenClock(FRIDAY_10)
    async with _tour(tmp_path, dev_pki, broker, clock) as t:
        r = await t.erp.apply_draft("D-7", clock.now(), application("100.00"))
        assert r.ret_code == "1004" and "not enabled" in r.ret_msg
        pay_still_works = await t.erp.status("S-7", clock.now(), "NOTHING")
        assert pay_still_works.ret_code == "0000"


async def test_the_draft_messages_are_signed_in_a_worker_process_too(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None
) -> None:
    """``workers.processes`` > 0: the issue message is sealed by a worker (desk batch call)."""
    clock = FrozenClock(FRIDAY_10)
    async with _tour(
        tmp_path, dev_pki, broker, clock, {"workers": {"processes": 1, "fronts": 0}}
    ) as t:
        r = await t.erp.apply_draft("D-8", clock.now(), application("250.00"))
        assert r.ret_code == "0000" and r.draft is not None
        await t.state(r.draft.draft_no, "ISSUED")
        assert await t.present(r.draft, settle_amount=Decimal("200.00")) == ("ACCP", None)
