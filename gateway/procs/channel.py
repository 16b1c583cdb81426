"""A batched call channel between a front process and the core (docs/architecture.md §1).

One Unix stream socket per front.  Each side collects what it has to say
during one event-loop iteration — calls, their results, one-way pushes — and
writes it as **one frame**: a 4-byte big-endian length, then a pickle
(protocol 5) of the list of messages.  Under load a frame carries dozens of
messages, so the per-message cost of the hand-off is a share of one
``write`` and one ``pickle.dumps``; idle, a frame carries one message and
adds no waiting (the flush is ``call_soon``, not a timer).

Pickle is safe here because both ends are the same program, started by the
core over a socketpair nobody else holds; nothing from the network is ever
unpickled.

Messages:

- ``("c", id, method, args)`` — a call; answered by
- ``("r", id, ok, value)`` — its result, or the exception it raised;
- ``("p", method, args)`` — a push: no answer.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger("gateway.procs")

_LEN = struct.Struct(">I")
MAX_FRAME = 1 << 30
"""Largest frame accepted (a 50,000-item batch's request and answer stay far below)."""

CallHandler = Callable[[str, tuple[Any, ...]], Awaitable[Any]]
PushHandler = Callable[[str, tuple[Any, ...]], None]


class ChannelClosed(ConnectionError):
    """The other process is gone: every call in flight fails with this."""


class RemoteError(RuntimeError):
    """The other side raised an exception that could not be sent as itself."""


class Channel:
    """Both ends use this class: ``call`` and ``push`` out, handlers for what comes in."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_call: CallHandler | None = None,
        on_push: PushHandler | None = None,
        name: str = "channel",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_call = on_call
        self._on_push = on_push
        self.name = name
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._out: list[tuple[Any, ...]] = []
        self._scheduled = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.frames_in = 0
        self.frames_out = 0
        self.messages_out = 0

    @property
    def closed(self) -> bool:
        return self._closed

    # -- out ---------------------------------------------------------------
    async def call(self, method: str, *args: Any) -> Any:
        """Ask the other side to run ``method(*args)``; its exception is raised here."""
        if self._closed:
            raise ChannelClosed(f"{self.name} is closed")
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = fut
        self._send(("c", call_id, method, args))
        try:
            return await fut
        finally:
            self._waiting.pop(call_id, None)

    def push(self, method: str, *args: Any) -> None:
        """Tell the other side something; no answer, lost if the channel is closed."""
        if not self._closed:
            self._send(("p", method, args))

    def _send(self, msg: tuple[Any, ...]) -> None:
        self._out.append(msg)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._closed or not self._out:
            self._out.clear()
            return
        batch, self._out = self._out, []
        try:
            data = pickle.dumps(batch, protocol=5)
        except Exception:  # noqa: BLE001 - one bad message must not sink the others
            data = pickle.dumps([m for m in map(self._sendable_message, batch) if m], protocol=5)
        self._writer.write(_LEN.pack(len(data)) + data)
        self.frames_out += 1
        self.messages_out += len(batch)

    def _sendable_message(self, msg: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """``msg`` if it pickles; else what stands in for it: a result becomes the
        caller's error, a call fails here at once, a push is dropped (logged)."""
        try:
            pickle.dumps(msg, protocol=5)
        except Exception as exc:
            log.exception("channel_message_unsendable", channel=self.name, kind=msg[0])
            if msg[0] == "r":
                return ("r", msg[1], False, RemoteError(f"answer not sendable: {exc}"))
            if msg[0] == "c":
                fut = self._waiting.get(msg[1])
                if fut is not None and not fut.done():
                    fut.set_exception(RemoteError(f"call not sendable: {exc}"))
            return None
        return msg

    async def drain(self) -> None:
        """Wait until what was written has left (backpressure on a slow reader)."""
        if not self._closed:
            await self._writer.drain()

    # -- in ----------------------------------------------------------------
    async def run(self) -> None:
        """Read frames until the other side closes; then fail every call in flight."""
        try:
            while True:
                head = await self._reader.readexactly(_LEN.size)
                (size,) = _LEN.unpack(head)
                if size > MAX_FRAME:
                    raise ValueError(f"{self.name}: frame of {size} bytes")
                batch = pickle.loads(await self._reader.readexactly(size))  # noqa: S301 - our own process
                self.frames_in += 1
                for msg in batch:
                    self._dispatch(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.close()

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "r":
            _, call_id, ok, value = msg
            fut = self._waiting.get(call_id)
            if fut is not None and not fut.done():
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        elif kind == "c":
            _, call_id, method, args = msg
            task = asyncio.get_running_loop().create_task(self._serve(call_id, method, args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "p":
            _, method, args = msg
            if self._on_push is not None:
                try:
                    self._on_push(method, args)
                except Exception:
                    log.exception("push_failed", channel=self.name, method=method)

    async def _serve(self, call_id: int, method: str, args: tuple[Any, ...]) -> None:
        if self._on_call is None:
            self._send(("r", call_id, False, RemoteError(f"{self.name}: no calls served")))
            return
        try:
            value = await self._on_call(method, args)
        except Exception as exc:  # noqa: BLE001 - sent back to the caller, who raises it
            self._send(("r", call_id, False, _sendable(exc)))
            return
        self._send(("r", call_id, True, value))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ChannelClosed(f"{self.name} closed"))
        self._waiting.clear()
        self._writer.close()


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a RemoteError naming it."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=5))  # noqa: S301 - our own bytes
    except Exception:  # noqa: BLE001
        return RemoteError(f"{type(exc).__name__}: {exc}")
    return exc


async def open_pair(
    sock: Any,
    *,
    on_call: CallHandler | None = None,
    on_push: PushHandler | None = None,
    name: str = "channel",
) -> Channel:
    """A ``Channel`` over one end of a connected Unix socket."""
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
    return Channel(reader, writer, on_call=on_call, on_push=on_push, name=name)
