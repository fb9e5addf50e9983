"""The store: :class:`SQLStore`, assembled from its parts (:mod:`.login`, :mod:`.revocation`,
:mod:`.sweep`, :mod:`.connections`, :mod:`.table`), and the reads.

Beside pyramid_tm / zope.sqlalchemy: the store has its own engine and pool (or, given an
engine, checks out connections of its own from it) and never joins the application's
transaction: aborting the application's transaction does not undo a login or a logout,
and a slow application transaction holds none of these rows locked. A store created
before a fork (``--preload``) gives up the inherited connections in each child."""

from __future__ import annotations

import builtins
import functools
import logging
import os
import threading
from typing import Any

from sqlalchemy import MetaData, bindparam, case, event, func, literal, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from ...errors import StoreUnavailable
from ...session import Session
from .engine import engine_for_url, family
from .login import Login
from .revocation import Revocation
from .statements import session_of
from .sweep import AUTO_SWEEP_BATCH, AUTO_SWEEP_INTERVAL
from .table import DEFAULT_TABLE, make_table
from .watchdog import WATCHDOG_GRACE

log = logging.getLogger(__name__)


class SQLStore(Login, Revocation):
    """Sessions in a table of an SQL database (see :mod:`pyramid_jeff.stores.sql`).

    ``engine`` may be one the application made (this store then checks out connections
    of its own from it, and never touches the application's transactions): the store
    runs its calls in autocommit mode (``engine.execution_options(isolation_level=
    "AUTOCOMMIT")`` unless the engine already is) and sets the server-side timeouts
    on each new connection. Bounds on the pool and
    on connecting are the engine's own; the watchdog bounds each call by ``timeout``.
    """

    def __init__(
        self, engine: Engine, *, table: str = DEFAULT_TABLE, timeout: float = 1.0
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self.timeout = timeout
        # Seconds one request may wait on the database in total (see pyramid_jeff.deadline).
        self.request_budget: float | None = timeout
        self.metadata = MetaData()
        self.table = make_table(self.metadata, table)
        self.family = family(engine.dialect.name)
        self._given_engine = engine
        if getattr(engine.dialect, "_on_connect_isolation_level", None) != "AUTOCOMMIT":
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.engine = engine
        self._begin = {"sqlite": "BEGIN IMMEDIATE", "mysql": "START TRANSACTION"}.get(
            self.family, "BEGIN"
        )
        event.listen(self._given_engine, "connect", self._on_connect)
        if self.family == "mysql":
            event.listen(self._given_engine, "do_connect", self._bound_connect)
        self._pid = os.getpid()
        self._sweep_lock = threading.Lock()
        self._next_auto_sweep = 0.0
        self._sweeper = None
        self.auto_sweep_interval = AUTO_SWEEP_INTERVAL
        self.auto_sweep_batch = AUTO_SWEEP_BATCH
        self._table_ready = False
        self._owns_engine = False  # set by from_url: close() then disposes of it
        try:
            self._run(lambda connection: None)  # creates the table when it is missing
        except StoreUnavailable as exc:
            # The application starts; the first call that reaches the database creates it.
            log.warning("session table not checked yet (the database is unreachable): %s", exc)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float = 1.0,
        pool_size: int = 10,
    ) -> SQLStore:
        """A store on its own engine and pool, every wait bounded by ``timeout``."""
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size!r}")
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ValueError(f"not an SQLAlchemy database URL: {exc}") from None
        try:
            engine = engine_for_url(parsed, timeout, pool_size)
        except (sa_exc.NoSuchModuleError, ImportError) as exc:
            raise ValueError(
                f"no SQLAlchemy dialect or driver for {parsed.drivername!r} ({exc}): install "
                "it, e.g. pip install 'psycopg[binary]' or pymysql"
            ) from None
        except sa_exc.ArgumentError as exc:
            raise ValueError(f"bad database URL: {exc}") from None
        try:
            store = cls(engine, table=table, timeout=timeout)
        except BaseException:  # e.g. a table it may not create or upgrade
            engine.dispose()
            raise
        store._owns_engine = True
        return store

    # -- the reads ---------------------------------------------------------------------

    @functools.cached_property
    def _get_query(self) -> Any:
        # Built once: the verify path then skips building and keying a statement.
        c = self.table.c
        return select(self.table, self._cutoff.label("cutoff")).where(
            c.key_digest == bindparam("kd"), c.session_id == bindparam("sid")
        )

    def get(self, key_digest: str, session_id: str) -> Session | None:
        """One ``SELECT t.*, <cutoff> FROM t WHERE key_digest = ? AND session_id = ?``:
        the verify path stays one statement, whatever the number of sessions of the key."""
        query, params = self._get_query, {"kd": key_digest, "sid": session_id}

        def work(connection: Connection) -> Session | None:
            row = connection.execute(query, params).first()
            return None if row is None else session_of(row)

        return self._run(work)

    def list(self, key_digest: str) -> builtins.list[Session]:
        """``SELECT t.*, <cutoff> FROM t WHERE key_digest = ?`` (a primary-key range)."""
        query = select(self.table, self._cutoff.label("cutoff")).where(
            self.table.c.key_digest == key_digest
        )
        return self._run(lambda connection: [session_of(r) for r in connection.execute(query)])

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        """Update-only, written only past the interval, only on a ``<not ended>`` row.

        MariaDB/MySQL: one ``UPDATE ... SET last_seen_ms = CASE WHEN last_seen_ms <= ? THEN
        ? ELSE last_seen_ms END WHERE <pk> AND <not ended>``; SQLAlchemy's MySQL dialects
        connect with ``CLIENT.FOUND_ROWS``, so the row count is the rows *matched* (1: the
        session exists), and InnoDB writes nothing for an unchanged row. PostgreSQL: one
        statement, ``WITH u AS (UPDATE ... WHERE <pk> AND <not ended> AND last_seen_ms <= ?
        RETURNING 1) SELECT EXISTS (SELECT 1 FROM u) OR EXISTS (SELECT 1 FROM t WHERE <pk>
        AND <not ended>)``. SQLite: the conditional ``UPDATE``; only when it changed
        nothing, a ``SELECT`` of the key tells "too recent" from "gone" (in-process)."""
        c = self.table.c
        # Never a tombstone, nor a session the cutoff ended.
        pk = (*self._pk(key_digest, session_id), *self._not_ended(in_write=True))
        # Written only if last_seen_ms >= stored + max(min_interval_ms, 1).
        due = c.last_seen_ms <= last_seen_ms - max(min_interval_ms, 1)
        if self.family == "mysql":
            stmt = (
                update(self.table)
                .where(*pk)
                .values(last_seen_ms=case((due, last_seen_ms), else_=c.last_seen_ms))
            )
            return self._run(lambda connection: connection.execute(stmt).rowcount > 0)
        conditional = update(self.table).where(*pk, due).values(last_seen_ms=last_seen_ms)
        if self.family == "postgresql":
            changed = conditional.returning(literal(1).label("touched")).cte("touched")
            found = select(literal(1).label("found")).where(*pk)
            query = select(or_(select(changed).exists(), found.exists()))
            return self._run(lambda connection: bool(connection.execute(query).scalar()))
        present = select(literal(1)).where(*pk)

        def work(connection: Connection) -> bool:
            if connection.execute(conditional).rowcount:
                return True
            return connection.execute(present).first() is not None  # too recent, or gone

        return self._run(work)

    # -- for operators -----------------------------------------------------------------

    def stats(self) -> dict[str, int | str]:
        """What the table holds: one ``SELECT COUNT(*), COUNT(ended), <cutoff> FROM t``
        (a count of its rows, so a scan of its primary key; nothing per key)."""
        c = self.table.c
        query = select(func.count(), func.count(c.ended), self._cutoff).select_from(self.table)
        rows, tombstones, cutoff = self._run(lambda connection: connection.execute(query).one())
        dialect = self.engine.dialect
        facts: dict[str, int | str] = {
            "backend": "sql",
            "dialect": "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name,
            "table": self.table.name,
            # Sessions and tombstones, not the cutoff's row.
            "records": int(rows) - (cutoff is not None),
            "tombstones": int(tombstones),
        }
        if cutoff is not None:
            facts["revoked_everyone_before_ms"] = int(cutoff)
        return facts

    def close(self) -> None:
        sweeper = self._sweeper
        if sweeper is not None:
            sweeper.join(self.timeout + WATCHDOG_GRACE)
        event.remove(self._given_engine, "connect", self._on_connect)
        if self.family == "mysql":
            event.remove(self._given_engine, "do_connect", self._bound_connect)
        if self._owns_engine:  # an engine the application gave is the application's
            self.engine.dispose()
