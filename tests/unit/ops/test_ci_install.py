""".ci/install on a stock Debian, with apt-get and Python stood in for by recorders.

What it must do there: wait for the dpkg lock, add python3-venv when Debian's
python3 lacks it (with the other missing tools), and install the package into
the clone's own ``.venv``, never with the system interpreter's pip (PEP 668
refuses that, and a shared install would let one clone repoint another's
commands). The real run, from a clean clone with Debian's own python3 on a
bare PATH, is in the coordinator's report; this keeps its logic from drifting.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="bash not installed")

# The system python3 of a stock Debian without python3-venv: no ensurepip.
FAKE_PYTHON = """#!/bin/sh
echo "python3 $*" >> "$RECORD"
case "$*" in
  "-c import ensurepip, venv") exit 1 ;;
  "-m venv --clear .venv")
    mkdir -p .venv/bin
    cat > .venv/bin/python <<'EOF'
#!/bin/sh
echo "venv-python $* (in $PWD)" >> "$RECORD"
EOF
    chmod +x .venv/bin/python ;;
esac
exit 0
"""
FAKE_APT = """#!/bin/sh
echo "apt-get $* (DEBIAN_FRONTEND=$DEBIAN_FRONTEND)" >> "$RECORD"
"""
FAKE_ID = "#!/bin/sh\necho 0\n"  # root: no sudo


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "clone"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(REPO / ".ci" / "install", repo / ".ci" / "install")
    return repo


def run_install(tmp_path: Path, repo: Path) -> list[str]:
    """Run .ci/install with PATH holding only the recorders and the few tools it needs."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    executable(tools / "python3", FAKE_PYTHON)
    executable(tools / "apt-get", FAKE_APT)
    executable(tools / "id", FAKE_ID)
    for name in ("dirname", "ls", "env", "mkdir", "cat", "chmod", "pwd"):
        real = shutil.which(name, path="/usr/bin:/bin")
        assert real is not None, name
        dest = tools / name
        if not dest.exists():
            dest.symlink_to(real)
    record = tmp_path / "record.txt"
    assert BASH is not None
    proc = subprocess.run(
        [BASH, str(repo / ".ci" / "install")],
        env={"PATH": str(tools), "RECORD": str(record), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return record.read_text().splitlines()


def test_stock_debian_gets_python3_venv_and_a_project_virtualenv(
    tmp_path: Path, clone: Path
) -> None:
    calls = run_install(tmp_path, clone)
    apt = [c for c in calls if c.startswith("apt-get")]
    assert apt[0] == "apt-get -o DPkg::Lock::Timeout=600 update -qq (DEBIAN_FRONTEND=)"
    install = apt[1]
    assert install.startswith("apt-get -o DPkg::Lock::Timeout=600 install -y")
    assert install.endswith("(DEBIAN_FRONTEND=noninteractive)")
    for package in ("python3-venv", "xmlsec1", "systemd", "prometheus"):
        assert f" {package}" in install, install  # not on this PATH: all missing
    assert "python3 -m venv --clear .venv" in calls
    pip = [c for c in calls if " pip " in f" {c} "]
    assert pip == [
        f"venv-python -m pip install -q --disable-pip-version-check -e .[test] (in {clone})"
    ]
    assert not [c for c in calls if c.startswith("python3 -m pip")]  # never the system pip


def test_a_second_run_keeps_the_working_virtualenv(tmp_path: Path, clone: Path) -> None:
    run_install(tmp_path, clone)
    (tmp_path / "record.txt").unlink()
    calls = run_install(tmp_path, clone)
    assert "python3 -m venv --clear .venv" not in calls
    assert any(c.startswith("venv-python -m pip install") for c in calls)


def test_each_clone_installs_into_its_own_virtualenv(tmp_path: Path) -> None:
    """A second clone's install touches only that clone: the first keeps its own .venv."""
    first, second = tmp_path / "a" / "clone", tmp_path / "b" / "clone"
    for repo in (first, second):
        (repo / ".ci").mkdir(parents=True)
        shutil.copy2(REPO / ".ci" / "install", repo / ".ci" / "install")
    run_install(tmp_path / "a", first)
    before = (first / ".venv" / "bin" / "python").read_bytes()
    calls = run_install(tmp_path / "b", second)
    assert any(c.endswith(f"(in {second})") for c in calls)
    assert not [c for c in calls if str(first) in c]
    assert (first / ".venv" / "bin" / "python").read_bytes() == before
