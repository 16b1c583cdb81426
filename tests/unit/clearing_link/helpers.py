"""Shared helpers for the clearing-link tests: a configurable broker, waits, an inbox.

``CustomBroker`` exists because some tests need broker settings that
``gateway.testing.start_broker`` does not offer (an ACL, a TLS listener), and
because mosquitto started as root drops to the ``mosquitto`` user, which
cannot write into pytest's 0700 temp folders: its persistence snapshot (and
log) are then silently lost, so a restart forgets every session.  This
broker adds ``user root`` in that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.clearing.core import CoreConfig, CoreLink
from gateway.clearing.link import ClearingLink, InboundHandler, LinkConfig
from gateway.ops.metrics import REGISTRY
from gateway.testing import free_port, mosquitto_path


@dataclass
class CustomBroker:
    """A mosquitto subprocess with caller-chosen extra config lines."""

    workdir: Path
    extra: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CustomBroker:
        self.port = self.port or free_port(self.host)
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            *self.extra,
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.workdir}/mosquitto.log",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        if not any(line.startswith("allow_anonymous") for line in self.extra):
            lines.append("allow_anonymous true")
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.proc = subprocess.Popen(
            [mosquitto_path(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            addr = (self.host, self.port)
            with contextlib.suppress(OSError), socket.create_connection(addr, 0.2):
                return self
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, scheme: str = "mqtt") -> str:
        return f"{scheme}://{self.host}:{self.port}"


def sample(name: str, **labels: str) -> float:
    """Current value of a metric sample (0 when it was never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait until ``check()`` holds; fail (not hang) after ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while not check():
            await asyncio.sleep(0.01)


class Inbox:
    """An inbound handler that records what it was given."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, dict[str, str]]] = []
        self.changed = asyncio.Event()

    async def __call__(self, topic: str, payload: bytes, props: dict[str, str]) -> None:
        self.items.append((topic, payload, props))
        self.changed.set()

    async def wait_for(self, count: int, limit: float = 10.0) -> None:
        await eventually(lambda: len(self.items) >= count, limit)

    @property
    def payloads(self) -> list[bytes]:
        return [p for _, p, _ in self.items]


@contextlib.asynccontextmanager
async def running(
    config: LinkConfig, handler: InboundHandler | Callable[..., Awaitable[None]]
) -> AsyncIterator[ClearingLink]:
    """A link whose ``run()`` task is up and connected, closed and awaited at the end."""
    link = ClearingLink(config, handler)
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            await link.wait_connected()
        yield link
    finally:
        await link.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_core_link(config: CoreConfig, limit: float = 10.0) -> AsyncIterator[CoreLink]:
    """A core link whose ``run()`` task is up and subscribed; closed, and its task
    finished by that alone (``close`` stops ``run``), at the end."""
    link = CoreLink(config)
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(limit):
            await link.wait_connected()
        yield link
    finally:
        await link.close()
        async with asyncio.timeout(limit):
            await task


def config(url: str, client_id: str, *subs: str, **kw: object) -> LinkConfig:
    """A LinkConfig with fast reconnects and short timeouts for tests."""
    kw.setdefault("reconnect_min", 0.05)
    kw.setdefault("reconnect_max", 0.5)
    kw.setdefault("publish_timeout", 3.0)
    return LinkConfig(url=url, client_id=client_id, subscriptions=subs, **kw)  # type: ignore[arg-type]
