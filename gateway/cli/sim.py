"""``gateway-sim``: the counterparties (clearing, SWIFT, core banking, ERP clients) and the demo."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gateway-sim", description="simulated counterparties")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run the real gatewayd with simulated ERPs and clearing")
    d.add_argument("--state-dir", help="keep state here (default: a temp folder, removed)")
    d.add_argument("--reject-ratio", type=float, default=0.1, help="clearing reject ratio")
    d.add_argument("--keep", action="store_true", help="keep the temp state folder")
    sub.add_parser(
        "clearing",
        help="the clearing systems (see gateway-sim clearing --help); "
        "'clearing present' presents a bank draft",
        add_help=False,
    )
    sub.add_parser(
        "swift",
        help="the bank's SWIFT interface (see gateway-sim swift --help); "
        "'swift inject' sends an incoming credit",
        add_help=False,
    )
    sub.add_parser(
        "core", help="the core banking system (see gateway-sim core --help)", add_help=False
    )
    args, rest = p.parse_known_args(argv)
    if args.cmd == "demo":
        if rest:
            p.error(f"unrecognized arguments: {' '.join(rest)}")
        from gateway.sim.demo import main_demo

        return main_demo(args.state_dir, args.reject_ratio, args.keep)
    if args.cmd == "core":
        from gateway.sim.core import run_core_sim

        return run_core_sim(rest)
    if args.cmd == "swift":
        from gateway.sim.swift import run_swift_sim

        return run_swift_sim(rest)
    from gateway.sim.clearing import run_clearing_sim

    return run_clearing_sim(rest)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
