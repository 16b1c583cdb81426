"""The ERP simulator's DRAFT and DRAFTRFND (gateway/sim/erp.py) against the real codec.

What the simulator builds and signs passes the gateway's schema, signature
profile and decoder; the ``Draft`` bodies and DRAFT notifications the gateway
renders and signs read back into the simulator's own dataclasses
(docs/bank-drafts.md §2).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from lxml import etree

from gateway.codec.corplink import CorpLinkCodec, serialize
from gateway.codec.xmlparse import parse_body
from gateway.keys.xmldsig import SigningKey, sign_enveloped, verify_enveloped
from gateway.model import (
    DraftApply,
    DraftRefundRequest,
    DraftStep,
    DraftView,
    Notice,
    NoticeKind,
    Notices,
    NotifyPull,
    Request,
    Response,
)
from gateway.net.framing import HEADER_LEN, encode_frame, parse_header
from gateway.sim import erp

from .builders import SAMPLES, T0, response, self_signed

DRAFT_NO = "10310000001900000042"
APPLICATION = erp.DraftApplication(
    payer_acct="6222020200001234",
    payer_name="北京艾克美贸易有限公司",
    payee_name="上海贝塔零部件有限公司",
    amount=Decimal("150000"),
    scope="PROVINCIAL",
    purpose="工程款保证金",
)
VIEW = DraftView(
    draft_no=DRAFT_NO,
    issue_date=date(2026, 11, 27),
    expiry_date=date(2026, 12, 28),
    amount=Decimal("150000.00"),
    code="0481730592661184",
    state="PENDING",
)


@pytest.fixture(scope="module")
def client_key() -> SigningKey:
    return self_signed("op01")


@pytest.fixture(scope="module")
def gateway_key() -> SigningKey:
    return self_signed("gateway")


def receive(codec: CorpLinkCodec, data: bytes) -> Request:
    """What the gateway does with a request: parse, schema, verify, decode."""
    parsed = parse_body(data)
    codec.validate(parsed.root)
    verified = verify_enveloped(parsed.root)
    return codec.decode(verified.signed_root, parsed.encoding)


def answer(codec: CorpLinkCodec, key: SigningKey, rsp: Response) -> bytes:
    root = codec.render(rsp)
    sign_enveloped(root, key)
    return serialize(root, rsp.encoding)


# -- requests ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK", "GB18030"])
def test_built_draft_requests_decode_to_the_typed_bodies(
    codec: CorpLinkCodec, client_key: SigningKey, encoding: str
) -> None:
    apply = erp.build_request(
        "DRAFT", "C100000001", "op01", "D-1", T0, erp.draft_apply_body(APPLICATION)
    )
    sign_enveloped(apply, client_key)
    req = receive(codec, erp.encode_request(apply, encoding))
    assert (req.head.trn_code, req.encoding) == ("DRAFT", encoding)
    assert req.body == DraftApply(
        payer_acct="6222020200001234",
        payer_name="北京艾克美贸易有限公司",
        payee_name="上海贝塔零部件有限公司",
        amount=Decimal("150000.00"),
        scope="PROVINCIAL",
        ccy="CNY",
        purpose="工程款保证金",
    )
    refund = erp.build_request(
        "DRAFTRFND", "C100000001", "op01", "R-1", T0, erp.draft_refund_body(DRAFT_NO, "合同取消")
    )
    sign_enveloped(refund, client_key)
    req = receive(codec, erp.encode_request(refund, encoding))
    assert req.body == DraftRefundRequest(DRAFT_NO, "合同取消")


def test_an_application_without_purpose_in_another_currency(
    codec: CorpLinkCodec, client_key: SigningKey
) -> None:
    app = erp.DraftApplication("6222020200001234", "ACME", "Beta", Decimal("9.9"), ccy="USD")
    root = erp.build_request("DRAFT", "C100000001", "op01", "D-2", T0, erp.draft_apply_body(app))
    sign_enveloped(root, client_key)
    body = receive(codec, erp.encode_request(root)).body
    assert body == DraftApply(
        "6222020200001234", "ACME", "Beta", Decimal("9.90"), "NATIONAL", "USD"
    )


# -- responses --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_a_rendered_draft_reads_back_with_its_history(
    codec: CorpLinkCodec, gateway_key: SigningKey, encoding: str
) -> None:
    history = (
        DraftStep("PENDING", T0),
        DraftStep("ISSUED", T0 + timedelta(seconds=3)),
        DraftStep("REFUNDING", T0 + timedelta(days=1)),
        DraftStep("ISSUED", T0 + timedelta(days=1, seconds=4), reason_code="AC04"),
    )
    view = replace(VIEW, state="ISSUED", history=history)
    rsp = response(trn_code="STATUS", draft=view, encoding=encoding)
    reply = erp.parse_reply(answer(codec, gateway_key, rsp), gateway_key.chain)
    assert reply.draft == erp.DraftInfo(
        draft_no=DRAFT_NO,
        issue_date=date(2026, 11, 27),
        expiry_date=date(2026, 12, 28),
        amount=Decimal("150000.00"),
        code="0481730592661184",
        state="ISSUED",
        history=tuple(erp.DraftHistoryStep(s.state, s.at, s.reason_code) for s in history),
    )
    assert (reply.state, reply.notifications, reply.balance) == (None, None, None)


def test_rendered_draft_notifications_read_back(
    codec: CorpLinkCodec, gateway_key: SigningKey
) -> None:
    def notice(ntfy_id: int, state: str, **fields: object) -> Notice:
        return Notice(
            ntfy_id=ntfy_id,
            kind=NoticeKind.DRAFT,
            at=T0 + timedelta(hours=ntfy_id),
            orig_msg_id="D-1",
            draft_no=DRAFT_NO,
            draft_state=state,
            **fields,  # type: ignore[arg-type]
        )

    notices = (
        notice(1, "ISSUED"),
        notice(2, "PAID", amount=Decimal("149000.00")),
        notice(3, "SETTLED", amount=Decimal("0.00")),
        notice(4, "REJECTED", reason_code="AM04", text="余额不足"),
    )
    rsp = response(trn_code="NTFY", encoding="GB18030", notices=Notices(notices, 4, more=False))
    page = erp.parse_reply(answer(codec, gateway_key, rsp), gateway_key.chain).notifications
    assert page is not None
    seen = [(n.kind, n.orig_msg_id, n.draft_no, n.state, n.at, n.time) for n in page.items]
    assert seen == [("DRAFT", "D-1", DRAFT_NO, n.draft_state, n.at, n.at) for n in notices]
    assert [(n.settle_amount, n.remainder, n.amount) for n in page.items] == [
        (None, None, None),
        (Decimal("149000.00"), None, None),
        (None, Decimal("0.00"), None),
        (None, None, None),
    ]
    assert (page.items[3].reason_code, page.items[3].text) == ("AM04", "余额不足")


@pytest.mark.parametrize(
    ("name", "state", "steps"),
    [("rsp-draft.xml", "PENDING", 0), ("rsp-status-draft.xml", "ISSUED", 4)],
)
def test_draft_response_samples_read(name: str, state: str, steps: int) -> None:
    reply = erp.read_reply(etree.fromstring((SAMPLES / name).read_bytes()))
    assert reply.draft is not None
    assert (reply.draft.draft_no, reply.draft.state, len(reply.draft.history)) == (
        DRAFT_NO,
        state,
        steps,
    )
    assert reply.draft.expiry_date == date(2026, 12, 28)


# -- the client's methods over a real socket --------------------------------------------


class DraftDesk:
    """Enough of a gateway to answer DRAFT, DRAFTRFND and NTFY, with the real codec."""

    def __init__(self, codec: CorpLinkCodec, key: SigningKey) -> None:
        self.codec, self.key = codec, key
        self.requests: list[Request] = []
        self.notices: list[Notice] = []

    def respond(self, req: Request) -> Response:
        base = response(trn_code=req.head.trn_code, msg_id=req.head.msg_id, encoding=req.encoding)
        body = req.body
        if isinstance(body, DraftApply):
            self.notices.append(
                Notice(
                    ntfy_id=len(self.notices) + 1,
                    kind=NoticeKind.DRAFT,
                    at=T0,
                    orig_msg_id=req.head.msg_id,
                    draft_no=DRAFT_NO,
                    draft_state="ISSUED",
                )
            )
            return Response(**{**_fields(base), "draft": VIEW})
        if isinstance(body, NotifyPull):
            page = tuple(n for n in self.notices if n.ntfy_id > body.after)[: body.max]
            last = page[-1].ntfy_id if page else body.after
            return Response(**{**_fields(base), "notices": Notices(page, last, more=False)})
        return base

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(HEADER_LEN)
                req = receive(self.codec, await reader.readexactly(parse_header(header, 1 << 20)))
                self.requests.append(req)
                writer.write(encode_frame(answer(self.codec, self.key, self.respond(req))))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


def _fields(rsp: Response) -> dict[str, object]:
    return {name: getattr(rsp, name) for name in Response.__dataclass_fields__}


@pytest.fixture
async def connected(
    codec: CorpLinkCodec, client_key: SigningKey, gateway_key: SigningKey
) -> AsyncIterator[tuple[DraftDesk, erp.ErpClient]]:
    desk = DraftDesk(codec, gateway_key)
    server = await asyncio.start_server(desk.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = erp.ErpClient(
        "127.0.0.1",
        port,
        corp_id="C100000001",
        oper_id="op01",
        signer=client_key,
        gateway_certs=gateway_key.chain,
    )
    await client.connect()
    try:
        yield desk, client
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_apply_refund_and_wait_for_the_notification(
    connected: tuple[DraftDesk, erp.ErpClient],
) -> None:
    desk, client = connected
    applied = await client.apply_draft("D-1", T0, APPLICATION, encoding="GBK")
    assert applied.ret_code == "0000"
    assert applied.draft is not None
    assert (applied.draft.draft_no, applied.draft.code) == (DRAFT_NO, "0481730592661184")
    ids = (f"N-{n}" for n in itertools.count())
    issued = await client.wait_draft_state(ids, lambda: T0, DRAFT_NO, "ISSUED", timeout=5)
    assert issued is not None
    assert issued.orig_msg_id == "D-1"
    refunded = await client.refund_draft("R-1", T0, DRAFT_NO, "不再需要", encoding="GB18030")
    assert (refunded.ret_code, refunded.draft) == ("0000", None)
    sent = [(r.head.trn_code, r.encoding) for r in desk.requests]
    assert sent[0] == ("DRAFT", "GBK")
    assert sent[-1] == ("DRAFTRFND", "GB18030")
    assert desk.requests[-1].body == DraftRefundRequest(DRAFT_NO, "不再需要")
