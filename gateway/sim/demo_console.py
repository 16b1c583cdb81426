"""What the demo shows on its console besides its own story.

Three things a newcomer reads at the terminal, made readable here:

- the simulators' log lines, which run in the demo's own process: structlog's
  console renderer, stamped with the **business** time the daemon runs on
  (Asia/Shanghai, from the demo's business clock) rather than the host's UTC,
  so they line up with the payments' times (colours only on a terminal);
- the simulators' statistics, as labelled sentences instead of a raw dict;
- with ``--state-dir``, where the state is and which commands look at it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from gateway.clock import BusinessClock
from gateway.ops.logs import mask_sensitive

# (template, the stats keys it uses); the clearing simulator's counters
_CLEARING_LINES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "{received} messages from the gateway ({duplicates} duplicates, {invalid} invalid, "
        "{schema_invalid} not schema-valid); {receipts} ccms.990 receipts and {statuses} "
        "status reports sent back: {settled} transactions settled, {rejected} rejected",
        ("received", "duplicates", "invalid", "schema_invalid", "receipts", "statuses",
         "settled", "rejected"),
    ),
    (
        "BEPS netting: {netting_rounds} rounds over {netting_positions} net positions, "
        "{accepted_for_netting} items netted, {settlements} settlement notices",
        ("netting_rounds", "netting_positions", "accepted_for_netting", "settlements"),
    ),
    (
        "correspondence: {inquiries_received} inquiries and {replies_received} replies from "
        "the gateway ({ccms_duplicates} duplicates, {ccms_invalid} invalid); "
        "{inquiries_injected} inquiries, {replies_sent} replies and {credits_injected} "
        "incoming credits sent to it",
        ("inquiries_received", "replies_received", "ccms_duplicates", "ccms_invalid",
         "inquiries_injected", "replies_sent", "credits_injected"),
    ),
    ("publishes the broker refused: {publish_refused}", ("publish_refused",)),
)  # fmt: skip

# the SWIFT simulator's counters (docs/foreign-currency.md §4)
_SWIFT_LINES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "{received} messages from the gateway ({duplicates} duplicates, {late_duplicates} of "
        "them after the dedupe window, {invalid} invalid, {uetr_reused} UETRs reused); {acks} "
        "ACK and {naks} NAK sent back, then {statuses} swift.002: {settled} settled (ACSC), "
        "{rejected} rejected (RJCT); {credits_injected} incoming credits sent to it",
        ("received", "duplicates", "late_duplicates", "invalid", "uetr_reused", "acks", "naks",
         "statuses", "settled", "rejected", "credits_injected"),
    ),
    ("publishes the broker refused: {publish_refused}", ("publish_refused",)),
)  # fmt: skip


def log_to_console(clock: BusinessClock, stream: TextIO | None = None) -> None:
    """Render this process's structlog events for people, stamped with business time."""
    out = sys.stdout if stream is None else stream

    def business_time(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        event["timestamp"] = clock.now().strftime("%H:%M:%S")
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            business_time,
            mask_sensitive,
            structlog.dev.ConsoleRenderer(colors=out.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def stats_lines(
    clearing: Mapping[str, int],
    core: Mapping[str, int],
    swift: Mapping[str, int] | None = None,
) -> list[str]:
    """The simulators' counters as labelled lines; a counter no line names is still shown."""
    lines = _labelled("clearing simulator", _CLEARING_LINES, clearing)
    if swift:
        lines += _labelled("SWIFT simulator", _SWIFT_LINES, swift)
    if core:
        lines.append("core banking simulator: " + _pairs(dict(sorted(core.items()))))
    return lines


def _labelled(
    who: str, templates: tuple[tuple[str, tuple[str, ...]], ...], counts: Mapping[str, int]
) -> list[str]:
    """``who``'s counters through ``templates``; the ones no template names on a last line."""
    lines: list[str] = []
    used: set[str] = set()
    for template, keys in templates:
        if any(k in counts for k in keys):
            lines.append(f"{who}: " + template.format(**{k: counts.get(k, 0) for k in keys}))
            used.update(keys)
    rest = {k: v for k, v in sorted(counts.items()) if k not in used}
    if rest:
        lines.append(f"{who}, other: " + _pairs(rest))
    return lines


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())


def _tool(name: str) -> str:
    """How to run one of our commands: the script beside this interpreter, else ``-m``."""
    script = Path(sys.executable).parent / name
    if script.exists():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    module = {"gatewayctl": "gateway.cli.gatewayctl", "gatewayd": "gateway.cli.gatewayd"}[name]
    return f"{sys.executable} -m {module}"


def state_hints(state: Path, overlay: Path, journal: Path, log: Path) -> list[str]:
    """Where the kept state is, and the commands that look at it."""
    ctl, daemon = _tool("gatewayctl"), _tool("gatewayd")
    conf = f"--config {overlay}"
    lines = [
        f"demo: state kept in {state}:",
        f"    journal          {journal}",
        f"    daemon log       {log} (JSON lines)",
        f"    keys (dev PKI)   {journal.parent / 'pki'}",
        f"    clearing record  {state / 'clearing-record.jsonl'} (what the simulator exchanged)",
        f"    SWIFT record     {state / 'swift-record.jsonl'} (what the SWIFT simulator received)",
        "  look at it with the gateway's own tools:",
        f"    {ctl} {conf} keys list",
        f"    {daemon} {conf} &     # the daemon again, on this state (stop it: kill %1)",
        f"    {ctl} {conf} status   # then: credits, inquiries, netting, reload",
    ]
    if shutil.which("sqlite3") and os.access(journal, os.R_OK):
        lines.append(f"    sqlite3 -readonly {journal} .tables")
    return lines


__all__ = ["log_to_console", "state_hints", "stats_lines"]
