"""One /metrics for a core and its fronts: sums, gauge rules, dead fronts, hostile snapshots.

Each process is a real prometheus_client registry with the same metric names; what is
checked is what Prometheus would read: ``generate_latest`` of the merge, parsed back.
"""

from __future__ import annotations

import pickle
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from gateway.ops import metrics
from gateway.ops.metrics_merge import GAUGE_RULES, FrontMetrics, snapshot

Series = tuple[str, frozenset[tuple[str, str]]]


@dataclass
class Process:
    """One process's registry with a few of the gateway's metrics."""

    registry: CollectorRegistry
    requests: Counter
    stage: Histogram
    open: Gauge
    link_up: Gauge
    lifecycle: Gauge


def process() -> Process:
    r = CollectorRegistry(auto_describe=True)
    return Process(
        registry=r,
        requests=Counter(
            "gateway_requests_total", "Requests", ["trn_code", "ret_code"], registry=r
        ),
        stage=Histogram(
            "gateway_stage_seconds", "Stages", ["stage"], buckets=(0.01, 0.1, 1.0), registry=r
        ),
        open=Gauge("gateway_connections_open", "Open", ["listener"], registry=r),
        link_up=Gauge("gateway_clearing_link_up", "Link", registry=r),
        lifecycle=Gauge("gateway_lifecycle_state", "Lifecycle", ["state"], registry=r),
    )


def scrape(collector: FrontMetrics) -> dict[Series, float]:
    """What Prometheus reads: every sample of the exposition, by (name, labels)."""
    text = generate_latest(collector).decode()
    out: dict[Series, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def series(name: str, **labels: str) -> Series:
    return name, frozenset(labels.items())


@pytest.fixture
def core() -> Process:
    return process()


@pytest.fixture
def fronts(core: Process) -> FrontMetrics:
    return FrontMetrics(core.registry)


def push(fronts: FrontMetrics, front_id: int, p: Process) -> None:
    fronts.update(front_id, snapshot(p.registry))


def test_counters_sum_core_and_every_front(core: Process, fronts: FrontMetrics) -> None:
    a, b = process(), process()
    core.requests.labels("PAY", "0000").inc(1)
    a.requests.labels("PAY", "0000").inc(10)
    b.requests.labels("PAY", "0000").inc(100)
    a.requests.labels("PAY", "2001").inc(2)
    b.requests.labels("PAY", "2001").inc(3)
    push(fronts, 1, a)
    push(fronts, 2, b)
    got = scrape(fronts)
    assert got[series("gateway_requests_total", trn_code="PAY", ret_code="0000")] == 111
    assert got[series("gateway_requests_total", trn_code="PAY", ret_code="2001")] == 5
    assert not any(name.endswith("_created") for name, _ in got)


def test_histogram_buckets_count_and_sum_add_up(core: Process, fronts: FrontMetrics) -> None:
    a, b = process(), process()
    core.stage.labels("journal").observe(0.5)
    a.stage.labels("journal").observe(0.005)
    a.stage.labels("journal").observe(0.05)
    b.stage.labels("journal").observe(0.005)
    b.stage.labels("journal").observe(5.0)
    push(fronts, 1, a)
    push(fronts, 2, b)
    got = scrape(fronts)
    buckets = {
        le: got[series("gateway_stage_seconds_bucket", stage="journal", le=le)]
        for le in ("0.01", "0.1", "1.0", "+Inf")
    }
    assert buckets == {"0.01": 2, "0.1": 3, "1.0": 4, "+Inf": 5}
    assert got[series("gateway_stage_seconds_count", stage="journal")] == 5
    assert got[series("gateway_stage_seconds_sum", stage="journal")] == pytest.approx(5.56)


def test_gauge_rules_sum_what_fronts_own_and_keep_the_cores_state(
    core: Process, fronts: FrontMetrics
) -> None:
    a, b = process(), process()
    a.open.labels("corp").set(3)
    b.open.labels("corp").set(4)
    core.link_up.set(1)
    a.link_up.set(0)  # a front's own copy says nothing about the core's link
    b.link_up.set(7)
    core.lifecycle.labels("ready").set(1)
    a.lifecycle.labels("ready").set(1)
    a.lifecycle.labels("starting").set(1)
    push(fronts, 1, a)
    push(fronts, 2, b)
    got = scrape(fronts)
    assert got[series("gateway_connections_open", listener="corp")] == 7
    assert got[series("gateway_clearing_link_up")] == 1
    assert got[series("gateway_lifecycle_state", state="ready")] == 1
    assert series("gateway_lifecycle_state", state="starting") not in got


def test_a_series_only_one_front_has_appears(core: Process, fronts: FrontMetrics) -> None:
    a, b = process(), process()
    a.requests.labels("MT101", "0000").inc(4)
    b.stage.labels("verify").observe(0.05)
    b.open.labels("corp_tls").set(2)
    push(fronts, 1, a)
    push(fronts, 2, b)
    got = scrape(fronts)
    assert got[series("gateway_requests_total", trn_code="MT101", ret_code="0000")] == 4
    assert got[series("gateway_stage_seconds_bucket", stage="verify", le="0.01")] == 0
    assert got[series("gateway_stage_seconds_bucket", stage="verify", le="0.1")] == 1
    assert got[series("gateway_stage_seconds_count", stage="verify")] == 1
    assert got[series("gateway_connections_open", listener="corp_tls")] == 2


def test_a_forgotten_fronts_counters_never_go_back(core: Process, fronts: FrontMetrics) -> None:
    a, b = process(), process()
    key = series("gateway_requests_total", trn_code="PAY", ret_code="0000")
    count = series("gateway_stage_seconds_count", stage="journal")
    a.requests.labels("PAY", "0000").inc(10)
    a.stage.labels("journal").observe(0.05)
    a.open.labels("corp").set(5)
    b.requests.labels("PAY", "0000").inc(1)
    b.open.labels("corp").set(1)
    push(fronts, 1, a)
    push(fronts, 2, b)
    assert scrape(fronts)[key] == 11

    fronts.forget(1)
    after = scrape(fronts)
    assert after[key] == 11
    assert after[count] == 1
    assert after[series("gateway_connections_open", listener="corp")] == 1  # its 5 sockets died
    assert fronts.fronts == {2}

    # A new front under the same id starts from zero and adds on top.
    fresh = process()
    fresh.requests.labels("PAY", "0000").inc(2)
    push(fronts, 1, fresh)
    assert scrape(fronts)[key] == 13
    fronts.forget(1)
    fronts.forget(1)  # twice: nothing more to fold
    assert scrape(fronts)[key] == 13


def test_a_restart_under_the_same_id_without_forget_keeps_the_total(
    core: Process, fronts: FrontMetrics
) -> None:
    key = series("gateway_requests_total", trn_code="PAY", ret_code="0000")
    old = process()
    old.requests.labels("PAY", "0000").inc(50)
    push(fronts, 1, old)
    assert scrape(fronts)[key] == 50
    new = process()
    new.requests.labels("PAY", "0000").inc(3)
    push(fronts, 1, new)
    assert scrape(fronts)[key] == 53


def test_updates_between_scrapes_count_once(core: Process, fronts: FrontMetrics) -> None:
    a = process()
    key = series("gateway_requests_total", trn_code="PAY", ret_code="0000")
    for _ in range(3):
        a.requests.labels("PAY", "0000").inc()
        push(fronts, 1, a)
    assert scrape(fronts)[key] == 3
    assert scrape(fronts)[key] == 3


def test_snapshot_leaves_out_core_only_gauges_and_created(core: Process) -> None:
    a = process()
    a.requests.labels("PAY", "0000").inc()
    a.link_up.set(1)
    a.open.labels("corp").set(1)
    families = pickle.loads(snapshot(a.registry))  # noqa: S301 - our own bytes
    assert set(families) == {
        "gateway_requests",
        "gateway_stage_seconds",
        "gateway_connections_open",
    }
    typ, _doc, samples = families["gateway_requests"]
    assert typ == "counter"
    assert samples == [("gateway_requests_total", (("trn_code", "PAY"), ("ret_code", "0000")), 1.0)]


def test_registering_the_merge_in_the_core_registry_is_refused(core: Process) -> None:
    """The merge reads every core family already: registering it would count them twice."""
    with pytest.raises(TypeError, match="never registered"):
        core.registry.register(FrontMetrics(core.registry))
    assert scrape(FrontMetrics(core.registry)) == {series("gateway_clearing_link_up"): 0}


# -- hostile or mismatched snapshots ----------------------------------------------


def warnings(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "metrics_merge.ignored"]


def test_unknown_family_and_type_mismatch_are_ignored_and_logged_once(
    core: Process, fronts: FrontMetrics
) -> None:
    a = process()
    a.requests.labels("PAY", "0000").inc(2)
    families = pickle.loads(snapshot(a.registry))  # noqa: S301 - our own bytes
    families["gateway_made_up"] = ("counter", "?", [("gateway_made_up_total", (), 9.0)])
    families["gateway_stage_seconds"] = ("counter", "?", [("gateway_stage_seconds_total", (), 1.0)])
    core.requests.labels("PAY", "0000").inc(1)
    core.stage.labels("journal").observe(0.05)
    with capture_logs() as logs:
        fronts.update(1, pickle.dumps(families, protocol=5))
        got = scrape(fronts)
        scrape(fronts)  # the same problems again: no new log line
    assert got[series("gateway_requests_total", trn_code="PAY", ret_code="0000")] == 3
    assert got[series("gateway_stage_seconds_count", stage="journal")] == 1
    assert not any(name.startswith("gateway_made_up") for name, _ in got)
    problems = {(e["family"], e["problem"]) for e in warnings(logs)}
    assert problems == {
        ("gateway_made_up", "unknown family"),
        ("gateway_stage_seconds", "type counter, the core's is histogram"),
    }
    assert len(warnings(logs)) == 2


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not a pickle", id="garbage"),
        pytest.param(pickle.dumps(["a", "list"]), id="not-a-dict"),
        pytest.param(pickle.dumps({"x": date(2026, 1, 1)}), id="a-class"),
        pytest.param(b"", id="empty"),
    ],
)
def test_an_unreadable_snapshot_keeps_the_last_scraped_values(
    core: Process, fronts: FrontMetrics, data: bytes
) -> None:
    a = process()
    a.requests.labels("PAY", "0000").inc(4)
    push(fronts, 1, a)
    scrape(fronts)
    with capture_logs() as logs:
        fronts.update(1, data)
        got = scrape(fronts)
    assert got[series("gateway_requests_total", trn_code="PAY", ret_code="0000")] == 4
    (warning,) = warnings(logs)
    assert str(warning["problem"]).startswith("snapshot refused")


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(("counter", "?", [("gateway_requests_total", (("a", 1),), 1.0)]), id="label"),
        pytest.param(("counter", "?", [("gateway_requests_total", (), "1")]), id="value"),
        pytest.param(("counter", "?", [("gateway_requests_created", (), 1.0)]), id="created"),
        pytest.param(("counter", "?", [("gateway_requests_total", "ab", 1.0)]), id="labels-str"),
        pytest.param(("counter", "?", [["gateway_requests_total", ()]]), id="short-sample"),
        pytest.param(("info", "?", []), id="type"),
        pytest.param("counter", id="not-a-tuple"),
    ],
)
def test_a_family_of_the_wrong_shape_is_ignored(
    core: Process, fronts: FrontMetrics, entry: object
) -> None:
    a = process()
    a.open.labels("corp").set(3)
    families = pickle.loads(snapshot(a.registry))  # noqa: S301 - our own bytes
    families["gateway_requests"] = entry
    with capture_logs() as logs:
        fronts.update(1, pickle.dumps(families, protocol=5))
        got = scrape(fronts)
    assert got[series("gateway_connections_open", listener="corp")] == 3
    assert not any(name == "gateway_requests_total" for name, _ in got)
    (warning,) = warnings(logs)
    assert warning["family"] == "gateway_requests"
    assert str(warning["problem"]).startswith("bad shape")


# -- the real registry --------------------------------------------------------------


def test_every_gauge_of_the_gateway_has_a_rule() -> None:
    """A new gauge must be placed in the table (sum, or the core's value) on purpose."""
    gauges = {f.name for f in metrics.REGISTRY.collect() if f.type == "gauge"}
    assert gauges == set(GAUGE_RULES)


def test_the_real_registry_round_trips_without_a_complaint() -> None:
    """A front running this code merges into a core running this code: every value doubles."""
    merged = FrontMetrics(metrics.REGISTRY)
    with capture_logs() as logs:
        merged.update(1, snapshot(metrics.REGISTRY))
        got = scrape(merged)
    assert warnings(logs) == []
    own = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode())
        for s in f.samples
        if not s.name.endswith("_created")
    }
    assert own.keys() == got.keys()
    summed = {"gateway_connections_open", "gateway_admission_state", "gateway_worker_queue_depth"}
    gauges = {f.name for f in metrics.REGISTRY.collect() if f.type == "gauge"}
    # read at each scrape (a list file's age): the two scrapes are moments apart
    ticking = {"gateway_screening_list_age_seconds"}
    for (name, labels), value in own.items():
        doubled = name not in gauges or name in summed
        expected = 2 * value if doubled else value
        if name in ticking:
            assert got[(name, labels)] == pytest.approx(expected, abs=1.0), name
        else:
            assert got[(name, labels)] == expected, name
