"""Fixtures for the whole suite, run with ``nameko test`` (which applies the
eventlet monkey patch) and nameko's pytest plugin (``rabbit_config``: a fresh
RabbitMQ vhost per test).

Databases: SQLite files by default; with SHOP_TEST_DATABASE=postgresql, the
``shop_test_<service>`` databases on SHOP_TEST_PG_URI (``make test-databases``
creates them). Migrations run once per session, tables are emptied per test.
"""
import contextlib
import copy
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from common.config import load_config
from common.messaging.outbox import OutboxWriter
from common.schemas import schema_of
from common.data.db import WorkerDatabase, create_db_engine, session_factory
from common.data.migrations import upgrade

ROOT = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("SHOP_TEST_DATABASE", "sqlite")
PG_URI = os.environ.get("SHOP_TEST_PG_URI", "postgresql://postgres@127.0.0.1:5432")


def pytest_report_header(config):
    return f"shop test database: {BACKEND}"


def free_port():
    return free_ports(1)[0]


def free_ports(count):
    """``count`` distinct free ports: each is held until all are chosen, as
    the kernel may hand a port just released to the next request for one."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@pytest.fixture(autouse=True)
def events_match_their_contracts(monkeypatch):
    """Every event a test's services write to an outbox is held to the schema
    its service's contract declares (common.contracts): a payload that drifts
    from the contract fails the test that made it, at its end."""
    mismatches = []
    add = OutboxWriter.add

    def checked_add(writer, event_type, data):
        contract = writer.provider.contract
        errors = schema_of(contract.event(event_type).payload).validate(data)
        if errors:
            mismatches.append(f"{contract.service}.{event_type} {data}: {errors}")
        return add(writer, event_type, data)

    monkeypatch.setattr(OutboxWriter, "add", checked_add)
    yield
    assert not mismatches, "events that do not match their contracts:\n" + "\n".join(mismatches)


@pytest.fixture(scope="session")
def base_config():
    """config.yaml as the services read it."""
    return load_config(ROOT / "config.yaml")


@pytest.fixture(scope="session")
def database_engines(base_config, tmp_path_factory):
    """One migrated database per service, for the whole session."""
    if BACKEND not in ("sqlite", "postgresql"):
        pytest.exit(f"SHOP_TEST_DATABASE must be sqlite or postgresql, not {BACKEND!r}")
    directory = tmp_path_factory.mktemp("databases")
    engines = {}
    for service_name in sorted(base_config["DB_URIS"]):
        if BACKEND == "postgresql":
            uri = f"{PG_URI}/shop_test_{service_name}"
            engine = create_db_engine(uri)
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            uri = f"sqlite:///{directory / service_name}.db"
            engine = create_db_engine(uri)
        upgrade(service_name, uri)
        engines[service_name] = engine
    yield engines
    for engine in engines.values():
        engine.dispose()


def is_search_index(table):
    """SQLite's FTS5 tables of products and theirs: the triggers on products
    empty them with it (products/migrations/versions/0006_search.py)."""
    return table.startswith(("products_words", "products_text"))


# the rows a migration writes into an empty database, written again once emptied
SEEDED_ROWS = {"catalogue_size": "INSERT INTO catalogue_size (id, products) VALUES (1, 0)"}


@pytest.fixture
def db_uris(database_engines):
    """``DB_URIS`` for a test: every table empty, but for the rows of SEEDED_ROWS."""
    for engine in database_engines.values():
        tables = [t for t in inspect(engine).get_table_names()
                  if t != "alembic_version" and not is_search_index(t)]
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL lock_timeout = '10s'"))
                connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    connection.execute(text(f"DELETE FROM {table}"))
            for table in set(tables) & set(SEEDED_ROWS):
                connection.execute(text(SEEDED_ROWS[table]))
    # as configured: postgresql://, where the engine's URL names common.data.pg's driver
    return {
        name: engine.url.set(drivername=engine.dialect.name).render_as_string(hide_password=False)
        for name, engine in database_engines.items()}


@pytest.fixture
def engine(db_uris):
    """An engine of its own on the products service's (emptied) database."""
    engine = create_db_engine(db_uris["products"])
    yield engine
    engine.dispose()


@pytest.fixture
def db(db_uris, database_engines):
    """``db(service)``: what ``self.db`` is inside a worker of that service,
    on the test database, for ``worker_factory``."""
    wrappers = []

    def make(service_name):
        wrapper = WorkerDatabase(session_factory(database_engines[service_name]))
        wrappers.append(wrapper)
        return wrapper

    yield make
    for wrapper in wrappers:
        wrapper.close()


@pytest.fixture
def shop_config(base_config, rabbit_config, db_uris):
    """config.yaml pointed at the test vhost, the test databases and a free port."""
    config = copy.deepcopy(base_config)
    config.update(
        AMQP_URI=rabbit_config["AMQP_URI"],
        DB_URIS=db_uris,
        WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}",
        # no metrics servers: a test that scrapes them asks for free ports
        METRICS={"HOST": "127.0.0.1", "PORTS": {}},
    )
    return config
