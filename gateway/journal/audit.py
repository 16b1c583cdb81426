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

Links are stitched into flat arrays by seq (:class:`Stitch`, about 80 bytes
a link), so a verification holds no row objects, whatever the order they
arrive in.  Reading order matters while the daemon runs: the live rows first (one read
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
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

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
    source: str  # "transitions id", "state_changes id", "<file> line"
    ref: int  # the row id or line number

    def computed(self) -> str:
        """What the row's content gives: equal to ``hash`` unless someone changed it."""
        return link_hash(
            self.prev, self.seq, self.kind, self.subject, self.state, self.at_us, self.detail
        )


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
    """The journal's side besides its links: its counter row, rows outside the chain."""

    counter: tuple[int, str] | None
    unchained: list[str]


_ZERO: Final = bytes(32)


def _digest(text: str | None) -> bytes | None:
    """A hex SHA-256 as 32 bytes; None if it is not one (a garbled row)."""
    try:
        raw = bytes.fromhex(text or "")
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


class Stitch:
    """Links from anywhere, in any order, kept by seq in flat arrays (~80 bytes a link).

    Each link's own hash is checked as it arrives; what the walk needs later
    is its hash, its prev_hash and where it came from.  An identical second
    copy (archives are at-least-once) is dropped; a different one is kept
    aside as a clash.
    """

    def __init__(self, *, only_node: str | None = None, since_us: int | None = None) -> None:
        self.only_node = only_node
        self.since_us = since_us
        self.present = bytearray()  # per seq: 0 none, 1 consistent, 2 content gives another hash
        self.hashes = bytearray()
        self.prevs = bytearray()
        self.source = array("I")
        self.ref = array("q")
        self.sources: list[str] = []
        self._source_ix: dict[str, int] = {}
        self.bad: dict[int, tuple[str, str]] = {}  # seq -> (stored hash, computed hash)
        self.clash: dict[int, tuple[str, str]] = {}  # seq -> (where, its hash)
        self.last = 0
        self.first_since: int | None = None

    def _grow(self, seq: int) -> None:
        size = len(self.present)
        if seq < size:
            return
        more = max(seq + 1, 2 * size) - size
        self.present.extend(bytes(more))
        self.hashes.extend(bytes(32 * more))
        self.prevs.extend(bytes(32 * more))
        self.source.frombytes(bytes(self.source.itemsize * more))
        self.ref.frombytes(bytes(self.ref.itemsize * more))

    def where(self, seq: int) -> str:
        return f"{self.sources[self.source[seq]]} {self.ref[seq]}"

    def hash_of(self, seq: int) -> bytes:
        return bytes(self.hashes[32 * seq : 32 * seq + 32])

    def prev_of(self, seq: int) -> bytes:
        return bytes(self.prevs[32 * seq : 32 * seq + 32])

    def add(self, link: Link) -> None:
        if (self.only_node is not None and link.node != self.only_node) or link.seq < 1:
            return
        seq = link.seq
        computed = link.computed()
        ok = computed == link.hash
        digest, prev = _digest(link.hash), _digest(link.prev)
        self._grow(seq)
        if self.present[seq]:
            same = self.present[seq] == 1 and ok and digest == self.hash_of(seq)
            if not same and seq not in self.clash:
                self.clash[seq] = (f"{link.source} {link.ref}", str(link.hash))
            return
        self.present[seq] = 1 if ok and digest is not None else 2
        if not ok:
            self.bad[seq] = (str(link.hash), computed)
        self.hashes[32 * seq : 32 * seq + 32] = digest or _ZERO
        self.prevs[32 * seq : 32 * seq + 32] = prev or _ZERO
        ix = self._source_ix.setdefault(link.source, len(self.sources))
        if ix == len(self.sources):
            self.sources.append(link.source)
        self.source[seq], self.ref[seq] = ix, link.ref
        self.last = max(self.last, seq)
        if self.since_us is not None and link.at_us >= self.since_us:
            self.first_since = seq if self.first_since is None else min(self.first_since, seq)


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
        f"{table} id", int(row_id),
    )  # fmt: skip


def read_sqlite(path: Path, stitch: Stitch) -> Live:
    """The chained rows of a SQLite journal into ``stitch``, in one read transaction."""
    conn = schema.connect(path, readonly=True)
    try:
        conn.execute("BEGIN")
        for r in conn.execute(_SQ_LINKS):
            stitch.add(_link(r, int(r[4]), None))
        counter = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
        unchained = [str(r[0]) for r in conn.execute(_SQ_UNCHAINED)]
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        raise RuntimeError(f"not a journal with an audit chain ({exc})") from exc
    finally:
        conn.close()
    return Live(None if counter is None else (int(counter[0]), str(counter[1])), unchained)


_PG_BATCH = 10_000


async def read_postgres(dsn: str, node: str, stitch: Stitch) -> Live:
    """Node ``node``'s chained rows into ``stitch``, in one repeatable-read transaction
    (fetched in batches; hashed on a thread, off the event loop)."""

    def add(rows: list[asyncpg.Record]) -> None:
        for r in rows:
            stitch.add(_link(r, schema.to_micros(r["at"]), node))

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(_PG_LINKS, node)
            while rows := await cursor.fetch(_PG_BATCH):
                await asyncio.to_thread(add, rows)
            counter = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE node = $1", node)
            unchained = [str(r[0]) for r in await conn.fetch(_PG_UNCHAINED)]
    finally:
        await conn.close()
    return Live(None if counter is None else (int(counter[0]), str(counter[1])), unchained)


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
            where = (f"{path.name} line", number)
            if line.get("kind") == "request":
                for item in line["items"]:
                    for t in item["transitions"]:
                        c = t.get("chain")
                        if c is not None:
                            yield Link(
                                int(c["seq"]), "item", str(c["item_id"]), t["state"],
                                _micros(t["at"]), t["detail"], c["prev"], c["hash"], c["node"],
                                *where,
                            )  # fmt: skip
            elif line.get("kind") == "state_change" and line.get("seq") is not None:
                yield Link(
                    int(line["seq"]), line["change_kind"], line["subject"], line["state"],
                    _micros(line["at"]), line["detail"], line["prev_hash"], line["hash"],
                    line["node"], *where,
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


def check(stitch: Stitch, live: Live, *, node: str, recorded: Head | None = None) -> Report:
    """Walk the stitched links by seq, then the tail (module docstring).

    With ``stitch.since_us`` the walk starts at the first link made at or after
    that instant, trusting its ``prev_hash`` (older links need not be kept).
    """
    last = stitch.last
    head = Head(node, last, stitch.hash_of(last).hex() if last else GENESIS)
    start = 1 if stitch.since_us is None else (stitch.first_since or last + 1)
    brk = _walk(stitch, start, last)
    if brk is None:
        brk = _tail(stitch, live, head, recorded, start)
    if brk is None and live.unchained:
        brk = Break(
            0, live.unchained[0], "a row that records a change of state is outside the chain",
            "a seq and a hash", f"{len(live.unchained)} row(s) without",
        )  # fmt: skip
    first = start if start <= last else None
    return Report(brk is None, node, max(0, last - start + 1), first, head, recorded, brk)


def _walk(stitch: Stitch, start: int, last: int) -> Break | None:
    if start > last:
        return None
    prev = bytes.fromhex(GENESIS) if start == 1 else stitch.prev_of(start)
    present, clash, bad = stitch.present, stitch.clash, stitch.bad
    for seq in range(start, last + 1):
        if not present[seq]:
            return Break(seq, "-", "no row carries this seq (deleted)", f"a row with seq {seq}",
                         "none")  # fmt: skip
        digest = stitch.hash_of(seq)
        if seq in clash:
            where, other = clash[seq]
            return Break(seq, where, f"a second, different row with this seq"
                         f" ({stitch.where(seq)})", digest.hex(), other)  # fmt: skip
        if present[seq] == 2:
            stored, computed = bad.get(seq, ("?", "?"))
            return Break(seq, stitch.where(seq), "the row's content does not give its hash"
                         " (edited)", stored, computed)  # fmt: skip
        if stitch.prev_of(seq) != prev:
            return Break(seq, stitch.where(seq), "prev_hash is not the previous row's hash",
                         prev.hex(), stitch.prev_of(seq).hex())  # fmt: skip
        prev = digest
    return None


def _tail(
    stitch: Stitch, live: Live, head: Head, recorded: Head | None, start: int
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
    if recorded.seq >= max(start, 1):
        found = stitch.hash_of(recorded.seq).hex() if stitch.present[recorded.seq] else "none"
        if found != recorded.hash:
            return Break(recorded.seq, "recorded head",
                         "the row at the recorded head has another hash", recorded.hash,
                         found)  # fmt: skip
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
    since_us = None if since is None else schema.to_micros(since)
    only = node if backend == "postgres" else None  # PostgreSQL archives hold every node's
    stitch = Stitch(only_node=only, since_us=since_us)
    if backend == "postgres":
        live = await read_postgres(str(target), node, stitch)
    else:
        live = await asyncio.to_thread(read_sqlite, Path(target), stitch)
    hp = head_path(archive_dir, node)
    try:
        recorded = read_head(hp)
    except (ValueError, KeyError) as exc:
        bad = Break(0, hp.name, "the recorded head cannot be read", "a head file", str(exc))
        return Report(False, node, 0, None, Head(node, 0, GENESIS), None, bad)

    def archived() -> None:
        for link in read_archives(archive_dir):
            stitch.add(link)

    await asyncio.to_thread(archived)
    return check(stitch, live, node=node, recorded=recorded)


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
