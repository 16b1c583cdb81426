"""``gatewayd``: the daemon's entry point.

Signals map to intents here and only here (docs/architecture.md §8, habit 4): SIGTERM and
SIGINT → graceful drain; a second SIGINT → immediate exit; SIGHUP → reload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from gateway import __version__
from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.net.tls_memory import bound_tls_buffers
from gateway.ops.logs import configure_logging
from gateway.preflight import describe
from gateway.server import Gateway, check_config

log = structlog.get_logger("gateway.cli")

NO_STATE_DIR = (
    "state_dir is not set and $STATE_DIRECTORY (systemd's StateDirectory=) is absent: "
    "set state_dir in the --config file or pass --state-dir (nothing was created)"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gatewayd", description="CorpLink payment gateway daemon")
    p.add_argument("--config", type=Path, help="overlay TOML file (defaults are embedded)")
    p.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit"
    )
    p.add_argument("--state-dir", type=Path, help="override state_dir")
    p.add_argument("--ports-file", type=Path, help="write bound addresses as JSON once ready")
    p.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    return p


async def run(cfg: Config, ports_file: Path | None = None) -> int:
    gw = Gateway(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            log.warning("forced_exit")
            os._exit(130)
        stop.set()

    def on_hup() -> None:
        task = loop.create_task(gw.reload())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGHUP, on_hup)

    async def trigger() -> None:
        await gw.ready.wait()
        if ports_file is not None:
            tmp = ports_file.with_suffix(".tmp")
            tmp.write_text(gw.bound.as_json(), encoding="utf-8")
            tmp.replace(ports_file)
        await stop.wait()

    await gw.serve(trigger)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0; 78 (EX_CONFIG) for a configuration or file error; 75 (EX_TEMPFAIL) for
    a resource that is down (database, port in use): one line on stderr, no
    traceback (docs/operations.md, "Start-up checks")."""
    args = _parser().parse_args(argv)
    try:
        overrides = {"state_dir": str(args.state_dir)} if args.state_dir else None
        cfg = load_config(args.config, overrides)
        if cfg.state_dir is None and not os.environ.get("STATE_DIRECTORY"):
            # A bare `gatewayd` would otherwise make ./gateway-state and a dev PKI
            # wherever it happens to be started: a bank wants a refusal, not a guess.
            raise ConfigError(NO_STATE_DIR)
        if args.check_config:
            note = check_config(cfg)
            print(f"configuration OK ({', '.join(cfg.sources)})" + (f"; {note}" if note else ""))
            return 0
    except Exception as exc:  # noqa: BLE001 - a configuration error (78), or else: one line
        return _fail(exc)
    configure_logging(cfg.observability.log_level, cfg.observability.log_format)
    bound_tls_buffers()  # before the first TLS connection (docs/architecture.md §9)
    try:
        return asyncio.run(run(cfg, args.ports_file))
    except KeyboardInterrupt:  # pragma: no cover - handled by the signal handler
        return 130
    except Exception as exc:  # every start-up failure is one line
        log.debug("start_failed", exc_info=True)  # the traceback, for log_level = "debug"
        return _fail(exc)


def _fail(exc: BaseException) -> int:
    status, line = describe(exc)
    print(f"gatewayd: {line}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
