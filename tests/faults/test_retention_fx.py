"""An item's foreign-currency fields survive retention (archive format 7), on both backends.

After the retention pass the archive is the bank's record of a payment
(corplink.md §7), so a SWIFT payment's UETR, its end-to-end tracking id on
the network, and its payee's BIC and country and its charge bearer
(docs/foreign-currency.md §1, §4) go into the file with the item and come
back in ``messages show`` exactly as the journal showed them.  A CNY item
has none; a file written before format 7 still reads, its items without them.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

from gateway.journal.archive import FORMAT
from gateway.journal.ops_records import MessageQuery
from gateway.journal.records import NewOutbound, TxResult
from gateway.journal.retention import ArchivedRequest, archive_once, read_archive
from gateway.model import Engine, State
from gateway.ops import messages
from gateway.ops.views import detail_json
from tests.faults import test_retention as base
from tests.faults.test_retention import BEFORE, OLD, Journal, accept, item

# the parametrized journal (sqlite, postgres); its PostgreSQL server is the suite's `pg`
journal = base.journal

UETR = "8a562c67-ca16-48ba-b074-65581be6f011"
SWIFT_OUT = "DEMOCNBJ202507140000000001"
FX = {"uetr": UETR, "payee_bic": "CITIUS33XXX", "payee_country": "US", "chrg_br": "DEBT"}
NONE = dict.fromkeys(FX)


async def settled_swift_payment(j: Journal) -> str:
    """A USD payment sent in a swift.008 with its UETR and settled (swift.002 ACSC)."""
    fx = replace(
        item(), engine=Engine.SWIFT, receiver="HUDSUS33", ccy="USD", payee_bank_code="", payee_bic="CITIUS33XXX", payee_country="US", chrg_br="DEBT",
    )  # fmt: skip
    ref = await accept(j, "OLD-FX", OLD, fx)
    (queued,) = await j.store.claim_queued(Engine.SWIFT, 10)
    await j.store.create_outbound([
        NewOutbound(SWIFT_OUT, Engine.SWIFT, "swift.008", "swift/out", "HUDSUS33",
                    queued.work_date, b"<ClrMsg/>", (queued.item_id,), OLD, uetr=UETR)
    ])  # fmt: skip
    await j.store.mark_sent(SWIFT_OUT, OLD)
    done = [TxResult(queued.tx_id, queued.end_to_end_id, "ACSC")]
    assert await j.store.apply_tx_status(SWIFT_OUT, done, OLD) == 1
    return ref


async def test_a_swift_payments_uetr_bic_country_and_charges_are_archived(
    journal: Journal, tmp_path: Path
) -> None:
    fx_ref = await settled_swift_payment(journal)
    cny_ref = await accept(journal, "OLD-CNY", OLD, item(state=State.REJECTED))
    live = {ref: await messages.detail(journal.store, None, ref) for ref in (fx_ref, cny_ref)}
    fx_live = live[fx_ref]
    assert fx_live is not None
    assert {k: getattr(fx_live.items[0].item, k) for k in FX} == FX

    out = tmp_path / "archive"
    res = await archive_once(journal.backend, journal.target, out, before=BEFORE)
    assert res.requests == 2 and res.path is not None
    assert await journal.store.find_request("C100000001", "OLD-FX") is None

    with gzip.open(res.path, "rt", encoding="utf-8") as fh:
        assert json.loads(fh.readline())["format"] == FORMAT == 7
    requests = {
        r.record.msg_id: r for r in read_archive(res.path) if isinstance(r, ArchivedRequest)
    }
    (fx,) = requests["OLD-FX"].items
    assert {k: getattr(fx, k) for k in FX} == FX
    assert (fx.state, fx.ccy, fx.out_msg_id) == (State.SETTLED, "USD", SWIFT_OUT)
    assert fx.view().uetr == UETR  # what STATUS showed
    (cny,) = requests["OLD-CNY"].items
    assert {k: getattr(cny, k) for k in FX} == NONE

    # messages show: the archived item is the one the journal showed, found in the file
    for ref, expected in ((fx_ref, FX), (cny_ref, NONE)):
        before, after = live[ref], await messages.detail(journal.store, out, ref)
        assert before is not None and after is not None and after.archive == res.path.name
        assert [t.item for t in after.items] == [
            replace(t.item, archive=res.path.name) for t in before.items
        ]
        (shown,) = detail_json(after)["items"]
        assert {k: shown[k] for k in FX} == expected


def test_a_format_6_file_reads_back_without_the_fx_fields(tmp_path: Path) -> None:
    """A file the retention pass wrote before format 7: its items read back, and show,
    with the four fields None."""
    decision = '{"versions": [{"list": "test-list", "version": "v1"}], "hits": []}'
    lines = [
        {"kind": "archive", "format": 6, "backend": "sqlite"},
        {"kind": "request", "gw_ref": "GW20250714000001", "corp_id": "C100000001",
         "msg_id": "OLD-V6", "oper_id": "op01", "trn_code": "PAY", "digest": "d",
         "received_at": "2025-07-14T10:00:00.000000+08:00", "node": "A",
         "items": [{
             "seq_no": None, "tx_id": "GW20250714000001", "end_to_end_id": "OLD-V6",
             "engine": "SWIFT", "receiver": "HUDSUS33", "payee_bank_code": "",
             "work_date": "2025-07-14", "state": "SETTLED", "release_at": None,
             "payer_acct": "6222000000000001", "payer_name": "付款人",
             "payee_acct": "6217000000000000", "payee_name": "收款人", "amount": "100.00",
             "ccy": "USD", "priority": "NORM", "biz_type": "CREDIT", "purpose": "货款",
             "reason_code": None, "reason_text": None, "out_msg_id": SWIFT_OUT,
             "queued_at": "2025-07-14T10:00:00.000000+08:00",
             "updated_at": "2025-07-14T10:00:05.000000+08:00", "screening": decision,
             "transitions": [{"state": "SETTLED", "at": "2025-07-14T10:00:05.000000+08:00",
                              "detail": None}],
         }]},
    ]  # fmt: skip
    out = tmp_path / "archive"
    out.mkdir()
    path = out / "journal-20250714-20250714-000000000006.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)

    (request,) = list(read_archive(path))
    assert isinstance(request, ArchivedRequest)
    (old,) = request.items
    assert (old.state, old.ccy, old.screening) == (State.SETTLED, "USD", decision)
    assert {k: getattr(old, k) for k in FX} == NONE
    assert old.view().uetr is None
    (hit,) = messages.archived_hits(out, MessageQuery(msg_id="OLD-V6"), 10)
    assert hit.archive == path.name and hit.screening == decision
    assert {k: getattr(hit, k) for k in FX} == NONE
