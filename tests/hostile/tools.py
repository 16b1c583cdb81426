"""What a hostile peer does, by hand, against the real daemon (corplink.md as the contract).

The hostile suite speaks raw bytes: it opens plain or TLS sockets, writes
frames (or broken ones), reads the daemon's one response frame and checks
its signature against the gateway's published response certificate (every
response is signed, corplink.md §8).  Hostile bodies start from a request
built and signed the way an outside developer does it
(``gateway.sim.erp.build_request`` + ``sign_enveloped``) and are then
changed as a tree or as bytes.

``Hostile`` bundles one running in-process daemon with its PKI and clock;
``serves`` is the check that follows every case: a well-behaved client
still gets 0000 for a signed PAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import DS_NS, SigningKey, load_signing_key, sign_enveloped
from gateway.net.framing import HEADER_LEN, encode_frame, parse_header
from gateway.net.tls import client_context
from gateway.server import Gateway
from gateway.sim.erp import NS, Payment, Reply, build_request, parse_reply, transfer_body
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_gateway,
)
from tests.integration.harness import payment as demo_payment

FRIDAY_10 = recent_friday_10()
REPO = Path(__file__).resolve().parents[2]
READ_LIMIT = 10.0
"""Generous bound on one read from the daemon, so that a bug fails instead of hanging."""

MIB = 1_048_576

#: Listeners of the hostile daemon: the defaults of corplink.md §1 ("tls", "tcp"),
#: a PAYROLL-sized one for multi-megabyte bodies, and short deadlines for the
#: slow-peer cases (a frame_timeout / handshake_timeout of 1 s instead of 30 / 10 s).
LISTENERS: list[dict[str, Any]] = [
    {"name": "tls", "port": 0, "tls": True, "client_cert": "optional"},
    {"name": "tcp", "port": 0, "tls": False, "client_cert": "none"},
    {"name": "big", "port": 0, "tls": False, "client_cert": "none", "max_body": 16 * MIB},
    {"name": "strict", "port": 0, "tls": False, "client_cert": "none", "frame_timeout": 1.0},
    {
        "name": "tls_strict",
        "port": 0,
        "tls": True,
        "client_cert": "optional",
        "handshake_timeout": 1.0,
    },
]

_ids = itertools.count(1)


def msg_id(prefix: str = "H") -> str:
    """A fresh MsgId ([A-Za-z0-9-]{1,35}, corplink.md §2)."""
    return f"{prefix}-{os.getpid()}-{next(_ids)}"[:35]


def payment(amount: str = "1.00", code: str = "104100000004") -> Payment:
    """The harness's demo PAY (C100000001 to ``code``), amount first as the hostile tests use it."""
    return demo_payment(code, amount)


def q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def to_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@dataclass
class Hostile:
    """One running daemon, its PKI and clock, and what a test needs to talk to it."""

    gw: Gateway
    pki: DevPki
    clock: BusinessClock

    @property
    def erp(self) -> Erp:
        return Erp(self.gw, self.pki)

    def addr(self, listener: str) -> tuple[str, int]:
        return self.gw.bound.listeners[listener]

    def signer(self, corp_id: str = "C100000001", oper_id: str = "op01") -> SigningKey:
        return load_signing_key(*self.pki.client(corp_id, oper_id))

    def now(self) -> datetime:
        return self.clock.now()

    # -- bodies ------------------------------------------------------------
    def pay_tree(
        self,
        mid: str | None = None,
        *,
        send_time: datetime | None = None,
        amount: str = "1.00",
        corp_id: str = "C100000001",
        oper_id: str = "op01",
        signer: SigningKey | None = None,
        sign: bool = True,
    ) -> etree._Element:
        """A PAY request tree, signed (``sign``) by ``signer`` (default: the operator's own key)."""
        root = build_request(
            "PAY",
            corp_id,
            oper_id,
            mid or msg_id(),
            send_time or self.now(),
            transfer_body(payment(amount)),
        )
        if sign:
            sign_enveloped(root, signer or self.signer(corp_id, oper_id))
        return root

    def signed_pay(self, mid: str | None = None, **kw: Any) -> bytes:
        return to_bytes(self.pay_tree(mid, **kw))

    # -- raw connections ---------------------------------------------------
    async def open(
        self, listener: str = "tcp", *, local_ip: str | None = None, tls_identity: bool = False
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.addr(listener)
        ctx = None
        if listener.startswith("tls"):
            kp, cp = self.pki.client("C100000001", "op01")
            ctx = client_context(
                self.pki.server_ca, cp if tls_identity else None, kp if tls_identity else None
            )
        return await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=ctx,
                server_hostname="localhost" if ctx else None,
                local_addr=(local_ip, 0) if local_ip else None,
            ),
            READ_LIMIT,
        )

    def parse(self, body: bytes) -> Reply:
        """Verify the response signature (corplink.md §8) and read it."""
        return parse_reply(body, self.erp.gateway_certs())

    async def read_reply(self, reader: asyncio.StreamReader, limit: float = READ_LIMIT) -> Reply:
        async with asyncio.timeout(limit):
            header = await reader.readexactly(HEADER_LEN)
            return self.parse(await reader.readexactly(parse_header(header, 16 * MIB)))

    async def exchange(self, body: bytes, listener: str = "tcp") -> Reply:
        """One framed body on a fresh connection; the reply; the connection is closed."""
        reader, writer = await self.open(listener)
        try:
            writer.write(encode_frame(body))
            await writer.drain()
            return await self.read_reply(reader)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def serves(self) -> None:
        """The daemon still serves a well-behaved client: a signed PAY over TLS → 0000."""
        c = await self.erp.client()
        try:
            r = await asyncio.wait_for(c.pay(msg_id("OK"), self.now(), payment()), READ_LIMIT)
            assert (r.ret_code, r.dup) == ("0000", False), r.ret_msg
        finally:
            await c.close()


async def closed_by_peer(reader: asyncio.StreamReader, limit: float = READ_LIMIT) -> bool:
    """True once the daemon closed the connection (EOF or reset) within ``limit`` seconds.

    Bytes that arrive first are discarded (there must be none where the
    caller expects a silent close; it checks ``reader`` itself then).
    """
    try:
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
    return True


async def eof_without_data(reader: asyncio.StreamReader, limit: float = READ_LIMIT) -> bytes:
    """Read until the daemon closes or ``limit`` passes; return what came (b"" for a
    silent close)."""
    got = bytearray()
    with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                got += chunk
    return bytes(got)


def assert_clean(reply: Reply, *secrets: str) -> None:
    """No internals in what reaches the client (corplink.md §8): no trace, path or secret."""
    raw = reply.raw.decode("utf-8", "replace")
    for word in ("Traceback", "lxml", "libxml", "Exception", tempfile.gettempdir(), *secrets):
        assert word not in raw, word


@contextlib.asynccontextmanager
async def hostile_daemon(
    tmp: Path, pki: DevPki, broker_url: str, extra: dict[str, Any] | None = None
) -> AsyncIterator[Hostile]:
    """The real daemon in-process, with the hostile listeners and a frozen business clock."""
    clock = BusinessClock(FRIDAY_10)
    over: dict[str, Any] = {"listeners": LISTENERS}
    for k, v in (extra or {}).items():
        over[k] = v
    cfg = gateway_config(tmp / "gw", pki, broker_url, over)
    async with running_gateway(cfg, clock) as gw:
        yield Hostile(gw, pki, clock)


# -- gatewayd as a subprocess (for peak-RSS measurements) ---------------------


class DaemonProcess:
    """``gatewayd`` as its own process, so that its memory can be read from /proc."""

    def __init__(self, tmp: Path, pki: DevPki, broker_url: str, overlay_extra: str = "") -> None:
        self.tmp = tmp
        self.pki = pki
        self.broker_url = broker_url
        self.overlay_extra = overlay_extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, tuple[str, int]] = {}
        self.log_path = tmp / "gatewayd.log"

    def start(self, workers: int = 2) -> None:
        ports = self.tmp / "ports.json"
        overlay = self.tmp / "gw.toml"
        overlay.write_text(
            f'environment = "test"\nstate_dir = "{self.tmp / "state"}"\n'
            f'[clock]\nstart = "{FRIDAY_10.isoformat()}"\n'
            f'[keys]\ndev_pki = false\ndir = "{self.pki.dir}"\n'
            f'[clearing]\nurl = "{self.broker_url}"\nclient_id = "gw-{self.tmp.name}"\n'
            '[observability]\nmetrics_port = 0\nlog_level = "error"\n'
            f"[workers]\nprocesses = {workers}\n"
            '[[listeners]]\nname = "tls"\nport = 0\ntls = true\nclient_cert = "optional"\n'
            '[[listeners]]\nname = "tcp"\nport = 0\ntls = false\nclient_cert = "none"\n'
            + self.overlay_extra,
            encoding="utf-8",
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "gateway.cli.gatewayd", "--config", str(overlay)),
                    *("--ports-file", str(ports)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,  # this checkout's gateway, whatever is installed
            )
        deadline = time.monotonic() + 60
        while not ports.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"gatewayd exited at start: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError("gatewayd not ready within 60 s")
            time.sleep(0.05)
        self.ports = {
            k: (v[0], int(v[1])) for k, v in json.loads(ports.read_text())["listeners"].items()
        }

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def peak_rss_kib(self) -> dict[str, int]:
        """VmHWM (peak resident set) of the daemon and each of its worker processes."""
        assert self.proc is not None
        out = {"main": vm_hwm(self.proc.pid)}
        for child in descendants(self.proc.pid):
            hwm = vm_hwm(child)
            if hwm:
                out[f"child {child}"] = hwm
        return out

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (the daemon's graceful stop), 30 s to exit, then SIGKILL. Shared with bench_flood.py."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def vm_hwm(pid: int) -> int:
    """VmHWM (peak resident set, KiB) of ``pid``; 0 once it has gone. Shared with bench_flood.py."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Descendants of ``pid`` (worker processes and the forkserver)."""
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        parents[int(d)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found
