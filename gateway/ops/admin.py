"""The local admin socket that ``gatewayctl`` talks to.

One JSON object per line in each direction over a Unix socket, by default in
systemd's ``RuntimeDirectory`` (``$RUNTIME_DIRECTORY/admin.sock``, else the
state folder).  Who may connect is the socket's mode and group: 0660 and
group ``admin.group`` (default ``gateway-ops``), so operators in that group
use ``gatewayctl`` under their own accounts.  When that group does not exist
the socket stays 0600 (only the daemon's user), with a warning at start;
when the daemon's user cannot give the socket to the group (not a member)
start fails with a one-line configuration error.

Every connection's operator is taken from the kernel (``SO_PEERCRED``: the
connecting process's uid, named by the passwd database), never from what the
client says, and handed to the command handler with the request: manual
actions are journaled with it (docs/operations.md).  Requests are
``{"op": ...}`` objects (:mod:`gateway.ops.views` for the journal views);
answers always carry ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from gateway.errors import ConfigError

log = structlog.get_logger("gateway.admin")


@dataclass(frozen=True, slots=True)
class Peer:
    """The operator at the other end of an admin connection (``SO_PEERCRED``)."""

    uid: int
    name: str  # the passwd name of ``uid``; ``uid:N`` when it has none

    @classmethod
    def of_uid(cls, uid: int) -> Peer:
        try:
            return cls(uid, pwd.getpwuid(uid).pw_name)
        except KeyError:
            return cls(uid, f"uid:{uid}")


Command = Callable[[dict[str, Any], Peer], Awaitable[dict[str, Any]]]
MAX_LINE = 64 * 1024
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_of(sock: socket.socket) -> Peer:
    """The connecting process's uid, as the kernel recorded it at ``connect()``."""
    _pid, uid, _gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    return Peer.of_uid(uid)


class AdminServer:
    """``group``: the operators' group (empty: only the daemon's user may connect)."""

    def __init__(self, path: Path, handler: Command, group: str = "") -> None:
        self.path = path
        self.group = group
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
        self._share()

    def _share(self) -> None:
        """Give the socket to the operators' group, mode 0660 (module docstring)."""
        if not self.group:
            return
        try:
            gid = grp.getgrnam(self.group).gr_gid
        except KeyError:
            log.warning(
                "admin_group_missing",
                group=self.group,
                socket=str(self.path),
                hint="socket stays 0600: only the daemon's user can use gatewayctl",
            )
            return
        try:
            os.chown(self.path, -1, gid)
        except PermissionError:
            raise ConfigError(
                f"admin.group: cannot give {self.path} to group {self.group!r}"
                " (the daemon's user must be a member: SupplementaryGroups= in the unit)"
            ) from None
        os.chmod(self.path, 0o660)  # chown first: never 0660 with the wrong group

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                line = await reader.readline()
                try:
                    cmd = json.loads(line)
                    if not isinstance(cmd, dict):
                        raise TypeError("not an object")
                    answer = await self._handler(cmd, peer_of(writer.get_extra_info("socket")))
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
