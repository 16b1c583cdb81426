"""A corporate ERP client that speaks only CorpLink (docs/protocol.md), for the demo and tests.

It builds request XML by hand as an outside developer would, signs it with
the XMLDSig profile (docs/protocol.md §3), frames it (§1), pipelines requests on
one connection and matches responses by MsgId, verifying every response's
signature against the gateway's published response certificate.

Bodies for every CorpLink TrnCode but the batch ones (PAY, STATUS, NTFY, INQ,
RPLY, BAL, DRAFT, DRAFTRFND; §4) have a builder here; responses are read into
``Reply`` with its ``Status``, ``Notifications``, ``Balance`` and ``Draft``
bodies (§5) as plain client-side dataclasses — never the gateway's own model.
DRAFT notifications read into the same ``Notification`` with their draft
fields (docs/bank-drafts.md §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cryptography import x509
from lxml import etree

from gateway.keys.xmldsig import SigningKey, sign_enveloped, verify_pinned
from gateway.net.framing import HEADER_LEN, encode_frame, parse_header

NS = "urn:corplink:1"
_NSMAP: Any = {None: NS}  # lxml-stubs type the default-namespace key as str
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _el(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    e = etree.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        e.text = text
    return e


@dataclass(frozen=True)
class Payment:
    """What an ERP wants to pay (docs/protocol.md §4 ``Transfer``)."""

    payer_acct: str
    payer_name: str
    payee_acct: str
    payee_name: str
    payee_bank_code: str
    amount: Decimal
    ccy: str = "CNY"
    priority: str | None = None
    biz_type: str | None = None
    purpose: str | None = None
    payee_bic: str | None = None  # docs/foreign-currency.md §1
    payee_country: str | None = None
    chrg_br: str | None = None


@dataclass(frozen=True)
class DraftApplication:
    """What an ERP applies for with DRAFT (docs/bank-drafts.md §2 ``DraftApply``)."""

    payer_acct: str
    payer_name: str
    payee_name: str
    amount: Decimal
    scope: str = "NATIONAL"  # or PROVINCIAL
    ccy: str = "CNY"
    purpose: str | None = None


def build_request(
    trn_code: str,
    corp_id: str,
    oper_id: str,
    msg_id: str,
    send_time: datetime,
    body: etree._Element,
) -> etree._Element:
    root = etree.Element(f"{{{NS}}}CorpLink", nsmap=_NSMAP)
    head = _el(root, "Head")
    _el(head, "TrnCode", trn_code)
    _el(head, "CorpId", corp_id)
    _el(head, "OperId", oper_id)
    _el(head, "MsgId", msg_id)
    _el(head, "SendTime", send_time.isoformat(timespec="seconds"))
    b = _el(root, "Body")
    b.append(body)
    return root


def transfer_body(p: Payment) -> etree._Element:
    t = etree.Element(f"{{{NS}}}Transfer", nsmap=_NSMAP)
    _el(t, "PayerAcct", p.payer_acct)
    _el(t, "PayerName", p.payer_name)
    _el(t, "PayeeAcct", p.payee_acct)
    _el(t, "PayeeName", p.payee_name)
    if p.payee_bank_code or not p.payee_bic:  # a BIC alone may name the bank
        _el(t, "PayeeBankCode", p.payee_bank_code)
    # CNY with two decimals; another currency as given (JPY 1500 has none to write)
    amt = _el(t, "Amount", f"{p.amount:.2f}" if p.ccy == "CNY" else format(p.amount, "f"))
    amt.set("Ccy", p.ccy)
    if p.priority:
        _el(t, "Priority", p.priority)
    if p.biz_type:
        _el(t, "BizType", p.biz_type)
    if p.purpose:
        _el(t, "Purpose", p.purpose)
    for name, value in (
        ("PayeeBIC", p.payee_bic),
        ("PayeeCountry", p.payee_country),
        ("ChrgBr", p.chrg_br),
    ):
        if value:
            _el(t, name, value)
    return t


def status_body(orig_msg_id: str, seq_no: int | None = None) -> etree._Element:
    q = etree.Element(f"{{{NS}}}StatusQuery", nsmap=_NSMAP)
    _el(q, "OrigMsgId", orig_msg_id)
    if seq_no is not None:
        _el(q, "SeqNo", str(seq_no))
    return q


def notify_body(after: int | None = None, max_items: int | None = None) -> etree._Element:
    """NTFY ``NotifyPull``: what came after NtfyId ``after`` (the last response's
    ``Notifications.last``), at most ``max_items`` (1..500; the gateway's default 100)."""
    n = etree.Element(f"{{{NS}}}NotifyPull", nsmap=_NSMAP)
    if after is not None:
        _el(n, "After", str(after))
    if max_items is not None:
        _el(n, "Max", str(max_items))
    return n


def inquiry_body(orig_msg_id: str, text: str, seq_no: int | None = None) -> etree._Element:
    """INQ ``Inquiry`` about an earlier payment (a batch item with ``seq_no``)."""
    i = etree.Element(f"{{{NS}}}Inquiry", nsmap=_NSMAP)
    _el(i, "OrigMsgId", orig_msg_id)
    if seq_no is not None:
        _el(i, "SeqNo", str(seq_no))
    _el(i, "Text", text)
    return i


def reply_body(inq_id: str, text: str) -> etree._Element:
    """RPLY ``Reply`` to an INQUIRY notification, quoting its ``inq_id``."""
    r = etree.Element(f"{{{NS}}}Reply", nsmap=_NSMAP)
    _el(r, "InqId", inq_id)
    _el(r, "Text", text)
    return r


def balance_body(acct: str) -> etree._Element:
    """BAL ``BalanceQuery`` for one enrolled account."""
    b = etree.Element(f"{{{NS}}}BalanceQuery", nsmap=_NSMAP)
    _el(b, "Acct", acct)
    return b


def draft_apply_body(a: DraftApplication) -> etree._Element:
    """DRAFT ``DraftApply``: the amount written with two decimals, as in ``Transfer``."""
    d = etree.Element(f"{{{NS}}}DraftApply", nsmap=_NSMAP)
    _el(d, "PayerAcct", a.payer_acct)
    _el(d, "PayerName", a.payer_name)
    _el(d, "PayeeName", a.payee_name)
    _el(d, "Amount", f"{a.amount:.2f}").set("Ccy", a.ccy)
    _el(d, "Scope", a.scope)
    if a.purpose:
        _el(d, "Purpose", a.purpose)
    return d


def draft_refund_body(draft_no: str, text: str) -> etree._Element:
    """DRAFTRFND ``DraftRefund``: return an ISSUED draft's amount, saying why."""
    r = etree.Element(f"{{{NS}}}DraftRefund", nsmap=_NSMAP)
    _el(r, "DraftNo", draft_no)
    _el(r, "Text", text)
    return r


def encode_request(root: etree._Element, encoding: str = "UTF-8") -> bytes:
    """A signed request's bytes: UTF-8, or GBK/GB18030 for a legacy ERP (docs/protocol.md §1).

    The GB encodings are written with Python's codecs and a declaration naming
    them; the signature covers the canonical form, so it survives the encoding.
    """
    if encoding.upper() == "UTF-8":
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    codec = {"GBK": "gbk", "GB18030": "gb18030"}[encoding.upper()]
    decl = f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n'
    return (decl + etree.tostring(root, encoding="unicode")).encode(codec, "xmlcharrefreplace")


@dataclass(frozen=True)
class Notification:
    """One ``Ntfy`` of an NTFY response (docs/protocol.md §4); absent elements are None.

    ``text`` is the ``Text`` element, or the ``Reason`` text of a STATUS or
    DRAFT notification (the gateway never sends both).  A DRAFT notification
    has ``orig_msg_id`` (the DRAFT request), ``draft_no``, ``state`` (the
    draft state), ``at``, and ``settle_amount`` (PAID), ``remainder``
    (SETTLED) or ``reason_code`` (REJECTED).
    """

    ntfy_id: int
    kind: str  # CREDIT, STATUS, INQUIRY, REPLY or DRAFT
    time: datetime
    orig_msg_id: str | None = None
    seq_no: int | None = None
    gw_ref: str | None = None
    inq_id: str | None = None
    state: str | None = None
    reason_code: str | None = None
    engine: str | None = None
    work_date: date | None = None
    acct: str | None = None
    amount: Decimal | None = None
    ccy: str | None = None
    cpty_acct: str | None = None
    cpty_name: str | None = None
    cpty_bank_code: str | None = None
    text: str | None = None
    draft_no: str | None = None
    at: datetime | None = None
    settle_amount: Decimal | None = None
    remainder: Decimal | None = None


@dataclass(frozen=True)
class Notifications:
    """An NTFY response Body: send ``last`` as ``After`` next; pull again while ``more``."""

    items: tuple[Notification, ...]
    last: int
    more: bool


@dataclass(frozen=True)
class AccountBalance:
    """A BAL response Body: ledger balance and available amount (may be negative)."""

    acct: str
    ccy: str
    balance: Decimal
    available: Decimal


@dataclass(frozen=True)
class DraftHistoryStep:
    """One ``Draft/History/Step``: the state reached, when, and the reason code if any."""

    state: str
    at: datetime
    reason_code: str | None = None


@dataclass(frozen=True)
class DraftInfo:
    """A ``Draft`` body (DRAFT, and STATUS on the DRAFT's MsgId): what the applicant
    hands the payee (DraftNo, dates, Amount, Code) and where the draft stands."""

    draft_no: str
    issue_date: date
    expiry_date: date
    amount: Decimal
    code: str
    state: str
    history: tuple[DraftHistoryStep, ...] = ()


@dataclass
class Reply:
    """A verified response, reduced to what an ERP reads."""

    msg_id: str
    ret_code: str
    ret_msg: str
    gw_ref: str | None
    dup: bool
    state: str | None
    engine: str | None
    reason: str | None
    raw: bytes = field(repr=False, default=b"")
    notifications: Notifications | None = None  # NTFY
    balance: AccountBalance | None = None  # BAL
    draft: DraftInfo | None = None  # DRAFT, and STATUS about a DRAFT
    uetr: str | None = None  # STATUS of a SWIFT payment (docs/foreign-currency.md §1)


def parse_reply(raw: bytes, gateway_certs: Sequence[x509.Certificate]) -> Reply:
    """Verify a response against the gateway's certificates, then read it."""
    root = etree.fromstring(raw, _PARSER)
    verified = verify_pinned(root, gateway_certs)
    return read_reply(verified.signed_root, raw)


_C = {"c": NS}


def read_reply(r: etree._Element, raw: bytes = b"") -> Reply:
    """Read a ``CorpLinkRsp`` whose signature was already checked (or a sample)."""

    def text(path: str) -> str | None:
        found = r.find(path, _C)
        return found.text if found is not None else None

    reason = r.find("c:Body/c:Status/c:Reason", _C)
    ntfy = r.find("c:Body/c:Notifications", _C)
    bal = r.find("c:Body/c:Balance", _C)
    draft = r.find("c:Body/c:Draft", _C)
    return Reply(
        msg_id=text("c:Head/c:MsgId") or "",
        ret_code=text("c:Head/c:RetCode") or "",
        ret_msg=text("c:Head/c:RetMsg") or "",
        gw_ref=text("c:Head/c:GwRef"),
        dup=(text("c:Head/c:Dup") or "false") == "true",
        state=text("c:Body/c:Status/c:State"),
        engine=text("c:Body/c:Status/c:Engine"),
        reason=(
            f"{reason.get('Code')} {reason.text or ''}".strip() if reason is not None else None
        ),
        raw=raw,
        notifications=None if ntfy is None else _read_notifications(ntfy),
        balance=None if bal is None else _read_balance(bal),
        draft=None if draft is None else read_draft(draft),
        uetr=text("c:Body/c:Status/c:Uetr"),
    )


def _read_notifications(el: etree._Element) -> Notifications:
    return Notifications(
        items=tuple(_read_notification(n) for n in el.iterfind("c:Ntfy", _C)),
        last=int(el.findtext("c:Last", "0", _C)),
        more=el.findtext("c:More", "false", _C).strip() in ("true", "1"),
    )


def _read_notification(n: etree._Element) -> Notification:
    def opt(name: str) -> str | None:
        return n.findtext(f"c:{name}", None, _C)

    reason = n.find("c:Reason", _C)
    amount = n.find("c:Amount", _C)
    seq_no, work_date, at = opt("SeqNo"), opt("WorkDate"), opt("At")
    settle, remainder = opt("SettleAmount"), opt("Remainder")
    text = opt("Text")
    if text is None and reason is not None:
        text = reason.text or ""
    return Notification(
        ntfy_id=int(opt("NtfyId") or "0"),
        kind=opt("Kind") or "",
        time=datetime.fromisoformat(opt("Time") or ""),
        orig_msg_id=opt("OrigMsgId"),
        seq_no=None if seq_no is None else int(seq_no),
        gw_ref=opt("GwRef"),
        inq_id=opt("InqId"),
        state=opt("State"),
        reason_code=None if reason is None else reason.get("Code"),
        engine=opt("Engine"),
        work_date=None if work_date is None else date.fromisoformat(work_date),
        acct=opt("Acct"),
        amount=None if amount is None else Decimal(amount.text or ""),
        ccy=None if amount is None else amount.get("Ccy"),
        cpty_acct=opt("CptyAcct"),
        cpty_name=opt("CptyName"),
        cpty_bank_code=opt("CptyBankCode"),
        text=text,
        draft_no=opt("DraftNo"),
        at=None if at is None else datetime.fromisoformat(at),
        settle_amount=None if settle is None else Decimal(settle),
        remainder=None if remainder is None else Decimal(remainder),
    )


def read_draft(el: etree._Element) -> DraftInfo:
    """A ``Draft`` element (docs/bank-drafts.md §2) as the client's ``DraftInfo``."""
    steps = tuple(
        DraftHistoryStep(
            state=step.get("State") or "",
            at=datetime.fromisoformat(step.get("At") or ""),
            reason_code=_reason_code(step.find("c:Reason", _C)),
        )
        for step in el.iterfind("c:History/c:Step", _C)
    )
    return DraftInfo(
        draft_no=el.findtext("c:DraftNo", "", _C),
        issue_date=date.fromisoformat(el.findtext("c:IssueDate", "", _C)),
        expiry_date=date.fromisoformat(el.findtext("c:ExpiryDate", "", _C)),
        amount=Decimal(el.findtext("c:Amount", "0", _C)),
        code=el.findtext("c:Code", "", _C),
        state=el.findtext("c:State", "", _C),
        history=steps,
    )


def _reason_code(reason: etree._Element | None) -> str | None:
    return None if reason is None else reason.get("Code")


def _read_balance(el: etree._Element) -> AccountBalance:
    bal = el.find("c:Bal", _C)
    avail = el.find("c:Avail", _C)
    return AccountBalance(
        acct=el.findtext("c:Acct", "", _C),
        ccy=(bal.get("Ccy") if bal is not None else None) or "",
        balance=Decimal((bal.text if bal is not None else None) or "0"),
        available=Decimal((avail.text if avail is not None else None) or "0"),
    )


class ErpClient:
    """One persistent, pipelining CorpLink connection."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        corp_id: str,
        oper_id: str,
        signer: SigningKey,
        gateway_certs: Sequence[x509.Certificate],
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = 16 * 1024 * 1024,
    ) -> None:
        self.host, self.port = host, port
        self.corp_id, self.oper_id = corp_id, oper_id
        self.signer = signer
        self.gateway_certs = tuple(gateway_certs)
        self.ssl_context = ssl_context
        self.max_body = max_body
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._unmatched: asyncio.Queue[Reply] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self.ssl_context,
            server_hostname="localhost" if self.ssl_context else None,
        )
        self._reader_task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        assert self._reader is not None  # noqa: S101
        try:
            while True:
                header = await self._reader.readexactly(HEADER_LEN)
                body = await self._reader.readexactly(parse_header(header, self.max_body))
                reply = parse_reply(body, self.gateway_certs)
                fut = self._pending.pop(reply.msg_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
                else:
                    self._unmatched.put_nowait(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self._pending.clear()

    def sign(self, root: etree._Element, encoding: str = "UTF-8") -> bytes:
        sign_enveloped(root, self.signer)
        return encode_request(root, encoding)

    async def send_raw(self, body: bytes, msg_id: str) -> Reply:
        """Send an already signed body; the reply is matched by ``msg_id``."""
        assert self._writer is not None  # noqa: S101
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        async with self._write_lock:
            self._writer.write(encode_frame(body))
            await self._writer.drain()
        return await fut

    async def request(
        self,
        trn_code: str,
        msg_id: str,
        send_time: datetime,
        body: etree._Element,
        *,
        encoding: str = "UTF-8",
    ) -> Reply:
        root = build_request(trn_code, self.corp_id, self.oper_id, msg_id, send_time, body)
        return await self.send_raw(self.sign(root, encoding), msg_id)

    async def pay(self, msg_id: str, send_time: datetime, payment: Payment) -> Reply:
        return await self.request("PAY", msg_id, send_time, transfer_body(payment))

    async def status(
        self, msg_id: str, send_time: datetime, orig_msg_id: str, seq_no: int | None = None
    ) -> Reply:
        return await self.request("STATUS", msg_id, send_time, status_body(orig_msg_id, seq_no))

    async def notify_pull(
        self,
        msg_id: str,
        send_time: datetime,
        after: int | None = None,
        max_items: int | None = None,
    ) -> Reply:
        """NTFY: ``reply.notifications`` holds what came after ``after``."""
        return await self.request("NTFY", msg_id, send_time, notify_body(after, max_items))

    async def pull_all(
        self, msg_ids: Iterator[str], send_time: datetime, after: int = 0
    ) -> list[Notification]:
        """NTFY until ``More`` is false, each pull with the next MsgId of ``msg_ids``."""
        found: list[Notification] = []
        while True:
            reply = await self.notify_pull(next(msg_ids), send_time, after, 500)
            page = reply.notifications
            if reply.ret_code != "0000" or page is None:
                raise RuntimeError(f"NTFY refused: {reply.ret_code} {reply.ret_msg}")
            found.extend(page.items)
            after = page.last
            if not page.more:
                return found

    async def wait_notice(
        self,
        msg_ids: Iterator[str],
        now: Callable[[], datetime],
        match: Callable[[Notification], bool],
        *,
        timeout: float = 20.0,
        interval: float = 0.2,
    ) -> Notification | None:
        """Pull every notification (``pull_all`` from cursor 0) until one ``match``es.

        NTFY is a pull (docs/protocol.md §4): nothing tells a client that a
        notification is waiting, so it asks again every ``interval`` seconds,
        each time sent at ``now()``.  Returns None after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for n in await self.pull_all(msg_ids, now()):
                if match(n):
                    return n
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(interval)

    async def inquire(
        self,
        msg_id: str,
        send_time: datetime,
        orig_msg_id: str,
        text: str,
        seq_no: int | None = None,
        *,
        encoding: str = "UTF-8",
    ) -> Reply:
        """INQ: ``reply.gw_ref`` is the inquiry's InqId, ``reply.state`` the payment's."""
        body = inquiry_body(orig_msg_id, text, seq_no)
        return await self.request("INQ", msg_id, send_time, body, encoding=encoding)

    async def reply_inquiry(
        self, msg_id: str, send_time: datetime, inq_id: str, text: str, *, encoding: str = "UTF-8"
    ) -> Reply:
        """RPLY to an INQUIRY notification."""
        body = reply_body(inq_id, text)
        return await self.request("RPLY", msg_id, send_time, body, encoding=encoding)

    async def query_balance(self, msg_id: str, send_time: datetime, acct: str) -> Reply:
        """BAL: ``reply.balance`` holds the account's balance."""
        return await self.request("BAL", msg_id, send_time, balance_body(acct))

    async def apply_draft(
        self,
        msg_id: str,
        send_time: datetime,
        application: DraftApplication,
        *,
        encoding: str = "UTF-8",
    ) -> Reply:
        """DRAFT: on 0000, ``reply.draft`` holds the DraftNo, dates, Amount, Code and state."""
        body = draft_apply_body(application)
        return await self.request("DRAFT", msg_id, send_time, body, encoding=encoding)

    async def refund_draft(
        self,
        msg_id: str,
        send_time: datetime,
        draft_no: str,
        text: str,
        *,
        encoding: str = "UTF-8",
    ) -> Reply:
        """DRAFTRFND: ask for an ISSUED draft's amount back (REFUNDED comes by NTFY)."""
        body = draft_refund_body(draft_no, text)
        return await self.request("DRAFTRFND", msg_id, send_time, body, encoding=encoding)

    async def wait_draft_state(
        self,
        msg_ids: Iterator[str],
        now: Callable[[], datetime],
        draft_no: str,
        state: str,
        *,
        timeout: float = 20.0,
    ) -> Notification | None:
        """The DRAFT notification that ``draft_no`` reached ``state`` (None after ``timeout``)."""
        return await self.wait_notice(
            msg_ids,
            now,
            lambda n: n.kind == "DRAFT" and n.draft_no == draft_no and n.state == state,
            timeout=timeout,
        )

    async def next_unmatched(self, timeout: float) -> Reply:
        return await asyncio.wait_for(self._unmatched.get(), timeout)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
