"""conf/grafana and conf/prometheus.yml: well-formed, complete, and about real metrics.

The board's queries are run against a real Prometheus by
tests/integration/test_dashboard.py; here the files themselves are checked.
"""

from __future__ import annotations

import json
import re

import yaml

from tests.unit.ops.test_alerts import ROOT, exported_names, needs_promtool, promtool

DASHBOARD = ROOT / "conf" / "grafana" / "dashboards" / "corplink-gateway.json"
PROVISIONING = ROOT / "conf" / "grafana" / "provisioning"
PROMETHEUS_YML = ROOT / "conf" / "prometheus.yml"

REQUIRED = {
    "accepted/s per engine": r"sum by \(engine\) \(rate\(gateway_items_routed_total\{",
    "ack latency p50": r"histogram_quantile\(0\.5, .*gateway_ack_latency_seconds_bucket",
    "ack latency p99": r"histogram_quantile\(0\.99, .*gateway_ack_latency_seconds_bucket",
    "refusals by reason": r"sum by \(stage, reason\) \(rate\(gateway_refusals_total",
    "5001/5002 rates": r'gateway_requests_total\{[^}]*ret_code=~"5001\|5002"',
    "journal commit time": r"gateway_journal_commit_seconds_bucket",
    "journal batch size": r"gateway_journal_commit_batch_size_",
    "outbound in flight per engine": r"sum by \(engine\) \(gateway_outbound_inflight",
    "backlog per engine": r'by \(engine\) \(gateway_items\{[^}]*state="QUEUED"',
    "HELD items": r'gateway_items\{[^}]*state="HELD"',
    "netting mismatches": r"gateway_netting_mismatch",
    "credits in suspense": r'gateway_credits\{[^}]*state="SUSPENSE"',
    "certificate expiry": r"gateway_certificate_expiry_timestamp_seconds",
    "CRL next update": r"gateway_crl_next_update_timestamp_seconds",
    "reloads": r"gateway_reloads_total",
    "bans": r"gateway_address_bans_total",
    "SWIFT items by state": r'by \(state\) \(gateway_items\{[^}]*engine="SWIFT"',
    "SWIFT published": r'gateway_outbound_messages_total\{[^}]*engine="SWIFT"',
    "SWIFT answers": r'gateway_inbound_messages_total\{[^}]*msg_tp=~"swift\.ack\|swift\.002"',
    "SWIFT in flight": r'gateway_outbound_inflight\{[^}]*engine="SWIFT"',
    "SWIFT link": r'gateway_link_up\{[^}]*link="swift"',
    "screening decisions": r"sum by \(direction, result\) \(rate\(gateway_screening_total",
    "screening list entries": r"by \(list\) \(gateway_screening_list_entries",
    "screening list age": r"by \(list\) \(gateway_screening_list_age_seconds",
    "review pending": r"gateway_review_pending",
    "review oldest wait": r"gateway_review_oldest_seconds",
    "review decisions": r"by \(decision\) \(increase\(gateway_review_decisions_total",
}
"""What operators asked to see on the board, each as a query that shows it."""


def board() -> dict[str, object]:
    doc: dict[str, object] = json.loads(DASHBOARD.read_text())
    return doc


def panels() -> list[dict[str, object]]:
    found = board()["panels"]
    assert isinstance(found, list)
    return [p for p in found if p["type"] != "row"]


def exprs() -> list[str]:
    return [str(t["expr"]) for p in panels() for t in p["targets"]]  # type: ignore[attr-defined]


def test_the_board_shows_what_operators_asked_for() -> None:
    text = "\n".join(exprs())
    missing = [what for what, pattern in REQUIRED.items() if not re.search(pattern, text)]
    assert missing == []


def test_every_panel_is_well_formed() -> None:
    doc = board()
    assert doc["uid"] == "corplink-gateway"
    ids = [p["id"] for p in doc["panels"]]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids))
    for panel in panels():
        targets = panel["targets"]
        assert isinstance(targets, list) and targets, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert panel["description"], panel["title"]
        for target in targets:
            expr = target["expr"]
            # every query is scoped to the chosen job and nodes
            for selector in re.findall(r"gateway_[a-z0-9_]+\{[^}]*\}|gateway_[a-z0-9_]+", expr):
                assert 'job=~"$job", instance=~"$instance"' in selector, (panel["title"], expr)


def test_every_metric_on_the_board_exists() -> None:
    """A rename in gateway/ops/metrics.py must not silently empty a panel."""
    referenced = set(re.findall(r"\bgateway_[a-z0-9_]+", "\n".join(exprs())))
    assert referenced <= exported_names(), referenced - exported_names()


def test_provisioning_files_load() -> None:
    dashboards = yaml.safe_load((PROVISIONING / "dashboards" / "corplink-gateway.yml").read_text())
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    sources = yaml.safe_load((PROVISIONING / "datasources" / "corplink-prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"


def test_prometheus_yml_loads_the_rules_and_scrapes_the_gateway() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert [PROMETHEUS_YML.parent / f for f in config["rule_files"]] == [
        ROOT / "conf" / "alerts.yml"
    ]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "gateway"  # the job GatewayDown names


@needs_promtool
def test_promtool_check_config() -> None:
    proc = promtool("check", "config", str(PROMETHEUS_YML))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout + proc.stderr
