"""One TLS read buffer per thread instead of one per connection (docs/architecture.md §9).

asyncio's TLS layer (``asyncio.sslproto.SSLProtocol``, Python 3.11 to 3.13)
gives every connection its own read buffer of ``max_size`` (256 KiB) when
the connection is made and keeps it until the connection is gone: 10,000
idle mutual-TLS connections hold 2.5 GiB in these buffers alone, though they
send nothing.

The buffer is only used between two calls: a transport asks for it
(``get_buffer``), fills it from the socket and hands it back
(``buffer_updated``), which at once copies the bytes into the connection's
own ``MemoryBIO``.  asyncio's transports make these calls one right after
the other, with nothing in between (the selector loop's
``_read_ready__get_buffer``, the proactor loop's
``_feed_data_to_buffered_proto``, and ``sslproto`` itself for TLS inside
TLS, whose inner buffer is asked for only after the outer bytes were
copied).  So one buffer per thread can serve every TLS connection the thread
runs.  ``bound_tls_buffers`` makes the two attributes that hold the buffer
(``_ssl_buffer``, ``_ssl_buffer_view``) data descriptors on the standard
library's class: they return the calling thread's buffer, and the buffer a
new connection assigns in ``__init__`` becomes the thread's if it has none
yet, or is dropped at once.  Each read still takes up to ``max_size``
bytes, so large frames cost what they did; lowering ``max_size`` to 36 KiB
instead would have cost about half again as much CPU per MiB of a large
body, and would still have kept 36 KiB per connection.

The descriptors are on the standard library's class, so they cover every
TLS connection of the process: the listeners' (including
``gateway.net.tls``'s alerting subclass) and any other ``start_tls`` or
``create_connection(ssl=...)``.  Connections made before the call switch to
the shared buffer too but still hold their own, unused: call it at start.

Other per-connection TLS memory needs nothing from us.  CPython sets
``SSL_MODE_RELEASE_BUFFERS`` on every context, so OpenSSL frees a
connection's record buffers whenever they are empty.  ``StreamReader``'s
limit only pauses reading; its buffer is empty while the connection is
idle.  Left as it is: a ``MemoryBIO`` never shrinks, so a connection keeps
room for the most ciphertext it ever had waiting (a few KiB after small
requests, some hundreds of KiB after a body of a MiB).

This relies on asyncio internals, so it is applied only to the Python
versions whose ``sslproto`` was read for it, and only while exactly the
three methods named above use the two attributes (read from their
bytecode).  Anything else is left alone and logged once.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from asyncio import sslproto
from typing import Any, Final

import structlog

__all__ = ["bound_tls_buffers", "read_buffers_shared"]

log = structlog.get_logger("gateway.net")

_BUFFER_ATTRS: Final = frozenset({"_ssl_buffer", "_ssl_buffer_view"})
_BUFFER_USERS: Final = frozenset({"__init__", "get_buffer", "buffer_updated"})
"""The only methods of ``SSLProtocol`` that may touch the buffer for it to be shared."""

_CHECKED_VERSIONS: Final = frozenset({(3, 11), (3, 12), (3, 13)})
"""Versions whose ``asyncio/sslproto.py`` and transports were read for the analysis above."""

_warned = False


class _ThreadBuffer(threading.local):
    """The calling thread's read buffer and a view of it (none before its first TLS connection)."""

    buffer: bytearray | None = None
    view: memoryview | None = None


_THREAD: Final = _ThreadBuffer()


def _adopt(buffer: bytearray) -> None:
    _THREAD.buffer = buffer
    _THREAD.view = memoryview(buffer)


class _Shared:
    """``SSLProtocol._ssl_buffer`` (or ``_ssl_buffer_view``): the calling thread's buffer."""

    def __init__(self, *, view: bool) -> None:
        self._view = view

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if _THREAD.buffer is None:  # a connection made in another thread
            _adopt(bytearray(type(obj).max_size))  # type: ignore[attr-defined]
        return _THREAD.view if self._view else _THREAD.buffer

    def __set__(self, obj: object, value: Any) -> None:
        # asyncio assigns a new buffer in __init__, and a bigger one in
        # get_buffer if more is asked for than the buffer holds: the thread
        # keeps the biggest.  The view always follows the buffer.
        if not self._view and (_THREAD.buffer is None or len(value) > len(_THREAD.buffer)):
            _adopt(value)


def _stock_class() -> type | None:
    """The standard library's ``SSLProtocol``, even after a subclass replaced it."""
    for cls in sslproto.SSLProtocol.__mro__:
        if cls.__module__ == sslproto.__name__ and cls.__name__ == "SSLProtocol":
            return cls
    return None


def _names(code: types.CodeType) -> set[str]:
    """Attribute and global names ``code`` uses, nested functions and lambdas included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _buffer_users(classes: tuple[type, ...]) -> set[str]:
    return {
        name
        for cls in classes
        for name, value in vars(cls).items()
        if isinstance(value, types.FunctionType) and _names(value.__code__) & _BUFFER_ATTRS
    }


def _refusal(
    cls: type | None, version: tuple[int, int], subclasses: tuple[type, ...] = ()
) -> str | None:
    """Why the internals are not the ones this module was written for, or ``None``."""
    if version not in _CHECKED_VERSIONS:
        return f"Python {version[0]}.{version[1]} not checked"
    if cls is None or not issubclass(cls, asyncio.BufferedProtocol):
        return "asyncio.sslproto.SSLProtocol is not the expected buffered protocol"
    if not isinstance(vars(cls).get("max_size"), int):
        return "asyncio.sslproto.SSLProtocol has no max_size"
    users = _buffer_users((cls, *subclasses))
    if users != _BUFFER_USERS:
        return f"the read buffer is used by {sorted(users)}, not {sorted(_BUFFER_USERS)}"
    return None


def read_buffers_shared() -> bool:
    """True once TLS connections of this process share their thread's read buffer."""
    cls = _stock_class()
    return cls is not None and isinstance(vars(cls).get("_ssl_buffer"), _Shared)


def bound_tls_buffers() -> bool:
    """Make the TLS connections of this process share one read buffer per thread.

    Call once at process start, in every process that serves TLS; calling
    again is harmless.  Returns ``False``, and logs once, when this Python's
    asyncio is not the one described in the module docstring: its buffers
    are then left as they are.
    """
    global _warned  # noqa: PLW0603 - one warning per process
    if read_buffers_shared():
        return True
    cls = _stock_class()
    current = sslproto.SSLProtocol
    subclasses = current.__mro__[: current.__mro__.index(cls)] if cls is not None else ()
    reason = _refusal(cls, (sys.version_info[0], sys.version_info[1]), subclasses)
    if reason is not None or cls is None:
        if not _warned:
            _warned = True
            log.warning("tls_read_buffers_not_shared", reason=reason)
        return False
    cls._ssl_buffer = _Shared(view=False)  # type: ignore[attr-defined]  # see the module docstring
    cls._ssl_buffer_view = _Shared(view=True)  # type: ignore[attr-defined]
    return True
