"""conf/alerts.yml: valid rules, behaviour under promtool's rule tests, real metric names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.ops import metrics

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
