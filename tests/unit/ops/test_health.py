"""The ops HTTP endpoint over real sockets: /metrics, /healthz, /readyz, limits."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.clock import SHANGHAI, BusinessClock
from gateway.ops import metrics
from gateway.ops.health import HealthServer, HealthState, Lifecycle

Response = tuple[int, dict[str, str], bytes]


async def exchange(port: int, raw: bytes) -> Response:
    """Send raw bytes, read until the server closes, split the response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert status_line.startswith("HTTP/1.1 ")
    return int(status_line.split()[1]), headers, body


async def get(port: int, path: str, method: str = "GET") -> Response:
    return await exchange(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


@pytest.fixture
def state() -> HealthState:
    return HealthState(checks={"journal": False, "clearing_link": False})


@pytest.fixture
async def port(state: HealthState) -> AsyncIterator[int]:
    server = HealthServer(state)
    host, bound = await server.start()
    assert host == "127.0.0.1"  # loopback unless told otherwise
    yield bound
    await server.close()


def lifecycle_gauge() -> dict[str, float | None]:
    return {
        s.value: metrics.REGISTRY.get_sample_value("gateway_lifecycle_state", {"state": s.value})
        for s in Lifecycle
    }


async def test_metrics_exposition_parses_and_lints(port: int) -> None:
    status, headers, body = await get(port, "/metrics")
    assert status == 200
    assert headers["content-type"] == CONTENT_TYPE_LATEST
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    names = {fam.name for fam in text_string_to_metric_families(body.decode())}
    assert {
        "gateway_clearing_link_up",
        "gateway_ack_latency_seconds",
        "gateway_lifecycle_state",
    } <= names
    assert all(name.startswith("gateway_") for name in names)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package: prometheus)")
    lint = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


async def test_a_standard_http_client_can_read_every_endpoint(
    port: int, state: HealthState
) -> None:
    state.lifecycle = Lifecycle.READY
    state.checks.update(journal=True, clearing_link=True)

    def fetch(path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as rsp:
            return rsp.status, rsp.read()

    for path in ("/metrics", "/healthz", "/readyz?verbose=1"):
        status, body = await asyncio.to_thread(fetch, path)
        assert status == 200
        assert body


async def test_healthz_reports_business_clock_and_version(state: HealthState) -> None:
    clock = BusinessClock(datetime(2025, 3, 14, 15, 59, 59, tzinfo=SHANGHAI))
    state.info = lambda: {
        "business_clock": clock.now().isoformat(),
        "version": __version__,
        "node": "gw1",
    }
    server = HealthServer(state)
    _, port = await server.start()
    try:
        status, headers, body = await get(port, "/healthz")
    finally:
        await server.close()
    assert status == 200  # alive even while STARTING and not ready
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["status"] == "ok"
    assert doc["version"] == __version__
    assert doc["node"] == "gw1"
    assert datetime.fromisoformat(doc["business_clock"]).utcoffset() is not None
    assert doc["business_clock"].startswith("2025-03-14T15:59:59")


async def test_healthz_default_info_has_version(port: int) -> None:
    status, _, body = await get(port, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "version": __version__}


async def test_healthz_with_a_failing_info_callback_answers_500(
    port: int, state: HealthState
) -> None:
    def broken() -> dict[str, str]:
        raise RuntimeError("/etc/secret/path")

    state.info = broken
    status, _, body = await get(port, "/healthz")
    assert status == 500
    assert b"secret" not in body
    assert json.loads(body) == {"status": "error"}


async def test_readyz_follows_lifecycle_and_checks(port: int, state: HealthState) -> None:
    status, _, body = await get(port, "/readyz")
    assert status == 503
    doc = json.loads(body)
    assert doc == {
        "status": "not_ready",
        "lifecycle": "starting",
        "checks": {"journal": False, "clearing_link": False},
    }
    assert lifecycle_gauge() == {"starting": 1, "ready": 0, "draining": 0, "stopped": 0}

    state.set_check("journal", True)
    state.set_check("clearing_link", True)
    assert (await get(port, "/readyz"))[0] == 503  # checks pass but still STARTING

    state.lifecycle = Lifecycle.READY
    status, _, body = await get(port, "/readyz")
    assert status == 200
    assert json.loads(body)["status"] == "ready"
    assert lifecycle_gauge() == {"starting": 0, "ready": 1, "draining": 0, "stopped": 0}

    state.set_check("clearing_link", False)
    status, _, body = await get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["clearing_link"] is False

    state.set_check("clearing_link", True)
    assert (await get(port, "/readyz"))[0] == 200

    state.lifecycle = Lifecycle.DRAINING
    status, _, body = await get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["lifecycle"] == "draining"
    assert lifecycle_gauge() == {"starting": 0, "ready": 0, "draining": 1, "stopped": 0}
    assert (await get(port, "/healthz"))[0] == 200  # still alive while draining


async def test_an_advisory_dependency_is_reported_but_does_not_gate_readiness(
    port: int, state: HealthState
) -> None:
    """The SWIFT link (docs/foreign-currency.md §4): down, the node still serves the rest."""
    state.set_check("journal", True)
    state.set_check("clearing_link", True)
    state.lifecycle = Lifecycle.READY
    state.set_advisory("swift_link", False)
    status, _, body = await get(port, "/readyz")
    assert status == 200
    assert json.loads(body) == {
        "status": "ready",
        "lifecycle": "ready",
        "checks": {"journal": True, "clearing_link": True},
        "advisory": {"swift_link": False},
    }
    state.set_advisory("swift_link", True)
    assert json.loads((await get(port, "/readyz"))[2])["advisory"] == {"swift_link": True}
    state.set_check("clearing_link", False)  # a real check still gates
    assert (await get(port, "/readyz"))[0] == 503


async def test_a_broken_collector_gives_500_not_a_dead_server(port: int) -> None:
    class Broken:
        def describe(self) -> list[object]:
            return []

        def collect(self) -> list[object]:
            raise RuntimeError("collector bug")

    broken = Broken()
    metrics.REGISTRY.register(broken)  # type: ignore[arg-type]
    try:
        status, _, body = await get(port, "/metrics")
    finally:
        metrics.REGISTRY.unregister(broken)  # type: ignore[arg-type]
    assert status == 500
    assert b"collector bug" not in body
    assert (await get(port, "/metrics"))[0] == 200


async def test_unknown_path_404_and_other_methods_405(port: int) -> None:
    assert (await get(port, "/"))[0] == 404
    assert (await get(port, "/metrics/../etc/passwd"))[0] == 404
    status, headers, _ = await get(port, "/metrics", method="POST")
    assert status == 405
    assert headers["allow"] == "GET"
    assert (await get(port, "/readyz", method="DELETE"))[0] == 405


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /metrics\r\n\r\n",  # no version
        b"GET /metrics FTP/1.0\r\n\r\n",
        b"GET  /metrics HTTP/1.1 extra\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
    ],
)
async def test_malformed_request_line_is_400(port: int, raw: bytes) -> None:
    assert (await exchange(port, raw))[0] == 400


async def test_bare_lf_line_endings_are_tolerated(port: int) -> None:
    assert (await exchange(port, b"GET /healthz HTTP/1.0\nHost: x\n\n"))[0] == 200


async def test_oversized_header_block_is_refused_and_closed(port: int) -> None:
    many = b"GET /metrics HTTP/1.1\r\n" + b"".join(
        f"X-Pad-{i}: {'a' * 100}\r\n".encode() for i in range(100)
    )
    assert len(many) > 8 * 1024
    status, headers, _ = await exchange(port, many + b"\r\n")
    assert status == 431
    assert headers["connection"] == "close"

    # one endless line without a newline: refused without waiting for its end
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /" + b"a" * 20_000)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)  # EOF: the server closed
    writer.close()
    assert data.startswith(b"HTTP/1.1 431 ")


async def read_or_reset(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes; a reset (RST) counts as closed with nothing."""
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return b""


class QuickServer(HealthServer):
    HEAD_TIMEOUT = 0.2
    MAX_CONNECTIONS = 2


class IdleServer(HealthServer):
    HEAD_TIMEOUT = 30.0  # idle peers stay until close() ends them
    MAX_CONNECTIONS = 2


async def test_slow_head_gets_408_and_close(state: HealthState) -> None:
    server = QuickServer(state)
    _, port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # head never ends
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await server.close()
    assert data.startswith(b"HTTP/1.1 408 ")


async def test_connection_cap_and_close_ends_idle_connections(state: HealthState) -> None:
    server = IdleServer(state)
    _, port = await server.start()
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for _, w in idle:
        w.write(b"GET ")
        await w.drain()

    async def both_accepted() -> None:
        # polling a public counter: the server has no event for "accepted"
        while server.connections < 2:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(both_accepted(), 10)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
    assert await read_or_reset(reader) == b""  # refused without an answer
    writer.close()

    await server.close()
    assert server.connections == 0
    for r, w in idle:
        assert await read_or_reset(r) == b""  # ended by close()
        w.close()


async def test_peer_vanishing_mid_request_does_not_hurt_the_server(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metr")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    assert (await get(port, "/healthz"))[0] == 200


async def test_start_twice_is_refused(state: HealthState) -> None:
    server = HealthServer(state)
    await server.start()
    try:
        with pytest.raises(RuntimeError):
            await server.start()
    finally:
        await server.close()
    await server.close()  # idempotent


def test_ready_requires_all_checks() -> None:
    st = HealthState(lifecycle=Lifecycle.READY)
    assert st.ready()  # no checks registered
    st.set_check("journal", False)
    assert not st.ready()
