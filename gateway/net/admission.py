"""Admission policies, cheapest first, sans-IO (docs/architecture.md §7, principle 4,
docs/protocol.md §8).

docs/protocol.md §8 orders the checks "frame (1001) → per-address rate and gateway
load (5001, 5002) → well-formed XML (1002) → schema → per-CorpId rate (5001)
→ signature …": a flood must be refused before it costs CPU.  This module
holds the per-address and per-CorpId state behind those decisions:

- ``on_connect``: a banned address, the per-address connection limit and the
  per-address accept rate (new connections per second) — the connection is
  closed at once, with no response (nothing has been read yet).
- ``on_frame``: per-address frames per second, before any parsing; the
  caller answers 5001 with ``RetryAfterMs`` (docs/protocol.md §8).
- ``on_corp``: requests per second per CorpId, after the schema and before
  the signature is verified (§8); 5001 with ``RetryAfterMs``.
- ``strike``: bad frames (1001), malformed XML (1002) and bad signatures
  (2001) count against the address; ``ban_after_strikes`` of them within
  ``ban_window`` seconds ban it for ``ban_seconds``.  ``strike`` returns True
  only for the strike that starts a ban, so the caller logs once per ban,
  never once per frame.

Nothing here touches a socket, asyncio or a clock (docs/architecture.md §8, habit 5): the
caller passes ``now`` from ``time.monotonic()``, and tests pass numbers.
Every decision carries one reason word from ``REASONS``: the metric label
and the log word.

Memory is bounded whatever the peers do.  Per-address and per-CorpId state
lives in LRU maps of at most ``max_tracked`` entries each; an address flood
(or CorpIds made up by unauthenticated clients: §8 checks the CorpId rate
before the signature) evicts the least recently seen idle entries.  An
address with open connections is never evicted (its connection count must
stay exact); those are bounded by the listeners' ``max_connections``.  Bans
live in their own map, also bounded by ``max_tracked``, so evicting an
address's rate state never lifts its ban; when that map is full, the ban
that ends first is dropped.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, fields
from typing import Final, NamedTuple

__all__ = [
    "REASONS",
    "Admission",
    "AdmissionConfig",
    "Decision",
    "TokenBucket",
]

REASONS: Final = frozenset({"banned", "conn_limit", "accept_rate", "ip_rate", "corp_rate"})
"""Every refusal reason this module returns (bounded metric labels, docs/architecture.md §8, habit
12)."""

_EVICT_SCAN: Final = 64
"""Entries looked at per insertion when the address map is full (amortised O(1))."""


@dataclass(frozen=True)
class AdmissionConfig:
    """The ``[admission]`` table: limits per source address and per CorpId.

    Rates are per second; each bucket starts full.  The accept bucket's
    burst equals its rate.  Defaults are sized for a corporate ERP that
    pipelines (docs/protocol.md §1) from a handful of addresses.
    """

    max_conns_per_ip: int = 50
    """Open connections per source address; one more is closed at once."""
    accept_rate_per_ip: float = 20.0
    """New connections per second per address (token bucket, burst = rate)."""
    frame_rate_per_ip: float = 500.0
    """Frames per second per address, checked before parsing (5001, docs/protocol.md §8)."""
    frame_burst_per_ip: float = 1000.0
    corp_rate: float = 200.0
    """Requests per second per CorpId, before signature verification (5001, §8)."""
    corp_burst: float = 400.0
    ban_after_strikes: int = 20
    """Bad frames (1001), malformed XML (1002) or bad signatures (2001) within
    ``ban_window`` seconds that ban the address."""
    ban_window: float = 60.0
    ban_seconds: float = 300.0
    max_tracked: int = 100_000
    """Most addresses (and, separately, CorpIds and bans) held in memory."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = f"admission.{f.name} must be a number"
                raise TypeError(msg)
            if not value > 0 or not math.isfinite(value):
                msg = f"admission.{f.name} must be positive"
                raise ValueError(msg)
        if self.frame_burst_per_ip < 1 or self.corp_burst < 1:
            msg = "admission.frame_burst_per_ip and admission.corp_burst must be at least 1"
            raise ValueError(msg)


class Decision(NamedTuple):
    """The outcome of one admission check.

    ``reason`` is ``None`` when admitted, else a word of ``REASONS``.
    ``retry_after_ms`` is set for the rate refusals (the client's
    ``RetryAfterMs``, docs/protocol.md §8) and, for ``"banned"``, says when the
    ban ends (for the log: a banned peer gets no response).
    """

    ok: bool
    reason: str | None
    retry_after_ms: int | None


ADMIT: Final = Decision(ok=True, reason=None, retry_after_ms=None)
CONN_LIMIT: Final = Decision(ok=False, reason="conn_limit", retry_after_ms=None)


def _ms(seconds: float) -> int:
    """Whole milliseconds, rounded up and at least 1 (a 0 would invite an instant retry)."""
    # round first: 0.001 s * 1000 is 1.0000000000000009 in binary floating point
    return max(1, math.ceil(round(seconds * 1000.0, 6)))


class TokenBucket:
    """``rate`` tokens per second up to ``burst``, starting full; time is passed in.

    ``take`` answers 0.0 when a token was taken, else the seconds until one
    will be there.  A clock that steps back is treated as no time passing.
    """

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> float:
        elapsed = now - self._at
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class _Peer:
    """What is known about one source address."""

    __slots__ = ("accept", "conns", "frames", "strikes")

    def __init__(self, cfg: AdmissionConfig, now: float) -> None:
        self.conns = 0
        self.accept = TokenBucket(cfg.accept_rate_per_ip, cfg.accept_rate_per_ip, now)
        self.frames = TokenBucket(cfg.frame_rate_per_ip, cfg.frame_burst_per_ip, now)
        self.strikes: deque[float] | None = None  # created at the first strike


class Admission:
    """Per-address and per-CorpId admission state (see the module docstring)."""

    def __init__(self, config: AdmissionConfig) -> None:
        self.config = config
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._corps: OrderedDict[str, TokenBucket] = OrderedDict()
        self._bans: OrderedDict[str, float] = OrderedDict()  # ip → until, in ban order
        self._open = 0
        self._evicted = 0
        self._bans_started = 0
        self._strikes = 0

    # -- connections -------------------------------------------------------

    def on_connect(self, ip: str, now: float) -> Decision:
        """A new TCP connection from ``ip``; on ``ok`` the caller must later call
        ``on_disconnect`` exactly once.  Refused: ``banned``, ``conn_limit``,
        ``accept_rate`` (checked in that order; a refused connection takes no
        accept token)."""
        banned = self._ban_left(ip, now)
        if banned is not None:
            return banned
        peer = self._peer(ip, now)
        if peer.conns >= self.config.max_conns_per_ip:
            return CONN_LIMIT
        wait = peer.accept.take(now)
        if wait:
            return Decision(ok=False, reason="accept_rate", retry_after_ms=_ms(wait))
        peer.conns += 1
        self._open += 1
        return ADMIT

    def on_disconnect(self, ip: str) -> None:
        """An admitted connection from ``ip`` closed."""
        peer = self._peers.get(ip)
        if peer is not None and peer.conns > 0:
            peer.conns -= 1
            self._open -= 1

    # -- frames and requests -----------------------------------------------

    def on_frame(self, ip: str, now: float) -> Decision:
        """A complete frame from ``ip``, before parsing: ``banned`` or ``ip_rate``."""
        banned = self._ban_left(ip, now)
        if banned is not None:
            return banned
        wait = self._peer(ip, now).frames.take(now)
        if wait:
            return Decision(ok=False, reason="ip_rate", retry_after_ms=_ms(wait))
        return ADMIT

    def on_corp(self, corp_id: str, now: float) -> Decision:
        """A schema-valid request for ``corp_id``, before its signature: ``corp_rate``."""
        bucket = self._corps.get(corp_id)
        if bucket is None:
            cfg = self.config
            bucket = TokenBucket(cfg.corp_rate, cfg.corp_burst, now)
            self._corps[corp_id] = bucket
            if len(self._corps) > cfg.max_tracked:
                self._corps.popitem(last=False)
                self._evicted += 1
        else:
            self._corps.move_to_end(corp_id)
        wait = bucket.take(now)
        if wait:
            return Decision(ok=False, reason="corp_rate", retry_after_ms=_ms(wait))
        return ADMIT

    async def check(
        self, ip: str, corp_id: str | None, now: float
    ) -> tuple[Decision, Decision | None]:
        """``on_frame``, then ``on_corp`` when the frame is admitted and names a CorpId:
        the pipeline's one admission question per frame (asked across processes
        by a front, so it is a coroutine)."""
        d = self.on_frame(ip, now)
        if not d.ok or corp_id is None:
            return d, None
        return d, self.on_corp(corp_id, now)

    # -- strikes and bans --------------------------------------------------

    def strike(self, ip: str, now: float, reason: str) -> bool:
        """Count one bad frame / malformed body / bad signature against ``ip``.

        Returns True when this strike starts a ban (log it then, once).
        Strikes against an address already banned change nothing.
        ``reason`` is the caller's word for the log; it does not change the
        count (every strike weighs the same).
        """
        del reason  # the caller's log and metric word; every strike weighs the same
        self._strikes += 1
        if self._ban_left(ip, now) is not None:
            return False
        cfg = self.config
        peer = self._peer(ip, now)
        strikes = peer.strikes
        if strikes is None:
            strikes = peer.strikes = deque(maxlen=cfg.ban_after_strikes)
        strikes.append(now)
        while strikes and strikes[0] <= now - cfg.ban_window:
            strikes.popleft()
        if len(strikes) < cfg.ban_after_strikes:
            return False
        peer.strikes = None
        self._ban(ip, now + cfg.ban_seconds)
        return True

    def banned(self, ip: str, now: float) -> bool:
        """True while ``ip`` is banned."""
        return self._ban_left(ip, now) is not None

    # -- metrics -----------------------------------------------------------

    def snapshot(self) -> dict[str, int]:
        """Gauges for metrics: sizes of the maps and counts since start."""
        return {
            "tracked_addresses": len(self._peers),
            "tracked_corps": len(self._corps),
            "active_bans": len(self._bans),
            "open_connections": self._open,
            "strikes": self._strikes,
            "bans_started": self._bans_started,
            "evicted": self._evicted,
        }

    # -- internals ---------------------------------------------------------

    def _ban_left(self, ip: str, now: float) -> Decision | None:
        bans = self._bans
        # ban_seconds is one value, so insertion order is expiry order: drop
        # the bans that ended from the old end (amortised O(1)).
        while bans:
            first, ends = next(iter(bans.items()))
            if now < ends:
                break
            del bans[first]
        until = bans.get(ip)
        if until is None or now >= until:
            return None
        return Decision(ok=False, reason="banned", retry_after_ms=_ms(until - now))

    def _ban(self, ip: str, until: float) -> None:
        self._bans_started += 1
        self._bans[ip] = until
        if len(self._bans) > self.config.max_tracked:
            self._bans.popitem(last=False)  # the ban that ends first

    def _peer(self, ip: str, now: float) -> _Peer:
        peer = self._peers.get(ip)
        if peer is not None:
            self._peers.move_to_end(ip)
            return peer
        peer = _Peer(self.config, now)
        self._peers[ip] = peer
        if len(self._peers) > self.config.max_tracked:
            self._evict(keep=ip)
        return peer

    def _evict(self, keep: str) -> None:
        """Drop least recently seen addresses without open connections.

        Entries with open connections found at the old end are moved to the
        new end (they are in use), so each insertion looks at a bounded
        number of entries.  If all of those are in use the map stays over
        its bound for now; open connections bound it (``max_connections``).
        """
        peers = self._peers
        for _ in range(min(_EVICT_SCAN, len(peers))):
            if len(peers) <= self.config.max_tracked:
                return
            ip, peer = next(iter(peers.items()))
            if peer.conns or ip == keep:
                peers.move_to_end(ip)
                continue
            del peers[ip]
            self._evicted += 1
