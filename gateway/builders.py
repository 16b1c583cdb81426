"""The daemon's parts built from its configuration: clock, journal, router, desk setup.

Shared by the core (``gateway.server``) and the front processes
(``gateway.procs.front``), so both build the same objects from the same
``Config`` (docs/architecture.md §1).
"""

from __future__ import annotations

import socket
import ssl
from datetime import datetime

from gateway.clock import BusinessClock, Clock, SystemClock
from gateway.config import Config, ListenerConfig, windows_spec
from gateway.desk import DeskSetup
from gateway.journal.postgres import PostgresStore
from gateway.journal.sqlite import SqliteStore
from gateway.journal.store import Store
from gateway.keys import files
from gateway.keys.trust import read_deny_list
from gateway.model import Engine
from gateway.net.listener import ListenerSpec
from gateway.paths import corplink_schema_path
from gateway.pipeline import PipelineSettings
from gateway.routing.calendar import WorkCalendar
from gateway.routing.calendar_files import load_calendars
from gateway.routing.currencies import CurrencyTable
from gateway.routing.directory import Directory
from gateway.routing.fx import FxSettings
from gateway.routing.router import BankIdentity, Router, RoutingPolicy
from gateway.routing.settlement_paths import Correspondents, RmaDirectory
from gateway.routing.windows import EngineSchedule, parse_schedules


def build_clock(cfg: Config) -> Clock:
    """The real clock, or the business clock of a test environment (docs/routing-rules.md §4)."""
    if cfg.clock.start:
        return BusinessClock(datetime.fromisoformat(cfg.clock.start), cfg.clock.rate)
    return SystemClock()


def read_passphrase(cfg: Config) -> bytes | None:
    """systemd credential first, then the environment; never the config file (docs/architecture.md
    §7 Keys)."""
    return files.read_passphrase(cfg.keys.passphrase_env)


def desk_setup(cfg: Config) -> DeskSetup:
    k = cfg.resolved_keys()
    deny = k.path(k.deny_list) if k.deny_list else None
    return DeskSetup(
        schema_path=corplink_schema_path(),
        client_ca=tuple(k.path(p) for p in k.client_ca),
        crls=tuple(k.path(p) for p in k.crls),
        deny_list=deny if deny is not None and deny.exists() else None,
        enrolment=k.path(k.enrolment),
        keys=k,
        keys_dir=cfg.keys_dir,
        usbkey_oids=frozenset(k.usbkey_policy_oids),
        file_oids=frozenset(k.file_policy_oids),
        stale_crl_policy=k.stale_crl_policy,
        passphrase=read_passphrase(cfg),
        require_encrypted=cfg.environment == "production",
        pain001_xsd_dir=cfg.codec.pain001_xsd_dir,
        currencies=tuple(cfg.fx.currencies.items()) if cfg.fx.enabled and cfg.bank.bics else None,
    )


def read_denied(cfg: Config) -> frozenset[str]:
    """The deny list's fingerprints (empty when none is configured or the file is absent)."""
    k = cfg.resolved_keys()
    deny = k.path(k.deny_list) if k.deny_list else None
    return read_deny_list(deny) if deny is not None and deny.exists() else frozenset()


def build_store(cfg: Config) -> Store:
    """The journal backend named by ``journal.backend`` (docs/architecture.md §7 "Storage")."""
    if cfg.journal.backend == "postgres":
        return PostgresStore(
            cfg.journal.dsn,
            node=cfg.bank.node,
            pool_size=cfg.journal.pool_size,
            lease=cfg.journal.lease,
        )
    return SqliteStore(cfg.journal_path, node=cfg.bank.node, max_batch=cfg.journal.max_batch)


def build_router(cfg: Config, directory: Directory | None = None) -> Router:
    bank = BankIdentity(
        class_code=cfg.bank.class_code,
        participant=cfg.bank.participant,
        internal_type=cfg.bank.internal_type,
    )
    policy = RoutingPolicy(
        credit_limit=cfg.routing.credit_limit,
        holiday_credit_limit=cfg.routing.holiday_credit_limit,
        hold_policy={
            Engine.INTRA: cfg.engines.intra.hold_policy,
            Engine.HVPS: cfg.engines.hvps.hold_policy,
            Engine.BEPS: cfg.engines.beps.hold_policy,
        },
    )
    return Router(
        bank,
        directory or Directory.load(cfg.routing.directory),
        build_calendar(cfg),
        schedules=build_schedules(cfg),
        policy=policy,
        fx=build_fx(cfg),
    )


def build_fx(cfg: Config) -> FxSettings | None:
    """The foreign-currency routing data (docs/foreign-currency.md §2-§3), or None when
    ``bank.bics`` is empty (a bank without BICs takes CNY only).

    Built inside :func:`build_router`, so the settlement-path files are read
    and refused together with the directory and the calendars on a reload; a
    bad file raises ``DirectoryError`` naming the file, line and column.
    """
    if not cfg.bank.bics:
        return None
    currencies = CurrencyTable(cfg.fx.currencies)
    return FxSettings(
        bics=cfg.bank.bics,
        currencies=currencies,
        correspondents=Correspondents.load(cfg.routing.correspondents, currencies),
        rma=RmaDirectory.load(cfg.routing.rma),
        default_cutoff=cfg.fx.default_cutoff,
        hold_policy=cfg.engines.swift.hold_policy,
    )


def build_calendar(cfg: Config) -> WorkCalendar:
    """The working-day calendar of ``routing.calendars`` (weekdays only when none is set)."""
    return load_calendars(cfg.routing.calendars) if cfg.routing.calendars else WorkCalendar()


def build_schedules(cfg: Config) -> dict[Engine, EngineSchedule]:
    """``[windows]`` as schedules; the BEPS cutoff comes from ``engines.beps.cutoff``."""
    return parse_schedules(windows_spec(cfg))


def pipeline_settings(cfg: Config) -> PipelineSettings:
    """The pipeline's limits from ``[security]`` and ``[load]``."""
    return PipelineSettings(
        send_time_window=cfg.security.send_time_window,
        max_pending=cfg.load.max_pending,
        max_journal_backlog=cfg.load.max_journal_backlog,
    )


def listener_spec(
    lc: ListenerConfig, ctx: ssl.SSLContext | None, sock: socket.socket | None = None
) -> ListenerSpec:
    """One ``[[listeners]]`` entry as the listener takes it (``sock``: a front's inherited
    socket, docs/architecture.md §1)."""
    return ListenerSpec(
        name=lc.name,
        host=lc.bind,
        port=lc.port,
        ssl=ctx,
        max_body=lc.max_body,
        handshake_timeout=lc.handshake_timeout,
        frame_timeout=lc.frame_timeout,
        idle_timeout=lc.idle_timeout,
        max_inflight=lc.max_inflight,
        max_connections=lc.max_connections,
        sock=sock,
    )
