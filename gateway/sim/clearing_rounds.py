"""The clearing simulator's BEPS netting, incoming credits and inquiries (docs/clearing-link.md §4,
§6).

A component of :class:`gateway.sim.clearing.ClearingSimulator`, which calls
its hooks while answering the gateway and publishes through it; like the
simulator it speaks only docs/clearing-link.md and never imports the gateway's
journal store, engines or pipeline.

- **Netting** (``netting`` on): BEPS packages (beps.121 credits, beps.127
  debits) are answered ``ACSP`` (accepted for netting) instead of ``ACSC``,
  and every accepted item enters a ledger per (work date, counterparty = the
  package's ``Rcvr``): our credits on the counterparty's debit side (the
  gateway's bank pays), our debit collections on its credit side (it pays
  us), as docs/clearing-link.md §4's ``CptyPos`` defines them.  A round
  (:meth:`ClearingRounds.run_netting_round`, or every ``netting_interval``
  seconds) publishes one ``beps.netting`` per work date with activity since
  the previous round, then, ``settle_delay_rounds`` later, its
  ``beps.settle``.  An item enters the ledger only after its ACSP was
  published, so the gateway always hears of an item before its round.
- **Incoming credits** (:meth:`ClearingRounds.inject_credit`): an
  hvps.111 / beps.121 / intra.111 from another bank to the gateway; a BEPS
  one counts on its sender's credit side.
- **Inquiries**: :meth:`ClearingRounds.inject_inquiry` sends a ccms.314 to
  the gateway; a ccms.314 from the gateway is answered (after its ccms.990
  and ``reply_delay``) with a ccms.315; a ccms.315 from the gateway is
  recorded.  Both are deduplicated by envelope MsgId (docs/clearing-link.md §1).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import structlog
from lxml import etree

from gateway.clearing.ccms import (
    MAX_TEXT_LEN,
    MSG_TP_INQUIRY,
    MSG_TP_NETTING,
    MSG_TP_REPLY,
    MSG_TP_SETTLE,
    CptyPosition,
    InquiryDoc,
    NettingNotice,
    ReplyDoc,
    SettlementNotice,
    build_inquiry,
    build_netting,
    build_reply,
    build_settlement,
    parse_inquiry,
    parse_reply,
)
from gateway.clearing.envelope import (
    MSG_ID_SEQ_DIGITS,
    MSG_TP_BEPS_DEBIT,
    MSG_TP_FOR_ENGINE,
    Envelope,
    build_envelope,
    in_topic,
    out_msg_id,
    serialize,
)
from gateway.clearing.pacs import MAX35, build_pacs008, parse_amount
from gateway.journal.records import Figures, QueuedItem, TxResult
from gateway.keys.xmldsig import sign_enveloped
from gateway.model import BizType, Engine, Priority
from gateway.sim.msgid_runs import MsgIdRuns

if TYPE_CHECKING:
    from gateway.sim.clearing import ClearingSimConfig

log = structlog.get_logger("gateway.sim.clearing")

#: docs/clearing-link.md §4: the BEPS packages that are netted rather than settled gross.
BEPS_PACKAGES: Final = frozenset({MSG_TP_FOR_ENGINE[Engine.BEPS], MSG_TP_BEPS_DEBIT})
#: Counters this component adds to the simulator's ``stats``.
ROUND_STATS: Final = (
    "accepted_for_netting",
    "netting_rounds",
    "netting_positions",
    "settlements",
    "credits_injected",
    "inquiries_injected",
    "inquiries_received",
    "replies_sent",
    "replies_received",
    "ccms_duplicates",
    "ccms_invalid",
)

#: Publish a signed payload: (topic, payload, MsgTp, MsgId), returns after the PUBACK.
Publish = Callable[[str, bytes, str, str], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], None]
NextMsgId = Callable[[date], str]

_PARTICIPANT = re.compile(r"[0-9]{12}")
_TX_ELEMENTS: Final = ("CdtTrfTxInf", "DrctDbtTxInf")


@dataclass
class _Position:
    """A counterparty's figures accumulating towards the next round."""

    dbt_cnt: int = 0
    dbt_sum: Decimal = Decimal(0)
    cdt_cnt: int = 0
    cdt_sum: Decimal = Decimal(0)

    def add(self, *, credit_side: bool, amount: Decimal) -> None:
        if credit_side:
            self.cdt_cnt += 1
            self.cdt_sum += amount
        else:
            self.dbt_cnt += 1
            self.dbt_sum += amount

    def figures(self, skew: Decimal = Decimal(0)) -> Figures:
        return Figures(self.dbt_cnt, self.dbt_sum + skew, self.cdt_cnt, self.cdt_sum)


def _amounts(document: etree._Element) -> dict[tuple[str | None, str | None], list[Decimal]]:
    """Each transaction's amount by ``(EndToEndId, TxId)``, read like ``transaction_ids``."""
    ns = etree.QName(document).namespace or ""
    found: dict[tuple[str | None, str | None], list[Decimal]] = {}
    for name in _TX_ELEMENTS:
        for tx in document.iter(f"{{{ns}}}{name}"):
            ids: list[str | None] = []
            for leaf in ("EndToEndId", "TxId"):
                el = tx.find(f"{{{ns}}}PmtId/{{{ns}}}{leaf}")
                text = el.text if el is not None and len(el) == 0 else None
                ids.append(text if text and len(text) <= MAX35 else None)
            amount_el = tx.find(f"{{{ns}}}IntrBkSttlmAmt")
            try:
                amount = parse_amount((amount_el.text or "") if amount_el is not None else "", "")
            except ValueError:
                continue
            found.setdefault((ids[0], ids[1]), []).append(amount)
    return found


class ClearingRounds:
    """Netting ledger and rounds, injected credits and inquiries, inquiry answers."""

    def __init__(
        self,
        config: ClearingSimConfig,
        stats: dict[str, int],
        *,
        publish: Publish,
        spawn: Spawn,
        next_msg_id: NextMsgId,
    ) -> None:
        for name in ("netting_interval", "settle_delay_rounds", "reply_delay"):
            if getattr(config, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not _PARTICIPANT.fullmatch(config.gateway_participant):
            raise ValueError("gateway_participant must be 12 digits")
        if not 1 <= len(config.reply_text) <= MAX_TEXT_LEN:
            raise ValueError(f"reply_text must be 1-{MAX_TEXT_LEN} characters")
        self._config = config
        self._stats = stats
        stats.update(dict.fromkeys(ROUND_STATS, 0))
        self._publish = publish
        self._spawn = spawn
        self._next_msg_id = next_msg_id
        #: ccms.315 Rply received from the gateway: InqId → Text
        self.replies_received: dict[str, str] = {}
        #: ccms.314 Inqry received from the gateway: InqId → the inquiry
        self.inquiries_received: dict[str, InquiryDoc] = {}
        self._ledger: dict[date, dict[str, _Position]] = {}
        self._rounds: dict[date, int] = {}
        # MsgIds whose ccms.900 went out (their ACSP items are in the ledger); compact, for as
        # many dates as the MsgId memory's record of late ones
        self._answered: MsgIdRuns[bool] = MsgIdRuns()
        self._ccms_seen: set[str] = set()  # ccms.314/315 MsgIds already handled
        self._to_answer: dict[str, InquiryDoc] = {}  # ccms.314 MsgId → inquiry awaiting reply
        # MsgId → (the participant that would ask about it, its work date); compact (a dict
        # cost ~250 bytes a message), at most ``remember`` runs, whatever their dates
        self._origins: MsgIdRuns[tuple[str, date]] = MsgIdRuns(days=None, max_runs=config.remember)
        # set (and replaced) whenever items are netted or a ccms.314 / ccms.315 is recorded
        self._changed = asyncio.Event()

    def start(self) -> None:
        """Start the scheduled rounds (called by the simulator's ``run``)."""
        if self._config.netting_interval > 0:
            self._spawn(self._round_loop())

    # -- hooks the simulator calls while answering a new message -----------------

    def note(self, env: Envelope) -> None:
        """Before the ccms.990: record a ccms.314/315, remember a payment's receiver."""
        if env.msg_tp not in (MSG_TP_INQUIRY, MSG_TP_REPLY):
            if _PARTICIPANT.fullmatch(env.rcvr):
                self._remember(env.msg_id, env.rcvr, env.work_date)
            return
        if env.msg_id in self._ccms_seen:  # answers forgotten, message re-sent
            self._stats["ccms_duplicates"] += 1
            return
        self._ccms_seen.add(env.msg_id)
        parse = parse_inquiry if env.msg_tp == MSG_TP_INQUIRY else parse_reply
        try:
            doc = parse(env.document)
        except ValueError as exc:
            self._stats["ccms_invalid"] += 1
            log.warning(
                "clearing_sim_bad_ccms", msg_id=env.msg_id, msg_tp=env.msg_tp, reason=str(exc)
            )
            return
        if isinstance(doc, InquiryDoc):
            self.inquiries_received[doc.inq_id] = doc
            self._to_answer[env.msg_id] = doc
            self._stats["inquiries_received"] += 1
        else:
            self.replies_received[doc.inq_id] = doc.text
            self._stats["replies_received"] += 1
        self._note_change()
        log.info("clearing_sim_ccms_received", msg_id=env.msg_id, msg_tp=env.msg_tp)

    async def after_receipt(self, env: Envelope, reply_topic: str) -> None:
        """After the ccms.990 of a gateway ccms.314: the ccms.315 (docs/clearing-link.md §4)."""
        inquiry = self._to_answer.pop(env.msg_id, None)
        if inquiry is None:
            return
        if self._config.reply_delay > 0:
            await asyncio.sleep(self._config.reply_delay)
        # the bank asked answers, relayed by the clearing system
        sndr = env.rcvr if _PARTICIPANT.fullmatch(env.rcvr) else self._config.participant
        msg_id = self._msg_id(sndr, env.work_date)
        document = build_reply(ReplyDoc(inquiry.inq_id, self._config.reply_text))
        await self._send(reply_topic, MSG_TP_REPLY, msg_id, sndr, env.sndr, env.work_date, document)
        self._stats["replies_sent"] += 1

    def statuses(self, env: Envelope, results: list[TxResult]) -> list[TxResult]:
        """With netting on, a BEPS package's settled items become ACSP (docs/clearing-link.md
        §4)."""
        if not self._config.netting or env.msg_tp not in BEPS_PACKAGES:
            return results
        return [replace(r, status="ACSP") if r.status == "ACSC" else r for r in results]

    def accepted(self, env: Envelope, results: list[TxResult]) -> None:
        """After the ccms.900 was published: its ACSP items enter the round ledger.

        Once per MsgId: a late re-send is decided again (the same results) but
        not netted again.  Every answered MsgId is noted, not only the netted
        packages', so that the gateway's consecutive MsgIds make a few runs.
        """
        if env.msg_id in self._answered:
            return
        self._answered.put(env.msg_id, True)
        if env.msg_tp not in BEPS_PACKAGES or not any(r.status == "ACSP" for r in results):
            return
        if not _PARTICIPANT.fullmatch(env.rcvr):
            log.warning("clearing_sim_not_netted", msg_id=env.msg_id, reason="Rcvr not 12 digits")
            return
        amounts = _amounts(env.document)
        position = self._ledger.setdefault(env.work_date, {}).setdefault(env.rcvr, _Position())
        credit_side = env.msg_tp == MSG_TP_BEPS_DEBIT  # our collection: the counterparty pays
        for result in results:
            found = amounts.get((result.end_to_end_id, result.tx_id))
            if result.status != "ACSP" or not found:
                continue
            position.add(credit_side=credit_side, amount=found.pop(0))
            self._stats["accepted_for_netting"] += 1
        self._note_change()

    def _note_change(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_until(self, check: Callable[[], bool]) -> None:
        """Return once ``check()`` holds, asking again after each change it could see:
        items accepted into the ledger, a ccms.314 or ccms.315 recorded."""
        while not check():
            await self._changed.wait()

    async def wait_netted(self, count: int) -> None:
        """Return once ``count`` package items in all were accepted into the ledger.

        An item enters the ledger just after its ACSP was published, so a
        peer that saw the ccms.900 awaits this before asking for a round.
        """
        await self.wait_until(lambda: self._stats["accepted_for_netting"] >= count)

    # -- netting rounds ------------------------------------------------------------

    async def run_netting_round(
        self, work_date: date | None = None, *, skew: Decimal | None = None
    ) -> list[NettingNotice]:
        """Run one round now: a ``beps.netting`` per work date with activity, then its
        ``beps.settle`` after ``settle_delay_rounds`` (docs/clearing-link.md §4).

        ``work_date`` limits the round to that date.  ``skew`` (default: the
        config's ``netting_skew``) is added to the first position's DbtSum to
        simulate a clearing system that disagrees with the gateway; the
        notice stays internally consistent (Net recomputed) and the
        settlement settles the notified total.  Returns the notices
        published (empty when nothing happened since the last round).
        """
        skew = self._config.netting_skew if skew is None else skew
        dates = [work_date] if work_date is not None else sorted(self._ledger)
        notices: list[NettingNotice] = []
        for day in dates:
            book = self._ledger.get(day)
            if not book:
                continue
            round_no = self._rounds.get(day, 0) + 1
            positions = [
                CptyPosition(cpty, book[cpty].figures(skew if i == 0 else Decimal(0)))
                for i, cpty in enumerate(sorted(book))
            ]
            notice = NettingNotice(day, round_no, tuple(positions))
            document = build_netting(notice)  # ValueError (e.g. a skew below zero) changes nothing
            del self._ledger[day]
            self._rounds[day] = round_no
            msg_id = self._msg_id(self._config.participant, day)
            await self._send(
                self._beps_in(), MSG_TP_NETTING, msg_id, self._config.participant,
                self._config.gateway_participant, day, document,
            )  # fmt: skip
            self._stats["netting_rounds"] += 1
            self._stats["netting_positions"] += len(positions)
            log.info(
                "clearing_sim_netting",
                work_date=day.isoformat(),
                round=round_no,
                net=str(notice.net),
            )
            notices.append(notice)
            self._spawn(self._settle_later(notice))
        return notices

    async def _settle_later(self, notice: NettingNotice) -> None:
        if self._config.settle_delay_rounds > 0:
            await asyncio.sleep(self._config.settle_delay_rounds)
        settle = SettlementNotice(notice.work_date, notice.round_no, notice.net)
        msg_id = self._msg_id(self._config.participant, notice.work_date)
        await self._send(
            self._beps_in(), MSG_TP_SETTLE, msg_id, self._config.participant,
            self._config.gateway_participant, notice.work_date, build_settlement(settle),
        )  # fmt: skip
        self._stats["settlements"] += 1

    async def _round_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.netting_interval)
            try:
                await self.run_netting_round()
            except ValueError as exc:
                log.error("clearing_sim_netting_failed", reason=str(exc))  # noqa: TRY400 - config, not a crash

    # -- injected traffic ------------------------------------------------------------

    async def inject_credit(
        self,
        *,
        engine: str,
        sender: str,
        debtor_acct: str,
        debtor_name: str,
        debtor_bank: str,
        creditor_acct: str,
        creditor_name: str,
        amount: Decimal,
        purpose: str | None = None,
        work_date: date | None = None,
    ) -> tuple[str, str]:
        """Publish an incoming hvps.111 / beps.121 / intra.111 to the gateway
        (docs/clearing-link.md §4, §6).

        One ``CdtTrfTxInf`` from ``sender`` (envelope Sndr, a 12-digit
        participant; ``debtor_bank`` is the DbtrAgt) to the gateway's
        participant (Rcvr and CdtrAgt).  Returns ``(envelope MsgId, TxId)``;
        the TxId is unique per injection.  ``ValueError`` for an unknown
        engine or a field the Document cannot carry.
        """
        eng = _clearing_engine(engine)
        day = work_date or self._config.clock.now().date()
        msg_id = self._msg_id(sender, day)
        seq = msg_id[-MSG_ID_SEQ_DIGITS:]
        tx_id, end_to_end = f"SI{day:%Y%m%d}{seq}", f"SE{day:%Y%m%d}{seq}"
        item = QueuedItem(
            item_id=0, tx_id=tx_id, end_to_end_id=end_to_end, corp_id="-", msg_id=end_to_end,
            seq_no=None, engine=eng, receiver=self._config.gateway_participant, work_date=day,
            payer_acct=debtor_acct, payer_name=debtor_name, payee_acct=creditor_acct,
            payee_name=creditor_name, payee_bank_code=self._config.gateway_participant,
            amount=amount, ccy="CNY", priority=Priority.NORM, biz_type=BizType.CREDIT,
            purpose=purpose, queued_at=self._config.clock.now(),
        )  # fmt: skip
        document = build_pacs008(msg_id, self._config.clock.now(), day, [item], debtor_bank)
        topic = in_topic(self._config.topic_prefix, eng)
        msg_tp = MSG_TP_FOR_ENGINE[eng]
        await self._send(
            topic, msg_tp, msg_id, sender, self._config.gateway_participant, day, document
        )
        self._remember(msg_id, sender, day)
        if eng is Engine.BEPS:  # it pays us in the next round
            position = self._ledger.setdefault(day, {}).setdefault(sender, _Position())
            position.add(credit_side=True, amount=amount)
        self._stats["credits_injected"] += 1
        log.info("clearing_sim_credit_injected", msg_id=msg_id, msg_tp=msg_tp, tx_id=tx_id)
        return msg_id, tx_id

    async def inject_inquiry(
        self,
        *,
        orgnl_msg_id: str,
        orgnl_tx_id: str,
        text: str,
        engine: str = "BEPS",
        sender: str | None = None,
        work_date: date | None = None,
    ) -> str:
        """Publish a ccms.314 about ``orgnl_tx_id`` to the gateway; returns its InqId.

        The sender defaults to the bank that would ask: the receiver of a
        gateway message the simulator saw, the sender of a credit it
        injected, else the simulator's own participant.  The InqId is unique
        (20 characters).
        """
        eng = _clearing_engine(engine)
        origin = self._origins.get(orgnl_msg_id)
        sndr = sender or (origin[0] if origin else self._config.participant)
        day = work_date or (origin[1] if origin else self._config.clock.now().date())
        msg_id = self._msg_id(sndr, day)
        inq_id = f"SQ{day:%Y%m%d}{msg_id[-MSG_ID_SEQ_DIGITS:]}"
        document = build_inquiry(InquiryDoc(inq_id, orgnl_msg_id, orgnl_tx_id, text))
        await self._send(
            in_topic(self._config.topic_prefix, eng), MSG_TP_INQUIRY, msg_id, sndr,
            self._config.gateway_participant, day, document,
        )  # fmt: skip
        self._stats["inquiries_injected"] += 1
        return inq_id

    # -- helpers -------------------------------------------------------------------

    def _beps_in(self) -> str:
        return in_topic(self._config.topic_prefix, Engine.BEPS)

    def _msg_id(self, sndr: str, day: date) -> str:
        """sender + date + the simulator's own sequence (docs/clearing-link.md §3): one counter, no
        reuse."""
        msg_id = self._next_msg_id(day)
        if sndr == self._config.participant:
            return msg_id
        return out_msg_id(sndr, day, int(msg_id[-MSG_ID_SEQ_DIGITS:]))

    def _remember(self, msg_id: str, participant: str, day: date) -> None:
        self._origins.put(msg_id, (participant, day))

    async def _send(
        self,
        topic: str,
        msg_tp: str,
        msg_id: str,
        sndr: str,
        rcvr: str,
        day: date,
        document: etree._Element,
    ) -> None:
        """Sign and publish one message the simulator originates (docs/clearing-link.md §3)."""
        root = build_envelope(msg_tp, msg_id, sndr, rcvr, self._config.clock.now(), day, document)
        sign_enveloped(root, self._config.sign_key)
        await self._publish(topic, serialize(root), msg_tp, msg_id)


__all__ = ["BEPS_PACKAGES", "ROUND_STATS", "ClearingRounds"]


def _clearing_engine(name: str) -> Engine:
    """The clearing engine called ``name``; ``ValueError`` for another name and for SWIFT,
    which is the bank's SWIFT interface, not a clearing system this simulator plays."""
    engine = Engine(name)
    if engine is Engine.SWIFT:
        raise ValueError(f"{name!r} is not a clearing engine (INTRA, HVPS or BEPS)")
    return engine
