"""Bound the memory an idle TLS connection holds in asyncio (docs/architecture.md §9).

asyncio's TLS layer (``asyncio.sslproto.SSLProtocol``, Python 3.11 to 3.13)
gives every connection a ``max_size`` bytearray, 256 KiB, when the
connection is made and keeps it until the connection is gone: 10,000 idle
mutual-TLS connections hold 2.5 GiB in these buffers alone, though they
send nothing.  The buffer only stages ciphertext between one ``recv_into`` and
its copy into the connection's ``MemoryBIO`` (``get_buffer`` /
``buffer_updated``); decrypted data is read from the ``SSLObject`` in
``max_size`` pieces until OpenSSL has no more and handed on joined.  So a
smaller ``max_size`` changes how many bytes one socket read takes, never
what arrives: a frame of any size still arrives whole, in more, smaller
reads.  ``get_buffer`` never grows the buffer past ``max_size``.

``max_size`` is a class attribute that asyncio reads in exactly those three
places, so setting it once on the standard library's class, before the
first TLS connection, bounds every TLS connection of the process: the
listeners' (including ``gateway.net.tls``'s alerting subclass) and any
other ``start_tls`` or ``create_connection(ssl=...)``.  ``READ_BUFFER``
holds two whole records of any cipher suite the listeners allow, so one
socket read still takes at least one whole record.

The other per-connection TLS memory needs nothing from us: CPython sets
``SSL_MODE_RELEASE_BUFFERS`` on every context, so OpenSSL frees a
connection's record buffers whenever they are empty (an idle connection
holds none).  ``StreamReader``'s limit only pauses reading; its buffer is
empty when the connection is idle.  Left as it is: a ``MemoryBIO`` never
shrinks, so a connection keeps room for the most ciphertext it ever had
waiting (a few KiB for small requests, more after a large body).

This relies on asyncio internals, so it is applied only to the Python
versions whose ``sslproto`` was read for it.  Anything else is left alone
and logged once.
"""

from __future__ import annotations

import asyncio
import sys
from asyncio import sslproto
from typing import Final

import structlog

__all__ = ["MIN_READ_BUFFER", "READ_BUFFER", "bound_tls_buffers", "read_buffer_size"]

log = structlog.get_logger("gateway.net")

MIN_READ_BUFFER: Final = 5 + 16_384 + 2_048
"""The largest TLS record on the wire (RFC 5246 §6.2.3: header, 2^14 bytes, 2,048 of expansion)."""

READ_BUFFER: Final = 2 * 16 * 1024 + 4 * 1024
"""Bytes of ciphertext one socket read may take (36 KiB): two records of at most
5 + 2^14 + 256 bytes, the limit of TLS 1.3 (RFC 8446 §5.2) and of TLS 1.2's AEAD suites."""

_CHECKED_VERSIONS: Final = frozenset({(3, 11), (3, 12), (3, 13)})
"""Versions whose ``asyncio/sslproto.py`` sizes the buffer from ``max_size`` as described above."""

_warned = False


def _stock_class() -> type[asyncio.BufferedProtocol] | None:
    """The standard library's ``SSLProtocol``, even after a subclass replaced it."""
    for cls in sslproto.SSLProtocol.__mro__:
        if cls.__module__ == sslproto.__name__ and cls.__name__ == "SSLProtocol":
            return cls
    return None


def _refusal(cls: type | None, version: tuple[int, int]) -> str | None:
    """Why the internals are not the ones this module was written for, or ``None``."""
    if version not in _CHECKED_VERSIONS:
        return f"Python {version[0]}.{version[1]} not checked"
    if cls is None or not issubclass(cls, asyncio.BufferedProtocol):
        return "asyncio.sslproto.SSLProtocol is not the expected buffered protocol"
    if not isinstance(cls.__dict__.get("max_size"), int) or "get_buffer" not in cls.__dict__:
        return "asyncio.sslproto.SSLProtocol has no max_size or get_buffer"
    return None


def bound_tls_buffers(size: int = READ_BUFFER) -> bool:
    """Make every later TLS connection of this process read with a ``size``-byte buffer.

    Call once at process start, before the first TLS connection (open ones
    keep their buffer); calling again is harmless.  Returns ``False``, and
    logs once, when this Python's asyncio is not the one described in the
    module docstring: its buffers are then left as they are.
    """
    global _warned  # noqa: PLW0603 - one warning per process
    if size < MIN_READ_BUFFER:
        msg = f"a TLS read buffer must hold one whole record ({MIN_READ_BUFFER} bytes)"
        raise ValueError(msg)
    cls = _stock_class()
    reason = _refusal(cls, (sys.version_info[0], sys.version_info[1]))
    if reason is not None or cls is None:
        if not _warned:
            _warned = True
            log.warning("tls_read_buffer_unbounded", reason=reason, size=read_buffer_size())
        return False
    cls.max_size = size  # type: ignore[attr-defined]  # see the module docstring
    return True


def read_buffer_size() -> int | None:
    """The read buffer a new TLS connection of this process gets, in bytes."""
    size = getattr(sslproto.SSLProtocol, "max_size", None)
    return size if isinstance(size, int) else None
