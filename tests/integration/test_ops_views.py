"""What operations see of correspondence through the real daemon: ``gatewayctl credits``,
``inquiries`` and ``netting`` (clearing.md §6, corplink.md §4, routing.md §5), against a
real mosquitto, the clearing simulator and the core simulator.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.sim.demo_tour import MISMATCHED_CREDIT
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
from tests.integration.test_correspondence import OTHER_BANK, WAIT, ids

FRIDAY_10 = recent_friday_10()
BEPS_BANK = "105100000017"


async def gatewayctl(capsys: pytest.CaptureFixture[str], sock: Path, *argv: str) -> tuple[Any, str]:
    """Run ``gatewayctl --socket SOCK ARGV`` in-process; its exit code must be 0 and its
    output JSON, which is returned (with the raw text, to look for unmasked numbers)."""
    capsys.readouterr()
    code = await asyncio.to_thread(gatewayctl_main, ["--socket", str(sock), *argv])
    out = capsys.readouterr().out
    assert code == 0, out
    # the daemon runs in this process and logs to the same stdout: leave its lines out
    out = "".join(line for line in out.splitlines(keepends=True) if not _LOG_LINE.match(line))
    return json.loads(out), out


_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
"""A console log line of the in-process daemon (structlog's ConsoleRenderer)."""


async def test_gatewayctl_lists_suspense_credits_open_inquiries_and_netting_rounds(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    sock = cfg.admin_socket
    async with (
        running_clearing_sim(
            dev_pki, broker.url, tmp_path / "rec.jsonl", netting=True, settle_delay_rounds=0.3
        ) as sim,
        running_core_sim(broker.url),
        running_gateway(cfg, clock) as gw,
    ):
        # An incoming credit whose name the core does not match: SUSPENSE, and the
        # automatic ccms.314 (journaled in the same transaction) reaches the clearing.
        bad_tx = await MISMATCHED_CREDIT.inject(sim)
        async with asyncio.timeout(WAIT):
            await sim.rounds.wait_until(
                lambda: any(d.orgnl_tx_id == bad_tx for d in sim.inquiries_received.values())
            )
        view, text = await gatewayctl(capsys, sock, "credits", "--state", "SUSPENSE")
        assert view["ok"] is True and view["state"] == "SUSPENSE"
        (credit,) = view["credits"]
        assert (credit["tx_id"], credit["state"], credit["amount"], credit["sender"]) == (
            bad_tx, "SUSPENSE", "60000.00", OTHER_BANK,
        )  # fmt: skip
        assert credit["creditor_acct"] == "6222********0101"
        assert credit["debtor_acct"] == "6228********0002"
        assert MISMATCHED_CREDIT.creditor_acct not in text
        assert MISMATCHED_CREDIT.debtor_acct not in text
        assert credit["gw_ref"].startswith("GI")
        posted, _ = await gatewayctl(capsys, sock, "credits", "--state", "POSTED", "--limit", "5")
        assert posted["credits"] == []

        # The sending bank asks about it: an IN inquiry, OPEN until the corporate answers.
        erp2 = await Erp(gw, dev_pki).client("C100000002")
        inq_id = await sim.inject_inquiry(
            orgnl_msg_id="UNUSED", orgnl_tx_id=bad_tx, text="请核实收款人", sender=OTHER_BANK
        )
        seen = await erp2.wait_notice(
            ids("N1"), clock.now, lambda n: n.kind == "INQUIRY" and n.inq_id == inq_id
        )
        assert seen is not None
        inquiries, _ = await gatewayctl(capsys, sock, "inquiries", "--limit", "10")
        (asked,) = [i for i in inquiries["inquiries"] if i["direction"] == "IN"]
        assert (asked["inq_id"], asked["state"], asked["credit_ref"], asked["corp_id"]) == (
            inq_id, "OPEN", credit["gw_ref"], "C100000002",
        )  # fmt: skip
        await erp2.close()

        # A BEPS round: the position matches our ledger, and the view shows both figures.
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("NV-1", clock.now(), payment(BEPS_BANK, "100.00"))
        assert r.ret_code == "0000" and r.engine == "BEPS", r.ret_msg
        await wait_for_state(erp, clock.now(), "NV-1", ["ACKED"])
        await sim.rounds.wait_netted(1)
        (notice,) = await sim.run_netting_round()
        await wait_for_state(erp, clock.now(), "NV-1", ["NETTED", "SETTLED"])
        await erp.close()
        netting, _ = await gatewayctl(capsys, sock, "netting")  # today's BEPS work date
        assert netting["work_date"] == FRIDAY_10.date().isoformat()
        (round_,) = netting["rounds"]
        assert (round_["counterparty"], round_["matched"], round_["items_netted"]) == (
            BEPS_BANK, True, 1,
        )  # fmt: skip
        assert round_["ours"] == round_["theirs"]
        assert round_["ours"] == {
            "dbt_cnt": 1, "dbt_sum": "100.00", "cdt_cnt": 0, "cdt_sum": "0.00", "net": "-100.00",
        }  # fmt: skip
        explicit, _ = await gatewayctl(
            capsys, sock, "netting", "--work-date", notice.work_date.isoformat()
        )
        assert explicit["rounds"] == netting["rounds"]

        # Bad arguments are refused, not guessed.
        for bad in (
            {"op": "credits", "state": "LOST"},
            {"op": "credits", "limit": 5000},
            {"op": "inquiries", "limit": "ten"},
            {"op": "netting", "work_date": "27/11/2026"},
        ):
            answer = await call(sock, bad)
            assert answer["ok"] is False and "bad request" in answer["reason"], bad
