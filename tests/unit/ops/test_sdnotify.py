"""sd_notify over real AF_UNIX datagram sockets (path and abstract), watchdog parsing."""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gateway.ops import sdnotify


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "n.sock"
    assert len(str(path)) < 100, "AF_UNIX path too long for this tmp dir"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def nothing_pending(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_ready_sends_exactly_ready(receiver: socket.socket) -> None:
    assert sdnotify.ready() is True
    assert receiver.recv(4096) == b"READY=1"
    assert nothing_pending(receiver)


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"gateway-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready() is True
        assert sock.recv(4096) == b"READY=1"


def test_reloading_carries_monotonic_usec(receiver: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sdnotify.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    msg = receiver.recv(4096).decode()
    m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", msg)
    assert m is not None, msg
    assert before <= int(m.group(1)) <= after


def test_other_messages(receiver: socket.socket) -> None:
    assert sdnotify.stopping()
    assert sdnotify.watchdog()
    assert sdnotify.status("draining: 3 frames in flight")
    assert sdnotify.extend_timeout(2.5)
    assert sdnotify.ready("serving")
    got = [receiver.recv(4096) for _ in range(5)]
    assert got == [
        b"STOPPING=1",
        b"WATCHDOG=1",
        b"STATUS=draining: 3 frames in flight",
        b"EXTEND_TIMEOUT_USEC=2500000",
        b"READY=1\nSTATUS=serving",
    ]


def test_status_cannot_forge_other_assignments(receiver: socket.socket) -> None:
    assert sdnotify.status("bad\nREADY=1\r\nWATCHDOG=1")
    msg = receiver.recv(4096)
    assert b"\n" not in msg
    assert msg.startswith(b"STATUS=")


def test_no_socket_means_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert sdnotify.watchdog() is False


def test_errors_are_logged_once_and_never_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stale socket file: bound once, then its owner went away.
    stale = tmp_path / "gone.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(stale))
    monkeypatch.setattr(sdnotify, "_failing", False)
    with structlog.testing.capture_logs() as logs:
        for target in (str(stale), str(tmp_path / "missing.sock"), "vsock:2:1234"):
            monkeypatch.setenv("NOTIFY_SOCKET", target)
            assert sdnotify.ready() is False
            assert sdnotify.watchdog() is False
    levels = [entry["log_level"] for entry in logs if entry["event"] == "sdnotify.failed"]
    assert levels[0] == "warning"
    assert set(levels[1:]) == {"debug"}


def test_failure_warning_rearms_after_success(
    receiver: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = os.environ["NOTIFY_SOCKET"]
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing.sock"))
        sdnotify.watchdog()
        monkeypatch.setenv("NOTIFY_SOCKET", good)
        assert sdnotify.watchdog()
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing.sock"))
        sdnotify.watchdog()
    assert [e["log_level"] for e in logs if e["event"] == "sdnotify.failed"] == [
        "warning",
        "warning",
    ]


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 30.0),
        ("500000", None, 0.5),
        ("30000000", "self", 30.0),
        ("30000000", "other", None),
        ("30000000", "garbage", None),
        ("0", None, None),
        ("", None, None),
        ("-5", None, None),
        ("1_000", None, None),
        (" 30000000", None, None),
        ("30s", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    elif pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert sdnotify.watchdog_interval() == expected
    period = sdnotify.watchdog_ping_period()
    assert period == (None if expected is None else expected / 2)
