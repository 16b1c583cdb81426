"""``gatewayctl``: the operator's tool, talking to the daemon over its admin socket."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gateway.cli.keys import add_keys_parser, run_keys
from gateway.config import AdminConfig, load_config
from gateway.errors import ConfigError
from gateway.ops.admin import call


def _socket(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    cfg = load_config(Path(args.config) if args.config else None)
    return cfg.admin_socket


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gatewayctl", description="control a running gatewayd")
    p.add_argument("--config", help="the daemon's overlay config (to find its admin socket)")
    p.add_argument("--socket", help="admin socket path (overrides --config)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="lifecycle, checks and item counts by engine and state")
    sub.add_parser("reload", help="reload directory, registry, CRLs and keys (like SIGHUP)")
    add_keys_parser(sub)
    args = p.parse_args(argv)

    if args.cmd == "keys":
        try:
            cfg = load_config(Path(args.config) if args.config else None)
        except ConfigError as exc:
            print(f"gatewayctl: {exc}", file=sys.stderr)
            return 2
        if args.socket:
            cfg = replace(cfg, admin=AdminConfig(socket=Path(args.socket)))
        return run_keys(args, cfg)
    try:
        sock = _socket(args)
    except ConfigError as exc:
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return 2
    try:
        answer = asyncio.run(call(sock, {"op": args.cmd}))
    except (OSError, TimeoutError) as exc:
        print(f"gatewayctl: cannot reach the daemon at {sock}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
