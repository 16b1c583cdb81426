"""A review survives kill -9 (docs/foreign-currency.md §5: nothing about a review is lost
across a restart).  The real ``gatewayd`` is SIGKILLed (its whole process group) between
the first and the second approval of a screened payment; after the restart the first
approval stands, the same user is still refused, and another user's approval releases
the payment exactly once: one MsgId and one UETR at the SWIFT simulator."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.testing import Broker
from tests.faults.crashkit import BizClock, Daemon, NodeSettings
from tests.faults.test_recovery import node, wait_journal
from tests.integration.harness import recent_friday_10
from tests.integration.review_support import review, usd, write_list
from tests.integration.test_fx_swift import running_swift_sim


async def test_the_first_approval_survives_a_kill_and_the_second_releases_once(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki = DevPki.open(Path(shutil.copytree(dev_pki.dir, tmp_path / "pki")))
    lists = tmp_path / "lists" / "test-list.csv"
    write_list(lists)
    extra = f'[fx]\nenabled = true\n[screening]\nlists = ["{lists}"]\nreview_group = "root"\n'
    clock = BizClock(recent_friday_10())
    d = Daemon(tmp_path, pki, broker.url, clock, NodeSettings(workers=0, extra=extra))
    sock = d.dir / "state" / "admin.sock"
    record = tmp_path / "swift.jsonl"
    async with running_swift_sim(pki, broker.url, record):
        async with node(d):
            c = await d.client("C100000001")
            r = await c.pay("CR-1", clock.now(), usd("250.00", "Northwind Shadow Trading LLC"))
            await c.close()
            assert (r.ret_code, r.state) == ("0000", "REVIEW"), r.ret_msg
            assert r.gw_ref is not None
            code, (first,) = await asyncio.to_thread(review, sock, "approve", r.gw_ref,
                                                     user="alice")  # fmt: skip
            assert code == 0 and first["decision"] == "approve"
            d.kill()
        assert await wait_journal(d, ["CR-1"], ["REVIEW"]) == {"CR-1": "REVIEW"}
        async with node(d):
            shown = await call(sock, {"op": "review.show", "ref": r.gw_ref, "as": "bob"})
            (item,) = shown["items"]
            assert (item["state"], item["approvals"]) == ("REVIEW", ["alice"])
            code, (again,) = await asyncio.to_thread(review, sock, "approve", r.gw_ref,
                                                     user="alice")  # fmt: skip
            assert code == 1 and "already approved by alice" in again["reason"]
            code, (second,) = await asyncio.to_thread(review, sock, "approve", r.gw_ref,
                                                      user="bob")  # fmt: skip
            assert code == 0 and second["decision"] == "release"
            await wait_journal(d, ["CR-1"], ["SETTLED"])
    sent = [json.loads(x) for x in record.read_text().splitlines() if x.strip()]
    ours = [s for s in sent if s.get("end_to_end_id") == "CR-1"]
    assert len({s["msg_id"] for s in ours}) == 1
    assert len({s["uetr"] for s in ours}) == 1
