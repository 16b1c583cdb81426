"""systemd/gatewayd.service: the settings we promise, checked by systemd-analyze itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "gatewayd.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (Debian package: systemd)"
)
MAX_EXPOSURE = 2.0  # `systemd-analyze security` scale 0 (best) .. 10; we score ~1.1


def service_settings(text: str) -> dict[str, list[str]]:
    """[Service] key → values in order (systemd allows repeated keys)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_unit_promises() -> None:
    s = service_settings(UNIT.read_text())
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["ExecStart"] == "/usr/bin/gatewayd --config /etc/gateway/gateway.toml"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["WatchdogSec"] == "30s"
    assert one["Restart"] == "on-failure"
    assert one["TimeoutStopSec"] == "60"
    assert one["KillSignal"] == "SIGTERM"
    assert (one["User"], one["Group"], one["DynamicUser"]) == ("gateway", "gateway", "no")
    assert one["LoadCredential"] == (
        "gateway-key-passphrase:/etc/gateway/credentials/key-passphrase"
    )
    assert one["CapabilityBoundingSet"] == ""
    assert one["UMask"] == "0077"
    assert one["LimitNOFILE"] == "65536"
    assert one["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert s["SystemCallFilter"][0] == "@system-service"
    for flag in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "RestrictRealtime",
    ):
        assert one[flag] == "yes", flag
    assert one["ProtectSystem"] == "strict"


def verifiable_copy(tmp_path: Path, text: str) -> Path:
    """`verify` fails when ExecStart's binary is missing (it is on a build host):
    check a copy whose ExecStart names a binary that exists, same name, in a temp dir."""
    true = shutil.which("true")
    assert true is not None
    rewritten, n = re.subn(r"(?m)^ExecStart=/usr/bin/gatewayd\b", f"ExecStart={true}", text)
    assert n == 1
    copy = tmp_path / UNIT.name
    copy.write_text(rewritten)
    return copy


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def complaints(proc: subprocess.CompletedProcess[str]) -> list[str]:
    # A mistyped key only warns, with exit 0 (FACTS.md): any line naming the unit fails.
    return [line for line in proc.stderr.splitlines() if "gatewayd" in line]


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    proc = verify(verifiable_copy(tmp_path, UNIT.read_text()))
    assert proc.returncode == 0, proc.stderr
    assert complaints(proc) == []


@needs_analyze
def test_verify_check_catches_a_mistyped_key(tmp_path: Path) -> None:
    """The detector itself: a typo must show up as a complaint even with exit 0."""
    text = UNIT.read_text().replace("WatchdogSec=30s", "WatchdogSecs=30s")
    proc = verify(verifiable_copy(tmp_path, text))
    assert any("WatchdogSecs" in line for line in complaints(proc)), proc.stderr


@needs_analyze
def test_security_exposure_is_low(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ANALYZE is not None
    unit = verifiable_copy(tmp_path, UNIT.read_text())
    proc = subprocess.run(
        # --threshold counts in tenths of the displayed score (0..100)
        [ANALYZE, "security", "--offline=yes", f"--threshold={MAX_EXPOSURE * 10:.0f}", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", proc.stdout)
    assert m is not None, proc.stdout + proc.stderr
    with capsys.disabled():
        print(f"\n[systemd-analyze security] gatewayd.service exposure {m.group(1)} {m.group(2)}")
    assert complaints(proc) == []
    assert float(m.group(1)) <= MAX_EXPOSURE
    assert proc.returncode == 0, proc.stderr  # --threshold agrees


def test_operators_reach_the_admin_socket_with_their_own_uid() -> None:
    """The admin socket lives in RuntimeDirectory, which operators can traverse; the
    daemon may hand it to `gateway-ops`; PrivateUsers=no so SO_PEERCRED sees real uids
    (with PrivateUsers=yes every operator would be one unmapped "nobody")."""
    text = UNIT.read_text()
    one = {k: v[-1] for k, v in service_settings(text).items()}
    assert one["PrivateUsers"] == "no"
    assert one["RuntimeDirectory"] == "gateway"
    assert one["RuntimeDirectoryMode"] == "0755"
    assert one["SupplementaryGroups"] == "gateway-ops"
    assert "`gateway` group may use gatewayctl" not in text
    assert "group `gateway-ops`" in text
