"""Start-up checks, shared by ``gatewayd --check-config`` and the real start.

A configuration that ``--check-config`` passes must not fail at start on
anything the files decide, so both run the same functions here
(docs/operations.md, "Start-up checks"):

1. folders: ``state_dir``, the journal's folder, ``keys.dir``, the archive and
   admin-socket folders exist (or can be created) and are writable;
2. routing data: the directory, the calendars and the operating windows load;
3. keys: every key file is private (mode), a passphrase is present when a key
   is encrypted (``$CREDENTIALS_DIRECTORY`` under systemd, else the variable
   that ``keys.passphrase_env`` names), each certificate matches its key, the
   TLS contexts build, the enrolment registry loads;
4. the desk: schemas, client CAs, CRLs, deny list and signing keys load as a
   worker loads them (``gateway.desk.open_desk``).

``--check-config`` runs 1–4 and changes nothing on disk.  Start runs 1–3 in
the daemon and 4 in every worker (or inline with ``workers.processes = 0``),
then takes the resources that may be down for a while: the journal (SQLite
file or PostgreSQL), the ports, the admin socket.  Those are not checked by
``--check-config``: a running gateway holds its own ports while the next
configuration is checked, and a database that is down now may be up at start.

Every failure is one line that names the key or the file and the cause
(``describe``): configuration and file errors exit EX_CONFIG (78, which the
unit lists in ``RestartPreventExitStatus``), a resource that is down exits
EX_TEMPFAIL (75), so systemd tries again.  The MQTT links are not start-up
resources: they connect and reconnect at run time (docs/clearing-link.md §1)
while CorpLink is served and journaled, and ``/readyz`` reports the link.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import asyncpg
import structlog

from gateway.config import Config
from gateway.errors import ChildStartFailed, ConfigError, Unavailable
from gateway.journal.store import Store
from gateway.keys import files
from gateway.keys.devpki import generate_dev_pki
from gateway.keys.enrolment import Registry
from gateway.keys.revocation import RevocationPolicy
from gateway.keys.ring import KEYED_ROLES, KeyRing, ring_from_config
from gateway.net.tls import server_context
from gateway.routing.calendar_files import CalendarError
from gateway.routing.directory import Directory, DirectoryError
from gateway.workers import WorkerStartError

EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78
#: Linux ``sun_path`` holds 108 bytes including the terminating NUL (unix(7)).
MAX_UNIX_SOCKET_PATH = 107

T = TypeVar("T")

log = structlog.get_logger("gateway.preflight")


# -- 1. folders --------------------------------------------------------------------


def _exists(path: Path, key: str) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # EACCES on an ancestor
        raise ConfigError(f"{key} {path}: cannot look at it ({exc.strerror})") from None


def _probe_writable(folder: Path, where: str) -> None:
    """Create and drop an unnamed file: the one test that holds for root, ACLs and
    read-only mounts alike (``os.access`` says yes to root whatever the mode)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"{where} is not writable ({exc.strerror})") from None


def check_folder(
    path: Path,
    key: str,
    *,
    missing_ok: bool,
    writable: bool = True,
    subject: Path | None = None,
) -> None:
    """``path`` is a (writable) folder; or, with ``missing_ok``, can be created as one.

    ``subject`` is the configured file inside it (the journal, the admin
    socket), named in the message.  Nothing is created: ``--check-config``
    calls this too.
    """
    named = f"{key} {subject or path}"
    folder = named if subject is None else f"{named}: folder {path}"
    if _exists(path, key):
        if not path.is_dir():
            raise ConfigError(f"{folder} is not a folder")
        if writable:
            _probe_writable(path, folder)
        return
    if not missing_ok:
        raise ConfigError(f"{folder} does not exist")
    ancestor = path.parent
    while not _exists(ancestor, key):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{folder} cannot be created: {ancestor} is not a folder")
    _probe_writable(ancestor, f"{folder} cannot be created: {ancestor}")


def make_folder(path: Path, key: str) -> None:
    """Create ``path`` (0700) if it is missing, naming ``key`` when that fails."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"{key} {path}: cannot create the folder ({exc.strerror})") from None


def _check_journal_file(path: Path) -> None:
    if not _exists(path, "journal.path"):
        return
    if not path.is_file():
        raise ConfigError(f"journal.path {path}: not a regular file")
    try:
        with path.open("r+b"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"journal.path {path}: cannot open for writing ({exc.strerror})"
        ) from None


def dev_pki_pending(cfg: Config) -> bool:
    """True when start would generate the dev PKI (``keys.dev_pki`` and none there yet)."""
    return cfg.keys.dev_pki and not (cfg.keys_dir / "client-ca.pem").exists()


def check_folders(cfg: Config, *, create: bool) -> None:
    """Step 1; ``create`` (start only) makes the state folder first."""
    check_folder(cfg.state_path, "state_dir", missing_ok=True)
    if create:
        make_folder(cfg.state_path, "state_dir")
    if cfg.journal.backend == "sqlite":
        # a configured journal's folder is the operator's: never created behind their back
        check_folder(
            cfg.journal_path.parent,
            "journal.path",
            missing_ok=cfg.journal.path is None,
            subject=cfg.journal_path,
        )
        _check_journal_file(cfg.journal_path)
    if cfg.journal.archive_interval > 0:
        check_folder(cfg.archive_path, "journal.archive_dir", missing_ok=True)
    if len(os.fsencode(cfg.admin_socket)) > MAX_UNIX_SOCKET_PATH:
        raise ConfigError(
            f"admin.socket {cfg.admin_socket}: longer than a Unix socket path may be "
            f"({MAX_UNIX_SOCKET_PATH} bytes)"
        )
    check_folder(cfg.admin_socket.parent, "admin.socket", missing_ok=True, subject=cfg.admin_socket)
    if dev_pki_pending(cfg):
        check_folder(cfg.keys_dir, "keys.dir", missing_ok=True)
    else:  # read only: under systemd the key folder may well be read-only
        check_folder(cfg.keys_dir, "keys.dir", missing_ok=False, writable=False)


# -- 2. routing data ---------------------------------------------------------------


def load_directory(cfg: Config) -> Directory:
    try:
        return Directory.load(cfg.routing.directory)
    except DirectoryError as exc:
        raise ConfigError(f"routing.directory: {exc}") from None


def load_router_data(cfg: Config, build: Callable[[Config, Directory], T]) -> T:
    """The directory, then ``build`` (calendars and windows: ``server.build_router``)."""
    directory = load_directory(cfg)
    try:
        return build(cfg, directory)
    except CalendarError as exc:
        raise ConfigError(f"routing.calendars: {exc}") from None


# -- 3. keys -----------------------------------------------------------------------


def load_ring(cfg: Config, *, with_keys: bool = False) -> KeyRing:
    """The key ring as the daemon holds it (certificates; keys checked for mode)."""
    return ring_from_config(
        cfg.keys,
        cfg.keys_dir,
        files.read_passphrase(cfg.keys.passphrase_env),
        require_encrypted=cfg.environment == "production",
        with_keys=with_keys,
    )


def check_passphrase(cfg: Config, ring: KeyRing) -> None:
    """An encrypted key needs a passphrase; say where it is looked for."""
    if files.read_passphrase(cfg.keys.passphrase_env) is not None:
        return
    for role in ring.roles:
        if role not in KEYED_ROLES:
            continue
        for version in ring.versions(role):
            path = version.key_path
            if path is None:
                continue
            try:
                encrypted = files.is_encrypted_pem(path.read_bytes())
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read key file ({exc.strerror})") from None
            if encrypted:
                raise ConfigError(
                    f"{path}: key is encrypted and no passphrase is set: set the environment "
                    f"variable {cfg.keys.passphrase_env} (keys.passphrase_env) or the systemd "
                    f"credential {files.CREDENTIAL_NAME}"
                )


def tls_context(cfg: Config, client_cert: str, ring: KeyRing, now: datetime) -> ssl.SSLContext:
    """A fully built and checked server context for the TLS key active at ``now``."""
    keys = cfg.resolved_keys()
    version = ring.current("tls", now)
    if version.key_path is None:  # pragma: no cover - the tls role always has a key
        raise ConfigError("keys: the tls role has no key")
    verify = client_cert != "none"
    # client certificates are checked against the CRLs read now, under the same
    # revocation policy as request signatures (gateway.keys.revocation)
    return server_context(
        version.cert_path,
        version.key_path,
        client_cert=client_cert,
        client_ca_paths=[keys.path(p) for p in keys.client_ca] if verify else [],
        passphrase=files.read_passphrase(cfg.keys.passphrase_env),
        crl_paths=[keys.path(p) for p in keys.crls] if verify else [],
        revocation=RevocationPolicy(keys.stale_crl_policy) if verify else None,
    )


def listener_contexts(cfg: Config, ring: KeyRing, now: datetime) -> dict[str, ssl.SSLContext]:
    """One server context per TLS listener; errors name the listener."""
    out: dict[str, ssl.SSLContext] = {}
    for i, lc in enumerate(cfg.listeners):
        if not lc.tls:
            continue
        try:
            out[lc.name] = tls_context(cfg, lc.client_cert, ring, now)
        except ConfigError:
            raise
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"listeners[{i}] ({lc.name}): TLS: {exc}") from None
    return out


def load_registry(cfg: Config) -> Registry:
    keys = cfg.resolved_keys()
    return Registry.load(keys.path(keys.enrolment))


# -- steps 1-3 together --------------------------------------------------------------


def prepare_files(
    cfg: Config, build_router: Callable[[Config, Directory], T], *, create: bool
) -> T:
    """Steps 1 and 2.  ``create`` (start): make the state folder and generate the
    dev PKI when due; without it (``--check-config``) nothing is written."""
    check_folders(cfg, create=create)
    router = load_router_data(cfg, build_router)
    if create and dev_pki_pending(cfg):
        log.warning("generating_dev_pki", dir=str(cfg.keys_dir))
        generate_dev_pki(cfg.keys_dir)
    return router


@dataclass(frozen=True)
class Prepared:
    """What step 3 loaded and start keeps (``--check-config`` drops it)."""

    ring: KeyRing
    registry: Registry
    tls: dict[str, ssl.SSLContext]


def prepare_keys(cfg: Config, now: datetime) -> Prepared:
    """Step 3: the ring (modes, passphrase), the TLS contexts, the registry."""
    ring = load_ring(cfg)
    check_passphrase(cfg, ring)
    contexts = listener_contexts(cfg, ring, now)
    return Prepared(ring, load_registry(cfg), contexts)


# -- start-only resources ------------------------------------------------------------


async def open_journal(cfg: Config, store: Store) -> None:
    """Start the journal; a failure names ``journal.path`` or ``journal.dsn``.

    PostgreSQL refusing us (authentication, unknown database, privileges, a bad
    DSN) is configuration; a server that cannot be reached is down for now.
    """
    try:
        await store.start()
    except sqlite3.Error as exc:
        msg = f"journal.path {cfg.journal_path}: cannot open the journal ({exc})"
        if "locked" in str(exc) or "busy" in str(exc):
            raise Unavailable(msg) from None
        raise ConfigError(msg) from None
    except (
        asyncpg.InvalidAuthorizationSpecificationError,
        asyncpg.InvalidCatalogNameError,
        asyncpg.InsufficientPrivilegeError,
        asyncpg.ClientConfigurationError,
        ValueError,
    ) as exc:
        raise ConfigError(f"journal.dsn {cfg.journal.dsn}: {_first_line(exc)}") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Unavailable(
            f"journal.dsn {cfg.journal.dsn}: database unreachable ({_first_line(exc)})"
        ) from None


async def bind(key: str, host: str, port: int, start: Callable[[], Awaitable[T]]) -> T:
    """Run ``start`` (a server's bind); a failure names ``key`` and the address."""
    try:
        return await start()
    except OSError as exc:
        raise bind_error(key, f"{host}:{port}", exc) from None


def bind_error(key: str, where: str, exc: OSError) -> Exception:
    """A port in use or an address not (yet) there may heal (75); the rest is configuration."""
    if isinstance(exc, socket.gaierror):
        return ConfigError(f"{key} {where}: unknown host ({exc.strerror})")
    if exc.errno == errno.EADDRINUSE:
        return Unavailable(f"{key} {where}: address already in use")
    if exc.errno == errno.EADDRNOTAVAIL:
        return Unavailable(f"{key} {where}: address not available on this host")
    if exc.errno == errno.EACCES:
        return ConfigError(
            f"{key} {where}: permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)"
        )
    return ConfigError(f"{key} {where}: {exc.strerror or exc}")


# -- one line, one status ------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def describe(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one line ``gatewayd`` prints for a start-up failure."""
    if isinstance(exc, ConfigError):
        return EX_CONFIG, f"configuration error: {_first_line(exc)}"
    if isinstance(exc, Unavailable):
        return EX_TEMPFAIL, f"temporarily unavailable: {_first_line(exc)}"
    if isinstance(exc, ChildStartFailed):
        return exc.status, _first_line(exc)
    if isinstance(exc, WorkerStartError):
        return EX_TEMPFAIL, f"cannot start: {_first_line(exc)}"
    return EX_SOFTWARE, f"cannot start: {type(exc).__name__}: {_first_line(exc)}"
