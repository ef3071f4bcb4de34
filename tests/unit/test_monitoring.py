"""The monitoring files in deploy/ and k8s/: promtool accepts every Prometheus
configuration and the alert rules, the rules' unit tests pass, every alert
is proven both to fire and to stay quiet, and tells an operator what to do.
(tests/e2e/test_prometheus.py runs them against a running shop.)"""
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from common.observability.metrics import ServiceMetrics
from tests.helpers import prometheus_binary, running_prometheus, wait_for
from tests.unit.test_deployment import compose, k8s

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "shop.yml"
RULE_TESTS = PROMETHEUS / "tests" / "shop.test.yml"
GRAFANA = ROOT / "deploy" / "grafana"


def promtool(*arguments):
    done = subprocess.run([prometheus_binary("promtool"), *arguments],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alerts():
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


@pytest.mark.parametrize("config", ["prometheus.yml", "compose.yml"])
def test_promtool_accepts_the_local_and_compose_configurations(config):
    assert "SUCCESS: 1 rule files found" in promtool("check", "config", str(PROMETHEUS / config))


def test_promtool_accepts_the_kubernetes_configuration(tmp_path):
    promtool("check", "config", str(kubernetes_config_on_file_discovery(tmp_path, [])))


def kubernetes_config_on_file_discovery(directory, targets):
    """k8s/prometheus.yaml's configuration with pod discovery replaced by a
    file listing ``targets`` (label sets as pod discovery makes them):
    Debian's Prometheus is built without Kubernetes discovery, and this way
    the rest, relabelling included, is checked by the real thing."""
    config = yaml.safe_load(k8s("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    [job] = config["scrape_configs"]
    assert [discovery["role"] for discovery in job.pop("kubernetes_sd_configs")] == ["pod"]
    discovered = directory / "pods.json"
    discovered.write_text(json.dumps([{"targets": [target.pop("__address__")],
                                       "labels": target} for target in targets]))
    job["file_sd_configs"] = [{"files": [str(discovered)]}]
    config["rule_files"] = []
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def pod(name, address, component, app="shop", **annotations):
    """The labels Kubernetes pod discovery gives a pod's target."""
    labels = {"__address__": address, "__meta_kubernetes_pod_name": name,
              "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
              "__meta_kubernetes_pod_label_app_kubernetes_io_component": component}
    labels.update({f"__meta_kubernetes_pod_annotation_prometheus_io_{key}": value
                   for key, value in annotations.items()})
    return labels


def test_the_kubernetes_relabelling_scrapes_the_shops_annotated_pods_by_service(tmp_path):
    pods = [
        pod("gateway-1", "10.0.0.5:8000", "gateway", scrape="true", port="8000", path="/metrics"),
        # a pod that declares no port: the annotation gives it
        pod("orders-1", "10.0.0.6", "orders", scrape="true", port="9104", path="/metrics"),
        pod("migrate-1", "10.0.0.7", "migrate"),
        pod("rabbitmq-0", "10.0.0.8:15692", "rabbitmq", app="rabbitmq", scrape="true",
            port="15692"),
    ]
    config = kubernetes_config_on_file_discovery(tmp_path, pods)
    with running_prometheus(config, tmp_path) as prometheus:
        wait_for(lambda: prometheus.api("targets")["activeTargets"], timeout=30)
        targets = prometheus.api("targets")
    scraped = {(target["labels"]["service"], target["labels"]["instance"],
                target["labels"]["pod"], target["scrapeUrl"])
               for target in targets["activeTargets"]}
    assert scraped == {
        ("gateway", "10.0.0.5:8000", "gateway-1", "http://10.0.0.5:8000/metrics"),
        ("orders", "10.0.0.6:9104", "orders-1", "http://10.0.0.6:9104/metrics")}
    assert len(targets["droppedTargets"]) == 2


def test_promtool_accepts_the_alert_rules():
    assert f"SUCCESS: {len(alerts())} rules found" in promtool("check", "rules", str(RULES))


def test_the_alert_rules_unit_tests_pass():
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def test_every_alert_is_proven_to_fire_and_to_stay_quiet():
    checks = [check for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for check in test["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        expected = [check["exp_alerts"] for check in checks if check["alertname"] == name]
        assert any(expected), f"no test makes {name} fire"
        assert not all(expected), f"no test shows {name} quiet"


def test_every_alert_tells_an_operator_what_to_do():
    runbook = (ROOT / "docs" / "operations.md").read_text()
    assert "\n## Alerts\n" in runbook
    alerts_section = runbook.split("\n## Alerts\n")[1].split("\n## ")[0]
    for alert in alerts():
        annotations = alert["annotations"]
        assert annotations["summary"] and len(annotations["description"]) > 80, alert["alert"]
        assert annotations["runbook"] == "docs/operations.md#alerts"
        assert f"`{alert['alert']}`" in alerts_section, alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}


def test_prometheus_everywhere_reads_the_one_rules_file():
    for config in ("prometheus.yml", "compose.yml"):
        assert yaml.safe_load((PROMETHEUS / config).read_text())["rule_files"] == [
            "rules/shop.yml"]
    kubernetes = yaml.safe_load(k8s("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    assert kubernetes["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    prometheus = compose()["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/compose.yml" in prometheus["command"]


def test_every_shop_service_is_a_scrape_target_in_compose_and_kubernetes():
    services = {"gateway", "users", "products", "inventory", "orders", "notifications"}
    [job] = yaml.safe_load((PROMETHEUS / "compose.yml").read_text())["scrape_configs"]
    assert {name for target in job["dns_sd_configs"] for name in target["names"]} == services
    for service in services:
        template = k8s("Deployment", service)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        ports = {port["containerPort"] for container in template["spec"]["containers"]
                 for port in container.get("ports", ())}
        assert int(annotations["prometheus.io/port"]) in ports, service


def test_grafana_loads_the_dashboard_over_the_provisioned_data_source():
    [source] = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    dashboard = json.loads((GRAFANA / "dashboards" / "shop.json").read_text())
    targets = [target for panel in dashboard["panels"] for target in panel.get("targets", ())]
    assert targets
    assert {target["datasource"]["uid"] for target in targets} == {source["uid"]}
    [provider] = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "shop.yml").read_text())["providers"]
    grafana = compose()["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(titles) == len(set(titles))


def test_a_gauge_that_cannot_be_read_leaves_the_page_whole():
    metrics = ServiceMetrics("orders")

    def unreachable():
        raise ConnectionRefusedError("the database is down")

    metrics.read_at_scrape(unreachable, {"shop_outbox_backlog": "Events not yet published"})
    metrics.read_at_scrape(lambda: {"shop_dead_letters": 2}, {"shop_dead_letters": "Waiting"})
    page = metrics.exposition().decode()
    assert "shop_outbox_backlog" not in page
    assert re.search(r'^shop_dead_letters\{service="orders"\} 2\.0$', page, re.MULTILINE)
    assert "process_resident_memory_bytes" in page
