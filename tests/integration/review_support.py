"""Helpers of the screening and review tests (docs/foreign-currency.md §5): a test list,
its overlay, foreign-currency payments, and ``gatewayctl review`` in-process."""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.sim.erp import Payment
from tests.integration.harness import payment

LIST_HEADER = "list,entry_id,type,name,aliases,country\n"
TEST_LIST = (
    LIST_HEADER
    + "TEST,T-1,entity,Northwind Shadow Trading LLC,Northwind Shadow Trading;NSTC,IR\n"
    + "TEST,T-2,individual,Ivan Petrovich Sidorenko,Ivan Sidorenko;I. P. Sidorenko,RU\n"
    + "TEST,T-3,bic,MIZUJPJT,,JP\n"
    + "TEST,T-4,country,IR,,\n"
)
"""A fictional list: a name, a name with aliases, a BIC and a country."""


def write_list(path: Path, text: str = TEST_LIST) -> str:
    """Write a list file; its version (SHA-256, as journaled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def screened(lists: Path, **screening: Any) -> dict[str, Any]:
    """The overlay: foreign currency on, screened against ``lists``, root may review
    (the tests run as root; ``--as`` names the reviewers)."""
    return {
        "fx": {"enabled": True},
        "screening": {"lists": [str(lists)], "review_group": "root", **screening},
    }


def usd(amount: str, payee_name: str = "Acme Widgets Inc", **kw: Any) -> Payment:
    """A USD payment to Citibank New York (through our USD correspondent)."""
    fields: dict[str, Any] = {"payee_bic": "CITIUS33", "payee_country": "US"} | kw
    return payment("", amount, ccy="USD", payee_name=payee_name, **fields)


def review(sock: Path, *argv: str, user: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """``gatewayctl review [--as USER] ARGV`` in-process: exit code and its JSON lines."""
    who = ["--as", user] if user else []
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = gatewayctl_main(["--socket", str(sock), "review", *who, *argv])
    # the in-process daemon logs to the same stdout: gatewayctl's lines are the JSON ones
    lines = [json.loads(x) for x in out.getvalue().splitlines() if x.startswith("{")]
    assert lines or code != 0, err.getvalue()
    return code, lines
