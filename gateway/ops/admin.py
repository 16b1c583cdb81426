"""The local admin socket that ``gatewayctl`` talks to.

One JSON object per line in each direction over a Unix socket in the state
folder (mode 0600: only the daemon's user may steer it).  Requests are
``{"op": "status"}``, ``{"op": "reload"}`` and the read-only journal views
``credits``, ``inquiries``, ``netting`` (:mod:`gateway.ops.views`); answers
always carry ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("gateway.admin")

Command = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_LINE = 64 * 1024


class AdminServer:
    def __init__(self, path: Path, handler: Command) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE
            )
        finally:
            os.umask(old)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                line = await reader.readline()
                try:
                    cmd = json.loads(line)
                    if not isinstance(cmd, dict):
                        raise TypeError("not an object")
                    answer = await self._handler(cmd)
                except (ValueError, TypeError) as exc:
                    answer = {"ok": False, "reason": f"bad request: {exc}"}
                writer.write(json.dumps(answer, default=str).encode() + b"\n")
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("admin_request_failed", error=type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def call(path: Path, cmd: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one command to a running daemon (used by gatewayctl and tests)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024)
        try:
            writer.write(json.dumps(cmd).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    answer = json.loads(line)
    if not isinstance(answer, dict):
        raise TypeError("daemon answered something that is not a JSON object")
    return answer
