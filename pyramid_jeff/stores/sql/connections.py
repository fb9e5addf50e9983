"""How the store runs one call: on a connection of its own, within the call's time bound,
and what it sets up on each new connection.

Timeouts (``timeout``, default 1 s, bounds every wait): the pool wait and connecting
(:mod:`.engine`); on the server, PostgreSQL ``statement_timeout`` and ``lock_timeout`` (and
``idle_in_transaction_session_timeout``), MariaDB ``max_statement_time`` and
``innodb_lock_wait_timeout`` (whole seconds, at least 1) and the ``GET_LOCK`` wait, SQLite's
busy timeout (inside a request: what the budget has left); on the client, the
:mod:`.watchdog`. Inside a request (:mod:`pyramid_jeff.deadline`, budget
``request_budget`` = ``timeout``), the budget is checked before each call and the call runs
against it: the pool wait, the pymysql connect timeout and the watchdog get only what is
left, so a request spends at most its budget on the store in total, plus the connect of a
new connection to an unresponsive host: PostgreSQL at least 2 s (psycopg's floor),
MariaDB/MySQL up to the time left plus the watchdog's grace (the handshake's read
timeout). The server-side limits stay at ``timeout`` (changing them per call would cost a
round trip): a statement the watchdog abandoned ends on the server within ``timeout``.

The connection of any failed call is discarded (:mod:`.failures` tells what it means)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from ... import deadline
from ...errors import StoreUnavailable
from .failures import describe, is_deadlock, is_outage
from .table import TableUpkeep
from .watchdog import WATCHDOG, WATCHDOG_GRACE, cutter

log = logging.getLogger(__name__)

T = TypeVar("T")

# Attempts of a call that hit a deadlock or a serialization failure (the first included).
DEADLOCK_ATTEMPTS = 3


class Connections(TableUpkeep):
    """The store's part that runs its calls (every other part goes through :meth:`_run`)."""

    engine: Engine
    _pid: int
    _begin: str  # the statement that opens a transaction on this dialect

    def _on_connect(self, dbapi_connection: Any, connection_record: Any) -> None:
        """Per new connection: what the store's locking and timeouts rely on."""
        ms = max(int(self.timeout * 1000), 1)
        cursor = dbapi_connection.cursor()
        try:
            if self.family == "sqlite":
                cursor.execute(f"PRAGMA busy_timeout = {ms}")
                cursor.execute("PRAGMA journal_mode = WAL")  # readers never wait for a writer
            elif self.family == "mysql":
                cursor.execute(
                    f"SET SESSION innodb_lock_wait_timeout = {max(math.ceil(self.timeout), 1)}"
                )
                # MariaDB only (MySQL skips the versioned comment).
                cursor.execute(f"/*M!100108 SET SESSION max_statement_time = {self.timeout} */")
            elif self.family == "postgresql":
                # Server-side bounds of every statement and lock wait, and of a
                # transaction left open by a client that died or froze mid-way.
                cursor.execute(f"SET statement_timeout = {ms}")
                cursor.execute(f"SET lock_timeout = {ms}")
                cursor.execute(f"SET idle_in_transaction_session_timeout = {max(5 * ms, 5000)}")
        finally:
            cursor.close()
        if self.family == "postgresql" and not getattr(dbapi_connection, "autocommit", True):
            dbapi_connection.commit()  # the SETs above opened a transaction
        if self.family == "mysql" and hasattr(dbapi_connection, "_read_timeout"):
            # pymysql: the handshake had the budget's bound (see _bound_connect); the
            # connection's later reads and writes get the configured one again.
            dbapi_connection._read_timeout = self.timeout + WATCHDOG_GRACE
            dbapi_connection._write_timeout = self.timeout + WATCHDOG_GRACE

    def _bound_connect(
        self, dialect: Any, connection_record: Any, cargs: Any, cparams: dict[str, Any]
    ) -> None:
        # pymysql: inside a request, connecting gets only what the budget has left. The
        # dict is shared by all connects of the engine, so it is set every time.
        budget = deadline.current()
        wait = self.timeout if budget is None else budget.wait(self.timeout)
        wait = max(wait or self.timeout, deadline.MIN_WAIT)
        cparams["connect_timeout"] = wait
        # The handshake's reads and writes too (reset for later use in _on_connect).
        cparams["read_timeout"] = cparams["write_timeout"] = wait + WATCHDOG_GRACE

    def _run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` on a connection of ours, within the time bound of one call."""
        budget = deadline.current()
        if budget is not None and budget.remaining() <= 0:
            raise StoreUnavailable("sql: the request's store budget is spent")
        if self._pid != os.getpid():
            # Forked: the inherited connections belong to the parent (not closed here).
            self.engine.dispose(close=False)
            self._pid = os.getpid()
        if budget is None:
            return self._attempts(work, self.timeout + WATCHDOG_GRACE)
        with budget.spending():
            return self._attempts(work, budget.remaining())

    def _attempts(self, work: Callable[[Connection], T], limit: float) -> T:
        ends = time.monotonic() + limit
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                connection = self.engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                if is_outage(exc):
                    raise StoreUnavailable(describe(exc)) from exc
                raise
            fired = False
            try:
                cut = cutter(connection.connection.dbapi_connection)
                watch = None
                if cut is not None:
                    watch = WATCHDOG.arm(max(ends - time.monotonic(), deadline.MIN_WAIT), cut)
                # SQLite's busy wait does not see an interrupt: it gets the bound itself.
                busy = self.family == "sqlite" and limit < self.timeout
                try:
                    if busy:
                        self._busy_timeout(connection, ends - time.monotonic())
                    if not self._table_ready:
                        self._ensure_table(connection)
                    return work(connection)
                finally:
                    fired = watch is not None and WATCHDOG.disarm(watch)
                    if busy and not fired:
                        self._busy_timeout(connection, self.timeout)
            except BaseException as exc:
                # Whatever state it is in (a transaction open, a cut socket), this
                # connection is not given out again; the server rolls back when it closes.
                connection.invalidate()
                if fired:
                    raise StoreUnavailable(f"sql: no answer within {limit:.3f} s") from exc
                if is_deadlock(exc) and attempt < DEADLOCK_ATTEMPTS and time.monotonic() < ends:
                    log.info("sql: retrying after %s", describe(exc))
                    continue
                if is_outage(exc):
                    raise StoreUnavailable(describe(exc)) from exc
                raise
            finally:
                connection.close()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _busy_timeout(connection: Connection, seconds: float) -> None:
        # In-process (no round trip), on the driver's connection: not a statement of ours.
        ms = max(int(seconds * 1000), 1)
        connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            f"PRAGMA busy_timeout = {ms}"
        )

    @contextlib.contextmanager
    def _transaction(self, connection: Connection) -> Iterator[None]:
        # The connection is in autocommit mode: the transaction is ours to open and end.
        # On an error, _attempts discards the connection, which rolls it back.
        connection.exec_driver_sql(self._begin)
        yield
        connection.exec_driver_sql("COMMIT")
