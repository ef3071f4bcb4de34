"""A real Prometheus (Debian's package) scrapes a running shop with the
shipped configuration and alert rules, and the dashboard's and the rules'
queries read only metrics the services expose: neither can drift from the
code unnoticed."""
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from common.build import build_info
from tests.e2e.test_observability import DOMAIN_SERVICES, metrics_urls, place_and_pay
from tests.helpers import running_prometheus, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "shop.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "shop.json"
SERVICES = {*DOMAIN_SERVICES, "gateway"}
# series Prometheus makes itself, not the services
PROMETHEUS_SERIES = {"up"}
# panels that show failures: a healthy shop has no series for them
EMPTY_WHEN_HEALTHY = {"Crashes by service", "Event deliveries that failed"}
METRICS_ON_FREE_PORTS = {"METRICS": {"HOST": "127.0.0.1",
                                     "PORTS": {name: 0 for name in DOMAIN_SERVICES}}}


def dashboard_queries():
    """``[(panel title, expr)]``, Grafana's interval variables made plain."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"].replace("$__rate_interval", "1m"))
            for panel in panels for target in panel.get("targets", ())]


def rule_queries():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "offset", "bool", "inf", "nan"}


def metric_names(expr):
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w$.])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()", expr)
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def exposed_names(page):
    """The sample names a Prometheus text page can carry, from its TYPE lines
    (a family is declared even before it has samples)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", page, re.MULTILINE):
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        else:
            names.add(name)
    return names


def test_metric_names_are_read_from_the_selectors_only():
    assert metric_names(
        'histogram_quantile(0.99, sum by (le, service) (rate(a_bucket{kind="rpc", x=~"y(z)"}'
        '[$__rate_interval]))) / on (service) group_left sum(b_total offset 5m) > 0.5'
    ) == {"a_bucket", "b_total"}
    assert metric_names("absent(up{job=\"shop\"}) or max(c) and d == bool 1") == {"up", "c", "d"}


def local_targets(runner, api):
    """``{service: "host:port"}`` of the running services' metrics pages."""
    return {name: url.removeprefix("http://").removesuffix("/metrics")
            for name, url in metrics_urls(runner, api).items()}


def prometheus_config(targets, directory):
    """deploy/prometheus/prometheus.yml, aimed at ``targets`` and scraping every second."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    [job] = config["scrape_configs"]
    for static in job["static_configs"]:
        static["targets"] = [targets[static["labels"]["service"]]]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(runner, api, tmp_path):
    """Debian's Prometheus, scraping the running shop with the shipped configuration."""
    with running_prometheus(prometheus_config(local_targets(runner, api), tmp_path),
                            tmp_path) as client:
        yield client


def every_target_up(prometheus):
    targets = prometheus.api("targets")["activeTargets"]
    return (len(targets) == len(SERVICES)
            and all(target["health"] == "up" for target in targets))


@pytest.mark.parametrize("settings", [METRICS_ON_FREE_PORTS])
def test_prometheus_scrapes_every_service_and_sees_an_order_placed(prometheus, api):
    wait_for(lambda: every_target_up(prometheus), timeout=30)
    targets = prometheus.api("targets")["activeTargets"]
    assert {target["labels"]["service"] for target in targets} == SERVICES
    placed = 'sum(shop_orders_total{status="pending"})'
    before = prometheus.value(placed)

    place_and_pay(api, f"prometheus-{uuid.uuid4().hex}", api.database_engines["orders"])

    # the order was paid before this: a scrape that has seen it paid has seen it placed
    wait_for(lambda: prometheus.value('sum(shop_orders_total{status="paid"})') >= 1, timeout=15)
    assert prometheus.value(placed) == before + 1
    # the series the services label themselves keep their own service label
    wait_for(lambda: {series["metric"]["service"] for series in prometheus.query(
        "shop_entrypoint_calls_total")} == SERVICES, timeout=5)
    # each service says which build it runs
    build = build_info()
    assert sorted((series["metric"]["service"], series["metric"]["version"],
                   series["metric"]["revision"]) for series in prometheus.query(
        "shop_build_info")) == sorted((name, build["version"], build["revision"])
                                      for name in SERVICES)
    # every alert rule evaluated against the real series without an error, and none fires
    wait_for(lambda: not any(rule["lastEvaluation"].startswith("0001-")  # never evaluated
                             for rule in alert_rules(prometheus)))
    rules = alert_rules(prometheus)
    assert {rule["name"] for rule in rules} == {name for name, _ in rule_queries()}
    assert [(rule["name"], rule["health"], rule.get("lastError")) for rule in rules
            if rule["health"] != "ok"] == []
    assert [rule["name"] for rule in rules if rule["state"] == "firing"] == []


def alert_rules(prometheus):
    return [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("settings", [METRICS_ON_FREE_PORTS])
def test_the_dashboard_and_the_alerts_read_only_what_the_services_expose(
        prometheus, runner, api):
    place_and_pay(api, f"dashboard-{uuid.uuid4().hex}", api.database_engines["orders"])
    exposed = set(PROMETHEUS_SERIES)
    for url in metrics_urls(runner, api).values():
        exposed |= exposed_names(requests.get(url, timeout=5).text)

    queries = dashboard_queries() + rule_queries()
    unknown = {(title, name) for title, expr in queries for name in metric_names(expr)
               if name not in exposed}
    assert unknown == set()

    # the dashboard's queries run, and show data once the shop has taken an order
    wait_for(lambda: every_target_up(prometheus), timeout=30)
    time.sleep(3)  # a few scrapes after the order, for the rates
    empty = {title for title, expr in dashboard_queries() if not prometheus.query(expr)}
    assert empty == EMPTY_WHEN_HEALTHY
