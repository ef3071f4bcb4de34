"""psycopg2 without a round trip of its own for ``BEGIN``.

psycopg2 opens each transaction by sending ``BEGIN`` alone and waiting for
the answer before it sends the first statement: a transaction of one UPDATE
costs three round trips to the server, each about 0.1 ms of the service's
CPU under eventlet, where the wait goes through the hub.

Here psycopg2 stays in its autocommit mode and this dialect keeps
SQLAlchemy's transactions itself: ``BEGIN`` goes out in the same message as
the transaction's first statement (PostgreSQL runs the two in order, and a
failing statement leaves the transaction open and aborted, as psycopg2's
would be), ``COMMIT`` and ``ROLLBACK`` end it as statements. A transaction
that sent no statement sends nothing at all.

A statement marked ``deferred`` (``common.data.db.deferred``) does not go out
when it is executed: it waits, bound to its parameters, and goes in the same
message as the next statement of its transaction, or as its ``COMMIT`` (it is
dropped with a ``ROLLBACK``). PostgreSQL runs the statements of one message
in order and stops at the first that fails, so a deferred statement's error
is raised by the statement that carried it, or by the commit, with its own
message (the constraint it broke). Only a statement whose answer nobody
reads can wait: one without ``RETURNING``, whose row count is not used.

The ``AUTOCOMMIT`` isolation level (for ``VACUUM`` or ``CREATE DATABASE``)
sends no ``BEGIN``; the other levels are set for the session.
``create_db_engine`` uses this dialect for every PostgreSQL URI.
"""
import psycopg2
import psycopg2.extensions
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

DRIVER = "psycopg2_lazybegin"
# the execution option common.data.db.deferred sets
DEFERRED = "shop_deferred"


class LazyBeginConnection(psycopg2.extensions.connection):
    """A psycopg2 connection that knows whether a transaction was begun, or
    is open on the server, and holds the statements deferred until the next."""

    statement_autocommit = False  # the AUTOCOMMIT isolation level: no BEGIN
    begin_pending = False  # begun, but the server has not heard of it yet
    in_transaction = False  # the server's transaction is open
    session_isolation_level = None  # set for the session; None: the server's default

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deferred = []  # bound statements that go out with the next one

    def begin(self):
        self.begin_pending = not self.statement_autocommit

    def defer(self, cursor, statement, parameters):
        """Keep ``statement`` for the next message, or run it now outside a
        transaction (where nothing would carry it)."""
        if self.begin_pending or self.in_transaction:
            self.deferred.append(self._bound(cursor, statement, parameters))
        else:
            self.run(cursor, statement, parameters)

    def run(self, cursor, statement, parameters=None):
        """``statement``, after the pending ``BEGIN`` and deferred statements,
        in one message."""
        earlier = self._take_pending()
        if not earlier:
            cursor.execute(statement, parameters)
        elif earlier == ["BEGIN"]:
            cursor.execute(f"BEGIN;{statement}", parameters)
        else:
            # bound here: the earlier statements are bound already, and a
            # percent sign in them must not be read as a placeholder
            cursor.execute(";".join([*earlier, self._bound(cursor, statement, parameters)]))

    def send_pending(self, cursor):
        """The pending ``BEGIN`` and deferred statements, on their own (before
        an executemany, which psycopg2 sends in pages of its own)."""
        earlier = self._take_pending()
        if earlier:
            cursor.execute(";".join(earlier))

    def end(self, command):
        """``COMMIT`` or ``ROLLBACK`` the server's transaction, if it has one.
        A ``COMMIT`` carries the deferred statements; a ``ROLLBACK`` drops them."""
        if command == "COMMIT" and self.deferred:
            statements = self._take_pending()
        else:
            statements, self.deferred = [], []
        self.begin_pending = False
        if self.in_transaction:
            # cleared first: a connection that fails here is discarded anyway
            self.in_transaction = False
            with self.cursor() as cursor:
                try:
                    cursor.execute(";".join([*statements, command]))
                except psycopg2.Error:
                    if statements:
                        # a deferred statement failed: the server did not
                        # reach the COMMIT, and its transaction is still
                        # open, aborted (SQLAlchemy, seeing the commit
                        # fail, would not roll back)
                        cursor.execute("ROLLBACK")
                    raise

    def _take_pending(self):
        statements = []
        if self.begin_pending:
            self.begin_pending = False
            self.in_transaction = True
            statements.append("BEGIN")
        if self.deferred:
            statements += self.deferred
            self.deferred = []
        return statements

    def _bound(self, cursor, statement, parameters):
        return cursor.mogrify(statement, parameters).decode(
            psycopg2.extensions.encodings[self.encoding])


class LazyBeginDialect(PGDialect_psycopg2):
    driver = DRIVER
    supports_statement_cache = True  # it compiles exactly as psycopg2's dialect

    def create_connect_args(self, url):
        args, kwargs = super().create_connect_args(url)
        return args, {**kwargs, "connection_factory": LazyBeginConnection}

    def on_connect(self):
        configure = super().on_connect()

        def connect(dbapi_connection):
            if configure is not None:
                configure(dbapi_connection)
            dbapi_connection.autocommit = True  # psycopg2 sends no BEGIN of its own

        return connect

    def set_isolation_level(self, dbapi_connection, level):
        connection = _unproxied(dbapi_connection)
        connection.statement_autocommit = level == "AUTOCOMMIT"
        # AUTOCOMMIT leaves the server's level as it was, so going back to it
        # (the pool resets a connection as it returns) costs no round trip
        if (not connection.statement_autocommit
                and level != (connection.session_isolation_level or self.default_isolation_level)):
            # psycopg2's own setter would turn its autocommit mode off
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}")
            connection.session_isolation_level = level

    def detect_autocommit_setting(self, dbapi_connection):
        return _unproxied(dbapi_connection).statement_autocommit

    def do_begin(self, dbapi_connection):
        _unproxied(dbapi_connection).begin()

    def do_commit(self, dbapi_connection):
        _unproxied(dbapi_connection).end("COMMIT")

    def do_rollback(self, dbapi_connection):
        _unproxied(dbapi_connection).end("ROLLBACK")

    def do_execute(self, cursor, statement, parameters, context=None):
        if context is not None and context.execution_options.get(DEFERRED):
            if context.compiled is not None and context.compiled.effective_returning:
                raise ValueError(f"A statement with RETURNING cannot be deferred: {statement}")
            cursor.connection.defer(cursor, statement, parameters)
        else:
            cursor.connection.run(cursor, statement, parameters)

    def do_execute_no_params(self, cursor, statement, context=None):
        cursor.connection.run(cursor, statement)

    def do_executemany(self, cursor, statement, parameters, context=None):
        cursor.connection.send_pending(cursor)
        super().do_executemany(cursor, statement, parameters, context)


def _unproxied(connection):
    """The psycopg2 connection behind the pool's proxy, if it is one."""
    return getattr(connection, "dbapi_connection", connection)


registry.register(f"postgresql.{DRIVER}", __name__, "LazyBeginDialect")
