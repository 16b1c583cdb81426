"""Sample inputs for clearing-document tests (shared with tests/unit/sim)."""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal
from functools import cache

from hypothesis import strategies as st
from lxml import etree

from gateway.clock import SHANGHAI
from gateway.journal.records import QueuedItem
from gateway.model import BizType, Engine, Priority
from tests.conftest import shared_xsd_dir

OUR_PARTICIPANT = "103100000019"
PEER_PARTICIPANT = "104100000004"
WORK_DATE = date(2026, 11, 27)
CREATED = datetime(2026, 11, 27, 10, 0, 0, 120000, tzinfo=SHANGHAI)

_NAMES = ("上海示例贸易有限公司", "北京某某科技股份有限公司", "张三", "Acme & <Sons> Ltd.")
_PURPOSES = ("货款", "工资 2026年11月", None, "service fee 服务费 #42")


xsd_dir = shared_xsd_dir
"""The official schemas in <repo>/../shared/xsd, or $GATEWAY_SHARED_XSD (never copied)."""

XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co")), min_size=1, max_size=60
)
"""Names and purposes for property tests: any character a Document can carry as text
(no surrogates, controls, unassigned or private-use code points)."""
AMOUNTS = st.lists(
    st.integers(min_value=1, max_value=10**15).map(lambda fen: Decimal(fen).scaleb(-2)),
    min_size=1,
    max_size=5,
)
"""A package's amounts for property tests: 1 to 5 items of 0.01 up to 10^13 yuan."""


@cache
def schema(name: str) -> etree.XMLSchema:
    """Load ``<name>.xsd`` (e.g. ``pacs.008.001.08``) from the shared folder."""
    path = xsd_dir() / f"{name}.xsd"
    if not path.is_file():
        # only a test without the requires_xsd marker gets here (tests/conftest.py)
        raise FileNotFoundError(f"official schema {path} missing: mark the test requires_xsd")
    return etree.XMLSchema(etree.parse(str(path)))


def assert_valid(doc: etree._Element, name: str) -> None:
    """``doc`` is valid against the official schema ``name`` (error log as the message)."""
    xsd = schema(name)
    if not xsd.validate(etree.ElementTree(copy.deepcopy(doc))):
        raise AssertionError(str(xsd.error_log))


def xpath_text(doc: etree._Element, path: str, namespaces: dict[str, str]) -> str:
    """The text of the one element (or the value of the one attribute) at ``path``."""
    found = doc.xpath(path, namespaces=namespaces)
    assert isinstance(found, list)
    assert len(found) == 1, path
    return str(found[0].text if isinstance(found[0], etree._Element) else found[0])


def set_text(doc: etree._Element, path: str, namespaces: dict[str, str], value: str | None) -> None:
    """Change the first element at ``path`` in place: new text, or removed when ``value`` is None."""
    found = doc.xpath(path, namespaces=namespaces)
    assert isinstance(found, list)
    target = found[0]
    assert isinstance(target, etree._Element)
    if value is None:
        parent = target.getparent()
        assert parent is not None
        parent.remove(target)
    else:
        target.text = value


def item(
    n: int = 1,
    *,
    amount: Decimal = Decimal("49999.99"),
    payer_name: str = _NAMES[0],
    payee_name: str = _NAMES[1],
    purpose: str | None = "货款",
    payee_bank_code: str = PEER_PARTICIPANT,
    engine: Engine = Engine.HVPS,
) -> QueuedItem:
    """One queued item as the journal hands it to an engine."""
    return QueuedItem(
        item_id=n,
        tx_id=f"GW20261127A{n:09d}",
        end_to_end_id=f"20261127-{n:06d}",
        corp_id="C100000001",
        msg_id=f"20261127-{n:06d}",
        seq_no=None,
        engine=engine,
        receiver=PEER_PARTICIPANT,
        work_date=WORK_DATE,
        payer_acct="6222000000000001",
        payer_name=payer_name,
        payee_acct=f"62220000{n:08d}",
        payee_name=payee_name,
        payee_bank_code=payee_bank_code,
        amount=amount,
        ccy="CNY",
        priority=Priority.NORM,
        biz_type=BizType.CREDIT,
        purpose=purpose,
        queued_at=CREATED,
    )


def package(count: int) -> list[QueuedItem]:
    """A BEPS-style package: Chinese names, purposes, 49,999.99 and 0.01 amounts."""
    amounts = (Decimal("49999.99"), Decimal("0.01"), Decimal("1234.50"), Decimal("100"))
    return [
        item(
            n,
            amount=amounts[n % len(amounts)],
            payee_name=_NAMES[n % len(_NAMES)],
            purpose=_PURPOSES[n % len(_PURPOSES)],
            engine=Engine.BEPS,
        )
        for n in range(1, count + 1)
    ]
