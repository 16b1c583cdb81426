"""What a newcomer reads from ``gateway-sim demo``: one readable story, not raw log records.

The simulators log through structlog's console renderer stamped with the
business time (the daemon's clock starts at 10:00 Asia/Shanghai), their
statistics are labelled sentences, and ``--state-dir`` ends with the commands
that look at the kept state, which work as printed.  Its foreign-currency tour
(docs/foreign-currency.md §1–§4) pays over the SWIFT link on two different
settlement paths and is refused a yen amount with decimals.
"""

from __future__ import annotations

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
    for ln in sim_lines:
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
    assert re.search(r"SWIFT simulator: 2 messages .*2 swift\.002: 2 settled", text), text


def test_foreign_currency_goes_over_swift_on_both_paths(demo: tuple[str, Path]) -> None:
    """USD to a bank we have no relation with goes through the correspondent, EUR to a bank
    in rma.csv straight to it; both settle with a UETR; JPY with decimals is refused 4004."""
    stdout, state = demo
    tour = stdout[stdout.index("demo: foreign currency") : stdout.index("demo: correspondence")]
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
    by_ccy = {line["ccy"]: line for line in record if "ccy" in line}
    assert set(by_ccy) == {"USD", "EUR"}
    assert by_ccy["USD"]["rcvr"] == "HUDSUS33"
    assert by_ccy["EUR"]["rcvr"] == "LIONFRPPXXX"
    assert {ccy: line["uetr"] for ccy, line in by_ccy.items()} == final
    summary = stdout[stdout.index("summary per engine") :]
    assert re.search(r"^  SWIFT\s+2\s+2\s+0\s+-$", summary, re.MULTILINE), summary
    door = re.search(r"refused at the door: \d+ \(([\d, ]+)\)", summary)
    assert door is not None and "4004" in door[1].split(", "), summary


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
