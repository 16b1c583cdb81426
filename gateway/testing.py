"""Helpers for tests, the demo and benchmarks: a real mosquitto on a free port.

Tests never use the machine's own broker on 1883: each starts its own
mosquitto bound to 127.0.0.1 on a free port, with persistence in a temp
folder, so runs are isolated and pass on a machine where nothing runs.
:func:`running_simulator` runs a counterparty simulator beside it for the
length of a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from gateway.sim.cli_options import Simulator

    SimT = TypeVar("SimT", bound=Simulator)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the broker binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A running mosquitto subprocess."""

    host: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    extra_conf: str = ""

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self) -> None:
        """Start again on the same port with the same persistence folder."""
        self.stop()
        self.proc = _spawn(self.workdir, self.host, self.port, self.extra_conf)


def mosquitto_path() -> str:
    """The mosquitto binary; a clear error when it is missing."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if not found:
        raise RuntimeError("mosquitto not found: install it (Debian: apt-get install mosquitto)")
    return found


def _spawn(workdir: Path, host: str, port: int, extra_conf: str = "") -> subprocess.Popen[bytes]:
    conf = workdir / "mosquitto.conf"
    # Started as root, mosquitto drops to the "mosquitto" user, which cannot
    # write into a 0700 temp folder: no persistence, no log. Stay root then.
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        user + f"listener {port} {host}\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {workdir}/\n"
        "autosave_interval 1\n"
        "max_inflight_messages 1000\n"
        "max_queued_messages 100000\n"
        f"log_dest file {workdir}/mosquitto.log\n"
        "log_type error\nlog_type warning\nlog_type notice\n" + extra_conf,
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [mosquitto_path(), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log_file = workdir / "mosquitto.log"
            log = log_file.read_text(errors="replace")[-500:] if log_file.exists() else ""
            raise RuntimeError(f"mosquitto exited with {proc.returncode}: {log}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return proc
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("mosquitto did not start listening within 10 s")


def start_broker(
    workdir: Path, host: str = "127.0.0.1", port: int = 0, extra_conf: str = ""
) -> Broker:
    """Start mosquitto on ``port`` (0: a free one) with state in ``workdir``.

    ``extra_conf`` is appended to the generated mosquitto.conf (ACLs, TLS).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    proc = _spawn(workdir, host, port, extra_conf)
    return Broker(host=host, port=port, proc=proc, workdir=workdir, extra_conf=extra_conf)


@contextlib.contextmanager
def running_broker(workdir: Path) -> Iterator[Broker]:
    """Context manager form of ``start_broker`` that always stops the broker."""
    broker = start_broker(workdir)
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.asynccontextmanager
async def running_simulator(
    sim: SimT, *, ready: asyncio.Event | None = None, timeout: float = 15.0
) -> AsyncIterator[SimT]:
    """Run ``sim.run(ready)`` (the clearing or core simulator) in a task for the block.

    Enters once ``ready`` is set, i.e. the simulator's subscription is
    confirmed (``TimeoutError`` after ``timeout`` seconds); cancels and awaits
    the task at the end, so an error it died of is raised, not lost.
    """
    ready = ready or asyncio.Event()
    task = asyncio.create_task(sim.run(ready))
    try:
        async with asyncio.timeout(timeout):
            await ready.wait()
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
