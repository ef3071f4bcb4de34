"""Alembic, one migration history per service.

Each service keeps its scripts in ``<service>/migrations``; its ``env.py``
calls :func:`run_migrations` with the service's metadata. ``upgrade`` is what
``make run``, the tests and ``python -m tools.migrate`` call.
"""
from alembic import command
from alembic.config import Config
from common.db import create_db_engine


def alembic_config(service_name, uri):
    config = Config()
    config.set_main_option("script_location", f"{service_name}:migrations")
    # alembic reads options through configparser: a literal % must be doubled
    config.set_main_option("sqlalchemy.url", uri.replace("%", "%%"))
    return config


def upgrade(service_name, uri, revision="head"):
    command.upgrade(alembic_config(service_name, uri), revision)


def run_migrations(target_metadata):
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    from alembic import context

    engine = create_db_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
