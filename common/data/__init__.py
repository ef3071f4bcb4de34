"""The databases: one per service, SQLite or PostgreSQL.

- ``db``: the ``Database`` dependency (a session per worker, its teardown
  guarded), ``Money`` and ``UtcDateTime`` columns, deferred statements;
- ``pg``: the psycopg2 dialect that sends ``BEGIN`` and deferred statements
  with the next statement instead of a round trip each;
- ``migrations``: each service's alembic history, and the outbox table's.

May import the base (``common.config``, ``common.schemas``) only.
"""
