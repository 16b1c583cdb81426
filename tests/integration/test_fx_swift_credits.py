"""Incoming foreign-currency credits over SWIFT through the real daemon (docs/foreign-currency.md
§4-§5, docs/clearing-link.md §6): the SWIFT simulator injects a signed swift.008, the
gateway screens it against the demo list, and the core simulator answers the account
check.  Clear → POSTED with a CREDIT notification in the credit's currency, or SUSPENSE
with no inquiry over SWIFT; a hit → REVIEW, nothing posted, until the review's store step
releases it (posted, notified) or rejects it (suspense, nobody notified).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.clock import BusinessClock
from gateway.journal.credit_review_sql import CreditReviewOutcome
from gateway.journal.ops_records import ActionKind, OperatorAction
from gateway.journal.records import CreditState
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key
from gateway.server import Gateway
from gateway.sim.erp import ErpClient, Notification
from gateway.sim.swift import IncomingCredit, SwiftSimulator, incoming_credit_message
from gateway.testing import Broker
from tests.integration.correspondence_support import (
    clearing_tap,
    ids,
    journal_rows,
    metric,
    wait_metric,
    wait_until,
)
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_core_sim,
    running_gateway,
)
from tests.integration.test_fx_swift import FX_ON, running_swift_sim

FRIDAY_10 = recent_friday_10()
_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
"""A console log line of the in-process daemon (structlog's ConsoleRenderer)."""
DEMO_LIST = Path(__file__).resolve().parents[2] / "conf" / "screening" / "demo-list.csv"
ENROLLED = "6222000000000101"  # C100000002's account; the core names it as below
ENROLLED_NAME = "Demo Manufacturing Ltd."
CORP = "C100000002"


def usd_credit(**kw: Any) -> IncomingCredit:
    values: dict[str, Any] = {
        "sender_bic": "CITIUS33XXX",
        "debtor_name": "Overseas Buyer Inc",
        "debtor_acct": "000123456789",
        "creditor_acct": ENROLLED,
        "creditor_name": ENROLLED_NAME,
        "amount": Decimal("250.50"),
        "ccy": "USD",
        "purpose": "invoice 2026-7",
    }
    return IncomingCredit(**{**values, **kw})


@dataclass
class Bench:
    """The daemon with the SWIFT and core simulators, a corporate's ERP and gatewayctl."""

    gw: Gateway
    sim: SwiftSimulator
    erp: ErpClient
    clock: BusinessClock
    sock: Path
    journal: Path
    capsys: pytest.CaptureFixture[str]

    async def credit_in(self, tx_id: str, states: set[CreditState]) -> tuple[str, CreditState]:
        """The credit with ``tx_id`` (its TxId) once it is in one of ``states``."""
        found: list[tuple[str, str]] = []

        def arrived() -> bool:
            found[:] = journal_rows(
                self.journal, "SELECT gw_ref, state FROM incoming_credits WHERE tx_id = ?", (tx_id,)
            )
            return bool(found) and CreditState(found[0][1]) in states

        await wait_until(arrived, f"credit {tx_id} in {states}")
        return found[0][0], CreditState(found[0][1])

    async def ctl(self, *argv: str) -> dict[str, Any]:
        """``gatewayctl --socket SOCK ARGV`` in-process: exit 0 and its JSON line."""
        self.capsys.readouterr()
        code = await asyncio.to_thread(gatewayctl_main, ["--socket", str(self.sock), *argv])
        out = self.capsys.readouterr().out
        assert code == 0, out
        # the daemon runs in this process and logs to the same stdout: leave its lines out
        text = "".join(x for x in out.splitlines(keepends=True) if not _LOG_LINE.match(x))
        result: dict[str, Any] = json.loads(text)
        return result

    async def credits(self, msg_ids: Iterator[str]) -> list[Notification]:
        notices = await self.erp.pull_all(msg_ids, self.clock.now())
        return [n for n in notices if n.kind == "CREDIT"]


@contextlib.asynccontextmanager
async def bench(
    tmp_path: Path,
    dev_pki: DevPki,
    broker: Broker,
    capsys: pytest.CaptureFixture[str],
    **extra: Any,
) -> AsyncIterator[Bench]:
    clock = BusinessClock(FRIDAY_10)
    overlay = {**FX_ON, "screening": {"lists": [str(DEMO_LIST)]}, **extra}
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, overlay)
    async with (
        running_swift_sim(dev_pki, broker.url, tmp_path / "swift.jsonl", clock=clock) as sim,
        running_core_sim(broker.url),
        running_gateway(cfg, clock) as gw,
    ):  # fmt: skip
        erp = await Erp(gw, dev_pki).client(CORP)
        try:
            yield Bench(gw, sim, erp, clock, cfg.admin_socket, cfg.journal_path, capsys)
        finally:
            await erp.close()


def tx_of(msg_id: str) -> str:
    """The simulator's TxId of the credit it sent as ``msg_id`` (``T`` + the MsgId's tail)."""
    return f"T{msg_id[8:]}"


async def test_usd_and_jpy_credits_are_posted_and_notified_in_their_currency(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    clear_before = metric("gateway_screening_total", result="clear", direction="inbound")
    async with bench(tmp_path, dev_pki, broker, capsys) as b:
        usd_msg, _ = await b.sim.inject_credit(usd_credit())
        jpy_msg, _ = await b.sim.inject_credit(
            usd_credit(sender_bic="MIZUJPJTXXX", debtor_country="JP", amount=Decimal("1500"),
                       ccy="JPY", purpose=None)
        )  # fmt: skip
        usd_ref, _ = await b.credit_in(tx_of(usd_msg), {CreditState.POSTED})
        jpy_ref, _ = await b.credit_in(tx_of(jpy_msg), {CreditState.POSTED})
        notices = {n.gw_ref: n for n in await b.credits(ids("N1"))}
        usd, jpy = notices[usd_ref], notices[jpy_ref]
        assert (usd.ccy, usd.amount, usd.engine, usd.acct) == (
            "USD", Decimal("250.50"), "SWIFT", ENROLLED
        )  # fmt: skip
        assert (usd.cpty_name, usd.text) == ("Overseas Buyer Inc", "invoice 2026-7")
        assert (jpy.ccy, jpy.amount) == ("JPY", Decimal("1500"))
        assert jpy.amount is not None and jpy.amount.as_tuple().exponent == 0  # "1500", no sen
        stored = journal_rows(
            b.journal,
            "SELECT ccy, amount_fen, minor_units FROM incoming_credits ORDER BY ccy",
        )
        assert stored == [("JPY", 1500, 0), ("USD", 25050, 2)]
    after = metric("gateway_screening_total", result="clear", direction="inbound")
    assert after - clear_before == 2


async def test_an_unknown_account_goes_to_suspense_without_an_inquiry(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    async with bench(tmp_path, dev_pki, broker, capsys) as b:
        msg_id, _ = await b.sim.inject_credit(usd_credit(creditor_acct="6222000000009999"))
        gw_ref, _ = await b.credit_in(tx_of(msg_id), {CreditState.SUSPENSE})
        view = await b.ctl("credits", "--state", "SUSPENSE")
        (shown,) = view["credits"]
        assert (shown["gw_ref"], shown["ccy"], shown["amount"], shown["engine"]) == (
            gw_ref, "USD", "250.50", "SWIFT"
        )  # fmt: skip
        # no ccms.314 (nor anything else) asks the sending bank: none goes over SWIFT
        assert (await b.ctl("inquiries"))["inquiries"] == []
        assert journal_rows(b.journal, "SELECT msg_tp FROM outbound") == []
        assert await b.credits(ids("N1")) == []


async def test_a_listed_debtor_waits_in_review_until_released_or_rejected(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    hits_before = metric("gateway_screening_total", result="hit", direction="inbound")
    async with bench(tmp_path, dev_pki, broker, capsys) as b:
        # an alias of the demo list's D-0002; the sending bank's BIC is clean
        listed = usd_credit(debtor_name="Ivan Sidorenko", debtor_country="RU")
        first, _ = await b.sim.inject_credit(listed)
        second, _ = await b.sim.inject_credit(listed)
        kept, _ = await b.credit_in(tx_of(first), {CreditState.REVIEW})
        dropped, _ = await b.credit_in(tx_of(second), {CreditState.REVIEW})
        view = await b.ctl("credits", "--state", "REVIEW")
        assert {c["gw_ref"] for c in view["credits"]} == {kept, dropped}
        # gatewayctl shows the decision as an object, not as JSON text inside the JSON
        shown = {c["gw_ref"]: c["screening"] for c in view["credits"]}
        assert [h["entry_id"] for h in shown[kept]["hits"]] == ["D-0002"]
        pending = {p.gw_ref: p for p in await b.gw.store.pending_credit_reviews(10)}
        assert pending[kept].screening is not None
        decision = json.loads(pending[kept].screening)
        assert [(h["entry_id"], h["field"]) for h in decision["hits"]] == [("D-0002", "payer_name")]
        assert [v["list"] for v in decision["versions"]] == ["demo-list"]
        assert await b.credits(ids("N1")) == []  # nothing posted, nobody told

        now = b.clock.now()
        released = await b.gw.store.release_credit_review(
            kept,
            OperatorAction(now, 1001, "alice", ActionKind.APPROVE, kept, "", forced=False),
            seen=(),
        )
        assert released is CreditReviewOutcome.DONE
        await b.credit_in(tx_of(first), {CreditState.POSTED})
        (notice,) = await b.credits(ids("N2"))
        assert (notice.gw_ref, notice.ccy, notice.amount) == (kept, "USD", Decimal("250.50"))

        rejected = await b.gw.store.reject_credit_review(
            dropped,
            OperatorAction(now, 1002, "bob", ActionKind.REJECT, dropped, "true match", False),
            seen=(),
        )
        assert rejected is CreditReviewOutcome.DONE
        assert await b.gw.store.credit_state(dropped) is CreditState.SUSPENSE
        suspense = await b.ctl("credits", "--state", "SUSPENSE")
        assert [c["gw_ref"] for c in suspense["credits"]] == [dropped]
        assert len(await b.credits(ids("N3"))) == 1  # still only the released one
    after = metric("gateway_screening_total", result="hit", direction="inbound")
    assert after - hits_before == 2


async def test_a_redelivered_swift_credit_is_one_credit(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    async with bench(tmp_path, dev_pki, broker, capsys) as b, clearing_tap(broker) as tap:
        key = load_signing_key(dev_pki.clearing_system_key, dev_pki.clearing_system_cert)
        reply, _ = incoming_credit_message(usd_credit(), "DEMOCNBJXXX", key, 7, b.clock)
        seen = metric("gateway_inbound_messages_total", msg_tp="swift.008")
        for _ in range(3):  # at least once: the interface may deliver it again
            await tap.publish("swift/in", reply.payload, reply.msg_tp, reply.msg_id)
        await wait_metric("gateway_inbound_messages_total", seen + 3, msg_tp="swift.008")
        await b.credit_in(tx_of(reply.msg_id), {CreditState.POSTED})
        assert len(journal_rows(b.journal, "SELECT gw_ref FROM incoming_credits")) == 1
        assert len(await b.credits(ids("N1"))) == 1


async def test_a_credit_in_a_currency_not_taken_or_with_too_many_decimals_is_dropped(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    dropped = metric("gateway_inbound_dropped_total", reason="malformed")
    async with bench(tmp_path, dev_pki, broker, capsys) as b:
        await b.sim.inject_credit(usd_credit(amount=Decimal("1500.5"), ccy="JPY"))
        await b.sim.inject_credit(usd_credit(ccy="XAU"))
        await wait_metric("gateway_inbound_dropped_total", dropped + 2, reason="malformed")
        # the next one is taken: the two before it left nothing behind
        msg_id, _ = await b.sim.inject_credit(usd_credit())
        await b.credit_in(tx_of(msg_id), {CreditState.POSTED})
        assert len(journal_rows(b.journal, "SELECT gw_ref FROM incoming_credits")) == 1


async def test_worker_processes_open_the_credit_and_fronts_serve_its_notice(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    """The swift.008 is verified and read in a worker process (its result crosses the
    process boundary) and the NTFY is answered by a front (docs/architecture.md §1)."""
    workers = {"workers": {"processes": 1, "fronts": 2}}
    async with bench(tmp_path, dev_pki, broker, capsys, **workers) as b:
        msg_id, _ = await b.sim.inject_credit(usd_credit(amount=Decimal("99.90"), ccy="EUR"))
        gw_ref, _ = await b.credit_in(tx_of(msg_id), {CreditState.POSTED})
        (notice,) = await b.credits(ids("N1"))
        assert (notice.gw_ref, notice.ccy, notice.amount) == (gw_ref, "EUR", Decimal("99.90"))
