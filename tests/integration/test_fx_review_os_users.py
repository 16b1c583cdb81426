"""Four eyes with real OS users (docs/foreign-currency.md §5): decisions are attributed to
the admin socket's peer (SO_PEERCRED), who must be in screening.review_group.

Three throwaway users (``useradd``, removed afterwards), all in the operators' group
(``admin.group``, so all can connect): two of them also in the review group.  Each
``gatewayctl`` runs in a forked child that has become the user (the pattern of
test_operator_identity.py).  Needs root (skipped otherwise)."""

from __future__ import annotations

import asyncio
import pwd
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.ops.admin import call
from gateway.testing import Broker
from tests.integration.harness import Erp, gateway_config, recent_friday_10, wait_for_state
from tests.integration.harness import running_gateway as running
from tests.integration.review_support import screened, usd, write_list
from tests.integration.test_fx_swift import records, running_swift_sim
from tests.integration.test_operator_identity import needs_root, run_as


@dataclass(frozen=True)
class Reviewers:
    admin_group: str
    review_group: str
    first: str
    second: str
    outsider: str  # may use gatewayctl, may not review


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture
def reviewers() -> Iterator[Reviewers]:
    tag = uuid.uuid4().hex[:6]
    adm, rev = f"gwadm{tag}", f"gwrev{tag}"
    users = {f"gwra{tag}": f"{adm},{rev}", f"gwrb{tag}": f"{adm},{rev}", f"gwrc{tag}": adm}
    groups: list[str] = []
    made: list[str] = []
    try:
        for g in (adm, rev):
            _run("groupadd", g)
            groups.append(g)
        for name, member_of in users.items():
            _run("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", member_of, name)
            made.append(name)
        a, b, c = users
        yield Reviewers(adm, rev, a, b, c)
    finally:
        for name in made:
            subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)
        for g in groups:
            subprocess.run(["groupdel", g], check=False, capture_output=True, timeout=60)


@needs_root
async def test_two_os_users_release_and_an_outsider_is_refused(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, reviewers: Reviewers
) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="gw-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    sock = run_dir / "admin.sock"
    lists = tmp_path / "lists" / "test-list.csv"
    write_list(lists)
    lists.parent.chmod(0o755)
    over = screened(lists, review_group=reviewers.review_group)
    over["admin"] = {"socket": str(sock), "group": reviewers.admin_group}
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url, over)
    clock = BusinessClock(recent_friday_10())
    ctl = ["--socket", str(sock), "review"]
    record = tmp_path / "swift.jsonl"
    async with running_swift_sim(dev_pki, broker.url, record), running(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        r = await erp.pay("OS-1", clock.now(), usd("300.00", "Northwind Shadow Trading LLC"))
        assert (r.ret_code, r.state) == ("0000", "REVIEW"), r.ret_msg
        ref = r.gw_ref
        assert ref is not None

        code, refused, err = await asyncio.to_thread(
            run_as, reviewers.outsider, [*ctl, "approve", ref]
        )
        assert code == 1, err
        assert f"{reviewers.outsider} is not a member of the review group" in refused["reason"]

        code, first, err = await asyncio.to_thread(run_as, reviewers.first, [*ctl, "approve", ref])
        assert code == 0, err
        assert (first["decision"], first["user"]) == ("approve", reviewers.first)
        code, again, _ = await asyncio.to_thread(run_as, reviewers.first, [*ctl, "approve", ref])
        assert code == 1 and f"already approved by {reviewers.first}" in again["reason"]
        code, second, err = await asyncio.to_thread(
            run_as, reviewers.second, [*ctl, "approve", ref]
        )
        assert code == 0, err
        assert (second["decision"], second["state"]) == ("release", "QUEUED")
        assert await wait_for_state(erp, clock.now(), "OS-1", ["SETTLED"]) == "SETTLED"
        await erp.close()

        shown = await call(sock, {"op": "messages.show", "ref": ref})
        decisions = [(a["operator"], a["uid"], a["action"]) for a in shown["actions"]]
        assert decisions == [
            (reviewers.first, pwd.getpwnam(reviewers.first).pw_uid, "approve"),
            (reviewers.second, pwd.getpwnam(reviewers.second).pw_uid, "approve"),
        ]
    assert set(records(record)) == {"OS-1"}
