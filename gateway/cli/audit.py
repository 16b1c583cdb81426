"""``gatewayctl audit verify``: check the journal's audit chain, as security staff do.

It reads the journal and the archive folder directly (read-only; the daemon
may keep running) and checks them against the head the daily task recorded
(:mod:`gateway.journal.audit`).  Prints one JSON report; exit 0 when the
chain holds, 1 on any break (the report names the first: row, expected,
found), 2 when it cannot run.  docs/operations.md: the audit chain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, datetime, time
from pathlib import Path

from gateway.clock import SHANGHAI
from gateway.config import Config
from gateway.journal.audit import verify


def add_audit_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``audit`` and its subcommand to ``gatewayctl``'s subparsers."""
    audit = subparsers.add_parser("audit", help="the journal's tamper-evident audit chain")
    asub = audit.add_subparsers(dest="audit_cmd", required=True)
    ver = asub.add_parser(
        "verify", help="check every link, live and archived, and the recorded head"
    )
    ver.add_argument(
        "--from",
        dest="since",
        type=date.fromisoformat,
        help="YYYY-MM-DD: start at the first change made that day (Asia/Shanghai) or later",
    )
    ver.add_argument("--node", help="PostgreSQL: whose chain (default: this node, bank.node)")
    return audit


def run_audit(args: argparse.Namespace, cfg: Config) -> int:
    j = cfg.journal
    target: Path | str = j.dsn if j.backend == "postgres" else cfg.journal_path
    since = None if args.since is None else datetime.combine(args.since, time(), SHANGHAI)
    node = args.node or cfg.bank.node
    try:
        report = asyncio.run(verify(j.backend, target, cfg.archive_path, node, since=since))
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"gatewayctl: cannot verify the audit chain: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    if report.brk is not None:
        b = report.brk
        print(
            f"gatewayctl: audit chain BROKEN at seq {b.seq} ({b.row}): {b.problem};"
            f" expected {b.expected}, found {b.found}",
            file=sys.stderr,
        )
    return 0 if report.ok else 1
