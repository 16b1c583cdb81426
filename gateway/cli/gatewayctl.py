"""``gatewayctl``: the operator's tool, talking to the daemon over its admin socket.

``status`` / ``reload`` steer the daemon; ``audit verify`` checks the
journal's audit chain (read directly, not through the daemon); ``credits``,
``inquiries`` and ``netting`` are read-only journal views
(docs/clearing-link.md §6, docs/protocol.md §4, docs/routing-rules.md §5),
printed as JSON with account numbers masked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from gateway.cli.audit import add_audit_parser, run_audit
from gateway.cli.keys import add_keys_parser, run_keys
from gateway.config import AdminConfig, load_config
from gateway.errors import ConfigError
from gateway.journal.records import CreditState
from gateway.ops.admin import call


def _socket(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    cfg = load_config(Path(args.config) if args.config else None)
    return cfg.admin_socket


def _command(args: argparse.Namespace) -> dict[str, Any]:
    """The admin request for a parsed command line (``Gateway._admin_command``)."""
    cmd: dict[str, Any] = {"op": args.cmd}
    if args.cmd == "credits":
        cmd["state"] = args.state
    if args.cmd in ("credits", "inquiries"):
        cmd["limit"] = args.limit
    if args.cmd == "netting" and args.work_date is not None:
        cmd["work_date"] = args.work_date.isoformat()
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gatewayctl", description="control a running gatewayd")
    p.add_argument("--config", help="the daemon's overlay config (to find its admin socket)")
    p.add_argument("--socket", help="admin socket path (overrides --config)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="lifecycle, checks and item counts by engine and state")
    sub.add_parser("reload", help="reload directory, registry, CRLs and keys (like SIGHUP)")
    credits = sub.add_parser("credits", help="incoming credits in one state, oldest first")
    credits.add_argument(
        "--state",
        choices=[s.value for s in CreditState],
        default=CreditState.SUSPENSE.value,
        help="CHECKING, POSTED or SUSPENSE (暂收款, the default)",
    )
    inquiries = sub.add_parser("inquiries", help="OPEN inquiries, both directions, oldest first")
    for view in (credits, inquiries):
        view.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    netting = sub.add_parser("netting", help="a work date's BEPS netting rounds, both figures")
    netting.add_argument(
        "--work-date",
        type=date.fromisoformat,
        help="YYYY-MM-DD (default: the BEPS work date of the daemon's now)",
    )
    add_keys_parser(sub)
    add_audit_parser(sub)
    args = p.parse_args(argv)

    if args.cmd in ("keys", "audit"):
        try:
            cfg = load_config(Path(args.config) if args.config else None)
        except ConfigError as exc:
            print(f"gatewayctl: {exc}", file=sys.stderr)
            return 2
        if args.cmd == "audit":
            return run_audit(args, cfg)
        if args.socket:
            cfg = replace(cfg, admin=AdminConfig(socket=Path(args.socket)))
        return run_keys(args, cfg)
    try:
        sock = _socket(args)
    except ConfigError as exc:
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return 2
    try:
        answer = asyncio.run(call(sock, _command(args)))
    except (OSError, TimeoutError) as exc:
        print(f"gatewayctl: cannot reach the daemon at {sock}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
