"""conf/alerts.yml: valid rules, behaviour under promtool's rule tests, real metric names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.ops import metrics
from tests.unit.ops import selectors

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "conf" / "alerts.yml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yml")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package: prometheus)"
)


def exported_names() -> set[str]:
    """Every sample name the registry can expose (counters' _total, histograms' _bucket...)."""
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.update({family.name + "_total", family.name + "_created"})
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count", "_created"))
    return names


def all_rules() -> list[dict[str, object]]:
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed (pip: pyyaml)")
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_every_referenced_metric_exists() -> None:
    """A rename in gateway/ops/metrics.py must not silently disable an alert."""
    referenced = set(re.findall(r"\bgateway_[a-z_]+", RULES.read_text()))
    assert referenced, "no gateway_ metric referenced"
    assert referenced <= exported_names(), referenced - exported_names()


def test_every_alert_has_severity_and_summary() -> None:
    alerts = [r for r in all_rules() if "alert" in r]
    expected = {
        "GatewayClearingLinkDown",
        "GatewayOutboundInflightHigh",
        "GatewayInboundDropped",
        "GatewayRefusalSpike",
        "GatewayAckLatencyHigh",
        "GatewayJournalCommitSlow",
        "GatewayNotReady",
        "GatewaySignatureFailuresRising",
        "GatewayCertificateExpiringSoon",
        "GatewayCertificateExpiryImminent",
        "GatewayCrlNextUpdateSoon",
        "GatewayCrlStale",
        "GatewayCalendarNotLoaded",
        "GatewayKeySwapFailed",
        "GatewaySwiftLinkDown",
        "GatewaySwiftItemsStuck",
        "GatewaySwiftQueueStuck",
        "GatewayReviewOverdue",
        "GatewayScreeningListStale",
    }
    assert expected <= {str(a["alert"]) for a in alerts}
    for alert in alerts:
        labels = alert["labels"]
        annotations = alert["annotations"]
        assert isinstance(labels, dict)
        assert isinstance(annotations, dict)
        assert labels["severity"] in {"warning", "critical"}
        assert annotations["summary"]
        assert annotations["description"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, check=False, timeout=120
    )


@needs_promtool
def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    proc = promtool("test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- series that start absent (a counter's first step) ----------------------------------

NEW_SERIES_TESTS = Path(__file__).with_name("alerts_new_series_test.yml")

CREATED_WHEN_CONFIGURED = {
    "gateway_certificate_expiry_timestamp_seconds": "one per certificate the config names",
    "gateway_crl_next_update_timestamp_seconds": "one per CRL the config names",
    "gateway_lifecycle_state": "set when Gateway.start begins",
    "gateway_screening_list_age_seconds": "one per file screening.lists names",
}
"""Gauges whose label values come from the configuration or the running daemon: the
exporter cannot create them at import; tests/integration/test_dashboard.py checks
them on a started daemon."""

CREATED_WHEN_SWIFT_RUNS = {("engine", "SWIFT"), ("link", "swift"), ("msg_tp", "swift.ack")}
"""Label values of the SWIFT engine and link: their series are created when the daemon
starts them (fx.enabled, swift.enabled; metrics.create_swift_series), never at import, so
a node without SWIFT has none and its SWIFT alerts stay quiet; tests/integration/
test_dashboard.py checks them on a daemon that runs SWIFT."""


def rule_selectors() -> list[selectors.Selector]:
    return [
        sel
        for rule in all_rules()
        for sel in selectors.selectors(str(rule["expr"]))
        if sel.name not in CREATED_WHEN_CONFIGURED
        and not {(k, v) for k, op, v in sel.matchers if op == "="} & CREATED_WHEN_SWIFT_RUNS
    ]


def exposition_at_import() -> str:
    """/metrics of a process that has imported the exporter and done nothing else."""
    code = (
        "from prometheus_client import generate_latest\n"
        "from gateway.ops import metrics\n"
        "print(generate_latest(metrics.REGISTRY).decode())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return proc.stdout


def test_every_series_a_rule_reads_exists_at_start() -> None:
    """increase() sees no first step of a series that appears already at 1: every
    series a rule names is exposed, at 0, before anything happened."""
    wanted = rule_selectors()
    assert len({s.name for s in wanted}) >= 8, wanted
    text = exposition_at_import()
    exposed = selectors.samples(text)
    assert selectors.unmatched(wanted, exposed) == []
    counted = [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.endswith("_total") and any(sel.matches((s.name, s.labels)) for sel in wanted)
    ]
    assert len(counted) > 20
    assert [c for c in counted if c[2] != 0] == []


def test_no_swift_series_exists_before_the_daemon_runs_swift() -> None:
    """A gateway without SWIFT (fx or swift switched off) must not expose a SWIFT link at 0: the
    link-down and stuck alerts would fire on every such node."""
    exposed = selectors.samples(exposition_at_import())
    swift = [
        (name, labels)
        for name, labels in exposed
        if set(labels.items()) & CREATED_WHEN_SWIFT_RUNS or name == "gateway_link_up"
    ]
    assert swift == []
    every = [s for rule in all_rules() for s in selectors.selectors(str(rule["expr"]))]
    assert len(every) > len(rule_selectors())  # the start check leaves the SWIFT series out


def test_the_start_check_sees_a_series_that_is_missing() -> None:
    """The check above can fail: a matcher on a label value nobody creates."""
    exposed = selectors.samples(exposition_at_import())
    expr = 'increase(gateway_reloads_total{outcome="exploded"}[1h])'
    assert selectors.unmatched(selectors.selectors(expr), exposed) == [
        'gateway_reloads_total{outcome="exploded"}'
    ]
    both = 'gateway_refusals_total{stage=~"signature|nowhere"}'
    assert selectors.unmatched(selectors.selectors(both), exposed) == [
        'gateway_refusals_total{stage="nowhere"}'
    ]


@needs_promtool
def test_rules_count_a_series_that_starts_absent() -> None:
    proc = promtool("test", "rules", str(NEW_SERIES_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


PLAIN_RULES = {
    "gateway:refusals:rate5m": (
        "sum by (job, instance, stage, reason) (rate(gateway_refusals_total[5m]))"
    ),
    "gateway:credential_refusals:increase10m": (
        "sum by (job, instance, stage, reason)"
        ' (increase(gateway_refusals_total{stage=~"signature|credentials"}[10m]))'
    ),
    "GatewayInboundDropped": (
        "sum by (job, instance, reason) (increase(gateway_inbound_dropped_total[10m])) > 0"
    ),
    "GatewayReloadRefused": 'increase(gateway_reloads_total{outcome="refused"}[1h]) > 0',
}
"""The same rules with increase()/rate() alone, as they were before series were counted new."""


@needs_promtool
def test_plain_increase_rules_miss_a_series_that_starts_absent(tmp_path: Path) -> None:
    """The new-series cases have teeth: every one of them fails on the plain rules."""
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed (pip: pyyaml)")
    doc = yaml.safe_load(RULES.read_text())
    replaced = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            if name in PLAIN_RULES:
                rule["expr"] = PLAIN_RULES[name]
                replaced.add(name)
    assert replaced == set(PLAIN_RULES)
    plain = tmp_path / "plain-alerts.yml"
    plain.write_text(yaml.safe_dump(doc, allow_unicode=True))
    cases = yaml.safe_load(NEW_SERIES_TESTS.read_text())
    cases["rule_files"] = [str(plain)]
    case_file = tmp_path / "cases.yml"
    case_file.write_text(yaml.safe_dump(cases, allow_unicode=True))
    proc = promtool("test", "rules", str(case_file))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for name in ("GatewayInboundDropped", "GatewayReloadRefused"):
        assert f"alertname: {name}" in out, out
    assert "alertname: GatewaySignatureFailuresRising" in out, out
    assert "gateway:refusals:rate5m" in out, out
