"""Broken configurations fed to both ``gatewayd --check-config`` and a real start.

Each case is a configuration an operator could write.  The real daemon runs
as a subprocess, as systemd would run it, and must answer with exactly one
line on stderr that names the key or the file and the cause, no traceback,
and the exit status systemd acts on: 78 (EX_CONFIG, the unit does not
restart) for configuration and file errors, 75 (EX_TEMPFAIL, restarted) for
a resource that is down.  ``--check-config`` fails the same configurations
with the same line, except the resources that are down (ports, database),
which only start can meet.  The tests run as root, which ignores file modes:
an unwritable state folder is one whose parent is a regular file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.keys.devpki import DevPki
from gateway.keys.files import write_encrypted_pkcs8
from gateway.keys.xmldsig import load_signing_key
from gateway.sim.erp import ErpClient, Reply
from tests.integration.harness import payment, recent_friday_10

REPO = Path(__file__).resolve().parents[2]
EX_CONFIG, EX_TEMPFAIL = 78, 75
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port that something else listens on for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, Path):
        v = str(v)
    return json.dumps(v, ensure_ascii=False)


def render(doc: dict[str, Any]) -> str:
    """A small TOML writer for the overlays here: scalars, tables, ``[[listeners]]``."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict | list)]

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if scalars:
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{k}", v)

    for k, v in doc.items():
        if isinstance(v, dict):
            table(k, v)
    for item in doc.get("listeners", []):
        lines.append("[[listeners]]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass
class Site:
    """A test site: a folder, a dev PKI, and an overlay written from a dict."""

    tmp: Path
    pki: DevPki
    doc: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.doc = {
            "environment": "test",
            "state_dir": self.tmp / "state",
            "keys": {"dev_pki": False, "dir": self.pki.dir},
            # never contacted by a failing start: the links start after every check
            "clearing": {"url": f"mqtt://127.0.0.1:{free_port()}"},
            "core": {"enabled": False},
            "observability": {"metrics_port": 0},
            "workers": {"processes": 0},
            "listeners": [
                {"name": "tcp", "port": 0, "tls": False, "client_cert": "none"},
                {"name": "tls", "port": 0, "tls": True, "client_cert": "optional"},
            ],
        }

    def keys_copy(self) -> Path:
        """A private copy of the PKI, to break."""
        keys = self.tmp / "keys"
        shutil.copytree(self.pki.dir, keys)
        self.doc = merge(self.doc, {"keys": {"dir": keys}})
        return keys

    def overlay(self, over: dict[str, Any]) -> Path:
        path = self.tmp / "gateway.toml"
        path.write_text(render(merge(self.doc, over)), encoding="utf-8")
        return path


@pytest.fixture
def site(tmp_path: Path, dev_pki: DevPki) -> Site:
    return Site(tmp_path, dev_pki)


def gatewayd(
    overlay: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.gatewayd", "--config", str(overlay), *args],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
        env=env,
        cwd=overlay.parent,
    )


def the_one_line(proc: subprocess.CompletedProcess[str], status: int, *names: str) -> str:
    """Exit ``status``, exactly one line on stderr, no traceback, naming every ``names``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    line = lines[0]
    assert line.startswith("gatewayd: "), line
    for name in names:
        assert name in line, (name, line)
    return line


def both_fail(overlay: Path, status: int, *names: str, env: dict[str, str] | None = None) -> str:
    """``--check-config`` and a real start fail alike: same status, same line."""
    checked = the_one_line(gatewayd(overlay, "--check-config", env=env), status, *names)
    started = the_one_line(
        gatewayd(overlay, "--ports-file", str(overlay.parent / "ports.json"), env=env),
        status,
        *names,
    )
    assert checked == started
    assert not (overlay.parent / "ports.json").exists()
    return started


def check_passes_start_fails(overlay: Path, status: int, *names: str) -> str:
    """A resource that is down: the configuration is fine, start meets the resource."""
    checked = gatewayd(overlay, "--check-config")
    assert checked.returncode == 0, checked.stderr
    assert "configuration OK" in checked.stdout
    assert checked.stderr == ""
    return the_one_line(gatewayd(overlay), status, *names)


# -- the broken overlays --------------------------------------------------------------


def test_keys_dir_missing_with_worker_processes(site: Site) -> None:
    overlay = site.overlay({"keys": {"dir": "/nonexistent/keys"}, "workers": {"processes": 2}})
    both_fail(overlay, EX_CONFIG, "keys.dir", "/nonexistent/keys", "does not exist")


def test_journal_in_a_missing_folder(site: Site) -> None:
    journal = site.tmp / "missing" / "journal.sqlite3"
    overlay = site.overlay({"journal": {"path": journal}})
    both_fail(overlay, EX_CONFIG, "journal.path", str(journal), "does not exist")
    assert not journal.parent.exists()  # never created behind the operator's back


def test_state_dir_that_cannot_be_created(site: Site) -> None:
    (site.tmp / "a-file").write_text("not a folder\n")
    state = site.tmp / "a-file" / "state"
    overlay = site.overlay({"state_dir": state})
    both_fail(overlay, EX_CONFIG, "state_dir", str(state), "a-file is not a folder")


def test_state_dir_that_is_a_file(site: Site) -> None:
    state = site.tmp / "state-file"
    state.write_text("")
    overlay = site.overlay({"state_dir": state})
    both_fail(overlay, EX_CONFIG, "state_dir", str(state), "not a folder")


def test_unknown_window_profile_lists_the_profiles(site: Site) -> None:
    overlay = site.overlay({"windows": {"hvps": {"profile": "2018"}}})
    both_fail(overlay, EX_CONFIG, "windows.hvps.profile", "default", "hvps-2018", str(overlay))


def test_missing_directory_file(site: Site) -> None:
    missing = site.tmp / "no-such-directory.csv"
    overlay = site.overlay({"routing": {"directory": missing}})
    both_fail(overlay, EX_CONFIG, "routing.directory", str(missing))


def test_enum_like_key_lists_its_values(site: Site) -> None:
    listeners = [{"name": "tcp", "port": 0, "tls": False, "client_cert": 1}]
    overlay = site.overlay({"listeners": listeners})
    both_fail(overlay, EX_CONFIG, "listeners[0].client_cert", '"none", "optional" or "required"')


def test_port_in_use(site: Site, held_port: int) -> None:
    listeners = [
        {"name": "tcp", "port": 0, "tls": False, "client_cert": "none"},
        {"name": "tls", "port": held_port, "tls": True, "client_cert": "optional"},
    ]
    overlay = site.overlay({"listeners": listeners})
    check_passes_start_fails(
        overlay, EX_TEMPFAIL, "listeners[1] (tls)", f"127.0.0.1:{held_port}", "in use"
    )


def test_metrics_port_in_use(site: Site, held_port: int) -> None:
    overlay = site.overlay({"observability": {"metrics_port": held_port}})
    check_passes_start_fails(overlay, EX_TEMPFAIL, "observability.metrics_port", str(held_port))


def test_postgres_down(site: Site) -> None:
    dsn = f"postgresql://gateway@127.0.0.1:{free_port()}/gateway"
    overlay = site.overlay({"journal": {"backend": "postgres", "dsn": dsn}})
    check_passes_start_fails(overlay, EX_TEMPFAIL, "journal.dsn", dsn, "unreachable")


# -- key material ---------------------------------------------------------------------


def test_error_in_a_worker_process_is_one_line(site: Site) -> None:
    """Only the workers read the client CA here (no TLS listener asks for client
    certificates): their failure still comes back as one line."""
    keys = site.keys_copy()
    (keys / "client-ca.pem").unlink()
    listeners = [{"name": "tcp", "port": 0, "tls": False, "client_cert": "none"}]
    overlay = site.overlay({"workers": {"processes": 2}, "listeners": listeners})
    both_fail(overlay, EX_CONFIG, str(keys / "client-ca.pem"))


def test_schema_folder_without_the_schema(site: Site) -> None:
    """The official pain.001 schema is loaded by every worker at start."""
    empty = site.tmp / "xsd"
    empty.mkdir()
    overlay = site.overlay({"codec": {"pain001_xsd_dir": empty}, "workers": {"processes": 1}})
    both_fail(overlay, EX_CONFIG, str(empty / "pain.001.001.09.xsd"), "cannot load")


def test_key_file_readable_by_others(site: Site) -> None:
    keys = site.keys_copy()
    (keys / "server.key").chmod(0o644)
    both_fail(site.overlay({}), EX_CONFIG, str(keys / "server.key"), "0644")


def test_certificate_that_does_not_match_its_key(site: Site) -> None:
    keys = site.keys_copy()
    shutil.copy(keys / "gateway-clearing.pem", keys / "gateway-response.pem")
    (keys / "ring.toml").unlink(missing_ok=True)  # the single files, not a ring naming them
    both_fail(site.overlay({}), EX_CONFIG, "gateway-response.pem", "does not match")


def test_encrypted_key_needs_the_passphrase_variable(site: Site) -> None:
    """By hand, outside systemd, the passphrase comes from ``keys.passphrase_env``."""
    keys = site.keys_copy()
    key_file = keys / "gateway-response.key"
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    write_encrypted_pkcs8(key, key_file, b"correct horse")  # type: ignore[arg-type]
    overlay = site.overlay({"keys": {"passphrase_env": "SITE_KEY_PASSPHRASE"}})
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY",)}
    env.pop("SITE_KEY_PASSPHRASE", None)
    both_fail(overlay, EX_CONFIG, str(key_file), "SITE_KEY_PASSPHRASE", env=env)
    wrong = {**env, "SITE_KEY_PASSPHRASE": "wrong"}
    both_fail(overlay, EX_CONFIG, str(key_file), "passphrase", env=wrong)
    right = gatewayd(overlay, "--check-config", env={**env, "SITE_KEY_PASSPHRASE": "correct horse"})
    assert right.returncode == 0, right.stderr
    assert "configuration OK" in right.stdout


# -- what passes ----------------------------------------------------------------------


def test_check_config_writes_nothing(site: Site) -> None:
    """The demo default (dev PKI generated at start): the check creates no folder."""
    state = site.tmp / "fresh-state"
    overlay = site.overlay(
        {"environment": "demo", "state_dir": state, "keys": {"dev_pki": True, "dir": ""}}
    )
    proc = gatewayd(overlay, "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert "configuration OK" in proc.stdout
    assert "dev PKI will be generated" in proc.stdout
    assert not state.exists()


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while not path.exists():
        assert proc.poll() is None, "gatewayd exited"
        assert time.monotonic() < deadline, "gatewayd did not become ready"
        time.sleep(0.05)
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as rsp:  # noqa: S310 - http://127.0.0.1
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _pay(pki: DevPki, host: str, port: int, now: datetime) -> Reply:
    key, cert = pki.client("C100000001", "op01")
    client = ErpClient(
        host,
        port,
        corp_id="C100000001",
        oper_id="op01",
        signer=load_signing_key(key, cert),
        gateway_certs=x509.load_pem_x509_certificates(pki.response_cert.read_bytes()),
    )
    await client.connect()
    try:
        return await client.pay("BROKER-DOWN-1", now, payment("105100000017", "100.00"))
    finally:
        await client.close()


def test_broker_down_is_not_a_start_failure(site: Site) -> None:
    """The clearing link connects and reconnects at run time (docs/clearing-link.md §1):
    with the broker down the daemon starts, serves and journals CorpLink, says it
    is not ready on /readyz, and logs the broker it cannot reach, once."""
    broker_port = free_port()
    start = recent_friday_10()  # every engine open, inside the dev PKI's validity
    overlay = site.overlay(
        {
            "clearing": {"url": f"mqtt://127.0.0.1:{broker_port}"},
            "clock": {"start": start.isoformat()},
        }
    )
    checked = gatewayd(overlay, "--check-config")
    assert checked.returncode == 0, checked.stderr
    ports = site.tmp / "ports.json"
    err = site.tmp / "stderr.log"
    with err.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli.gatewayd",
                "--config",
                str(overlay),
                *("--ports-file", str(ports)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )
    try:
        bound = _wait_for(ports, proc)
        host, port = bound["metrics"]
        status, ready = _get(f"http://{host}:{port}/readyz")
        assert status == 503
        assert ready["checks"]["clearing_link"] is False
        assert ready["checks"]["journal"] is True
        assert ready["lifecycle"] == "ready"
        # CorpLink is served and journaled meanwhile: the payment waits for the link
        tcp_host, tcp_port = bound["listeners"]["tcp"]
        reply = asyncio.run(_pay(site.pki, tcp_host, tcp_port, start))
        assert reply.ret_code == "0000", reply
        deadline = time.monotonic() + 30
        while b"clearing_link_connect_failed" not in err.read_bytes():
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.read_text()
    assert "Traceback" not in text
    failed = [
        json.loads(line) for line in text.splitlines() if '"clearing_link_connect_failed"' in line
    ]
    assert len(failed) == 1, text  # a streak of failures is logged once
    assert failed[0]["port"] == broker_port
    assert failed[0]["level"] == "warning"


def test_unit_does_not_restart_on_a_configuration_error() -> None:
    unit = (REPO / "systemd" / "gatewayd.service").read_text(encoding="utf-8")
    section, service = "", []
    for raw in unit.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            service.append(line)
    assert "RestartPreventExitStatus=78" in service
    assert "Restart=on-failure" in service  # 75 (and a crash) are restarted
