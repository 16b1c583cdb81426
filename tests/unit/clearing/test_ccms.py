"""The link's own Documents: beps.netting, beps.settle, ccms.314, ccms.315 (clearing.md §4)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from gateway.clearing.ccms import (
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
    parse_netting,
    parse_reply,
    parse_settlement,
)
from gateway.clearing.envelope import NS_CLR, build_envelope, parse_envelope, parse_message
from gateway.clearing.envelope import serialize as serialize_message
from gateway.journal.records import Figures
from tests.unit.clearing.pacs_samples import CREATED, OUR_PARTICIPANT, PEER_PARTICIPANT, WORK_DATE

OTHER = "105100000017"

NOTICE = NettingNotice(
    work_date=WORK_DATE,
    round_no=3,
    positions=(
        CptyPosition(PEER_PARTICIPANT, Figures(2, Decimal("50000.00"), 1, Decimal("0.01"))),
        CptyPosition(OTHER, Figures(0, Decimal(0), 4, Decimal("1234.50"))),
    ),
)


def starts(reason: str) -> str:
    """A ``match=`` pattern: the message starts with ``reason`` (which names the field)."""
    return "^" + re.escape(reason)


def reparse(doc: etree._Element) -> etree._Element:
    """Through the wire form, inside an envelope, as a receiver reads it."""
    env = build_envelope(
        "beps.netting", "M1", PEER_PARTICIPANT, OUR_PARTICIPANT, CREATED, WORK_DATE, doc
    )
    return parse_envelope(parse_message(serialize_message(env))).document


def netting_xml(*positions: str, work_dt: str = "2026-11-27", round_no: str = "1") -> bytes:
    body = "".join(f"<CptyPos>{p}</CptyPos>" for p in positions)
    return (
        f'<NetgNtfctn xmlns="{NS_CLR}"><WorkDt>{work_dt}</WorkDt><Round>{round_no}</Round>'
        f"{body}</NetgNtfctn>"
    ).encode()


def position(
    cpty: str = PEER_PARTICIPANT,
    dbt: tuple[str, str] = ("1", "10.00"),
    cdt: tuple[str, str] = ("2", "25.50"),
    net: str | None = "15.50",
) -> str:
    net_el = f"<Net>{net}</Net>" if net is not None else ""
    return (
        f"<Cpty>{cpty}</Cpty><DbtCnt>{dbt[0]}</DbtCnt><DbtSum>{dbt[1]}</DbtSum>"
        f"<CdtCnt>{cdt[0]}</CdtCnt><CdtSum>{cdt[1]}</CdtSum>{net_el}"
    )


# ------------------------------------------------------------------ beps.netting


def test_netting_round_trips_with_signed_net_and_zero_sums() -> None:
    doc = build_netting(NOTICE)
    assert doc.tag == f"{{{NS_CLR}}}NetgNtfctn"
    assert doc.nsmap == {None: NS_CLR}
    nets = [el.text for el in doc.iter(f"{{{NS_CLR}}}Net")]
    assert nets == ["-49999.99", "1234.50"]
    assert [el.text for el in doc.iter(f"{{{NS_CLR}}}DbtSum")] == ["50000.00", "0.00"]
    parsed = parse_netting(reparse(doc))
    assert parsed == NOTICE
    assert parsed.net == Decimal("-48765.49")


def test_netting_reads_fields_in_the_spec_order() -> None:
    doc = build_netting(NOTICE)
    assert [etree.QName(el).localname for el in doc] == ["WorkDt", "Round", "CptyPos", "CptyPos"]
    first = doc.find(f"{{{NS_CLR}}}CptyPos")
    assert first is not None
    assert [etree.QName(el).localname for el in first] == [
        "Cpty", "DbtCnt", "DbtSum", "CdtCnt", "CdtSum", "Net",
    ]  # fmt: skip


def test_netting_parses_a_hand_written_notice() -> None:
    notice = parse_netting(etree.fromstring(netting_xml(position(net="15.5"))))
    (pos,) = notice.positions
    assert pos == CptyPosition(PEER_PARTICIPANT, Figures(1, Decimal(10), 2, Decimal("25.5")))
    assert (notice.work_date, notice.round_no) == (date(2026, 11, 27), 1)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (netting_xml(position(net=None)), "CptyPos[1]/Net missing"),
        (netting_xml(position(cpty="10410000000")), "CptyPos[1]/Cpty must be a 12-digit"),
        (netting_xml(position(cpty="10410000000X")), "CptyPos[1]/Cpty must be a 12-digit"),
        (netting_xml(position(net="-15.50")), "CptyPos[1]/Net is not CdtSum - DbtSum"),
        (netting_xml(position(), position(OTHER, net="0.00")), "CptyPos[2]/Net is not"),
        (netting_xml(position(dbt=("-1", "10.00"))), "CptyPos[1]/DbtCnt is not a count"),
        (netting_xml(position(dbt=("1", "-10.00"))), "CptyPos[1]/DbtSum"),
        (netting_xml(position(cdt=("2", "25.505"), net="15.505")), "CptyPos[1]/CdtSum"),
        (netting_xml(position(), position()), "CptyPos/Cpty appears twice"),
        (netting_xml(), "CptyPos missing"),
        (netting_xml(position(), round_no="0"), "Round must be a positive number"),
        (netting_xml(position(), round_no="x"), "Round must be a positive number"),
        (netting_xml(position(), work_dt="2026-13-01"), "WorkDt is not a yyyy-mm-dd date"),
        (
            f'<SttlmNtfctn xmlns="{NS_CLR}"><WorkDt>2026-11-27</WorkDt></SttlmNtfctn>'.encode(),
            "beps.netting Document is not NetgNtfctn",
        ),
    ],
)
def test_malformed_netting_is_refused_naming_the_field(xml: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=starts(reason)):
        parse_netting(etree.fromstring(xml))


def test_netting_builder_refuses_what_it_could_not_put_on_the_link() -> None:
    empty = NettingNotice(WORK_DATE, 1, ())
    twice = NettingNotice(WORK_DATE, 1, (NOTICE.positions[0], NOTICE.positions[0]))
    negative = NettingNotice(
        WORK_DATE, 1, (CptyPosition(OTHER, Figures(1, Decimal(-1), 0, Decimal(0))),)
    )
    fen = NettingNotice(
        WORK_DATE, 1, (CptyPosition(OTHER, Figures(1, Decimal("0.001"), 0, Decimal(0))),)
    )
    with pytest.raises(ValueError, match="at least one CptyPos"):
        build_netting(empty)
    with pytest.raises(ValueError, match="appears twice"):
        build_netting(twice)
    with pytest.raises(ValueError, match="DbtSum must not be negative"):
        build_netting(negative)
    with pytest.raises(ValueError, match="DbtSum has fractions of a fen"):
        build_netting(fen)
    with pytest.raises(ValueError, match="Round"):
        build_netting(NettingNotice(WORK_DATE, 0, NOTICE.positions))


# ------------------------------------------------------------------ beps.settle


@pytest.mark.parametrize("net", [Decimal("-48765.49"), Decimal(0), Decimal("0.01")])
def test_settlement_round_trips(net: Decimal) -> None:
    notice = SettlementNotice(WORK_DATE, 2, net)
    doc = build_settlement(notice)
    assert doc.tag == f"{{{NS_CLR}}}SttlmNtfctn"
    assert parse_settlement(reparse(doc)) == notice


def test_malformed_settlement_is_refused() -> None:
    head = f'<SttlmNtfctn xmlns="{NS_CLR}"><WorkDt>2026-11-27</WorkDt><Round>1</Round>'
    with pytest.raises(ValueError, match=starts("Net missing")):
        parse_settlement(etree.fromstring(f"{head}</SttlmNtfctn>".encode()))
    with pytest.raises(ValueError, match=starts("Net is not a decimal")):
        parse_settlement(etree.fromstring(f"{head}<Net>1e3</Net></SttlmNtfctn>".encode()))


# ------------------------------------------------------------------ ccms.314 / ccms.315


def test_inquiry_round_trips_chinese_text_at_the_limit() -> None:
    inquiry = InquiryDoc("IQ202611270000000001", "M" * 35, "GW20261127A000000001", "查" * 500)
    doc = build_inquiry(inquiry)
    assert doc.tag == f"{{{NS_CLR}}}Inqry"
    assert [etree.QName(el).localname for el in doc] == [
        "InqId", "OrgnlMsgId", "OrgnlTxId", "Text",
    ]  # fmt: skip
    assert parse_inquiry(reparse(doc)) == inquiry


def test_reply_round_trips() -> None:
    reply = ReplyDoc("IQ202611270000000001", "款项已入账 / credited to payee")
    doc = build_reply(reply)
    assert doc.tag == f"{{{NS_CLR}}}Rply"
    assert parse_reply(reparse(doc)) == reply


def inquiry_xml(**fields: str) -> bytes:
    values = {"InqId": "Q1", "OrgnlMsgId": "M1", "OrgnlTxId": "T1", "Text": "请核实"} | fields
    body = "".join(f"<{k}>{v}</{k}>" for k, v in values.items() if v != "-")
    return f'<Inqry xmlns="{NS_CLR}">{body}</Inqry>'.encode()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"Text": "-"}, "Text missing"),
        ({"OrgnlTxId": "-"}, "OrgnlTxId missing"),
        ({"Text": "x" * 501}, "Text must be 1-500 characters"),
        ({"InqId": "Q" * 36}, "InqId must be 1-35 characters"),
        ({"OrgnlMsgId": "M" * 36}, "OrgnlMsgId must be 1-35 characters"),
        ({"Text": ""}, "Text is empty"),
    ],
)
def test_malformed_inquiry_is_refused_naming_the_field(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=starts(reason)):
        parse_inquiry(etree.fromstring(inquiry_xml(**fields)))


def test_malformed_reply_is_refused_and_builders_check_limits() -> None:
    long_text = f'<Rply xmlns="{NS_CLR}"><InqId>Q1</InqId><Text>{"x" * 501}</Text></Rply>'
    with pytest.raises(ValueError, match=starts("Text must be 1-500 characters")):
        parse_reply(etree.fromstring(long_text.encode()))
    with pytest.raises(ValueError, match=starts("InqId missing")):
        parse_reply(etree.fromstring(f'<Rply xmlns="{NS_CLR}"><Text>t</Text></Rply>'.encode()))
    with pytest.raises(ValueError, match=starts("ccms.315 Document is not Rply")):
        parse_reply(etree.fromstring(inquiry_xml()))
    with pytest.raises(ValueError, match="Text must be 1-500"):
        build_reply(ReplyDoc("Q1", "x" * 501))
    with pytest.raises(ValueError, match="InqId must be 1-35"):
        build_inquiry(InquiryDoc("Q" * 36, "M1", "T1", "t"))
