"""The sd_notify protocol, by hand: readiness, reload, stop and watchdog for systemd.

docs/architecture.md §7 "Operations": ``gatewayd`` runs as ``Type=notify`` with a watchdog
(systemd/gatewayd.service). The protocol is one datagram of ``KEY=VALUE``
lines to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` — an abstract socket
when the name starts with ``@`` (docs/architecture.md §9 "Operations"). Outside systemd the
variable is unset and every call is a cheap no-op returning False.

Errors never propagate: a failing notify must not take the daemon down. The
first failure is logged as a warning, later ones at debug level until a send
succeeds again (the ``sdnotify`` package swallows errors silently; we do not).

Reload (docs/architecture.md §9): ``Type=notify-reload`` needs systemd ≥ 253, so the unit uses
``Type=notify`` with ``ExecReload=kill -HUP``; the daemon still sends
``RELOADING=1`` with ``MONOTONIC_USEC`` when a reload starts and ``READY=1``
when it ends, which newer systemd versions use to track the reload.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

__all__ = [
    "extend_timeout",
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
    "watchdog_ping_period",
]

log = structlog.get_logger(__name__)

_failing = False  # a failure was already logged as a warning


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    if path.startswith("@"):
        return "\0" + path[1:]  # Linux abstract namespace
    return path


def notify(message: str) -> bool:
    """Send one notification datagram; True when it was sent, never raises."""
    global _failing  # noqa: PLW0603 - one process-wide "already warned" flag
    addr = _address()
    if addr is None:
        return False
    if not addr.startswith(("/", "\0")):
        _log_failure("NOTIFY_SOCKET is neither an AF_UNIX path nor an abstract name")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        _log_failure(str(exc))
        return False
    _failing = False
    return True


def _log_failure(error: str) -> None:
    global _failing  # noqa: PLW0603 - see notify()
    if _failing:
        log.debug("sdnotify.failed", error=error)
    else:
        log.warning("sdnotify.failed", error=error)
    _failing = True


def ready(status_text: str | None = None) -> bool:
    """Startup (or a reload) finished: systemd marks the unit active."""
    return notify("READY=1" if status_text is None else f"READY=1\n{_status_line(status_text)}")


def reloading() -> bool:
    """A reload started; send ``ready()`` when it is done (sd_notify(3))."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    """Drain started (SIGTERM): systemd shows the unit as deactivating."""
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Watchdog keep-alive; send every ``watchdog_ping_period()`` seconds."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """Free-form status shown by ``systemctl status`` (one line)."""
    return notify(_status_line(text))


def extend_timeout(seconds: float) -> bool:
    """Ask systemd for more time for the current start/stop/reload step."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")


def _status_line(text: str) -> str:
    # A newline would start another assignment (e.g. a forged READY=1).
    return "STATUS=" + " ".join(text.splitlines())


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds from ``$WATCHDOG_USEC``, or None when off.

    None also when ``$WATCHDOG_PID`` is set to another process (sd_watchdog_enabled(3)):
    the watchdog is then meant for that process, not us. Malformed values mean off.
    """
    usec = _decimal(os.environ.get("WATCHDOG_USEC", ""))
    if usec is None or usec == 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and _decimal(pid) != os.getpid():
        return None
    return usec / 1_000_000


def _decimal(raw: str) -> int | None:
    """A plain unsigned decimal, as systemd writes it (no sign, spaces or ``_``)."""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def watchdog_ping_period() -> float | None:
    """How often to call ``watchdog()``: half the timeout, as sd_watchdog_enabled(3) advises."""
    interval = watchdog_interval()
    return None if interval is None else interval / 2
