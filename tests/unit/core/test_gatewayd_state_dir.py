"""``gatewayd`` with no state folder refuses to start instead of making one where it stands.

The embedded defaults (environment ``demo``) would otherwise create
``./gateway-state`` and a dev PKI in whatever folder the daemon was started
from. A bank expects a refusal: one line naming ``state_dir``, exit status 78
(EX_CONFIG, which the unit does not restart), and nothing created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.gatewayd import main as gatewayd_main

REPO = Path(__file__).resolve().parents[3]
EX_CONFIG = 78


def bare_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    env["PYTHONPATH"] = str(REPO)
    return env


def test_bare_gatewayd_refuses_with_one_line_and_creates_nothing(tmp_path: Path) -> None:
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli.gatewayd"],
        cwd=cwd,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == EX_CONFIG, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "state_dir" in lines[0] and "Traceback" not in proc.stderr
    assert list(cwd.iterdir()) == []  # no ./gateway-state, no dev PKI


def test_check_config_says_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert gatewayd_main(["--check-config"]) == EX_CONFIG
    assert "state_dir" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["--state-dir", "config", "systemd"])
def test_a_named_state_folder_is_accepted(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    argv = ["--check-config"]
    if how == "--state-dir":
        argv += ["--state-dir", str(state)]
    elif how == "config":
        overlay = tmp_path / "gw.toml"
        overlay.write_text(f'state_dir = "{state}"\n')
        argv += ["--config", str(overlay)]
    else:
        monkeypatch.setenv("STATE_DIRECTORY", str(state))
    assert gatewayd_main(argv) == 0, capsys.readouterr().err
    assert "configuration OK" in capsys.readouterr().out
