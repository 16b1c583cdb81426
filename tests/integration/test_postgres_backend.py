"""The real daemon on the PostgreSQL journal (DESIGN.md "Storage"), two nodes on one database."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.sim.erp import Payment
from gateway.testing import Broker
from gateway.testing_pg import PgServer, create_database
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)

FRIDAY_10 = recent_friday_10()


def pay(i: int, code: str) -> Payment:
    return Payment(
        "6222000000000001", "付款人", f"6217{i:012d}", "收款人", code, Decimal(f"{100 + i}.00")
    )


async def test_two_nodes_share_one_database_and_settle_everything_once(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, pg: PgServer
) -> None:
    dsn = await create_database(pg)
    clock = BusinessClock(FRIDAY_10)
    rec = tmp_path / "rec.jsonl"

    def node_cfg(letter: str) -> object:
        return gateway_config(
            tmp_path / f"gw{letter}",
            dev_pki,
            broker.url,
            {
                "bank": {"node": letter},
                "journal": {"backend": "postgres", "dsn": dsn, "lease": 2.0},
                "clearing": {"shared": True, "client_id": f"gw-node-{letter}"},
            },
        )

    async with (
        running_clearing_sim(dev_pki, broker.url, rec),
        running_gateway(node_cfg("A"), clock) as a,
        running_gateway(node_cfg("B"), clock) as b,
    ):  # type: ignore[arg-type]
        ca = await Erp(a, dev_pki).client()
        cb = await Erp(b, dev_pki).client()
        codes = ["102290000011", "104290003791", "103290000018", "104100000004"]
        sent_a = clock.now()  # the resend below repeats this SendTime (same Head digest)
        ra = await asyncio.gather(
            *(ca.pay(f"PA-{i}", sent_a, pay(i, codes[i % 4])) for i in range(20))
        )
        rb = await asyncio.gather(
            *(cb.pay(f"PB-{i}", clock.now(), pay(i, codes[i % 4])) for i in range(20))
        )
        assert {r.ret_code for r in ra + rb} == {"0000"}
        assert all(r.gw_ref and r.gw_ref[10] == "A" for r in ra)
        assert all(r.gw_ref and r.gw_ref[10] == "B" for r in rb)
        # one journal: a resend to the OTHER node is a Dup of the original
        again = await cb.pay("PA-0", sent_a, pay(0, codes[0]))
        assert (again.ret_code, again.dup, again.gw_ref) == ("0000", True, ra[0].gw_ref)
        for i in range(20):
            await wait_for_state(ca, clock.now(), f"PB-{i}", ["SETTLED", "REJECTED"])
            await wait_for_state(cb, clock.now(), f"PA-{i}", ["SETTLED", "REJECTED"])
        await ca.close()
        await cb.close()
    import json
    from collections import defaultdict

    by_e2e: dict[str, set[str]] = defaultdict(set)
    for line in rec.read_text().splitlines():
        r = json.loads(line)
        for e in r["end_to_end_ids"]:
            by_e2e[e].add(r["msg_id"])
    assert len(by_e2e) == 40
    assert all(len(m) == 1 for m in by_e2e.values())
