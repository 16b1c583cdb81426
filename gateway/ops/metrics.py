"""Prometheus metrics: one registry per process, ``gateway_`` prefix, base units.

Labels are bounded (docs/architecture.md §8, habit 12): listener names, TrnCodes, RetCodes,
reason words, engines, states, message types — never CorpId or MsgId.
Every refusal is counted under ``reason`` with the same word the log uses.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.model import Engine, State

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

CONNECTIONS = Counter(
    "gateway_connections_total", "Accepted connections", ["listener"], registry=REGISTRY
)
CONNECTIONS_OPEN = Gauge(
    "gateway_connections_open", "Open client connections", ["listener"], registry=REGISTRY
)
CONNECTION_CLOSES = Counter(
    "gateway_connection_closes_total",
    "Client connections closed, by reason word (eof, idle, header, frame_timeout, ...)",
    ["listener", "reason"],
    registry=REGISTRY,
)
FRAMES = Counter("gateway_frames_total", "Complete frames read", ["listener"], registry=REGISTRY)
FRAME_ERRORS = Counter(
    "gateway_frame_errors_total",
    "Connections closed for a framing error (1001) or a deadline",
    ["listener", "reason"],
    registry=REGISTRY,
)
REQUESTS = Counter(
    "gateway_requests_total",
    "Requests answered, by TrnCode and RetCode",
    ["trn_code", "ret_code"],
    registry=REGISTRY,
)
REFUSALS = Counter(
    "gateway_refusals_total",
    "Requests refused, by stage and reason word",
    ["stage", "reason"],
    registry=REGISTRY,
)
BANS = Counter(
    "gateway_address_bans_total",
    "Temporary bans of a source address after repeated bad frames or signatures",
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "gateway_stage_seconds",
    "Time spent per pipeline stage",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
ACK_LATENCY = Histogram(
    "gateway_ack_latency_seconds",
    "From complete frame to response written, for accepted payments",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "gateway_duplicate_requests_total",
    "Replays of a journaled MsgId answered with Dup=true",
    registry=REGISTRY,
)
JOURNAL_COMMITS = Counter(
    "gateway_journal_commits_total", "Journal group commits", registry=REGISTRY
)
JOURNAL_COMMIT_SIZE = Histogram(
    "gateway_journal_commit_batch_size",
    "Write operations per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
JOURNAL_COMMIT_SECONDS = Histogram(
    "gateway_journal_commit_seconds",
    "Duration of one group commit including fsync",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
ITEMS_ROUTED = Counter(
    "gateway_items_routed_total",
    "Items journaled, by engine and first state",
    ["engine", "state"],
    registry=REGISTRY,
)
OUTBOUND = Counter(
    "gateway_outbound_messages_total",
    "Clearing messages published (PUBACK received), by engine and message type",
    ["engine", "msg_tp", "attempt"],
    registry=REGISTRY,
)
OUTBOUND_INFLIGHT = Gauge(
    "gateway_outbound_inflight",
    "Clearing messages sent and not yet receipted, by engine",
    ["engine"],
    registry=REGISTRY,
)
INBOUND = Counter(
    "gateway_inbound_messages_total",
    "Clearing messages received and applied, by message type",
    ["msg_tp"],
    registry=REGISTRY,
)
INBOUND_DROPPED = Counter(
    "gateway_inbound_dropped_total",
    "Inbound clearing messages dropped, by reason",
    ["reason"],
    registry=REGISTRY,
)
ITEM_FINAL = Counter(
    "gateway_items_final_total",
    "Items that reached a final state, by engine and state",
    ["engine", "state"],
    registry=REGISTRY,
)
ITEMS = Gauge(
    "gateway_items",
    "Items in each non-final state, by engine, counted from the journal every few seconds"
    " (final states: gateway_items_final_total)",
    ["engine", "state"],
    registry=REGISTRY,
)
LINK_UP = Gauge(
    "gateway_clearing_link_up", "1 while the MQTT clearing link is connected", registry=REGISTRY
)
LINK_RECONNECTS = Counter(
    "gateway_clearing_link_reconnects_total", "MQTT reconnect attempts", registry=REGISTRY
)
OTHER_LINK_UP = Gauge(
    "gateway_link_up",
    "1 while an MQTT link other than the clearing link is connected: link = swift (the"
    " bank's SWIFT interface, docs/foreign-currency.md §4); a series exists only on a"
    " node that runs that link",
    ["link"],
    registry=REGISTRY,
)
OTHER_LINK_RECONNECTS = Counter(
    "gateway_link_reconnects_total",
    "MQTT reconnect attempts of a link other than the clearing link, by link",
    ["link"],
    registry=REGISTRY,
)
WORKER_QUEUE = Gauge(
    "gateway_worker_queue_depth",
    "Frames waiting for or in a decode/verify worker",
    registry=REGISTRY,
)
CORE_DESK_CALLS = Counter(
    "gateway_core_desk_calls_total",
    "The core's desk calls (signing clearing messages, verifying receipts and statuses),"
    " by where they ran: a front process, or the core itself",
    ["where"],
    registry=REGISTRY,
)
CERT_EXPIRY = Gauge(
    "gateway_certificate_expiry_timestamp_seconds",
    "notAfter of a certificate the gateway uses, UNIX seconds",
    ["kind", "name"],
    registry=REGISTRY,
)
CRL_NEXT_UPDATE = Gauge(
    "gateway_crl_next_update_timestamp_seconds",
    "nextUpdate of a configured CRL, UNIX seconds",
    ["issuer"],
    registry=REGISTRY,
)
ADMISSION = Gauge(
    "gateway_admission_state",
    "Admission state: tracked addresses and CorpIds, active bans, open connections",
    ["what"],
    registry=REGISTRY,
)
KEY_SWAP_FAILURES = Counter(
    "gateway_key_swap_failures_total",
    "Scheduled TLS context swaps at a key ring change that failed (old certificate kept)",
    registry=REGISTRY,
)
CALENDAR_UNCOVERED = Counter(
    "gateway_calendar_uncovered_total",
    "Payments routed on a date beyond the loaded calendars (weekday rule applied)",
    registry=REGISTRY,
)
LIFECYCLE = Gauge(
    "gateway_lifecycle_state",
    "1 for the daemon's current lifecycle state",
    ["state"],
    registry=REGISTRY,
)
NETTING_POSITIONS = Counter(
    "gateway_netting_positions_total",
    "BEPS netting positions reconciled against the bilateral ledger, by outcome"
    " (matched, mismatch; docs/routing-rules.md §5)",
    ["outcome"],
    registry=REGISTRY,
)
NETTING_MISMATCH = Gauge(
    "gateway_netting_mismatch",
    "1 while the latest netting round or settlement disagreed with the gateway's ledger"
    " (alert; cleared by the next matching round)",
    registry=REGISTRY,
)
INQUIRIES = Counter(
    "gateway_inquiries_total",
    "Inquiries (ccms.314) and replies (ccms.315) by direction and kind",
    ["direction", "kind"],
    registry=REGISTRY,
)
INCOMING_CREDITS = Counter(
    "gateway_incoming_credits_total",
    "Incoming credits by outcome (received, posted, suspense, check_timeout)",
    ["outcome"],
    registry=REGISTRY,
)
CREDITS = Gauge(
    "gateway_credits",
    "Incoming credits waiting for the core (CHECKING), in the suspense account (SUSPENSE,"
    " 暂收款) or held by screening for review (REVIEW), counted from the journal every few"
    " seconds",
    ["state"],
    registry=REGISTRY,
)
CORE_REQUESTS = Counter(
    "gateway_core_requests_total",
    "Requests to the core banking system by kind (balance, account_check) and outcome",
    ["kind", "outcome"],
    registry=REGISTRY,
)
NOTICES_PULLED = Counter(
    "gateway_notices_pulled_total",
    "Notifications delivered through NTFY",
    registry=REGISTRY,
)
RELOADS = Counter(
    "gateway_reloads_total",
    "Reloads (SIGHUP / gatewayctl reload) by outcome: applied, or refused with the old"
    " directory, calendars, registry and keys kept (docs/routing-rules.md §2)",
    ["outcome"],
    registry=REGISTRY,
)
DIRECTORY_CODES = Gauge(
    "gateway_directory_codes",
    "Bank codes in the directory version in use",
    registry=REGISTRY,
)
AUDIT_CHAIN_OK = Gauge(
    "gateway_audit_chain_ok",
    "1 if the last verification of the journal's audit chain found no break, 0 if it found"
    " one (docs/operations.md: the audit chain); also 0 before the first verification ends,"
    " when gateway_audit_verified_timestamp_seconds is still 0",
    registry=REGISTRY,
)
AUDIT_HEAD_SEQ = Gauge(
    "gateway_audit_head_seq",
    "Sequence number of the audit chain's head at its last successful verification",
    registry=REGISTRY,
)
AUDIT_VERIFIED = Gauge(
    "gateway_audit_verified_timestamp_seconds",
    "When the audit chain was last verified (whatever the outcome), UNIX time",
    registry=REGISTRY,
)


# -- bank drafts (docs/bank-drafts.md §4) ---------------------------------------
DRAFTS_APPLIED = Counter(
    "gateway_drafts_applied_total",
    "DRAFT requests journaled (a replay not counted)",
    registry=REGISTRY,
)
DRAFTS = Gauge("gateway_drafts", "Register entries by state", ["state"], registry=REGISTRY)
DRAFTS_OUTSTANDING = Gauge(
    "gateway_drafts_outstanding_yuan",
    "Sum of the amounts of ISSUED drafts (the outstanding total)",
    registry=REGISTRY,
)
DRAFT_PRESENTMENTS = Counter(
    "gateway_draft_presentments_total",
    "Presentments answered, by result and reason (a redelivery re-sends, not counted)",
    ["result", "reason"],
    registry=REGISTRY,
)
DRAFTS_UNSETTLED = Gauge(
    "gateway_drafts_paid_unsettled",
    "Drafts PAID two working days ago or earlier and still not SETTLED (alert when > 0)",
    registry=REGISTRY,
)
DRAFT_MESSAGE_RJCT = Counter(
    "gateway_draft_message_rejected_total",
    "Draft settle or refund messages the clearing centre rejected (each raises the alert)",
    ["kind"],
    registry=REGISTRY,
)


# -- screening (docs/foreign-currency.md §5) -------------------------------------
SCREENING_LIST_ENTRIES = Gauge(
    "gateway_screening_list_entries",
    "Rows of each screening list file in force (list = the file's stem)",
    ["list"],
    registry=REGISTRY,
)
SCREENING_LIST_AGE = Gauge(
    "gateway_screening_list_age_seconds",
    "Seconds since the modification of each screening list file in force",
    ["list"],
    registry=REGISTRY,
)
SCREENING_TOTAL = Counter(
    "gateway_screening_total",
    "Screening decisions: result = clear (no hit, the payment goes on) or hit (to REVIEW);"
    " direction = outbound (a payment) or inbound (an incoming credit)",
    ["result", "direction"],
    registry=REGISTRY,
)
REVIEW_PENDING = Gauge(
    "gateway_review_pending",
    "Payments and incoming credits waiting in REVIEW for two approvals or one rejection",
    registry=REGISTRY,
)
REVIEW_OLDEST = Gauge(
    "gateway_review_oldest_seconds",
    "Seconds the oldest pending review has waited (0 when none waits)",
    registry=REGISTRY,
)
REVIEW_DECISIONS = Counter(
    "gateway_review_decisions_total",
    "Review steps: decision = approve, release (the second approval), reject or refused"
    " (the same user twice, not in screening.review_group, not in REVIEW)",
    ["decision"],
    registry=REGISTRY,
)


# -- series created at 0 at start -----------------------------------------------
# A labelled series exists only once a label value is first used, and then
# already at 1: ``rate()`` and ``increase()`` never see that first step, and a
# dashboard panel has nothing to draw.  Every label value known in advance is
# therefore created at 0 when this module is imported, before the first scrape.
# Values that cannot be known in advance (a new reason word) are covered by
# rules that also count a series that is new (conf/alerts.yml).

# Series are made up front for the engines that always run.  SWIFT runs only with
# fx.enabled and swift.enabled (docs/foreign-currency.md §2): the daemon creates its
# engine's and link's series when it starts them (create_swift_series), so a node without
# SWIFT exposes no SWIFT link at 0 for an alert to take for a link that is down.  (The
# journal's gauge gateway_items counts every engine's items, SWIFT's too: ops/gauges.py.)
_ENGINES = tuple(e.value for e in Engine if e is not Engine.SWIFT)
LIVE_ITEM_STATES = tuple(s.value for s in State if not s.final)
"""The non-final item states ``gateway_items`` counts (docs/architecture.md, principle 2)."""
GAUGED_CREDIT_STATES = ("CHECKING", "SUSPENSE", "REVIEW")
"""The incoming-credit states ``gateway_credits`` counts (docs/clearing-link.md §6)."""

_CREDENTIAL_REASONS = (
    "signature_invalid",
    "cert_untrusted",
    "cert_expired",
    "cert_revoked",
    "cert_not_enrolled",
    "not_permitted",
    "source_not_allowed",
)
REFUSAL_SERIES: dict[str, tuple[str, ...]] = {
    "connect": ("conn_limit", "accept_rate", "banned"),
    "admission": ("overloaded", "ip_rate", "rate_limited", "banned"),
    "frame": ("header", "length", "empty", "frame_timeout"),
    "parse": ("malformed_xml",),
    "schema": ("schema", "unknown_trncode", "malformed_xml"),
    "signature": _CREDENTIAL_REASONS,
    "credentials": _CREDENTIAL_REASONS,
    "decode": ("unknown_trncode", "schema"),
    "replay": ("duplicate_msgid", "stale_sendtime"),
    "business": (
        "bank_code_unknown",
        "bank_code_malformed",
        "bank_not_active",
        "amount_invalid",
        "engine_closed",
        "payer_not_enrolled",
    ),
    "pipeline": ("core_timeout",),
    "internal": ("internal",),
}
"""(stage, reason word) pairs of ``gateway_refusals_total`` created at 0: the stages of
docs/protocol.md §8's order with the RetCodes each can answer (``RetCode.reason``)."""

INBOUND_DROP_REASONS = (
    "signature",
    "malformed",
    "unknown_msg_id",
    "unsupported",
    "handler_error",
)
"""Reason words of ``gateway_inbound_dropped_total`` (gateway/clearing)."""


DRAFT_STATES = ("PENDING", "ISSUED", "PAID", "SETTLED", "REFUNDING", "REFUNDED", "REJECTED")
"""The register states ``gateway_drafts`` counts (docs/bank-drafts.md §1)."""
DRAFT_PRESENTMENT_REASONS = ("NF", "RF", "PD", "EX", "CD", "AM", "SA", "SC")
"""The RJCT reasons of a presentment, in the order they are checked (docs/bank-drafts.md §3)."""


SWIFT_OUTBOUND_TYPES = ("swift.008",)
"""Message types the SWIFT engine publishes (docs/foreign-currency.md §4)."""
SWIFT_INBOUND_TYPES = ("swift.ack", "swift.002")
"""Answers the SWIFT link applies to our messages: the network's ACK/NAK, the receiving
bank's status (docs/foreign-currency.md §4)."""


def create_engine_series(engine: str) -> None:
    """Create one engine's series at 0 (idempotent): the clearing engines' at import, the
    SWIFT engine's when the daemon starts it (docs/foreign-currency.md §2)."""
    OUTBOUND_INFLIGHT.labels(engine)
    for state in ("QUEUED", "HELD"):
        ITEMS_ROUTED.labels(engine, state)
    for state in ("SETTLED", "REJECTED"):
        ITEM_FINAL.labels(engine, state)
    for state in LIVE_ITEM_STATES:
        ITEMS.labels(engine, state)


def create_swift_series() -> None:
    """The SWIFT engine's and link's series, at 0, for a daemon that runs them: the
    engine's like any other's, its messages out and answers in, the link's state and
    reconnects (docs/foreign-currency.md §4)."""
    engine = Engine.SWIFT.value
    create_engine_series(engine)
    for msg_tp in SWIFT_OUTBOUND_TYPES:
        for attempt in ("first", "resend"):
            OUTBOUND.labels(engine, msg_tp, attempt)
    for msg_tp in SWIFT_INBOUND_TYPES:
        INBOUND.labels(msg_tp)
    OTHER_LINK_UP.labels("swift")
    OTHER_LINK_RECONNECTS.labels("swift")


def create_series() -> None:
    """Create every series whose label values are known in advance, at 0 (idempotent)."""
    for stage, reasons in REFUSAL_SERIES.items():
        for reason in reasons:
            REFUSALS.labels(stage, reason)
    # 5001 and 5002 are answered before the TrnCode is read (admission, "-")
    for code in ("5001", "5002"):
        REQUESTS.labels("-", code)
    for reason in INBOUND_DROP_REASONS:
        INBOUND_DROPPED.labels(reason)
    for outcome in ("applied", "refused"):
        RELOADS.labels(outcome)
    for outcome in ("matched", "mismatch"):
        NETTING_POSITIONS.labels(outcome)
    for outcome in ("received", "posted", "suspense", "check_timeout"):
        INCOMING_CREDITS.labels(outcome)
    for what in ("tracked_addresses", "tracked_corps", "active_bans", "open_connections"):
        ADMISSION.labels(what)
    for where in ("front", "core"):
        CORE_DESK_CALLS.labels(where)
    for engine in _ENGINES:
        create_engine_series(engine)
    for state in GAUGED_CREDIT_STATES:
        CREDITS.labels(state)
    for state in DRAFT_STATES:
        DRAFTS.labels(state)
    DRAFT_PRESENTMENTS.labels("ACCP", "-")
    for reason in DRAFT_PRESENTMENT_REASONS:
        DRAFT_PRESENTMENTS.labels("RJCT", reason)
    for kind in ("settle", "refund"):
        DRAFT_MESSAGE_RJCT.labels(kind)
    for result in ("clear", "hit"):
        for direction in ("outbound", "inbound"):
            SCREENING_TOTAL.labels(result, direction)
    for decision in ("approve", "release", "reject", "refused"):
        REVIEW_DECISIONS.labels(decision)


create_series()
