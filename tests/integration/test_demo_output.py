"""What a newcomer reads from ``gateway-sim demo``: one readable story, not raw log records.

The simulators log through structlog's console renderer stamped with the
business time (the daemon's clock starts at 10:00 Asia/Shanghai), their
statistics are labelled sentences, and ``--state-dir`` ends with the commands
that look at the kept state, which work as printed.  Its foreign-currency tour
(docs/foreign-currency.md §1–§4) pays over the SWIFT link on two different
settlement paths and is refused a yen amount with decimals; its screening and review
tour (§5) holds listed payees in REVIEW until two reviewers release one and one
rejects the other, and posts a screened incoming USD credit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_LIST = REPO / "conf" / "screening" / "demo-list.csv"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    state = tmp_path_factory.mktemp("demo") / "state"
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli.sim", "demo", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout, state


def test_simulator_lines_are_console_rendered_in_business_time(demo: tuple[str, Path]) -> None:
    """Stamped with the business clock in force: the first day's from 10:00, and after the
    restart on the next working day (00:05) that day's, for a netting round may land there."""
    stdout, _ = demo
    lines = stdout.splitlines()
    assert not [ln for ln in lines if ln.lstrip().startswith("{")]  # no JSON records
    assert "\x1b[" not in stdout  # no colours when not on a terminal
    m = re.search(r"business clock starts at (\S+)", stdout)
    assert m is not None, stdout
    start = datetime.fromisoformat(m.group(1))
    sim_lines = [ln for ln in lines if re.search(r"\b(clearing|core|swift)_sim_\w+", ln)]
    assert any("clearing_sim_ready" in ln for ln in sim_lines), stdout
    assert any("swift_sim_ready" in ln for ln in sim_lines), stdout
    for ln in lines:
        restart = re.match(r"demo: gatewayd stopped; restarting at (\S+)", ln)
        if restart is not None:
            start = datetime.fromisoformat(restart[1])
        if ln not in sim_lines:
            continue
        stamp = re.match(r"(\d\d):(\d\d):(\d\d) \[info\s*\] (clearing|core|swift)_sim_\w+", ln)
        assert stamp is not None, ln
        at = start.replace(hour=int(stamp[1]), minute=int(stamp[2]), second=int(stamp[3]))
        assert timedelta(0) <= at - start.replace(microsecond=0) < timedelta(minutes=15), ln


def test_statistics_are_labelled_sentences(demo: tuple[str, Path]) -> None:
    stdout, _ = demo
    stats = [ln for ln in stdout.splitlines() if "simulator:" in ln]
    assert stats, stdout
    assert not [ln for ln in stats if "{" in ln or '"' in ln]
    text = "\n".join(stats)
    assert re.search(r"\d+ transactions settled, \d+ rejected", text), text
    assert re.search(r"BEPS netting: [1-9]\d* rounds", text), text
    assert re.search(r"core banking simulator: .*requests [1-9]", text), text
    assert re.search(r"SWIFT simulator: 3 messages .*3 swift\.002: 3 settled", text), text


def test_foreign_currency_goes_over_swift_on_both_paths(demo: tuple[str, Path]) -> None:
    """USD to a bank we have no relation with goes through the correspondent, EUR to a bank
    in rma.csv straight to it; both settle with a UETR; JPY with decimals is refused 4004."""
    stdout, state = demo
    tour = stdout[stdout.index("demo: foreign currency") : stdout.index("demo: screening")]
    pays = {m[1]: m for m in re.finditer(r"  PAY (\w{3}) \S+ to (\w+) .*-> (\d{4}) ?(\w*)", tour)}
    assert {ccy: (m[2], m[3], m[4]) for ccy, m in pays.items()} == {
        "USD": ("CITIUS33", "0000", "SWIFT"),
        "EUR": ("LIONFRPPXXX", "0000", "SWIFT"),
        "JPY": ("MIZUJPJT", "4004", "amount"),
    }, tour
    final = dict(
        re.findall(
            r"STATUS \S+-FX(\w{3}) -> SETTLED \(swift\.002 ACSC\) UETR ([0-9a-f-]{36})", tour
        )
    )
    assert set(final) == {"USD", "EUR"}, tour
    # what crossed the wire: the correspondent for USD, the payee's own bank for EUR
    record = [json.loads(x) for x in (state / "swift-record.jsonl").read_text().splitlines()]
    by_ccy = {x["ccy"]: x for x in record if "-FX" in x.get("end_to_end_id", "")}
    assert set(by_ccy) == {"USD", "EUR"}
    assert by_ccy["USD"]["rcvr"] == "HUDSUS33"
    assert by_ccy["EUR"]["rcvr"] == "LIONFRPPXXX"
    assert {ccy: line["uetr"] for ccy, line in by_ccy.items()} == final
    summary = stdout[stdout.index("summary per engine") :]
    # the review tour's two payments count too: one released and settled, one rejected RR04
    assert re.search(
        r"^  SWIFT\s+4\s+3\s+1\s+RR04 payee matches DEMO D-0002 x1$", summary, re.MULTILINE
    ), summary
    door = re.search(r"refused at the door: \d+ \(([\d, ]+)\)", summary)
    assert door is not None and "4004" in door[1].split(", "), summary


def test_screening_holds_listed_payees_for_the_four_eyes_review(demo: tuple[str, Path]) -> None:
    """A listed payee waits in REVIEW with its hit and list version; the same reviewer cannot
    approve twice, a second one releases it to SWIFT; one rejection ends the other RR04; a
    clear incoming USD credit is posted and notified in USD.  The journal agrees."""
    stdout, state = demo
    tour = stdout[stdout.index("demo: screening") : stdout.index("demo: correspondence")]
    held = dict(re.findall(r"payee ([^,]+?) -> 0000 SWIFT REVIEW GwRef (\S+);", tour))
    assert set(held) == {"Northwind Shadow Trading LLC", "Ivan Sidorenko"}, tour
    released, rejected = held["Northwind Shadow Trading LLC"], held["Ivan Sidorenko"]
    version = hashlib.sha256(DEMO_LIST.read_bytes()).hexdigest()
    assert (
        f"gatewayctl review show {released} -> hit DEMO D-0001 on payee_name, score 1.00;"
        f" list demo-list version {version[:16]}"
    ) in tour, tour
    steps = [
        f"gatewayctl review --as ops-li approve {released} -> approved by ops-li (1 of 2):"
        " still REVIEW",
        f"gatewayctl review --as ops-li approve {released} -> refused (exit 1):"
        f" {released}: already approved by ops-li",
        f"gatewayctl review --as ops-wang approve {released} -> released by ops-li and ops-wang:"
        " QUEUED on SWIFT",
        f'gatewayctl review --as ops-li reject {rejected} --reason "payee matches DEMO D-0002"'
        " -> rejected by ops-li: REJECTED RR04",
    ]
    at = [tour.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), tour
    settled = re.search(
        r"STATUS (\S+-RVUSD1) -> SETTLED \(swift\.002 ACSC\) UETR ([0-9a-f-]{36})", tour
    )
    assert settled is not None, tour
    assert re.search(r"STATUS \S+-RVUSD2 -> REJECTED Reason Code RR04 payee matches", tour), tour
    # on the wire: the released one went (through the USD correspondent), the rejected never
    record = [json.loads(x) for x in (state / "swift-record.jsonl").read_text().splitlines()]
    sent = {x["end_to_end_id"]: x for x in record if "end_to_end_id" in x}
    assert (sent[settled[1]]["rcvr"], sent[settled[1]]["uetr"]) == ("HUDSUS33", settled[2])
    assert not [e2e for e2e in sent if e2e.endswith("-RVUSD2")]

    credit = re.search(r"NTFY #\d+ CREDIT (\S+) Ccy USD 3200\.00 from Overseas Buyer Inc", tour)
    assert credit is not None, tour
    assert (
        f"gatewayctl credits --state POSTED -> {credit[1]} USD 3200.00 POSTED,"
        f" screened against demo-list version {version[:16]}: 0 hits"
    ) in tour, tour
    summary = stdout[stdout.index("summary per engine") :]
    assert (
        "  REVIEW: 2 screened hits, 1 released by two approvals, 1 rejected RR04;"
        " 1 incoming USD credit screened clear and posted"
    ) in summary, summary

    # the journal keeps the decisions: gatewayctl messages show reads it with the daemon stopped
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli.gatewayctl", "--config", str(state / "demo.toml"),
         "messages", "show", released],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    (item,) = shown["items"]
    assert item["screening"]["versions"] == [{"list": "demo-list", "version": version}]
    assert [t["detail"] for t in item["transitions"] if t["state"] in ("REVIEW", "QUEUED")] == [
        None,
        "approved by ops-li (1 of 2)",
        "released in review, approved by ops-li and ops-wang",
    ]
    assert [(a["operator"], a["action"]) for a in shown["actions"]] == [
        ("ops-li", "approve"), ("ops-wang", "approve"),
    ]  # fmt: skip


def test_kept_state_says_how_to_look_at_it_and_the_command_works(demo: tuple[str, Path]) -> None:
    stdout, state = demo
    assert f"demo: state kept in {state}" in stdout
    hints = stdout[stdout.index(f"demo: state kept in {state}") :]
    overlay = state / "demo.toml"
    assert f"gatewayctl --config {overlay} status" in hints
    keys_list = next(ln for ln in hints.splitlines() if ln.endswith(" keys list"))
    out = subprocess.run(
        shlex.split(keys_list),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert str(state / "gateway" / "pki") in out.stdout
    assert re.search(r"^tls\s+server\.pem\s+active", out.stdout, re.MULTILINE), out.stdout
