"""A SWIFT payment whose settlement path a reload removed after it was routed
(docs/foreign-currency.md §3): when the engine comes to build its swift.008 it is
REJECTED 4001 ("the settlement path … is no longer configured"), reported in STATUS and
NTFY like any rejection, and the other payments of the same pass still settle."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from gateway.clock import FrozenClock
from gateway.engines.swift_runner import NO_PATH
from gateway.errors import RetCode
from gateway.keys.devpki import DevPki
from gateway.paths import default_config_path
from gateway.testing import Broker
from tests.integration.harness import (
    FX_SCREENED,
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_gateway,
    wait_for_state,
)
from tests.integration.test_fx_swift import running_swift_sim, usd

RELEASE_AT = re.compile(rb"<ReleaseAt>([^<]+)</ReleaseAt>")
SHIPPED = default_config_path().parent.parent / "routing" / "correspondents.csv"


def without_usd(path: Path) -> None:
    """Rewrite the correspondents file without its USD row (the only path to CITIUS33)."""
    rows = path.read_text().splitlines(keepends=True)
    kept = [r for r in rows if not r.startswith("USD,")]
    assert len(kept) == len(rows) - 1
    path.write_text("".join(kept))


async def test_a_payment_whose_path_was_removed_is_rejected_and_the_rest_go_out(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    # 16:45 on a working Friday: past the dollar's (16:00) and the euro's (16:30) cutoffs
    clock = FrozenClock(recent_friday_10() + timedelta(hours=6, minutes=45))
    correspondents = tmp_path / "correspondents.csv"
    shutil.copyfile(SHIPPED, correspondents)
    routing = {"correspondents": str(correspondents), "max_drop_ratio": 1.0}  # 1 row of 5
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, {**FX_SCREENED, "routing": routing})
    async with (
        running_swift_sim(dev_pki, broker.url, tmp_path / "swift.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        gone = await erp.pay("GONE-USD", clock.now(), usd("CITIUS33", "10.00"))
        also = await erp.pay("GONE-USD-2", clock.now(), usd("CITIUS33", "11.00"))
        eur = payment("", "20.00", ccy="EUR", payee_bic="LIONFRPPXXX", payee_country="FR")
        kept = await erp.pay("KEPT-EUR", clock.now(), eur)
        for r in (gone, also, kept):
            assert (r.ret_code, r.engine, r.state) == ("0000", "SWIFT", "HELD"), r.ret_msg
        found = RELEASE_AT.search(gone.raw)
        assert found is not None, gone.raw
        opening = datetime.fromisoformat(found.group(1).decode())

        without_usd(correspondents)
        assert (await gw.reload())["ok"] is True
        with capture_logs() as logs:
            clock.set(opening)  # all three are released to QUEUED and claimed by one pass
            now = clock.now()
            kept_state = await wait_for_state(erp, now, "KEPT-EUR", ["SETTLED", "REJECTED"])
            assert kept_state == "SETTLED"
            for msg_id in ("GONE-USD", "GONE-USD-2"):
                assert await wait_for_state(erp, now, msg_id, ["REJECTED"]) == "REJECTED"
        warned = [e for e in logs if e["event"] == "swift_path_gone"]
        assert [(e["log_level"], e["ccy"], e["reason_code"]) for e in warned] == [
            ("warning", "USD", "4001"),
            ("warning", "USD", "4001"),
        ]
        assert not [e for e in logs if e["event"] == "engine_pass_failed"]
        st = await erp.status("Q-GONE-USD", now, "GONE-USD")
        assert st.reason is not None
        assert st.reason.startswith("4001 ")
        assert "settlement path for USD is no longer configured" in st.reason
        notices = await erp.pull_all(iter(f"N-{i}" for i in range(10)), now)
        rejected = [n for n in notices if n.state == "REJECTED"]
        assert sorted((n.kind, n.orig_msg_id, n.reason_code) for n in rejected) == [
            ("STATUS", "GONE-USD", "4001"),
            ("STATUS", "GONE-USD-2", "4001"),
        ]
        await erp.close()


def test_the_engine_recognises_the_routers_no_path_code() -> None:
    """The engines may not import gateway.errors; their copy of the code must match."""
    assert RetCode.BANK_CODE_UNKNOWN.value == NO_PATH
