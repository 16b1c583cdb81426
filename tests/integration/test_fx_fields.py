"""The foreign-currency fields of a payment through the real daemon (docs/foreign-currency.md
§1): each malformed or missing field answers its RetCode naming the element and journals
nothing; ``ChrgBr`` defaults to SHAR; a PAIN001 maps ``CdtrAgt/FinInstnId/BICFI``,
``Cdtr/PstlAdr/Ctry`` and ``ChrgBr`` (the transaction's, else its payment information's)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from tests.integration.harness import Erp, gateway_config, payment, running_gateway
from tests.integration.test_batches import items_of, pain001_sample, send
from tests.integration.test_fx_swift import FRIDAY_10, FX_ON, running_swift_sim


def usd(amount: str = "10.00", **fields: Any) -> Any:
    values: dict[str, Any] = {"ccy": "USD", "payee_bic": "CITIUS33", "payee_country": "US"}
    return payment("", amount, **{**values, **fields})


def fx_pain001(pmt_inf_chrg_br: str, tx_chrg_br: str | None) -> etree._Element:
    """The shipped sample with its third transaction in USD to Citibank New York."""
    text = pain001_sample().decode()
    tx3 = text.index("ACME-E2E-0003")
    head, tail = text[:tx3], text[tx3:]
    # payment-information level, after DbtrAgt (pain.001.001.09's order)
    cut = head.rindex("</DbtrAgt>") + len("</DbtrAgt>")
    head = head[:cut] + f"\n      <ChrgBr>{pmt_inf_chrg_br}</ChrgBr>" + head[cut:]
    tx_level = f"<ChrgBr>{tx_chrg_br}</ChrgBr>" if tx_chrg_br else ""
    tail = (
        tail.replace('<InstdAmt Ccy="CNY">500</InstdAmt>\n        </Amt>',
                     f'<InstdAmt Ccy="USD">500</InstdAmt>\n        </Amt>{tx_level}')
        .replace("<BICFI>ICBKCNBJ</BICFI>", "<BICFI>CITIUS33</BICFI>")
        .replace("<Nm>Delta Office Supplies Ltd</Nm>",
                 "<Nm>Delta Office Supplies Ltd</Nm><PstlAdr><Ctry>US</Ctry></PstlAdr>")
    )  # fmt: skip
    return etree.fromstring((head + tail).encode())


async def test_each_foreign_currency_field_rule_answers_its_retcode(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    async with (
        running_swift_sim(dev_pki, broker.url, tmp_path / "swift.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):  # fmt: skip
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        refused = [
            ("F-BIC-SHORT", usd(payee_bic="CITIUS3"), "1003", "PayeeBIC"),
            ("F-BIC-LOWER", usd(payee_bic="citius33"), "1003", "PayeeBIC"),
            ("F-BIC-10", usd(payee_bic="CITIUS33XX"), "1003", "PayeeBIC"),
            ("F-NO-COUNTRY", usd(payee_country=None), "1003", "PayeeCountry"),
            ("F-COUNTRY-3", usd(payee_country="USA"), "1003", "PayeeCountry"),
            ("F-CHRGBR", usd(chrg_br="OUR"), "1003", "ChrgBr"),
            ("F-CCY-DEC", usd("10.001"), "4004", "USD"),
        ]
        for msg_id, p, code, word in refused:
            r = await erp.pay(msg_id, now, p)
            assert (r.ret_code, r.gw_ref) == (code, None), (msg_id, r.ret_msg)
            assert word in r.ret_msg, (msg_id, r.ret_msg)
        # PayeeBankCode may be left out when PayeeBIC is given; ChrgBr defaults to SHAR
        ok = await erp.pay("F-OK", now, usd())
        assert (ok.ret_code, ok.engine) == ("0000", "SWIFT"), ok.ret_msg
        cred = await erp.pay("F-CRED", now, usd(chrg_br="CRED", payee_bic="CITIUS33XXX"))
        assert (cred.ret_code, cred.engine) == ("0000", "SWIFT"), cred.ret_msg
        # the refused MsgIds were never journaled: a corrected payment may reuse one
        fixed = await erp.pay("F-BIC-SHORT", now, usd())
        assert fixed.ret_code == "0000", fixed.ret_msg
        await erp.close()
    with sqlite3.connect(cfg.journal_path) as conn:
        rows = conn.execute(
            "SELECT r.msg_id, i.payee_bic, i.payee_country, i.chrg_br FROM items i"
            " JOIN requests r ON r.id = i.request_id ORDER BY r.msg_id"
        ).fetchall()
    assert rows == [
        ("F-BIC-SHORT", "CITIUS33", "US", "SHAR"),
        ("F-CRED", "CITIUS33XXX", "US", "CRED"),
        ("F-OK", "CITIUS33", "US", "SHAR"),
    ]


async def test_a_pain001_maps_bic_country_and_charge_bearer(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, FX_ON)
    async with (
        running_swift_sim(dev_pki, broker.url, tmp_path / "swift.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):  # fmt: skip
        erp = await Erp(gw, dev_pki).client()
        now = clock.now()
        for msg_id, doc in (
            ("P-PMTINF", fx_pain001("CRED", None)),  # the payment information's ChrgBr
            ("P-TX", fx_pain001("CRED", "DEBT")),  # the transaction's wins
        ):
            r = await send(erp, "PAIN001", msg_id, now, doc)
            assert r.ret_code == "0000", r.ret_msg
            third = items_of(r)[2]
            assert (third.seq_no, third.state, third.engine) == (3, "QUEUED", "SWIFT")
        await erp.close()
    with sqlite3.connect(cfg.journal_path) as conn:
        rows = conn.execute(
            "SELECT r.msg_id, i.ccy, i.payee_bic, i.payee_country, i.chrg_br FROM items i"
            " JOIN requests r ON r.id = i.request_id WHERE i.seq_no = 3 ORDER BY r.msg_id"
        ).fetchall()
    assert rows == [
        ("P-PMTINF", "USD", "CITIUS33", "US", "CRED"),
        ("P-TX", "USD", "CITIUS33", "US", "DEBT"),
    ]
