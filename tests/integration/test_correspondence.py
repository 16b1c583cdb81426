"""Correspondence through the real daemon (corplink.md §4, clearing.md §4-§6, routing.md §5):
NTFY, INQ ↔ ccms.314 / ccms.315, RPLY, BAL via the core link, incoming credits with
their account check, and BEPS netting rounds with settlement — against a real
mosquitto, the clearing simulator and the core simulator.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from structlog.testing import capture_logs

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.ops.metrics import REGISTRY
from gateway.sim.demo_tour import MATCHING_CREDIT, MISMATCHED_CREDIT
from gateway.testing import Broker
from tests.integration.harness import (
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_core_sim,
    running_gateway,
    wait_for_state,
)

FRIDAY_10 = recent_friday_10()
OTHER_BANK = "104100000004"  # a direct participant of another bank (routing/directory.csv)
WAIT = 20.0  # bound on waiting for the clearing simulator to see a message


def ids(prefix: str) -> Iterator[str]:
    return (f"{prefix}-{n}" for n in itertools.count(1))


async def test_inq_ccms314_ccms315_ntfy_round_trip(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(
            dev_pki, broker.url, tmp_path / "rec.jsonl", reply_text="已入账 credited"
        ) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("P-1", clock.now(), payment(OTHER_BANK, "70000.00"))
        assert r.ret_code == "0000", r.ret_msg
        await wait_for_state(erp, clock.now(), "P-1", ["SETTLED"])

        inq = await erp.inquire("Q-1", clock.now(), "P-1", "请确认收款人是否入账")
        assert inq.ret_code == "0000", inq.ret_msg
        assert inq.gw_ref and inq.gw_ref.startswith("IQ")
        assert inq.state == "SETTLED" and inq.engine == "HVPS"
        again = await erp.inquire("Q-1", clock.now(), "P-1", "请确认收款人是否入账")
        assert (again.ret_code, again.gw_ref, again.dup) == ("0000", inq.gw_ref, True)
        other = await erp.inquire("Q-1", clock.now(), "P-1", "another text")
        assert other.ret_code == "3001"

        reply = await erp.wait_notice(
            ids("N1"), clock.now, lambda n: n.kind == "REPLY" and n.inq_id == inq.gw_ref
        )
        assert reply is not None and reply.text == "已入账 credited"
        assert reply.orig_msg_id == "P-1"
        assert sim.stats["inquiries_received"] == 1  # one ccms.314 despite the Dup

        unknown = await erp.inquire("Q-2", clock.now(), "NO-SUCH", "where is it")
        assert unknown.ret_code == "1004" and unknown.gw_ref is None
        await erp.close()


async def test_inquiry_from_another_bank_is_notified_and_answered_with_rply(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("P-9", clock.now(), payment(OTHER_BANK, "1200.00"))
        assert r.ret_code == "0000" and r.gw_ref
        await wait_for_state(erp, clock.now(), "P-9", ["SETTLED"])
        inq_id = await sim.inject_inquiry(
            orgnl_msg_id="UNUSED",
            orgnl_tx_id=r.gw_ref,
            text="收款人户名不符，请核实",
            sender=OTHER_BANK,
        )
        seen = await erp.wait_notice(
            ids("N2"), clock.now, lambda n: n.kind == "INQUIRY" and n.inq_id == inq_id
        )
        assert seen is not None and seen.orig_msg_id == "P-9"
        assert seen.text == "收款人户名不符，请核实"

        ans = await erp.reply_inquiry("A-1", clock.now(), inq_id, "户名正确：收款公司")
        assert ans.ret_code == "0000", ans.ret_msg
        async with asyncio.timeout(WAIT):
            await sim.rounds.wait_until(lambda: inq_id in sim.replies_received)
        assert sim.replies_received[inq_id] == "户名正确：收款公司"
        twice = await erp.reply_inquiry("A-2", clock.now(), inq_id, "again")
        assert twice.ret_code == "1004" and "answered" in twice.ret_msg
        # another corporate cannot answer it
        c2 = await Erp(gw, dev_pki).client("C100000002")
        foreign = await c2.reply_inquiry("A-3", clock.now(), inq_id, "not mine")
        assert foreign.ret_code == "1004"
        await c2.close()
        await erp.close()


async def test_bal_answered_and_timed_out(tmp_path: Path, dev_pki: DevPki, broker: Broker) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, {"core": {"timeout": 1.0}})
    async with (
        running_core_sim(broker.url, silent_accounts=frozenset({"6222000000000002"})),
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        ok = await erp.query_balance("B-1", clock.now(), "6222000000000001")
        assert ok.ret_code == "0000", ok.ret_msg
        assert ok.balance is not None
        assert (ok.balance.balance, ok.balance.available) == (
            Decimal("1250000.00"),
            Decimal("1200000.00"),
        )
        late = await erp.query_balance("B-2", clock.now(), "6222000000000002")
        assert late.ret_code == "6001" and late.balance is None
        foreign = await erp.query_balance("B-3", clock.now(), "6222000000000101")
        assert foreign.ret_code == "4006"
        await erp.close()
        c3 = await Erp(gw, dev_pki).client("C100000003")
        overdrawn = await c3.query_balance("B-4", clock.now(), "6222000000000201")
        assert overdrawn.balance is not None and overdrawn.balance.balance == Decimal("-1250.00")
        await c3.close()


async def test_incoming_credit_matched_is_notified_and_mismatched_is_inquired(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_core_sim(broker.url),
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client("C100000002")
        good_tx = await MATCHING_CREDIT.inject(sim)
        bad_tx = await MISMATCHED_CREDIT.inject(sim)
        credit = await erp.wait_notice(ids("N3"), clock.now, lambda n: n.kind == "CREDIT")
        assert credit is not None
        good = MATCHING_CREDIT
        assert (credit.acct, credit.amount, credit.engine, credit.cpty_name) == (
            good.creditor_acct,
            good.amount,
            good.engine,
            good.debtor_name,
        )
        assert credit.gw_ref and credit.gw_ref.startswith("GI")
        # the mismatch: suspense, and an automatic ccms.314 to the sending bank (有疑必查)
        async with asyncio.timeout(WAIT):
            await sim.rounds.wait_until(
                lambda: any(d.orgnl_tx_id == bad_tx for d in sim.inquiries_received.values())
            )
        auto = [d for d in sim.inquiries_received.values() if d.orgnl_tx_id == bad_tx]
        assert len(auto) == 1 and "suspense" in auto[0].text
        notices = await erp.pull_all(ids("N4"), clock.now())
        credits = [n for n in notices if n.kind == "CREDIT"]
        assert len(credits) == 1  # the mismatched credit is not notified
        assert good_tx != bad_tx
        await erp.close()


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def _mismatches() -> float:
    found = REGISTRY.get_sample_value("gateway_netting_positions_total", {"outcome": "mismatch"})
    return found or 0.0


async def test_netting_round_nets_then_settles_and_a_mismatch_is_detected(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with (
        running_clearing_sim(
            dev_pki, broker.url, tmp_path / "rec.jsonl", netting=True, settle_delay_rounds=0.3
        ) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        for n, (code, amount) in enumerate(
            [("105100000017", "100.00"), ("105100000017", "250.50"), (OTHER_BANK, "999.99")], 1
        ):
            r = await erp.pay(f"NB-{n}", clock.now(), payment(code, amount))
            assert r.ret_code == "0000" and r.engine == "BEPS", r.ret_msg
        for n in (1, 2, 3):
            assert await wait_for_state(erp, clock.now(), f"NB-{n}", ["ACKED"]) == "ACKED"
        await sim.rounds.wait_netted(3)
        notices = await sim.run_netting_round()
        assert len(notices) == 1 and len(notices[0].positions) == 2
        for n in (1, 2, 3):
            assert await wait_for_state(erp, clock.now(), f"NB-{n}", ["NETTED", "SETTLED"])
        for n in (1, 2, 3):
            assert await wait_for_state(erp, clock.now(), f"NB-{n}", ["SETTLED"]) == "SETTLED"
        assert _gauge("gateway_netting_mismatch") == 0
        settled = await erp.wait_notice(
            ids("N5"), clock.now, lambda n: n.kind == "STATUS" and n.orig_msg_id == "NB-3"
        )
        assert settled is not None and settled.state == "SETTLED"

        # a round whose figures differ from the ledger: alert, nothing moves
        r = await erp.pay("NB-4", clock.now(), payment("105100000017", "10.00"))
        assert r.ret_code == "0000"
        await wait_for_state(erp, clock.now(), "NB-4", ["ACKED"])
        await sim.rounds.wait_netted(4)
        mismatches = _mismatches()
        with capture_logs() as logs:
            await sim.run_netting_round(skew=Decimal("0.01"))
            for _ in range(100):
                if _gauge("gateway_netting_mismatch") == 1:
                    break
                await asyncio.sleep(0.1)
        assert _gauge("gateway_netting_mismatch") == 1
        assert _mismatches() == mismatches + 1
        (line,) = [e for e in logs if e["event"] == "netting_mismatch"]
        # both figures, ours and theirs, for the counterparty (routing.md §5)
        assert line["cpty"] == "105100000017"
        assert line["ours"] == "dbt 1/10.00 cdt 0/0.00 net -10.00"
        assert line["theirs"] == "dbt 1/10.01 cdt 0/0.00 net -10.01"
        assert await wait_for_state(erp, clock.now(), "NB-4", ["ACKED"]) == "ACKED"
        await erp.close()
