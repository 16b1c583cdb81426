"""The ERP simulator's NTFY/INQ/RPLY/BAL side (gateway/sim/erp.py) against the real codec.

Requests the simulator builds and signs must pass the gateway's schema,
signature profile and decode; responses the gateway renders and signs must
read back into the simulator's plain dataclasses (corplink.md §1, §3-§5).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from gateway.codec.corplink import CorpLinkCodec, serialize
from gateway.codec.xmlparse import parse_body
from gateway.keys.xmldsig import SigningKey, sign_enveloped, verify_enveloped
from gateway.model import (
    Balance,
    BalanceQuery,
    Body,
    Engine,
    Inquiry,
    Notice,
    NoticeKind,
    Notices,
    NotifyPull,
    Reply,
    Request,
    Response,
    State,
    StatusView,
)
from gateway.net.framing import HEADER_LEN, encode_frame, parse_header
from gateway.sim import erp

from .builders import CREDIT, INQUIRY, REJECTED, REPLY, SAMPLES, T0, response, self_signed


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
    """What the gateway sends: render, sign, serialise in the request's encoding."""
    root = codec.render(rsp)
    sign_enveloped(root, key)
    return serialize(root, rsp.encoding)


# -- requests: erp builders → gateway decode ---------------------------------------------


@pytest.mark.parametrize(
    ("trn", "body", "expected"),
    [
        ("NTFY", erp.notify_body, NotifyPull(after=0, max=100)),
        ("NTFY", lambda: erp.notify_body(after=41, max_items=500), NotifyPull(after=41, max=500)),
        (
            "INQ",
            lambda: erp.inquiry_body("20261127-000001", "where is it?"),
            Inquiry("20261127-000001", "where is it?"),
        ),
        (
            "INQ",
            lambda: erp.inquiry_body("PR-1", "第3笔未到账", seq_no=3),
            Inquiry("PR-1", "第3笔未到账", seq_no=3),
        ),
        (
            "RPLY",
            lambda: erp.reply_body("IQ20261127000007", "已入账"),
            Reply("IQ20261127000007", "已入账"),
        ),
        ("BAL", lambda: erp.balance_body("6222020200001234"), BalanceQuery("6222020200001234")),
    ],
)
@pytest.mark.parametrize("encoding", ["UTF-8", "GB18030", "GBK"])
def test_built_requests_decode_to_the_typed_body(
    codec: CorpLinkCodec,
    client_key: SigningKey,
    trn: str,
    body: Callable[[], etree._Element],
    expected: Body,
    encoding: str,
) -> None:
    root = erp.build_request(trn, "C100000001", "op01", "M-1", T0, body())
    sign_enveloped(root, client_key)
    req = receive(codec, erp.encode_request(root, encoding))
    assert req.head.trn_code == trn
    assert req.body == expected
    assert req.encoding == encoding


# -- responses: gateway render → erp read -------------------------------------------------


def as_client_sees(n: Notice) -> erp.Notification:
    return erp.Notification(
        ntfy_id=n.ntfy_id,
        kind=n.kind.value,
        time=n.at,
        orig_msg_id=n.orig_msg_id,
        seq_no=n.seq_no,
        gw_ref=n.gw_ref,
        inq_id=n.inq_id,
        state=None if n.state is None else n.state.value,
        reason_code=n.reason_code,
        engine=None if n.engine is None else n.engine.value,
        work_date=n.work_date,
        acct=n.acct,
        amount=n.amount,
        ccy=None if n.amount is None else "CNY",
        cpty_acct=n.counterparty_acct,
        cpty_name=n.counterparty_name,
        cpty_bank_code=n.counterparty_bank,
        text=n.text,
    )


@pytest.mark.parametrize("encoding", ["UTF-8", "GB18030"])
def test_rendered_notifications_read_back_field_for_field(
    codec: CorpLinkCodec, gateway_key: SigningKey, encoding: str
) -> None:
    notices = (CREDIT, REJECTED, INQUIRY, REPLY)
    rsp = response(
        trn_code="NTFY",
        encoding=encoding,
        notices=Notices(notices=notices, last=47, more=True),
    )
    reply = erp.parse_reply(answer(codec, gateway_key, rsp), gateway_key.chain)
    assert reply.ret_code == "0000"
    assert reply.notifications == erp.Notifications(
        items=tuple(as_client_sees(n) for n in notices), last=47, more=True
    )
    assert reply.balance is None


def test_an_empty_page_reads_as_no_items(codec: CorpLinkCodec, gateway_key: SigningKey) -> None:
    rsp = response(trn_code="NTFY", notices=Notices(notices=(), last=41, more=False))
    reply = erp.parse_reply(answer(codec, gateway_key, rsp), gateway_key.chain)
    assert reply.notifications == erp.Notifications(items=(), last=41, more=False)


def test_rendered_balance_reads_back(codec: CorpLinkCodec, gateway_key: SigningKey) -> None:
    bal = Balance("6222020200001234", "CNY", Decimal("-1234.56"), Decimal("1000"))
    reply = erp.parse_reply(
        answer(codec, gateway_key, response(trn_code="BAL", balance=bal)), gateway_key.chain
    )
    assert reply.balance == erp.AccountBalance(
        "6222020200001234", "CNY", Decimal("-1234.56"), Decimal("1000.00")
    )
    assert reply.notifications is None


def test_inq_response_gives_the_inqid_and_the_state(
    codec: CorpLinkCodec, gateway_key: SigningKey
) -> None:
    view = StatusView(state=State.SENT, engine=Engine.HVPS, work_date=date(2026, 11, 27))
    rsp = response(trn_code="INQ", gw_ref="IQ20261127000008", status=view, encoding="GB18030")
    reply = erp.parse_reply(answer(codec, gateway_key, rsp), gateway_key.chain)
    assert (reply.gw_ref, reply.state, reply.engine) == ("IQ20261127000008", "SENT", "HVPS")


def test_status_of_a_swift_payment_gives_its_uetr(
    codec: CorpLinkCodec, gateway_key: SigningKey
) -> None:
    """docs/foreign-currency.md §1: STATUS of a SWIFT payment carries the UETR the ERP
    quotes to the payee; other payments have none."""
    uetr = "954f1db3-a4ff-4f62-a111-ff07f731bf2a"
    view = StatusView(state=State.SETTLED, engine=Engine.SWIFT, work_date=date(2026, 11, 27))
    rsp = response(trn_code="STATUS", status=replace(view, uetr=uetr))
    reply = erp.parse_reply(answer(codec, gateway_key, rsp), gateway_key.chain)
    assert (reply.state, reply.engine, reply.uetr) == ("SETTLED", "SWIFT", uetr)
    plain = response(trn_code="STATUS", status=replace(view, engine=Engine.HVPS))
    assert erp.parse_reply(answer(codec, gateway_key, plain), gateway_key.chain).uetr is None


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("rsp-ntfy.xml", lambda r: [n.kind for n in r.notifications.items]),
        ("rsp-bal.xml", lambda r: r.balance.balance),
        ("rsp-inq.xml", lambda r: (r.gw_ref, r.state)),
    ],
)
def test_response_samples_read(name: str, check: Callable[[erp.Reply], object]) -> None:
    reply = erp.read_reply(etree.fromstring((SAMPLES / name).read_bytes()))
    assert (
        check(reply)
        == {
            "rsp-ntfy.xml": ["CREDIT", "STATUS", "STATUS", "INQUIRY", "REPLY"],
            "rsp-bal.xml": Decimal("-1234.56"),
            "rsp-inq.xml": ("IQ20261127000008", "SETTLED"),
        }[name]
    )


# -- the client's methods over a real socket ----------------------------------------------


class FakeGateway:
    """Enough of a gateway to answer NTFY pages, INQ, RPLY and BAL over TCP.

    It decodes each request with the real codec and answers with the real
    renderer and signature, so the client's methods meet the wire format.
    """

    def __init__(self, codec: CorpLinkCodec, key: SigningKey, notices: list[Notice]) -> None:
        self.codec, self.key, self.notices = codec, key, notices
        self.requests: list[Request] = []

    def respond(self, req: Request) -> Response:
        head = req.head
        base = response(
            trn_code=head.trn_code, msg_id=head.msg_id, encoding=req.encoding, ret_msg="ok"
        )
        body = req.body
        if isinstance(body, NotifyPull):
            after = [n for n in self.notices if n.ntfy_id > body.after]
            page = tuple(after[: body.max])
            last = page[-1].ntfy_id if page else body.after
            notices = Notices(page, last, more=len(after) > len(page))
            return Response(**{**_fields(base), "notices": notices})
        if isinstance(body, BalanceQuery):
            bal = Balance(body.acct, "CNY", Decimal("-5.00"), Decimal("95.00"))
            return Response(**{**_fields(base), "balance": bal})
        if isinstance(body, Inquiry):
            view = StatusView(state=State.SETTLED, engine=Engine.INTRA, work_date=None)
            return Response(**{**_fields(base), "gw_ref": "IQ1", "status": view})
        return base

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(HEADER_LEN)
                data = await reader.readexactly(parse_header(header, 1 << 20))
                req = receive(self.codec, data)
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
) -> AsyncIterator[tuple[FakeGateway, erp.ErpClient]]:
    notices = [
        Notice(ntfy_id=i, kind=NoticeKind.STATUS, at=T0, orig_msg_id=f"M{i}", state=State.SETTLED)
        for i in range(1, 8)
    ]
    fake = FakeGateway(codec, gateway_key, notices)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
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
        yield fake, client
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_client_methods_send_each_trncode(
    connected: tuple[FakeGateway, erp.ErpClient],
) -> None:
    fake, client = connected
    page = await client.notify_pull("N-1", T0, after=2, max_items=3)
    assert page.notifications is not None
    assert [n.ntfy_id for n in page.notifications.items] == [3, 4, 5]
    assert (page.notifications.last, page.notifications.more) == (5, True)
    inq = await client.inquire("Q-1", T0, "M3", "请核实", encoding="GB18030")
    assert (inq.ret_code, inq.gw_ref, inq.state) == ("0000", "IQ1", "SETTLED")
    rply = await client.reply_inquiry("R-1", T0, "IQ9", "已入账", encoding="GBK")
    assert (rply.ret_code, rply.state, rply.notifications, rply.balance) == (
        "0000",
        None,
        None,
        None,
    )
    bal = await client.query_balance("B-1", T0, "6222020200001234")
    assert bal.balance == erp.AccountBalance(
        "6222020200001234", "CNY", Decimal("-5.00"), Decimal("95.00")
    )
    assert [(r.head.trn_code, r.encoding) for r in fake.requests] == [
        ("NTFY", "UTF-8"),
        ("INQ", "GB18030"),
        ("RPLY", "GBK"),
        ("BAL", "UTF-8"),
    ]
    assert fake.requests[1].body == Inquiry("M3", "请核实")
    assert fake.requests[2].body == Reply("IQ9", "已入账")


async def test_pull_all_follows_last_until_more_is_false(
    connected: tuple[FakeGateway, erp.ErpClient],
) -> None:
    fake, client = connected
    fake.notices.extend(
        Notice(ntfy_id=i, kind=NoticeKind.CREDIT, at=T0, amount=Decimal(1)) for i in range(8, 1203)
    )
    ids = (f"P-{n}" for n in itertools.count())
    found = await client.pull_all(ids, T0, after=1)
    assert [n.ntfy_id for n in found] == list(range(2, 1203))
    pulls = [r.body for r in fake.requests]
    assert pulls == [NotifyPull(1, 500), NotifyPull(501, 500), NotifyPull(1001, 500)]
