"""Foreign currency, screening and the four-eyes review through the real daemon on the
PostgreSQL journal (docs/foreign-currency.md §3-§5, DESIGN.md "Storage").

The same journeys the SQLite tests drive (test_fx_swift, test_fx_review,
test_fx_swift_credits), end to end on a spawned PostgreSQL: a clean USD payment settles
with the simulator's UETR and its list versions; a listed payee waits for two different
reviewers; a listed debtor's credit is posted in USD after two approvals; and an approval
journaled before a restart of the daemon still counts after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import BusinessClock
from gateway.config import Config
from gateway.journal.records import CreditState
from gateway.keys.devpki import DevPki
from gateway.server import Gateway
from gateway.testing import Broker
from gateway.testing_pg import PgServer, create_database
from tests.integration.correspondence_support import ids
from tests.integration.harness import (
    DEMO_LIST,
    Erp,
    gateway_config,
    recent_friday_10,
    running_core_sim,
    running_gateway,
    wait_for_state,
)
from tests.integration.review_support import review, usd
from tests.integration.test_fx_swift import UETR_IN_STATUS, records, running_swift_sim
from tests.integration.test_fx_swift_credits import CORP, Bench, tx_of, usd_credit

FRIDAY_10 = recent_friday_10()
DEMO_VERSION = hashlib.sha256(DEMO_LIST.read_bytes()).hexdigest()
"""The demo list's version as journaled with every screening decision (its SHA-256)."""


async def pg_config(tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer) -> Config:
    """Foreign currency on, screened against the demo list, root may review (``--as``
    names the reviewers), the journal in a fresh database on the spawned server."""
    dsn = await create_database(pg)
    overlay: dict[str, Any] = {
        "fx": {"enabled": True},
        "screening": {"lists": [str(DEMO_LIST)], "review_group": "root"},
        "journal": {"backend": "postgres", "dsn": dsn},
    }
    return gateway_config(tmp_path / "gw", dev_pki, broker.url, overlay)


async def credit_in(gw: Gateway, tx_id: str, state: CreditState) -> str:
    """The gw_ref of the credit with ``tx_id`` once the journal has it in ``state``."""
    for _ in range(400):
        found = [c.gw_ref for c in await gw.store.credits_in_state(state, 100) if c.tx_id == tx_id]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"credit {tx_id} never reached {state}")


async def test_swift_payments_and_their_review_on_postgres(
    tmp_path: Path,
    dev_pki: DevPki,
    broker: Broker,
    pg: PgServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A clean USD payment settles through the correspondent with the simulator's UETR and
    its list versions; a listed payee waits for two different reviewers, another is
    rejected RR04; only the two that were allowed out reach the SWIFT network."""
    cfg = await pg_config(tmp_path, dev_pki, broker, pg)
    sock = cfg.admin_socket
    clock = BusinessClock(FRIDAY_10)
    record = tmp_path / "swift.jsonl"
    async with (
        running_swift_sim(dev_pki, broker.url, record) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()

        # 1. clean: through the USD correspondent, SETTLED with the simulator's UETR
        clean = await erp.pay("PG-CLEAN", now, usd("250.50"))
        assert (clean.ret_code, clean.engine, clean.state) == ("0000", "SWIFT", "QUEUED")
        assert await wait_for_state(erp, clock.now(), "PG-CLEAN", ["SETTLED"]) == "SETTLED"
        st = await erp.status("Q-PG-CLEAN", clock.now(), "PG-CLEAN")
        found = UETR_IN_STATUS.search(st.raw)
        assert found is not None, st.raw
        assert records(record)["PG-CLEAN"]["uetr"] == found.group(1).decode()
        assert records(record)["PG-CLEAN"]["rcvr"] == "HUDSUS33"
        # the bench for its gatewayctl helper (its SQLite path is unused on PostgreSQL)
        b = Bench(gw, sim, erp, clock, sock, cfg.journal_path, capsys)
        shown = await b.ctl("messages", "show", clean.gw_ref or "")
        (item,) = shown["items"]
        assert item["screening"] == {
            "versions": [{"list": "demo-list", "version": DEMO_VERSION}],
            "hits": [],
        }

        # 2. listed payees: REVIEW, nothing sent until two different reviewers approve
        listed = await erp.pay("PG-LISTED", now, usd("100.00", "Northwind Shadow Trading LLC"))
        doomed = await erp.pay("PG-DOOMED", now, usd("101.00", "Ivan Sidorenko"))
        for r in (listed, doomed):
            assert (r.ret_code, r.state, r.engine) == ("0000", "REVIEW", "SWIFT"), r.ret_msg
        assert listed.gw_ref and doomed.gw_ref
        code, (first,) = await asyncio.to_thread(
            review, sock, "approve", listed.gw_ref, user="alice"
        )
        assert code == 0 and (first["state"], first["approvals"]) == ("REVIEW", ["alice"])
        code, (again,) = await asyncio.to_thread(
            review, sock, "approve", listed.gw_ref, user="alice"
        )
        assert code == 1 and "already approved by alice" in again["reason"]
        assert "PG-LISTED" not in records(record)
        code, (second,) = await asyncio.to_thread(
            review, sock, "approve", listed.gw_ref, user="bob"
        )
        assert code == 0 and (second["decision"], second["state"]) == ("release", "QUEUED")
        assert await wait_for_state(erp, clock.now(), "PG-LISTED", ["SETTLED"]) == "SETTLED"

        code, (rej,) = await asyncio.to_thread(
            review, sock, "reject", doomed.gw_ref, "--reason", "true match", user="carol"
        )
        assert code == 0 and (rej["state"], rej["reason_code"]) == ("REJECTED", "RR04")
        st = await erp.status("Q-PG-DOOMED", clock.now(), "PG-DOOMED")
        assert (st.state, st.reason) == ("REJECTED", "RR04 true match")
        await erp.close()
    seen = records(record)
    assert set(seen) == {"PG-CLEAN", "PG-LISTED"}
    assert sim.stats["uetr_reused"] == 0 and len(set(sim.uetrs)) == 2


async def test_a_credit_review_on_postgres_and_an_approval_across_a_restart(
    tmp_path: Path,
    dev_pki: DevPki,
    broker: Broker,
    pg: PgServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A listed debtor's USD credit: REVIEW, two approvals, POSTED, CREDIT in USD.  Then
    another: alice approves, the daemon stops and starts again on the same database, and
    her approval still counts (she cannot approve twice; bob's approval releases it)."""
    cfg = await pg_config(tmp_path, dev_pki, broker, pg)
    sock = cfg.admin_socket
    clock = BusinessClock(FRIDAY_10)
    listed = usd_credit(debtor_name="Ivan Sidorenko", debtor_country="RU")
    async with (
        running_swift_sim(dev_pki, broker.url, tmp_path / "swift.jsonl", clock=clock) as sim,
        running_core_sim(broker.url),
    ):
        async with running_gateway(cfg, clock) as gw:
            erp = await Erp(gw, dev_pki).client(CORP)
            # the bench for its NTFY helper (its SQLite path is unused on PostgreSQL)
            b = Bench(gw, sim, erp, clock, sock, cfg.journal_path, capsys)
            first, _ = await sim.inject_credit(listed)
            kept = await credit_in(gw, tx_of(first), CreditState.REVIEW)
            code, pending = await asyncio.to_thread(review, sock, "list")
            (shown,) = [p for p in pending if p["kind"] == "credit"]
            assert code == 0 and shown["gw_ref"] == kept
            assert [h["entry_id"] for h in shown["screening"]["hits"]] == ["D-0002"]
            assert await b.credits(ids("N1")) == []  # nothing posted, nobody told
            code, (one,) = await asyncio.to_thread(review, sock, "approve", kept, user="alice")
            assert code == 0 and (one["decision"], one["state"]) == ("approve", "REVIEW")
            code, (twice,) = await asyncio.to_thread(review, sock, "approve", kept, user="alice")
            assert code == 1 and "already approved by alice" in twice["reason"]
            code, (two,) = await asyncio.to_thread(review, sock, "approve", kept, user="bob")
            assert code == 0 and (two["decision"], two["state"]) == ("release", "CHECKING")
            assert await credit_in(gw, tx_of(first), CreditState.POSTED) == kept
            (notice,) = await b.credits(ids("N2"))
            assert (notice.gw_ref, notice.ccy, notice.amount, notice.engine) == (
                kept, "USD", Decimal("250.50"), "SWIFT",
            )  # fmt: skip

            second, _ = await sim.inject_credit(listed)
            held = await credit_in(gw, tx_of(second), CreditState.REVIEW)
            code, (half,) = await asyncio.to_thread(review, sock, "approve", held, user="alice")
            assert code == 0 and half["approvals"] == ["alice"]
            await erp.close()

        # the same database, a new daemon: the first approval is the journal's, not memory's
        async with running_gateway(cfg, clock) as gw:
            erp = await Erp(gw, dev_pki).client(CORP)
            b = dataclasses.replace(b, gw=gw, erp=erp)
            assert await gw.store.credit_state(held) is CreditState.REVIEW
            code, pending = await asyncio.to_thread(review, sock, "list")
            (still,) = [p for p in pending if p["kind"] == "credit"]
            assert code == 0 and (still["gw_ref"], still["approvals"]) == (held, ["alice"])
            code, (refused,) = await asyncio.to_thread(review, sock, "approve", held, user="alice")
            assert code == 1 and "already approved by alice" in refused["reason"]
            code, (done,) = await asyncio.to_thread(review, sock, "approve", held, user="bob")
            assert code == 0 and (done["decision"], done["state"]) == ("release", "CHECKING")
            assert await credit_in(gw, tx_of(second), CreditState.POSTED) == held
            # NTFY from cursor 0: every CREDIT so far, each posted credit once
            notices = {n.gw_ref: n for n in await b.credits(ids("N3"))}
            assert set(notices) == {kept, held}
            assert (notices[held].ccy, notices[held].amount) == ("USD", Decimal("250.50"))
            await erp.close()
