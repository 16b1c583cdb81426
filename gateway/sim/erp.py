"""A corporate ERP client that speaks only CorpLink (corplink.md), for the demo and tests.

It builds request XML by hand as an outside developer would, signs it with
the XMLDSig profile (corplink.md §3), frames it (§1), pipelines requests on
one connection and matches responses by MsgId, verifying every response's
signature against the gateway's published response certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    """What an ERP wants to pay (corplink.md §4 ``Transfer``)."""

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
    _el(t, "PayeeBankCode", p.payee_bank_code)
    amt = _el(t, "Amount", f"{p.amount:.2f}")
    amt.set("Ccy", p.ccy)
    if p.priority:
        _el(t, "Priority", p.priority)
    if p.biz_type:
        _el(t, "BizType", p.biz_type)
    if p.purpose:
        _el(t, "Purpose", p.purpose)
    return t


def status_body(orig_msg_id: str, seq_no: int | None = None) -> etree._Element:
    q = etree.Element(f"{{{NS}}}StatusQuery", nsmap=_NSMAP)
    _el(q, "OrigMsgId", orig_msg_id)
    if seq_no is not None:
        _el(q, "SeqNo", str(seq_no))
    return q


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


def parse_reply(raw: bytes, gateway_certs: Sequence[x509.Certificate]) -> Reply:
    root = etree.fromstring(raw, _PARSER)
    verified = verify_pinned(root, gateway_certs)
    r = verified.signed_root
    ns = {"c": NS}

    def text(path: str) -> str | None:
        found = r.find(path, ns)
        return found.text if found is not None else None

    reason = r.find("c:Body/c:Status/c:Reason", ns)
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

    def sign(self, root: etree._Element) -> bytes:
        sign_enveloped(root, self.signer)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

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
        self, trn_code: str, msg_id: str, send_time: datetime, body: etree._Element
    ) -> Reply:
        root = build_request(trn_code, self.corp_id, self.oper_id, msg_id, send_time, body)
        return await self.send_raw(self.sign(root), msg_id)

    async def pay(self, msg_id: str, send_time: datetime, payment: Payment) -> Reply:
        return await self.request("PAY", msg_id, send_time, transfer_body(payment))

    async def status(
        self, msg_id: str, send_time: datetime, orig_msg_id: str, seq_no: int | None = None
    ) -> Reply:
        return await self.request("STATUS", msg_id, send_time, status_body(orig_msg_id, seq_no))

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
