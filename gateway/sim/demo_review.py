"""The demo's screening and review (复核) tour (docs/foreign-currency.md §5), as operators see it.

After the foreign-currency tour, the demo's overlay screens every SWIFT payment
and incoming swift.008 against the fictional ``conf/screening/demo-list.csv``:

- a USD payment to a listed payee is answered 0000 with State REVIEW and nothing
  goes out; ``review show`` gives the hit (list, entry, field, score) and the
  list version; one approval leaves it in REVIEW, the same reviewer approving
  again is refused, and a second reviewer's approval releases it to SWIFT, where
  it settles with its UETR — four eyes;
- another listed payee is rejected by one reviewer with a reason: REJECTED,
  Reason Code RR04, which the corporate reads through STATUS;
- an incoming USD credit from a party not on the list is screened clear, passes
  the core's account check and is POSTED, with a CREDIT notification in USD
  (docs/foreign-currency.md §4).

Each review step is the admin-socket request ``gatewayctl review`` sends, printed
as that command.  The two reviewers are stand-ins (``--as``, accepted only with
``environment = "test"``); the socket's real user, the one running the demo,
must still be in ``screening.review_group``, which the demo's overlay sets to
that user's group.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from gateway.clock import SHANGHAI
from gateway.config import load_config
from gateway.ops.admin import call
from gateway.sim.demo_fx import WAIT, FxDemo, FxTour, final_status, wire_record
from gateway.sim.erp import ErpClient, Payment, Reply
from gateway.sim.swift import IncomingCredit

CORP: Final = "C100000001"
ACCT: Final = "6222000000000001"  # C100000001's enrolled account
ACCT_NAME: Final = "Demo Trading Co."  # as the dev PKI enrols it and the core names it
FIRST: Final = "ops-li"  # the stand-in reviewers (``--as``)
SECOND: Final = "ops-wang"
REJECT_REASON: Final = "payee matches DEMO D-0002"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _listed(amount: str, name: str) -> Payment:
    """A USD payment of C100000001 to Citibank New York, to a payee on the demo list."""
    return Payment(
        payer_acct=ACCT,
        payer_name="示范贸易有限公司",
        payee_acct="000987654321",
        payee_name=name,
        payee_bank_code="",  # a BIC names the payee's bank (docs/foreign-currency.md §1)
        amount=Decimal(amount),
        ccy="USD",
        purpose="invoice 2026-131",
        payee_bic="CITIUS33",
        payee_country="US",
    )


RELEASED: Final = _listed("48000.00", "Northwind Shadow Trading LLC")  # D-0001 by its name
REJECTED: Final = _listed("9600.00", "Ivan Sidorenko")  # D-0002 by an alias
CREDIT: Final = IncomingCredit(
    sender_bic="CITIUS33XXX",
    debtor_name="Overseas Buyer Inc",  # on no list: screened clear
    debtor_acct="000123456789",
    creditor_acct=ACCT,
    creditor_name=ACCT_NAME,
    amount=Decimal("3200.00"),
    ccy="USD",
    purpose="invoice 2026-7",
)


@dataclass
class ReviewTally:
    """What the summary's REVIEW line reports."""

    hits: int = 0
    released: int = 0
    rejected: int = 0
    credits_posted: int = 0

    def line(self) -> str:
        return (
            f"REVIEW: {self.hits} screened hits, {self.released} released by two approvals,"
            f" {self.rejected} rejected RR04; {self.credits_posted} incoming USD credit"
            " screened clear and posted"
        )


class _Desk:
    """The review steps, each the admin request ``gatewayctl review`` would send
    (``gateway.cli.gatewayctl._command``), printed as that command line."""

    def __init__(self, demo: FxDemo, tour: FxTour) -> None:
        self.sock = load_config(demo.config).admin_socket
        self.tour = tour

    async def ask(self, argv: str, cmd: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The daemon's answer to ``cmd``, and ``gatewayctl ARGV ->`` to print it after."""
        return f"  gatewayctl {argv} ->", await call(self.sock, cmd)

    def fail(self, expected: str) -> None:
        self.tour.failures += 1
        _say(f"    expected {expected}")


def _versions(screening: dict[str, Any]) -> str:
    """The list versions that decided a screening, as ``stem version`` (16 hex digits)."""
    return ", ".join(
        f"{v['list']} version {v['version'][:16]}" for v in screening.get("versions", [])
    )


def _item(answer: dict[str, Any]) -> dict[str, Any]:
    items = answer.get("items")
    return items[0] if isinstance(items, list) and items else {}


async def _pay_listed(
    erp: ErpClient, demo: FxDemo, tally: ReviewTally, desk: _Desk, tag: str, p: Payment
) -> Reply | None:
    """PAY to a listed payee: 0000 with State REVIEW on SWIFT, or a failure."""
    r = await erp.pay(f"{demo.run}-{tag}", demo.clock.now(), p)
    what = f"PAY {p.ccy} {p.amount} to {p.payee_bic} ({p.payee_country}), payee {p.payee_name}"
    if r.ret_code != "0000":
        _say(f"  {what} -> {r.ret_code} {r.ret_msg}")
        desk.fail("0000 with State REVIEW")
        return None
    _say(
        f"  {what} -> 0000 {r.engine} {r.state} GwRef {r.gw_ref};"
        " listed: nothing is sent until two reviewers approve"
    )
    if r.state != "REVIEW" or r.engine != "SWIFT" or r.gw_ref is None:
        desk.fail("State REVIEW on SWIFT")
        return None
    tally.hits += 1
    return r


async def _show(desk: _Desk, ref: str) -> None:
    """``review show``: the hits with the list version that decided them."""
    shown, answer = await desk.ask(f"review show {ref}", {"op": "review.show", "ref": ref})
    screening = _item(answer).get("screening") or {}
    versions = _versions(screening)
    hits = screening.get("hits", [])
    for h in hits:
        _say(
            f"{shown} hit {h['list']} {h['entry_id']} on {h['field']}, score"
            f" {float(h['score']):.2f}; list {versions}"
        )
    if not answer.get("ok") or not hits or not versions:
        _say(f"{shown} {json.dumps(answer, ensure_ascii=False)[:300]}")
        desk.fail("the hits and the list version")


async def _approve(desk: _Desk, ref: str, user: str) -> dict[str, Any]:
    shown, answer = await desk.ask(
        f"review --as {user} approve {ref}", {"op": "review.approve", "as": user, "ref": ref}
    )
    item = _item(answer)
    if not answer.get("ok"):
        _say(f"{shown} refused (exit 1): {answer.get('reason')}")
    elif item.get("decision") == "release":
        _say(f"{shown} released by {' and '.join(item.get('approvals') or [user])}:"
             f" {item.get('state')} on {item.get('engine')}")  # fmt: skip
    else:
        _say(f"{shown} approved by {user} ({len(item.get('approvals', []))} of 2):"
             f" still {item.get('state')}")  # fmt: skip
    return answer


async def _four_eyes(erp: ErpClient, demo: FxDemo, tally: ReviewTally, desk: _Desk) -> None:
    """Step 1: shown, approved once, refused the same reviewer, released, settled."""
    r = await _pay_listed(erp, demo, tally, desk, "RVUSD1", RELEASED)
    if r is None or r.gw_ref is None:
        return
    ref = r.gw_ref
    await _show(desk, ref)
    first = await _approve(desk, ref, FIRST)
    if not first.get("ok") or _item(first).get("state") != "REVIEW":
        desk.fail(f"approved by {FIRST}, still REVIEW")
    again = await _approve(desk, ref, FIRST)
    if again.get("ok") or f"already approved by {FIRST}" not in str(again.get("reason")):
        desk.fail(f"refused: already approved by {FIRST}")
    second = await _approve(desk, ref, SECOND)
    if not second.get("ok") or _item(second).get("decision") != "release":
        desk.fail(f"released by {FIRST} and {SECOND}")
        return
    final = await final_status(erp, demo.clock, r.msg_id)
    desk.tour.sent.append((r, final))
    if final is None:
        _say(f"  STATUS {r.msg_id} -> no final state within {WAIT:.0f} s")
        desk.fail("SETTLED")
        return
    rcvr = wire_record(demo.swift.config.record_path).get(r.msg_id, {}).get("rcvr")
    _say(
        f"  STATUS {r.msg_id} -> {final.state} (swift.002 ACSC) UETR {final.uetr};"
        f" the SWIFT interface saw Rcvr {rcvr}"
        if final.state == "SETTLED"
        else f"  STATUS {r.msg_id} -> {final.state} reason {final.reason}"
    )
    if final.state != "SETTLED" or final.uetr is None:
        desk.fail("SETTLED over SWIFT with a UETR")
        return
    tally.released += 1


async def _rejection(erp: ErpClient, demo: FxDemo, tally: ReviewTally, desk: _Desk) -> None:
    """Step 2: one reviewer's rejection ends it REJECTED RR04 with the reason."""
    r = await _pay_listed(erp, demo, tally, desk, "RVUSD2", REJECTED)
    if r is None or r.gw_ref is None:
        return
    ref = r.gw_ref
    shown, answer = await desk.ask(
        f'review --as {FIRST} reject {ref} --reason "{REJECT_REASON}"',
        {"op": "review.reject", "as": FIRST, "ref": ref, "reason": REJECT_REASON},
    )
    item = _item(answer)
    if answer.get("ok"):
        _say(f"{shown} rejected by {FIRST}: {item.get('state')} {item.get('reason_code')}")
    else:
        _say(f"{shown} refused (exit 1): {answer.get('reason')}")
    st = await erp.status(f"{r.msg_id}-Q1", demo.clock.now(), r.msg_id)
    desk.tour.sent.append((r, st if st.state in ("SETTLED", "REJECTED") else None))
    _say(f"  STATUS {r.msg_id} -> {st.state} Reason Code {st.reason}")
    if st.state != "REJECTED" or not (st.reason or "").startswith("RR04"):
        desk.fail("REJECTED with Reason Code RR04 and the reviewer's text")
        return
    tally.rejected += 1


async def _incoming(erp: ErpClient, demo: FxDemo, tally: ReviewTally, desk: _Desk) -> None:
    """Step 3: an incoming USD credit, debtor not listed: screened clear, POSTED, NTFY CREDIT."""
    c = CREDIT
    day = demo.clock.now().astimezone(SHANGHAI).date()  # the business date, not the host's
    msg_id, uetr = await demo.swift.inject_credit(replace(c, work_date=day))
    _say(
        f"  incoming swift.008 {msg_id} {c.ccy} {c.amount} from {c.debtor_name} ({c.sender_bic})"
        f" to 6222****0001 ({CORP}), UETR {uetr}"
    )
    ids = (f"{demo.run}-RVN{n:04d}" for n in itertools.count(1))
    notice = await erp.wait_notice(
        ids,
        demo.clock.now,
        lambda n: n.kind == "CREDIT" and n.ccy == c.ccy and n.amount == c.amount,
        timeout=WAIT,
    )
    if notice is None:
        _say("  no CREDIT notification arrived")
        desk.fail(f"NTFY CREDIT with Ccy {c.ccy}")
        return
    _say(
        f"  NTFY #{notice.ntfy_id} CREDIT {notice.gw_ref} Ccy {notice.ccy} {notice.amount}"
        f" from {notice.cpty_name} for {CORP} (engine {notice.engine})"
    )
    shown, answer = await desk.ask("credits --state POSTED", {"op": "credits", "state": "POSTED"})
    posted = [x for x in answer.get("credits", []) if x.get("gw_ref") == notice.gw_ref]
    raw = posted[0].get("screening") if posted else None
    screening: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw or {}
    versions = _versions(screening)
    _say(
        f"{shown} {notice.gw_ref} {notice.ccy} {notice.amount} POSTED,"
        f" screened against {versions or '?'}: {len(screening.get('hits', []))} hits"
    )
    if not versions or screening.get("hits"):
        desk.fail("POSTED, screened clear with the list version")
        return
    tally.credits_posted += 1


async def review_tour(demo: FxDemo, tour: FxTour) -> ReviewTally:
    """Run the tour; its SWIFT payments join ``tour.sent`` (the summary's SWIFT row), the
    steps that did not work out ``tour.failures``.  Returns what the REVIEW line reports."""
    tally = ReviewTally()
    desk = _Desk(demo, tour)
    erp = await demo.client_for(CORP, "op01")
    _say("")
    _say("demo: screening and review (复核) against conf/screening/demo-list.csv")
    _say(
        f"  (each gatewayctl line is what `gatewayctl --config {demo.config} ...` asks over the"
        ' admin socket; --as names a stand-in reviewer, accepted with environment "test")'
    )
    await _four_eyes(erp, demo, tally, desk)
    await _rejection(erp, demo, tally, desk)
    await _incoming(erp, demo, tally, desk)
    return tally


__all__ = ["CREDIT", "REJECTED", "RELEASED", "ReviewTally", "review_tour"]
