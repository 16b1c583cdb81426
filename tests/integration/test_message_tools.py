"""Operators find single messages: ``gatewayctl messages search|show`` and ``held list``
through the real daemon, then with the daemon stopped (the journal opened read-only),
then after the retention pass moved them to archive files; on SQLite and PostgreSQL.
The clearing messages ``show --write-dir`` writes are the exact signed bytes: xmlsec1
verifies them with the dev PKI's certificates, and fails on a changed byte.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.clock import BusinessClock
from gateway.journal.retention import archive_once
from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.testing import Broker
from gateway.testing_pg import PgServer, create_database
from tests.integration.harness import (
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)

FRIDAY_10 = recent_friday_10()
BEPS_BANK = "105100000017"
HVPS_BANK = "104100000004"
XMLSEC1 = shutil.which("xmlsec1")


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """``gatewayctl ARGV`` in-process: exit code, JSON answer (None if none), stderr."""
    capsys.readouterr()
    code = gatewayctl_main(list(argv))
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else None, out.err


def xmlsec1_verify(trusted: Path, signed: Path) -> subprocess.CompletedProcess[str]:
    """xmlsec1 checks the signature with the certificate in the message, chained to
    ``trusted`` (the issuing CA, or a self-signed signer certificate itself)."""
    assert XMLSEC1 is not None
    return subprocess.run(
        [XMLSEC1, "--verify", "--trusted-pem", str(trusted), str(signed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 not installed (Debian package: xmlsec1)")
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_search_and_show_live_stopped_and_archived(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    dev_pki: DevPki,
    broker: Broker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    journal: dict[str, Any] = {}
    if backend == "postgres":
        pg: PgServer = request.getfixturevalue("pg")
        journal = {"backend": "postgres", "dsn": await create_database(pg)}
    state = tmp_path / "gw"
    cfg = gateway_config(state, dev_pki, broker.url, {"journal": journal} if journal else None)
    overlay = tmp_path / "gatewayctl.toml"  # what gatewayctl reads with the daemon stopped
    overlay.write_text(
        f'environment = "test"\nstate_dir = "{state}"\n'
        + (f'[journal]\nbackend = "postgres"\ndsn = "{journal["dsn"]}"\n' if journal else "")
    )
    sock = str(cfg.admin_socket)
    clock = BusinessClock(FRIDAY_10)
    day = FRIDAY_10.date().isoformat()
    async with (
        running_clearing_sim(
            dev_pki, broker.url, tmp_path / "rec.jsonl", netting=True, settle_delay_rounds=0.2
        ) as sim,
        running_gateway(cfg, clock) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        for msg_id, bank, amount in (
            ("MT-BEPS-1", BEPS_BANK, "100.00"),
            ("MT-BEPS-2", BEPS_BANK, "2500.50"),
            ("MT-HVPS-1", HVPS_BANK, "90000.00"),
        ):
            r = await erp.pay(msg_id, clock.now(), payment(bank, amount))
            assert r.ret_code == "0000", r.ret_msg
        for msg_id in ("MT-BEPS-1", "MT-BEPS-2"):
            await wait_for_state(erp, clock.now(), msg_id, ["ACKED"])
        await sim.rounds.wait_netted(2)
        await sim.run_netting_round()
        for msg_id in ("MT-BEPS-1", "MT-BEPS-2", "MT-HVPS-1"):
            await wait_for_state(erp, clock.now(), msg_id, ["SETTLED"])
        await erp.close()

        # search through the daemon: each filter, and paging
        code, found, _ = await asyncio.to_thread(
            ctl, capsys, "--socket", sock, "messages", "search", "--engine", "beps"
        )
        assert code == 0 and [m["msg_id"] for m in found["messages"]] == ["MT-BEPS-1", "MT-BEPS-2"]
        beps1 = found["messages"][0]
        assert beps1["payee_acct"] == "6217********2222"  # masked as in every view
        for flags, expected in (
            (["--corp-id", "C100000001", "--min-amount", "2000", "--max-amount", "100000"],
             ["MT-BEPS-2", "MT-HVPS-1"]),
            (["--msg-id", "MT-HVPS-1"], ["MT-HVPS-1"]),
            (["--gw-ref", beps1["gw_ref"]], ["MT-BEPS-1"]),
            (["--end-to-end-id", "MT-BEPS-2"], ["MT-BEPS-2"]),
            (["--state", "SETTLED", "--engine", "HVPS"], ["MT-HVPS-1"]),
            (["--state", "REJECTED"], []),
            (["--from", day, "--to", day, "--max-amount", "100.00"], ["MT-BEPS-1"]),
            (["--to", (FRIDAY_10.date() - timedelta(days=1)).isoformat()], []),
            (["--corp-id", "C999999999"], []),
        ):  # fmt: skip
            code, got, err = await asyncio.to_thread(
                ctl, capsys, "--socket", sock, "messages", "search", *flags
            )
            assert code == 0, err
            assert [m["msg_id"] for m in got["messages"]] == expected, flags
        pages: list[str] = []
        after: list[str] = []
        while True:
            code, page, _ = await asyncio.to_thread(
                ctl, capsys, "--socket", sock, "messages", "search", "--limit", "1", *after
            )
            assert code == 0
            pages += [m["msg_id"] for m in page["messages"]]
            if page["next"] is None:
                break
            after = ["--after", page["next"]]
        assert pages == ["MT-BEPS-1", "MT-BEPS-2", "MT-HVPS-1"]

        # show: the trail, the package and every inbound message about it, as signed bytes
        out_dir = tmp_path / "show"
        code, shown, err = await asyncio.to_thread(
            ctl, capsys, "--socket", sock, "messages", "show", beps1["gw_ref"],
            "--write-dir", str(out_dir),
        )  # fmt: skip
        assert code == 0, err
        assert shown["request"]["msg_id"] == "MT-BEPS-1"
        assert shown["response"]["ret_code"] == "0000"
        assert shown["response"]["gw_ref"] == beps1["gw_ref"]
        (item,) = shown["items"]
        trail = [t["state"] for t in item["transitions"]]
        assert trail == ["ACCEPTED", "QUEUED", "SENT", "ACKED", "NETTED", "SETTLED"]
        assert all(t["at"].startswith(day) for t in item["transitions"])
        (package,) = shown["outbound"]
        assert package["msg_tp"] == "beps.121" and package["msg_id"] == item["out_msg_id"]
        inbound = {m["msg_tp"]: m for m in shown["inbound"]}
        assert set(inbound) >= {"ccms.990", "ccms.900", "beps.netting", "beps.settle"}
        assert inbound["ccms.990"]["ref"] == package["msg_id"]
        # the corporate's signed request as received, and the signed 0000 it got
        request_file, response_file = (
            Path(shown["request"]["file"]),
            Path(shown["response"]["file"]),
        )
        proc = xmlsec1_verify(dev_pki.client_ca, request_file)
        assert proc.returncode == 0, proc.stderr
        proc = xmlsec1_verify(dev_pki.server_ca, response_file)
        assert proc.returncode == 0, proc.stderr
        assert b"MT-BEPS-1" in request_file.read_bytes()
        assert beps1["gw_ref"].encode() in response_file.read_bytes()
        outbound_file = Path(package["file"])
        proc = xmlsec1_verify(dev_pki.server_ca, outbound_file)
        assert proc.returncode == 0, proc.stderr
        for msg in inbound.values():
            proc = xmlsec1_verify(dev_pki.clearing_system_cert, Path(msg["file"]))
            assert proc.returncode == 0, (msg["msg_tp"], proc.stderr)
        # the bytes are the signed ones: one changed byte and xmlsec1 says no
        changed = tmp_path / "changed.xml"
        changed.write_bytes(outbound_file.read_bytes().replace(b"100.00", b"900.00", 1))
        assert xmlsec1_verify(dev_pki.server_ca, changed).returncode != 0
        # the package by its MsgId shows both its items; a TxId shows its one item
        code, by_pkg, _ = await asyncio.to_thread(
            ctl, capsys, "--socket", sock, "messages", "show", package["msg_id"]
        )
        assert code == 0 and by_pkg["items_total"] == 2 and by_pkg["request"] is None
        assert "<ClrMsg" in by_pkg["outbound"][0]["xml"]
        for bad in (
            {"op": "messages.search", "state": "LOST"},
            {"op": "messages.search", "engine": "CIPS"},
            {"op": "messages.search", "min_amount": "ten"},
            {"op": "messages.search", "min_amount": "-1"},
            {"op": "messages.search", "from": "07/12/2026"},
            {"op": "messages.search", "after": "no-cursor"},
            {"op": "messages.search", "limit": 0},
            {"op": "messages.show"},
            {"op": "held.release", "ref": beps1["tx_id"]},  # no reason
            {"op": "held.release", "ref": beps1["tx_id"], "reason": "x", "force": "yes"},
            {"op": "resend", "msg_id": package["msg_id"], "reason": ""},
        ):
            answer = await call(Path(sock), bad)
            assert answer["ok"] is False and "bad request" in answer["reason"], bad
        code, unknown, _ = await asyncio.to_thread(
            ctl, capsys, "--socket", sock, "messages", "show", "GW20000101A000000001"
        )
        assert code == 1 and "no message" in unknown["reason"]

    # the daemon is stopped: the same views from the journal, opened read-only
    code, status, err = await asyncio.to_thread(ctl, capsys, "--socket", sock, "status")
    assert code == 1 and status is None
    assert sock in err and "is gatewayd running? read-only views work without it" in err
    base = ["--config", str(overlay)]
    code, offline, err = await asyncio.to_thread(
        ctl, capsys, *base, "messages", "search", "--engine", "BEPS"
    )
    assert code == 0, err
    assert "reading the journal read-only" in err
    assert offline["messages"] == found["messages"]
    code, offline_show, _ = await asyncio.to_thread(
        ctl, capsys, *base, "messages", "show", beps1["gw_ref"]
    )
    assert code == 0
    assert offline_show["items"] == shown["items"]
    assert [m["msg_id"] for m in offline_show["inbound"]] == [m["msg_id"] for m in shown["inbound"]]
    code, netting, _ = await asyncio.to_thread(ctl, capsys, *base, "netting", "--work-date", day)
    assert code == 0 and netting["rounds"][0]["items_netted"] == 2
    code, held, _ = await asyncio.to_thread(ctl, capsys, *base, "held", "list")
    assert code == 0 and held["messages"] == []
    code, credits, _ = await asyncio.to_thread(ctl, capsys, *base, "credits")
    assert code == 0 and credits["credits"] == []
    if backend == "sqlite":  # read-only: nothing created where no journal is
        missing = tmp_path / "nothing.toml"
        missing.write_text(f'environment = "test"\nstate_dir = "{tmp_path / "none"}"\n')
        code, _, err = await asyncio.to_thread(
            ctl, capsys, "--config", str(missing), "held", "list"
        )
        assert code == 1 and "no journal at" in err
        assert not (tmp_path / "none" / "journal.sqlite3").exists()

    # the retention pass moves everything final to archive files: still found, same trail
    target = journal.get("dsn") or cfg.journal_path
    res = await archive_once(
        backend, target, cfg.archive_path, before=clock.now() + timedelta(days=1)
    )
    assert res.requests == 3 and res.inbound_messages >= 6
    # a request's signed bytes leave once the request has: in the next pass
    again = await archive_once(
        backend, target, cfg.archive_path, before=clock.now() + timedelta(days=1)
    )
    assert again.exchanges == 3
    code, archived, err = await asyncio.to_thread(
        ctl, capsys, *base, "messages", "search", "--engine", "BEPS"
    )
    assert code == 0, err
    assert [m["msg_id"] for m in archived["messages"]] == ["MT-BEPS-1", "MT-BEPS-2"]
    assert all(m["archive"].startswith("journal-") for m in archived["messages"])
    code, old, _ = await asyncio.to_thread(
        ctl, capsys, *base, "messages", "show", beps1["gw_ref"], "--write-dir",
        str(tmp_path / "old"),
    )  # fmt: skip
    assert code == 0 and old["archive"].startswith("journal-")
    assert [t["state"] for t in old["items"][0]["transitions"]] == trail
    (old_pkg,) = old["outbound"]
    assert Path(old_pkg["file"]).read_bytes() == outbound_file.read_bytes()
    assert {m["msg_tp"] for m in old["inbound"]} == set(inbound)
    assert Path(old["request"]["file"]).read_bytes() == request_file.read_bytes()
    assert Path(old["response"]["file"]).read_bytes() == response_file.read_bytes()
