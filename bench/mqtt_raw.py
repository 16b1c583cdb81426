"""A bare MQTT 5 QoS 1 client on an asyncio protocol: the floor for bench_mqtt_clients.py.

No client library's bookkeeping, only what the wire needs: a PUBLISH built
from a pre-encoded head and tail around the packet id and properties, PUBACKs
matched to futures by packet id, inbound PUBLISH split into topic, packet id,
user properties and payload, and a PUBACK written back.  Not for use beyond
the benchmark: no keepalive, no reconnect, no TLS, no error handling.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

_CONNACK, _PUBLISH, _PUBACK, _SUBACK = 0x20, 0x30, 0x40, 0x90
_USER_PROPERTY = 0x26


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _connect(client_id: str, clean: bool, session_expiry: int, receive_max: int) -> bytes:
    props = b"\x11" + struct.pack("!I", session_expiry) + b"\x21" + struct.pack("!H", receive_max)
    body = (
        _str("MQTT")
        + bytes([5, 0x02 if clean else 0])
        + struct.pack("!H", 60)
        + _varint(len(props))
        + props
        + _str(client_id)
    )
    return b"\x10" + _varint(len(body)) + body


def _user_props(items: list[tuple[str, str]]) -> bytes:
    return b"".join(bytes([_USER_PROPERTY]) + _str(k) + _str(v) for k, v in items)


class RawClient(asyncio.Protocol):
    """One connection; ``on_message(topic, payload, user_properties)`` for inbound PUBLISH."""

    def __init__(self, on_message: Callable[[bytes, bytes, list[tuple[str, str]]], None]) -> None:
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._acks: dict[int, asyncio.Future[int]] = {}
        self._connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._next_id = 0
        self._on_message = on_message

    @classmethod
    async def connect(
        cls,
        port: int,
        client_id: str,
        *,
        clean: bool,
        session_expiry: int,
        receive_max: int,
        on_message: Callable[[bytes, bytes, list[tuple[str, str]]], None] = lambda *_: None,
    ) -> RawClient:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: cls(on_message), "127.0.0.1", port)
        assert proto._transport is not None
        proto._transport.write(_connect(client_id, clean, session_expiry, receive_max))
        if await proto._connack:
            raise RuntimeError("CONNACK refused")
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def publish_qos1(
        self, topic: str, payload: bytes, props: list[tuple[str, str]]
    ) -> asyncio.Future[int]:
        """Write one QoS 1 PUBLISH; the future gets the PUBACK's reason code."""
        pid = self._packet_id()
        prop_bytes = _user_props(props)
        topic_b = _str(topic)
        body_len = len(topic_b) + 2 + len(_varint(len(prop_bytes))) + len(prop_bytes) + len(payload)
        assert self._transport is not None
        self._transport.writelines(
            (
                bytes([_PUBLISH | 0x02]) + _varint(body_len) + topic_b + struct.pack("!H", pid),
                _varint(len(prop_bytes)) + prop_bytes,
                payload,
            )
        )
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._acks[pid] = fut
        return fut

    def subscribe_qos1(self, topic: str) -> asyncio.Future[int]:
        pid = self._packet_id()
        body = struct.pack("!H", pid) + b"\x00" + _str(topic) + b"\x01"
        assert self._transport is not None
        self._transport.write(b"\x82" + _varint(len(body)) + body)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._acks[pid] = fut
        return fut

    def disconnect(self) -> None:
        if self._transport is not None:
            self._transport.write(b"\xe0\x00")
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length, shift, i = 0, 0, pos + 1
            complete = False
            while i < end and shift <= 21:
                b = buf[i]
                length |= (b & 0x7F) << shift
                shift += 7
                i += 1
                if not b & 0x80:
                    complete = True
                    break
            if not complete or i + length > end:
                break  # wait for the rest of the packet
            self._packet(buf[pos], memoryview(buf)[i : i + length])
            pos = i + length
        del buf[:pos]

    def _packet(self, head: int, body: memoryview) -> None:
        kind = head & 0xF0
        if kind == _PUBLISH:
            self._publish(head, body)
        elif kind in (_PUBACK, _SUBACK):
            pid = (body[0] << 8) | body[1]
            code = body[2] if len(body) > 2 else 0
            if kind == _SUBACK:  # skip the properties to the first granted QoS
                n, i = _read_varint(body, 2)
                code = body[i + n]
            fut = self._acks.pop(pid, None)
            if fut is not None and not fut.done():
                fut.set_result(code)
        elif kind == _CONNACK and not self._connack.done():
            self._connack.set_result(body[1])

    def _publish(self, head: int, body: memoryview) -> None:
        tlen = (body[0] << 8) | body[1]
        topic = bytes(body[2 : 2 + tlen])
        i = 2 + tlen
        pid = 0
        if head & 0x06:
            pid = (body[i] << 8) | body[i + 1]
            i += 2
        plen, i = _read_varint(body, i)
        props_end = i + plen
        user: list[tuple[str, str]] = []
        while i < props_end:
            pid_ = body[i]
            i += 1
            if pid_ != _USER_PROPERTY:
                raise RuntimeError(f"raw client: property 0x{pid_:02x} not handled")
            k, i = _read_str(body, i)
            v, i = _read_str(body, i)
            user.append((k, v))
        self._on_message(topic, bytes(body[props_end:]), user)
        if pid and self._transport is not None:
            self._transport.write(bytes([_PUBACK, 2, pid >> 8, pid & 0xFF]))


def _read_varint(buf: memoryview, i: int) -> tuple[int, int]:
    n, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _read_str(buf: memoryview, i: int) -> tuple[str, int]:
    n = (buf[i] << 8) | buf[i + 1]
    return bytes(buf[i + 2 : i + 2 + n]).decode(), i + 2 + n
