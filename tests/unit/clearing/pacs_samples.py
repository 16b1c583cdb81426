"""Sample inputs for clearing-document tests (shared with tests/unit/sim)."""

from __future__ import annotations

import os
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from lxml import etree

from gateway.clock import SHANGHAI
from gateway.journal.records import QueuedItem
from gateway.model import BizType, Engine, Priority

OUR_PARTICIPANT = "103100000019"
PEER_PARTICIPANT = "104100000004"
WORK_DATE = date(2026, 11, 27)
CREATED = datetime(2026, 11, 27, 10, 0, 0, 120000, tzinfo=SHANGHAI)

_NAMES = ("上海示例贸易有限公司", "北京某某科技股份有限公司", "张三", "Acme & <Sons> Ltd.")
_PURPOSES = ("货款", "工资 2026年11月", None, "service fee 服务费 #42")


def xsd_dir() -> Path:
    """The official schemas in <repo>/../shared/xsd, or $GATEWAY_SHARED_XSD (never copied)."""
    override = os.environ.get("GATEWAY_SHARED_XSD")
    if override:
        return Path(override).resolve()
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "xsd").resolve()


@cache
def schema(name: str) -> etree.XMLSchema:
    """Load ``<name>.xsd`` (e.g. ``pacs.008.001.08``) from the shared folder."""
    path = xsd_dir() / f"{name}.xsd"
    if not path.is_file():
        raise FileNotFoundError(f"official schema {path} missing (set GATEWAY_SHARED_XSD)")
    return etree.XMLSchema(etree.parse(str(path)))


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
