"""Batches end to end (corplink.md §4, §5, §8): PAYROLL, PAIN001 and MT101 through the
real daemon, a real mosquitto and the clearing simulator.

A batch is admitted or refused as a whole (credentials, schema, amounts, payer,
daily limit); its items are routed one by one, and an item that cannot be
routed is REJECTED on its own with its reason, reported per item in ``Items``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.paths import corplink_schema_path
from gateway.sim.erp import ErpClient, Reply, build_request, status_body
from gateway.testing import Broker
from tests.conftest import REPO, shared_xsd_dir
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
)

FRIDAY_10 = recent_friday_10()
NS = "urn:corplink:1"
C = {"c": NS}
PAYER = "6222000000000001"  # enrolled for C100000001 (dev PKI)
MIB = 1_048_576

#: the daemon of these tests: the default listeners plus one for PAYROLL-sized
#: bodies (corplink.md §1: "a listener for PAYROLL may allow up to 16 MiB")
LISTENERS: list[dict[str, Any]] = [
    {"name": "tls", "port": 0, "tls": True, "client_cert": "optional"},
    {"name": "big", "port": 0, "tls": False, "client_cert": "none", "max_body": 16 * MIB},
]

_SCHEMA = etree.XMLSchema(etree.parse(str(corplink_schema_path())))


def _el(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    e = etree.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        e.text = text
    return e


@dataclass(frozen=True)
class Line:
    """One PAYROLL item as an ERP writes it."""

    seq_no: int
    bank_code: str
    amount: str
    payee_acct: str = "6217000011112222"
    payee_name: str = "员工"
    purpose: str | None = "工资"


def payroll_body(lines: Sequence[Line], payer: str = PAYER) -> etree._Element:
    batch = etree.Element(f"{{{NS}}}Batch", nsmap={None: NS})  # type: ignore[dict-item]
    _el(batch, "PayerAcct", payer)
    _el(batch, "PayerName", "示范贸易有限公司")
    for line in lines:
        item = _el(batch, "Item")
        _el(item, "SeqNo", str(line.seq_no))
        _el(item, "PayeeAcct", line.payee_acct)
        _el(item, "PayeeName", line.payee_name)
        _el(item, "PayeeBankCode", line.bank_code)
        _el(item, "Amount", line.amount).set("Ccy", "CNY")
        if line.purpose is not None:
            _el(item, "Purpose", line.purpose)
    return batch


def signed(client: ErpClient, trn: str, msg_id: str, at: datetime, body: etree._Element) -> bytes:
    return client.sign(build_request(trn, client.corp_id, client.oper_id, msg_id, at, body))


async def send(
    client: ErpClient, trn: str, msg_id: str, at: datetime, body: etree._Element
) -> Reply:
    return await client.send_raw(signed(client, trn, msg_id, at, body), msg_id)


@dataclass(frozen=True)
class ItemStatus:
    seq_no: int
    state: str
    engine: str | None
    reason: str | None
    history: tuple[str, ...]


def items_of(reply: Reply) -> list[ItemStatus]:
    """The ``Items`` of a verified response, after checking it against our XSD."""
    root = etree.fromstring(reply.raw)
    assert _SCHEMA.validate(root), _SCHEMA.error_log
    out = []
    for st in root.iterfind("c:Body/c:Items/c:Status", C):
        reason = st.find("c:Reason", C)
        out.append(
            ItemStatus(
                seq_no=int(st.findtext("c:SeqNo", namespaces=C) or "0"),
                state=st.findtext("c:State", namespaces=C) or "",
                engine=st.findtext("c:Engine", namespaces=C),
                reason=None if reason is None else reason.get("Code"),
                history=tuple(s.get("State") or "" for s in st.iterfind("c:History/c:Step", C)),
            )
        )
    return out


async def item_state(
    client: ErpClient, now: datetime, orig: str, seq_no: int, states: Sequence[str]
) -> Reply:
    """Poll STATUS with SeqNo until the item is in one of ``states``."""
    deadline = asyncio.get_running_loop().time() + 20
    n = 0
    while True:
        n += 1
        r = await send(
            client, "STATUS", f"S-{orig[:20]}-{seq_no}-{n}", now, status_body(orig, seq_no)
        )
        if r.state in states or asyncio.get_running_loop().time() > deadline:
            assert r.state in states, f"{orig} item {seq_no} stayed {r.state}"
            return r
        await asyncio.sleep(0.1)


def config(tmp_path: Path, pki: DevPki, broker: Broker, **extra: Any) -> Any:
    return gateway_config(tmp_path / "gw", pki, broker.url, {"listeners": LISTENERS, **extra})


# -- PAYROLL -------------------------------------------------------------------------


async def test_payroll_mixing_three_engines_with_one_bad_bank_code(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_gateway(config(tmp_path, dev_pki, broker), clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        lines = [
            Line(1, "103290000018", "1234.56"),  # our Shanghai branch → INTRA
            Line(2, "104100000004", "50000.00"),  # interbank, at the limit → HVPS
            Line(3, "105100000017", "49999.99"),  # interbank, below the limit → BEPS
            Line(4, "999999999999", "10.00"),  # unknown bank code → this item only, 4001
            Line(5, "100022", "5.00", purpose=None),  # 6-digit internal code → INTRA
        ]
        # items may come in any order; the answer lists them by SeqNo
        body = payroll_body([lines[2], lines[0], lines[4], lines[1], lines[3]])
        r = await send(erp, "PAYROLL", "PR-MIX", clock.now(), body)
        assert (r.ret_code, r.dup) == ("0000", False), r.ret_msg
        assert r.ret_msg == "accepted: 5 items, 1 rejected"
        assert r.gw_ref and r.gw_ref.startswith(f"GW{FRIDAY_10:%Y%m%d}A")
        got = items_of(r)
        assert [(i.seq_no, i.state, i.engine, i.reason) for i in got] == [
            (1, "QUEUED", "INTRA", None),
            (2, "QUEUED", "HVPS", None),
            (3, "QUEUED", "BEPS", None),
            (4, "REJECTED", None, "4001"),
            (5, "QUEUED", "INTRA", None),
        ]
        for seq in (1, 2, 3, 5):
            done = await item_state(erp, clock.now(), "PR-MIX", seq, ["SETTLED"])
            assert done.gw_ref == r.gw_ref
        four = await item_state(erp, clock.now(), "PR-MIX", 4, ["REJECTED"])
        assert four.reason == "4001 PayeeBankCode not in the directory"
        # STATUS without SeqNo: the whole batch, each item with its history
        whole = await send(erp, "STATUS", "PR-MIX-Q", clock.now(), status_body("PR-MIX"))
        assert (whole.ret_code, whole.ret_msg, whole.gw_ref) == ("0000", "found: 5 items", r.gw_ref)
        listed = items_of(whole)
        assert [i.state for i in listed] == ["SETTLED"] * 3 + ["REJECTED", "SETTLED"]
        assert listed[0].history[0] == "ACCEPTED" and listed[0].history[-1] == "SETTLED"
        assert listed[3].history == ("ACCEPTED", "REJECTED")
        missing = await send(erp, "STATUS", "PR-MIX-Q6", clock.now(), status_body("PR-MIX", 6))
        assert (missing.ret_code, missing.state) == ("0000", None)
        assert missing.ret_msg == "no item SeqNo 6 in OrigMsgId PR-MIX"
        await erp.close()
        assert sim.stats["invalid"] == 0


async def test_payroll_admission_is_all_or_nothing(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    async with running_gateway(config(tmp_path, dev_pki, broker), clock) as gw:
        erp = Erp(gw, dev_pki)
        now = clock.now()
        # a file certificate: every item below 50,000.00 (corplink.md §6) — one is not
        f = await erp.client("C100000001", "op02")
        lines = [Line(1, "105100000017", "100.00"), Line(2, "105100000017", "50000.00")]
        r = await send(f, "PAYROLL", "PR-FILE", now, payroll_body(lines))
        assert (r.ret_code, r.gw_ref) == ("2006", None)
        assert r.ret_msg.endswith("(SeqNo 2)"), r.ret_msg
        # ... and the file certificate's daily 200,000.00 counts the batch as a whole
        five = [Line(n, "105100000017", "49999.99") for n in range(1, 6)]
        over = await send(f, "PAYROLL", "PR-DAY", now, payroll_body(five))
        assert (over.ret_code, over.gw_ref) == ("2006", None)
        assert "daily limit" in over.ret_msg
        four = await send(f, "PAYROLL", "PR-DAY4", now, payroll_body(five[:4]))
        assert four.ret_code == "0000", four.ret_msg  # 199,999.96
        # PAIN001 is not a file certificate's (corplink.md §6): about the TrnCode, no item
        r = await send(f, "PAIN001", "PAIN-FILE", now, etree.fromstring(pain001_sample()))
        assert r.ret_code == "2006"
        assert "SeqNo" not in r.ret_msg and "PAIN001" in r.ret_msg
        for orig in ("PR-FILE", "PR-DAY"):
            q = await send(f, "STATUS", f"Q-{orig}", now, status_body(orig))
            assert q.ret_msg == f"no request with OrigMsgId {orig}"  # nothing journaled
        await f.close()

        u = await erp.client()
        # an amount error in item 3 → 4004 for the whole batch, naming it
        bad = [Line(1, "105100000017", "1.00"), Line(2, "104100000004", "2.00")]
        bad.append(Line(3, "103290000018", "1.005"))
        r = await send(u, "PAYROLL", "PR-4004", now, payroll_body(bad))
        assert (r.ret_code, r.msg_id, r.gw_ref) == ("4004", "PR-4004", None)
        assert r.ret_msg.endswith("(SeqNo 3)"), r.ret_msg
        # ... answered after freshness (corplink.md §8): a stale one gets 3002
        stale = now - timedelta(seconds=301)
        r = await send(u, "PAYROLL", "PR-4004-OLD", stale, payroll_body(bad))
        assert r.ret_code == "3002"
        # a payer account not enrolled for the CorpId → the whole batch 4006
        r = await send(u, "PAYROLL", "PR-4006", now, payroll_body(bad[:2], "6222999999999999"))
        assert r.ret_code == "4006"
        # SeqNo must be 1..n → 1003 naming it
        gap = [Line(1, "105100000017", "1.00"), Line(3, "105100000017", "1.00")]
        r = await send(u, "PAYROLL", "PR-GAP", now, payroll_body(gap))
        assert r.ret_code == "1003"
        assert r.ret_msg == "schema violation: SeqNo: 3 outside 1..2 (items are numbered 1..n)"
        dup = [Line(1, "105100000017", "1.00"), Line(1, "105100000017", "1.00")]
        r = await send(u, "PAYROLL", "PR-DUPSEQ", now, payroll_body(dup))
        assert (r.ret_code, r.ret_msg) == ("1003", "schema violation: Item: duplicate SeqNo")
        # no item can be routed: refused with the first item's code, every reason
        # listed, nothing journaled, and the MsgId stays free for the corrected batch
        nowhere = [Line(1, "999999999999", "1.00"), Line(2, "12345", "1.00")]
        r = await send(u, "PAYROLL", "PR-NONE", now, payroll_body(nowhere))
        assert (r.ret_code, r.gw_ref) == ("4001", None)
        assert [(i.seq_no, i.state, i.reason) for i in items_of(r)] == [
            (1, "REJECTED", "4001"),
            (2, "REJECTED", "4002"),
        ]
        fixed = [Line(1, "105100000017", "1.00"), Line(2, "104100000004", "1.00")]
        r = await send(u, "PAYROLL", "PR-NONE", now, payroll_body(fixed))
        assert r.ret_code == "0000", r.ret_msg
        await u.close()


async def test_duplicate_payroll_answers_the_original_with_dup(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    async with running_gateway(config(tmp_path, dev_pki, broker), clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        lines = [Line(1, "105100000017", "10.00"), Line(2, "999999999999", "20.00")]
        body = signed(erp, "PAYROLL", "PR-DUP", now, payroll_body(lines))
        first = await erp.send_raw(body, "PR-DUP")
        assert first.ret_code == "0000", first.ret_msg
        again = await erp.send_raw(body, "PR-DUP")  # the same bytes: a resend
        assert (again.ret_code, again.dup, again.gw_ref) == ("0000", True, first.gw_ref)
        before, after = items_of(first), items_of(again)
        assert [(i.seq_no, i.reason) for i in after] == [(i.seq_no, i.reason) for i in before]
        assert after[1].state == "REJECTED"
        assert after[0].state in {"QUEUED", "SENT"}  # no clearing system: it goes no further
        # a resend signed again (new signature, same Head+Body) is the same request
        resigned = await send(erp, "PAYROLL", "PR-DUP", now, payroll_body(lines))
        assert (resigned.dup, resigned.gw_ref) == (True, first.gw_ref)
        # the same MsgId with other content → 3001, even once stale
        other = await send(erp, "PAYROLL", "PR-DUP", now, payroll_body(lines[:1]))
        assert other.ret_code == "3001"
        late = now + timedelta(seconds=400)
        clock_late = await send(erp, "PAYROLL", "PR-DUP", late, payroll_body(lines))
        assert clock_late.ret_code == "3001"  # SendTime is in the Head: other content
        await erp.close()


async def test_payroll_items_wait_for_a_closed_engine_or_are_refused_by_policy(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """08:30 on a working day: HVPS opens at 09:00 (routing.md §4); INTRA and BEPS are open."""
    clock = BusinessClock(FRIDAY_10 - timedelta(minutes=90))
    lines = [
        Line(1, "104100000004", "80000.00"),  # HVPS
        Line(2, "105100000017", "100.00"),  # BEPS
        Line(3, "103290000018", "100.00"),  # INTRA
    ]
    async with running_gateway(config(tmp_path / "hold", dev_pki, broker), clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        r = await send(erp, "PAYROLL", "PR-HELD", clock.now(), payroll_body(lines))
        assert r.ret_code == "0000", r.ret_msg
        assert [(i.state, i.engine) for i in items_of(r)] == [
            ("HELD", "HVPS"),
            ("QUEUED", "BEPS"),
            ("QUEUED", "INTRA"),
        ]
        root = etree.fromstring(r.raw)
        release = root.findtext("c:Body/c:Items/c:Status/c:ReleaseAt", namespaces=C)
        assert release == f"{FRIDAY_10:%Y-%m-%d}T09:00:00.000+08:00"
        await erp.close()
    reject = {"engines": {"hvps": {"hold_policy": "reject"}, "beps": {"max_wait": 0.3}}}
    async with running_gateway(config(tmp_path / "rej", dev_pki, broker, **reject), clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        r = await send(erp, "PAYROLL", "PR-4005", clock.now(), payroll_body(lines))
        assert (r.ret_code, r.ret_msg) == ("0000", "accepted: 3 items, 1 rejected")
        assert [(i.state, i.reason) for i in items_of(r)] == [
            ("REJECTED", "4005"),
            ("QUEUED", None),
            ("QUEUED", None),
        ]
        await erp.close()


# -- PAIN001 -------------------------------------------------------------------------


def pain001_sample() -> bytes:
    """The shipped sample, paid from an account enrolled for the test corporate."""
    text = (REPO / "codecs" / "samples" / "pain001.xml").read_bytes()
    return text.replace(b"6222020200001234", PAYER.encode())


@pytest.mark.requires_xsd
def test_pain001_sample_is_valid_against_the_official_schema() -> None:
    schema = etree.XMLSchema(etree.parse(str(shared_xsd_dir() / "pain.001.001.09.xsd")))
    doc = etree.fromstring(pain001_sample())
    assert schema.validate(doc), schema.error_log
    assert len(doc.findall(".//{*}CdtTrfTxInf")) == 3


async def test_pain001_each_transaction_is_an_item(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_gateway(config(tmp_path, dev_pki, broker), clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        doc = etree.fromstring(pain001_sample())
        r = await send(erp, "PAIN001", "PAIN-1", now, doc)
        assert r.ret_code == "0000", r.ret_msg
        assert [(i.seq_no, i.state, i.engine, i.reason) for i in items_of(r)] == [
            (1, "QUEUED", "BEPS", None),  # 1,234.50 to ICBC
            (2, "QUEUED", "INTRA", None),  # 80,000.00 to our Beijing branch
            (3, "REJECTED", None, "4001"),  # payee bank only as a BIC: no BIC column
        ]
        three = await item_state(erp, now, "PAIN-1", 3, ["REJECTED"])
        assert three.reason == "4001 BIC not in the directory"
        for seq in (1, 2):
            await item_state(erp, now, "PAIN-1", seq, ["SETTLED"])
        # NbOfTxs that does not describe the transactions → 1003 naming it
        wrong = pain001_sample().replace(b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>")
        r = await send(erp, "PAIN001", "PAIN-2", now, etree.fromstring(wrong))
        assert (r.ret_code, r.gw_ref) == ("1003", None)
        assert "NbOfTxs" in r.ret_msg
        # an amount error in transaction 2 → 4004 for the document (a currency the
        # official schema allows, so the answer is the same with codec.pain001_xsd_dir)
        bad = pain001_sample().replace(b'Ccy="CNY">80000.00<', b'Ccy="AUD">80000.00<')
        r = await send(erp, "PAIN001", "PAIN-3", now, etree.fromstring(bad))
        assert r.ret_code == "4004"
        assert "transaction 2" in r.ret_msg
        await erp.close()
        assert sim.stats["invalid"] == 0


# -- MT101 ---------------------------------------------------------------------------


def mt101(*transactions: str, payer: str = PAYER) -> str:
    head = (
        "{1:F01ACMECNSHAXXX0000000000}{2:I101DEMOCNBJXXXXN}{4:\r\n"
        ":20:ACME-MT-0001\r\n:28D:1/1\r\n"
        f":50H:/{payer}\r\nACME TRADING CO LTD\r\n:30:261127\r\n"
    )
    return head + "".join(transactions) + "-}"


TX_CN = ":21:TX-1\r\n:32B:CNY1234,50\r\n:57D://CN105100000017\r\n:59:/6217000011112222\r\nBETA LTD\r\n:71A:SHA\r\n"
TX_BIC = ":21:TX-2\r\n:32B:CNY500,\r\n:57A:ICBKCNBJ\r\n:59:/0200001234567890\r\nDELTA LTD\r\n:71A:OUR\r\n"


def mt_body(text: str) -> etree._Element:
    """``<MT><![CDATA[...]]></MT>`` as a client's signing tool sees it: parsed from
    bytes, so the FIN text's CRLF line ends are LF (XML end-of-line handling)."""
    el = etree.Element(f"{{{NS}}}MT", nsmap={None: NS})  # type: ignore[dict-item]
    el.text = etree.CDATA(text)
    return etree.fromstring(etree.tostring(el))


async def test_mt101_each_sequence_b_is_an_item(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl"),
        running_gateway(config(tmp_path, dev_pki, broker), clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        r = await send(erp, "MT101", "MT-1", now, mt_body(mt101(TX_CN, TX_BIC)))
        assert (r.ret_code, r.ret_msg) == ("0000", "accepted: 2 items, 1 rejected")
        assert [(i.seq_no, i.state, i.engine, i.reason) for i in items_of(r)] == [
            (1, "QUEUED", "BEPS", None),  # 57D //CN + 12 digits
            (2, "REJECTED", None, "4001"),  # 57A BIC only
        ]
        await item_state(erp, now, "MT-1", 1, ["SETTLED"])
        # a malformed field → 1003 naming it
        broken = mt101(TX_CN.replace("CNY1234,50", "CNY1234.50"))
        r = await send(erp, "MT101", "MT-2", now, mt_body(broken))
        assert (r.ret_code, r.gw_ref) == ("1003", None)
        assert "field 32B" in r.ret_msg
        r = await send(erp, "MT101", "MT-3", now, mt_body(mt101(TX_CN).replace("-}", "")))
        assert (r.ret_code, r.ret_msg) == (
            "1003",
            "schema violation: block 4: not terminated by -}",
        )
        # an amount of zero → 4004 for the message
        r = await send(erp, "MT101", "MT-4", now, mt_body(mt101(TX_CN.replace("1234,50", "0,"))))
        assert r.ret_code == "4004"
        # the payer of every sequence must be enrolled → 4006
        r = await send(erp, "MT101", "MT-5", now, mt_body(mt101(TX_CN, payer="6222999999999999")))
        assert r.ret_code == "4006"
        await erp.close()


# -- size ----------------------------------------------------------------------------


def big_batch(n: int) -> list[Line]:
    codes = ("999999999999", "104100000004", "105100000017", "103290000018")
    return [
        Line(
            s,
            codes[s % 4],
            f"{(s % 90) + (60_000 if s % 4 == 1 else 10)}.{s % 100:02d}",  # HVPS for s ≡ 1
            f"62170000{s:08d}",
            f"员工{s:05d}",
            "2026年11月工资及绩效奖金",
        )
        for s in range(1, n + 1)
    ]


async def accept_big_payroll(tmp_path: Path, dev_pki: DevPki, broker: Broker, n: int) -> None:
    clock = BusinessClock(FRIDAY_10)
    async with running_gateway(config(tmp_path, dev_pki, broker), clock) as gw:
        erp = await Erp(gw, dev_pki).client(listener="big")
        now = clock.now()
        t0 = time.perf_counter()
        body = signed(erp, "PAYROLL", f"PR-BIG-{n}", now, payroll_body(big_batch(n)))
        sign = time.perf_counter() - t0
        assert 1 * MIB < len(body) <= 16 * MIB
        t0 = time.perf_counter()
        r = await erp.send_raw(body, f"PR-BIG-{n}")  # includes verifying the signed answer
        accept = time.perf_counter() - t0
        assert r.ret_code == "0000", r.ret_msg
        assert r.ret_msg == f"accepted: {n} items, {n // 4} rejected"
        got = items_of(r)
        assert [i.seq_no for i in got] == list(range(1, n + 1))
        assert {i.engine for i in got} == {"INTRA", "HVPS", "BEPS", None}
        # STATUS without SeqNo lists the first 1,000 and says how many there are
        t0 = time.perf_counter()
        q = await send(erp, "STATUS", f"Q-BIG-{n}", now, status_body(f"PR-BIG-{n}"))
        status = time.perf_counter() - t0
        assert q.ret_msg == f"found: {n} items, SeqNo 1-1000 listed; ask with SeqNo for the others"
        assert [i.seq_no for i in items_of(q)] == list(range(1, 1001))
        last = await send(erp, "STATUS", f"Q-LAST-{n}", now, status_body(f"PR-BIG-{n}", n))
        assert last.state == "REJECTED"  # SeqNo n ≡ 0 mod 4: the unknown bank code
        t0 = time.perf_counter()
        dup = await erp.send_raw(body, f"PR-BIG-{n}")
        again = time.perf_counter() - t0
        assert (dup.dup, len(items_of(dup))) == (True, n)
        await erp.close()
        print(  # the figures for the report (-s to see them)
            f"\nPAYROLL {n} items, {len(body) / MIB:.1f} MiB: sign {sign:.2f} s, "
            f"accept {accept:.2f} s, STATUS {status:.2f} s, Dup {again:.2f} s"
        )


async def test_a_5000_item_payroll_on_a_16_mib_listener(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    await accept_big_payroll(tmp_path, dev_pki, broker, 5_000)


@pytest.mark.slow
async def test_a_50000_item_payroll_on_a_16_mib_listener(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    await accept_big_payroll(tmp_path, dev_pki, broker, 50_000)
