"""One CorpLink connection: read frames under deadlines, run handlers, write responses.

The per-connection ``Session`` (docs/architecture.md §8, habit 6, aiosmtpd's Session) holds
only connection state: the streams, the deadlines, the in-flight handler
tasks and the write lock.  Per-message state lives in the handler's own
objects.  Framing decisions come from the sans-IO ``gateway.net.framing``.

Rules enforced here (docs/protocol.md §1 unless noted):

- "once the first byte of a frame has arrived, the whole frame must arrive
  within 30 s": one deadline from the first header byte to the last body
  byte, so a slow drip cannot stretch it.  Time spent waiting for the
  gateway's own body budget (``ByteBudget``, backpressure) is added back to
  it: the gateway's wait is not the client's delay.
- "a connection with no frame for 300 s is closed": a quiet close, with no
  response, because idling is not an error.
- a header that is not 8 digits, a length above the limit or a stall past the
  frame deadline: one 1001 response frame (from the listener's
  ``BadFrameResponder``), then close.  The length is checked before any body
  byte is read (docs/architecture.md §9: ``readexactly`` is unbounded).
- pipelining: complete frames are handled concurrently, at most
  ``max_inflight`` per connection; past that the session stops reading, so
  TCP flow control pushes back on the client.  Responses are written as
  they complete: "the gateway MAY answer out of order" (docs/protocol.md §1, §5).
- a client that does not read its responses must not make the gateway
  buffer without bound: a write that cannot drain within the frame deadline
  closes the connection.

Decision: after a framing error the session first lets requests that were
already complete finish and writes their responses (a journaled payment's
0000 is worth delivering), then writes the 1001, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog

from gateway.net.framing import (
    HEADER_LEN,
    FrameError,
    check_header_prefix,
    encode_frame,
    parse_header,
)
from gateway.ops.metrics import (
    CONNECTION_CLOSES,
    CONNECTIONS,
    CONNECTIONS_OPEN,
    FRAME_ERRORS,
    FRAMES,
)

if TYPE_CHECKING:
    from gateway.net.listener import ListenerSpec

log = structlog.get_logger("gateway.net")

BAD_FRAME_WRITE_TIMEOUT: Final = 5.0
"""Seconds allowed to write the single 1001 frame before closing anyway."""

LINGER_TIMEOUT: Final = 2.0
"""Seconds to discard a client's further bytes after a 1001, so that it gets the 1001."""

CLOSE_TIMEOUT: Final = 5.0
"""Seconds allowed for an orderly close (TLS close_notify) before aborting."""

# TODO(lead): move to gateway.ops.metrics beside FRAME_ERRORS.


class CloseConnection(Exception):
    """Raised by a handler to close the connection at once, without a response.

    Used for a banned address: answering each of its frames would
    spend CPU and memory on an attacker.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ByteBudget:
    """Body bytes held in memory across all connections (bounded memory).

    A frame's body is read only once its length fits the budget; it is
    given back when the frame's response is written.  One frame larger than
    the whole budget may still run when nothing else holds any.  Waiting
    here is the gateway's own backpressure: the bytes stay in the kernel's
    socket buffers and TCP slows the sender.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        async with self._freed:
            while self.used and self.used + n > self.limit:
                await self._freed.wait()
            self.used += n

    async def release(self, n: int) -> None:
        async with self._freed:
            self.used -= n
            self._freed.notify_all()


@dataclass(frozen=True)
class ConnInfo:
    """What the pipeline may know about the connection a frame came on."""

    listener: str
    conn_id: int
    peer_ip: str
    peer_port: int
    tls: bool
    tls_version: str | None
    peer_cert_der: bytes | None


Handler = Callable[[bytes, ConnInfo], Awaitable[bytes]]
"""Frame body → response body (unframed).  Must not raise; if it does, the
exception is logged and counted and that connection is closed."""

BadFrameResponder = Callable[[ConnInfo, str], Awaitable[bytes | None]]
"""Reason word (``header``, ``length``, ``empty``, ``frame_timeout``) → the
signed 1001 response body, or ``None`` to close without a response."""


def peer_address(peername: object) -> tuple[str, int]:
    """``(ip, port)`` from a socket peername, IPv4 or IPv6.

    An IPv4 client reaching a dual-stack IPv6 socket appears as
    ``::ffff:a.b.c.d``; it is reported as ``a.b.c.d`` so that source-address
    rules (docs/protocol.md §3, 2007) see one form per client.
    """
    if not isinstance(peername, tuple) or len(peername) < 2:
        return ("", 0)
    host, port = str(peername[0]), int(peername[1])
    if host.lower().startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    return (host, port)


def conn_info(listener: str, conn_id: int, writer: asyncio.StreamWriter) -> ConnInfo:
    """Describe an accepted connection from its transport."""
    ip, port = peer_address(writer.get_extra_info("peername"))
    ssl_obj = writer.get_extra_info("ssl_object")
    if isinstance(ssl_obj, ssl.SSLObject):
        return ConnInfo(
            listener=listener,
            conn_id=conn_id,
            peer_ip=ip,
            peer_port=port,
            tls=True,
            tls_version=ssl_obj.version(),
            peer_cert_der=ssl_obj.getpeercert(binary_form=True),
        )
    return ConnInfo(listener, conn_id, ip, port, tls=False, tls_version=None, peer_cert_der=None)


class Session:
    """The life of one connection, from accept to the single close log line."""

    def __init__(
        self,
        spec: ListenerSpec,
        info: ConnInfo,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        handler: Handler,
        bad_frame: BadFrameResponder,
        budget: ByteBudget | None = None,
        banned: Callable[[str], bool] | None = None,
    ) -> None:
        self.spec = spec
        self._budget = budget
        self._banned = banned
        self.info = info
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._bad_frame = bad_frame
        self._slots = asyncio.Semaphore(spec.max_inflight)
        self._write_lock = asyncio.Lock()
        self._handlers: set[asyncio.Task[None]] = set()
        self._read_task: asyncio.Task[str] | None = None
        self._at_boundary = True  # reader waits for a frame's first byte (or a slot)
        self._draining = False
        self._close_reason: str | None = None
        self._detail: str | None = None
        self.frames = 0

    # -- control from the listener -------------------------------------------------

    def begin_drain(self) -> None:
        """Read no further frame; in-flight requests still get their responses.

        A frame whose first byte has arrived is still read to its end (under
        its deadline) and handled; a reader waiting between frames stops now.
        """
        self._draining = True
        if self._at_boundary and self._read_task is not None:
            self._read_task.cancel()

    # -- the session task ------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes; never raises except on cancel."""
        name = self.spec.name
        structlog.contextvars.clear_contextvars()  # nothing inherited from start()'s caller
        structlog.contextvars.bind_contextvars(
            conn_id=self.info.conn_id, listener=name, peer=self.info.peer_ip
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        CONNECTIONS.labels(name).inc()
        CONNECTIONS_OPEN.labels(name).inc()
        try:
            await self._serve_connection()
        except asyncio.CancelledError:
            self._set_reason("shutdown")
            self._abort()
            await self._cancel_tasks()
            raise
        except Exception:  # a bug here must cost one connection, not the listener
            log.exception("session_failed")
            self._set_reason("internal_error")
            self._abort()
            await self._cancel_tasks()
        finally:
            CONNECTIONS_OPEN.labels(name).dec()
            final = self._close_reason or "eof"
            CONNECTION_CLOSES.labels(name, final).inc()
            log.info(
                "connection_closed",
                reason=final,
                detail=self._detail,
                frames=self.frames,
                duration_s=round(loop.time() - started, 3),
                tls_version=self.info.tls_version,
            )

    async def _serve_connection(self) -> None:
        """Read until the connection ends, finish in-flight work, answer 1001 if due, close."""
        self._read_task = asyncio.create_task(self._read_frames())
        await asyncio.wait([self._read_task])
        reason = "drain" if self._read_task.cancelled() else self._read_task.result()
        self._set_reason(reason)
        if self._handlers:
            await asyncio.wait(set(self._handlers))
        if reason in ("header", "length", "empty", "frame_timeout"):
            await self._answer_bad_frame(reason)
        await self._close()

    async def _cancel_tasks(self) -> None:
        """Cancel the reader and handlers and wait (briefly) until they are gone."""
        tasks: set[asyncio.Task[Any]] = set(self._handlers)
        if self._read_task is not None:
            tasks.add(self._read_task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)

    async def _read_frames(self) -> str:
        """Read frames until the connection ends; return the reason word.

        A handler slot is taken before the next frame is read, so with
        ``max_inflight`` requests in flight the session stops reading.
        """
        while not self._draining:
            self._at_boundary = True
            await self._slots.acquire()
            dispatched = False
            try:
                outcome = await self._read_frame()
                if isinstance(outcome, str):
                    return outcome
                self.frames += 1
                FRAMES.labels(self.spec.name).inc()
                task = asyncio.create_task(self._serve(outcome))
                del outcome  # else the body lives on while the connection idles
                dispatched = True
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
            finally:
                if not dispatched:
                    self._slots.release()
        return "drain"

    async def _read_frame(self) -> bytes | str:
        """One frame's body, or the reason word why the connection must end."""
        spec = self.spec
        reader = self._reader
        try:
            try:
                async with asyncio.timeout(spec.idle_timeout):
                    first = await reader.readexactly(1)
            except TimeoutError:
                return "idle"
            self._at_boundary = False
            loop = asyncio.get_running_loop()
            deadline = loop.time() + spec.frame_timeout  # one deadline, from the first byte on
            async with asyncio.timeout_at(deadline):
                check_header_prefix(first)
                header = first + await reader.readexactly(HEADER_LEN - 1)
                length = parse_header(header, spec.max_body)  # before any body byte
            if self._banned is not None and self._banned(self.info.peer_ip):
                return "banned"  # not one more body byte from a banned address
            if self._budget is not None:  # our own backpressure: not the client's deadline
                waited_from = loop.time()
                await self._budget.acquire(length)
                deadline += loop.time() - waited_from
            try:
                async with asyncio.timeout_at(deadline):
                    return await reader.readexactly(length)
            except BaseException:
                if self._budget is not None:
                    await self._budget.release(length)
                raise
        except FrameError as exc:
            FRAME_ERRORS.labels(spec.name, exc.reason).inc()
            self._detail = exc.detail
            return exc.reason
        except TimeoutError:
            FRAME_ERRORS.labels(spec.name, "frame_timeout").inc()
            self._detail = f"frame incomplete {spec.frame_timeout} s after its first byte"
            return "frame_timeout"
        except asyncio.IncompleteReadError:
            return "eof" if self._at_boundary else "truncated"
        except (ConnectionError, ssl.SSLError):
            return "reset"

    async def _serve(self, body: bytes) -> None:
        """Run the handler for one frame and write its response; frees a slot."""
        try:
            try:
                response = encode_frame(await self._handler(body, self.info))
            except CloseConnection as exc:
                self._set_reason(exc.reason)
                self._abort()
                return
            except Exception:
                log.exception("handler_failed")
                self._set_reason("handler_error")
                self._abort()
                return
            await self._write(response, self.spec.frame_timeout)
        finally:
            self._slots.release()
            if self._budget is not None:
                await self._budget.release(len(body))

    async def _answer_bad_frame(self, reason: str) -> None:
        """Write the one 1001 frame docs/protocol.md §1 asks for, if the connection allows."""
        if self._writer.is_closing():
            return
        try:
            body = await self._bad_frame(self.info, reason)
        except Exception:
            log.exception("bad_frame_responder_failed")
            return
        if body is not None:
            await self._write(encode_frame(body), BAD_FRAME_WRITE_TIMEOUT)
            await self._linger()

    async def _linger(self) -> None:
        """Let the 1001 reach a client that is still sending (a "lingering close").

        Closing a TCP socket with unread data makes the kernel send a reset,
        and the peer's kernel then drops the 1001 before the client reads it.
        So: half-close (FIN after the 1001), then read and discard until the
        client closes, for at most ``LINGER_TIMEOUT`` seconds.  TLS streams
        cannot be half-closed through asyncio; they are closed at once.
        """
        writer = self._writer
        if writer.is_closing() or not writer.can_write_eof():
            return
        writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(LINGER_TIMEOUT):
                while await self._reader.read(65536):
                    pass

    async def _write(self, frame: bytes, deadline: float) -> None:
        """Write one whole frame; close the connection if the peer stops reading."""
        async with self._write_lock:
            if self._writer.is_closing():
                return
            self._writer.write(frame)
            try:
                async with asyncio.timeout(deadline):
                    await self._writer.drain()
            except TimeoutError:
                log.info("write_stalled", deadline_s=deadline)
                self._set_reason("write_timeout")
                self._abort()
            except (ConnectionError, ssl.SSLError):
                self._set_reason("reset")
                self._abort()

    # -- closing ---------------------------------------------------------------------

    def _set_reason(self, reason: str) -> None:
        # The first cause wins: a reader seeing EOF after we aborted must not
        # overwrite "handler_error" or "write_timeout".
        if self._close_reason is None:
            self._close_reason = reason

    def _abort(self) -> None:
        """Drop the connection now, discarding unsent data (which may be unbounded)."""
        self._writer.transport.abort()

    async def _close(self) -> None:
        """Orderly close (flush, TLS close_notify), bounded by ``CLOSE_TIMEOUT``."""
        self._writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await self._writer.wait_closed()
        except TimeoutError:
            self._abort()
