"""docker-compose.yml and k8s/ agree with the shop: the settings they give
pass the services' own checks, in production mode, and the topology is the
documented one. (`make validate-deploy` checks them against their schemas.)"""
import re
from pathlib import Path

import pytest
import yaml
from nameko.exceptions import ConfigurationError
from sqlalchemy.engine import make_url

from common.config import check_settings, load_config
from common.web.json_http import FINISH_SECONDS

ROOT = Path(__file__).resolve().parents[2]
SHOP_SERVICES = ("users", "products", "inventory", "orders", "notifications", "gateway")


def plain_loader():
    """YAML's safe loader without the ``${...}`` substitution nameko's config
    loading registers on it: these files are read as their tools read them."""
    class Loader(yaml.SafeLoader):
        pass
    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith("env_var")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return Loader


def compose(name="docker-compose.yml"):
    return yaml.load((ROOT / name).read_text(), Loader=plain_loader())


def k8s_documents():
    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        yield from yaml.load_all(path.read_text(), Loader=plain_loader())


def k8s(kind, name):
    [document] = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return document


def resolve_compose_variables(value, given):
    """``${NAME:-default}`` and ``${NAME:?message}`` as compose resolves them."""
    def substitute(match):
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if name in given:
            return given[name]
        if operator == ":?":
            raise KeyError(name)
        return rest
    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", substitute, str(value))


def config_with_environment(monkeypatch, environment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return load_config(ROOT / "config.yaml")


def test_compose_gives_every_service_settings_it_accepts_in_production(monkeypatch):
    services = compose()["services"]
    for name in SHOP_SERVICES + ("migrate",):
        environment = {
            key: resolve_compose_variables(value, {"JWT_SECRET": "s" * 40})
            for key, value in services[name]["environment"].items()}
        assert environment["SHOP_ENV"] == "production"
        config = config_with_environment(monkeypatch, environment)
        check_settings(config)
        assert all(uri.startswith("postgresql://") for uri in config["DB_URIS"].values())


def test_compose_runs_migrations_once_before_the_services_and_scales_out():
    services = compose()["services"]
    assert services["migrate"]["entrypoint"] == ["python", "-m", "tools.migrate"]
    for name in SHOP_SERVICES:
        assert services[name]["command"] == [f"{name}.service"]
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}
        assert "healthcheck" in services[name] and services[name]["restart"] == "unless-stopped"
    assert services["orders"]["deploy"]["replicas"] == services["inventory"]["deploy"]["replicas"] == 2
    assert services["gateway"]["ports"] == ["8000:8000"]


def test_the_kubernetes_settings_pass_once_the_secrets_are_replaced(monkeypatch):
    environment = {**k8s("ConfigMap", "shop-config")["data"],
                   **k8s("Secret", "shop-secrets")["stringData"]}
    with pytest.raises(ConfigurationError, match="JWT.SECRET"):  # placeholders refused
        check_settings(config_with_environment(monkeypatch, environment))
    environment["JWT_SECRET"] = "s" * 40
    check_settings(config_with_environment(monkeypatch, environment))


def test_each_kubernetes_deployment_runs_its_service_with_probes():
    for name in SHOP_SERVICES:
        [container] = k8s("Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [f"{name}.service"]
        assert container["resources"]["requests"]
        probes = (container["readinessProbe"], container["livenessProbe"])
        if name == "gateway":
            assert [p["httpGet"]["path"] for p in probes] == ["/health/ready", "/health"]
        else:
            assert all(p["exec"]["command"] == ["python", "-m", "tools.healthcheck", name]
                       for p in probes)
    job = k8s("Job", "shop-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["python", "-m", "tools.migrate"]
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in k8s_documents()
              if d["kind"] == "HorizontalPodAutoscaler"}
    assert scaled == {"orders", "inventory"}


def node_hosts(amqp_uri):
    return [uri.split("@", 1)[1].split(":", 1)[0] for uri in amqp_uri.split(";")]


def test_compose_runs_a_three_node_rabbitmq_cluster_that_every_service_lists():
    services = compose()["services"]
    nodes = [f"rabbitmq-{n}" for n in (1, 2, 3)]
    cookies = set()
    for node in nodes:
        assert services[node]["hostname"] == node
        assert "./deploy/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-shop-cluster.conf:ro" \
            in services[node]["volumes"]
        cookies.add(services[node]["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"])
    assert len(cookies) == 1  # one shared Erlang cookie
    conf = (ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "peer_discovery_backend = classic_config" in conf
    assert all(f"rabbit@{node}" in conf for node in nodes)
    for name in SHOP_SERVICES + ("migrate",):
        assert node_hosts(services[name]["environment"]["AMQP_URI"]) == nodes
    for name in SHOP_SERVICES:
        assert set(nodes) <= set(services[name]["depends_on"])


def test_kubernetes_runs_rabbitmq_as_a_three_node_cluster_that_every_service_lists():
    rabbitmq = k8s("StatefulSet", "rabbitmq")["spec"]
    assert rabbitmq["replicas"] == 3 and rabbitmq["serviceName"] == "rabbitmq-nodes"
    assert "cluster_formation.peer_discovery_backend = k8s" in \
        k8s("ConfigMap", "rabbitmq-config")["data"]["rabbitmq.conf"]
    assert k8s("Service", "rabbitmq-nodes")["spec"]["clusterIP"] == "None"
    amqp_uri = k8s("Secret", "shop-secrets")["stringData"]["AMQP_URI"]
    assert node_hosts(amqp_uri) == [f"rabbitmq-{n}.rabbitmq-nodes.shop.svc" for n in (0, 1, 2)]


def test_kubernetes_rolls_every_service_without_running_it_short():
    budgets = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: d["spec"]
               for d in k8s_documents() if d["kind"] == "PodDisruptionBudget"}
    for name in SHOP_SERVICES:
        deployment = k8s("Deployment", name)["spec"]
        assert deployment["replicas"] >= 2, name
        assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        assert budgets[name] == {"minAvailable": 1, "selector": deployment["selector"]}


def test_the_gateways_pod_waits_as_long_as_it_drains_and_has_time_to_finish():
    pod = k8s("Deployment", "gateway")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    sleep, seconds = container["lifecycle"]["preStop"]["exec"]["command"]
    drain = float(k8s("ConfigMap", "shop-config")["data"]["SHUTDOWN_DRAIN_SECONDS"])
    assert sleep == "sleep" and float(seconds) == drain > 0
    assert pod["terminationGracePeriodSeconds"] >= float(seconds) + drain + FINISH_SECONDS


def database_uri_parts(uri):
    url = make_url(uri)
    return url.username, url.password, url.host, url.database


def test_kubernetes_runs_the_databases_on_a_three_instance_cluster_with_synchronous_commits():
    cluster = k8s("Cluster", "shop-postgres")["spec"]
    assert cluster["instances"] == 3
    assert cluster["postgresql"]["synchronous"] == {
        "method": "any", "number": 1, "dataDurability": "preferred"}
    initdb = cluster["bootstrap"]["initdb"]
    databases = {initdb["database"]: initdb["owner"]} | {
        d["spec"]["name"]: d["spec"]["owner"] for d in k8s_documents()
        if d["kind"] == "Database" and d["spec"]["cluster"]["name"] == "shop-postgres"}
    owner = k8s("Secret", initdb["secret"]["name"])["stringData"]
    secrets = k8s("Secret", "shop-secrets")["stringData"]
    uris = {name: database_uri_parts(secrets[f"{name.upper()}_DB_URI"])
            for name in SHOP_SERVICES if name != "gateway"}
    # every service's database exists, owned by the role its URI logs in as,
    # on the Service that follows the primary
    assert databases == {database: owner["username"] for _, _, _, database in uris.values()}
    assert {(user, password, host) for user, password, host, _ in uris.values()} == {
        (owner["username"], owner["password"], "shop-postgres-rw.shop.svc")}


def test_the_patroni_compose_file_runs_three_nodes_that_every_service_lists(monkeypatch):
    base, patroni = compose()["services"], compose("docker-compose.patroni.yml")["services"]
    nodes = ["postgres", "postgres-2", "postgres-3"]
    for node in nodes:  # the base file's postgres is the first node
        environment = patroni[node]["environment"]
        assert patroni[node]["hostname"] == environment["PATRONI_NAME"] == node
        assert environment["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"{node}:5432"
        assert patroni[node]["build"] == {"context": "deploy", "dockerfile": "patroni/Dockerfile"}
    node_config = yaml.safe_load((ROOT / "deploy" / "patroni" / "patroni.yml").read_text())
    assert node_config["bootstrap"]["dcs"]["synchronous_mode"] is True
    assert node_config["postgresql"]["authentication"]["superuser"]["username"] == "shop"
    # the services' settings, once this file's URIs replace the base file's
    for name in SHOP_SERVICES + ("migrate",):
        environment = {
            key: resolve_compose_variables(value, {"JWT_SECRET": "s" * 40})
            for key, value in {**base[name]["environment"],
                               **patroni[name]["environment"]}.items()}
        config = config_with_environment(monkeypatch, environment)
        check_settings(config)
        for uri in config["DB_URIS"].values():
            url = make_url(uri)
            assert url.query["host"] == tuple(f"{node}:5432" for node in nodes)
            assert url.query["target_session_attrs"] == "read-write"
            assert url.username == "shop"
