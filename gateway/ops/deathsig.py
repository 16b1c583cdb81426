"""Die with the parent: worker processes must not outlive a killed gatewayd.

The decode/verify workers are children of multiprocessing's forkserver, which
is a child of gatewayd. Under systemd (``KillMode=mixed``) the cgroup is
cleaned anyway, but a daemon SIGKILLed outside systemd (tests, operators)
would leave them running. Linux's ``PR_SET_PDEATHSIG`` makes the kernel send
SIGTERM to a process when its parent dies; it is set in the forkserver (this
module is preloaded there) and in each worker (``gateway.desk.init_worker``).
Elsewhere than Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Ask the kernel for SIGTERM when the parent process dies; False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)) == 0
    except OSError:
        return False


die_with_parent()
