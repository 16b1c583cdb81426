"""Die with the parent: worker processes must not outlive a killed gatewayd.

The decode/verify workers are children of multiprocessing's forkserver, which
is a child of gatewayd. Under systemd (``KillMode=mixed``) the cgroup is
cleaned anyway, but a daemon SIGKILLed outside systemd (tests, operators)
would leave them running. Linux's ``PR_SET_PDEATHSIG`` makes the kernel send
SIGTERM to a process when its parent dies; it is set in the forkserver (this
module is preloaded there) and in each worker (``gateway.workers``' initializer).
Elsewhere than Linux it does nothing.

Only child processes may carry it. The process systemd (or a shell, or any
wrapper) starts must outlive its starter: with the death signal set there, a
gatewayd whose launching shell exits would drain and exit 0, and
``Restart=on-failure`` would not bring it back. So importing this module does
nothing in gatewayd itself (``gateway.workers`` imports it); only the
forkserver, recognised by its command line, sets the signal at import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
_FORKSERVER_COMMAND = "from multiprocessing.forkserver import main"
_forkserver_pid: int | None = None
"""Set in the forkserver at preload; the processes it forks inherit it as their parent's pid."""


def die_with_parent(parent: int | None = None) -> bool:
    """Ask the kernel for SIGTERM when the parent process dies; False if unsupported.

    ``parent`` is the pid the parent had when it forked us. A parent that died
    before this call sends no signal (the orphan now has another parent), so
    then this process sends SIGTERM to itself: a worker still importing when
    gatewayd was killed would otherwise wait on its call queue for ever.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        ok = int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)) == 0
    except OSError:
        return False
    if ok and parent is not None and os.getppid() != parent:
        signal.raise_signal(signal.SIGTERM)
    return ok


def die_with_forkserver() -> bool:
    """In a process the forkserver forked (a worker): die with the forkserver."""
    return die_with_parent(_forkserver_pid)


def parent_death_signal() -> int:
    """This process's parent-death signal (0: none), as ``PR_GET_PDEATHSIG`` reports it."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    sig = ctypes.c_int(0)
    if int(libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_PDEATHSIG) failed")
    return sig.value


def in_forkserver() -> bool:
    """True in multiprocessing's forkserver process (started as ``python -c "from ...``)."""
    return any(arg.startswith(_FORKSERVER_COMMAND) for arg in sys.orig_argv)


if in_forkserver():  # the forkserver preloads this module; gatewayd's own import is a no-op
    _forkserver_pid = os.getpid()
    die_with_parent()
