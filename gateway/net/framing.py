"""CorpLink framing, sans-IO: an 8-digit length header, then exactly that many bytes.

docs/protocol.md §1: "Frame = 8 ASCII decimal digits giving the body length in
bytes, zero-padded (``00001234``), followed by exactly that many bytes of
body."  A header that is not 8 digits, or a length above the listener's limit,
is a 1001 (docs/protocol.md §8) and closes the connection.

Nothing here touches a socket, asyncio or a clock (docs/architecture.md §8, habit 5): the
listener's session drives these functions with bytes it read under its own
deadlines, and clients, simulators and property tests use ``FrameDecoder``.

Decision (the spec is silent): a header of ``00000000`` announces an empty
body, which cannot be an XML document.  It is refused as a framing error with
reason ``"empty"`` (RetCode 1001) rather than passed on to the XML layer as a
1002, because it is caught here, before any parsing cost, like the other
header checks.
"""

from __future__ import annotations

from typing import Final, Literal

HEADER_LEN: Final = 8
"""docs/protocol.md §1: the length header is exactly 8 ASCII decimal digits."""

MAX_ENCODABLE: Final = 99_999_999
"""The largest length 8 decimal digits can express."""

FrameErrorReason = Literal["header", "length", "empty"]


class FrameError(Exception):
    """The byte stream violates docs/protocol.md §1; the connection answers 1001 and closes.

    ``reason`` is a bounded word used as log field and metric label:
    ``"header"`` (not 8 ASCII digits), ``"length"`` (above the listener's
    limit) or ``"empty"`` (a zero length; see the module docstring).
    """

    def __init__(self, reason: FrameErrorReason, detail: str) -> None:
        self.reason: FrameErrorReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def _is_ascii_digits(data: bytes | bytearray | memoryview) -> bool:
    # bytes.isdigit() is ASCII-only, unlike str.isdigit() (which accepts "٣")
    # and int() (which also accepts " 12", "+12" and "1_2").
    return bytes(data).isdigit()


def check_header_prefix(prefix: bytes | bytearray | memoryview) -> None:
    """Refuse a partial header as soon as one of its bytes is not a digit.

    Lets a reader answer ``GET / HTTP/1.1`` or a TLS ClientHello sent to a
    plain listener at once, instead of waiting out the frame deadline for
    the rest of a header that can never become valid.
    """
    if len(prefix) > HEADER_LEN:
        msg = f"header prefix longer than {HEADER_LEN} bytes"
        raise ValueError(msg)
    if prefix and not _is_ascii_digits(prefix):
        raise FrameError("header", "length header is not 8 ASCII digits")


def parse_header(header: bytes | bytearray | memoryview, max_body: int) -> int:
    """Return the body length announced by ``header``, or raise ``FrameError``.

    Called before any body byte is read, so an oversized length never makes
    the reader buffer anything (docs/architecture.md §9: ``readexactly`` is unbounded).
    """
    if len(header) != HEADER_LEN or not _is_ascii_digits(header):
        raise FrameError("header", "length header is not 8 ASCII digits")
    length = int(bytes(header))
    if length == 0:
        raise FrameError("empty", "frame body is empty")
    if length > max_body:
        raise FrameError("length", f"body length {length} above the limit {max_body}")
    return length


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its zero-padded 8-digit length (docs/protocol.md §1).

    An empty body encodes to ``00000000`` (a hostile-client simulator may
    want to send it); decoders refuse it as ``"empty"``.
    """
    if len(body) > MAX_ENCODABLE:
        msg = f"body of {len(body)} bytes does not fit an 8-digit length header"
        raise ValueError(msg)
    return b"%08d" % len(body) + body


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get complete bodies back.

    Never holds more than one partial frame (at most ``max_body + 8`` bytes)
    beyond what the caller fed in one call.  After a ``FrameError`` the
    stream has lost its framing for good: every later ``feed`` raises the
    same error, as the connection must be closed (docs/protocol.md §1).
    """

    def __init__(self, max_body: int) -> None:
        if not 0 < max_body <= MAX_ENCODABLE:
            msg = f"max_body must be within 1..{MAX_ENCODABLE}"
            raise ValueError(msg)
        self._max_body = max_body
        self._buf = bytearray()
        self._need: int | None = None  # body length of the frame being read
        self._error: FrameError | None = None

    @property
    def at_boundary(self) -> bool:
        """True when no partial frame is buffered (EOF here is a clean close)."""
        return self._need is None and not self._buf

    @property
    def buffered(self) -> int:
        """Bytes held for the partial frame (header bytes included)."""
        return len(self._buf) + (HEADER_LEN if self._need is not None else 0)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume ``data``; return the bodies of the frames it completed, in order."""
        if self._error is not None:
            raise self._error
        self._buf += data
        bodies: list[bytes] = []
        try:
            while True:
                if self._need is None:
                    if len(self._buf) < HEADER_LEN:
                        check_header_prefix(self._buf)
                        break
                    self._need = parse_header(self._buf[:HEADER_LEN], self._max_body)
                    del self._buf[:HEADER_LEN]
                if len(self._buf) < self._need:
                    break
                bodies.append(bytes(self._buf[: self._need]))
                del self._buf[: self._need]
                self._need = None
        except FrameError as exc:
            self._error = exc
            self._buf.clear()
            raise
        return bodies
