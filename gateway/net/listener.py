"""A CorpLink listener: accept TCP (optionally TLS) connections and run a Session each.

The asyncio driver around the sans-IO framing (docs/architecture.md §8: hypercorn keeps the
two apart).  Limits are per listener (docs/protocol.md §1: "configurable per
listener"): body size, the TLS handshake deadline counted from the TCP
accept, the frame deadline, the idle deadline, pipelined requests per
connection and open connections.  ``drain`` is the graceful half of the
daemon's shutdown (docs/architecture.md §7 "Operations": stop accepting, finish in-flight
frames), bounded in time like uvicorn's.

Revocation at the handshake (docs/protocol.md §3, the policy of
``gateway.keys.revocation``): OpenSSL refuses a certificate on a CRL inside
the handshake and the client gets the TLS alert.  The gateway's deny list
has no hook inside a handshake in Python's ``ssl``, so it is checked right
after it, before any frame is read: a denied certificate's connection is
closed without a response and counted (``gateway_connection_closes_total``
reason ``cert_denied``).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import itertools
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol, cast

import structlog

from gateway.net.framing import MAX_ENCODABLE
from gateway.net.session import (
    BadFrameResponder,
    ByteBudget,
    ConnInfo,
    Handler,
    Session,
    conn_info,
    peer_address,
)
from gateway.net.tls import send_handshake_alerts
from gateway.net.tls_memory import bound_tls_buffers
from gateway.ops.metrics import CONNECTION_CLOSES

__all__ = ["BadFrameResponder", "ConnInfo", "Handler", "Listener", "ListenerSpec"]

log = structlog.get_logger("gateway.net")

DEFAULT_MAX_BODY: Final = 1_048_576
"""docs/protocol.md §1: body ≤ 1 MiB by default."""

MAX_BODY_LIMIT: Final = 16 * 1_048_576
"""docs/protocol.md §1: "a listener for PAYROLL may allow up to 16 MiB"."""

TLS_SHUTDOWN_TIMEOUT: Final = 5.0
"""Seconds to wait for the peer's close_notify before aborting a TLS connection."""

_conn_ids = itertools.count(1)  # unique across listeners, for log correlation

DenyCheck = Callable[[str], bool]
"""Lowercase hex SHA-256 of a client certificate's DER → True when it is denied."""


class ConnectionGate(Protocol):
    """Admission for new connections (per-address limits and bans)."""

    def admit(self, ip: str) -> str | Awaitable[str | None] | None:
        """``None`` to accept, else the reason word for refusing (or an awaitable of
        either, when the answer comes from another process)."""

    def release(self, ip: str) -> None:
        """The accepted connection from ``ip`` closed."""

    def banned(self, ip: str) -> bool:
        """True while ``ip`` is banned: its open connections close at their next frame."""


@dataclass(frozen=True)
class ListenerSpec:
    """One listener's address and limits (docs/protocol.md §1 defaults).

    ``port`` 0 binds a free port (tests).  ``handshake_timeout`` counts from
    the TCP accept (10 s), ``frame_timeout`` from a frame's first byte
    (30 s), ``idle_timeout`` is the longest wait for a frame (300 s).
    ``max_inflight`` bounds pipelined requests being processed on one
    connection; past it the session stops reading (backpressure).
    """

    name: str
    host: str
    port: int
    ssl: ssl.SSLContext | None = None
    max_body: int = DEFAULT_MAX_BODY
    handshake_timeout: float = 10.0
    frame_timeout: float = 30.0
    idle_timeout: float = 300.0
    max_inflight: int = 32
    max_connections: int = 10_000
    sock: socket.socket | None = None
    """A socket already bound and listening (a front process inherits it from the
    core, docs/architecture.md §1); ``host`` and ``port`` then only name it."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_body <= min(MAX_BODY_LIMIT, MAX_ENCODABLE):
            msg = f"listener {self.name}: max_body must be within 1..{MAX_BODY_LIMIT}"
            raise ValueError(msg)
        for field in ("handshake_timeout", "frame_timeout", "idle_timeout"):
            if not getattr(self, field) > 0:
                msg = f"listener {self.name}: {field} must be positive"
                raise ValueError(msg)
        if self.max_inflight < 1 or self.max_connections < 1:
            msg = f"listener {self.name}: max_inflight and max_connections must be at least 1"
            raise ValueError(msg)
        if not 0 <= self.port <= 65535:
            msg = f"listener {self.name}: port must be within 0..65535"
            raise ValueError(msg)


class Listener:
    """Accepts connections for one ``ListenerSpec`` and serves each with a ``Session``."""

    def __init__(
        self,
        spec: ListenerSpec,
        handler: Handler,
        bad_frame: BadFrameResponder,
        gate: ConnectionGate | None = None,
        budget: ByteBudget | None = None,
        denied: DenyCheck | None = None,
    ) -> None:
        self.spec = spec
        self._denied = denied
        self._budget = budget
        self._handler = handler
        self._bad_frame = bad_frame
        self._gate = gate
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], Session] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._accepting = False

    @property
    def connections(self) -> int:
        """Connections currently open (after their TLS handshake)."""
        return len(self._sessions)

    async def start(self) -> tuple[str, int]:
        """Bind and start accepting; return the bound address (port resolved when 0)."""
        spec = self.spec
        tls = spec.ssl is not None
        if tls:
            send_handshake_alerts()
            bound_tls_buffers()  # every process that serves TLS passes here (fronts too)
        # TLS is started by hand after the accept (not by start_server), so that
        # admission refuses a flooding address before any handshake CPU is spent
        # and handshake failures and timeouts are counted like other closes.
        if spec.sock is not None:
            self._server = await asyncio.start_server(self._on_connect, sock=spec.sock)
        else:
            self._server = await asyncio.start_server(
                self._on_connect, spec.host, spec.port, reuse_address=True
            )
        self._accepting = True
        host, port = peer_address(self._server.sockets[0].getsockname())
        # debug: gatewayd's one "started" line lists every bound address
        log.debug("listener_started", listener=spec.name, host=host, port=port, tls=tls)
        return (host, port)

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine) so that this object, not asyncio,
        # owns the session task and can drain or cancel it.
        name = self.spec.name
        open_now = len(self._sessions) + len(self._handshakes)
        if not self._accepting or open_now >= self.spec.max_connections:
            reason = "max_connections" if self._accepting else "shutting_down"
            CONNECTION_CLOSES.labels(name, reason).inc()
            log.warning("connection_refused", listener=name, reason=reason)
            writer.transport.abort()
            return
        ip, _port = peer_address(writer.get_extra_info("peername"))
        gate = self._gate
        if gate is not None:
            refused = gate.admit(ip)
            if inspect.isawaitable(refused):  # a front asks the core (docs/architecture.md §1)
                # Not a byte read meanwhile: a ClientHello read into the stream's
                # buffer now would never reach the TLS layer started later.
                cast(asyncio.ReadTransport, writer.transport).pause_reading()
                task = asyncio.create_task(self._admit_later(refused, reader, writer, ip))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)
                return
            if refused is not None:
                CONNECTION_CLOSES.labels(name, refused).inc()
                writer.transport.abort()
                return
        if self.spec.ssl is None:
            self._start_session(reader, writer, ip)
            return
        task = asyncio.create_task(self._handshake(reader, writer, ip), name=f"{name}-tls")
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _admit_later(
        self,
        answer: Awaitable[str | None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ip: str,
    ) -> None:
        try:
            refused = await answer
        except ConnectionError:
            refused = "shutting_down"
        if refused is not None:
            CONNECTION_CLOSES.labels(self.spec.name, refused).inc()
            writer.transport.abort()
            return
        if not self._accepting:
            writer.transport.abort()
            if self._gate is not None:
                self._gate.release(ip)
            return
        if self.spec.ssl is None:
            cast(asyncio.ReadTransport, writer.transport).resume_reading()
            self._start_session(reader, writer, ip)
            return
        await self._handshake(reader, writer, ip)  # start_tls resumes reading

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str
    ) -> None:
        """docs/protocol.md §1: the TLS handshake must finish within 10 s of the TCP accept."""
        assert self.spec.ssl is not None  # noqa: S101 - only called for TLS listeners
        try:
            await writer.start_tls(self.spec.ssl, ssl_handshake_timeout=self.spec.handshake_timeout)
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                reason = "handshake_timeout"
            elif isinstance(exc, ssl.SSLCertVerificationError):
                reason = "cert_refused"  # revoked, untrusted, expired: the alert says which
            else:
                reason = "handshake_failed"
            detail = getattr(exc, "verify_message", None)
            CONNECTION_CLOSES.labels(self.spec.name, reason).inc()
            log.info(
                "connection_closed", listener=self.spec.name, peer=ip, reason=reason, detail=detail
            )
            writer.transport.abort()
            if self._gate is not None:
                self._gate.release(ip)
            return
        if not self._accepting:
            writer.transport.abort()
            if self._gate is not None:
                self._gate.release(ip)
            return
        fp = self._denied_fingerprint(writer)
        if fp is not None:
            CONNECTION_CLOSES.labels(self.spec.name, "cert_denied").inc()
            log.warning(
                "connection_closed",
                listener=self.spec.name,
                peer=ip,
                reason="cert_denied",
                fingerprint=fp,
            )
            await self._close_denied(writer)
            if self._gate is not None:
                self._gate.release(ip)
            return
        self._start_session(reader, writer, ip)

    def _denied_fingerprint(self, writer: asyncio.StreamWriter) -> str | None:
        """The client certificate's fingerprint when the deny list holds it."""
        if self._denied is None:
            return None
        ssl_obj = writer.get_extra_info("ssl_object")
        der = ssl_obj.getpeercert(binary_form=True) if isinstance(ssl_obj, ssl.SSLObject) else None
        if der is None:
            return None
        fp = hashlib.sha256(der).hexdigest()
        return fp if self._denied(fp) else None

    @staticmethod
    async def _close_denied(writer: asyncio.StreamWriter) -> None:
        """Close with close_notify (the client reads EOF, no frame), bounded in time."""
        writer.close()
        try:
            async with asyncio.timeout(TLS_SHUTDOWN_TIMEOUT):
                await writer.wait_closed()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            writer.transport.abort()

    def _start_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str
    ) -> None:
        name = self.spec.name
        gate = self._gate
        info = conn_info(name, next(_conn_ids), writer)
        session = Session(
            self.spec,
            info,
            reader,
            writer,
            handler=self._handler,
            bad_frame=self._bad_frame,
            budget=self._budget,
            banned=gate.banned if gate is not None else None,
        )
        task = asyncio.create_task(session.run(), name=f"{name}#{info.conn_id}")
        self._sessions[task] = session
        task.add_done_callback(self._sessions.pop)
        if gate is not None:
            task.add_done_callback(lambda _t: gate.release(ip))

    def _stop_accepting(self) -> None:
        self._accepting = False
        if self._server is not None:
            self._server.close()

    async def drain(self, timeout: float) -> None:
        """Stop accepting; let in-flight requests finish and their responses be
        written, within ``timeout`` seconds; then close every connection."""
        self._stop_accepting()
        await self._cancel(set(self._handshakes))
        for session in self._sessions.values():
            session.begin_drain()
        tasks = set(self._sessions)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                log.warning("drain_timeout", listener=self.spec.name, connections=len(pending))
            await self._cancel(pending)
        await self._wait_server_closed()
        log.info("listener_drained", listener=self.spec.name)

    async def close(self) -> None:
        """Stop accepting and drop every connection now."""
        self._stop_accepting()
        await self._cancel(set(self._handshakes) | set(self._sessions))
        await self._wait_server_closed()
        log.debug("listener_closed", listener=self.spec.name)  # a failed start closes quietly

    async def _wait_server_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    @staticmethod
    async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
