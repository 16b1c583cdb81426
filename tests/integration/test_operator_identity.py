"""Who did it: the admin socket's operators are real OS users (SO_PEERCRED), and every
manual action (``held release``, ``resend``) is journaled with who and why.

Two throwaway OS users are created for the test (``useradd``; removed afterwards):
one in the operators' group, one not.  ``gatewayctl`` runs as each of them in a
forked child that drops root (setgroups/setgid/setuid) before it connects, so the
kernel, not the client, says who is asking.  Needs root (skipped otherwise).
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.gatewayctl import main as gatewayctl_main
from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.testing import Broker
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
HVPS_BANK = "104100000004"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="creating OS users needs root and useradd",
)


@dataclass(frozen=True)
class OsUsers:
    group: str
    gid: int
    member: str
    outsider: str


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture
def os_users() -> Iterator[OsUsers]:
    tag = uuid.uuid4().hex[:6]
    group, member, outsider = f"gwops{tag}", f"gwop{tag}", f"gwout{tag}"
    _run("groupadd", group)
    made: list[str] = []
    try:
        for name, extra in ((member, ["-G", group]), (outsider, [])):
            _run("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", *extra, name)
            made.append(name)
        yield OsUsers(group, grp.getgrnam(group).gr_gid, member, outsider)
    finally:
        for name in made:
            subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)
        subprocess.run(["groupdel", group], check=False, capture_output=True, timeout=60)


def run_as(user: str, argv: list[str]) -> tuple[int, Any, str]:
    """``gatewayctl ARGV`` in a child process that has become ``user`` (with the
    user's own groups): exit code, JSON output (or None), stderr."""
    pw = pwd.getpwnam(user)
    groups = os.getgrouplist(user, pw.pw_gid)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 99
            try:
                sys.stdout = open(out.fileno(), "w", encoding="utf-8", closefd=False)  # noqa: SIM115
                sys.stderr = open(err.fileno(), "w", encoding="utf-8", closefd=False)  # noqa: SIM115
                os.setgroups(groups)
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                code = gatewayctl_main(argv)
            except BaseException as exc:  # report, then leave
                print(repr(exc), file=sys.stderr)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        return (
            os.waitstatus_to_exitcode(status),
            json.loads(text) if text.strip() else None,
            (err.read().decode()),
        )


@needs_root
async def test_operators_act_under_their_own_names_and_others_cannot_connect(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, os_users: OsUsers
) -> None:
    # The socket's folder must be traversable by the operators (the unit's
    # RuntimeDirectory, 0755); the state folder stays the daemon's own.
    run_dir = Path(tempfile.mkdtemp(prefix="gw-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    sock = run_dir / "admin.sock"
    cfg = gateway_config(
        tmp_path / "gw",
        dev_pki,
        broker.url,
        {"admin": {"socket": str(sock), "group": os_users.group}},
    )
    # Friday 17:30: HVPS is closed until Monday 09:00, so an HVPS payment is HELD.
    clock = BusinessClock(FRIDAY_10.replace(hour=17, minute=30))
    ctl = ["--socket", str(sock)]
    try:
        async with (
            running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl"),
            running_gateway(cfg, clock) as gw,
        ):
            st = sock.stat()
            assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os_users.gid

            erp = await Erp(gw, dev_pki).client()
            r = await erp.pay("OI-HELD-1", clock.now(), payment(HVPS_BANK, "80000.00"))
            assert (r.ret_code, r.state, r.engine) == ("0000", "HELD", "HVPS"), r.ret_msg
            gw_ref = r.gw_ref
            assert gw_ref

            # the member lists it; the engine's window is closed, so release is refused
            code, held, err = await asyncio.to_thread(
                run_as, os_users.member, [*ctl, "held", "list"]
            )
            assert code == 0, err
            (item,) = held["messages"]
            assert (item["gw_ref"], item["state"], item["engine"]) == (gw_ref, "HELD", "HVPS")
            # held until the next working day's 09:00 (a make-up Sunday, a Monday, or later)
            assert item["release_at"] > FRIDAY_10.isoformat()
            assert item["release_at"][10:] == "T09:00:00+08:00"
            tx = item["tx_id"]
            code, refused, _ = await asyncio.to_thread(
                run_as, os_users.member, [*ctl, "held", "release", tx, "--reason", "early"]
            )
            assert code == 1 and "HVPS window is closed" in refused["reason"]

            # the outsider cannot even connect, whatever it asks
            for argv in (["held", "release", tx, "--reason", "x", "--force"], ["status"]):
                code, answer, err = await asyncio.to_thread(
                    run_as, os_users.outsider, [*ctl, *argv]
                )
                assert code == 1 and answer is None, argv
                assert "Permission denied" in err and "admin.group" in err, err

            # forced by the member: released now, journaled with the member's name and why
            code, done, err = await asyncio.to_thread(
                run_as,
                os_users.member,
                [*ctl, "held", "release", gw_ref, "--reason", "treasury approved", "--force"],
            )
            assert code == 0, err
            assert done == {"ok": True, "released": [tx], "operator": os_users.member}
            await wait_for_state(erp, clock.now(), "OI-HELD-1", ["SENT", "ACKED", "SETTLED"])
            await erp.close()

            shown = await call(sock, {"op": "messages.show", "ref": gw_ref})
            (action,) = shown["actions"]
            assert (action["operator"], action["uid"], action["action"]) == (
                os_users.member, pwd.getpwnam(os_users.member).pw_uid, "release",
            )  # fmt: skip
            assert (action["reason"], action["forced"], action["target"]) == (
                "treasury approved", True, tx,
            )  # fmt: skip
            steps = shown["items"][0]["transitions"]
            assert [s["state"] for s in steps][:3] == ["ACCEPTED", "HELD", "QUEUED"]
            assert steps[2]["detail"] == (
                f"released by {os_users.member} (forced): treasury approved"
            )
            # nothing is HELD any more, and a second release says so
            code, again, _ = await asyncio.to_thread(
                run_as, os_users.member, [*ctl, "held", "release", tx, "--reason", "x", "--force"]
            )
            assert code == 1 and "no HELD item" in again["reason"]

        # daemon stopped: the member gets the hint, and no journal access of its own
        code, _, err = await asyncio.to_thread(run_as, os_users.member, [*ctl, "status"])
        assert code == 1
        assert str(sock) in err and "is gatewayd running? read-only views work without it" in err
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


async def test_missing_operators_group_keeps_the_socket_private(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    cfg = gateway_config(
        tmp_path / "gw", dev_pki, broker.url, {"admin": {"group": f"nogroup{uuid.uuid4().hex[:6]}"}}
    )
    async with running_gateway(cfg, BusinessClock(FRIDAY_10)):
        assert stat.S_IMODE(cfg.admin_socket.stat().st_mode) == 0o600
        assert (await call(cfg.admin_socket, {"op": "status"}))["ok"] is True


async def test_resend_is_journaled_and_refused_once_receipted(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = gateway_config(
        tmp_path / "gw", dev_pki, broker.url, {"clearing": {"receipt_timeout": 3600.0}}
    )
    sock = cfg.admin_socket
    clock = BusinessClock(FRIDAY_10)
    me = pwd.getpwuid(os.geteuid()).pw_name

    def ctl(*argv: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = gatewayctl_main(["--socket", str(sock), *argv])
        out = capsys.readouterr().out  # the in-process daemon's log lines come first
        return code, json.loads(out[out.index("\n{") if not out.startswith("{") else 0 :])

    async with running_gateway(cfg, clock) as gw:
        # no clearing system yet: the broker PUBACKs, nobody receipts
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("OI-RS-1", clock.now(), payment(HVPS_BANK, "70000.00"))
        assert r.ret_code == "0000", r.ret_msg
        await wait_for_state(erp, clock.now(), "OI-RS-1", ["SENT"])
        shown = await call(sock, {"op": "messages.show", "ref": r.gw_ref})
        (out,) = shown["outbound"]
        msg_id = out["msg_id"]
        assert (out["state"], out["attempts"]) == ("SENT", 1)

        code, answer = await asyncio.to_thread(ctl, "resend", "NOSUCHMSGID", "--reason", "x")
        assert code == 1 and "no outbound message" in answer["reason"]
        code, answer = await asyncio.to_thread(ctl, "resend", msg_id, "--reason", "  ")
        assert code == 1 and "reason is required" in answer["reason"]
        code, answer = await asyncio.to_thread(
            ctl, "resend", msg_id, "--reason", "clearing lost it"
        )
        assert code == 0, answer
        assert answer == {"ok": True, "msg_id": msg_id, "msg_tp": "hvps.111", "operator": me}
        shown = await call(sock, {"op": "messages.show", "ref": msg_id})
        assert shown["outbound"][0]["attempts"] == 2
        assert [
            (a["action"], a["operator"], a["reason"], a["forced"]) for a in shown["actions"]
        ] == [("resend", me, "clearing lost it", False)]

        # the clearing system comes; the re-send under the same MsgId reaches it, it receipts
        async with running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim:
            code, answer = await asyncio.to_thread(ctl, "resend", msg_id, "--reason", "again")
            assert code == 0, answer
            await wait_for_state(erp, clock.now(), "OI-RS-1", ["ACKED", "SETTLED"])
            code, answer = await asyncio.to_thread(ctl, "resend", msg_id, "--reason", "third")
            assert code == 1 and "ccms.990" in answer["reason"] and "--force" in answer["reason"]
            received = sim.stats["received"]
            code, answer = await asyncio.to_thread(
                ctl, "resend", msg_id, "--reason", "audit asked", "--force"
            )
            assert code == 0, answer
            async with asyncio.timeout(20):
                while sim.stats["duplicates"] < 1 or sim.stats["received"] <= received:
                    await asyncio.sleep(0.05)
        await erp.close()
        shown = await call(sock, {"op": "messages.show", "ref": msg_id})
        assert [(a["reason"], a["forced"]) for a in shown["actions"]] == [
            ("clearing lost it", False), ("again", False), ("audit asked", True),
        ]  # fmt: skip
        assert any(m["msg_tp"] == "ccms.990" for m in shown["inbound"])
