"""The operations HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``.

docs/architecture.md §7 "Operations": Prometheus scrapes ``/metrics``; a supervisor or load
balancer asks ``/healthz`` (the process runs) and ``/readyz`` (it should get
traffic). docs/architecture.md §8, habit 3: the lifecycle is an enum that ``/readyz`` reports.

A deliberately tiny HTTP/1.1 server on asyncio, no new dependency. It reads one
request head (request line + headers, at most ``MAX_HEAD_BYTES`` within
``HEAD_TIMEOUT`` seconds), answers, and closes (``Connection: close``): no
keep-alive, no bodies, no chunking, so there is nothing for a slow or hostile
peer to hold open. It binds ``127.0.0.1`` unless told otherwise (docs/architecture.md §9:
prometheus-client's own server binds 0.0.0.0 by default; we do not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Final

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.ops import metrics

__all__ = ["HealthServer", "HealthState", "Lifecycle"]

log = structlog.get_logger(__name__)

_JSON: Final = "application/json"
_TEXT: Final = "text/plain; charset=utf-8"
_REASONS: Final[dict[int, str]] = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Lifecycle(StrEnum):
    """The daemon's lifecycle, as ``/readyz`` and ``gateway_lifecycle_state`` report it."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


def _export_lifecycle(current: Lifecycle) -> None:
    for state in Lifecycle:
        metrics.LIFECYCLE.labels(state=state.value).set(1 if state is current else 0)


def _default_info() -> dict[str, str]:
    return {"version": __version__}


@dataclass
class HealthState:
    """What the endpoint reports; the daemon mutates it as it starts, runs and drains.

    Assigning ``lifecycle`` also updates the ``gateway_lifecycle_state`` gauge
    (1 for the current state, 0 for the others). ``checks`` are named
    dependencies (``journal``, ``clearing_link``...) that must all be true for
    readiness; ``advisory`` are dependencies ``/readyz`` reports under their own key
    without making the node unready (``swift_link``: with the bank's SWIFT interface
    away the node still serves every other payment, and foreign-currency payments
    wait in the journal, docs/foreign-currency.md §4; taking every node out of the load
    balancer for it would stop the domestic payments too); ``info`` supplies extra
    ``/healthz`` fields such as the business clock, the node name and the version.
    """

    lifecycle: Lifecycle = Lifecycle.STARTING
    checks: dict[str, bool] = field(default_factory=dict)
    advisory: dict[str, bool] = field(default_factory=dict)
    info: Callable[[], dict[str, str]] = _default_info

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "lifecycle":
            _export_lifecycle(Lifecycle(value))

    def set_check(self, name: str, ok: bool) -> None:
        """Record the latest result of one readiness check."""
        self.checks[name] = ok

    def set_advisory(self, name: str, ok: bool) -> None:
        """Record the latest state of a dependency that does not gate readiness."""
        self.advisory[name] = ok

    def ready(self) -> bool:
        """True when the lifecycle is READY and every check passes."""
        return self.lifecycle is Lifecycle.READY and all(self.checks.values())


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class HealthServer:
    """Serves the three operations endpoints on one local TCP port."""

    MAX_HEAD_BYTES: ClassVar[int] = 8 * 1024
    """Request line plus headers; larger heads get 431 and the connection is closed."""
    HEAD_TIMEOUT: ClassVar[float] = 5.0
    """Seconds to receive the whole head (slow-loris bound); then 408 and close."""
    WRITE_TIMEOUT: ClassVar[float] = 5.0
    """Seconds to hand the response to a peer that does not read."""
    LINGER_BYTES: ClassVar[int] = 64 * 1024
    """After refusing a head, input discarded before closing (so the peer reads our answer)."""
    LINGER_TIMEOUT: ClassVar[float] = 1.0
    """Seconds spent discarding that input at most."""
    MAX_CONNECTIONS: ClassVar[int] = 32
    """Concurrent connections; more are closed at once (scrapers need one or two)."""

    def __init__(
        self,
        state: HealthState,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: Collector = metrics.REGISTRY,
    ) -> None:
        self._registry = registry  # with fronts: their samples merged in (ops/metrics_merge.py)
        self.state = state
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._open: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def connections(self) -> int:
        """Connections being served right now."""
        return len(self._open)

    async def start(self) -> tuple[str, int]:
        """Bind and listen; returns the bound (host, port), useful with port 0."""
        if self._server is not None:
            raise RuntimeError("health server already started")
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, limit=self.MAX_HEAD_BYTES
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        log.debug("health.listening", host=host, port=port)  # also in gatewayd's "started"
        return str(host), int(port)

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Abort rather than cancel: the handler then sees EOF and ends normally
        # (a cancelled handler task is logged as an error by asyncio.streams).
        for writer in self._open.values():
            writer.transport.abort()
        await asyncio.gather(*self._open, return_exceptions=True)
        await server.wait_closed()

    # -- connection handling ------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or self._server is None or len(self._open) >= self.MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._open[task] = writer
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._open.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(self.WRITE_TIMEOUT):
                    await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        refused = True
        try:
            async with asyncio.timeout(self.HEAD_TIMEOUT):
                method, target = await self._read_head(reader)
        except TimeoutError:
            status, headers, body = self._plain(408)
        except _BadRequest as exc:
            status, headers, body = self._plain(exc.status)
        else:
            refused = False
            try:
                status, headers, body = self._route(method, target)
            except Exception:  # a broken collector must not kill the endpoint
                log.exception("health.handler_failed", path=target)
                status, headers, body = self._plain(500)
        await self._respond(writer, status, headers, body)
        if refused:
            await self._linger(reader, writer)

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Lingering close: closing with unread input sends a TCP reset, which can
        destroy the error response before the peer reads it. Half-close, then
        discard a bounded amount of input for a bounded time."""
        if writer.can_write_eof():
            writer.write_eof()
        left = self.LINGER_BYTES
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.LINGER_TIMEOUT):
                while left > 0:
                    chunk = await reader.read(min(left, self.MAX_HEAD_BYTES))
                    if not chunk:
                        break
                    left -= len(chunk)

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        """Read request line and headers; return (method, path without query)."""
        total = 0
        lines: list[bytes] = []
        while True:
            try:
                line = await reader.readline()
            except ValueError as exc:  # LimitOverrunError: a line longer than the limit
                raise _BadRequest(431) from exc
            total += len(line)
            if total > self.MAX_HEAD_BYTES:
                raise _BadRequest(431)
            if not line.endswith(b"\n"):  # EOF before the head ended
                raise ConnectionResetError("peer closed mid-request")
            if line in (b"\r\n", b"\n"):
                if not lines:
                    continue  # RFC 9112 §2.2: ignore empty lines before the request line
                break
            lines.append(line)
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            raise _BadRequest(400)
        try:
            method, target = parts[0].decode("ascii"), parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise _BadRequest(400) from exc
        return method, target.split("?", 1)[0]

    def _route(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path not in ("/metrics", "/healthz", "/readyz"):
            return self._plain(404)
        if method != "GET":
            status, headers, body = self._plain(405)
            headers["Allow"] = "GET"
            return status, headers, body
        if path == "/metrics":
            return 200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(self._registry)
        if path == "/healthz":
            return self._healthz()
        return self._readyz()

    def _healthz(self) -> tuple[int, dict[str, str], bytes]:
        try:
            info = dict(self.state.info())
        except Exception:  # a faulty info callback must not kill the endpoint
            log.exception("health.info_failed")
            return self._json(500, {"status": "error"})
        return self._json(200, {"status": "ok", **info})

    def _readyz(self) -> tuple[int, dict[str, str], bytes]:
        ready = self.state.ready()
        doc: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "lifecycle": self.state.lifecycle.value,
            "checks": dict(self.state.checks),
        }
        if self.state.advisory:  # only when some dependency is advisory (SWIFT enabled)
            doc["advisory"] = dict(self.state.advisory)
        return self._json(200 if ready else 503, doc)

    @staticmethod
    def _json(status: int, doc: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(doc, sort_keys=True).encode() + b"\n"
        return status, {"Content-Type": _JSON}, body

    @staticmethod
    def _plain(status: int) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": _TEXT}, _REASONS[status].encode() + b"\n"

    async def _respond(
        self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        head = [f"HTTP/1.1 {status} {_REASONS[status]}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            "Connection: close",
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body)
        async with asyncio.timeout(self.WRITE_TIMEOUT):
            await writer.drain()
