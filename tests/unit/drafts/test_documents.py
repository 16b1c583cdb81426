"""The draft Documents on the INTRA link: round trips and hostile inputs (docs/bank-drafts.md §3)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.drafts.documents import (
    NS_CLR,
    PRESENT_FIELDS,
    DraftAnswer,
    DraftDocumentError,
    DraftIssue,
    DraftRefund,
    DraftSettlement,
    build_answer,
    build_issue,
    build_presentment,
    build_refund,
    build_settlement,
    parse_document,
    parse_presentment,
    read_answer,
    read_issue,
    read_presentment,
    read_refund,
    read_settlement,
    serialize,
)
from gateway.drafts.records import Answer, Presentment, Reason, Result, Scope
from tests.unit.drafts.helpers import entry, presentment

DRAFT_NO = "10310000001900000042"
PRESENTED = presentment(entry())


def roundtrip(element: etree._Element) -> etree._Element:
    return parse_document(serialize(element))


def test_issue_round_trip() -> None:
    doc = DraftIssue(DRAFT_NO, Decimal("1234.5"), "6222000000000001", Scope.PROVINCIAL)
    el = build_issue(doc)
    assert el.tag == f"{{{NS_CLR}}}DrftIsse" and el.nsmap == {None: NS_CLR}
    assert [c.text for c in el] == [DRAFT_NO, "1234.50", "6222000000000001", "PROVINCIAL"]
    assert read_issue(roundtrip(el)) == replace(doc, amount=Decimal("1234.50"))


def test_presentment_round_trip() -> None:
    data = serialize(build_presentment(PRESENTED))
    assert parse_presentment(data) == PRESENTED
    names = [etree.QName(c).localname for c in parse_document(data)]
    assert names == list(PRESENT_FIELDS)


def test_presentment_with_chinese_holder_and_pretty_printing() -> None:
    p = replace(PRESENTED, holder_name="北京贝塔零部件有限公司")
    el = build_presentment(p)
    etree.indent(el)
    assert parse_presentment(serialize(el)) == p


@pytest.mark.parametrize(
    "answer",
    [Answer(Result.ACCP), *(Answer(Result.RJCT, r) for r in Reason)],
    ids=lambda a: a.reason or "ACCP",
)
def test_answer_round_trip(answer: Answer) -> None:
    doc = DraftAnswer("AG-0001", DRAFT_NO, answer)
    el = build_answer(doc)
    has_rsn = el.find(f"{{{NS_CLR}}}Rsn") is not None
    assert has_rsn == (answer.result is Result.RJCT)
    assert read_answer(roundtrip(el)) == doc


def test_settlement_round_trip_with_zero_remainder() -> None:
    doc = DraftSettlement(DRAFT_NO, Decimal("1234.50"), Decimal(0), "6222000000000001")
    el = build_settlement(doc)
    assert el.findtext(f"{{{NS_CLR}}}Remainder") == "0.00"
    assert read_settlement(roundtrip(el)) == doc


def test_refund_round_trip() -> None:
    doc = DraftRefund(DRAFT_NO, Decimal("88.00"), "6222000000000001")
    assert read_refund(roundtrip(build_refund(doc))) == doc


# ---------------------------------------------------------------- builders refuse


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: build_issue(DraftIssue(DRAFT_NO, Decimal(0), "6222", Scope.NATIONAL)), "positive"),
        (
            lambda: build_issue(DraftIssue(DRAFT_NO[:-1], Decimal(1), "6222", Scope.NATIONAL)),
            "DraftNo",
        ),
        (
            lambda: build_issue(DraftIssue(DRAFT_NO, Decimal(1), "6222-0001", Scope.NATIONAL)),
            "PayerAcct",
        ),
        (lambda: build_issue(DraftIssue(DRAFT_NO, Decimal(1), "6222", "REGIONAL")), "REGIONAL"),  # type: ignore[arg-type]
        (
            lambda: build_settlement(DraftSettlement(DRAFT_NO, Decimal(0), Decimal(1), "6222")),
            "SettleAmount",
        ),
        (
            lambda: build_settlement(DraftSettlement(DRAFT_NO, Decimal(1), Decimal(-1), "6222")),
            "Remainder",
        ),
        (lambda: build_refund(DraftRefund(DRAFT_NO, Decimal("1.001"), "6222")), "fen"),
        (lambda: build_answer(DraftAnswer("x" * 36, DRAFT_NO, Answer(Result.ACCP))), "PrsntmtId"),
        (lambda: build_presentment(replace(PRESENTED, code="123")), "Code"),
        (lambda: build_presentment(replace(PRESENTED, holder_name="")), "HolderName"),
        (lambda: build_presentment(replace(PRESENTED, agent_bank="1031")), "AgentBank"),
    ],
)
def test_builders_refuse_what_the_link_must_not_carry(build: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]


# ---------------------------------------------------------------- hostile presentments

TEMPLATE = serialize(build_presentment(PRESENTED)).decode()


def field(name: str) -> str:
    el = parse_document(TEMPLATE.encode()).find(f"{{{NS_CLR}}}{name}")
    assert el is not None and el.text is not None
    return f"<{name}>{el.text}</{name}>"


def with_field(name: str, text: str) -> bytes:
    return TEMPLATE.replace(field(name), f"<{name}>{text}</{name}>").encode()


def without(name: str) -> bytes:
    return TEMPLATE.replace(field(name), "").encode()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        # amounts
        (with_field("Amount", "1234.5"), "DrftPrsntmt/Amount must be an amount"),
        (with_field("Amount", "1,234.50"), "Amount must be an amount"),
        (with_field("Amount", "-1234.50"), "Amount must be an amount"),
        (with_field("Amount", " 1234.50"), "Amount must be an amount"),
        (with_field("Amount", "1234567890123456.00"), "Amount must be an amount"),
        (with_field("SettleAmount", "1e3"), "SettleAmount must be an amount"),
        # identifiers and codes
        (with_field("PrsntmtId", "x" * 36), "PrsntmtId must be"),
        (with_field("PrsntmtId", "AG_01"), "PrsntmtId must be"),
        (with_field("DraftNo", "1031000000190000004"), "DraftNo must be 20 digits"),
        (with_field("Code", "123456789012345"), "Code must be 16 digits"),
        (with_field("Code", "12345678901234567"), "Code must be 16 digits"),
        (with_field("AgentBank", "10310000002"), "AgentBank must be a 12-digit"),
        (with_field("HolderAcct", "6217 0000"), "HolderAcct must be an account"),
        (with_field("HolderName", "   "), "HolderName must be 1-140"),
        (with_field("HolderName", "x" * 141), "HolderName must be 1-140"),
        (
            with_field("HolderName", "Beta&#1;Ltd"),
            "not a well-formed Document",
        ),  # XML 1.0 forbids it
        (with_field("HolderName", "Beta&#127;Ltd"), "control character"),
        # dates
        (with_field("IssueDate", "2026-02-30"), "IssueDate must be a YYYY-MM-DD date"),
        (with_field("IssueDate", "2026-2-3"), "IssueDate must be a YYYY-MM-DD date"),
        (with_field("IssueDate", "2026-11-02T00:00:00"), "IssueDate must be a YYYY-MM-DD date"),
        (with_field("IssueDate", "20261102"), "IssueDate must be a YYYY-MM-DD date"),
        # structure
        (without("Code"), "DrftPrsntmt/Code missing"),
        (without("HolderName"), "DrftPrsntmt/HolderName missing"),
        (with_field("Code", ""), "DrftPrsntmt/Code is empty"),
        (TEMPLATE.replace(field("Code"), field("Code") * 2).encode(), "DrftPrsntmt/Code repeated"),
        (
            TEMPLATE.replace(
                field("PrsntmtId") + field("DraftNo"), field("DraftNo") + field("PrsntmtId")
            ).encode(),
            "PrsntmtId missing or out of order",
        ),
        (
            TEMPLATE.replace("</DrftPrsntmt>", "<Extra>1</Extra></DrftPrsntmt>").encode(),
            "Extra: unknown element",
        ),
        (
            TEMPLATE.replace("<Code>", '<Code Ccy="CNY">').encode(),
            "Code: attributes, children or stray text",
        ),
        (
            TEMPLATE.replace("<Amount>", "<Amount><X/>").encode(),
            "Amount: attributes, children or stray text",
        ),
        (
            TEMPLATE.replace("</Code>", "</Code>stray").encode(),
            "Code: attributes, children or stray text",
        ),
        (
            TEMPLATE.replace("</Code>", "</Code><!-- hi -->").encode(),
            "comment, instruction or foreign element",
        ),
        (
            TEMPLATE.replace("<Code>", '<Code xmlns="urn:other">').encode(),
            "comment, instruction or foreign element",
        ),
        (
            TEMPLATE.replace('xmlns="urn:clearing:1"', 'xmlns="urn:clearing:2"').encode(),
            "not DrftPrsntmt",
        ),
        (TEMPLATE.replace("DrftPrsntmt", "DrftIsse").encode(), "not DrftPrsntmt"),
        (
            TEMPLATE.replace('xmlns="urn:clearing:1">', 'xmlns="urn:clearing:1" v="1">').encode(),
            "attributes or text on the root",
        ),
        (
            TEMPLATE.replace('xmlns="urn:clearing:1">', 'xmlns="urn:clearing:1">text').encode(),
            "attributes or text on the root",
        ),
        # bytes
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><DrftPrsntmt xmlns="urn:clearing:1"/>',
            "DTD not allowed",
        ),
        (TEMPLATE.replace("UTF-8", "GBK").encode("gbk"), "UTF-8"),
        (TEMPLATE.encode()[:-20], "not a well-formed Document"),
        (b"", "not a well-formed Document"),
        (
            TEMPLATE.replace("</DrftPrsntmt>", "<!--" + "x" * 17000 + "--></DrftPrsntmt>").encode(),
            "too large",
        ),
    ],
)
def test_hostile_presentments_are_refused_with_the_field(data: bytes, match: str) -> None:
    with pytest.raises(DraftDocumentError, match=match):
        parse_presentment(data)


def test_a_settle_amount_of_zero_reads_so_the_checks_can_answer_sa() -> None:
    assert parse_presentment(with_field("SettleAmount", "0.00")).settle_amount == Decimal(0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<Result>ACCP</Result><Rsn>NF</Rsn>", "Rsn is given with RJCT and only with RJCT"),
        ("<Result>RJCT</Result>", "Rsn is given with RJCT and only with RJCT"),
        ("<Result>RJCT</Result><Rsn>XX</Rsn>", "Rsn must be one of NF, RF, PD, EX, CD, AM, SA, SC"),
        ("<Result>OK</Result>", "Result must be one of ACCP, RJCT"),
        ("<Rsn>NF</Rsn><Result>RJCT</Result>", "Result missing or out of order"),
        ("<Result>RJCT</Result><Rsn>NF</Rsn><Rsn>NF</Rsn>", "Rsn repeated"),
    ],
)
def test_hostile_answers(text: str, match: str) -> None:
    data = (
        f'<DrftAnswr xmlns="urn:clearing:1"><PrsntmtId>AG-1</PrsntmtId>'
        f"<DraftNo>{DRAFT_NO}</DraftNo>{text}</DrftAnswr>"
    ).encode()
    with pytest.raises(DraftDocumentError, match=match):
        read_answer(parse_document(data))


@pytest.mark.parametrize(
    ("read", "data", "match"),
    [
        (
            read_issue,
            f'<DrftIsse xmlns="urn:clearing:1"><DraftNo>{DRAFT_NO}</DraftNo><Amount>0.00</Amount><PayerAcct>6222</PayerAcct><Scope>NATIONAL</Scope></DrftIsse>',
            "Amount must be positive",
        ),
        (
            read_issue,
            f'<DrftIsse xmlns="urn:clearing:1"><DraftNo>{DRAFT_NO}</DraftNo><Amount>1.00</Amount><PayerAcct>6222</PayerAcct><Scope>national</Scope></DrftIsse>',
            "Scope must be one of NATIONAL, PROVINCIAL",
        ),
        (
            read_issue,
            f'<DrftIsse xmlns="urn:clearing:1"><DraftNo>{DRAFT_NO}</DraftNo><Amount>1.00</Amount><PayerAcct>6222</PayerAcct></DrftIsse>',
            "DrftIsse/Scope missing",
        ),
        (
            read_settlement,
            f'<DrftSttlm xmlns="urn:clearing:1"><DraftNo>{DRAFT_NO}</DraftNo><SettleAmount>0.00</SettleAmount><Remainder>1.00</Remainder><PayerAcct>6222</PayerAcct></DrftSttlm>',
            "SettleAmount must be positive",
        ),
        (
            read_settlement,
            f'<DrftSttlm xmlns="urn:clearing:1"><DraftNo>{DRAFT_NO}</DraftNo><SettleAmount>1.00</SettleAmount><Remainder>-1.00</Remainder><PayerAcct>6222</PayerAcct></DrftSttlm>',
            "Remainder must be an amount",
        ),
        (
            read_refund,
            f'<DrftRfnd xmlns="urn:clearing:1"><DraftNo>{DRAFT_NO}</DraftNo><Amount>1.5</Amount><PayerAcct>6222</PayerAcct></DrftRfnd>',
            "Amount must be an amount",
        ),
        (
            read_refund,
            f'<DrftSttlm xmlns="urn:clearing:1"><DraftNo>{DRAFT_NO}</DraftNo></DrftSttlm>',
            "Document is not DrftRfnd",
        ),
    ],
)
def test_hostile_outbound_documents(read: object, data: str, match: str) -> None:
    with pytest.raises(DraftDocumentError, match=match):
        read(parse_document(data.encode()))  # type: ignore[operator]


def test_a_presentment_read_from_an_envelope_element() -> None:
    """The link hands over the Document element of a verified ClrMsg."""
    clr = etree.Element(f"{{{NS_CLR}}}ClrMsg", nsmap={None: NS_CLR})  # type: ignore[dict-item]
    etree.SubElement(clr, f"{{{NS_CLR}}}Hdr")
    clr.append(build_presentment(PRESENTED))
    tree = parse_document(serialize(clr))
    assert read_presentment(tree[1]) == PRESENTED
    assert isinstance(PRESENTED, Presentment) and PRESENTED.issue_date == date(2026, 11, 2)


@settings(max_examples=300, deadline=None, database=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(TEMPLATE.encode()) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_a_mangled_presentment_raises_only_the_document_error(
    edits: list[tuple[int, int]],
) -> None:
    """Whatever bytes arrive, the reader answers with a value or one clear error."""
    data = bytearray(TEMPLATE.encode())
    for offset, byte in edits:
        data[offset] = byte
    with contextlib.suppress(DraftDocumentError):
        parse_presentment(bytes(data))
