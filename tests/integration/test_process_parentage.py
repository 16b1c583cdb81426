"""Who dies with whom: gatewayd outlives the shell that started it; its children do not outlive it.

Only child processes (the front processes, the forkserver and the workers) carry
Linux's parent-death signal (``gateway/ops/deathsig.py``). The process a shell
or systemd starts must not: started from a shell that then exits, a gatewayd
with the death signal would drain and exit 0, and ``Restart=on-failure``
would not bring it back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.keys.devpki import DevPki
from gateway.testing import Broker
from tests.hostile.tools import descendants

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only"
)

REPO = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """The process has exited (vanished, or a zombie its new parent has not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def wait_until(check: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll ``check``; fail naming ``what`` if it is still false after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_importing_the_daemon_sets_no_death_signal() -> None:
    """The main process's own death signal stays 0 (PR_GET_PDEATHSIG) after every daemon import."""
    code = textwrap.dedent(
        """
        import gateway.cli.gatewayd, gateway.server, gateway.workers, gateway.ops.deathsig
        from gateway.ops.deathsig import parent_death_signal
        print(parent_death_signal())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout.strip() == "0", out.stderr


def test_the_death_signal_helper_reads_what_it_set() -> None:
    """The detector itself: in a child that asks for it, PR_GET_PDEATHSIG reports SIGTERM."""
    code = (
        "from gateway.ops.deathsig import die_with_parent, parent_death_signal\n"
        "assert die_with_parent()\nprint(parent_death_signal())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout.strip() == str(int(signal.SIGTERM)), out.stderr


def test_daemon_started_from_an_exiting_shell_keeps_running_and_its_workers_die_with_it(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    overlay = tmp_path / "gw.toml"
    overlay.write_text(
        f'environment = "test"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[keys]\ndev_pki = false\ndir = "{dev_pki.dir}"\n'
        "[workers]\nprocesses = 2\n"
        f'[clearing]\nurl = "{broker.url}"\n[observability]\nmetrics_port = 0\n'
        '[[listeners]]\nname = "tcp"\nport = 0\ntls = false\nclient_cert = "none"\n',
        encoding="utf-8",
    )
    ports, pid_file, log_path = tmp_path / "ports.json", tmp_path / "pid", tmp_path / "gw.log"
    # The shell starts gatewayd in the background, waits until it is ready (its
    # worker pool is up by then), and exits: gatewayd is left to its new parent.
    script = (
        '"$1" -m gateway.cli.gatewayd --config "$2" --ports-file "$3" >"$4" 2>&1 &\n'
        'echo $! >"$5"\n'
        'while [ ! -s "$3" ]; do kill -0 $! || exit 1; sleep 0.1; done\n'
    )
    shell = subprocess.run(
        ["sh", "-c", script, "sh", sys.executable, overlay, ports, log_path, pid_file],
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    pid = int(pid_file.read_text())
    workers: list[int] = []
    try:
        assert shell.returncode == 0, log_path.read_text()
        workers = descendants(pid)
        # two fronts (the shipped workers.fronts), the forkserver and two workers
        assert len(workers) >= 5, workers
        # Had gatewayd the death signal, SIGTERM was queued to it when the shell
        # exited, before the SIGHUP sent now: it would drain instead of reloading.
        os.kill(pid, signal.SIGHUP)
        wait_until(
            lambda: gone(pid) or b'"reloaded"' in log_path.read_bytes(),
            "no reload after SIGHUP",
        )
        assert not gone(pid), log_path.read_text()
        assert b'"draining"' not in log_path.read_bytes()
        # ...while its workers and forkserver die with it, even when it is SIGKILLed.
        workers = descendants(pid)
        assert len(workers) >= 5, workers
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: gone(pid), "gatewayd survived SIGKILL")
        wait_until(lambda: all(gone(w) for w in workers), f"children outlived gatewayd: {workers}")
    finally:
        for p in [pid, *workers, *descendants(pid)]:
            if not gone(p):
                os.kill(p, signal.SIGKILL)
