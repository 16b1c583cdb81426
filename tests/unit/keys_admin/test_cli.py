"""``gatewayctl keys ...`` in-process: files change, the daemon is asked to reload."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.keys import NOT_RUNNING, add_keys_parser, run_keys
from gateway.config import Config, load_config
from gateway.keys.devpki import DevPki, issue_client_cert
from gateway.keys.enrolment import Registry
from gateway.keys.ring import KeyRing
from gateway.keys.trust import TrustStore, fingerprint
from gateway.model import CredentialKind
from gateway.ops.admin import AdminServer, Peer

from .conftest import load_cert, make_crl


@pytest.fixture
def cfg(pki: DevPki, tmp_path: Path) -> Config:
    return load_config(
        overrides={
            "environment": "test",
            "state_dir": str(tmp_path / "state"),
            "keys": {"dir": str(pki.dir), "dev_pki": False},
            "admin": {"socket": str(tmp_path / "admin.sock")},
        }
    )


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gatewayctl")
    add_keys_parser(parser.add_subparsers(dest="cmd", required=True))
    return parser.parse_args(["keys", *argv])


def run(cfg: Config, *argv: str) -> int:
    return run_keys(parse(*argv), cfg)


class FakeDaemon:
    """A real admin socket answering like the daemon would (in its own event loop)."""

    def __init__(self, path: Path, answer: dict[str, Any]) -> None:
        self.path = path
        self.answer = answer
        self.ops: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.server = AdminServer(path, self.handle)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, cmd: dict[str, Any], peer: Peer) -> dict[str, Any]:
        self.ops.append(str(cmd.get("op")))
        if cmd.get("op") == "status":
            return {"ok": True, "business_clock": "2026-01-05T10:00:00+08:00"}
        return self.answer

    def __enter__(self) -> FakeDaemon:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def daemon_ok(cfg: Config) -> Iterator[FakeDaemon]:
    with FakeDaemon(cfg.admin_socket, {"ok": True, "directory": "x", "codes": 1}) as d:
        yield d


def test_list_table_and_json(cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, "list") == 0
    out = capsys.readouterr().out
    assert "KIND" in out and "gateway-response.pem" in out and "active" in out
    assert run(cfg, "list", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    kinds = {(i["kind"], i["state"]) for i in data["items"]}
    assert {("response", "active"), ("client_ca", "trusted"), ("crl", "current")} <= kinds


def test_revoke_without_a_daemon_applies_at_next_start(
    cfg: Config, pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = pki.client("C100000001", "op01")[1]
    assert run(cfg, "revoke", str(cert), "--reason", "stolen laptop") == 0
    out = capsys.readouterr().out
    assert NOT_RUNNING in out
    assert fingerprint(load_cert(cert)) in pki.deny_list.read_text()
    trust = TrustStore.from_files([pki.client_ca], [pki.client_crl], pki.deny_list)
    with pytest.raises(Exception, match="deny list"):
        trust.check([load_cert(cert)], pki.now)


def test_revoke_with_a_running_daemon_reloads_it(
    cfg: Config, pki: DevPki, daemon_ok: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cfg, "revoke", "ab" * 32, "--reason", "test", "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["reload"]["ok"] is True
    assert answer["fingerprint"] == "ab" * 32
    assert daemon_ok.ops == ["status", "reload"]


def test_a_refused_reload_exits_1(
    cfg: Config, pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeDaemon(cfg.admin_socket, {"ok": False, "reason": "directory drops 50%"}):
        assert run(cfg, "revoke", "cd" * 32, "--reason", "x") == 1
    assert "refused the reload: directory drops 50%" in capsys.readouterr().out


def test_enrol_and_unenrol(cfg: Config, pki: DevPki, capsys: pytest.CaptureFixture[str]) -> None:
    _key, cert = issue_client_cert(pki, "C100000003", "op02", CredentialKind.FILE)
    fp = fingerprint(load_cert(cert))
    assert run(cfg, "enrol", "C100000003", "op02", str(cert), "--kind", "file") == 0
    assert "(file) enrolled" in capsys.readouterr().out
    Registry.load(pki.enrolment).check_signer("C100000003", "op02", fp)
    assert run(cfg, "enrol", "C100000003", "op02", str(cert)) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert run(cfg, "unenrol", "C100000003", "op02", "--fingerprint", fp) == 0
    assert Registry.load(pki.enrolment).corporate("C100000003").operators.keys() == {"op01"}  # type: ignore[union-attr]


def test_enrol_refused_exits_1_and_says_why(
    cfg: Config, pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    _key, cert = issue_client_cert(pki, "C100000003", "op02", CredentialKind.USBKEY, issuer="self")
    before = pki.enrolment.read_bytes()
    assert run(cfg, "enrol", "C100000003", "op02", str(cert)) == 1
    assert "gatewayctl keys enrol:" in capsys.readouterr().err
    assert pki.enrolment.read_bytes() == before


def test_import_crl(
    cfg: Config, pki: DevPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = load_cert(pki.client("C100000002", "op01")[1])
    now = datetime.now(pki.now.tzinfo)
    crl = make_crl(
        pki.client_ca_key, pki.client_ca, [victim.serial_number], last_update=now, number=2**40
    )
    path = tmp_path / "in.pem"
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    assert run(cfg, "import-crl", str(path)) == 0
    assert "1 revoked" in capsys.readouterr().out
    assert run(cfg, "import-crl", str(tmp_path / "missing.crl")) == 1
    assert "cannot read CRL" in capsys.readouterr().err


def test_rotate_from_the_cli_and_seed_a_missing_ring(
    cfg: Config, pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    pki.ring.unlink()
    activate = (datetime.now(pki.now.tzinfo) + timedelta(days=30)).replace(microsecond=0)
    assert run(cfg, "rotate", "tls", "--activate", activate.isoformat(), "--overlap-days", "2") == 0
    out = capsys.readouterr().out
    assert "seeded ring.toml" in out and NOT_RUNNING in out
    ring = KeyRing.load(pki.ring, pki.dir, None)
    assert [v.activate for v in ring.versions("tls")][1] == activate
    assert run(cfg, "rotate", "tls", "--activate", "next week") == 2
    assert run(cfg, "rotate", "tls", "--activate", "2001-01-01T00:00:00+08:00") == 1
    assert "not in the future" in capsys.readouterr().err


def test_rotate_uses_the_daemons_business_clock(
    cfg: Config, pki: DevPki, daemon_ok: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fake daemon's clock stands at 2026-01-05 10:00 +08:00: an activation after
    # it is in the future for the daemon, whatever the wall clock says.
    assert run(cfg, "rotate", "clearing", "--activate", "2026-01-05T10:00:01+08:00") == 0
    assert "the daemon reloaded" in capsys.readouterr().out
    assert daemon_ok.ops[-1] == "reload"


def test_missing_keys_folder_is_a_message_not_a_traceback(
    pki: DevPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(
        overrides={
            "environment": "test",
            "keys": {"dir": str(tmp_path / "nowhere"), "dev_pki": False},
            "admin": {"socket": str(tmp_path / "admin.sock")},
        }
    )
    assert run(cfg, "revoke", "ab" * 32, "--reason", "x") == 1
    assert "nowhere" in capsys.readouterr().err


def test_dev_pki(cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, "dev-pki", str(tmp_path / "fresh")) == 0
    assert (tmp_path / "fresh" / "ring.toml").exists()
    assert "never use them in production" in capsys.readouterr().out
