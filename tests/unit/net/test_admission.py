"""Admission policies (gateway.net.admission): table-driven playbooks, time passed in.

Each playbook is a config and a list of steps ``(event, key, at, expected)``
run against one fresh ``Admission``, like mitmproxy's layer playbooks: the
events are what the listener and pipeline will report, the expectations are
the decisions a peer would observe (closed at once, 5001 with RetryAfterMs,
banned).  No sleeps: ``at`` is the monotonic time the caller would pass.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.net.admission import REASONS, Admission, AdmissionConfig, Decision

OK = Decision(ok=True, reason=None, retry_after_ms=None)
ANY_RETRY = -1


def refused(reason: str, retry_after_ms: int | None = ANY_RETRY) -> tuple[str, int | None]:
    return (reason, retry_after_ms)


@dataclass(frozen=True)
class Step:
    event: str  # connect | disconnect | frame | corp | strike | banned
    key: str
    at: float = 0.0
    expect: Any = OK


def connect(ip: str, at: float = 0.0, expect: Any = OK) -> Step:
    return Step("connect", ip, at, expect)


def disconnect(ip: str) -> Step:
    return Step("disconnect", ip, expect=None)


def frame(ip: str, at: float = 0.0, expect: Any = OK) -> Step:
    return Step("frame", ip, at, expect)


def corp(corp_id: str, at: float = 0.0, expect: Any = OK) -> Step:
    return Step("corp", corp_id, at, expect)


def strike(ip: str, at: float, starts_ban: bool = False) -> Step:
    return Step("strike", ip, at, starts_ban)


def banned(ip: str, at: float, expect: bool) -> Step:
    return Step("banned", ip, at, expect)


def play(adm: Admission, steps: list[Step]) -> None:
    for n, step in enumerate(steps):
        where = f"step {n}: {step}"
        if step.event == "disconnect":
            adm.on_disconnect(step.key)
            continue
        if step.event == "strike":
            assert adm.strike(step.key, step.at, "bad_frame") is step.expect, where
            continue
        if step.event == "banned":
            assert adm.banned(step.key, step.at) is step.expect, where
            continue
        check = {"connect": adm.on_connect, "frame": adm.on_frame, "corp": adm.on_corp}
        got = check[step.event](step.key, step.at)
        if step.expect == OK:
            assert got == OK, where
            continue
        reason, retry = step.expect
        assert (got.ok, got.reason) == (False, reason), where
        assert got.reason in REASONS, where
        if retry == ANY_RETRY:
            assert got.retry_after_ms is not None, where
            assert got.retry_after_ms >= 1, where
        else:
            assert got.retry_after_ms == retry, where


A, B = "192.0.2.1", "192.0.2.2"
V6 = "2001:db8::1"

PLAYBOOKS: dict[str, tuple[AdmissionConfig, list[Step]]] = {
    "connection limit per address, others unaffected, freed on disconnect": (
        AdmissionConfig(max_conns_per_ip=2),
        [
            connect(A),
            connect(A),
            connect(A, expect=refused("conn_limit", None)),
            connect(B),
            connect(V6),
            disconnect(A),
            connect(A),
            connect(A, expect=refused("conn_limit", None)),
        ],
    ),
    "a refused connection takes no accept token": (
        AdmissionConfig(max_conns_per_ip=1, accept_rate_per_ip=2.0),
        [
            connect(A),
            *[connect(A, expect=refused("conn_limit", None)) for _ in range(10)],
            disconnect(A),
            connect(A),  # the second of the burst of 2
            disconnect(A),
            connect(A, expect=refused("accept_rate", 500)),
        ],
    ),
    "accept rate: burst = rate, refills with time": (
        AdmissionConfig(accept_rate_per_ip=4.0),
        [
            *[connect(A, 10.0) for _ in range(4)],
            connect(A, 10.0, refused("accept_rate", 250)),
            connect(A, 10.1, refused("accept_rate", 150)),
            connect(A, 10.25),
            connect(B, 10.25),
        ],
    ),
    "frame rate per address: burst, then 5001 with RetryAfterMs": (
        AdmissionConfig(frame_rate_per_ip=10.0, frame_burst_per_ip=3.0),
        [
            frame(A),
            frame(A),
            frame(A),
            frame(A, 0.0, refused("ip_rate", 100)),
            frame(A, 0.05, refused("ip_rate", 50)),
            frame(B, 0.05),
            frame(A, 0.1),
            frame(A, 0.1, refused("ip_rate", 100)),
            frame(A, 100.0),  # a long pause refills to the burst, not beyond
            frame(A, 100.0),
            frame(A, 100.0),
            frame(A, 100.0, refused("ip_rate", 100)),
        ],
    ),
    "per-CorpId rate, other corporates unaffected": (
        AdmissionConfig(corp_rate=1.0, corp_burst=2.0),
        [
            corp("C100000001"),
            corp("C100000001"),
            corp("C100000001", 0.0, refused("corp_rate", 1000)),
            corp("C100000001", 0.999, refused("corp_rate", 1)),
            corp("C100000002", 0.5),
            corp("C100000001", 1.0),
        ],
    ),
    "retry_after_ms is rounded up, never 0": (
        AdmissionConfig(frame_rate_per_ip=3.0, frame_burst_per_ip=1.0),
        [
            frame(A),
            frame(A, 0.0, refused("ip_rate", 334)),
            frame(A, 0.3333333, refused("ip_rate", 1)),
        ],
    ),
    "strikes within the window ban once, for ban_seconds": (
        AdmissionConfig(ban_after_strikes=3, ban_window=10.0, ban_seconds=60.0),
        [
            connect(A, 0.0),
            strike(A, 0.0),
            strike(A, 1.0),
            banned(A, 1.5, expect=False),
            strike(A, 2.0, starts_ban=True),
            banned(A, 2.0, expect=True),
            connect(A, 2.0, refused("banned", 60_000)),
            frame(A, 3.0, refused("banned", 59_000)),
            strike(A, 4.0),  # already banned: no second ban, no second log line
            strike(A, 5.0),
            strike(A, 6.0),
            connect(B, 6.0),
            frame(B, 6.0),
            banned(A, 61.999, expect=True),
            banned(A, 62.0, expect=False),
            connect(A, 62.0),
            frame(A, 62.0),
            # the strikes counted before the ban are gone: three new ones are needed
            strike(A, 63.0),
            strike(A, 64.0),
            strike(A, 65.0, starts_ban=True),
        ],
    ),
    "strikes further apart than the window never ban": (
        AdmissionConfig(ban_after_strikes=3, ban_window=10.0),
        [
            *[strike(A, 10.0 * i) for i in range(20)],
            banned(A, 200.0, expect=False),
        ],
    ),
    "a ban is per address": (
        AdmissionConfig(ban_after_strikes=1, ban_seconds=5.0),
        [
            strike(A, 0.0, starts_ban=True),
            strike(V6, 0.0, starts_ban=True),
            banned(A, 1.0, expect=True),
            banned(B, 1.0, expect=False),
            connect(B, 1.0),
            connect(V6, 1.0, refused("banned", 4000)),
        ],
    ),
    "a clock that steps back gains no tokens and does not crash": (
        AdmissionConfig(frame_rate_per_ip=1.0, frame_burst_per_ip=1.0),
        [
            frame(A, 100.0),
            frame(A, 50.0, refused("ip_rate", 1000)),
            frame(A, 100.5, refused("ip_rate", 500)),
            frame(A, 101.0),
        ],
    ),
    "disconnect of an unknown address is harmless": (
        AdmissionConfig(max_conns_per_ip=1),
        [disconnect(A), disconnect(A), connect(A), connect(A, expect=refused("conn_limit", None))],
    ),
}


@pytest.mark.parametrize("name", list(PLAYBOOKS))
def test_playbook(name: str) -> None:
    cfg, steps = PLAYBOOKS[name]
    play(Admission(cfg), steps)


def test_one_log_line_per_ban_however_many_bad_frames() -> None:
    adm = Admission(AdmissionConfig(ban_after_strikes=20, ban_window=60.0, ban_seconds=300.0))
    starts = [adm.strike(A, i * 0.001, "bad_frame") for i in range(10_000)]
    assert starts.count(True) == 1
    assert starts.index(True) == 19
    snap = adm.snapshot()
    assert (snap["bans_started"], snap["active_bans"], snap["strikes"]) == (1, 1, 10_000)


def test_snapshot_counts_open_connections_and_bans() -> None:
    adm = Admission(AdmissionConfig(ban_after_strikes=1, ban_seconds=10.0))
    for ip in (A, A, B):
        assert adm.on_connect(ip, 0.0).ok
    adm.on_disconnect(A)
    adm.strike("198.51.100.7", 0.0, "bad_signature")
    snap = adm.snapshot()
    assert snap["open_connections"] == 2
    assert snap["tracked_addresses"] == 3
    assert snap["active_bans"] == 1
    adm.on_frame(A, 11.0)  # any later call lets the ended ban go
    assert adm.snapshot()["active_bans"] == 0


# -- bounded memory under floods ----------------------------------------------


def _address(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def test_address_flood_of_200000_stays_within_max_tracked() -> None:
    cfg = AdmissionConfig()  # max_tracked 100,000
    adm = Admission(cfg)
    for i in range(200_000):
        ip = _address(i)
        assert adm.on_connect(ip, i * 1e-5).ok
        assert adm.on_frame(ip, i * 1e-5).ok
        adm.on_disconnect(ip)
    snap = adm.snapshot()
    assert snap["tracked_addresses"] == cfg.max_tracked
    assert snap["evicted"] == 200_000 - cfg.max_tracked
    assert snap["open_connections"] == 0


def test_address_flood_memory_stops_growing_at_max_tracked() -> None:
    """Once full, more addresses cost no more memory: each one evicts another."""

    def flood(adm: Admission, first: int, last: int) -> None:
        for i in range(first, last):
            ip = _address(i)
            adm.on_connect(ip, 0.0)
            adm.strike(ip, 0.0, "bad_frame")
            adm.strike(ip, 0.0, "bad_frame")  # every address banned: bans are bounded too
            adm.on_disconnect(ip)

    adm = Admission(AdmissionConfig(max_tracked=1_000, ban_after_strikes=2))
    flood(adm, 0, 180_000)  # steady state
    tracemalloc.start()
    try:
        flood(adm, 180_000, 200_000)
        grown, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    snap = adm.snapshot()
    assert snap["tracked_addresses"] <= 1_000
    assert snap["active_bans"] <= 1_000
    assert snap["bans_started"] == 200_000
    # what survives of the last 20,000 is at most 1,000 addresses and 1,000 bans
    # (~0.5 MB measured); unbounded, those 20,000 would hold ~20 MB
    assert grown < 2 * 1024 * 1024, grown


def test_corpid_flood_stays_within_max_tracked() -> None:
    adm = Admission(AdmissionConfig(max_tracked=500, corp_rate=1.0, corp_burst=1.0))
    for i in range(200_000):
        assert adm.on_corp(f"X{i}", 0.0).ok
    assert adm.snapshot()["tracked_corps"] == 500


def test_addresses_with_open_connections_are_never_evicted() -> None:
    adm = Admission(AdmissionConfig(max_tracked=10, max_conns_per_ip=1))
    holders = [f"172.16.0.{i}" for i in range(10)]
    for ip in holders:
        assert adm.on_connect(ip, 0.0).ok
    for i in range(5_000):
        ip = _address(i)
        assert adm.on_connect(ip, 0.0).ok
        adm.on_disconnect(ip)
    # the limit still holds for them: their count was kept exactly
    for ip in holders:
        assert adm.on_connect(ip, 1.0).reason == "conn_limit"
        adm.on_disconnect(ip)
    assert adm.snapshot()["open_connections"] == 0
    assert adm.snapshot()["tracked_addresses"] <= 10 + 1


def test_a_ban_survives_eviction_of_the_address_state() -> None:
    adm = Admission(AdmissionConfig(max_tracked=100, ban_after_strikes=1, ban_seconds=60.0))
    assert adm.strike(A, 0.0, "bad_signature")
    for i in range(10_000):
        adm.on_connect(_address(i), 1.0)
        adm.on_disconnect(_address(i))
    assert adm.on_connect(A, 2.0).reason == "banned"


# -- a property: bookkeeping stays exact whatever the order of events ----------

_IPS = st.sampled_from([A, B, V6, "10.0.0.1", "10.0.0.2"])
_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["connect", "disconnect", "frame", "corp", "strike"]),
        _IPS,
        st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
    ),
    max_size=80,
)


@settings(max_examples=100, deadline=None, database=None)
@given(events=_EVENTS, max_tracked=st.integers(min_value=1, max_value=4))
def test_open_connection_count_is_exact(
    events: list[tuple[str, str, float]], max_tracked: int
) -> None:
    cfg = AdmissionConfig(
        max_conns_per_ip=3, accept_rate_per_ip=5.0, ban_after_strikes=4, max_tracked=max_tracked
    )
    adm = Admission(cfg)
    now = 0.0
    held: dict[str, int] = {}
    peak_holders = 0
    for event, ip, dt in events:
        now += dt
        if event == "connect":
            d = adm.on_connect(ip, now)
            assert d.ok == (d.reason is None)
            assert d.ok or d.reason in REASONS
            if d.ok:
                held[ip] = held.get(ip, 0) + 1
                assert held[ip] <= cfg.max_conns_per_ip
        elif event == "disconnect":
            if held.get(ip):
                held[ip] -= 1
                adm.on_disconnect(ip)
        elif event == "frame":
            d = adm.on_frame(ip, now)
            assert d.ok or d.reason in {"banned", "ip_rate"}
        elif event == "corp":
            d = adm.on_corp(ip, now)
            assert d.ok or d.reason == "corp_rate"
        else:
            adm.strike(ip, now, "bad_frame")
        snap = adm.snapshot()
        assert snap["open_connections"] == sum(held.values())
        peak_holders = max(peak_holders, sum(1 for n in held.values() if n))
        # over the bound only by addresses that held connections (never evicted)
        assert snap["tracked_addresses"] <= max(max_tracked, peak_holders + 1)
        assert snap["tracked_corps"] <= max_tracked


# -- configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_conns_per_ip", 0, ValueError),
        ("accept_rate_per_ip", -1.0, ValueError),
        ("frame_rate_per_ip", float("nan"), ValueError),
        ("corp_rate", float("inf"), ValueError),
        ("frame_burst_per_ip", 0.5, ValueError),
        ("ban_after_strikes", True, TypeError),
        ("ban_window", "60", TypeError),
        ("max_tracked", 0, ValueError),
    ],
)
def test_config_refuses_nonsense_naming_the_key(field: str, value: object, error: type) -> None:
    with pytest.raises(error, match=f"admission.{field}"):
        AdmissionConfig(**{field: value})  # type: ignore[arg-type]


def test_defaults_are_the_documented_ones() -> None:
    cfg = AdmissionConfig()
    assert (cfg.max_conns_per_ip, cfg.accept_rate_per_ip) == (50, 20.0)
    assert (cfg.frame_rate_per_ip, cfg.frame_burst_per_ip) == (500.0, 1000.0)
    assert (cfg.corp_rate, cfg.corp_burst) == (200.0, 400.0)
    assert (cfg.ban_after_strikes, cfg.ban_window, cfg.ban_seconds) == (20, 60.0, 300.0)
    assert cfg.max_tracked == 100_000
