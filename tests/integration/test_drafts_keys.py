"""Draft key rotation through the real daemon (docs/bank-drafts.md §5): a draft issued
under key A, ``gatewayctl keys draft-rotate`` activating B now, the reload; a new
draft's Code is made under B while A's draft is still paid with its A-Code, because
A is kept until the last ExpiryDate of its drafts.  Then a restart opens both
versions, and a reload that would lose a kept version is refused.

Real mosquitto, SQLite journal, clearing simulator and a private copy of the test
PKI (``draft-keys.toml`` is written into the keys folder).  The business clock is a
``FrozenClock`` on a working Friday, moved by hand.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import SHANGHAI, FrozenClock
from gateway.config import Config
from gateway.drafts import keystore
from gateway.drafts.code import DraftKey
from gateway.draftsvc.keyfile import store_path, write_store
from gateway.keys.devpki import DevPki
from gateway.routing.calendar_files import load_calendars
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import DraftApplication, ErpClient
from gateway.sim.present import CentreLink, present
from gateway.testing import Broker
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
)
from tests.integration.keys_support import copy_pki, gatewayctl_keys

FRIDAY_10 = recent_friday_10()
AGENT = "104100000004"  # another bank's direct participant, inside our province
PASSPHRASE_ENV = "GATEWAY_TEST_DRAFT_KEYS_PASSPHRASE"
PASSPHRASE = "draft keys of the rotation tests only"
WAIT = 20.0


def next_working_day(d: date) -> date:
    return load_calendars(
        Path(__file__).resolve().parents[2] / "routing" / "calendar"
    ).next_working_day(d)


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)


def application(amount: str) -> DraftApplication:
    return DraftApplication(
        payer_acct="6222000000000001",
        payer_name="示范贸易有限公司",
        payee_name="收款公司",
        amount=Decimal(amount),
    )


class Setup:
    """A private PKI copy, the daemon's config on it, and the overlay gatewayctl reads."""

    def __init__(self, tmp_path: Path, dev_pki: DevPki, broker: Broker) -> None:
        self.pki = copy_pki(dev_pki, tmp_path / "pki")
        # tests/integration/test_drafts.py leaves its own draft-keys.toml in the session PKI
        store_path(self.pki.dir).unlink(missing_ok=True)
        self.broker = broker
        self.rec = tmp_path / "rec.jsonl"
        self.cfg: Config = gateway_config(
            tmp_path / "gw",
            self.pki,
            broker.url,
            {"keys": {"passphrase_env": PASSPHRASE_ENV}},
        )
        self.overlay = tmp_path / "gatewayctl.toml"
        self.overlay.write_text(
            'environment = "test"\n'
            f"state_dir = {json.dumps(str(self.cfg.state_path))}\n"
            "[keys]\ndev_pki = false\n"
            f"dir = {json.dumps(str(self.cfg.keys_dir))}\n"
            f'passphrase_env = "{PASSPHRASE_ENV}"\n',
            encoding="utf-8",
        )
        self.notes = (f"N-{n}" for n in itertools.count(1))

    async def ctl(self, *args: str) -> int:
        return await gatewayctl_keys(self.overlay, self.cfg, *args)

    async def state(self, erp: ErpClient, clock: FrozenClock, draft_no: str, state: str) -> None:
        seen = await erp.wait_draft_state(self.notes, clock.now, draft_no, state, timeout=WAIT)
        assert seen is not None, f"no DRAFT notification {state} for {draft_no}"


def printed_json(out: str) -> Any:
    """The JSON document gatewayctl printed (the in-process daemon logs to stdout too)."""
    start = re.search(r"^\{$", out, re.MULTILINE)
    assert start is not None, out
    return json.JSONDecoder().raw_decode(out, start.start())[0]


@contextlib.asynccontextmanager
async def erp_of(gw: Any, pki: DevPki) -> AsyncIterator[ErpClient]:
    erp = await Erp(gw, pki).client()
    try:
        yield erp
    finally:
        await erp.close()


async def present_in_full(sim: ClearingSimulator, draft: Any, prsntmt_id: str, now: Any) -> Any:
    return await present(
        CentreLink.of_simulator(sim.config),
        draft_no=draft.draft_no,
        code=draft.code,
        amount=draft.amount,
        settle_amount=draft.amount,
        agent_bank=AGENT,
        issue_date=draft.issue_date,
        prsntmt_id=prsntmt_id,
        work_date=now.date(),
        timeout=WAIT,
    )


async def test_code_rotation_across_the_overlap_and_a_restart_with_both_versions(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None, capsys: Any
) -> None:
    s = Setup(tmp_path, dev_pki, broker)
    clock = FrozenClock(FRIDAY_10)
    async with running_clearing_sim(s.pki, broker.url, s.rec) as sim:
        async with running_gateway(s.cfg, clock) as gw, erp_of(gw, s.pki) as erp:
            assert gw.drafts.keys is not None
            key_a = gw.drafts.keys.current(clock.now()).key_id
            r = await erp.apply_draft("D-A", clock.now(), application("1000.00"))
            assert r.ret_code == "0000" and r.draft is not None, r.ret_msg
            a = r.draft
            await s.state(erp, clock, a.draft_no, "ISSUED")

            clock.set(FRIDAY_10 + timedelta(minutes=5))
            capsys.readouterr()
            assert await s.ctl("draft-rotate", "--json") == 0
            rotated = printed_json(capsys.readouterr().out)
            assert rotated["reload"]["ok"] is True, rotated
            key_b = rotated["id"]
            assert rotated["previous"] == key_a and key_b != key_a
            # A is kept until the last ExpiryDate of the drafts issued under it
            assert rotated["previous_retain_until"] == a.expiry_date.isoformat()

            r = await erp.apply_draft("D-B", clock.now(), application("2000.00"))
            assert r.ret_code == "0000" and r.draft is not None, r.ret_msg
            b = r.draft
            await s.state(erp, clock, b.draft_no, "ISSUED")
            found_a = await gw.store.find_draft(a.draft_no)
            found_b = await gw.store.find_draft(b.draft_no)
            assert found_a is not None and found_a.entry.code_key == key_a
            assert found_b is not None and found_b.entry.code_key == key_b

            # the old draft, presented with the Code it was issued with, is paid
            assert await present_in_full(sim, a, "PR-A", clock.now()) == ("ACCP", None)
            await s.state(erp, clock, a.draft_no, "PAID")
            status = await erp.status("S-A", clock.now(), "D-A")
            assert status.ret_code == "0000" and status.draft is not None
            assert status.draft.code == a.code

            assert await s.ctl("list", "--json") == 0
            items = printed_json(capsys.readouterr().out)["items"]
            drafts = [(i["name"], i["state"]) for i in items if i["kind"] == "draft"]
            assert drafts == [(key_a, "kept"), (key_b, "active")]
            assert "value" not in json.dumps(items)

        # a restart opens the two-version file: both drafts show their Codes
        clock.set(FRIDAY_10 + timedelta(minutes=30))
        async with running_gateway(s.cfg, clock) as gw, erp_of(gw, s.pki) as erp:
            assert gw.drafts.keys is not None
            kept = [k.key_id for k in gw.drafts.keys.kept(clock.now())]
            assert kept == [key_b, key_a]
            again_a = await erp.status("S-A2", clock.now(), "D-A")
            again_b = await erp.status("S-B2", clock.now(), "D-B")
            assert again_a.draft is not None and again_a.draft.code == a.code
            assert again_b.draft is not None and again_b.draft.code == b.code
            assert await present_in_full(sim, b, "PR-B", clock.now()) == ("ACCP", None)


async def test_a_reload_that_would_lose_a_kept_draft_key_is_refused(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None
) -> None:
    s = Setup(tmp_path, dev_pki, broker)
    clock = FrozenClock(FRIDAY_10)
    async with (
        running_clearing_sim(s.pki, broker.url, s.rec) as sim,
        running_gateway(s.cfg, clock) as gw,
        erp_of(gw, s.pki) as erp,
    ):
        assert gw.drafts.keys is not None
        key_a = gw.drafts.keys.current(clock.now()).key_id
        path = store_path(s.cfg.keys_dir)
        original = path.read_bytes()

        # a file holding only a new version: A's drafts would fail CD, so the reload is refused
        stranger = keystore.seal(
            DraftKey("d-stranger", keystore.new_secret()), PASSPHRASE.encode(), clock.now()
        )
        write_store(path, keystore.dumps((stranger,)))
        answer = await gw.reload()
        assert answer["ok"] is False and f"draft key {key_a} is gone" in answer["reason"]

        path.write_text("not toml [")
        answer = await gw.reload()
        assert answer["ok"] is False and "draft-keys.toml: not valid TOML" in answer["reason"]

        # the keys in use stay: a new draft is made under A, and paid with its Code
        r = await erp.apply_draft("D-1", clock.now(), application("10.00"))
        assert r.ret_code == "0000" and r.draft is not None, r.ret_msg
        await s.state(erp, clock, r.draft.draft_no, "ISSUED")
        found = await gw.store.find_draft(r.draft.draft_no)
        assert found is not None and found.entry.code_key == key_a
        assert await present_in_full(sim, r.draft, "PR-1", clock.now()) == ("ACCP", None)

        write_store(path, original)
        assert (await gw.reload())["ok"] is True


async def test_the_version_that_kept_signing_through_a_refused_reload_is_kept_for_its_drafts(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, passphrase: None
) -> None:
    s = Setup(tmp_path, dev_pki, broker)
    clock = FrozenClock(FRIDAY_10)
    async with (
        running_clearing_sim(s.pki, broker.url, s.rec) as sim,
        running_gateway(s.cfg, clock) as gw,
        erp_of(gw, s.pki) as erp,
    ):
        assert gw.drafts.keys is not None
        key_a = gw.drafts.keys.current(clock.now()).key_id
        friday = await erp.apply_draft("D-F", clock.now(), application("10.00"))
        assert friday.draft is not None
        # the file as draft-rotate writes it on Friday: A kept for Friday's drafts only;
        # but the daemon does not take it in (its reload was refused) until Monday
        path = store_path(s.cfg.keys_dir)
        versions = keystore.loads(path.read_bytes(), str(path))
        b = keystore.seal(
            DraftKey("d-b", keystore.new_secret()),
            PASSPHRASE.encode(),
            FRIDAY_10 + timedelta(minutes=1),
        )
        write_store(
            path, keystore.dumps(keystore.add_version(versions, b, friday.draft.expiry_date))
        )

        monday = next_working_day(FRIDAY_10.date())
        clock.set(datetime(monday.year, monday.month, monday.day, 10, 0, tzinfo=SHANGHAI))
        r = await erp.apply_draft("D-M", clock.now(), application("20.00"))
        assert r.ret_code == "0000" and r.draft is not None, r.ret_msg
        late = r.draft
        assert late.expiry_date > friday.draft.expiry_date
        await s.state(erp, clock, late.draft_no, "ISSUED")
        found = await gw.store.find_draft(late.draft_no)
        assert found is not None and found.entry.code_key == key_a

        assert (await gw.reload())["ok"] is True
        stored = keystore.loads(path.read_bytes(), str(path))
        assert [(v.key_id, v.retain_until) for v in stored] == [
            (key_a, late.expiry_date),
            ("d-b", None),
        ]
        # on Monday's draft's ExpiryDate, after Friday's drafts expired, A still verifies it
        last = late.expiry_date
        clock.set(datetime(last.year, last.month, last.day, 10, 0, tzinfo=SHANGHAI))
        assert await present_in_full(sim, late, "PR-M", clock.now()) == ("ACCP", None)
        assert await present_in_full(sim, friday.draft, "PR-F", clock.now()) == ("RJCT", "EX")
