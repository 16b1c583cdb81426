"""What the ``gateway-sim`` counterparties' command lines share.

The clearing simulator and the core banking simulator both reach the
gateway's broker (docs/clearing-link.md §1, §5): ``--broker`` ``mqtt://`` or
``mqtts://`` with ``--tls-*`` for the latter, and both run until SIGINT or
SIGTERM.  Each command keeps its own options and config; these are the
parts that must behave the same in every one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from gateway.errors import ConfigError


class Simulator(Protocol):
    async def run(self, ready: asyncio.Event | None = None) -> None: ...


def add_broker_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host:port or mqtts://")


def add_tls_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-ca", type=Path, help="CA file for mqtts://")
    p.add_argument("--tls-cert", type=Path, help="client certificate for mqtts://")
    p.add_argument("--tls-key", type=Path, help="client key for mqtts://")


def broker_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client TLS context for an ``mqtts://`` broker (``--tls-*``); None for ``mqtt://``.

    ``OSError`` / ``ssl.SSLError`` when a file cannot be read.
    """
    if not args.broker.startswith("mqtts://"):
        return None
    tls = ssl.create_default_context(cafile=str(args.tls_ca) if args.tls_ca else None)
    if args.tls_cert:
        tls.load_cert_chain(str(args.tls_cert), str(args.tls_key) if args.tls_key else None)
    return tls


def broker_address(url: str, tls: ssl.SSLContext | None) -> tuple[str, int]:
    """Host and port of a ``--broker`` URL; ``ValueError`` unless mqtt:// or mqtts:// with TLS."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("broker URL must be mqtt://host:port or mqtts://host:port")
    if parts.scheme == "mqtts" and tls is None:
        raise ValueError("mqtts:// needs a TLS context")
    return parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883)


async def _serve(sim: Simulator) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel if task else (lambda: None))
    with contextlib.suppress(asyncio.CancelledError):
        await sim.run()


def run_until_signalled(prog: str, build: Callable[[], Simulator]) -> int:
    """Build the simulator and run it until SIGINT/SIGTERM.

    Returns 0 on a clean stop, 2 (after one line on stderr) when ``build``
    refuses the options, a file they name, or a TLS setting.
    """
    try:
        sim = build()
    except (ConfigError, ValueError, OSError, ssl.SSLError) as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    asyncio.run(_serve(sim))
    return 0


__all__ = [
    "add_broker_option",
    "add_tls_options",
    "broker_address",
    "broker_tls",
    "run_until_signalled",
]
