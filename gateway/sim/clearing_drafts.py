"""The clearing simulator as the bank's clearing centre for drafts (docs/bank-drafts.md §3).

A component of :class:`gateway.sim.clearing.ClearingSimulator`, like
``clearing_rounds``: the simulator parses, verifies and deduplicates every
message by envelope MsgId, then asks this component what a draft message
gets.

- ``intra.draft.issue``, ``.settle`` and ``.refund`` get, after their
  ``ccms.990``, one ``ccms.900`` with a single ``TxInfAndSts`` whose
  ``OrgnlTxId`` is the DraftNo: ACSC, or RJCT with a reason.  The decision
  works like the payments' (a pure function of the seed and the message, so
  a late re-send gets the same one): a share ``draft_reject_ratio`` drawn
  from ``(seed, MsgTp, DraftNo)``, and a trigger a test can aim at, the fen
  of the message's amount (``draft_reject_fen``, per kind: Amount for issue
  and refund, SettleAmount for settle).  A Document that does not read gets
  RJCT ``FF01``, like a malformed payment.
- ``intra.draft.answer`` gets a ``ccms.990`` only, and the answer is
  recorded (PrsntmtId, DraftNo, Result, Rsn) for whoever presented the draft
  (:meth:`ClearingDrafts.wait_answer`).  A second answer to one PrsntmtId
  under another MsgId breaks "answered exactly once" and is counted.

It reads the Documents with ``gateway.drafts.documents``, the same readers
the gateway uses, and never imports the gateway's journal or draft service.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

import structlog
from lxml import etree

from gateway.clearing.documents import Envelope, TxResult
from gateway.drafts.documents import (
    MSG_TP_ANSWER,
    MSG_TP_ISSUE,
    MSG_TP_REFUND,
    MSG_TP_SETTLE,
    NS_CLR,
    STATUS_MSG_TPS,
    DraftDocumentError,
    read_answer,
    read_issue,
    read_refund,
    read_settlement,
)

log = structlog.get_logger("gateway.sim.clearing")

#: docs/bank-drafts.md §3: the Document each draft message type carries.
DRAFT_DOCUMENTS: Final[Mapping[str, str]] = {
    MSG_TP_ISSUE: "DrftIsse",
    MSG_TP_ANSWER: "DrftAnswr",
    MSG_TP_SETTLE: "DrftSttlm",
    MSG_TP_REFUND: "DrftRfnd",
}
#: ``--draft-reject-fen`` kinds: the short name of each message type that gets a ccms.900.
DRAFT_KINDS: Final[Mapping[str, str]] = {
    "issue": MSG_TP_ISSUE,
    "settle": MSG_TP_SETTLE,
    "refund": MSG_TP_REFUND,
}
#: The reason a draft message hit by the fen trigger is rejected with (ISO 20022 codes).
TRIGGER_REASONS: Final[Mapping[str, tuple[str, str]]] = {
    MSG_TP_ISSUE: ("AM04", "insufficient funds"),
    MSG_TP_SETTLE: ("AC04", "closed account number"),
    MSG_TP_REFUND: ("AC04", "closed account number"),
}
#: Counters this component adds to the simulator's ``stats``.
DRAFT_STATS: Final = (
    "draft_statuses",
    "draft_rejected",
    "draft_invalid",
    "draft_answers",
    "draft_answers_repeated",
)

_DRAFT_NO = re.compile(r"[0-9]{20}")
_FEN = re.compile(r"[0-9]{1,2}")


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """An ``intra.draft.answer`` as the centre received it from the gateway."""

    msg_id: str
    prsntmt_id: str
    draft_no: str
    result: str  # ACCP | RJCT
    reason: str | None
    received: datetime


def parse_reject_fen(text: str) -> dict[str, int]:
    """``KIND=NN`` (kind issue, settle or refund) or ``NN`` for all three → MsgTp → fen.

    ``ValueError`` for anything else; the CLI's ``--draft-reject-fen`` reads with it.
    """
    kind, sep, fen_text = text.rpartition("=")
    if not _FEN.fullmatch(fen_text):
        raise ValueError("the fen must be 0-99 (e.g. settle=13)")
    if not sep:
        return dict.fromkeys(DRAFT_KINDS.values(), int(fen_text))
    if kind not in DRAFT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(DRAFT_KINDS)}")
    return {DRAFT_KINDS[kind]: int(fen_text)}


def draft_ids(env: Envelope) -> list[tuple[str | None, str | None]]:
    """``[(None, DraftNo)]`` of a draft message whose Document names one, for the record."""
    draft_no = _draft_no_of(env.document)
    return [(None, draft_no)] if env.msg_tp in DRAFT_DOCUMENTS and draft_no else []


def _draft_no_of(document: etree._Element) -> str | None:
    """The DraftNo of a Document that may not read otherwise (to answer it FF01)."""
    found = document.find(f"{{{NS_CLR}}}DraftNo")
    text = found.text if found is not None and len(found) == 0 else None
    return text if text and _DRAFT_NO.fullmatch(text) else None


def _fen(amount: Decimal) -> int:
    return int((amount * 100) % 100)


class ClearingDrafts:
    """Decides issue, settle and refund; records the gateway's presentment answers."""

    def __init__(
        self,
        stats: dict[str, int],
        *,
        seed: int,
        reject_ratio: float,
        reject_fen: Mapping[str, int],
        reject_reasons: tuple[tuple[str, str], ...],
        format_reject: tuple[str, str],
    ) -> None:
        if not 0.0 <= reject_ratio <= 1.0:
            raise ValueError("draft_reject_ratio must be within 0..1")
        for msg_tp, fen in reject_fen.items():
            if msg_tp not in STATUS_MSG_TPS or not 0 <= fen <= 99:
                raise ValueError("draft_reject_fen maps issue, settle, refund MsgTps to 0-99")
        self._stats = stats
        stats.update(dict.fromkeys(DRAFT_STATS, 0))
        self._seed = seed
        self._ratio = reject_ratio
        self._fen = dict(reject_fen)
        self._reasons = reject_reasons
        self._format_reject = format_reject
        #: PrsntmtId → the first answer the gateway sent for it
        self.answers: dict[str, RecordedAnswer] = {}
        self._changed = asyncio.Event()

    # -- issue, settle, refund ---------------------------------------------------

    def decide(self, env: Envelope) -> tuple[list[TxResult], str | None] | None:
        """The ccms.900 results of an issue, settle or refund and any format error;
        None for every other MsgTp (an answer, a payment, a ccms.314 ...)."""
        if env.msg_tp not in STATUS_MSG_TPS:
            return None
        try:
            draft_no, amount = self._read(env)
        except DraftDocumentError as exc:
            self._stats["draft_invalid"] += 1
            code, text = self._format_reject
            found = _draft_no_of(env.document)
            results = [TxResult(found, None, "RJCT", code, text)] if found else []
            return results, str(exc)[:200]
        return [self._decide_one(env.msg_tp, draft_no, amount)], None

    def _read(self, env: Envelope) -> tuple[str, Decimal]:
        """DraftNo and the amount the fen trigger looks at."""
        if env.msg_tp == MSG_TP_ISSUE:
            issue = read_issue(env.document)
            return issue.draft_no, issue.amount
        if env.msg_tp == MSG_TP_SETTLE:
            settle = read_settlement(env.document)
            return settle.draft_no, settle.settle_amount
        refund = read_refund(env.document)
        return refund.draft_no, refund.amount

    def _decide_one(self, msg_tp: str, draft_no: str, amount: Decimal) -> TxResult:
        digest = hashlib.sha256(f"{self._seed}|{msg_tp}|{draft_no}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if self._fen.get(msg_tp) == _fen(amount):
            code, text = TRIGGER_REASONS[msg_tp]
        elif draw < self._ratio:
            code, text = self._reasons[digest[8] % len(self._reasons)]
        else:
            return TxResult(draft_no, None, "ACSC")
        return TxResult(draft_no, None, "RJCT", code, text)

    def counted(self, results: list[TxResult]) -> None:
        """After the ccms.900 of a draft message was published."""
        self._stats["draft_statuses"] += 1
        self._stats["draft_rejected"] += sum(1 for r in results if r.status == "RJCT")

    # -- answers to presentments ---------------------------------------------------

    def note(self, env: Envelope, received: datetime) -> None:
        """Before the ccms.990 of an ``intra.draft.answer``: record it (first answer kept)."""
        if env.msg_tp != MSG_TP_ANSWER:
            return
        try:
            doc = read_answer(env.document)
        except DraftDocumentError as exc:
            self._stats["draft_invalid"] += 1
            log.warning("clearing_sim_bad_draft_answer", msg_id=env.msg_id, reason=str(exc))
            return
        first = self.answers.get(doc.prsntmt_id)
        if first is not None:
            if first.msg_id != env.msg_id:  # a late re-send of the same MsgId is not one
                self._stats["draft_answers_repeated"] += 1
                log.warning(
                    "clearing_sim_draft_answered_twice",
                    prsntmt_id=doc.prsntmt_id,
                    first_msg_id=first.msg_id,
                    msg_id=env.msg_id,
                )
            return
        reason = doc.answer.reason.value if doc.answer.reason is not None else None
        self.answers[doc.prsntmt_id] = RecordedAnswer(
            env.msg_id, doc.prsntmt_id, doc.draft_no, doc.answer.result.value, reason, received
        )
        self._stats["draft_answers"] += 1
        log.info(
            "clearing_sim_draft_answer",
            prsntmt_id=doc.prsntmt_id,
            draft_no=doc.draft_no,
            result=doc.answer.result.value,
            reason=reason,
        )
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_answer(self, prsntmt_id: str) -> RecordedAnswer:
        """The gateway's answer to ``prsntmt_id``, once it arrived (no timeout of its own)."""
        while (found := self.answers.get(prsntmt_id)) is None:
            await self._changed.wait()
        return found


__all__ = [
    "DRAFT_DOCUMENTS",
    "DRAFT_KINDS",
    "DRAFT_STATS",
    "TRIGGER_REASONS",
    "ClearingDrafts",
    "RecordedAnswer",
    "draft_ids",
    "parse_reject_fen",
]
