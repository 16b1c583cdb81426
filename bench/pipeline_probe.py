"""What bench_pipeline.py reads from a running gatewayd without disturbing it.

- its metrics endpoint (``/metrics``): inbound clearing messages, the
  journal's group-commit (fsync) histogram;
- its SQLite journal, read-only (``file:...?mode=ro``): per engine the age of
  the oldest QUEUED item, and the items accepted but not yet ACKED or later;
- ``/proc``: the process tree, and memory (RSS, and PSS from ``smaps_rollup``,
  which shares pages fairly between the daemon and its forked children).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import statistics
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

#: Item states past the clearing system's receipt (docs/routing-rules.md §6).
DONE_STATES = ("ACKED", "NETTED", "SETTLED", "REJECTED")


# ------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class Scrape:
    """The few series the bench needs from one ``/metrics`` read."""

    inbound: float  # gateway_inbound_messages_total, all message types
    commit_buckets: tuple[tuple[float, float], ...]  # (le, cumulative count)
    commits: float


def scrape(url: str) -> Scrape:
    text = urllib.request.urlopen(url, timeout=5).read().decode()  # noqa: S310 - loopback
    inbound, commits, buckets = 0.0, 0.0, {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "gateway_inbound_messages_total":
                inbound += s.value
            elif s.name == "gateway_journal_commit_seconds_bucket":
                buckets[float(s.labels["le"])] = s.value
            elif s.name == "gateway_journal_commit_seconds_count":
                commits = s.value
    return Scrape(inbound, tuple(sorted(buckets.items())), commits)


def quantile(before: Scrape, after: Scrape, q: float) -> float:
    """The ``q`` quantile (seconds) of commits between two scrapes (bucket upper bound)."""
    old = dict(before.commit_buckets)
    delta = [(le, n - old.get(le, 0.0)) for le, n in after.commit_buckets]
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return math.nan
    for le, n in delta:
        if n >= q * total:
            return le
    return math.inf


# ------------------------------------------------------------------ journal


@dataclass(frozen=True)
class Backlog:
    oldest_queued_s: dict[str, float]  # per engine; 0 when none QUEUED
    accepted: int  # items journaled
    unfinished: int  # accepted − (ACKED or later)


def backlog(journal: Path) -> Backlog:
    """Read-only look at the engines' backlog; "now" is the newest request's received_at.

    Under load the newest request is milliseconds old, and the journal's
    instants are the daemon's business clock, so no clock mapping is needed.
    """
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        (now,) = db.execute("SELECT MAX(received_at) FROM requests").fetchone()
        oldest = dict(
            db.execute(
                "SELECT engine, MIN(queued_at) FROM items WHERE state = 'QUEUED' GROUP BY engine"
            ).fetchall()
        )
        counts = dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
    finally:
        db.close()
    ages = {e: max(0.0, (now - q) / 1e6) for e, q in oldest.items() if now and q}
    accepted = sum(counts.values())
    done = sum(counts.get(s, 0) for s in DONE_STATES)
    return Backlog(ages, accepted, accepted - done)


# ------------------------------------------------------------------- /proc


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                data = Path(f"/proc/{d}/stat").read_text()
                ppid = int(data[data.rfind(")") + 2 :].split()[1])
                kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """``pid`` and all its descendants."""
    kids = children_map() if kids is None else kids
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB from ``smaps_rollup``; (0, 0) once the process is gone."""
    rss = pss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def kind(pid: int) -> str:
    """A short name for a child process: front, forkserver, resource tracker, worker, ..."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    words = (
        ("gateway.procs.front", "front"),
        ("resource_tracker", "tracker"),
        ("forkserver", "forkserver"),
    )
    for word, name in words:
        if word in cmd:
            return name
    return Path(f"/proc/{pid}/comm").read_text().strip() if Path(f"/proc/{pid}").exists() else "?"


def labelled(roots: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """Every process under each role's roots, labelled "role", "role/forkserver", ... by pid.

    A forkserver's children are its workers ("role/worker 1", ...).
    """
    kids, out = children_map(), {}
    for role, pids in roots.items():
        for k, root in enumerate(pids):
            base = role if len(pids) == 1 else f"{role} {k + 1}"
            out[base] = root
            todo = [(c, base) for c in sorted(kids.get(root, []))]
            while todo:
                p, parent = todo.pop(0)
                name = "worker" if parent.endswith("/forkserver") else kind(p)
                label, n = f"{base}/{name}", 1
                while label in out:
                    n += 1
                    label = f"{base}/{name} {n}"
                out[label] = p
                todo.extend((c, label) for c in sorted(kids.get(p, [])))
    return out


def connections(pids: Sequence[int], port: int) -> list[int]:
    """Per process, its established TCP connections on local ``port`` (the listener's).

    The kernel spreads a SO_REUSEPORT listener's connections over the fronts by a
    hash of the addresses, so a few client connections are seldom shared evenly.
    """
    established: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    established.add(int(f[9]))
    out = []
    for pid in pids:
        n = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    n += link.startswith("socket:[") and int(link[8:-1]) in established
        out.append(n)
    return out


def slope_mib_per_10min(points: Iterable[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB) points, in MiB per 10 minutes."""
    pts = list(points)
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    if len(xs) < 2 or len(set(xs)) < 2:
        return math.nan
    return statistics.linear_regression(xs, ys).slope * 600 / 1024
