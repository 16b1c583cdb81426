"""The CPU-heavy stages of the pipeline, run in worker processes.

A ``Desk`` holds what those stages need (the CorpLink codec with its XSD, the
request verifier with trust store and enrolment registry, the gateway's
signing keys) and does the work that costs CPU: parse → schema → signature →
credentials → typed request on the way in; render → sign on the way out; and
seal/open of clearing envelopes.  It never touches the journal, sockets or the
clock: ``now`` is passed in (docs/architecture.md §7, principle 5), so a desk is a pure
function of its inputs and can live in any process.

Order of checks (docs/protocol.md §8): 1002 → 1003/1004 → [per-CorpId rate, in the
event loop] → 2001–2007 → [3001/3002 in the event loop] → 4004/4006 (reported
back as ``deferred`` so the event loop applies them after replay/freshness).

Batches (PAYROLL, PAIN001, MT101) are admitted as a whole (docs/protocol.md §4):
every item's amount goes through the credential checks (a refusal names the
first offending item's ``SeqNo``), every payer account through enrolment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from lxml import etree

from gateway.clearing import ccms, documents, swift
from gateway.clearing.envelope import CREDIT_MSG_TPS
from gateway.codec.corplink import BusinessRuleError, CorpLinkCodec, serialize
from gateway.codec.foreign import AmountCheck, cny_only
from gateway.codec.xmlparse import parse_body
from gateway.config import KeysConfig
from gateway.drafts.documents import parse_document, read_presentment
from gateway.drafts.records import Presentment
from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.journal.records import QueuedItem, TxResult
from gateway.keys.enrolment import Registry
from gateway.keys.kinds import KindPolicy
from gateway.keys.ring import KeyRing, ring_from_config
from gateway.keys.trust import TrustStore, fingerprint
from gateway.keys.verifier import RequestVerifier
from gateway.keys.xmldsig import Verified, sign_enveloped, verify_pinned
from gateway.model import Batch, DraftApply, Head, Request, Response, Transfer, TrnCode
from gateway.routing.currencies import CurrencyTable, decimals


@dataclass(frozen=True)
class DeskSetup:
    """Everything a worker process needs to build its desk (picklable: paths and values)."""

    schema_path: Path
    client_ca: tuple[Path, ...]
    crls: tuple[Path, ...]
    deny_list: Path | None
    enrolment: Path
    keys: KeysConfig  # the ring and single-file key names (gateway.keys.ring)
    keys_dir: Path
    usbkey_oids: frozenset[str]
    file_oids: frozenset[str]
    stale_crl_policy: str = "fail_closed"
    passphrase: bytes | None = None
    require_encrypted: bool = False  # production: unencrypted private keys are refused
    pain001_xsd_dir: Path | None = None  # codec.pain001_xsd_dir: official ISO schema folder
    # fx.currencies (docs/foreign-currency.md §2); None when bank.bics is empty: CNY only
    currencies: tuple[tuple[str, int], ...] | None = None


@dataclass(frozen=True)
class Refusal:
    """A refusal with what could be read of the Head (empty when unparsed, docs/protocol.md §8)."""

    code: RetCode
    detail: str | None
    trn_code: str = ""
    corp_id: str = ""
    msg_id: str = ""
    encoding: str = "UTF-8"
    stage: str = "decode"
    retry_after_ms: int | None = None

    @property
    def ret_msg(self) -> str:
        if not self.detail or self.detail == self.code.text:
            return self.code.text
        return f"{self.code.text}: {self.detail}"


@dataclass(frozen=True)
class Inspection:
    """Outcome of the inbound CPU stages for one frame."""

    request: Request | None = None
    refusal: Refusal | None = None
    deferred: Refusal | None = None  # a business-rule refusal to apply after replay checks
    head: Head | None = None  # with ``deferred`` when no typed request could be built
    digest: str = ""
    daily_cap: Decimal | None = None  # the operator's daily limit (docs/protocol.md §6)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundClearing:
    """A verified inbound clearing message, reduced to what the handlers apply.

    ``sndr`` and ``work_date`` come from the envelope; at most one of the
    document fields is set, by MsgTp (docs/clearing-link.md §4).
    """

    msg_tp: str
    msg_id: str
    orgnl_msg_id: str | None = None
    results: tuple[TxResult, ...] = ()
    sndr: str = ""
    work_date: date | None = None
    netting: ccms.NettingNotice | None = None
    settlement: ccms.SettlementNotice | None = None
    inquiry: ccms.InquiryDoc | None = None
    reply: ccms.ReplyDoc | None = None
    credits: tuple[documents.CreditTx, ...] = ()
    presentment: Presentment | None = None  # intra.draft.present (docs/bank-drafts.md §3)
    # an incoming swift.008 (docs/foreign-currency.md §4) and its currency's minor units
    swift_credit: swift.IncomingSwiftCredit | None = None
    minor_units: int | None = None


class Desk:
    """The CPU stages of one process (see module docstring)."""

    def __init__(self, setup: DeskSetup) -> None:
        self.setup = setup
        amount_check: AmountCheck = cny_only
        self._minor_units = dict(setup.currencies or ())  # decimals of intra.111 amounts
        if setup.currencies is not None:
            amount_check = CurrencyTable(dict(setup.currencies)).check_amount
        self.codec = CorpLinkCodec(
            setup.schema_path, pain001_xsd_dir=setup.pain001_xsd_dir, amount_check=amount_check
        )
        trust = TrustStore.from_files(
            list(setup.client_ca),
            list(setup.crls),
            setup.deny_list,
            stale_crl_policy=setup.stale_crl_policy,
        )
        self.registry = Registry.load(setup.enrolment)
        self.kinds = KindPolicy(usbkey_oids=setup.usbkey_oids, file_oids=setup.file_oids)
        self.verifier = RequestVerifier(trust, self.registry, self.kinds)
        # The gateway's own keys and the clearing systems' certificates, with
        # rotation: which version signs or verifies depends on the instant.
        self.ring: KeyRing = ring_from_config(
            setup.keys,
            setup.keys_dir,
            setup.passphrase,
            require_encrypted=setup.require_encrypted,
        )

    # -- inbound CorpLink -------------------------------------------------
    def inspect(
        self, body: bytes, peer_ip: str, now: datetime, corp_retry_after_ms: int | None = None
    ) -> Inspection:
        """1002 → 1003/1004 → [5001] → 2001–2007, then the typed request (docs/protocol.md §8).

        ``corp_retry_after_ms`` is set by the event loop when this CorpId is over
        its rate: the request is then refused with 5001 right after the schema
        check, before any signature CPU is spent ("cheapest first").
        """
        timings: dict[str, float] = {}
        t = time.perf_counter()
        try:
            parsed = parse_body(body)
        except GatewayError as exc:
            return Inspection(refusal=Refusal(exc.code, exc.detail, stage="parse"))
        root, encoding = parsed.root, parsed.encoding
        head = self.codec.read_head(root)

        def refuse(exc: GatewayError, stage: str) -> Inspection:
            return Inspection(
                refusal=Refusal(
                    exc.code, exc.detail, head.trn_code, head.corp_id, head.msg_id, encoding, stage
                ),
                timings=timings,
            )

        try:
            self.codec.validate(root)
            self.codec.check_payload(root)
        except GatewayError as exc:
            return refuse(exc, "schema")
        timings["decode"] = time.perf_counter() - t
        if corp_retry_after_ms is not None:
            return Inspection(
                refusal=Refusal(
                    RetCode.RATE_LIMITED,
                    "request rate of this CorpId",
                    head.trn_code,
                    head.corp_id,
                    head.msg_id,
                    encoding,
                    "admission",
                    corp_retry_after_ms,
                ),
                timings=timings,
            )
        t = time.perf_counter()
        try:
            verified = self.verifier.verify_signature(root)
        except GatewayError as exc:
            return refuse(exc, "signature")
        business: BusinessRuleError | None = None
        try:
            request: Request | None = self.codec.decode(verified.signed_root, encoding)
        except BusinessRuleError as exc:  # 4004: answered after 2002–2007 and 3001/3002 (§8)
            request, business = None, exc
        except GatewayError as exc:
            return refuse(exc, "decode")
        req_head = request.head if request is not None else business.head  # type: ignore[union-attr]
        amounts = _amounts(request, business)
        try:
            creds = self.verifier.check_credentials(
                verified,
                req_head.corp_id,
                req_head.oper_id,
                req_head.trn_code,
                amounts,
                peer_ip,
                now,
                currencies=_currencies(request, business),
            )
        except GatewayError as exc:
            if exc.code is RetCode.NOT_PERMITTED and request is not None:
                exc = self._name_item(exc, verified, req_head, request)
            return refuse(exc, "credentials")
        if business is not None:
            return Inspection(
                deferred=Refusal(
                    business.code,
                    business.detail,
                    req_head.trn_code,
                    req_head.corp_id,
                    req_head.msg_id,
                    encoding,
                    "business",
                ),
                head=business.head,
                digest=business.digest,
                timings=timings,
            )
        assert request is not None  # noqa: S101 - decode returned or raised BusinessRuleError
        timings["verify"] = time.perf_counter() - t
        request = Request(
            head=request.head,
            body=request.body,
            digest=request.digest,
            encoding=request.encoding,
            signer=creds.signer,
        )
        deferred = None
        if isinstance(request.body, Transfer | Batch | DraftApply):
            try:
                self._check_payers(request.head, request.body)
            except GatewayError as exc:
                deferred = Refusal(
                    exc.code,
                    exc.detail,
                    head.trn_code,
                    head.corp_id,
                    head.msg_id,
                    encoding,
                    "business",
                )
        cap = self.kinds.daily_cap(creds.signer.kind, creds.operator.daily_limit)
        return Inspection(request=request, deferred=deferred, timings=timings, daily_cap=cap)

    def _check_payers(self, head: Head, body: Transfer | Batch | DraftApply) -> None:
        """4006 unless every payer account is enrolled for CorpId (docs/protocol.md §4, §8).

        A batch is refused as a whole.  PAIN001 and MT101 may name a payer per
        instruction or transaction, so their refusal names the first item of
        the offending one; a PAYROLL has one ``PayerAcct`` for all its items.
        """
        if isinstance(body, Transfer | DraftApply):
            self.registry.check_account(head.corp_id, body.payer_acct)
            return
        for acct, seq_no in body.payer_accounts():
            try:
                self.registry.check_account(head.corp_id, acct)
            except GatewayError as exc:
                if head.trn_code == TrnCode.PAYROLL:
                    raise
                raise GatewayError(exc.code, f"{exc.detail} (SeqNo {seq_no})") from None

    def _name_item(
        self, exc: GatewayError, verified: Verified, head: Head, request: Request
    ) -> GatewayError:
        """A batch's 2006 for an amount names the first offending item (docs/protocol.md §4).

        Run only on the refusal path: the item is found by re-checking the
        kind's and the operator's per-item limits one amount at a time,
        provided the request passes them with no amounts at all (otherwise
        the refusal is about the TrnCode or the certificate, not an item).
        """
        body = request.body
        if not isinstance(body, Batch):
            return exc
        kind = self.kinds.kind_of(verified.signer)
        try:
            operator = self.registry.check_signer(
                head.corp_id, head.oper_id, fingerprint(verified.signer)
            )
            self.kinds.check(kind, head.trn_code, ())
        except GatewayError:
            return exc
        corp = self.registry.corporate(head.corp_id)
        if corp is not None and corp.trn_codes is not None and head.trn_code not in corp.trn_codes:
            return exc
        for item in body.items:
            amount = item.transfer.amount
            try:
                self.kinds.check(kind, head.trn_code, (amount,), currencies=(item.transfer.ccy,))
            except GatewayError as item_exc:
                return GatewayError(item_exc.code, f"{item_exc.detail} (SeqNo {item.seq_no})")
            if operator.max_item is not None and amount > operator.max_item:
                return GatewayError(exc.code, f"{exc.detail} (SeqNo {item.seq_no})")
        return exc

    # -- outbound CorpLink ------------------------------------------------
    def render(self, rsp: Response) -> bytes:
        """Render and sign a response (every response is signed, docs/protocol.md §8)."""
        root = self.codec.render(rsp)
        sign_enveloped(root, self.ring.signer("response", rsp.rsp_time))
        return serialize(root, rsp.encoding)

    # -- clearing link ----------------------------------------------------
    def seal(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        items: Sequence[QueuedItem],
    ) -> bytes:
        """Build, sign and serialise one outbound clearing message (docs/clearing-link.md §3–4).

        The Document follows ``msg_tp``: pacs.003 for a beps.127 debit package,
        pacs.008 for the credit types.
        """
        doc = documents.build_payment_document(
            msg_tp, msg_id, created, work_date, items, sender, self._minor_units
        )
        env = documents.build_envelope(msg_tp, msg_id, sender, receiver, created, work_date, doc)
        sign_enveloped(env, self.ring.signer("clearing", created))
        return documents.serialize(env)

    def open_inbound(self, payload: bytes, now: datetime) -> InboundClearing:
        """Verify (pinned clearing certificates) and reduce an inbound message.

        Raises ``GatewayError`` (signature) or ``ValueError`` (malformed); the
        caller drops and counts such messages, never acts on them (docs/clearing-link.md §3).
        """
        root = parse_body(payload).root
        verified = verify_pinned(root, self.ring.verifying_certs("clearing_peer", now))
        env = documents.parse_envelope(verified.signed_root)
        if env.msg_tp == "ccms.990":
            rcpt = documents.parse_receipt(env.document)
            return InboundClearing(env.msg_tp, env.msg_id, rcpt.orgnl_msg_id, sndr=env.sndr)
        if env.msg_tp == "ccms.900":
            orgnl, results = documents.parse_pacs002(env.document)
            return InboundClearing(env.msg_tp, env.msg_id, orgnl, tuple(results), sndr=env.sndr)
        tp, doc = env.msg_tp, env.document
        base = InboundClearing(tp, env.msg_id, sndr=env.sndr, work_date=env.work_date)
        if tp == ccms.MSG_TP_NETTING:
            return replace(base, netting=ccms.parse_netting(doc))
        if tp == ccms.MSG_TP_SETTLE:
            return replace(base, settlement=ccms.parse_settlement(doc))
        if tp == ccms.MSG_TP_INQUIRY:
            return replace(base, inquiry=ccms.parse_inquiry(doc))
        if tp == ccms.MSG_TP_REPLY:
            return replace(base, reply=ccms.parse_reply(doc))
        if tp in CREDIT_MSG_TPS:
            _hdr, txs = documents.parse_pacs008(doc)
            return replace(base, credits=tuple(txs))
        if tp == DRAFT_PRESENT:
            return replace(base, presentment=read_presentment(doc))
        return base

    def seal_document(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        document: bytes,
    ) -> bytes:
        """Wrap a Document built by the caller (the draft messages, docs/bank-drafts.md §3)
        in a signed envelope.  The bytes are our own, re-read with the strict parser."""
        doc = parse_document(document)
        env = documents.build_envelope(msg_tp, msg_id, sender, receiver, created, work_date, doc)
        sign_enveloped(env, self.ring.signer("clearing", created))
        return documents.serialize(env)

    def seal_swift(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        document: bytes,
    ) -> bytes:
        """Wrap a SWIFT Document (built by the SWIFT engine) in a signed envelope whose
        ``Sndr`` and ``Rcvr`` are BICs (docs/foreign-currency.md §4); signed with the key
        that signs our clearing messages."""
        doc = parse_document(document)
        env = swift.build_swift_envelope(msg_tp, msg_id, sender, receiver, created, work_date, doc)
        sign_enveloped(env, self.ring.signer("clearing", created))
        return documents.serialize(env)

    def open_swift(self, payload: bytes, now: datetime) -> InboundClearing:
        """Verify (pinned ``swift_peer`` certificates) and reduce a ``swift.ack``,
        ``swift.002`` or incoming ``swift.008`` (docs/foreign-currency.md §4) to what the
        journal applies.

        A NAK and a RJCT become one ``RJCT`` result with the reason; an ACK has no
        result; ``orgnl_msg_id`` names our swift.008.  An incoming swift.008 comes back
        as ``swift_credit`` with its currency's minor units (a currency not taken, or
        too many decimals, is malformed).  Another MsgTp comes back with none of them
        (the caller ignores it).  ``GatewayError`` for the signature,
        ``ValueError`` (``SwiftDocumentError``) for a malformed message.
        """
        root = parse_body(payload).root
        verified = verify_pinned(root, self.ring.verifying_certs("swift_peer", now))
        env = swift.parse_swift_envelope(verified.signed_root)
        base = InboundClearing(env.msg_tp, env.msg_id, sndr=env.sndr, work_date=env.work_date)
        if env.msg_tp == swift.MSG_TP_SWIFT_ACK:
            ack = swift.read_swift_ack(env.document)
            results: tuple[TxResult, ...] = ()
            if not ack.accepted:
                results = (TxResult(None, None, "RJCT", ack.reason_code, ack.reason_text),)
            return replace(base, orgnl_msg_id=ack.orgnl_msg_id, results=results)
        if env.msg_tp == swift.MSG_TP_SWIFT_STATUS:
            st = swift.read_swift_002(env.document)
            result = TxResult(
                st.orgnl_tx_id, st.orgnl_end_to_end_id, st.status, st.reason_code, st.reason_text
            )
            return replace(base, orgnl_msg_id=st.orgnl_msg_id, results=(result,))
        if env.msg_tp == swift.MSG_TP_SWIFT_CREDIT:
            credit = swift.read_swift_008(env.document)
            return replace(base, swift_credit=credit, minor_units=self._credit_units(credit))
        return base

    def _credit_units(self, credit: swift.IncomingSwiftCredit) -> int:
        """The minor units of an incoming credit's currency: its amount is judged against
        ``fx.currencies`` like any other (docs/foreign-currency.md §2, §4)."""
        units = self._minor_units.get(credit.ccy)
        if units is None:
            raise swift.SwiftDocumentError(f"IntrBkSttlmAmt/@Ccy {credit.ccy} is not taken")
        if decimals(credit.amount) > units:
            raise swift.SwiftDocumentError(
                f"IntrBkSttlmAmt has more decimals than {credit.ccy} has minor units ({units})"
            )
        return units

    def seal_ccms(
        self,
        msg_tp: str,
        msg_id: str,
        sender: str,
        receiver: str,
        created: datetime,
        work_date: date,
        fields: tuple[str, ...],
    ) -> bytes:
        """Build, sign and serialise a ccms.314 inquiry or ccms.315 reply (docs/clearing-link.md
        §4)."""
        doc: etree._Element
        if msg_tp == ccms.MSG_TP_INQUIRY:
            inq_id, orgnl_msg_id, orgnl_tx_id, text = fields
            doc = ccms.build_inquiry(ccms.InquiryDoc(inq_id, orgnl_msg_id, orgnl_tx_id, text))
        elif msg_tp == ccms.MSG_TP_REPLY:
            inq_id, text = fields
            doc = ccms.build_reply(ccms.ReplyDoc(inq_id, text))
        else:
            raise ValueError(f"seal_ccms cannot build {msg_tp}")
        env = documents.build_envelope(msg_tp, msg_id, sender, receiver, created, work_date, doc)
        sign_enveloped(env, self.ring.signer("clearing", created))
        return documents.serialize(env)


def _amounts(request: Request | None, business: BusinessRuleError | None) -> Sequence[Decimal]:
    """The item amounts the credential checks judge (docs/protocol.md §6): one for PAY, one
    per item of a batch, those that decoded when an amount broke a rule (4004)."""
    if request is None:
        return business.amounts if business is not None else ()
    if isinstance(request.body, Transfer | DraftApply):
        return (request.body.amount,)
    if isinstance(request.body, Batch):
        return request.body.amounts()
    return ()


def _currencies(request: Request | None, business: BusinessRuleError | None) -> frozenset[str]:
    """The ``Ccy`` of every payment item, for the file certificate's CNY-only rule (2006,
    docs/foreign-currency.md §1): as written, also when an amount broke a rule (4004).
    A draft's currency is the draft rules' (4004), not a credential's."""
    if request is None:
        return business.currencies if business is not None else frozenset()
    if isinstance(request.body, Transfer):
        return frozenset({request.body.ccy})
    if isinstance(request.body, Batch):
        return frozenset(item.transfer.ccy for item in request.body.items)
    return frozenset()


DRAFT_PRESENT = "intra.draft.present"


# -- process-global desk for worker processes --------------------------------

_DESK: Desk | None = None
_DESK_ERROR: ConfigError | None = None


def open_desk(setup: DeskSetup) -> Desk:
    """Build a desk; any failure is one ``ConfigError`` line naming the file.

    The start-up checks (``gateway.preflight``, ``gatewayd --check-config``) and
    every worker build their desk through here, so both report the same line.
    """
    try:
        return Desk(setup)
    except ConfigError:
        raise
    except OSError as exc:
        where = exc.filename or "key, schema or registry file"
        raise ConfigError(f"{where}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - a start-up failure is reported as one line
        raise ConfigError(f"cannot build the desk: {type(exc).__name__}: {exc}") from None


def init_worker(setup: DeskSetup) -> None:
    """ProcessPoolExecutor initializer: build this process's desk once.

    A failure is kept, not raised: an initializer that raises breaks the pool
    (``BrokenProcessPool``) and prints a traceback from the child.  Kept, it
    comes back to gatewayd as the ``ConfigError`` of the first call (the
    start-up ping), which prints it as one line.
    """
    global _DESK, _DESK_ERROR  # noqa: PLW0603 - one desk per worker process, by design
    try:
        _DESK = open_desk(setup)
    except ConfigError as exc:
        _DESK_ERROR = exc


def _desk() -> Desk:
    if _DESK_ERROR is not None:
        raise _DESK_ERROR
    if _DESK is None:  # pragma: no cover - initializer always runs first
        raise RuntimeError("worker desk not initialised")
    return _DESK


@dataclass(frozen=True)
class WorkerFailure:
    """An unexpected exception inside a batched call, carried back by value."""

    error: str


#: The desk methods a batch may call (anything else is a programming error).
_OPS = frozenset(
    {
        "inspect",
        "render",
        "seal",
        "seal_ccms",
        "seal_document",
        "open_inbound",
        "seal_swift",
        "open_swift",
    }
)


def w_many(calls: list[tuple[str, tuple[object, ...]]]) -> list[object]:
    """Run a batch of desk calls in this worker (one IPC round trip for many frames).

    Expected refusals come back as values (``Inspection``) or exceptions of the
    call (e.g. ``GatewayError`` from ``open_inbound``); anything else becomes a
    ``WorkerFailure`` so one bad call cannot fail its neighbours.
    """
    desk = _desk()
    out: list[object] = []
    for op, args in calls:
        try:
            if op not in _OPS:
                raise ValueError(f"unknown desk call {op!r}")
            out.append(getattr(desk, op)(*args))
        except (GatewayError, ValueError) as exc:
            out.append(exc)
        except Exception as exc:  # noqa: BLE001 - reported per call, never leaks to a client
            out.append(WorkerFailure(f"{type(exc).__name__}: {exc}"[:300]))
    return out


def w_ping() -> int:
    """Used at start to make sure every worker has built its desk."""
    _desk()
    return os.getpid()
