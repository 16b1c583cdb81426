"""Structured logging: one JSON object per line, accounts masked, key material never written.

docs/architecture.md §7, principle 8 and docs/architecture.md §8, habit 11: events carry context
bound through
``structlog.contextvars`` (gateway reference, CorpId, MsgId), account numbers
appear only masked, and nothing key-like is ever logged. Both roads into the log
end in the same processor chain:

- ``structlog.get_logger()`` events go straight to a ``WriteLogger`` (the hot
  path: one canonical line per message, ~13 µs per JSON line
  measured here);
- standard-library records (``asyncio``, aiomqtt's ``mqtt`` logger, ``warnings``
  through ``logging.captureWarnings``) go through a root handler whose
  ``ProcessorFormatter`` runs the same chain, so they too become JSON lines.

Timestamps are ISO 8601 in **UTC** (``...Z``): log shipping and the journal
(systemd) compare across hosts in UTC. The business clock (Asia/Shanghai,
``gateway.clock``) is a separate thing and is reported by ``/healthz``.

``configure_logging`` may be called again with other settings (tests, a log
level change on reload): loggers are not cached on first use, so every logger,
including module-level ones created before the call, follows the newest setup.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "MASKED_KEYS",
    "REDACTED",
    "REDACTED_KEY_PARTS",
    "configure_logging",
    "mask_account",
    "mask_sensitive",
]

MASKED_KEYS: Final[frozenset[str]] = frozenset(
    {
        "acct",
        "account",
        "account_no",
        "acct_no",
        "payer_acct",
        "payee_acct",
        "creditor_acct",
        "debtor_acct",
        "cdtr_acct",
        "dbtr_acct",
        "ordering_acct",
        "beneficiary_acct",
        "settlement_acct",
    }
)
"""Event keys whose values are account numbers; the processor masks them (principle 8)."""

REDACTED_KEY_PARTS: Final[tuple[str, ...]] = (
    "key",
    "passphrase",
    "password",
    "secret",
    "private",
)
"""A key whose lower-cased name contains any of these holds (or may hold) key material.

This is deliberately blunt: ``key_id`` is redacted too. Name identifiers of keys
and certificates ``kid``, ``cert_serial`` or ``fingerprint`` instead.
"""

REDACTED: Final = "[redacted]"

_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_FORMATS: Final = ("json", "console")
_MAX_DEPTH: Final = 4  # nested dicts/lists deeper than this are replaced by REDACTED
_STD_HANDLER_MARK: Final = "_gateway_ops_logs"  # attribute that marks our root handler


def mask_account(acct: str) -> str:
    """Mask an account number for logs: keep the first 4 and last 4 characters.

    ``"6222000000000001"`` → ``"6222********0001"``. Values of 8 characters or
    fewer keep only their last 2 (``"12345678"`` → ``"******78"``), and values of
    2 characters or fewer are masked entirely, so no value is ever logged whole.
    """
    n = len(acct)
    if n <= 2:
        return "*" * n
    if n <= 8:
        return "*" * (n - 2) + acct[-2:]
    return acct[:4] + "*" * (n - 8) + acct[-4:]


def _is_key_like(name: str) -> bool:
    low = name.lower()
    return any(part in low for part in REDACTED_KEY_PARTS)


def _scrub(value: Any, depth: int) -> Any:
    """Apply the masking rules inside nested dicts and lists (bounded depth)."""
    if isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            return REDACTED
        return {str(k): _scrub_item(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if depth >= _MAX_DEPTH:
            return REDACTED
        return [_scrub(v, depth + 1) for v in value]
    return value


def _scrub_item(name: str, value: Any, depth: int) -> Any:
    if _is_key_like(name):
        return REDACTED
    if name in MASKED_KEYS and value is not None:
        return mask_account(str(value))
    return _scrub(value, depth)


def mask_sensitive(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask account values, redact key-like values.

    Keys in ``MASKED_KEYS`` get ``mask_account``; keys whose name contains a
    ``REDACTED_KEY_PARTS`` word get ``"[redacted]"``; nested dicts and lists are
    scrubbed by the same rules. The message text (``event``) is not rewritten:
    never put an account number or key material into it.
    """
    for name in list(event_dict):
        value = event_dict[name]
        if _is_key_like(name):
            event_dict[name] = REDACTED
        elif name in MASKED_KEYS:
            if value is not None:
                event_dict[name] = mask_account(str(value))
        elif isinstance(value, Mapping | list | tuple):
            event_dict[name] = _scrub(value, 0)
    return event_dict


def _renderer(fmt: str, stream: TextIO) -> list[Processor]:
    if fmt == "json":
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    colors = bool(getattr(stream, "isatty", lambda: False)())
    return [structlog.dev.ConsoleRenderer(colors=colors)]


def _remove_our_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if getattr(handler, _STD_HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Set up structlog and the standard-library root logger (idempotent).

    ``level`` is one of debug, info, warning, error, critical; ``fmt`` is
    ``"json"`` (production: one object per line) or ``"console"`` (people at a
    terminal). ``stream`` defaults to ``sys.stderr``, which systemd sends to the
    journal. Calling again replaces the previous setup entirely.
    """
    lvl = _LEVELS.get(level.lower())
    if lvl is None:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}: {level!r}")
    if fmt not in _FORMATS:
        raise ValueError(f"log format must be one of {', '.join(_FORMATS)}: {fmt!r}")
    out = sys.stderr if stream is None else stream

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        timestamper,
    ]
    renderer = _renderer(fmt, out)

    structlog.configure(
        processors=[*shared, mask_sensitive, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        context_class=dict,
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            mask_sensitive,
            *renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    setattr(handler, _STD_HANDLER_MARK, True)
    handler.setFormatter(formatter)
    handler.setLevel(lvl)

    root = logging.getLogger()
    _remove_our_handlers(root)
    root.addHandler(handler)
    root.setLevel(lvl)
    logging.captureWarnings(True)
