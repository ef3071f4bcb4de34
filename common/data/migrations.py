"""Alembic, one migration history per service.

Each service keeps its scripts in ``<service>/migrations``; its ``env.py``
calls :func:`run_migrations` with the service's metadata. ``upgrade`` is what
``make run``, the tests and ``python -m tools.migrate`` call.
"""
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from common.data.db import create_db_engine


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


def create_outbox_table(op):
    """The ``outbox`` table of common.messaging.outbox, for a service's migration."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "next_attempt_at"])


def drop_outbox_table(op):
    op.drop_index("ix_outbox_unsent", "outbox")
    op.drop_table("outbox")
