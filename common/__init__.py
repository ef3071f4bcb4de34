"""Code every shop service shares; nothing here knows a service's domain.

The parts, each a package that says what it holds and what it may import:

- the base, at this level: ``config`` (settings, checked at start),
  ``errors`` (the error vocabulary; its class paths cross the wire in RPC
  errors), ``schemas`` (marshmallow pieces every boundary loads with: money,
  ids, pages), ``container`` (the service container that checks the
  config), ``contracts`` (what a service declares it publishes and offers)
  and ``build`` (which version and revision runs). The base imports nothing
  else from ``common``.
- ``data``: the database dependency, column types, PostgreSQL round trips
  and alembic migrations.
- ``web``: the JSON ``@http`` entrypoint and access tokens.
- ``observability``: logs, metrics and traces, and the per-worker
  ``Telemetry`` that binds them.
- ``messaging``: everything that touches RabbitMQ: the consumer, RPC with
  timeouts and breakers, events and their envelope, the outbox, retries and
  dead letters, publisher confirms and quorum queues.

``data``, ``web`` and ``observability`` use only the base; ``messaging`` may
use every other part. tests/unit/test_layout.py holds them to it.
"""
