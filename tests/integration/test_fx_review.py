"""Screening on the request path and the four-eyes review, through the real daemon and the
SWIFT simulator (docs/foreign-currency.md §5).

A payment to a listed party is answered 0000 with State REVIEW and nothing reaches the
SWIFT network until two different reviewers approve it; one rejection ends it REJECTED
RR04.  Every screened payment, hit or not, journals the list versions that decided it.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from gateway.clock import BusinessClock
from gateway.journal.records import CreditState
from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.ops.metrics import REGISTRY
from gateway.testing import Broker
from tests.integration.calendar_support import answer
from tests.integration.harness import (
    DEMO_LIST,
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_gateway,
    wait_for_state,
)
from tests.integration.review_support import (
    TEST_LIST,
    review,
    screened,
    usd,
    write_list,
)
from tests.integration.test_batches import item_state, items_of, mt101, mt_body, send
from tests.integration.test_fx_swift import records, running_swift_sim
from tests.integration.test_fx_swift_credits import bench as credit_bench
from tests.integration.test_fx_swift_credits import tx_of, usd_credit

FRIDAY_10 = recent_friday_10()
FRONTS = {"workers": {"processes": 0, "fronts": 2}}


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_listed_payee_waits_for_two_reviewers(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    lists = tmp_path / "lists" / "test-list.csv"
    version = write_list(lists)
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, screened(lists))
    sock = cfg.admin_socket
    record = tmp_path / "swift.jsonl"
    hits_before = _sample("gateway_screening_total", {"result": "hit", "direction": "outbound"})
    async with (
        running_swift_sim(dev_pki, broker.url, record) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        listed = {
            "RV-NAME": usd("100.00", "Northwind Shadow Trading LLC"),  # the listed name
            "RV-ALIAS": usd("101.00", "Ivan Sidorenko"),  # an alias
            "RV-BIC": payment(
                "", "1500", ccy="JPY", payee_bic="MIZUJPJT", payee_country="JP"
            ),  # a listed BIC
            "RV-CTRY": usd("102.00", payee_country="IR"),  # a listed country
        }
        refs: dict[str, str] = {}
        for msg_id, p in listed.items():
            r = await erp.pay(msg_id, now, p)
            assert (r.ret_code, r.state, r.engine) == ("0000", "REVIEW", "SWIFT"), r.ret_msg
            assert r.gw_ref
            refs[msg_id] = r.gw_ref
        clean = await erp.pay("RV-CLEAN", now, usd("103.00"))
        assert (clean.ret_code, clean.state) == ("0000", "QUEUED"), clean.ret_msg
        assert await wait_for_state(erp, clock.now(), "RV-CLEAN", ["SETTLED"]) == "SETTLED"
        assert set(records(record)) == {"RV-CLEAN"}  # nothing in REVIEW went out
        hits_now = _sample("gateway_screening_total", {"result": "hit", "direction": "outbound"})
        assert hits_now - hits_before == 4

        # every screened payment records the list versions that decided it
        shown = await call(sock, {"op": "messages.show", "ref": clean.gw_ref})
        (item,) = shown["items"]
        assert item["screening"] == {
            "versions": [{"list": "test-list", "version": version}],
            "hits": [],
        }

        code, pending = await asyncio.to_thread(review, sock, "list", user="alice")
        assert code == 0
        assert [p["gw_ref"] for p in pending] == list(refs.values())
        assert all(p["state"] == "REVIEW" and p["approvals"] == [] for p in pending)
        fields = {p["gw_ref"]: {h["field"] for h in p["screening"]["hits"]} for p in pending}
        assert "payee_name" in fields[refs["RV-NAME"]]
        assert "payee_name" in fields[refs["RV-ALIAS"]]
        assert "payee_bic" in fields[refs["RV-BIC"]]
        assert "payee_country" in fields[refs["RV-CTRY"]]

        code, (detail,) = await asyncio.to_thread(review, sock, "show", refs["RV-NAME"])
        assert code == 0
        (hit,) = [h for h in detail["screening"]["hits"] if h["field"] == "payee_name"]
        assert (hit["list"], hit["entry_id"], hit["score"]) == ("TEST", "T-1", 1.0)
        assert detail["screening"]["versions"] == [{"list": "test-list", "version": version}]

        # four eyes: alice approves, alice again is refused, bob releases
        ref = refs["RV-NAME"]
        code, (first,) = await asyncio.to_thread(review, sock, "approve", ref, user="alice")
        assert code == 0
        assert (first["decision"], first["state"], first["approvals"]) == (
            "approve", "REVIEW", ["alice"],
        )  # fmt: skip
        code, (again,) = await asyncio.to_thread(review, sock, "approve", ref, user="alice")
        assert code == 1 and "already approved by alice" in again["reason"]
        st = await erp.status("Q-RV-NAME-1", clock.now(), "RV-NAME")
        assert st.state == "REVIEW"
        # the corporate's History shows REVIEW once; the approval is the audit trail's
        assert [name for name, _ in answer(st).history] == ["ACCEPTED", "REVIEW"]
        code, (second,) = await asyncio.to_thread(review, sock, "approve", ref, user="bob")
        assert code == 0
        assert (second["decision"], second["state"], second["engine"]) == (
            "release", "QUEUED", "SWIFT",
        )  # fmt: skip
        assert await wait_for_state(erp, clock.now(), "RV-NAME", ["SETTLED"]) == "SETTLED"
        st = await erp.status("Q-RV-NAME-2", clock.now(), "RV-NAME")
        assert [name for name, _ in answer(st).history][:3] == ["ACCEPTED", "REVIEW", "QUEUED"]
        code, (late,) = await asyncio.to_thread(review, sock, "approve", ref, user="carol")
        assert code == 1 and "no item in REVIEW" in late["reason"]

        # one rejection ends it: REJECTED RR04 with the reviewer's text
        code, (rej,) = await asyncio.to_thread(
            review, sock, "reject", refs["RV-ALIAS"], "--reason", "sanctioned party",
            user="carol",
        )  # fmt: skip
        assert code == 0 and (rej["state"], rej["reason_code"]) == ("REJECTED", "RR04")
        st = await erp.status("Q-RV-ALIAS", clock.now(), "RV-ALIAS")
        assert (st.state, st.reason) == ("REJECTED", "RR04 sanctioned party")

        code, left = await asyncio.to_thread(review, sock, "list")
        assert [p["gw_ref"] for p in left] == [refs["RV-BIC"], refs["RV-CTRY"]]
        code, everything = await asyncio.to_thread(review, sock, "list", "--all")
        assert {p["gw_ref"] for p in everything} == set(refs.values())

        # the trail names the reviewers; the decisions are operator actions
        code, (trail,) = await asyncio.to_thread(review, sock, "show", ref)
        steps = [(s["state"], s["detail"]) for s in trail["transitions"]]
        assert steps[:4] == [
            ("ACCEPTED", None),
            ("REVIEW", None),
            ("REVIEW", "approved by alice (1 of 2)"),
            ("QUEUED", "released in review, approved by alice and bob"),
        ]
        assert [(d["operator"], d["action"]) for d in trail["decisions"]] == [
            ("alice", "approve"), ("bob", "approve"),
        ]  # fmt: skip
        await erp.close()
    seen = records(record)
    assert set(seen) == {"RV-CLEAN", "RV-NAME"}
    assert sim.stats["uetr_reused"] == 0 and len(set(sim.uetrs)) == 2


async def test_after_the_cutoff_a_release_is_held_and_ntfy_tells_a_rejection(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """Released after the USD cutoff (16:00): HELD until the next opening, where the HELD
    release takes it.  scope = "all": a CNY payment to a listed name is screened too, and
    its rejection reaches the corporate by NTFY."""
    lists = tmp_path / "lists" / "test-list.csv"
    write_list(lists)
    clock = BusinessClock(FRIDAY_10.replace(hour=17, minute=30))
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, screened(lists, scope="all"))
    sock = cfg.admin_socket
    record = tmp_path / "swift.jsonl"
    async with (
        running_swift_sim(dev_pki, broker.url, record),
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        listed_cny = payment("104100000004", "5000.00", payee_name="Northwind Shadow Trading")
        cny = await erp.pay("RV-CNY", now, listed_cny)
        assert (cny.ret_code, cny.state) == ("0000", "REVIEW"), cny.ret_msg
        plain = await erp.pay("RV-CNY-OK", now, payment("104100000004", "5000.00"))
        assert plain.ret_code == "0000" and plain.state != "REVIEW"  # screened, clear
        assert cny.gw_ref is not None
        code, _ = await asyncio.to_thread(
            review, sock, "reject", cny.gw_ref, "--reason", "listed payee", user="alice"
        )
        assert code == 0
        found = await erp.pull_all((f"N-{n}" for n in itertools.count()), clock.now())
        notices = [(n.kind, n.orig_msg_id, n.state, n.reason_code) for n in found]
        assert ("STATUS", "RV-CNY", "REJECTED", "RR04") in notices

        late = await erp.pay("RV-LATE", now, usd("7.00", "Ivan Petrovich Sidorenko"))
        assert (late.ret_code, late.state) == ("0000", "REVIEW")
        assert late.gw_ref is not None
        await asyncio.to_thread(review, sock, "approve", late.gw_ref, user="alice")
        code, (released,) = await asyncio.to_thread(
            review, sock, "approve", late.gw_ref, user="bob"
        )
        assert code == 0 and released["state"] == "HELD", released
        assert released["release_at"] > clock.now().isoformat()
        st = await erp.status("Q-RV-LATE", clock.now(), "RV-LATE")
        assert st.state == "HELD"
        await erp.close()
    assert "RV-LATE" not in records(record)


async def test_fronts_screen_and_take_a_reloaded_list(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """With two fronts every payment is screened in a front; a reload with a newly listed
    name reaches them all (the core checks it, each front loads the same version)."""
    lists = tmp_path / "lists" / "test-list.csv"
    write_list(lists)
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, {**screened(lists), **FRONTS})
    sock = cfg.admin_socket
    record = tmp_path / "swift.jsonl"
    async with (
        running_swift_sim(dev_pki, broker.url, record),
        running_gateway(cfg, clock) as gw,
    ):
        clients = [await Erp(gw, dev_pki).client() for _ in range(4)]
        now = clock.now()
        for n, erp in enumerate(clients):
            r = await erp.pay(f"FR-HIT-{n}", now, usd("10.00", "Northwind Shadow Trading"))
            assert (r.ret_code, r.state) == ("0000", "REVIEW"), r.ret_msg
            r = await erp.pay(f"FR-NEW-{n}", now, usd("11.00", "Zebulon Quartermaine Holdings"))
            assert (r.ret_code, r.state) == ("0000", "QUEUED"), r.ret_msg
        version = write_list(
            lists, TEST_LIST + "TEST,T-5,entity,Zebulon Quartermaine Holdings Ltd,,GB\n"
        )
        answer = await call(sock, {"op": "reload"})
        assert answer["ok"] and answer["screening"] == {"test-list": version[:16]}
        # the fronts load after the core's answer: a payment may land before its front did
        for n, erp in enumerate(clients):
            for attempt in itertools.count():
                r = await erp.pay(
                    f"FR-AFTER-{n}-{attempt}", clock.now(),
                    usd("12.00", "Zebulon Quartermaine Holdings"),
                )  # fmt: skip
                assert r.ret_code == "0000", r.ret_msg
                if r.state == "REVIEW":
                    break
                assert attempt < 50, "a front never took the reloaded list"
                await asyncio.sleep(0.1)
        code, pending = await asyncio.to_thread(review, sock, "list")
        assert code == 0
        after = [p for p in pending if p["msg_id"].startswith("FR-AFTER-")]
        assert after and all(
            p["screening"]["versions"] == [{"list": "test-list", "version": version}] for p in after
        )
        ref = next(p["gw_ref"] for p in pending if p["msg_id"] == "FR-HIT-0")
        await asyncio.to_thread(review, sock, "approve", ref, user="alice")
        code, (done,) = await asyncio.to_thread(review, sock, "approve", ref, user="bob")
        assert code == 0 and done["state"] == "QUEUED"
        assert await wait_for_state(clients[0], clock.now(), "FR-HIT-0", ["SETTLED"]) == "SETTLED"
        for erp in clients:
            await erp.close()
    assert records(record)["FR-HIT-0"]


async def test_without_lists_foreign_currency_is_refused_and_review_needs_its_group(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """No list loaded: a payment that must be screened is refused 2006, never sent
    unscreened.  screening.review_group unset: every review op is refused."""
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, {"fx": {"enabled": True}})
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("NL-USD", clock.now(), usd("1.00"))
        assert r.ret_code == "2006" and "screening" in r.ret_msg
        cny = await erp.pay("NL-CNY", clock.now(), payment("104100000004", "1.00"))
        assert cny.ret_code == "0000"  # scope "fx": CNY is not screened
        await erp.close()
        for argv in (("list",), ("show", "X"), ("approve", "X")):
            code, (answer,) = await asyncio.to_thread(review, cfg.admin_socket, *argv)
            assert code == 1 and "review_group is not set" in answer["reason"]


async def test_a_batch_item_with_a_hit_waits_alone(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """In an MT101 each item is screened on its own: the listed payee's item is REVIEW in
    the answer's Items, the other goes; approving its TxId releases only that item."""
    listed = (
        ":21:TX-1\r\n:32B:USD250,50\r\n:57A:CITIUS33\r\n"
        ":59:/6217000011112222\r\nNORTHWIND SHADOW TRADING LLC\r\nUS/NEW YORK\r\n:71A:OUR\r\n"
    )
    clean = (
        ":21:TX-2\r\n:32B:USD10,\r\n:57A:CITIUS33\r\n"
        ":59:/6217000011112222\r\nBETA LTD\r\nUS/NEW YORK\r\n:71A:SHA\r\n"
    )
    lists = tmp_path / "lists" / "test-list.csv"
    write_list(lists)
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, screened(lists))
    record = tmp_path / "swift.jsonl"
    async with (
        running_swift_sim(dev_pki, broker.url, record),
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        r = await send(erp, "MT101", "MT-RV", now, mt_body(mt101(listed, clean)))
        assert r.ret_code == "0000", r.ret_msg
        assert [(i.seq_no, i.state, i.engine) for i in items_of(r)] == [
            (1, "REVIEW", "SWIFT"),
            (2, "QUEUED", "SWIFT"),
        ]
        assert (await item_state(erp, now, "MT-RV", 2, ["SETTLED"])).state == "SETTLED"
        tx = f"{r.gw_ref}-1"
        await asyncio.to_thread(review, cfg.admin_socket, "approve", tx, user="alice")
        code, (done,) = await asyncio.to_thread(review, cfg.admin_socket, "approve", tx, user="bob")
        assert code == 0 and (done["tx_id"], done["state"]) == (tx, "QUEUED")
        assert (await item_state(erp, now, "MT-RV", 1, ["SETTLED"])).state == "SETTLED"
        await erp.close()
    assert len(records(record)) == 2


async def test_an_incoming_credit_in_review_needs_two_approvals_too(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SWIFT credit from a listed debtor waits in REVIEW: ``review list`` shows it with
    its hits, two approvals by two users release it to its account check (then POSTED),
    a rejection books another to SUSPENSE; ``review list --all`` still lists both."""
    reviewers = {"lists": [str(DEMO_LIST)], "review_group": "root"}
    async with credit_bench(tmp_path, dev_pki, broker, capsys, screening=reviewers) as b:
        listed = usd_credit(debtor_name="Ivan Sidorenko", debtor_country="RU")
        first, _ = await b.sim.inject_credit(listed)
        second, _ = await b.sim.inject_credit(listed)
        kept, _ = await b.credit_in(tx_of(first), {CreditState.REVIEW})
        dropped, _ = await b.credit_in(tx_of(second), {CreditState.REVIEW})
        code, pending = await asyncio.to_thread(review, b.sock, "list")
        credits = {p["gw_ref"]: p for p in pending if p["kind"] == "credit"}
        assert code == 0 and set(credits) == {kept, dropped}
        assert [h["entry_id"] for h in credits[kept]["screening"]["hits"]] == ["D-0002"]

        code, (one,) = await asyncio.to_thread(review, b.sock, "approve", kept, user="alice")
        assert code == 0 and (one["decision"], one["state"]) == ("approve", "REVIEW")
        code, (twice,) = await asyncio.to_thread(review, b.sock, "approve", kept, user="alice")
        assert code == 1 and "already approved by alice" in twice["reason"]
        code, (two,) = await asyncio.to_thread(review, b.sock, "approve", kept, user="bob")
        assert code == 0 and (two["decision"], two["state"]) == ("release", "CHECKING")
        await b.credit_in(tx_of(first), {CreditState.POSTED})

        code, (rej,) = await asyncio.to_thread(
            review, b.sock, "reject", dropped, "--reason", "true match", user="carol"
        )
        assert code == 0 and rej["state"] == "SUSPENSE"
        assert await b.gw.store.credit_state(dropped) is CreditState.SUSPENSE

        # decided, they leave the pending list; --all keeps every credit ever in review
        assert await b.gw.store.pending_credit_reviews(10) == []
        code, everything = await asyncio.to_thread(review, b.sock, "list", "--all")
        decided = {p["gw_ref"]: p for p in everything if p["kind"] == "credit"}
        assert code == 0 and set(decided) == {kept, dropped}
        assert (decided[kept]["state"], decided[kept]["approvals"]) == (
            "POSTED", ["alice", "bob"],
        )  # fmt: skip
        assert (decided[dropped]["state"], decided[dropped]["approvals"]) == ("SUSPENSE", [])
        assert [h["entry_id"] for h in decided[dropped]["screening"]["hits"]] == ["D-0002"]
