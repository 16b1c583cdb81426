"""Verifying the journal's audit chain, and recording its head outside the journal.

The chain (:mod:`gateway.journal.audit_chain`) links every row that records
a change of state.  Verification reads the live rows and every archive file
(retention scatters the chain: an old request's transitions leave, younger
ones stay) and stitches them together by ``seq``.  It then walks the seqs in
order and stops at the first break:

- a seq that no row carries (a deleted row), or two different rows that
  carry one (an archive replaced by another version of its rows);
- a row whose content does not give its ``hash`` (an edited row, or two
  rows swapped);
- a row whose ``prev_hash`` is not the previous row's ``hash`` (a row edited
  and re-hashed, or taken out);
- the journal's counter row (``audit_head``) ahead of or behind the last row;
- the last **recorded head** not in the chain.  A hash chain cannot see its
  tail cut off (the rows and the counter rolled back together), so the daily
  task records the head (seq, hash) outside the journal after each clean
  verification: a file ``audit-head-<node>.json`` beside the archives, a log
  line and the metric ``gateway_audit_head_seq``.  The next verification
  requires that row, with that hash.

Reading order matters while the daemon runs: the live rows first (one read
transaction), then the archive folder.  Retention writes a file (durably)
before it deletes what the file holds, so a row that left the journal after
the live snapshot is in a file that is already there.  Archive files are
at-least-once: identical copies of a row are fine.

``gatewayctl audit verify`` (:mod:`gateway.cli.audit`) and the daemon's daily
task (:func:`audit_once`) call :func:`verify`.  docs/operations.md says how
security staff use them and what a break means.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from gateway.journal import schema
from gateway.journal.archive import READABLE_FORMATS
from gateway.journal.audit_chain import GENESIS, link_hash
from gateway.ops import metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Link:
    """One chained row as read back, from the journal or an archive file."""

    seq: int
    kind: str
    subject: str
    state: str
    at_us: int
    detail: str | None
    prev: str | None
    hash: str | None
    node: str | None
    where: str  # "transitions id 42", "state_changes id 7", "<file> line 3"

    def computed(self) -> str:
        """What the row's content gives: equal to ``hash`` unless someone changed it."""
        return link_hash(
            self.prev, self.seq, self.kind, self.subject, self.state, self.at_us, self.detail
        )

    def content(self) -> tuple[object, ...]:
        return (self.prev, self.hash, self.kind, self.subject, self.state, self.at_us, self.detail)


@dataclass(frozen=True)
class Break:
    """The first place where the chain does not hold."""

    seq: int
    row: str
    problem: str
    expected: str
    found: str


@dataclass(frozen=True)
class Head:
    """A chain's head: its last row's seq and hash (``seq`` 0: an empty chain)."""

    node: str
    seq: int
    hash: str
    at: str = ""  # when it was recorded (ISO 8601), for the file


@dataclass(frozen=True)
class Report:
    ok: bool
    node: str
    rows: int  # links checked
    first_seq: int | None
    head: Head  # the journal's last link (what the daily task records)
    recorded: Head | None  # the head file checked against, if any
    brk: Break | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["break"] = out.pop("brk")
        return out


@dataclass
class Live:
    """The journal's side: its chained rows, its counter row, rows outside the chain."""

    links: list[Link]
    counter: tuple[int, str] | None
    unchained: list[str]


# -- reading ------------------------------------------------------------------------------

_SQ_LINKS = """
SELECT seq, 'item', CAST(item_id AS TEXT), state, at, detail, prev_hash, hash, id,
       'transitions' FROM transitions WHERE seq IS NOT NULL
UNION ALL
SELECT seq, kind, subject, state, at, detail, prev_hash, hash, id, 'state_changes'
  FROM state_changes WHERE seq IS NOT NULL
"""
_SQ_UNCHAINED = """
SELECT 'transitions id ' || id FROM transitions
 WHERE seq IS NULL AND id > (SELECT min(id) FROM transitions WHERE seq IS NOT NULL)
UNION ALL
SELECT 'state_changes id ' || id FROM state_changes WHERE seq IS NULL
"""
_PG_LINKS = """
SELECT seq, 'item' AS kind, item_id::text AS subject, state, at, detail, prev_hash, hash, id,
       'transitions' AS tbl FROM transitions WHERE node = $1 AND seq IS NOT NULL
UNION ALL
SELECT seq, kind, subject, state, at, detail, prev_hash, hash, id, 'state_changes'
  FROM state_changes WHERE node = $1 AND seq IS NOT NULL
"""
_PG_UNCHAINED = """
SELECT 'transitions id ' || id FROM transitions
 WHERE seq IS NULL AND id > (SELECT min(id) FROM transitions WHERE seq IS NOT NULL)
UNION ALL
SELECT 'state_changes id ' || id FROM state_changes WHERE seq IS NULL
"""


def _link(row: Any, at_us: int, node: str | None) -> Link:
    seq, kind, subject, state, _at, detail, prev, digest, row_id, table = row
    return Link(
        int(seq), str(kind), str(subject), str(state), at_us, detail, prev, digest, node,
        f"{table} id {row_id}",
    )  # fmt: skip


def read_sqlite(path: Path) -> Live:
    """The chained rows of a SQLite journal, in one read transaction."""
    conn = schema.connect(path, readonly=True)
    try:
        conn.execute("BEGIN")
        links = [_link(r, int(r[4]), None) for r in conn.execute(_SQ_LINKS)]
        counter = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
        unchained = [str(r[0]) for r in conn.execute(_SQ_UNCHAINED)]
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        raise RuntimeError(f"not a journal with an audit chain ({exc})") from exc
    finally:
        conn.close()
    return Live(links, None if counter is None else (int(counter[0]), str(counter[1])), unchained)


async def read_postgres(dsn: str, node: str) -> Live:
    """Node ``node``'s chained rows, in one repeatable-read transaction."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(_PG_LINKS, node)
            counter = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE node = $1", node)
            unchained = [str(r[0]) for r in await conn.fetch(_PG_UNCHAINED)]
    finally:
        await conn.close()
    links = [_link(r, schema.to_micros(r["at"]), node) for r in rows]
    return Live(links, None if counter is None else (int(counter[0]), str(counter[1])), unchained)


def _micros(text: str) -> int:
    return schema.to_micros(datetime.fromisoformat(text))


def _file_links(path: Path) -> Iterator[Link]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline() or "{}")
        if header.get("kind") != "archive" or header.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{path.name}: not a journal archive of a known format")
        for number, text in enumerate(fh, start=2):
            if not text.strip():
                continue
            line = json.loads(text)
            where = f"{path.name} line {number}"
            if line.get("kind") == "request":
                for item in line["items"]:
                    for t in item["transitions"]:
                        c = t.get("chain")
                        if c is not None:
                            yield Link(
                                int(c["seq"]), "item", str(c["item_id"]), t["state"],
                                _micros(t["at"]), t["detail"], c["prev"], c["hash"], c["node"],
                                where,
                            )  # fmt: skip
            elif line.get("kind") == "state_change" and line.get("seq") is not None:
                yield Link(
                    int(line["seq"]), line["change_kind"], line["subject"], line["state"],
                    _micros(line["at"]), line["detail"], line["prev_hash"], line["hash"],
                    line["node"], where,
                )  # fmt: skip


def archive_files(archive_dir: Path) -> list[Path]:
    """The archive files (never the pass's ``*.tmp``), in name order."""
    if not archive_dir.is_dir():
        return []
    return sorted(archive_dir.glob("journal-*.jsonl.gz"))


def read_archives(archive_dir: Path) -> Iterator[Link]:
    for path in archive_files(archive_dir):
        yield from _file_links(path)


# -- the recorded head -----------------------------------------------------------------------


def head_path(archive_dir: Path, node: str) -> Path:
    return archive_dir / f"audit-head-{node}.json"


def read_head(path: Path) -> Head | None:
    """The recorded head, or None if there is no file yet; ``ValueError`` if it is garbage."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name}: unreadable head file ({exc})") from exc
    return Head(str(data["node"]), int(data["seq"]), str(data["hash"]), str(data.get("at", "")))


def write_head(path: Path, head: Head) -> None:
    """Replace the head file atomically and durably (temp file, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(asdict(head), fh)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the check --------------------------------------------------------------------------------


def check(
    live: Live,
    archived: Iterable[Link],
    *,
    node: str,
    recorded: Head | None = None,
    since_us: int | None = None,
    only_node: str | None = None,
) -> Report:
    """Stitch ``live`` and ``archived`` links by seq and walk them (module docstring).

    ``since_us``: start at the first link made at or after that instant, trusting
    its ``prev_hash`` (older links need not be kept).  ``only_node``: ignore links
    of other nodes (PostgreSQL archives hold every node's).
    """
    by_seq: dict[int, Link] = {}
    clash: dict[int, Link] = {}
    for link in (*live.links, *archived):
        if only_node is not None and link.node != only_node:
            continue
        seen = by_seq.get(link.seq)
        if seen is None:
            by_seq[link.seq] = link
        elif seen.content() != link.content() and link.seq not in clash:
            clash[link.seq] = link
    last = max(by_seq, default=0)
    head = Head(node, last, (by_seq[last].hash or "") if last else GENESIS)
    if since_us is None:
        start = 1
    else:
        start = min((s for s, ln in by_seq.items() if ln.at_us >= since_us), default=last + 1)
    brk = _walk(by_seq, clash, start, last)
    if brk is None:
        brk = _tail(live, head, recorded, by_seq, start)
    if brk is None and live.unchained:
        brk = Break(
            0, live.unchained[0], "a row that records a change of state is outside the chain",
            "a seq and a hash", f"{len(live.unchained)} row(s) without",
        )  # fmt: skip
    first = start if start <= last else None
    return Report(brk is None, node, max(0, last - start + 1), first, head, recorded, brk)


def _walk(by_seq: dict[int, Link], clash: dict[int, Link], start: int, last: int) -> Break | None:
    if start > last:
        return None
    prev = GENESIS if start == 1 else (by_seq[start].prev or "")
    for seq in range(start, last + 1):
        link = by_seq.get(seq)
        if link is None:
            return Break(seq, "-", "no row carries this seq (deleted)", f"a row with seq {seq}",
                         "none")  # fmt: skip
        other = clash.get(seq)
        if other is not None:
            return Break(seq, other.where, f"a second, different row with this seq ({link.where})",
                         str(link.hash), str(other.hash))  # fmt: skip
        computed = link.computed()
        if computed != link.hash:
            return Break(seq, link.where, "the row's content does not give its hash (edited)",
                         str(link.hash), computed)  # fmt: skip
        if link.prev != prev:
            return Break(seq, link.where, "prev_hash is not the previous row's hash",
                         prev, str(link.prev))  # fmt: skip
        prev = computed
    return None


def _tail(
    live: Live, head: Head, recorded: Head | None, by_seq: dict[int, Link], start: int
) -> Break | None:
    if live.counter is not None:
        seq, digest = live.counter
        if seq != head.seq or (seq and digest != head.hash):
            return Break(
                min(seq, head.seq) + 1, "audit_head", "the journal's counter row and its last"
                " row disagree (rows cut from the end, or the counter edited)",
                f"seq {seq} hash {digest}", f"seq {head.seq} hash {head.hash}",
            )  # fmt: skip
    if recorded is None:
        return None
    if recorded.seq > head.seq:
        return Break(
            head.seq + 1, "recorded head", "the chain ends before the recorded head (tail cut)",
            f"seq {recorded.seq} hash {recorded.hash}", f"seq {head.seq} hash {head.hash}",
        )  # fmt: skip
    link = by_seq.get(recorded.seq)
    if recorded.seq >= start and recorded.seq > 0 and (link is None or link.hash != recorded.hash):
        return Break(
            recorded.seq, "recorded head", "the row at the recorded head has another hash",
            recorded.hash, "none" if link is None else str(link.hash),
        )  # fmt: skip
    return None


async def verify(
    backend: str,
    target: Path | str,
    archive_dir: Path,
    node: str,
    *,
    since: datetime | None = None,
) -> Report:
    """Read the journal (then the archives) and :func:`check` it against the head file.

    ``target``: the SQLite file, or the PostgreSQL DSN.  A garbled head file is
    a break too (it is how a cut tail would be hidden).
    """
    if backend == "postgres":
        live = await read_postgres(str(target), node)
    else:
        live = await asyncio.to_thread(read_sqlite, Path(target))
    hp = head_path(archive_dir, node)
    try:
        recorded = read_head(hp)
    except (ValueError, KeyError) as exc:
        bad = Break(0, hp.name, "the recorded head cannot be read", "a head file", str(exc))
        return Report(False, node, 0, None, Head(node, 0, GENESIS), None, bad)

    def archived() -> list[Link]:
        return list(read_archives(archive_dir))

    links = await asyncio.to_thread(archived)
    since_us = None if since is None else schema.to_micros(since)
    only = node if backend == "postgres" else None
    return check(live, links, node=node, recorded=recorded, since_us=since_us, only_node=only)


async def audit_once(
    backend: str, target: Path | str, archive_dir: Path, node: str, now: datetime
) -> Report:
    """The daily task: verify, then record the head (file, log line, metric) if it held.

    A break leaves the recorded head where it was, sets ``gateway_audit_chain_ok``
    to 0 and logs ``audit_chain_broken`` at error level (alert GatewayAuditChainBroken).
    """
    try:
        report = await verify(backend, target, archive_dir, node)
    except (OSError, ValueError, RuntimeError, asyncpg.PostgresError) as exc:
        bad = Break(0, "-", "the chain could not be read", "a readable journal", str(exc))
        report = Report(False, node, 0, None, Head(node, 0, GENESIS), None, bad)
    metrics.AUDIT_VERIFIED.set(now.timestamp())
    if not report.ok:
        metrics.AUDIT_CHAIN_OK.set(0)
        brk = report.brk
        log.error("audit_chain_broken", node=node, **(asdict(brk) if brk else {}))
        return report
    head = Head(node, report.head.seq, report.head.hash, now.isoformat(timespec="seconds"))
    try:
        await asyncio.to_thread(write_head, head_path(archive_dir, node), head)
    except OSError as exc:  # the log line and the metric below still record the head
        log.warning("audit_head_not_written", error=str(exc))
    metrics.AUDIT_CHAIN_OK.set(1)
    metrics.AUDIT_HEAD_SEQ.set(head.seq)
    log.info("audit_chain_verified", node=node, seq=head.seq, hash=head.hash, rows=report.rows)
    return report
