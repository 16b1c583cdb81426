"""The journal archive file: its line kinds, its durable writing, its reading back.

docs/protocol.md §7 lets a request leave the journal after the retention period;
banks keep what left in these files for their audit period, so the format is
fixed here, in one place, for the pass that writes it
(:mod:`gateway.journal.retention`) and for :func:`read_archive`.

File format (``format`` 7), one JSON object per line, UTF-8: a header
``{"kind": "archive", ...}``, then ``request`` lines (the request with its
items, each with its ``transitions``), ``outbound`` lines (``payload_b64``),
``notification``, ``inquiry``, ``incoming_credit`` and ``netting_round``
lines (their table's columns; ``amount_fen`` as ``amount``, a notification's
``kind`` as ``notice_kind``, a round's ``*_fen`` as ``*_sum``: the column
lists are in :mod:`gateway.journal.retention_tables`) and ``daily_total``
lines.  Format 3 adds ``exchange`` (``request_b64``, ``response_b64``),
``inbound_message`` (``payload_b64``) and ``operator_action`` lines (journal
migration 8).  Format 4 adds ``state_change`` lines (the audit chain's links, journal
migration 9; their ``kind`` column as ``change_kind``), and a transition of
format 4 also keeps its link as ``chain`` (``item_id``, ``node``, ``seq``,
``prev``, ``hash``).  Format 5 adds the currency of incoming credits and CREDIT
notifications and a credit's ``screening``; format 6 an item's ``screening`` (the
decision's JSON, null for an item never screened; an older file's items read back
with None); format 7 an item's foreign-currency fields ``uetr``, ``payee_bic``,
``payee_country`` and ``chrg_br`` (null for an item without them, a CNY item; an older
file's items read back with None).  Format 1 is format 2 without the four new kinds
of format 2.  An ``inquiry`` line's ``engine`` (journal migration 6) is optional:
lines written before it have none and read back with ``engine`` None, so the format
stays 2.
Instants are ISO 8601 in Asia/Shanghai with microseconds, work dates ISO
dates, amounts decimal strings.  The name is
``journal-<first day>-<last day>-<content hash>.jsonl.gz``: the dates of the
records inside (a request's received date, a notification's time, ...).

Files are at-least-once: a crash between the pass's export and its delete
archives the same rows again next time, so readers dedupe by GwRef,
outbound MsgId, NtfyId, (direction, InqId), credit GwRef and
(work date, round, counterparty).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final

from gateway.clock import SHANGHAI
from gateway.journal import schema
from gateway.journal.ops_records import ActionKind, Exchange, InboundMessage, OperatorAction
from gateway.journal.records import (
    CreditState,
    Figures,
    IncomingCredit,
    InquiryDirection,
    InquiryRecord,
    InquiryState,
    OutboundRecord,
    OutState,
    RequestRecord,
)
from gateway.model import (
    BizType,
    Engine,
    Notice,
    NoticeKind,
    Priority,
    State,
    StatusView,
    Transition,
)

FORMAT: Final = 7
"""Archive line format version, in each file's header line (2: the correspondence lines;
3: the operators' tools' lines; 4: the audit chain, ``state_change`` lines and a
transition's ``chain``; 5: a credit's and a CREDIT notification's ``ccy`` and
``minor_units``, a credit's ``screening``, its ``amount`` in those minor units; 6: an
item's ``screening``, the decision journaled with it, docs/foreign-currency.md §5; 7: an
item's ``uetr``, ``payee_bic``, ``payee_country`` and ``chrg_br``, docs/foreign-currency.md
§1, §4)."""

READABLE_FORMATS: Final = frozenset({1, 2, 3, 4, 5, 6, 7})
"""What :func:`read_archive` reads: each version is the next one without its new parts."""


# -- what a file reads back as ------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedTransition:
    state: State
    at: datetime
    detail: str | None


@dataclass(frozen=True)
class ArchivedItem:
    seq_no: int | None
    tx_id: str
    end_to_end_id: str
    engine: Engine | None
    receiver: str | None
    payee_bank_code: str
    work_date: date | None
    state: State
    release_at: datetime | None
    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    amount: Decimal
    ccy: str
    priority: Priority
    biz_type: BizType
    purpose: str | None
    reason_code: str | None
    reason_text: str | None
    out_msg_id: str | None
    queued_at: datetime | None
    updated_at: datetime
    transitions: tuple[ArchivedTransition, ...]
    screening: str | None = None  # the screening decision's JSON (format 6); None: unscreened
    # format 7 (docs/foreign-currency.md §1, §4): a SWIFT payment's UETR, its payee's BIC and
    # country and its charge bearer; None for an item without them (CNY) or an older file's
    uetr: str | None = None
    payee_bic: str | None = None
    payee_country: str | None = None
    chrg_br: str | None = None

    def view(self) -> StatusView:
        """What STATUS answered for this item while it was in the journal (docs/protocol.md §5)."""
        return StatusView(
            state=self.state,
            engine=self.engine,
            work_date=self.work_date,
            release_at=self.release_at,
            reason_code=self.reason_code,
            reason_text=self.reason_text,
            seq_no=self.seq_no,
            history=tuple(Transition(t.state, t.at) for t in self.transitions),
            uetr=self.uetr,
        )


@dataclass(frozen=True)
class ArchivedRequest:
    record: RequestRecord
    node: str | None
    items: tuple[ArchivedItem, ...]


@dataclass(frozen=True)
class ArchivedOutbound(OutboundRecord):
    """An outbound message as archived: the journal record plus when it was receipted."""

    acked_at: datetime | None


@dataclass(frozen=True)
class ArchivedDailyTotal:
    corp_id: str
    oper_id: str
    day: date
    total: Decimal


@dataclass(frozen=True)
class ArchivedNotification:
    """An NTFY notification (docs/protocol.md §4) and the corporate it was for."""

    corp_id: str
    notice: Notice


@dataclass(frozen=True)
class ArchivedInquiry(InquiryRecord):
    """An inquiry (docs/clearing-link.md §4 ccms.314 / 315) plus the outbound message of it."""

    out_msg_id: str | None


@dataclass(frozen=True)
class ArchivedCredit(IncomingCredit):
    """An incoming credit in a final state (docs/clearing-link.md §6), with what the journal
    kept."""

    end_to_end_id: str
    received_at: datetime
    netting_round: int | None
    updated_at: datetime
    node: str | None  # PostgreSQL: the node that received it; SQLite keeps none


@dataclass(frozen=True)
class ArchivedNettingRound:
    """One reconciled ``CptyPos`` of a beps.netting round (docs/routing-rules.md §5)."""

    work_date: date
    round: int
    counterparty: str
    ours: Figures
    theirs: Figures
    matched: bool
    items_netted: int
    at: datetime
    node: str | None


@dataclass(frozen=True)
class ArchivedStateChange:
    """A ``state_changes`` row (journal migration 9): one link of the audit chain."""

    kind: str
    subject: str
    state: str
    at: datetime
    detail: str | None
    node: str | None
    seq: int | None
    prev_hash: str | None
    hash: str | None


Archived = (
    ArchivedRequest | ArchivedOutbound | ArchivedDailyTotal | ArchivedNotification
    | ArchivedInquiry | ArchivedCredit | ArchivedNettingRound | Exchange | InboundMessage
    | OperatorAction | ArchivedStateChange
)  # fmt: skip


# -- value encoding and the line kinds, the same for both backends -----------------------


def instant_text(value: object) -> str | None:
    """SQLite integer microseconds or a PostgreSQL timestamptz → ISO 8601, Asia/Shanghai."""
    if value is None:
        return None
    at = value if isinstance(value, datetime) else schema.from_micros(int(str(value)))
    return at.astimezone(SHANGHAI).isoformat(timespec="microseconds")


def day_text(value: object) -> str | None:
    """A work date (SQLite ISO text or a PostgreSQL ``date``) → ISO date."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def amount_text(fen: object) -> str:
    """Integer fen → the decimal string of the amount (exact, two places)."""
    return str(schema.from_fen(int(str(fen))))


def opt_amount_text(fen: object) -> str | None:
    return None if fen is None else amount_text(fen)


def payload_text(value: Any) -> str:
    """An outbound message's bytes → ``payload_b64``."""
    return base64.b64encode(bytes(value)).decode("ascii")


def transition_line(row: Sequence[Any]) -> dict[str, Any]:
    """``(item_id, state, at, detail[, node, seq, prev_hash, hash])`` → one entry of an
    item's ``transitions``; a chained row (migration 9) keeps its link as ``chain``."""
    item_id, state, at, detail, *link = row
    line: dict[str, Any] = {"state": state, "at": instant_text(at), "detail": detail}
    if link and link[1] is not None:
        node, seq, prev, digest = link
        line["chain"] = {
            "item_id": int(item_id), "node": node, "seq": int(seq), "prev": prev, "hash": digest,
        }  # fmt: skip
    return line


def item_line(row: Sequence[Any], trail: list[dict[str, Any]]) -> dict[str, Any]:
    """An item row (``ITEM_COLUMNS`` order) and its transitions → its entry in ``items``."""
    (_id, _req, seq, tx, e2e, engine, receiver, bank, day, state, release, payer_acct,
     payer_name, payee_acct, payee_name, fen, ccy, priority, biz, purpose, code, text, out,
     queued, updated, screening, uetr, payee_bic, payee_country, chrg_br) = row  # fmt: skip
    return {
        "seq_no": seq, "tx_id": tx, "end_to_end_id": e2e, "engine": engine,
        "receiver": receiver, "payee_bank_code": bank, "work_date": day_text(day),
        "state": state, "release_at": instant_text(release), "payer_acct": payer_acct,
        "payer_name": payer_name, "payee_acct": payee_acct, "payee_name": payee_name,
        "amount": amount_text(fen), "ccy": ccy, "priority": priority, "biz_type": biz,
        "purpose": purpose, "reason_code": code, "reason_text": text, "out_msg_id": out,
        "queued_at": instant_text(queued), "updated_at": instant_text(updated),
        "screening": screening, "uetr": uetr, "payee_bic": payee_bic,
        "payee_country": payee_country, "chrg_br": chrg_br, "transitions": trail,
    }  # fmt: skip


def request_line(
    row: Sequence[Any], node: str | None, items: list[dict[str, Any]]
) -> dict[str, Any]:
    """A request row (``id, corp_id, msg_id, oper_id, trn_code, digest, gw_ref,
    received_at``), the node that accepted it and its item entries → a ``request`` line."""
    _rid, corp, msg, oper, trn, digest, ref, received = row
    return {
        "kind": "request", "gw_ref": ref, "corp_id": corp, "msg_id": msg, "oper_id": oper,
        "trn_code": trn, "digest": digest, "received_at": instant_text(received), "node": node,
        "items": items,
    }  # fmt: skip


def outbound_line(row: Sequence[Any]) -> dict[str, Any]:
    """An outbound row (``OUTBOUND_COLUMNS`` order) → an ``outbound`` line."""
    msg_id, engine, msg_tp, topic, receiver, day, payload, state, attempts, created, sent, acked = (
        row
    )
    return {
        "kind": "outbound", "msg_id": msg_id, "engine": engine, "msg_tp": msg_tp,
        "topic": topic, "receiver": receiver, "work_date": day_text(day),
        "payload_b64": payload_text(payload), "state": state, "attempts": attempts,
        "created_at": instant_text(created), "last_sent_at": instant_text(sent),
        "acked_at": instant_text(acked),
    }  # fmt: skip


def daily_total_line(row: Sequence[Any]) -> dict[str, Any]:
    """``(corp_id, oper_id, day, total_fen)`` → a ``daily_total`` line (docs/protocol.md §6)."""
    corp, oper, day, fen = row
    return {
        "kind": "daily_total", "corp_id": corp, "oper_id": oper, "day": day_text(day),
        "total": amount_text(fen),
    }  # fmt: skip


# -- the archive file -----------------------------------------------------------------------


class ArchiveFile:
    """gzip JSON lines into a temp file; ``commit`` makes it durable under its final name."""

    def __init__(self, out_dir: Path, header: dict[str, Any]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.dir = out_dir
        self.tmp = out_dir / f".journal-{uuid.uuid4().hex}.jsonl.gz.tmp"
        self._raw: IO[bytes] = self.tmp.open("xb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
        self._hash = hashlib.sha256()
        self.write([header])

    def write(self, lines: Sequence[dict[str, Any]]) -> None:
        for line in lines:
            data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            self._hash.update(data)
            self._gz.write(data)

    def commit(self, first_day: str, last_day: str) -> Path:
        """fsync, rename to the final name, fsync the folder (the rename is durable)."""
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        name = (
            f"journal-{first_day.replace('-', '')}-{last_day.replace('-', '')}"
            f"-{self._hash.hexdigest()[:12]}.jsonl.gz"
        )
        final = self.dir / name
        os.replace(self.tmp, final)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return final

    def discard(self) -> None:
        """Close and remove the temp file; closing may fail again (a full disk)."""
        try:
            for f in (self._gz, self._raw):
                with contextlib.suppress(OSError):
                    f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


# -- reading an archive back ------------------------------------------------------------------


def _opt_at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _item(d: dict[str, Any]) -> ArchivedItem:
    return ArchivedItem(
        seq_no=d["seq_no"], tx_id=d["tx_id"], end_to_end_id=d["end_to_end_id"],
        engine=None if d["engine"] is None else Engine(d["engine"]), receiver=d["receiver"],
        payee_bank_code=d["payee_bank_code"],
        work_date=None if d["work_date"] is None else date.fromisoformat(d["work_date"]),
        state=State(d["state"]), release_at=_opt_at(d["release_at"]),
        payer_acct=d["payer_acct"], payer_name=d["payer_name"], payee_acct=d["payee_acct"],
        payee_name=d["payee_name"], amount=Decimal(d["amount"]), ccy=d["ccy"],
        priority=Priority(d["priority"]), biz_type=BizType(d["biz_type"]), purpose=d["purpose"],
        reason_code=d["reason_code"], reason_text=d["reason_text"], out_msg_id=d["out_msg_id"],
        queued_at=_opt_at(d["queued_at"]), updated_at=datetime.fromisoformat(d["updated_at"]),
        screening=d.get("screening"), uetr=d.get("uetr"), payee_bic=d.get("payee_bic"),
        payee_country=d.get("payee_country"), chrg_br=d.get("chrg_br"),
        transitions=tuple(
            ArchivedTransition(State(t["state"]), datetime.fromisoformat(t["at"]), t["detail"])
            for t in d["transitions"]
        ),
    )  # fmt: skip


def _parse(d: dict[str, Any]) -> Archived:
    kind = d.get("kind")
    if kind == "request":
        record = RequestRecord(
            corp_id=d["corp_id"], msg_id=d["msg_id"], oper_id=d["oper_id"],
            trn_code=d["trn_code"], digest=d["digest"], gw_ref=d["gw_ref"],
            received_at=datetime.fromisoformat(d["received_at"]),
        )  # fmt: skip
        return ArchivedRequest(record, d["node"], tuple(_item(i) for i in d["items"]))
    if kind == "outbound":
        return ArchivedOutbound(
            msg_id=d["msg_id"], engine=Engine(d["engine"]), msg_tp=d["msg_tp"],
            topic=d["topic"], receiver=d["receiver"], work_date=date.fromisoformat(d["work_date"]),
            payload=base64.b64decode(d["payload_b64"], validate=True),
            state=OutState(d["state"]), attempts=int(d["attempts"]),
            created_at=datetime.fromisoformat(d["created_at"]),
            last_sent_at=_opt_at(d["last_sent_at"]), acked_at=_opt_at(d["acked_at"]),
        )  # fmt: skip
    if kind == "daily_total":
        return ArchivedDailyTotal(
            d["corp_id"], d["oper_id"], date.fromisoformat(d["day"]), Decimal(d["total"])
        )
    reader = _READERS.get(str(kind))
    if reader is None:
        raise ValueError(f"unknown archive line kind {kind!r}")
    return reader(d)


def _opt_day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _notification(d: dict[str, Any]) -> ArchivedNotification:
    kind = NoticeKind(d["notice_kind"])
    draft = kind is NoticeKind.DRAFT  # its state is the draft's (docs/bank-drafts.md §1)
    return ArchivedNotification(d["corp_id"], Notice(
        ntfy_id=int(d["ntfy_id"]), kind=kind,
        at=datetime.fromisoformat(d["at"]), orig_msg_id=d["orig_msg_id"], seq_no=d["seq_no"],
        gw_ref=d["gw_ref"], inq_id=d["inq_id"],
        state=None if d["state"] is None or draft else State(d["state"]),
        reason_code=d["reason_code"],
        engine=None if d["engine"] is None else Engine(d["engine"]),
        work_date=_opt_day(d["work_date"]), acct=d["acct"],
        amount=None if d["amount"] is None else Decimal(d["amount"]),
        counterparty_acct=d["counterparty_acct"], counterparty_name=d["counterparty_name"],
        counterparty_bank=d["counterparty_bank"], text=d["text"],
        draft_no=d.get("draft_no"), draft_state=d["state"] if draft else None,
        ccy=d.get("ccy"),
    ))  # fmt: skip


def _inquiry(d: dict[str, Any]) -> ArchivedInquiry:
    return ArchivedInquiry(
        inq_id=d["inq_id"], direction=InquiryDirection(d["direction"]),
        state=InquiryState(d["state"]), counterparty=d["counterparty"], text=d["text"],
        created_at=datetime.fromisoformat(d["created_at"]), corp_id=d["corp_id"],
        msg_id=d["msg_id"], seq_no=d["seq_no"], credit_ref=d["credit_ref"],
        orgnl_msg_id=d["orgnl_msg_id"], orgnl_tx_id=d["orgnl_tx_id"],
        request_msg_id=d["request_msg_id"], reply_text=d["reply_text"],
        replied_at=_opt_at(d["replied_at"]), out_msg_id=d["out_msg_id"],
        engine=None if d.get("engine") is None else Engine(d["engine"]),
    )  # fmt: skip


def _credit(d: dict[str, Any]) -> ArchivedCredit:
    return ArchivedCredit(
        gw_ref=d["gw_ref"], engine=Engine(d["engine"]), msg_id=d["msg_id"], tx_id=d["tx_id"],
        sender=d["sender"], work_date=date.fromisoformat(d["work_date"]),
        creditor_acct=d["creditor_acct"], creditor_name=d["creditor_name"],
        debtor_acct=d["debtor_acct"], debtor_name=d["debtor_name"],
        debtor_bank=d["debtor_bank"], amount=Decimal(d["amount"]), purpose=d["purpose"],
        corp_id=d["corp_id"], state=CreditState(d["state"]),
        check_attempts=int(d["check_attempts"]), next_check_at=_opt_at(d["next_check_at"]),
        ccy=d.get("ccy") or "CNY", screening=d.get("screening"),
        end_to_end_id=d["end_to_end_id"], received_at=datetime.fromisoformat(d["received_at"]),
        netting_round=d["netting_round"], updated_at=datetime.fromisoformat(d["updated_at"]),
        node=d["node"],
    )  # fmt: skip


def _netting_round(d: dict[str, Any]) -> ArchivedNettingRound:
    def side(who: str) -> Figures:
        return Figures(
            int(d[f"{who}_dbt_cnt"]), Decimal(d[f"{who}_dbt_sum"]),
            int(d[f"{who}_cdt_cnt"]), Decimal(d[f"{who}_cdt_sum"]),
        )  # fmt: skip

    return ArchivedNettingRound(
        work_date=date.fromisoformat(d["work_date"]), round=int(d["round"]),
        counterparty=d["counterparty"], ours=side("our"), theirs=side("their"),
        matched=bool(d["matched"]), items_netted=int(d["items_netted"]),
        at=datetime.fromisoformat(d["at"]), node=d["node"],
    )  # fmt: skip


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _exchange(d: dict[str, Any]) -> Exchange:
    return Exchange(
        d["gw_ref"], _b64(d["request_b64"]), _b64(d["response_b64"]),
        datetime.fromisoformat(d["at"]),
    )  # fmt: skip


def _inbound_message(d: dict[str, Any]) -> InboundMessage:
    return InboundMessage(
        msg_id=d["msg_id"], msg_tp=d["msg_tp"], sndr=d["sndr"], topic=d["topic"], ref=d["ref"],
        payload=_b64(d["payload_b64"]), received_at=datetime.fromisoformat(d["received_at"]),
    )  # fmt: skip


def _operator_action(d: dict[str, Any]) -> OperatorAction:
    return OperatorAction(
        at=datetime.fromisoformat(d["at"]), uid=int(d["uid"]), operator=d["operator"],
        action=ActionKind(d["action"]), target=d["target"], reason=d["reason"],
        forced=bool(d["forced"]),
    )  # fmt: skip


def _state_change(d: dict[str, Any]) -> ArchivedStateChange:
    return ArchivedStateChange(
        kind=d["change_kind"], subject=d["subject"], state=d["state"],
        at=datetime.fromisoformat(d["at"]), detail=d["detail"], node=d["node"], seq=d["seq"],
        prev_hash=d["prev_hash"], hash=d["hash"],
    )  # fmt: skip


_READERS: Final[dict[str, Callable[[dict[str, Any]], Archived]]] = {
    "state_change": _state_change,
    "notification": _notification,
    "inquiry": _inquiry,
    "incoming_credit": _credit,
    "netting_round": _netting_round,
    "exchange": _exchange,
    "inbound_message": _inbound_message,
    "operator_action": _operator_action,
}


def read_archive(path: Path) -> Iterator[Archived]:
    """The records of one archive file, in file order; ``ValueError`` on a foreign file."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline() or "{}")
        if header.get("kind") != "archive" or header.get("format") not in READABLE_FORMATS:
            raise ValueError("not a journal archive of a known format")
        for line in fh:
            if line.strip():
                yield _parse(json.loads(line))


__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "ArchiveFile",
    "Archived",
    "ArchivedCredit",
    "ArchivedDailyTotal",
    "ArchivedInquiry",
    "ArchivedItem",
    "ArchivedNettingRound",
    "ArchivedNotification",
    "ArchivedOutbound",
    "ArchivedRequest",
    "ArchivedStateChange",
    "ArchivedTransition",
    "amount_text",
    "daily_total_line",
    "day_text",
    "instant_text",
    "item_line",
    "opt_amount_text",
    "outbound_line",
    "payload_text",
    "read_archive",
    "request_line",
    "transition_line",
]
