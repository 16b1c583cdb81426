"""Idle mutual-TLS connections: the server process's memory per connection.

Run on purpose (never in the test suite); loopback only, stops by itself::

    python bench/bench_idle_tls.py [--connections 2000] [--stock]
    python bench/bench_idle_tls.py --connections 10000
    python bench/bench_idle_tls.py --connections 2000 --first-frame-kib 1024 --trim
    python bench/bench_idle_tls.py --connections 100 --large-frames 24 [--stock]

The server is the real ``Listener`` (mutual TLS, the dev PKI's server
certificate, client certificate required) in a process of its own, started
fresh (``spawn``) like gatewayd; it answers each frame with its length.
``gateway.net.tls_memory.bound_tls_buffers`` is called there first (one
read buffer per thread), unless ``--stock`` (asyncio's own 256 KiB read
buffer per connection: the "before" figure).  Client processes (2,500
connections each) open ``--connections`` connections, complete the
handshake and then send nothing (with ``--first-frame-kib K``: one frame of K
KiB each, answered, then nothing).

Printed: the server's RSS and PSS (``/proc/<pid>/smaps_rollup``) after a
warm-up (20 connections opened and closed), then with every connection open
and idle (the listener counts them after their handshake), and the growth
per connection in KiB.  ``--trace``: how much of that growth Python's
allocator traced (``tracemalloc``: Python objects and buffers; the rest is
OpenSSL's own memory and the allocator's slack), by source file.
``--trim``: ``malloc_trim(0)`` in the server before each reading, which
separates memory in use from freed memory glibc has kept.  With
``--large-frames K``, one more connection then sends K frames of
``--frame-mib`` MiB, each answered before the next, while the idle ones stay
open: MiB/s and the server's CPU ms per MiB (timings on a shared machine:
compare runs made together, alternating).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import math
import multiprocessing as mp
import os
import resource
import ssl
import sys
import tempfile
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's gateway, not an installed copy

from gateway.keys.devpki import DevPki, generate_dev_pki  # noqa: E402
from gateway.net.framing import HEADER_LEN, encode_frame, parse_header  # noqa: E402
from gateway.net.listener import ConnInfo, Listener, ListenerSpec  # noqa: E402
from gateway.net.tls import client_context, server_context  # noqa: E402
from gateway.net.tls_memory import bound_tls_buffers  # noqa: E402
from gateway.ops.logs import configure_logging  # noqa: E402

PER_HOLDER = 2500
WARMUP = 20
OPERATOR = ("C100000001", "op01")


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the children)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------- server


async def _length(body: bytes, _conn: ConnInfo) -> bytes:
    return b"%d" % len(body)


async def _no_bad_frame(_conn: ConnInfo, _reason: str) -> bytes | None:
    return None


def _snapshot_by_file(snap: tracemalloc.Snapshot) -> dict[str, int]:
    return {
        str(s.traceback[0].filename): s.size for s in snap.statistics("filename") if s.traceback
    }


def server_main(pki_dir: Path, stock: bool, trace: bool, trim: bool, pipe: Connection) -> None:
    """The listener process: answers ``status`` with its figures until ``stop``."""
    raise_nofile()
    configure_logging("warning", "console")  # not one line per connection
    applied = bound_tls_buffers() if not stock else False
    if trace:
        tracemalloc.start()

    async def serve() -> None:
        pki = DevPki.open(pki_dir)
        ctx = server_context(
            pki.server_cert, pki.server_key, client_cert="required", client_ca_paths=[pki.client_ca]
        )
        spec = ListenerSpec(
            name="idle",
            host="127.0.0.1",
            port=0,
            ssl=ctx,
            max_body=16 * 1_048_576,
            max_connections=100_000,
        )
        listener = Listener(spec, _length, _no_bad_frame)
        _, port = await listener.start()
        pipe.send((port, applied))
        loop = asyncio.get_running_loop()
        base: dict[str, int] = {}
        while (cmd := await loop.run_in_executor(None, pipe.recv)) != "stop":
            gc.collect()
            if trim:
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            traced = by_file = None
            if trace:
                snap = _snapshot_by_file(tracemalloc.take_snapshot())
                if cmd == "base":
                    base = snap
                traced = tracemalloc.get_traced_memory()[0]
                by_file = {f: n - base.get(f, 0) for f, n in snap.items()}
            pipe.send((listener.connections, traced, by_file))
        await listener.close()

    asyncio.run(serve())


# -------------------------------------------------------------------- clients


def _client_ctx(pki_dir: Path) -> ssl.SSLContext:
    pki = DevPki.open(pki_dir)
    key, cert = pki.client(*OPERATOR)
    return client_context(pki.server_ca, cert, key)


def holder_main(pki_dir: Path, port: int, n: int, first_kib: int, pipe: Connection) -> None:
    """Open ``n`` connections (each sends one ``first_kib`` frame if > 0), hold them until told."""
    bound_tls_buffers()  # the clients' memory is not measured; this spares the machine's

    async def hold() -> None:
        ctx, loop = _client_ctx(pki_dir), asyncio.get_running_loop()
        streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        failed: list[str] = []
        sem = asyncio.Semaphore(32)
        first = encode_frame(b"x" * first_kib * 1024) if first_kib else b""

        async def one() -> None:
            async with sem:
                try:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1",
                        port,
                        ssl=ctx,
                        server_hostname="localhost",
                        ssl_handshake_timeout=60,
                    )
                    streams.append((reader, writer))  # a StreamWriter closes when collected
                    if first:
                        writer.write(first)
                        header = await reader.readexactly(HEADER_LEN)
                        await reader.readexactly(parse_header(header, 99))
                except (OSError, asyncio.IncompleteReadError) as exc:
                    failed.append(repr(exc))

        await asyncio.gather(*(one() for _ in range(n)))
        pipe.send((len(streams), len(failed), failed[:2]))
        await loop.run_in_executor(None, pipe.recv)
        for _, writer in streams:
            writer.transport.abort()

    asyncio.run(hold())


async def _warm_up(ctx: ssl.SSLContext, port: int) -> None:
    for _ in range(WARMUP):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
        )
        writer.write(encode_frame(b"<warm/>"))
        await reader.readexactly(HEADER_LEN + 1)
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def _large_frames(ctx: ssl.SSLContext, port: int, k: int, mib: int) -> float:
    """MiB/s of ``k`` frames of ``mib`` MiB sent one at a time (best of three rounds)."""
    body = os.urandom(mib * 1_048_576)
    frame = encode_frame(body)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(k):
            writer.write(frame)
            await writer.drain()
            header = await reader.readexactly(HEADER_LEN)
            answer = await reader.readexactly(parse_header(header, 99))
            assert int(answer) == len(body), answer
        best = max(best, k * mib / (time.perf_counter() - t))
    writer.transport.abort()
    return best


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--stock", action="store_true", help="a read buffer per connection (before)")
    p.add_argument(
        "--first-frame-kib", type=int, default=0, help="each connection sends one frame first"
    )
    p.add_argument("--trace", action="store_true", help="tracemalloc in the server")
    p.add_argument("--trim", action="store_true", help="malloc_trim(0) before each reading")
    p.add_argument("--large-frames", type=int, default=0, help="K large frames after the idle run")
    p.add_argument("--frame-mib", type=int, default=4)
    return p


def _start_holders(
    args: argparse.Namespace, pki_dir: Path, port: int
) -> list[tuple[mp.process.BaseProcess, Connection]]:
    fork = mp.get_context("fork")
    holders = []
    procs = max(1, math.ceil(args.connections / PER_HOLDER))
    for k in range(procs):
        share = args.connections // procs + (1 if k < args.connections % procs else 0)
        parent, child = fork.Pipe()
        h = fork.Process(
            target=holder_main, args=(pki_dir, port, share, args.first_frame_kib, child)
        )
        h.start()
        holders.append((h, parent))
    return holders


def _measure(
    args: argparse.Namespace,
    pki_dir: Path,
    server: mp.process.BaseProcess,
    sp: Connection,
    holders: list[tuple[mp.process.BaseProcess, Connection]],
) -> None:
    pid = server.pid or 0
    port, applied = sp.recv()
    print(
        f"Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}; server pid {pid};"
        f" TLS read buffer: {'one per thread' if applied else 'one per connection (asyncio)'}"
    )
    ctx = _client_ctx(pki_dir)
    asyncio.run(_warm_up(ctx, port))
    sp.send("base")
    _, traced0, _ = sp.recv()
    rss0, pss0 = memory_kib(pid)
    t = time.monotonic()
    holders.extend(_start_holders(args, pki_dir, port))
    opened = 0
    for _, pipe in holders:
        up, nfail, sample = pipe.recv()
        opened += up
        if nfail:
            print(f"  {nfail} connections failed, e.g. {sample}")
    conns = 0
    for _ in range(600):  # the listener counts a connection once its session started
        sp.send("status")
        conns, traced, by_file = sp.recv()
        if conns >= opened:
            break
        time.sleep(0.1)
    rss1, pss1 = memory_kib(pid)
    print(
        f"  {conns} idle mutual-TLS connections open (clients: {opened})"
        f" in {time.monotonic() - t:.0f} s"
    )
    print(
        f"  server RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB,"
        f" PSS {pss0 / 1024:.0f} -> {pss1 / 1024:.0f} MiB"
    )
    if not conns:
        return
    print(
        f"  per connection: RSS {(rss1 - rss0) / conns:.1f} KiB,"
        f" PSS {(pss1 - pss0) / conns:.1f} KiB"
    )
    if args.trace:
        print(f"  traced by Python's allocator: {(traced - traced0) / 1024 / conns:.1f} KiB")
        for name, grown in sorted(by_file.items(), key=lambda kv: -kv[1])[:8]:
            print(f"    {grown / 1024 / conns:6.2f} KiB  {Path(name).name}")
    if args.large_frames:
        cpu0 = cpu_seconds(pid)
        rate = asyncio.run(_large_frames(ctx, port, args.large_frames, args.frame_mib))
        cpu = (cpu_seconds(pid) - cpu0) / (3 * args.large_frames * args.frame_mib) * 1000
        print(
            f"  {args.large_frames} x {args.frame_mib} MiB frames, one at a time:"
            f" {rate:.0f} MiB/s (best of 3 rounds); server CPU {cpu:.2f} ms per MiB"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    raise_nofile()
    need = args.connections + WARMUP + 100
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        print(f"RLIMIT_NOFILE below {need}: lower --connections or raise the hard limit")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-idle-tls-") as tmp:
        pki = generate_dev_pki(Path(tmp) / "pki")
        spawn = mp.get_context("spawn")
        sp, child = spawn.Pipe()
        server = spawn.Process(
            target=server_main,
            args=(pki.dir, args.stock, args.trace, args.trim, child),
            daemon=True,
        )
        server.start()
        holders: list[tuple[mp.process.BaseProcess, Connection]] = []
        try:
            _measure(args, pki.dir, server, sp, holders)
        finally:
            for _, pipe in holders:
                with contextlib.suppress(OSError):
                    pipe.send(None)
            for h, _ in holders:
                h.join(30)
                if h.is_alive():
                    h.terminate()
            with contextlib.suppress(OSError):
                sp.send("stop")
            server.join(30)
            if server.is_alive():
                server.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
