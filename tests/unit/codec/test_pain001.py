"""PAIN001: pain.001.001.09 documents become transfers (corplink.md §4, §8)."""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal
from pathlib import Path

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.codec import pain001
from gateway.codec.pain001 import Pain001Item, decode_pain001, load_schema
from gateway.codec.xmlparse import parse_body
from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.model import Priority
from gateway.paths import data_root
from tests.conftest import shared_xsd_dir

XSD_DIR = shared_xsd_dir()
REQUIRES_XSD = pytest.mark.requires_xsd
WITHOUT_AND_WITH_XSD = [False, pytest.param(True, marks=REQUIRES_XSD)]
"""Our own rules alone, then with the official schema (only where it is found)."""
SAMPLE_PATH = data_root() / "codecs" / "samples" / "pain001.xml"
SAMPLE = SAMPLE_PATH.read_text(encoding="utf-8")
NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"


def root_of(text: str) -> etree._Element:
    return parse_body(text.encode("utf-8")).root


def decode(text: str = SAMPLE, *, xsd: bool = False) -> list[Pain001Item]:
    return decode_pain001(root_of(text), xsd_dir=XSD_DIR if xsd else None)


def refusal(text: str, *, xsd: bool = False) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        decode(text, xsd=xsd)
    return caught.value


def edit(old: str, new: str, text: str = SAMPLE, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


def without_ctrl_sums(text: str = SAMPLE) -> str:
    return re.sub(r"\s*<CtrlSum>[^<]*</CtrlSum>", "", text)


# -- the valid sample -----------------------------------------------------------------


@pytest.mark.parametrize("xsd", WITHOUT_AND_WITH_XSD)
def test_the_sample_becomes_three_transfers(xsd: bool) -> None:
    items = decode(xsd=xsd)
    assert [item.seq_no for item in items] == [1, 2, 3]
    first, second, third = items
    assert first.transfer.payer_acct == "6222020200001234"
    assert first.transfer.payer_name == "ACME Trading Co Ltd"
    assert first.transfer.payee_acct == "6222020200005678"
    assert first.transfer.payee_name == "北京贝塔零部件有限公司"
    assert first.transfer.payee_bank_code == "102100099996"
    assert first.transfer.amount == Decimal("1234.50")
    assert first.transfer.ccy == "CNY"
    assert first.transfer.priority is Priority.NORM
    assert first.transfer.purpose == "Invoice 2026-1127"
    assert (first.end_to_end_id, first.instr_id, first.bic) == (
        "ACME-E2E-0001",
        "ACME-I-0001",
        None,
    )
    assert first.pmt_inf_id == "ACME-PMT-01"

    assert second.transfer.payee_bank_code == "103100000027"
    assert second.transfer.amount == Decimal("80000.00")
    assert second.transfer.priority is Priority.URGT  # InstrPrty HIGH
    assert second.instr_id is None

    # A BIC is returned unresolved: the router maps it through the directory.
    assert third.bic == "ICBKCNBJ"
    assert third.transfer.payee_bank_code == ""
    assert third.transfer.amount == Decimal("500.00")
    assert third.transfer.purpose == "Order 77 stationery"
    assert third.pmt_inf_id == "ACME-PMT-02"


@REQUIRES_XSD
def test_the_sample_is_valid_for_an_independent_validator() -> None:
    xmlschema.XMLSchema(str(XSD_DIR / "pain.001.001.09.xsd")).validate(str(SAMPLE_PATH))


@REQUIRES_XSD
def test_the_document_may_sit_inside_a_corplink_body() -> None:
    body = SAMPLE.split("?>", 1)[1]
    request = f'<CorpLink xmlns="urn:corplink:1"><Body>{body}</Body></CorpLink>'
    document = root_of(request)[0][0]
    assert len(decode_pain001(document, xsd_dir=XSD_DIR)) == 3


@REQUIRES_XSD
def test_a_bic_beside_a_clearing_member_id_keeps_both() -> None:
    text = edit(
        "<ClrSysMmbId>\n              <MmbId>103100000027</MmbId>",
        "<BICFI>DEMOCNBJ027</BICFI>\n<ClrSysMmbId>\n              <MmbId>103100000027</MmbId>",
    )
    item = decode(text, xsd=True)[1]
    assert (item.bic, item.transfer.payee_bank_code) == ("DEMOCNBJ027", "103100000027")


@REQUIRES_XSD
def test_an_urgent_service_level_makes_the_whole_instruction_urgent() -> None:
    text = edit(
        "<PmtMtd>TRF</PmtMtd>\n      <NbOfTxs>1</NbOfTxs>",
        "<PmtMtd>TRF</PmtMtd>\n      <NbOfTxs>1</NbOfTxs><PmtTpInf><SvcLvl><Cd>URGP</Cd></SvcLvl></PmtTpInf>",
    )
    items = decode(text, xsd=True)
    assert [item.transfer.priority for item in items] == [
        Priority.NORM,
        Priority.URGT,
        Priority.URGT,
    ]


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("xsd", WITHOUT_AND_WITH_XSD)
@pytest.mark.parametrize(
    ("text", "code", "detail"),
    [
        (SAMPLE.replace("pain.001.001.09", "pain.001.001.03"), RetCode.UNKNOWN_TRNCODE,
         "pain.001.001.03 not supported, expected pain.001.001.09"),
        (SAMPLE.replace("pain.001.001.09", "pacs.008.001.08"), RetCode.UNKNOWN_TRNCODE,
         "pacs.008.001.08 not supported"),
        (SAMPLE.replace("<Document", "<Doc").replace("</Document>", "</Doc>"), RetCode.SCHEMA,
         "Doc: expected a pain.001.001.09 Document"),
        (SAMPLE.replace("urn:iso:std:iso:20022:tech:xsd:pain.001.001.09", "urn:example"),
         RetCode.SCHEMA, "Document: expected a pain.001.001.09 Document"),
        (edit("<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>4</NbOfTxs>"), RetCode.SCHEMA,
         "NbOfTxs: does not match the 3 transactions (GrpHdr)"),
        (edit("<NbOfTxs>2</NbOfTxs>", "<NbOfTxs>3</NbOfTxs>"), RetCode.SCHEMA,
         "NbOfTxs: does not match the 2 transactions (PmtInf)"),
        (edit("<CtrlSum>81734.50</CtrlSum>", "<CtrlSum>81734.51</CtrlSum>"), RetCode.SCHEMA,
         "CtrlSum: does not match the sum of the amounts (GrpHdr)"),
        (edit("<CtrlSum>81234.50</CtrlSum>", "<CtrlSum>1234.50</CtrlSum>"), RetCode.SCHEMA,
         "CtrlSum: does not match the sum of the amounts (PmtInf)"),
        (edit('Ccy="CNY">1234.50', 'Ccy="USD">1234.50'), RetCode.AMOUNT_INVALID,
         "InstdAmt: currency must be CNY (transaction 1)"),
        (without_ctrl_sums(edit(">500<", ">500.005<")), RetCode.AMOUNT_INVALID,
         "InstdAmt: up to 15 digits and at most 2 decimals (transaction 3)"),
        (without_ctrl_sums(edit(">500<", ">0.00<")), RetCode.AMOUNT_INVALID,
         "InstdAmt: must be greater than zero (transaction 3)"),
        (without_ctrl_sums(edit(">500<", ">1234567890123456<")), RetCode.AMOUNT_INVALID,
         "InstdAmt: up to 15 digits"),
        (without_ctrl_sums(edit('<InstdAmt Ccy="CNY">500</InstdAmt>',
                                '<EqvtAmt><Amt Ccy="CNY">500</Amt><CcyOfTrf>CNY</CcyOfTrf></EqvtAmt>')),
         RetCode.AMOUNT_INVALID, "Amt: only InstdAmt in CNY (transaction 3)"),
        (edit("<Nm>Gamma Logistics Ltd</Nm>", "<CtryOfRes>CN</CtryOfRes>"), RetCode.SCHEMA,
         "Cdtr: missing Nm (transaction 2)"),
        (edit("<BICFI>ICBKCNBJ</BICFI>", "<Nm>ICBC</Nm>"), RetCode.SCHEMA,
         "FinInstnId: missing ClrSysMmbId or BICFI (CdtrAgt) (transaction 3)"),
        (SAMPLE.replace("<Nm>ACME Trading Co Ltd</Nm>", f"<Nm>{'A' * 61}</Nm>"), RetCode.SCHEMA,
         "Nm: more than 60 characters (Dbtr)"),
        (edit("<Id>6228480010009999</Id>", "<Id>6228-4800</Id>"), RetCode.SCHEMA,
         "Id: account must be 1-32 letters or digits (CdtrAcct) (transaction 2)"),
        (edit("<PmtMtd>TRF</PmtMtd>", "<PmtMtd>CHK</PmtMtd>"), RetCode.UNKNOWN_TRNCODE,
         "PmtMtd: only TRF"),
        (edit("<Cd>CNAPS</Cd>\n              </ClrSysId>\n              <MmbId>102100099996",
              "<Cd>USABA</Cd>\n              </ClrSysId>\n              <MmbId>102100099996"),
         RetCode.SCHEMA, "ClrSysId: only Cd CNAPS is supported (transaction 1)"),
        (without_ctrl_sums(edit('Ccy="CNY">1234.50', 'Ccy="USD">1234.50').replace(
            "<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>9</NbOfTxs>")), RetCode.SCHEMA, "NbOfTxs"),
    ],
    ids=lambda value: "doc" if isinstance(value, str) and value.startswith("<?xml") else None,
)  # fmt: skip
def test_refusals(text: str, code: RetCode, detail: str, xsd: bool) -> None:
    error = refusal(text, xsd=xsd)
    assert error.code is code
    assert error.detail is not None
    assert detail in error.detail


@pytest.mark.parametrize("xsd", WITHOUT_AND_WITH_XSD)
@pytest.mark.parametrize(
    ("text", "own_rules", "with_xsd"),
    [
        # a lower-case BIC: our pattern, or the schema's
        (edit("ICBKCNBJ", "icbkcnbj"), "BICFI: not a BIC (transaction 3)", "BICFI: invalid value"),
        # an element the schema does not know
        (edit("<Cdtr>", "<Foo>x</Foo><Cdtr>"), None, "Foo: unexpected element"),
        # a second Cdtr: ambiguous, refused either way
        (edit("<Cdtr>", "<Cdtr><Nm>Other</Nm></Cdtr><Cdtr>"), "Cdtr: more than one in CdtTrfTxInf (transaction 1)", "Cdtr: unexpected element"),
        # an element of another namespace
        (edit("<Cdtr>", '<x:Cdtr xmlns:x="urn:example"/><Cdtr>'), "Cdtr: unexpected element", "Cdtr: unexpected element"),
        # the schema's rules that the gateway does not need: CreDtTm
        (edit("<CreDtTm>2026-11-27T10:00:00+08:00</CreDtTm>", ""), None, "NbOfTxs: unexpected element"),
        # an account longer than the schema's Max34Text: the value is not echoed
        (edit("6222020200005678", "6" * 35), "Id: account must be 1-32", "Id: invalid value"),
        # an empty Ustrd
        (edit("<Ustrd>Order 77</Ustrd>", "<Ustrd> </Ustrd>"), "Ustrd: empty (transaction 3)", "Ustrd: empty (transaction 3)"),
    ],
    ids=lambda value: "doc" if isinstance(value, str) and value.startswith("<?xml") else None,
)  # fmt: skip
def test_own_rules_and_the_official_schema(
    text: str, own_rules: str | None, with_xsd: str | None, xsd: bool
) -> None:
    expected = with_xsd if xsd else own_rules
    if expected is None:
        assert len(decode(text, xsd=xsd)) == 3
        return
    error = refusal(text, xsd=xsd)
    assert error.code is RetCode.SCHEMA
    assert error.detail is not None
    assert expected in error.detail
    assert "6666666666" not in error.detail


def test_structure_is_judged_before_amounts() -> None:
    text = edit('Ccy="CNY">1234.50', 'Ccy="USD">1234.50')
    text = edit("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>", text)
    assert refusal(text).code is RetCode.SCHEMA


def test_remittance_longer_than_140_is_refused() -> None:
    text = edit("<Ustrd>stationery</Ustrd>", f"<Ustrd>{'s' * 140}</Ustrd>")
    assert "Ustrd: more than 140 characters (transaction 3)" in (refusal(text).detail or "")


def test_too_many_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pain001, "MAX_TRANSACTIONS", 2)
    error = refusal(SAMPLE)
    assert (error.code, error.detail) == (RetCode.SCHEMA, "CdtTrfTxInf: more than 2 transactions")


def test_a_folder_without_the_schema_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pain\.001 schema"):
        load_schema(tmp_path)


@REQUIRES_XSD
def test_the_schema_is_compiled_once_per_folder() -> None:
    assert load_schema(XSD_DIR) is load_schema(XSD_DIR)


# -- never anything but GatewayError ----------------------------------------------------------

_NAMES = [
    "Document", "CstmrCdtTrfInitn", "GrpHdr", "NbOfTxs", "CtrlSum", "PmtInf", "PmtInfId", "PmtMtd",
    "Dbtr", "DbtrAcct", "Id", "Othr", "IBAN", "Nm", "CdtTrfTxInf", "PmtId", "EndToEndId", "InstrId",
    "Amt", "InstdAmt", "EqvtAmt", "CdtrAgt", "FinInstnId", "BICFI", "ClrSysMmbId", "ClrSysId", "Cd",
    "MmbId", "Cdtr", "CdtrAcct", "RmtInf", "Ustrd", "PmtTpInf", "InstrPrty", "SvcLvl",
]  # fmt: skip
_TEXTS = st.one_of(
    st.sampled_from(["", " ", "3", "0", "1.5", "TRF", "HIGH", "CNAPS", "ICBKCNBJ", "1e3", "-1", "9" * 40]),
    st.text(max_size=20),
)  # fmt: skip


Node = tuple[str, str | None, str, list["Node"]]  # name, Ccy, text, children


def _leaf(name: str, ccy: str | None, text: str) -> Node:
    return (name, ccy, "".join(c for c in text if c.isprintable()), [])


_NODES = st.recursive(
    st.builds(_leaf, st.sampled_from(_NAMES), st.sampled_from([None, "CNY", "USD"]), _TEXTS),
    lambda children: st.builds(
        lambda name, kids: (name, None, "", kids),
        st.sampled_from(_NAMES),
        st.lists(children, max_size=4),
    ),
    max_leaves=30,
)


def build(node: Node) -> etree._Element:
    name, ccy, text, children = node
    element = etree.Element(f"{{{NS}}}{name}")
    if ccy is not None:
        element.set("Ccy", ccy)
    element.text = text or None
    element.extend(build(child) for child in children)
    return element


@pytest.mark.parametrize("xsd", WITHOUT_AND_WITH_XSD)
@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)  # per value of xsd: the 300 examples that once drew it at random
@given(tree=_NODES)
def test_arbitrary_trees_raise_only_gateway_errors(tree: Node, xsd: bool) -> None:
    document = etree.Element(f"{{{NS}}}Document")
    document.append(build(tree))
    with contextlib.suppress(GatewayError):
        decode_pain001(document, xsd_dir=XSD_DIR if xsd else None)


_LINES = SAMPLE.splitlines()


def with_text(line: str, text: str) -> str:
    """The line with its first element text replaced (``<Nm>old</Nm>`` → ``<Nm>text</Nm>``)."""
    start = line.find(">")
    end = line.find("<", start)
    if start < 0 or end < 0:
        return line
    return line[: start + 1] + text.replace("<", "").replace("&", "") + line[end:]


@pytest.mark.parametrize("xsd", WITHOUT_AND_WITH_XSD)
@settings(max_examples=150, deadline=None, database=None)  # per value of xsd, as above
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["drop", "copy", "text"]), st.integers(0, len(_LINES) - 1), _TEXTS),
        min_size=1,
        max_size=4,
    ),
)  # fmt: skip
def test_mutated_samples_raise_only_gateway_errors(
    edits: list[tuple[str, int, str]], xsd: bool
) -> None:
    lines = list(_LINES)
    for op, position, text in edits:
        index = position % len(lines)
        if op == "drop":
            del lines[index]
        elif op == "copy":
            lines.insert(index, lines[index])
        else:
            lines[index] = with_text(lines[index], text)
        if not lines:
            return
    try:
        root = parse_body("\n".join(lines).encode("utf-8")).root
        items = decode_pain001(root, xsd_dir=XSD_DIR if xsd else None)
    except GatewayError:
        return
    assert all(item.transfer.amount > 0 for item in items)
