"""One frozen, typed configuration tree loaded from TOML (docs/architecture.md §8, habit 2).

``conf/gateway.toml`` documents every key and is the embedded default.  A
file given with ``--config`` is an overlay: its tables merge into the
defaults, its arrays replace them.  Unknown keys and wrong types are errors
that name the key and the file.  Relative paths resolve against the folder of
the file that names them, except ``keys.*`` file names, which resolve against
``keys.dir`` (so a key folder can be swapped as a whole).

Live objects (SSL contexts, key rings, directory tables) are built from this
tree by factories in ``gateway.server`` after validation, never here.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from gateway.errors import ConfigError
from gateway.net.admission import AdmissionConfig
from gateway.paths import default_config_path
from gateway.routing.currencies import DEFAULT_MINOR_UNITS, CurrencyTable
from gateway.routing.fx import DEFAULT_CUTOFF
from gateway.routing.settlement_paths import SWIFT_OPENING, bic8, is_bic
from gateway.routing.windows import parse_schedules
from gateway.screening.settings import ScreeningSettings

# Keys that take one of a few words: a wrong value is refused at load with the
# list of allowed words (``_convert``), never found later at start.
Environment = Literal["production", "test", "demo"]
ClientCert = Literal["none", "optional", "required"]
HoldPolicy = Literal["hold", "reject"]
StaleCrlPolicy = Literal["fail_closed", "fail_open"]
JournalBackend = Literal["sqlite", "postgres"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["json", "console"]
SessionDays = Literal["working", "every"]

ENVIRONMENTS: tuple[str, ...] = typing.get_args(Environment)


@dataclass(frozen=True)
class BankConfig:
    """Our own bank (docs/routing-rules.md §3)."""

    class_code: str = "103"
    participant: str = "103100000019"
    internal_type: str = "10"
    node: str = "A"
    bics: tuple[str, ...] = ()
    """Our SWIFT BICs, the first the one we send under (docs/foreign-currency.md §2);
    empty: the bank takes CNY only."""


@dataclass(frozen=True)
class ListenerConfig:
    """One CorpLink listener (docs/protocol.md §1)."""

    name: str = "tls"
    bind: str = "127.0.0.1"
    port: int = 7443
    tls: bool = True
    client_cert: ClientCert = "optional"
    max_body: int = 1_048_576
    handshake_timeout: float = 10.0
    frame_timeout: float = 30.0
    idle_timeout: float = 300.0
    max_inflight: int = 32
    max_connections: int = 10_000


@dataclass(frozen=True)
class WorkersConfig:
    processes: int = 2
    """Worker processes for the core's CPU stages (0: in the core's event loop)."""
    fronts: int = 0
    """Front processes serving the client connections (0: the core serves them itself,
    the single-process mode; docs/architecture.md §1)."""


@dataclass(frozen=True)
class ClockConfig:
    start: str = ""
    rate: float = 1.0


@dataclass(frozen=True)
class SecurityConfig:
    send_time_window: float = 300.0


@dataclass(frozen=True)
class KeysConfig:
    """Key material; file names resolve against ``dir``."""

    dev_pki: bool = False
    dir: Path | None = None
    client_ca: tuple[str, ...] = ("client-ca.pem",)
    crls: tuple[str, ...] = ("client-crl.pem",)
    deny_list: str = "deny-list.txt"
    enrolment: str = "enrolment.toml"
    response_key: str = "gateway-response.key"
    response_cert: str = "gateway-response.pem"
    clearing_key: str = "gateway-clearing.key"
    clearing_cert: str = "gateway-clearing.pem"
    clearing_peer_certs: tuple[str, ...] = ("clearing-system.pem",)
    # the bank's SWIFT interface (docs/foreign-currency.md §4); the dev PKI's clearing
    # system stands in for it, so the default pins the same certificate
    swift_peer_certs: tuple[str, ...] = ("clearing-system.pem",)
    tls_cert: str = "server.pem"
    tls_key: str = "server.key"
    ring: str = "ring.toml"
    passphrase_env: str = "GATEWAY_KEY_PASSPHRASE"
    usbkey_policy_oids: tuple[str, ...] = ("1.3.6.1.4.1.99999.1.1",)
    file_policy_oids: tuple[str, ...] = ("1.3.6.1.4.1.99999.1.2",)
    stale_crl_policy: StaleCrlPolicy = "fail_closed"

    def path(self, name: str) -> Path:
        """A key file name resolved against ``dir``."""
        p = Path(name)
        if p.is_absolute() or self.dir is None:
            return p
        return self.dir / p


@dataclass(frozen=True)
class JournalConfig:
    backend: JournalBackend = "sqlite"
    path: Path | None = None
    max_batch: int = 512
    dsn: str = ""
    pool_size: int = 10
    lease: float = 30.0
    retention_days: int = 400
    archive_dir: Path | None = None
    archive_interval: float = 3600.0
    archive_batch: int = 500
    audit_interval: float = 86400.0


@dataclass(frozen=True)
class RoutingConfig:
    directory: Path = Path("routing/directory.csv")
    calendars: Path | None = None
    max_drop_ratio: float = 0.10
    credit_limit: Decimal = Decimal("50000.00")
    holiday_credit_limit: Decimal | None = None
    correspondents: Path = Path("routing/correspondents.csv")
    rma: Path = Path("routing/rma.csv")


class FrozenTable(dict[str, int]):
    """A read-only TOML table of numbers (``fx.currencies``).

    Not a ``MappingProxyType``: the configuration travels to the front
    processes by pickle, and stays hashable like the rest of the tree.
    """

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type[FrozenTable], tuple[dict[str, int]]]:
        return (type(self), (dict(self),))

    def _read_only(self, *_args: object, **_kwargs: object) -> typing.NoReturn:
        raise TypeError("the configuration is read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only


def _default_currencies() -> Mapping[str, int]:
    return FrozenTable(DEFAULT_MINOR_UNITS)


@dataclass(frozen=True)
class FxConfig:
    """Foreign currencies (docs/foreign-currency.md §2): the accepted ISO 4217 codes with
    their minor units, and the SWIFT cutoff of a currency without a correspondent."""

    currencies: Mapping[str, int] = field(default_factory=_default_currencies)
    default_cutoff: time = DEFAULT_CUTOFF
    enabled: bool = True
    """Accept foreign-currency payments at all.  On as shipped: screening runs on the
    request path (docs/foreign-currency.md §5), and without a screening list a
    foreign-currency payment is refused 2006, never sent unscreened."""


@dataclass(frozen=True)
class SessionConfig:
    """One acceptance session of an engine (docs/routing-rules.md §4)."""

    open: str
    close: str
    days: SessionDays = "working"


@dataclass(frozen=True)
class WindowConfig:
    """An engine's operating window: a named profile or a list of sessions."""

    profile: str = ""
    sessions: tuple[SessionConfig, ...] = ()

    def as_spec(self) -> dict[str, object]:
        if self.profile:
            return {"profile": self.profile}
        if self.sessions:
            return {
                "sessions": [
                    {"open": s.open, "close": s.close, "days": s.days} for s in self.sessions
                ]
            }
        return {}


@dataclass(frozen=True)
class WindowsConfig:
    intra: WindowConfig = field(default_factory=WindowConfig)
    hvps: WindowConfig = field(default_factory=WindowConfig)
    beps: WindowConfig = field(default_factory=WindowConfig)


@dataclass(frozen=True)
class EngineConfig:
    """Per-engine window policy and outbound throttle (docs/routing-rules.md §4, §6)."""

    hold_policy: HoldPolicy = "hold"
    rate: float = 500.0
    max_inflight: int = 500
    release_rate: float = 200.0


@dataclass(frozen=True)
class BepsConfig(EngineConfig):
    max_items: int = 1000
    max_wait: float = 2.0
    cutoff: time = time(16, 0)


@dataclass(frozen=True)
class EnginesConfig:
    intra: EngineConfig = field(default_factory=EngineConfig)
    hvps: EngineConfig = field(default_factory=EngineConfig)
    beps: BepsConfig = field(default_factory=BepsConfig)
    swift: EngineConfig = field(default_factory=EngineConfig)


@dataclass(frozen=True)
class ClearingConfig:
    """The MQTT clearing link (docs/clearing-link.md §1)."""

    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "clearing"
    client_id: str = ""
    shared: bool = False
    session_expiry: int = 86_400
    receipt_timeout: float = 60.0
    publish_timeout: float = 10.0
    max_inflight: int = 100


@dataclass(frozen=True)
class SwiftConfig:
    """The SWIFT link (docs/foreign-currency.md §4): MQTT like the clearing link, own session."""

    enabled: bool = True  # runs only when bank.bics names our BIC
    broker: str = ""  # empty: the clearing broker (clearing.url)
    topic_prefix: str = "swift"
    client_id: str = ""  # empty: the clearing link's client id + "-swift"
    session_expiry: int = 86_400
    receipt_timeout: float = 60.0


@dataclass(frozen=True)
class CoreConfig:
    """The core banking link (docs/clearing-link.md §5): balances and account checks over MQTT 5."""

    enabled: bool = True
    url: str = ""  # empty: the clearing broker (clearing.url)
    request_topic: str = "core/req"
    response_prefix: str = "core/rsp"
    timeout: float = 3.0
    recheck_interval: float = 30.0  # an incoming credit's next AcctCheck after no answer
    max_checks: int = 20  # concurrent account checks of incoming credits


@dataclass(frozen=True)
class ObservabilityConfig:
    metrics_bind: str = "127.0.0.1"
    metrics_port: int = 9464
    log_level: LogLevel = "info"
    log_format: LogFormat = "json"


@dataclass(frozen=True)
class CodecConfig:
    """Optional official schemas for payloads the gateway also checks by its own rules."""

    pain001_xsd_dir: Path | None = None


@dataclass(frozen=True)
class LoadConfig:
    """Global load shedding (5002, nothing journaled; docs/architecture.md §7, principle 4)."""

    max_pending: int = 2_000
    max_journal_backlog: int = 5_000
    max_body_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class AdminConfig:
    """The admin socket (gateway.ops.admin): where, and the operators' group that may use it."""

    socket: Path | None = None
    group: str = "gateway-ops"


@dataclass(frozen=True)
class DraftsConfig:
    """Bank drafts (docs/bank-drafts.md): where their INTRA messages go, the province.

    ``centre`` is the clearing centre's code, the ``Rcvr`` of every draft
    message (empty: our own participant code, the head office that runs the
    centre).  ``province_areas`` are the 4-digit areas (a code's ``YYYY``)
    inside our province, for the ``SC`` check (empty: our participant's own).
    ``interval``: seconds between the outbound passes when nothing wakes them.
    """

    centre: str = ""
    province_areas: tuple[str, ...] = ()
    interval: float = 5.0


@dataclass(frozen=True)
class Config:
    """The whole configuration tree."""

    environment: Environment = "production"
    state_dir: Path | None = None
    bank: BankConfig = field(default_factory=BankConfig)
    listeners: tuple[ListenerConfig, ...] = ()
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    fx: FxConfig = field(default_factory=FxConfig)
    engines: EnginesConfig = field(default_factory=EnginesConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    clearing: ClearingConfig = field(default_factory=ClearingConfig)
    swift: SwiftConfig = field(default_factory=SwiftConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    load: LoadConfig = field(default_factory=LoadConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    drafts: DraftsConfig = field(default_factory=DraftsConfig)
    screening: ScreeningSettings = field(default_factory=ScreeningSettings)
    sources: tuple[str, ...] = ()

    # -- derived values --------------------------------------------------
    @property
    def state_path(self) -> Path:
        """The state folder: configured, else $STATE_DIRECTORY (systemd), else ./gateway-state.

        ``gatewayd`` refuses to start on the last (``gateway.cli.gatewayd``); the
        fallback only names where ``gatewayctl`` without ``--config`` looks.
        """
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("STATE_DIRECTORY")
        return Path(env.split(":")[0]) if env else Path("gateway-state").resolve()

    @property
    def journal_path(self) -> Path:
        return self.journal.path or self.state_path / "journal.sqlite3"

    @property
    def archive_path(self) -> Path:
        return self.journal.archive_dir or self.state_path / "archive"

    @property
    def keys_dir(self) -> Path:
        return self.keys.dir or self.state_path / "pki"

    @property
    def admin_socket(self) -> Path:
        """Configured, else in systemd's RuntimeDirectory ($RUNTIME_DIRECTORY), else state_dir."""
        if self.admin.socket is not None:
            return self.admin.socket
        env = os.environ.get("RUNTIME_DIRECTORY")
        return Path(env.split(":")[0]) / "admin.sock" if env else self.state_path / "admin.sock"

    @property
    def client_id(self) -> str:
        return self.clearing.client_id or f"gateway-{self.bank.node}"

    @property
    def swift_enabled(self) -> bool:
        """The SWIFT link runs: foreign currency and the link enabled, and the bank has a BIC
        (docs/foreign-currency.md §2)."""
        return self.fx.enabled and self.swift.enabled and bool(self.bank.bics)

    @property
    def swift_client_id(self) -> str:
        return self.swift.client_id or f"{self.client_id}-swift"

    @property
    def swift_broker(self) -> str:
        return self.swift.broker or self.clearing.url

    def resolved_keys(self) -> KeysConfig:
        """``keys`` with ``dir`` filled in, so ``keys.path(name)`` is absolute."""
        return replace(self.keys, dir=self.keys_dir)


# -- loading -----------------------------------------------------------------


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _one_of(words: tuple[str, ...]) -> str:
    """``"a", "b" or "c"``: the allowed values as they are written in TOML."""
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _convert(value: Any, tp: Any, key: str, src: str, base: Path) -> Any:
    """Convert one TOML value to the field type ``tp``; errors name key and file."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value == "" and type(None) in typing.get_args(tp):
            return None
        return _convert(value, args[0], key, src, base)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, str) and value in allowed:
            return value
        raise ConfigError(f"{src}: {key} must be one of {_one_of(allowed)}")
    if is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{src}: [{key}] must be a table")
        return _build(tp, value, key, src, base)
    if origin is Mapping:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{src}: [{key}] must be a table")
        return FrozenTable(
            {
                _convert(k, key_tp, key, src, base): _convert(v, value_tp, f"{key}.{k}", src, base)
                for k, v in value.items()
            }
        )
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{src}: {key} must be an array")
        return tuple(_convert(v, item_tp, f"{key}[{i}]", src, base) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: {key} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{src}: {key} must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{src}: {key} must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{src}: {key} must be a string")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{src}: {key} must be a path string")
        p = Path(value)
        return p if p.is_absolute() else (base / p).resolve()
    if tp is Decimal:
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f'{src}: {key} must be a decimal amount like "50000.00"') from None
    if tp is time:
        if isinstance(value, time):
            return value
        try:
            return time.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f'{src}: {key} must be a time like "16:00"') from None
    raise ConfigError(f"{src}: {key}: unsupported type {tp!r}")  # pragma: no cover


def _build(cls: type, data: dict[str, Any], prefix: str, src: str, base: Path) -> Any:
    hints = _hints(cls)
    names = {f.name for f in fields(cls) if f.name != "sources"}
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in names:
            raise ConfigError(f"{src}: unknown key {key!r}")
        kwargs[k] = _convert(v, hints[k], key, src, base)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{src}: {exc}") from None


def _check_keys(cls: type, data: dict[str, Any], prefix: str, src: str) -> None:
    """Refuse unknown keys in one file before merging, naming that file."""
    hints = _hints(cls)
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in hints or k == "sources":
            raise ConfigError(f"{src}: unknown key {key!r}")
        tp = hints[k]
        if typing.get_origin(tp) is tuple and isinstance(v, list):
            (item_tp, *_r) = typing.get_args(tp)
            if is_dataclass(item_tp):
                for i, item in enumerate(v):
                    if not isinstance(item, dict):
                        raise ConfigError(f"{src}: {key}[{i}] must be a table")
                    _check_keys(item_tp, item, f"{key}[{i}]", src)  # type: ignore[arg-type]
        elif is_dataclass(tp) and isinstance(v, dict):
            _check_keys(tp, v, key, src)  # type: ignore[arg-type]


_PATH_KEYS = (
    ("state_dir",),
    ("keys", "dir"),
    ("journal", "path"),
    ("routing", "directory"),
    ("routing", "calendars"),
    ("routing", "correspondents"),
    ("routing", "rma"),
    ("journal", "archive_dir"),
    ("codec", "pain001_xsd_dir"),
    ("admin", "socket"),
    ("screening", "lists"),
)


def _absolutise(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Resolve this file's relative paths against its own folder before merging."""
    out = _merge({}, data)
    for path in _PATH_KEYS:
        node = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node.get(part), dict) else None  # type: ignore[assignment]
            if node is None:
                break
        if node is None:
            continue
        v = node.get(path[-1])
        if isinstance(v, str) and v and not Path(v).is_absolute():
            node[path[-1]] = str((base / v).resolve())
        elif isinstance(v, list):  # a list of paths (screening.lists)
            node[path[-1]] = [
                str((base / p).resolve()) if isinstance(p, str) and not Path(p).is_absolute() else p
                for p in v
            ]
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Embedded defaults, then the file at ``path``, then ``overrides`` (tests)."""
    default = default_config_path()
    merged = _absolutise(_read(default), default.parent)
    _check_keys(Config, merged, "", str(default))
    sources = [str(default)]
    if path is not None:
        user = _read(path)
        _check_keys(Config, user, "", str(path))
        merged = _merge(merged, _absolutise(user, path.resolve().parent))
        sources.append(str(path))
    if overrides:
        _check_keys(Config, overrides, "", "<overrides>")
        merged = _merge(merged, _absolutise(overrides, Path.cwd()))
    cfg: Config = _build(Config, merged, "", sources[-1], Path.cwd())
    cfg = replace(cfg, sources=tuple(sources))
    validate(cfg)
    return cfg


def _dsn_has_password(dsn: str) -> bool:
    """``postgresql://user:secret@host/db`` or ``password=...``: secrets stay out of config."""
    if "password=" in dsn.lower():
        return True
    netloc = dsn.split("://", 1)[-1].split("/", 1)[0]
    return "@" in netloc and ":" in netloc.split("@", 1)[0]


def validate(cfg: Config) -> None:
    """Cross-field rules that the types alone cannot express."""
    src = cfg.sources[-1] if cfg.sources else "<config>"
    if cfg.environment not in ENVIRONMENTS:
        raise ConfigError(f"{src}: environment must be one of {', '.join(ENVIRONMENTS)}")
    if cfg.clock.start and cfg.environment != "test":
        raise ConfigError(
            f'{src}: clock.start is only allowed with environment = "test"'
            " (docs/routing-rules.md §4)"
        )
    if cfg.clock.rate != 1.0 and cfg.environment != "test":
        raise ConfigError(f'{src}: clock.rate is only allowed with environment = "test"')
    if cfg.clock.start:
        try:
            start = datetime.fromisoformat(cfg.clock.start)
        except ValueError:
            raise ConfigError(f"{src}: clock.start must be ISO 8601 with an offset") from None
        if start.tzinfo is None:
            raise ConfigError(f"{src}: clock.start must carry a UTC offset")
    if cfg.clock.rate <= 0:
        raise ConfigError(f"{src}: clock.rate must be positive")
    if cfg.keys.dev_pki and cfg.environment == "production":
        raise ConfigError(f'{src}: keys.dev_pki is refused with environment = "production"')
    b = cfg.bank
    if not (len(b.class_code) == 3 and b.class_code.isdigit()):
        raise ConfigError(f"{src}: bank.class_code must be 3 digits")
    if not (len(b.participant) == 12 and b.participant.isdigit()):
        raise ConfigError(f"{src}: bank.participant must be 12 digits")
    if not (len(b.internal_type) == 2 and b.internal_type.isdigit()):
        raise ConfigError(f"{src}: bank.internal_type must be 2 digits")
    if not (len(b.node) == 1 and b.node.isalpha() and b.node.isupper()):
        raise ConfigError(f"{src}: bank.node must be one upper-case letter (it is part of GwRef)")
    names = [ln.name for ln in cfg.listeners]
    if len(set(names)) != len(names):
        raise ConfigError(f"{src}: listener names must be unique")
    for i, ln in enumerate(cfg.listeners):
        if ln.client_cert not in ("none", "optional", "required"):
            raise ConfigError(
                f"{src}: listeners[{i}].client_cert must be none, optional or required"
            )
        if ln.client_cert != "none" and not ln.tls:
            raise ConfigError(f"{src}: listeners[{i}].client_cert needs tls = true")
        if not 0 < ln.max_body <= 16 * 1024 * 1024:
            raise ConfigError(
                f"{src}: listeners[{i}].max_body must be 1 byte to 16 MiB (docs/protocol.md §1)"
            )
        if not 0 <= ln.port <= 65535:
            raise ConfigError(f"{src}: listeners[{i}].port out of range")
    if cfg.workers.processes < 0:
        raise ConfigError(f"{src}: workers.processes must be >= 0 (0 = in the event loop process)")
    if not 0 <= cfg.workers.fronts <= 64:
        raise ConfigError(f"{src}: workers.fronts must be 0..64 (0 = the core serves clients)")
    _validate_fx(cfg, src)
    for name in ("intra", "hvps", "beps", "swift"):
        eng: EngineConfig = getattr(cfg.engines, name)
        if eng.hold_policy not in ("hold", "reject"):
            raise ConfigError(f"{src}: engines.{name}.hold_policy must be hold or reject")
        if eng.rate <= 0 or eng.max_inflight <= 0 or eng.release_rate <= 0:
            raise ConfigError(f"{src}: engines.{name} rates and max_inflight must be positive")
    if not 1 <= cfg.engines.beps.max_items <= 100_000:
        raise ConfigError(f"{src}: engines.beps.max_items must be 1..100000")
    if cfg.keys.stale_crl_policy not in ("fail_closed", "fail_open"):
        raise ConfigError(f"{src}: keys.stale_crl_policy must be fail_closed or fail_open")
    if cfg.journal.backend not in ("sqlite", "postgres"):
        raise ConfigError(f"{src}: journal.backend must be sqlite or postgres")
    if cfg.journal.backend == "postgres" and not cfg.journal.dsn:
        raise ConfigError(f'{src}: journal.dsn is required with backend = "postgres"')
    j = cfg.journal
    if j.retention_days < 1 or j.archive_interval < 0 or not 1 <= j.archive_batch <= 10_000:
        raise ConfigError(
            f"{src}: journal.retention_days >= 1, archive_interval >= 0, archive_batch 1..10000"
        )
    if j.audit_interval < 0:
        raise ConfigError(f"{src}: journal.audit_interval must be >= 0 (0: off)")
    if _dsn_has_password(cfg.journal.dsn):
        raise ConfigError(
            f"{src}: journal.dsn must not carry a password; use PGPASSWORD or ~/.pgpass"
        )
    if not cfg.clearing.url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"{src}: clearing.url must start with mqtt:// or mqtts://")
    core = cfg.core
    if core.url and not core.url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"{src}: core.url must be empty or start with mqtt:// or mqtts://")
    if core.timeout <= 0 or core.recheck_interval <= 0 or core.max_checks < 1:
        raise ConfigError(f"{src}: core.timeout and core.recheck_interval > 0, max_checks >= 1")
    if cfg.clearing.session_expiry < 86_400:
        raise ConfigError(
            f"{src}: clearing.session_expiry must be at least 86400 (docs/clearing-link.md §1)"
        )
    if cfg.load.max_pending < 1 or cfg.load.max_journal_backlog < 1 or cfg.load.max_body_bytes < 1:
        raise ConfigError(f"{src}: load.max_pending and load.max_journal_backlog must be >= 1")
    if cfg.observability.log_format not in ("json", "console"):
        raise ConfigError(f"{src}: observability.log_format must be json or console")
    d = cfg.drafts
    if d.centre and not (len(d.centre) == 12 and d.centre.isdigit()):
        raise ConfigError(f"{src}: drafts.centre must be 12 digits (or empty: bank.participant)")
    if any(not (len(a) == 4 and a.isdigit()) for a in d.province_areas):
        raise ConfigError(f"{src}: drafts.province_areas are 4-digit area codes (a code's YYYY)")
    if d.interval <= 0:
        raise ConfigError(f"{src}: drafts.interval must be positive")
    try:  # the operating windows are built here too, so a bad profile never waits for start
        parse_schedules(windows_spec(cfg))
    except ConfigError as exc:
        raise ConfigError(f"{src}: {exc}") from None


def _validate_fx(cfg: Config, src: str) -> None:
    """``bank.bics``, ``fx.currencies`` and ``fx.default_cutoff`` (docs/foreign-currency.md §2)."""
    seen: set[str] = set()
    for i, bic in enumerate(cfg.bank.bics):
        if not is_bic(bic):
            raise ConfigError(
                f"{src}: bank.bics[{i}] must be a BIC of 8 or 11 characters, "
                "6 letters then 2 and 3 letters or digits"
            )
        if bic8(bic) in seen:
            raise ConfigError(f"{src}: bank.bics[{i}]: {bic[:8]} is listed twice")
        seen.add(bic8(bic))
    try:
        CurrencyTable(cfg.fx.currencies)
    except ValueError as exc:
        raise ConfigError(f"{src}: fx.currencies: {exc}") from None
    if cfg.fx.default_cutoff <= SWIFT_OPENING:
        raise ConfigError(f"{src}: fx.default_cutoff must be after the 09:00 opening")
    sw = cfg.swift
    if sw.receipt_timeout <= 0:
        raise ConfigError(f"{src}: swift.receipt_timeout must be > 0")
    if sw.session_expiry < 86_400:
        raise ConfigError(f"{src}: swift.session_expiry must be at least 86400 s (24 h)")
    if not sw.topic_prefix or any(c in sw.topic_prefix for c in "#+"):
        raise ConfigError(f"{src}: swift.topic_prefix must be a plain topic level")


def windows_spec(cfg: Config) -> dict[str, object]:
    """``[windows]`` as the tables ``parse_schedules`` reads; the BEPS work-day cutoff
    comes from ``engines.beps.cutoff`` (docs/routing-rules.md §4)."""
    w = cfg.windows
    return {
        "intra": w.intra.as_spec(),
        "hvps": w.hvps.as_spec(),
        "beps": {**w.beps.as_spec(), "cutoff": f"{cfg.engines.beps.cutoff:%H:%M}"},
    }
