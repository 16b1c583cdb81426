"""The Grafana board, proven against a real Prometheus scraping a real gateway.

Debian's ``prometheus`` runs with conf/prometheus.yml (scrape interval cut to
1 s, the target pointed at the test daemon's metrics port, conf/alerts.yml
loaded) while the gateway carries a little traffic.  The daemon runs with
foreign currency on, the SWIFT link to the SWIFT simulator and a screening list
(docs/foreign-currency.md §4, §5), so the SWIFT, screening and review panels have
their series.  Every panel query of
conf/grafana/dashboards/corplink-gateway.json, read from the JSON so a panel
added later is covered too, goes to Prometheus's HTTP query API: each must
parse and return at least one series.  Before any traffic, the daemon's own
/metrics must already expose every series a panel or a rule reads (created at
0 at start, so rate() and increase() see the first step).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.testing import Broker, free_port
from tests.integration.harness import (
    Erp,
    gateway_config,
    payment,
    recent_friday_10,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)
from tests.integration.test_fx_swift import running_swift_sim, usd
from tests.unit.ops import selectors

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "conf" / "grafana" / "dashboards" / "corplink-gateway.json"
PROMETHEUS_YML = REPO / "conf" / "prometheus.yml"
ALERTS = REPO / "conf" / "alerts.yml"
DEMO_LIST = REPO / "conf" / "screening" / "demo-list.csv"
FRIDAY_10 = recent_friday_10()

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$job": "gateway",
    "$instance": ".+",
}
"""What Grafana puts in place of the board's variables (all nodes, a window that
holds several 1 s scrapes)."""


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target on the board, variables substituted."""
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, (panel["title"], expr)
            out.append((f"{panel['title']} [{target['refId']}]", expr))
    return out


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [str(rule["expr"]) for group in doc["groups"] for rule in group["rules"]]


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        pytest.fail("prometheus not installed: apt-get install prometheus (.ci/install does)")
    return found


@contextlib.contextmanager
def running_prometheus(work: Path, target: tuple[str, int]) -> Iterator[str]:
    """Prometheus on a free port with conf/prometheus.yml, 1 s scrapes of ``target``."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(ALERTS)]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "gateway"
    job["static_configs"] = [{"targets": [f"{target[0]}:{target[1]}"]}]
    work.mkdir(parents=True)
    cfg = work / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={cfg}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as rsp:  # noqa: S310 - http to ourselves
            return int(rsp.status), bytes(rsp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""


async def query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    status, body = await asyncio.to_thread(http_get, url)
    doc: dict[str, Any] = json.loads(body) if body else {"status": f"http {status}"}
    return doc


async def wait_until(what: str, check: Any, timeout: float = 60) -> None:
    """Poll ``await check()`` until true (a deadline, not a timed assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def scrapes(base: str) -> int:
    doc = await query(base, 'count_over_time(up{job="gateway"}[10m])')
    result = doc.get("data", {}).get("result", [])
    return int(float(result[0]["value"][1])) if result else 0


async def test_every_panel_query_returns_series_from_a_real_prometheus(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(FRIDAY_10)
    screening_list = tmp_path / "demo-list.csv"
    shutil.copyfile(DEMO_LIST, screening_list)
    cfg = gateway_config(
        tmp_path / "gw",
        dev_pki,
        broker.url,
        {"fx": {"enabled": True}, "screening": {"lists": [str(screening_list)]}},
    )
    async with (
        # BEPS answered ACSP and netted only on demand: the payments stay ACKED, live
        running_clearing_sim(dev_pki, broker.url, tmp_path / "r.jsonl", netting=True),
        running_swift_sim(dev_pki, broker.url, tmp_path / "swift.jsonl"),
        running_gateway(cfg, clock) as gw,
    ):
        assert gw.bound.metrics is not None
        host, port = gw.bound.metrics
        status, body = await asyncio.to_thread(http_get, f"http://{host}:{port}/metrics")
        assert status == 200

        # at start, before any traffic: every series a panel or a rule reads
        wanted = [s for _, e in panel_queries() for s in selectors.selectors(e)]
        wanted += [s for e in rule_exprs() for s in selectors.selectors(e)]
        assert selectors.unmatched(wanted, selectors.samples(body.decode())) == []

        with running_prometheus(tmp_path / "prometheus", (host, port)) as base:
            await wait_until(
                "prometheus ready",
                lambda: asyncio.to_thread(lambda: http_get(f"{base}/-/ready")[0] == 200),
            )

            async def scraped_once() -> bool:
                return await scrapes(base) >= 1

            await wait_until("a first scrape", scraped_once)

            # a little traffic: accepted payments, a refusal (4001)
            erp = await Erp(gw, dev_pki).client()
            for n, code in enumerate(("104100000004", "105100000017", "104100000004")):
                rsp = await erp.pay(f"DASH-{n}", clock.now(), payment(code, "10.00"))
                assert rsp.ret_code == "0000", rsp
            refused = await erp.pay("DASH-X", clock.now(), payment("999999999999", "10.00"))
            assert refused.ret_code == "4001"
            # a foreign-currency payment to another bank: screened, sent over SWIFT, settled
            swift = await erp.pay("DASH-SW", clock.now(), usd("CITIUS33", "25.00"))
            assert (swift.ret_code, swift.engine) == ("0000", "SWIFT"), swift.ret_msg
            assert await wait_for_state(erp, clock.now(), "DASH-SW", ["SETTLED"]) == "SETTLED"
            after = await scrapes(base)

            async def two_more_scrapes() -> bool:
                return await scrapes(base) >= after + 2

            await wait_until("two scrapes after the traffic", two_more_scrapes)

            answers = {}
            for title, expr in panel_queries():
                answers[title] = (expr, await query(base, expr))
            failed = {
                title: (expr, doc.get("error") or "no series")
                for title, (expr, doc) in answers.items()
                if doc.get("status") != "success" or not doc["data"]["result"]
            }
            assert failed == {}

            # the board's variables: Grafana asks for label values of one series
            status, body = await asyncio.to_thread(
                http_get,
                f"{base}/api/v1/label/instance/values?match[]=gateway_lifecycle_state",
            )
            assert status == 200 and f"{host}:{port}" in json.loads(body)["data"]

            # the traffic shows: accepted items per engine, from the board's own query
            title = "Accepted items/s by engine [A]"
            expr, doc = answers[title]
            rates = {r["metric"].get("engine"): float(r["value"][1]) for r in doc["data"]["result"]}
            assert set(rates) == {"INTRA", "HVPS", "BEPS", "SWIFT"}, doc
            assert max(rates.values()) > 0, doc
            print(f"\n{title}\n{expr}\n{json.dumps(doc, indent=2)}")

            # the journal's gauges follow the traffic (refreshed every few seconds)
            live = dict(panel_queries())["Live items by engine and state [A]"]

            async def beps_items_counted() -> bool:
                result = (await query(base, live))["data"]["result"]
                return (
                    sum(float(r["value"][1]) for r in result if r["metric"]["engine"] == "BEPS") > 0
                )

            await wait_until("the BEPS payments in gateway_items", beps_items_counted)

            # the SWIFT row: the swift.008 went out and its answers came back, the link is up
            def values(title: str) -> dict[str, float]:
                _, doc = answers[title]
                return {
                    " ".join(r["metric"].values()): float(r["value"][1])
                    for r in doc["data"]["result"]
                }

            messages = values("SWIFT messages out and answers in [A]")
            assert messages["first"] > 0, messages
            answered = values("SWIFT messages out and answers in [B]")
            assert answered["swift.ack"] > 0 and answered["swift.002"] > 0, answered
            assert values("SWIFT items by state [B]")["SETTLED"] > 0
            assert list(values("SWIFT link [A]").values()) == [1.0]
            # the screening row: the list in force, by its file's stem
            with screening_list.open(encoding="utf-8", newline="") as f:
                rows = sum(1 for _ in csv.DictReader(f))
            assert values("Screening list entries [A]") == {"demo-list": float(rows)}
