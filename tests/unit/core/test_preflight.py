"""gateway.preflight and the config's enum-like keys, below the daemon (the daemon
itself: tests/integration/test_startup_failures.py)."""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from gateway import preflight
from gateway.config import Config, load_config
from gateway.errors import ConfigError, Unavailable
from gateway.workers import WorkerStartError


def overlay(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ('environment = "prod"\n', "environment", '"production", "test" or "demo"'),
        ("[journal]\nbackend = 1\n", "journal.backend", '"sqlite" or "postgres"'),
        ('[observability]\nlog_level = "verbose"\n', "observability.log_level", '"critical"'),
        ('[observability]\nlog_format = "text"\n', "observability.log_format", '"console"'),
        ('[engines.hvps]\nhold_policy = "queue"\n', "engines.hvps.hold_policy", '"reject"'),
        ('[keys]\nstale_crl_policy = "open"\n', "keys.stale_crl_policy", '"fail_open"'),
        (
            '[[listeners]]\nname = "a"\nclient_cert = true\n',
            "listeners[0].client_cert",
            '"none", "optional" or "required"',
        ),
        (
            '[windows.hvps]\nsessions = [{ open = "09:00", close = "17:00", days = "weekdays" }]\n',
            "windows.hvps.sessions[0].days",
            '"working" or "every"',
        ),
    ],
)
def test_enum_like_keys_list_their_values(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overlay(tmp_path, text))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'gw.toml'}: {key} must be one of "), msg
    assert allowed in msg


def test_windows_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"windows\.intra\.profile: hvps-2018 is not a sched"):
        load_config(overlay(tmp_path, '[windows.intra]\nprofile = "hvps-2018"\n'))
    cfg = load_config(overlay(tmp_path, '[windows.hvps]\nprofile = "hvps-2018"\n'))
    assert cfg.windows.hvps.profile == "hvps-2018"


# -- folders --------------------------------------------------------------------


def test_folder_checks(tmp_path: Path) -> None:
    preflight.check_folder(tmp_path, "state_dir", missing_ok=False)
    preflight.check_folder(tmp_path / "a" / "b", "state_dir", missing_ok=True)
    assert not (tmp_path / "a").exists()  # checked, not created
    with pytest.raises(ConfigError, match=r"^keys\.dir .*/nope does not exist$"):
        preflight.check_folder(tmp_path / "nope", "keys.dir", missing_ok=False)
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match=r"f/x cannot be created: .*/f is not a folder$"):
        preflight.check_folder(tmp_path / "f" / "x", "state_dir", missing_ok=True)
    with pytest.raises(ConfigError, match=r"^state_dir .*/f is not a folder$"):
        preflight.check_folder(tmp_path / "f", "state_dir", missing_ok=True)
    sock = tmp_path / "f" / "admin.sock"
    with pytest.raises(ConfigError, match=r"^admin\.socket .*admin\.sock: folder .*/f is not a"):
        preflight.check_folder(sock.parent, "admin.socket", missing_ok=True, subject=sock)


def test_read_only_mount_is_not_writable(tmp_path: Path) -> None:
    """/proc is read-only for everyone, root included: the probe, not the mode, decides."""
    proc = Path("/proc/self")
    if not proc.is_dir():
        pytest.skip("no /proc")
    with pytest.raises(ConfigError, match=r"is not writable"):
        preflight.check_folder(proc, "state_dir", missing_ok=False)
    preflight.check_folder(proc, "keys.dir", missing_ok=False, writable=False)


def test_check_writes_nothing_and_start_creates_the_state_folder(tmp_path: Path) -> None:
    cfg = load_config(None, {"state_dir": str(tmp_path / "state")})
    preflight.check_folders(cfg, create=False)
    assert not (tmp_path / "state").exists()
    preflight.check_folders(cfg, create=True)
    assert (tmp_path / "state").is_dir()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_admin_socket_path_too_long(tmp_path: Path) -> None:
    sock = tmp_path / ("s" * 120) / "admin.sock"
    cfg = load_config(None, {"state_dir": str(tmp_path), "admin": {"socket": str(sock)}})
    with pytest.raises(ConfigError, match=r"^admin\.socket .*: longer than a Unix socket path"):
        preflight.check_folders(cfg, create=False)


def test_journal_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    cfg = load_config(None, {"state_dir": str(tmp_path), "journal": {"path": str(tmp_path / "j")}})
    with pytest.raises(ConfigError, match=r"^journal\.path .*/j: not a regular file$"):
        preflight.check_folders(cfg, create=False)


# -- resources and the one line ---------------------------------------------------


def test_bind_errors() -> None:
    in_use = OSError(errno.EADDRINUSE, "address already in use")
    assert isinstance(preflight.bind_error("k", "h:1", in_use), Unavailable)
    gone = OSError(errno.EADDRNOTAVAIL, "cannot assign requested address")
    assert isinstance(preflight.bind_error("k", "h:1", gone), Unavailable)
    denied = preflight.bind_error(
        "listeners[0] (tls)", "0.0.0.0:443", PermissionError(errno.EACCES, "x")
    )
    assert isinstance(denied, ConfigError)
    assert "CAP_NET_BIND_SERVICE" in str(denied)
    unknown = preflight.bind_error(
        "k", "nohost:1", socket.gaierror(-2, "Name or service not known")
    )
    assert isinstance(unknown, ConfigError)


class FailingStore:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def start(self) -> None:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (sqlite3.OperationalError("unable to open database file"), ConfigError),
        (sqlite3.OperationalError("database is locked"), Unavailable),
        (ConnectionRefusedError(111, "Connect call failed"), Unavailable),
        (TimeoutError(), Unavailable),
        (asyncpg.CannotConnectNowError("the database system is starting up"), Unavailable),
        (asyncpg.InvalidPasswordError("password authentication failed"), ConfigError),
        (asyncpg.InvalidCatalogNameError('database "gw" does not exist'), ConfigError),
        (asyncpg.ClientConfigurationError("invalid DSN"), ConfigError),
    ],
)
async def test_journal_failures_are_named_and_classified(
    exc: BaseException, kind: type[Exception]
) -> None:
    cfg = load_config(None, {"journal": {"dsn": "postgresql://gw@db1/gw"}})
    with pytest.raises(kind) as err:
        await preflight.open_journal(cfg, FailingStore(exc))  # type: ignore[arg-type]
    assert "journal." in str(err.value)
    assert "\n" not in str(err.value)


def test_describe() -> None:
    assert preflight.describe(ConfigError("a\nb")) == (78, "configuration error: a")
    assert preflight.describe(Unavailable("db down"))[0] == 75
    assert preflight.describe(WorkerStartError("died"))[0] == 75
    status, line = preflight.describe(RuntimeError("boom"))
    assert (status, line) == (70, "cannot start: RuntimeError: boom")


def test_demo_default_leaves_its_keys_to_start(tmp_path: Path) -> None:
    """The embedded default (demo): the dev PKI is due, so the keys wait for start."""
    cfg: Config = load_config(None, {"state_dir": str(tmp_path / "s")})
    assert preflight.dev_pki_pending(cfg)
