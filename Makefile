# The shop's commands. `make run` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# PostgreSQL databases the test suite uses with SHOP_TEST_DATABASE=postgresql
PG_URI ?= postgresql://postgres@127.0.0.1:5432
TEST_DATABASES := shop_test_users shop_test_products shop_test_orders shop_test_inventory \
  shop_test_notifications

# the nameko command imports pkg_resources and eventlet, which warn on every start
export PYTHONWARNINGS = ignore::Warning:nameko.cli.main,ignore::Warning:nameko.cli.commands

.PHONY: install run shell migrate demo-data contracts release dlq dlq-replay migrate-queues prometheus chaos cluster-test db-failover-test scale-test upgrade-test validate-deploy fuzz bench bench-quick test test-postgres test-databases clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# A local admin account for trying the API; set your own in the environment.
run: export SHOP_ADMIN_USERNAME ?= admin
run: export SHOP_ADMIN_PASSWORD ?= admin-password
run: install
	@echo "Admin account: $$SHOP_ADMIN_USERNAME / $$SHOP_ADMIN_PASSWORD"
	$(BIN)/python -m tools.launch

shell: install
	$(BIN)/nameko shell --config config.yaml

migrate: install
	$(BIN)/python -m tools.migrate

demo-data: install
	$(BIN)/python -m tools.demo_data

# Regenerates gateway/asyncapi.json from the services' contract.py files
contracts: install
	$(BIN)/python -m tools.contracts write

# Cuts a release: make release VERSION=0.3.0, once CHANGELOG.md has its
# section. Sets the version, and records the release's contracts, which the
# compatibility gate in make test holds later changes to.
release:
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z" >&2; exit 1; }
	$(PYTHON) -m tools.release $(VERSION)
	@$(MAKE) --no-print-directory install
	$(BIN)/python -m tools.contracts write
	$(BIN)/python -m tools.contracts release
	@echo "Now commit these changes, and tag the commit: git tag v$(VERSION)"

# Events a handler could not handle, after its retries
dlq: install
	$(BIN)/python -m tools.dlq list

dlq-replay: install
	$(BIN)/python -m tools.dlq replay --all

# Prometheus (Debian's package: apt install prometheus) scraping the shop that
# make run starts, with the alert rules: http://127.0.0.1:9090
prometheus:
	@command -v prometheus >/dev/null || { echo "prometheus is not installed: apt install prometheus" >&2; exit 1; }
	prometheus --config.file=deploy/prometheus/prometheus.yml --storage.tsdb.path=var/prometheus \
		--web.listen-address=127.0.0.1:9090

# After an upgrade from a version with classic queues: stop the shop, then
# move them (and their messages) to quorum queues
migrate-queues: install
	$(BIN)/python -m tools.queues migrate

# The crash test on a PostgreSQL cluster run by Patroni (apt install patroni etcd-server):
# three nodes under var/failover/patroni/, the primary killed during an order storm.
# FAILOVER_ARGS="--users 8 --duration 40": python -m tools.harness.db_failover --help
db-failover-test: install
	$(BIN)/python -m tools.harness.db_failover $(FAILOVER_ARGS)

# The crash test on a 3-node RabbitMQ cluster started under var/rabbitmq-cluster/, a node
# killed mid-storm. CLUSTER_ARGS="--database postgresql --users 8 --duration 40"
cluster-test: install
	$(BIN)/python -m tools.harness.cluster_test $(CLUSTER_ARGS)

# The crash test: an order storm while services are killed and RabbitMQ
# restarts. CHAOS_ARGS="--database postgresql --users 8 --duration 30"
chaos: install
	$(BIN)/python -m tools.harness.chaos $(CHAOS_ARGS)

# Two instances each of products, orders, inventory and notifications under an order storm.
scale-test: install
	$(BIN)/python -m tools.harness.scale $(SCALE_ARGS)

# A rolling upgrade from an older revision to this checkout under an order
# storm, on PostgreSQL: nothing lost, no 5xx. UPGRADE_FROM=<revision>
# (default: the last release before HEAD, else 9593e87); UPGRADE_ARGS="--users 8"
upgrade-test: install
	$(BIN)/python -m tools.harness.upgrade $(if $(UPGRADE_FROM),--from $(UPGRADE_FROM)) $(UPGRADE_ARGS)

# The benchmark: the real stack on PostgreSQL, driven by wrk (apt install wrk).
# BENCH_ARGS="--duration 5 --concurrency 16" and others: python -m tools.harness.bench --help
# matplotlib, for the benchmark's chart, kept out of the services' virtualenv
BENCH_VENV := .venv-bench
bench: install $(BENCH_VENV)/.installed
	$(BIN)/python -m tools.harness.bench $(BENCH_ARGS)

bench-quick: install $(BENCH_VENV)/.installed
	$(BIN)/python -m tools.harness.bench --quick $(BENCH_ARGS)

$(BENCH_VENV)/.installed: tools/harness/bench-requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r tools/harness/bench-requirements.txt
	touch $@

# Checks docker-compose.yml (docker-compose config: no Docker engine needed)
# and the Kubernetes manifests against the Kubernetes schemas, offline.
DEPLOY_VENV := .venv-deploy
CNPG_SCHEMAS := deploy/cnpg/node_modules/.installed
# k8s/postgres.yaml holds CloudNativePG's resources, which kubernetes-validate has no schema for
validate-deploy: $(DEPLOY_VENV)/.installed $(CNPG_SCHEMAS)
	JWT_SECRET=validation-only-secret-0123456789abcdef RABBITMQ_ERLANG_COOKIE=validation-only-cookie \
		GRAFANA_ADMIN_PASSWORD=validation-only-password \
		sh -c 'docker-compose config --quiet && \
			docker-compose -f docker-compose.yml -f docker-compose.patroni.yml config --quiet'
	$(DEPLOY_VENV)/bin/kubernetes-validate --strict --quiet $(filter-out k8s/postgres.yaml,$(wildcard k8s/*.yaml))
	node deploy/cnpg/validate.mjs k8s/postgres.yaml
	@echo "docker-compose.yml, docker-compose.patroni.yml and k8s/ are valid"

$(CNPG_SCHEMAS): deploy/cnpg/package.json deploy/cnpg/package-lock.json
	cd deploy/cnpg && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(DEPLOY_VENV)/.installed: deploy/validate-requirements.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet -r deploy/validate-requirements.txt
	touch $@

# Fuzzes the running shop (make run) with schemathesis, from its own virtualenv.
FUZZ_VENV := .venv-fuzz
fuzz: install $(FUZZ_VENV)/.installed
	@mkdir -p var/fuzz
	$(BIN)/python -m tools.harness.fuzz $(FUZZ_ARGS)

$(FUZZ_VENV)/.installed: tools/harness/fuzz-requirements.txt
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet -r tools/harness/fuzz-requirements.txt
	touch $@

# Nameko's test fixtures make a vhost per test through the management API.
TEST_AMQP_URI ?= amqp://guest:guest@localhost:5672/
RABBIT_CTL_URI ?= http://guest:guest@localhost:15672
NAMEKO_TEST := $(BIN)/nameko test --amqp-uri=$(TEST_AMQP_URI) --rabbit-ctl-uri=$(RABBIT_CTL_URI)
PREFLIGHT := $(BIN)/python -m tools.preflight tests --amqp-uri=$(TEST_AMQP_URI) --rabbit-ctl-uri=$(RABBIT_CTL_URI)

test: install
	@$(PREFLIGHT)
	$(NAMEKO_TEST) $(PYTEST_ARGS)

test-databases:
	@for db in $(TEST_DATABASES); do \
	  psql "$(PG_URI)/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$$db'" | grep -q 1 \
	    || psql "$(PG_URI)/postgres" -qc "CREATE DATABASE $$db" ; \
	done

test-postgres: install
	@$(PREFLIGHT) --postgres=$(PG_URI)
	@$(MAKE) --no-print-directory test-databases
	SHOP_TEST_DATABASE=postgresql $(NAMEKO_TEST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) $(FUZZ_VENV) $(BENCH_VENV) deploy/cnpg/node_modules var
