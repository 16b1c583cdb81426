"""Helpers for tests and benchmarks: a private PostgreSQL server on a free port.

Like :mod:`gateway.testing` does for mosquitto, tests never use the machine's
own PostgreSQL on 5432: each session starts its own server from the Debian
binaries (``/usr/lib/postgresql/<version>/bin``) in a fresh temp folder,
listening on 127.0.0.1 and a free port only, with its unix socket in that
folder, ``fsync = on`` (the durability tests lean on it) and trust
authentication for local connections.  Nothing is left behind: ``stop()``
shuts the server down (``pg_ctl stop -m fast``) and removes the folder.

PostgreSQL refuses to run as root, so when the tests run as root the server
runs as the ``postgres`` OS user (``runuser -u postgres --``), which the
Debian package creates; the temp folder is handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from gateway.testing import free_port

MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
    "(Debian: apt-get install postgresql)"
)
SUPERUSER = "postgres"
"""The database superuser the private server is created with (trust auth, no password)."""

_START_ATTEMPTS = 3
_PG_DIR = Path("/usr/lib/postgresql")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def pg_bindir() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``; a clear error naming the package when missing.

    Order: ``$GATEWAY_PG_BINDIR``, then ``pg_config --bindir`` (if it holds the
    server tools: Debian's ``pg_config`` may come from libpq-dev alone), then the
    newest ``/usr/lib/postgresql/*/bin``, then ``initdb`` on ``PATH``.
    """
    candidates: list[Path] = []
    if env := os.environ.get("GATEWAY_PG_BINDIR"):
        candidates.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(_PG_DIR.glob("*/bin"), key=_version_key, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "pg_ctl").is_file():
            return cand
    raise RuntimeError(MISSING)


def _as_server_user(argv: Sequence[str]) -> list[str]:
    """PostgreSQL will not run as root: run its tools as the ``postgres`` OS user then."""
    if os.geteuid() != 0:
        return list(argv)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root needs runuser (Debian: util-linux) to start PostgreSQL")
    return [runuser, "-u", SUPERUSER, "--", *argv]


def _run(argv: Sequence[str], *, timeout: float = 120) -> None:
    proc = subprocess.run(
        _as_server_user(argv), capture_output=True, text=True, check=False, timeout=timeout
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-800:]
        raise RuntimeError(f"{Path(argv[0]).name} failed ({proc.returncode}): {detail}")


@dataclass
class PgServer:
    """A running private PostgreSQL server."""

    bindir: Path
    root: Path  # the temp folder: data/, the socket and the log
    host: str
    port: int
    _stopped: bool = field(default=False, repr=False)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg DSN for ``database`` over TCP on 127.0.0.1 (trust auth)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        """Start (or start again, same data and port) and wait until it accepts connections."""
        _run(
            [str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.datadir),
             "-l", str(self.log_path)]
        )  # fmt: skip
        self._stopped = False

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``: ``fast`` is a clean shutdown, ``immediate`` a crash
        (no checkpoint: the next start replays the WAL, so only fsynced commits survive)."""
        if self._stopped or not self.datadir.exists():
            return
        try:
            _run([str(self.bindir / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.datadir)])
        except RuntimeError:
            if (self.datadir / "postmaster.pid").exists():
                raise
        self._stopped = True

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop("fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _configure(datadir: Path, root: Path, host: str, port: int) -> None:
    settings = {
        "listen_addresses": f"'{host}'",
        "port": str(port),
        "unix_socket_directories": f"'{root}'",
        "fsync": "on",  # the durability tests depend on it
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "max_connections": "200",
        "timezone": "'UTC'",
        "log_timezone": "'UTC'",
        "logging_collector": "off",
    }
    with (datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# gateway.testing_pg\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    (datadir / "pg_hba.conf").write_text(
        "# gateway.testing_pg: a private test server, trust for local connections only\n"
        "local all all trust\n"
        f"host all all {host}/32 trust\n",
        encoding="utf-8",
    )


def start_postgres(*, host: str = "127.0.0.1", base: Path | None = None) -> PgServer:
    """initdb a fresh cluster in a new temp folder and start it on a free port.

    ``base`` is where the temp folder is made (default: the system temp
    folder); as root it must be reachable by the ``postgres`` user, which is
    why pytest's 0700 ``tmp_path`` is not used.
    """
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="gateway-pg-", dir=base))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, SUPERUSER, SUPERUSER)
        datadir = root / "data"
        _run(
            [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER, "-E", "UTF8",
             "--locale=C", "--auth=trust", "--no-instructions"]
        )  # fmt: skip
        last: RuntimeError | None = None
        for _ in range(_START_ATTEMPTS):  # the free port may be taken before we bind it
            port = free_port(host)
            _configure(datadir, root, host, port)
            server = PgServer(bindir=bindir, root=root, host=host, port=port)
            try:
                server.start()
            except RuntimeError as exc:
                last = RuntimeError(f"{exc}\n{server.log_tail(800)}")
                time.sleep(0.1)
                continue
            return server
        raise last or RuntimeError("PostgreSQL did not start")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


@contextlib.contextmanager
def running_postgres(*, base: Path | None = None) -> Iterator[PgServer]:
    """Context manager form of :func:`start_postgres` that always stops and removes it."""
    server = start_postgres(base=base)
    try:
        yield server
    finally:
        server.destroy()


async def create_database(server: PgServer, name: str | None = None) -> str:
    """A new, empty database on ``server`` (``name``, or a random one); returns its DSN."""
    name = name or f"gw_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.dsn(name)
