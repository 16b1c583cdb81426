"""Foreign-currency payments to our own bank through the real daemon (docs/foreign-currency.md §2):
INTRA in that currency, the configured currency list answering 4004, and the FX fields
journaled with the item."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.clock import BusinessClock
from gateway.config import Config
from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from tests.integration.harness import (
    FX_SCREENED,
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)

FRIDAY_10 = recent_friday_10()
NS_PACS008 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"


FX_ON = FX_SCREENED
"""Foreign currency is on as shipped but refused without lists; these tests add the demo list."""


def journal_rows(cfg: Config, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(cfg.journal_path) as conn:
        return conn.execute(sql).fetchall()


def sent_amount(cfg: Config, end_to_end_id: str) -> tuple[str, str]:
    """The ``IntrBkSttlmAmt`` text and ``Ccy`` of the intra.111 that carried a payment."""
    for (payload,) in journal_rows(cfg, "SELECT payload FROM outbound WHERE msg_tp = 'intra.111'"):
        root = etree.fromstring(bytes(payload))
        for tx in root.iter(f"{{{NS_PACS008}}}CdtTrfTxInf"):
            if tx.findtext(f"{{{NS_PACS008}}}PmtId/{{{NS_PACS008}}}EndToEndId") == end_to_end_id:
                amount = tx.find(f"{{{NS_PACS008}}}IntrBkSttlmAmt")
                assert amount is not None
                return amount.text or "", amount.get("Ccy") or ""
    raise AssertionError(f"no intra.111 carried {end_to_end_id}")


async def test_foreign_currency_to_our_bank_goes_intra_and_settles(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        cases = {
            # an own branch by its 12-digit code
            "FX-USD-BRANCH": payment("103290000018", "250.50", ccy="USD"),
            # our BIC only (bank.bics, an 11-character form of it): the head office
            "FX-USD-BIC": payment(
                "", "99.00", ccy="USD", payee_bic="DEMOCNBJXXX", payee_country="CN"
            ),
            # a yen has no minor unit: 1500 is the amount
            "FX-JPY": payment("100022", "1500", ccy="JPY", chrg_br="DEBT"),
        }
        for msg_id, p in cases.items():
            r = await erp.pay(msg_id, now, p)
            assert (r.ret_code, r.engine, r.state) == ("0000", "INTRA", "QUEUED"), r.ret_msg
        for msg_id in cases:
            assert await wait_for_state(erp, clock.now(), msg_id, ["SETTLED"]) == "SETTLED"
            st = await erp.status(f"Q-{msg_id}", clock.now(), msg_id)
            assert b"<Uetr>" not in st.raw  # INTRA payments have none
        await erp.close()
        assert sim.stats["invalid"] == 0
        assert sent_amount(cfg, "FX-USD-BRANCH") == ("250.50", "USD")
        assert sent_amount(cfg, "FX-USD-BIC") == ("99.00", "USD")
        assert sent_amount(cfg, "FX-JPY") == ("1500", "JPY")
        rows = journal_rows(
            cfg,
            "SELECT r.msg_id, i.receiver, i.ccy, i.payee_bic, i.payee_country, i.chrg_br, i.uetr"
            " FROM items i JOIN requests r ON r.id = i.request_id ORDER BY r.msg_id",
        )
        assert rows == [
            ("FX-JPY", "100022", "JPY", None, None, "DEBT", None),
            ("FX-USD-BIC", cfg.bank.participant, "USD", "DEMOCNBJXXX", "CN", "SHAR", None),
            ("FX-USD-BRANCH", "100018", "USD", None, None, "SHAR", None),
        ]


async def test_currency_list_and_other_banks_are_refused(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """Without the SWIFT link (``swift.enabled = false``) a payment to another bank is 4001."""
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(
        tmp_path / "gw", dev_pki, broker.url, {**FX_ON, "swift": {"enabled": False}}
    )
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        cases = [
            ("R-JPY-DEC", payment("103290000018", "1500.00", ccy="JPY"), "4004", "JPY"),
            ("R-USD-3DEC", payment("103290000018", "1.005", ccy="USD"), "4004", "USD"),
            ("R-XYZ", payment("103290000018", "10.00", ccy="XYZ"), "4004", "XYZ"),
            (
                "R-OTHER-BANK",
                payment("", "10.00", ccy="USD", payee_bic="CITIUS33", payee_country="US"),
                "4001",
                "SWIFT link",
            ),
            # a code of another bank with our BIC names two banks
            (
                "R-TWO-BANKS",
                payment(
                    "104100000004", "10.00", ccy="USD", payee_bic="DEMOCNBJ", payee_country="CN"
                ),
                "4001",
                "different banks",
            ),
            # another bank without a BIC: the BIC is what a SWIFT payment needs
            ("R-NO-BIC", payment("104100000004", "10.00", ccy="EUR"), "1003", "PayeeBIC"),
        ]
        for msg_id, p, code, word in cases:
            r = await erp.pay(msg_id, now, p)
            assert (r.msg_id, r.ret_code, r.gw_ref) == (msg_id, code, None), r.ret_msg
            assert word in r.ret_msg
        # nothing was journaled, so a corrected payment may reuse the MsgId
        fixed = await erp.pay("R-JPY-DEC", now, payment("103290000018", "1500", ccy="JPY"))
        assert (fixed.ret_code, fixed.engine) == ("0000", "INTRA"), fixed.ret_msg
        # a CNY payment is routed as ever
        cny = await erp.pay("R-CNY", now, payment("104100000004", "50000.00"))
        assert (cny.ret_code, cny.engine) == ("0000", "HVPS")
        await erp.close()
    rows = journal_rows(cfg, "SELECT ccy, payee_bic, payee_country, chrg_br FROM items")
    assert sorted(rows, key=str) == sorted(
        [("JPY", None, None, "SHAR"), ("CNY", None, None, None)], key=str
    )


async def test_as_shipped_foreign_currency_is_refused_until_lists_are_configured(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """As shipped ``fx.enabled = true`` with no ``screening.lists``: a foreign-currency
    payment, to our own bank or another, is refused 2006 and journaled nowhere (never sent
    unscreened, docs/foreign-currency.md §5); CNY is unchanged."""
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    assert cfg.fx.enabled and cfg.swift_enabled and not cfg.screening.lists
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        own = await erp.pay("S-USD-OWN", now, payment("103290000018", "10.00", ccy="USD"))
        assert own.ret_code == "2006", own.ret_msg
        other = await erp.pay(
            "S-USD-OTHER",
            now,
            payment("", "10.00", ccy="USD", payee_bic="CITIUS33", payee_country="US"),
        )
        assert other.ret_code == "2006", other.ret_msg
        cny = await erp.pay("S-CNY", now, payment("103290000018", "10.00"))
        assert cny.ret_code == "0000", cny.ret_msg
        await erp.close()
    rows = journal_rows(cfg, "SELECT ccy FROM items")
    assert rows == [("CNY",)]
